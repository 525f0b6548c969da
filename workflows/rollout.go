// Package workflows holds Stagecraft's Temporal workflows: one per rollout
// strategy, all driven by one engine (the rollout state struct, its stage
// loop, its compensating rollback and its control handlers).
package workflows

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/stagecraft/stagecraft/activities"
	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/plan"
	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// CanaryDeployment moves traffic to the new version step by step.
func CanaryDeployment(ctx workflow.Context, in api.RolloutInput) (api.Result, error) {
	return run(ctx, spec.Canary, in)
}

// BlueGreenDeployment brings green up beside blue and switches at once.
func BlueGreenDeployment(ctx workflow.Context, in api.RolloutInput) (api.Result, error) {
	return run(ctx, spec.BlueGreen, in)
}

// RollingDeployment replaces instances batch by batch.
func RollingDeployment(ctx workflow.Context, in api.RolloutInput) (api.Result, error) {
	return run(ctx, spec.Rolling, in)
}

// RecreateDeployment stops every instance, then starts the new ones.
func RecreateDeployment(ctx workflow.Context, in api.RolloutInput) (api.Result, error) {
	return run(ctx, spec.Recreate, in)
}

// acts is used only to name activity methods in ExecuteActivity.
var acts *activities.Activities

// Retry policies. Errors that retrying cannot fix are listed by type (the
// activities also raise them as non-retryable, so the list is the same
// rule stated on both sides).
var nonRetryable = []string{platform.ErrTypeImageNotFound, platform.ErrTypeInvalidSpec, platform.ErrTypeTargetNotFound,
	platform.ErrTypeProgressStuck, platform.ErrTypeForbidden, platform.ErrTypeConfigConflict}

// rollout is the workflow's whole state; its methods are the handlers.
type rollout struct {
	st   api.Status
	spec spec.Spec
	// cause is what made the rollout roll back, once it does.
	cause cause
	// release is the workflow ID of the release that started this
	// rollout (RolloutInput.Release), or empty.
	release  string
	plan     plan.Plan
	snapshot platform.Snapshot
	token    string

	paused      bool
	promoted    bool
	aborted     bool
	abortReason string
	// abortVia is how the accepted abort came (signal, update, timeout),
	// for the rollback's cause: the control log keeps only its latest
	// records.
	abortVia    string
	rollingBack bool
	// cancelStage cancels the work in flight so an abort acts at once.
	cancelStage workflow.CancelFunc
	// wake is signalled on every accepted control, to re-evaluate a bake.
	wake workflow.Channel
	// bakeEndsAt is when the running bake timer fires.
	bakeEndsAt time.Time
	// healthV is the health-policy version this run follows (replay of
	// runs recorded before it keeps the old command sequence).
	healthV workflow.Version
	// healthPaused: the policy paused this stage on a degraded round;
	// acceptDegraded: an operator resumed such a pause, so degraded rounds
	// continue for the rest of the rollout.
	healthPaused, acceptDegraded bool
	// auditor writes the audit trail.
	auditor auditor
	// approved: an operator approved the open approval gate.
	approved bool
	// promotedBy and promotedAt: who promoted, why and when; a promote
	// approves a gate that is open (gateV >= 1).
	promotedBy api.ControlRequest
	promotedAt time.Time
	gateV      workflow.Version
	// byV >= 1: a control request's by is kept as api.ShownBy
	// (byVersion).
	byV workflow.Version
	// boundsV >= 1: a control request's reason is kept as api.KeptReason
	// and the control log keeps the latest api.MaxControls records
	// (boundsVersion).
	boundsV workflow.Version
	// rules are the spec validation rules of this rollout's first run.
	rules spec.Rules
	// notifier sends the spec's notifications.
	notifier notifier
	// deadlineAt is when the rollout timeout aborts it; runs counts the
	// runs before this one (continue-as-new).
	deadlineAt time.Time
	runs       int
	// continueV is continueVersion's, asked at the first stage boundary.
	continueV     workflow.Version
	continueAsked bool
	// draining counts watches the bake cancelled whose end is awaited
	// beside the rollout (drainWatch); drainV is watchDrainVersion's,
	// asked at the first cancelled watch.
	draining   int
	drainV     workflow.Version
	drainAsked bool
}

// Versions of the workflow's command sequence, for replay.
const (
	// healthPolicyVersion: minSamples may extend a stage past its bake, a
	// paused stage keeps a watcher running, and a degraded round may pause.
	healthPolicyVersion = "health-policy-20261122"
)

// ownerVersion: a rollout or release runs only under its target's
// canonical workflow ID.
const ownerVersion = "owner-20261203"

// ownerProblem says why a workflow under the wrong ID is refused, naming
// both IDs.
func ownerProblem(what, target, got, want string) string {
	return fmt.Sprintf("workflow ID %q is not the %s ID of %s: it must run as %q, the one ID that makes it the target's only owner", got, what, target, want)
}

// errAborted is returned by a stage interrupted by an abort.
type errAborted struct{ reason string }

func (e errAborted) Error() string { return "aborted: " + e.reason }

func run(ctx workflow.Context, strategy string, in api.RolloutInput) (api.Result, error) {
	info := workflow.GetInfo(ctx)
	s, resume := in.WithDefaults(), []byte(in.Resume)
	sum := sha256.Sum256([]byte(info.WorkflowExecution.ID + "/" + info.WorkflowExecution.RunID))
	r := &rollout{
		spec:    s,
		release: in.Release,
		token:   hex.EncodeToString(sum[:4]),
		wake:    workflow.NewBufferedChannel(ctx, 1),
		st: api.Status{
			WorkflowID:  info.WorkflowExecution.ID,
			RunID:       info.WorkflowExecution.RunID,
			ExecutionID: s.ExecutionID,
			RequestID:   api.RolloutInput{Spec: s, Release: in.Release}.RequestID(),
			Service:     s.Service,
			Platform:    s.PlatformName(),
			Target:      s.TargetKey(),
			Strategy:    strategy,
			ImageTo:     s.Image,
			Phase:       api.PhasePending,
			StartedAt:   workflow.Now(ctx),
		},
	}
	r.noteStarter(ctx)
	if err := r.register(ctx); err != nil {
		return api.Result{}, err
	}
	// One target, one owner: the workflow ID is the target's lock, so a
	// rollout under any other ID (a raw client, another SDK, a typo) would
	// run beside the target's own rollout and undo its work. Refused before
	// anything is looked at, changed, recorded or notified, whoever started
	// it: the target's trail and the spec's receivers belong to its owner.
	if id := r.st.WorkflowID; id != s.WorkflowID() && workflow.GetVersion(ctx, ownerVersion, workflow.DefaultVersion, 1) >= 1 {
		msg := ownerProblem("rollout", s.TargetKey(), id, s.WorkflowID())
		now := workflow.Now(ctx)
		r.st.Problems = []string{msg}
		r.st.Outcome, r.st.Error = api.OutcomeRejected, msg
		r.st.Phase, r.st.CompletedAt = api.PhaseDone, &now
		workflow.GetLogger(ctx).Warn("rollout refused: not the target's owner", "error", msg)
		return closeAs(ctx, r.st.Outcome, r.st, r.summary())
	}
	r.startAudit(ctx)
	r.startNotify(ctx)
	r.startSearch(ctx)
	r.keepDetails(ctx)
	r.countStarted(ctx)
	res, err := r.execute(ctx, strategy, resume)
	if err != nil {
		return api.Result{}, err // continue as new
	}
	r.awaitDrains(ctx)
	r.notifier.settle(ctx)
	r.closeAudit(ctx)
	return closeAs(ctx, res.Outcome, res, r.summary())
}

// execute runs the rollout to its result, or returns the error that
// continues it as new.
func (r *rollout) execute(ctx workflow.Context, strategy string, resume []byte) (api.Result, error) {
	logger := workflow.GetLogger(ctx)
	r.rules = r.specRules(ctx, resume)
	if problems := checkSpec(r.spec, strategy, r.rules); len(problems) > 0 {
		r.st.Problems = problems
		return r.finish(ctx, api.OutcomeRejected, "invalid spec: "+strings.Join(problems, "; ")), nil
	}
	if resume != nil {
		next, err := r.resume(ctx, resume)
		if err != nil {
			return r.finish(ctx, api.OutcomeRejected, "invalid spec: "+err.Error()), nil
		}
		r.startDeadline(ctx)
		return r.runFrom(ctx, strategy, next)
	}
	r.deadlineAt = r.st.StartedAt.Add(r.spec.Timeout.D())
	r.startDeadline(ctx)

	// Snapshot: nothing has changed yet, so a failure here rejects the rollout.
	r.st.Phase = api.PhaseSnapshot
	var prep activities.PrepareResult
	err := r.inStage(ctx, func(sctx workflow.Context) error {
		return workflow.ExecuteActivity(prepareOptions(sctx), acts.Prepare, activities.PrepareInput{Spec: r.spec}).Get(sctx, &prep)
	})
	if err != nil {
		if r.aborted || temporal.IsCanceledError(err) {
			return r.finish(ctx, api.OutcomeRolledBack, "stopped before any change: "+r.stopReason(err)), nil
		}
		return r.finish(ctx, api.OutcomeRejected, errorMessage(err)), nil
	}
	r.snapshot = prep.Snapshot
	r.st.FreshInstall = prep.Snapshot.Empty()
	r.st.ImageFrom = strings.Join(prep.Snapshot.Images(), ",")
	r.plan, err = planFrom(r.spec, prep.Snapshot)
	if err != nil {
		return r.finish(ctx, api.OutcomeRejected, err.Error()), nil
	}
	for _, st := range r.plan.Stages {
		r.st.Stages = append(r.st.Stages, api.StageRecord{Stage: st, Status: api.StagePending})
	}
	logger.Info("rollout planned", "service", r.spec.Service, "stages", len(r.plan.Stages), "snapshot", prep.Snapshot.Count())
	r.notify(ctx, spec.EventStarted, "")

	return r.runFrom(ctx, strategy, 0)
}

// planFrom plans a rollout of s from what runs now: to the spec's replicas,
// or, when it names none, to the count that runs now. The rollout and its
// preview (PreviewRollout) plan through it, so a plan shows the stages a
// rollout runs.
func planFrom(s spec.Spec, snap platform.Snapshot) (plan.Plan, error) {
	total := s.Replicas()
	if total == 0 {
		total = snap.Count() // keep the count that runs now
	}
	return plan.Build(s, total, snap.Count())
}

// runFrom runs the stages from stage next on, then holds, finalizes or rolls
// back. From here on a failure, an abort or a cancellation rolls back.
func (r *rollout) runFrom(ctx workflow.Context, strategy string, next int) (api.Result, error) {
	logger := workflow.GetLogger(ctx)
	failure := r.runStages(ctx, strategy, next)
	var can *workflow.ContinueAsNewError
	if errors.As(failure, &can) {
		return api.Result{}, failure
	}
	if failure == nil {
		failure = r.keepBlue(ctx)
	}
	if failure == nil && r.release != "" {
		failure = r.awaitRelease(ctx)
	}
	if failure == nil {
		r.st.Phase = api.PhaseFinalizing
		failure = r.inStage(ctx, func(sctx workflow.Context) error {
			_, err := r.converge(sctx, r.plan.Final)
			return err
		})
		if failure == nil {
			return r.finish(ctx, api.OutcomeSucceeded, ""), nil
		}
	}
	reason := r.stopReason(failure)
	logger.Warn("rolling back", "service", r.spec.Service, "reason", reason)
	r.notify(ctx, spec.EventFailed, reason)
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	return r.rollback(dctx, reason, r.causeOf(failure)), nil
}

// runStages converges and validates each stage in order, from stage next;
// a long rollout continues as new between two stages.
func (r *rollout) runStages(ctx workflow.Context, strategy string, next int) error {
	r.healthV = workflow.GetVersion(ctx, healthPolicyVersion, workflow.DefaultVersion, 1)
	for i := next; i < len(r.plan.Stages); i++ {
		if i > next && r.shouldContinue(ctx, i) {
			return r.continueAsNew(ctx, strategy, i)
		}
		if err := workflow.Await(ctx, func() bool { return !r.paused || r.aborted || r.promoted }); err != nil {
			return err
		}
		if r.aborted {
			return errAborted{r.abortReason}
		}
		// An approval gate holds the stage until approved; promote has
		// already approved what is left.
		if r.spec.Approval.Gates(r.plan.Stages[i].Percent) && !r.promoted {
			if err := r.awaitApproval(ctx, i); err != nil {
				return err
			}
			// A pause taken while the gate waited holds the approved
			// stage too: nothing converges while paused.
			if r.gateV >= 1 {
				if err := workflow.Await(ctx, func() bool { return !r.paused || r.aborted || r.promoted }); err != nil {
					return err
				}
				if r.aborted {
					return errAborted{r.abortReason}
				}
			}
		}
		if err := r.runStage(ctx, i); err != nil {
			return err
		}
	}
	return nil
}

func (r *rollout) runStage(ctx workflow.Context, i int) error {
	rec := &r.st.Stages[i]
	stage := r.plan.Stages[i]
	now := workflow.Now(ctx)
	rec.Status, rec.StartedAt = api.StageInProgress, &now
	r.st.CurrentStage = i
	r.healthPaused = false
	r.st.Phase = api.PhaseDeploying
	err := r.inStage(ctx, func(sctx workflow.Context) error {
		res, err := r.converge(sctx, stage.Desired())
		if err != nil {
			return err
		}
		rec.InstancesUpdated, rec.InstancesTotal = res.NewCount, res.Total
		rec.Status = api.StageValidating
		r.st.Phase = api.PhaseValidating
		return r.bake(sctx, i)
	})
	done := workflow.Now(ctx)
	rec.CompletedAt = &done
	r.st.BakeRemaining, r.st.BakeEndsAt = 0, nil
	r.timeStage(ctx, i, err)
	if err != nil {
		rec.Status = api.StageFailed
		rec.Error = r.stopReason(err)
		return err
	}
	rec.Status = api.StageCompleted
	return nil
}

// keepBlue holds a finished blue-green rollout with blue still running for
// strategy.keepBlueFor, so an abort switches back at once; then finalizing
// removes blue. Promote ends the wait.
func (r *rollout) keepBlue(ctx workflow.Context) error {
	d := r.spec.Strategy.KeepBlueFor.D()
	if d <= 0 || r.promoted || workflow.GetVersion(ctx, "keep-blue-20261122", workflow.DefaultVersion, 1) != 1 {
		return nil
	}
	r.st.Phase = api.PhaseKeepingBlue
	return r.inStage(ctx, func(sctx workflow.Context) error {
		ends := workflow.Now(sctx).Add(d)
		r.st.BakeEndsAt, r.st.BakeRemaining = &ends, d
		timer := workflow.NewTimerWithOptions(sctx, d, workflow.TimerOptions{Summary: "keep blue"})
		return r.waitWoken(sctx, timer, nil, func(w woken) (bool, error) {
			switch {
			case w.err != nil:
				return true, w.err
			case w.fired || r.promoted:
				r.st.BakeEndsAt, r.st.BakeRemaining = nil, 0
				return true, nil
			}
			return false, nil
		})
	})
}

// awaitRelease reports to the release that started this rollout that every
// stage passed, then holds it, converged and with its snapshot, until the
// release commits it (it then finalizes) or rolls it back (an abort).
func (r *rollout) awaitRelease(ctx workflow.Context) error {
	parent := workflow.GetInfo(ctx).ParentWorkflowExecution
	if parent == nil {
		return nil
	}
	r.st.Phase = api.PhaseAwaitingRelease
	ready := api.ServiceReady{WorkflowID: r.st.WorkflowID, RunID: r.st.RunID}
	if err := workflow.SignalExternalWorkflow(ctx, parent.ID, "", api.SignalServiceReady, ready).Get(ctx, nil); err != nil {
		return fmt.Errorf("report to release %s: %w", parent.ID, err)
	}
	commit := workflow.GetSignalChannel(ctx, api.SignalCommit)
	return r.inStage(ctx, func(sctx workflow.Context) error {
		return r.waitWoken(sctx, nil, commit, func(w woken) (bool, error) {
			switch {
			case sctx.Err() != nil:
				return true, sctx.Err()
			case w.received:
				return true, nil // committed
			}
			return false, nil
		})
	})
}

// inStage runs fn on a context that an abort cancels at once.
func (r *rollout) inStage(ctx workflow.Context, fn func(workflow.Context) error) error {
	sctx, cancel := workflow.WithCancel(ctx)
	r.cancelStage = cancel
	defer func() {
		r.cancelStage = nil
		cancel()
	}()
	if r.aborted {
		return errAborted{r.abortReason}
	}
	err := fn(sctx)
	if err != nil && r.aborted {
		return errAborted{r.abortReason}
	}
	return err
}

func (r *rollout) converge(ctx workflow.Context, d plan.Desired) (platform.ConvergeResult, error) {
	var res platform.ConvergeResult
	req := platform.ConvergeRequest{Spec: r.spec, Rollout: r.token, Snapshot: r.snapshot, Desired: d}
	err := workflow.ExecuteActivity(convergeOptions(ctx, r.spec), acts.Converge, activities.ConvergeInput{Request: req}).Get(ctx, &res)
	return res, err
}

// watchDrainVersion: a watch the bake cancels (a pause or resume switching
// its mode, a promote, an abort, a failed or ended stage) is awaited beside
// the rollout, and the rounds it could not store (the details of its
// cancellation) join the audit trail before it closes. Runs recorded before
// it drop them.
const watchDrainVersion = "watch-drain-20261203"

// drainWait bounds how long the end of a run waits for its cancelled
// watches: a watch stops at its next heartbeat (5 s apart at most), or
// times out on the server as soon, if its worker is gone.
const drainWait = 30 * time.Second

// drainWatch awaits a watch the bake has just cancelled, beside the
// rollout, and keeps the rounds it could not store, which it returns with
// its cancellation; awaitDrains waits for them before the trail closes.
func (r *rollout) drainWatch(ctx workflow.Context, f workflow.Future) {
	if !r.auditor.on {
		return
	}
	if !r.drainAsked {
		r.drainV, r.drainAsked = workflow.GetVersion(ctx, watchDrainVersion, workflow.DefaultVersion, 1), true
	}
	if r.drainV < 1 {
		return
	}
	r.draining++
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	workflow.Go(dctx, func(gctx workflow.Context) {
		defer func() { r.draining-- }()
		var res activities.WatchResult
		err := f.Get(gctx, &res)
		var canceled *temporal.CanceledError
		if errors.As(err, &canceled) && canceled.HasDetails() {
			_ = canceled.Details(&res)
		}
		r.keepRounds(res.Unwritten)
	})
}

// awaitDrains waits, at most drainWait, for the watches drainWatch awaits.
func (r *rollout) awaitDrains(ctx workflow.Context) {
	if r.draining == 0 {
		return
	}
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	if ok, _ := workflow.AwaitWithTimeout(dctx, drainWait, func() bool { return r.draining == 0 }); !ok {
		workflow.GetLogger(ctx).Warn("cancelled watches did not end in time; the rounds they kept are not in the trail", "watches", r.draining)
	}
}

// pauseForHealth pauses the rollout because a round was degraded and the
// policy says pause; it is recorded like an operator's pause.
func (r *rollout) pauseForHealth(ctx workflow.Context, problem string) {
	if r.paused || r.promoted {
		return
	}
	req := api.ControlRequest{Reason: "health degraded (onDegraded: pause): " + problem, By: "stagecraft"}
	if _, err := r.control(ctx, api.SignalPause, req, "health"); err == nil {
		r.healthPaused = true
	}
}

// rollback converges the target back to the snapshot and verifies it with
// the same checks. It runs on a disconnected context, so a cancelled
// workflow still restores.
func (r *rollout) rollback(ctx workflow.Context, reason string, c cause) api.Result {
	r.rollingBack = true
	r.cause = c
	r.countRollback(ctx, c)
	r.st.Phase = api.PhaseRollingBack
	r.st.Paused = false
	rb := &api.RollbackRecord{Reason: reason, StartedAt: workflow.Now(ctx)}
	r.st.Rollback = rb
	restore := plan.Desired{New: 0, Old: r.snapshot.Count(), Traffic: plan.TrafficOld, Order: plan.Surge}
	var res platform.ConvergeResult
	req := platform.ConvergeRequest{Spec: r.spec, Rollout: r.token, Snapshot: r.snapshot, Desired: restore}
	err := workflow.ExecuteActivity(rollbackOptions(ctx, r.spec), acts.Converge, activities.ConvergeInput{Request: req}).Get(ctx, &res)
	if err != nil {
		rb.Error = "restore snapshot: " + errorMessage(err)
		return r.finish(ctx, api.OutcomeRollbackFailed, reason+"; rollback failed: "+rb.Error)
	}
	// Restored, but not to the same bytes everywhere (a tag that moved on a
	// platform that can only pull by name): the outcome says so.
	rb.Drift = res.Drift
	// Restored, while pods of the new version may still be terminating (out
	// of the endpoints, their grace period running on): said apart.
	rb.Terminating = res.Terminating
	r.st.Phase = api.PhaseVerifying
	verifiable := 0
	for _, c := range r.spec.Health.Checks {
		if !c.SkipVerify {
			verifiable++
		}
	}
	switch {
	case r.snapshot.Empty() || verifiable == 0:
		// Nothing ran before, or nothing to check: restored means converged.
		rb.Verified = true
	default:
		in := activities.WatchInput{Spec: r.spec, Rollout: r.token, Snapshot: r.snapshot,
			Which: platform.WhichOld, Mode: activities.WatchVerify, Rounds: 5}
		var v activities.WatchResult
		err := workflow.ExecuteActivity(watchOptions(ctx, r.spec, verifyWatchAttempts), acts.Watch, in).Get(ctx, &v)
		sum := watchSummary(v)
		rb.Verify = &sum
		r.keepRounds(v.Unwritten)
		if v.Latest != nil {
			r.st.LatestRound = v.Latest
		}
		rb.Verified = err == nil && v.Healthy
		if !rb.Verified {
			msg := v.LastFailure
			if err != nil {
				msg = errorMessage(err)
			}
			rb.Error = "verify restored service: " + msg
		}
	}
	done := workflow.Now(ctx)
	rb.CompletedAt = &done
	if !rb.Verified {
		return r.finish(ctx, api.OutcomeRollbackFailed, reason+"; "+rb.Error)
	}
	for i := range r.st.Stages {
		if r.st.Stages[i].Status != api.StagePending {
			r.st.Stages[i].Status = api.StageRolledBack
		}
	}
	if n := len(rb.Terminating); n > 0 {
		reason += fmt.Sprintf("; restored, %d pod(s) of the new version still terminating (no longer ready, so out of the ready endpoints; grace period honoured)", n)
	}
	if len(rb.Drift) > 0 {
		return r.finish(ctx, api.OutcomeRolledBack, reason+"; restored, but "+strings.Join(rb.Drift, "; "))
	}
	return r.finish(ctx, api.OutcomeRolledBack, reason)
}

func (r *rollout) finish(ctx workflow.Context, o api.Outcome, msg string) api.Result {
	if o == api.OutcomeRollbackFailed {
		msg = r.hold(ctx, msg) // the next rollout must not take this state as its baseline
	}
	now := workflow.Now(ctx)
	r.st.Outcome, r.st.Error = o, msg
	r.st.Phase, r.st.CompletedAt = api.PhaseDone, &now
	r.st.Paused, r.st.BakeRemaining, r.st.BakeEndsAt = false, 0, nil
	r.countFinished(ctx, o)
	workflow.GetLogger(ctx).Info("rollout finished", "service", r.spec.Service, "outcome", string(o), "error", msg)
	r.notify(ctx, string(o), msg)
	return r.st
}

// heldDeadlineVersion: a rollout held for its release (awaiting_release)
// no longer aborts when its own timeout passes.
const heldDeadlineVersion = "held-deadline-20261203"

// startDeadline aborts the rollout when its total timeout passes, unless
// it is held for its release by then.
func (r *rollout) startDeadline(ctx workflow.Context) {
	workflow.Go(ctx, func(gctx workflow.Context) {
		t := workflow.NewTimerWithOptions(gctx, max(r.deadlineAt.Sub(workflow.Now(gctx)), time.Millisecond), workflow.TimerOptions{Summary: "rollout timeout"})
		if t.Get(gctx, nil) == nil && r.st.Phase != api.PhaseDone {
			// Held for its release, every stage passed: the release's
			// timeout governs from here, not this rollout's.
			if r.st.Phase == api.PhaseAwaitingRelease && workflow.GetVersion(gctx, heldDeadlineVersion, workflow.DefaultVersion, 1) >= 1 {
				return
			}
			_, _ = r.control(gctx, api.SignalAbort, api.ControlRequest{Reason: "rollout timeout " + r.spec.Timeout.D().String() + " passed", By: "stagecraft"}, "timeout")
		}
	})
}

// stopReason says why the rollout stopped, for records and results.
func (r *rollout) stopReason(err error) string {
	var (
		ab      errAborted
		timeout *temporal.TimeoutError
	)
	switch {
	case errors.As(err, &ab):
		return ab.Error()
	case errors.As(err, &timeout):
		// A timeout's cause is an earlier attempt's failure, which may be
		// a cancellation the worker reported after a lost heartbeat: the
		// workflow was not cancelled.
		return err.Error()
	case temporal.IsCanceledError(err):
		return "workflow cancelled"
	}
	return errorMessage(err)
}

// errorMessage unwraps Temporal's activity error wrapping to the cause.
func errorMessage(err error) string {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return app.Message()
	}
	return err.Error()
}

// specBoundsVersion: a rollout validates its spec under the bounded rules
// (spec.RulesBounded: upper bounds on every duration, count and length).
// Runs started before keep the rules they started under, so a spec
// accepted then is not refused on replay or after a continue-as-new.
const specBoundsVersion = "spec-bounds-20261203"

// specBoundariesVersion: a rollout or release validates its spec under the
// security boundaries too (spec.RulesBoundaries: shared Docker networks
// and other tools' labels refused, reserved signature headers, clean
// command paths), so a spec sent by any Temporal client, not only one
// validated by the starter, is held to them.
const specBoundariesVersion = "spec-boundaries-20261203"

// specStorableVersion: a rollout or release refuses a spec holding a NUL
// character anywhere (spec.RulesStorable), which its audit trail could
// never store, whatever client sent it.
const specStorableVersion = "spec-storable-20261203"

// newRules are the rules a rollout or release starting now validates
// under, as its history records them: the versions it was started with.
func newRules(ctx workflow.Context) spec.Rules {
	if workflow.GetVersion(ctx, specBoundsVersion, workflow.DefaultVersion, 1) < 1 {
		return spec.RulesUnbounded
	}
	if workflow.GetVersion(ctx, specBoundariesVersion, workflow.DefaultVersion, 1) < 1 {
		return spec.RulesBounded
	}
	if workflow.GetVersion(ctx, specStorableVersion, workflow.DefaultVersion, 1) < 1 {
		return spec.RulesBoundaries
	}
	return spec.RulesStorable
}

// specRules are the validation rules this rollout runs under: those its
// first run chose, carried across continue-as-new.
func (r *rollout) specRules(ctx workflow.Context, resume []byte) spec.Rules {
	if resume != nil {
		var c struct {
			Rules spec.Rules `json:"specRules"`
		}
		_ = json.Unmarshal(resume, &c) // a bad carry is refused by resume
		return c.Rules
	}
	if rules, ok := parentRules(ctx, r.release); ok {
		return rules
	}
	return newRules(ctx)
}

// memoSpecRules is the memo field in which a release tells the rollouts it
// starts the spec rules it validated under (release.childMemo).
const memoSpecRules = "stagecraftSpecRules"

// parentRules are the rules a release passed this rollout in its memo.
// Only a child of a release honours them (its parent's ID is a release's,
// and the one its spec names, when it names one): a memo set by any other
// starter, or by another workflow starting it as a child, could otherwise
// lower the bounds.
func parentRules(ctx workflow.Context, release string) (spec.Rules, bool) {
	info := workflow.GetInfo(ctx)
	if info.ParentWorkflowExecution == nil || info.Memo == nil {
		return 0, false
	}
	if parent := info.ParentWorkflowExecution.ID; !strings.HasPrefix(parent, "release:") || (release != "" && parent != release) {
		return 0, false
	}
	p, ok := info.Memo.GetFields()[memoSpecRules]
	if !ok {
		return 0, false
	}
	var rules spec.Rules
	if err := dataConverter().FromPayload(p, &rules); err != nil {
		return 0, false
	}
	return rules, true
}

// checkSpec validates the spec under rules and that it asks for this
// workflow's strategy.
func checkSpec(s spec.Spec, strategy string, rules spec.Rules) []string {
	var problems []string
	if err := s.ValidateUnder(rules); err != nil {
		var ve *spec.ValidationError
		if errors.As(err, &ve) {
			for _, p := range ve.Problems {
				problems = append(problems, p.Error())
			}
		} else {
			problems = append(problems, err.Error())
		}
	}
	if s.Strategy.Type != "" && s.Strategy.Type != strategy {
		problems = append(problems, fmt.Sprintf("strategy.type: %q does not match this workflow, which runs %s", s.Strategy.Type, strategy))
	}
	return problems
}

// retried returns ctx with options for an activity retried with backoff up
// to attempts times, never for the non-retryable error types.
func retried(ctx workflow.Context, summary string, startToClose, maxInterval time.Duration, attempts int32) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: startToClose,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2,
			MaximumInterval: maxInterval, MaximumAttempts: attempts, NonRetryableErrorTypes: nonRetryable},
		Summary: summary,
	})
}

// keepAliveTimeout is the heartbeat timeout of the activities that block in
// one platform or database call and heartbeat from the side while they do
// (activities.keepAlive): a worker that dies in one is noticed within it,
// and the activity retried elsewhere, instead of after its start-to-close
// timeout. 30 s: few heartbeat calls, and room for a loaded worker.
const keepAliveTimeout = 30 * time.Second

// beating sets the keep-alive heartbeat timeout on ctx's activity options.
func beating(ctx workflow.Context) workflow.Context {
	opts := workflow.GetActivityOptions(ctx)
	opts.HeartbeatTimeout = keepAliveTimeout
	return workflow.WithActivityOptions(ctx, opts)
}

func prepareOptions(ctx workflow.Context) workflow.Context {
	return beating(retried(ctx, "snapshot", 2*time.Minute, 10*time.Second, 10))
}

func convergeOptions(ctx workflow.Context, s spec.Spec) workflow.Context {
	return beating(retried(ctx, "converge", platform.ConvergeBudget(s), 10*time.Second, 10))
}

// rollbackOptions retries longer: restoring is worth waiting for.
func rollbackOptions(ctx workflow.Context, s spec.Spec) workflow.Context {
	return beating(retried(ctx, "rollback", platform.ConvergeBudget(s), 30*time.Second, 20))
}

// watchOptions: a watcher lives for a whole bake, heartbeating; a worker
// crash is noticed within the heartbeat timeout and the watch retried from
// its last heartbeat, up to attempts times (0: no limit).
//
// A bake's watch has no limit (bakeWatchAttempts): a lost heartbeat, from a
// dead worker or one too loaded to heartbeat within 5 s, says nothing of
// the new version, and the rollout's timeout bounds the whole; a limit
// rolls back healthy rollouts on a loaded worker (docs/BENCHMARKS.md, P4).
// The rollback's verify watch, which no rollout
// timeout bounds, keeps a limit (verifyWatchAttempts).
const (
	bakeWatchAttempts   = 0
	verifyWatchAttempts = 20
)

func watchOptions(ctx workflow.Context, s spec.Spec, attempts int32) workflow.Context {
	ctx = retried(ctx, "health watch", spec.SatAdd(s.Timeout.D(), 10*time.Minute), 10*time.Second, attempts)
	opts := workflow.GetActivityOptions(ctx)
	opts.HeartbeatTimeout = 5 * time.Second
	opts.WaitForCancellation = true
	return workflow.WithActivityOptions(ctx, opts)
}
