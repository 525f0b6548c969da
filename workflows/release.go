package workflows

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/workflow"

	"github.com/stagecraft/stagecraft/activities"
	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/health"
	"github.com/stagecraft/stagecraft/internal/spec"
)

type release struct {
	// root is the workflow's context: rollouts run on it, not on the
	// launching context that a failure cancels.
	root workflow.Context
	st   api.ReleaseStatus
	spec spec.Release
	// rules are the spec rules the release validated under; its rollouts
	// follow them (memoSpecRules).
	rules   spec.Rules
	futures map[string]workflow.ChildWorkflowFuture
	cancels map[string]workflow.CancelFunc
	aborted bool
	reason  string
	// version is releaseVersion's: 1 for runs with preparation, audit,
	// notifications and control updates.
	version workflow.Version
	searchV workflow.Version
	// byV is byVersion's (handlers.go), taken when the controls are
	// installed.
	byV workflow.Version
	// boundsV is boundsVersion's (handlers.go), taken with byV.
	boundsV workflow.Version
	// commitV is commitVersion's, taken just before the commit.
	commitV  workflow.Version
	auditor  releaseAudit
	notifier notifier
}

// ReleaseDeployment runs a multi-service release: each stage's services as
// child rollouts (in parallel or one by one), a service only after what it
// depends on has passed; every rollout holds once its stages pass. When all
// have passed the release commits them; on any failure it stops launching,
// cancels the rollouts still running (they roll themselves back) and rolls
// back the held ones in reverse dependency order.
func ReleaseDeployment(ctx workflow.Context, in api.ReleaseInput) (api.ReleaseStatus, error) {
	st, err := runRelease(ctx, in.Release, in.Reserved())
	if err != nil {
		return st, err
	}
	line := string(st.Outcome)
	if st.Error != "" {
		line += ": " + st.Error
	}
	return closeAs(ctx, st.Outcome, st, line)
}

// runRelease runs the release to its final status.
func runRelease(ctx workflow.Context, in spec.Release, reserved []spec.FieldError) (api.ReleaseStatus, error) {
	r := in.WithDefaults()
	info := workflow.GetInfo(ctx)
	rel := &release{root: ctx, spec: r, futures: map[string]workflow.ChildWorkflowFuture{}, cancels: map[string]workflow.CancelFunc{},
		notifier: notifier{targets: r.Notifications},
		st: api.ReleaseStatus{WorkflowID: info.WorkflowExecution.ID, RunID: info.WorkflowExecution.RunID, Name: r.Name, Environment: r.Environment,
			Phase: api.ReleaseValidating, Stages: r.Stages, StartedAt: workflow.Now(ctx)}}
	for i, s := range r.Services {
		wf, _ := api.WorkflowFor(s.Deploy.Strategy.Type)
		rel.st.Services = append(rel.st.Services, api.ServiceState{Name: s.Name, DependsOn: s.DependsOn, Stage: stageOf(r, s.Name),
			Workflow: wf, WorkflowID: r.Services[i].Deploy.WorkflowID(), State: api.ServicePending})
	}
	rel.st.StartedBy, _ = startedBy(ctx)
	// One owner per release, as per rollout target (see ownerVersion):
	// refused before anything is recorded, notified or changed.
	if id := rel.st.WorkflowID; id != r.WorkflowID() && workflow.GetVersion(ctx, ownerVersion, workflow.DefaultVersion, 1) >= 1 {
		msg := ownerProblem("release", r.Environment+"/"+r.Name, id, r.WorkflowID())
		now := workflow.Now(ctx)
		rel.st.Problems = []string{msg}
		for i := range rel.st.Services {
			rel.st.Services[i].State = api.ServiceNotStarted
		}
		rel.st.Outcome, rel.st.Error = api.OutcomeRejected, msg
		rel.st.Phase, rel.st.CompletedAt = api.ReleaseDone, &now
		workflow.GetLogger(ctx).Warn("release refused: not its owner", "error", msg)
		return rel.status(), nil
	}
	rel.version = workflow.GetVersion(ctx, releaseVersion, workflow.DefaultVersion, 1)
	if rel.version >= 1 {
		rel.auditor.start(ctx, rel.auditDirty, rel.auditCollect)
	}
	rel.searchV = workflow.GetVersion(ctx, searchVersion, workflow.DefaultVersion, 1)
	rel.startSearch(ctx)
	if err := rel.register(ctx); err != nil {
		return api.ReleaseStatus{}, err
	}
	// Validated under the rules the release started with (specBoundsVersion),
	// so a release accepted before the bounds is not refused on replay.
	rules := newRules(ctx)
	rel.rules = rules
	if err := withReserved(r.ValidateUnder(rules), reserved); err != nil {
		var ve *spec.ValidationError
		if errors.As(err, &ve) {
			for _, p := range ve.Problems {
				rel.st.Problems = append(rel.st.Problems, p.Error())
			}
		}
		for i := range rel.st.Services {
			rel.st.Services[i].State = api.ServiceNotStarted
		}
		return rel.finish(ctx, api.OutcomeRejected, "invalid release: "+err.Error()), nil
	}
	if problems, err := rel.prerequisites(ctx); err != nil || len(problems) > 0 {
		msg := "prerequisites: "
		if err != nil {
			msg += errorMessage(err)
		} else {
			msg += strings.Join(problems, "; ")
		}
		rel.st.Problems = problems
		for i := range rel.st.Services {
			rel.st.Services[i].State = api.ServiceNotStarted
		}
		return rel.finish(ctx, api.OutcomeRejected, msg), nil
	}
	if rel.version >= 1 {
		if failure := rel.prepare(ctx); failure != "" {
			dctx, _ := workflow.NewDisconnectedContext(ctx)
			rel.restoreConfig(dctx)
			for i := range rel.st.Services {
				rel.st.Services[i].State = api.ServiceNotStarted
			}
			return rel.finish(dctx, api.OutcomeRolledBack, failure), nil
		}
	}
	ready := workflow.GetSignalChannel(ctx, api.SignalServiceReady)
	workflow.Go(ctx, func(gctx workflow.Context) {
		for {
			var msg api.ServiceReady
			ready.Receive(gctx, &msg)
			if s := rel.byWorkflowID(msg.WorkflowID); s != nil && s.State == api.ServiceRunning {
				s.State = api.ServiceReadyState
			}
		}
	})
	launch, stopLaunching := workflow.WithCancel(ctx)
	deadline := workflow.NewTimerWithOptions(launch, r.Timeout.D(), workflow.TimerOptions{Summary: "release timeout"})
	workflow.Go(launch, func(gctx workflow.Context) {
		if deadline.Get(gctx, nil) == nil {
			rel.abort("release timeout " + r.Timeout.D().String() + " passed")
		}
	})

	rel.st.Phase = api.ReleaseActivating
	rel.notify(ctx, spec.EventStarted, "")
	failure := ""
	for i, stage := range r.Stages {
		rel.st.Stage = i
		if failure = rel.runStage(launch, stage); failure != "" {
			break
		}
	}
	if failure == "" {
		failure = rel.validate(launch)
	}
	if failure == "" {
		// An abort or a held service's failure may have arrived while the
		// checks ran (or after the last stage's wait): never commit past one.
		if rel.commitV = workflow.GetVersion(ctx, commitVersion, workflow.DefaultVersion, 1); rel.commitV >= 1 {
			failure = rel.commitBlocked()
		}
	}
	stopLaunching()
	if failure == "" {
		return rel.commit(ctx), nil
	}
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	return rel.rollback(dctx, failure), nil
}

// prerequisites checks, before anything changes, that every service can be
// rolled out: its platform, image and target (the Preflight activity).
func (rel *release) prerequisites(ctx workflow.Context) ([]string, error) {
	rel.st.Phase = api.ReleasePrerequisites
	var res activities.PreflightResult
	err := workflow.ExecuteActivity(preflightOptions(ctx), acts.Preflight, preflightInput(rel.spec)).Get(ctx, &res)
	return res.Problems, err
}

// preflightInput asks the Preflight activity about every service of r:
// its spec, its requirements and the release's own checks. The release and
// its preview (PreviewRelease) ask the same.
func preflightInput(r spec.Release) activities.PreflightInput {
	in := activities.PreflightInput{Checks: r.ReleaseChecks()}
	for _, s := range r.Services {
		in.Specs, in.Names = append(in.Specs, s.Deploy), append(in.Names, s.Name)
		in.Requires = append(in.Requires, s.Requires)
	}
	return in
}

// preflightOptions: the prerequisites' reads are retried for a while, and
// heartbeat while they run.
func preflightOptions(ctx workflow.Context) workflow.Context {
	actx := retried(ctx, "prerequisites", 5*time.Minute, 10*time.Second, 5)
	opts := workflow.GetActivityOptions(actx)
	opts.HeartbeatTimeout = time.Minute
	return workflow.WithActivityOptions(actx, opts)
}

// validate runs the integration checks and the production-readiness
// criteria once every service has passed, returning why the release must
// roll back, or "".
func (rel *release) validate(ctx workflow.Context) string {
	probe := func(checks []spec.Check, attempts int, interval time.Duration) (health.Round, error) {
		var round health.Round
		err := workflow.ExecuteActivity(retried(ctx, "probe", 10*time.Minute, 10*time.Second, 5), acts.Probe,
			activities.ProbeInput{Checks: checks, Attempts: attempts, Interval: interval}).Get(ctx, &round)
		return round, err
	}
	if in := rel.spec.Integration; in != nil {
		rel.st.Phase = api.ReleaseIntegrating
		round, err := probe(in.Checks, in.Attempts, in.Interval.D())
		switch {
		case rel.aborted:
			return rel.reason
		case err != nil:
			return "integration validation: " + errorMessage(err)
		}
		rel.st.Integration = &round
		if round.Verdict != health.Healthy && round.Verdict != health.Degraded {
			return "integration validation: " + round.Problem()
		}
	}
	if len(rel.spec.Readiness) == 0 {
		return ""
	}
	rel.st.Phase = api.ReleaseReadiness
	var checks []spec.Check
	for _, c := range rel.spec.Readiness {
		checks = append(checks, c.Check)
	}
	round, err := probe(checks, 1, 0)
	switch {
	case rel.aborted:
		return rel.reason
	case err != nil:
		return "production readiness: " + errorMessage(err)
	}
	rel.st.Readiness = api.Ready
	var critical []string
	for _, c := range rel.spec.Readiness {
		r := api.ReadinessResult{Name: c.Name, Category: c.Category, Severity: c.Severity, Verdict: health.NoData, Error: "no result"}
		for _, res := range round.Results {
			if res.Check == c.Name {
				r.Verdict, r.Error = res.Verdict, res.Error
			}
		}
		rel.st.ReadinessResults = append(rel.st.ReadinessResults, r)
		switch {
		case r.Verdict == health.Healthy:
		case c.Severity == spec.SeverityCritical && r.Verdict != health.Degraded:
			critical = append(critical, fmt.Sprintf("%s (%s): %s", c.Name, c.Category, r.Error))
		default:
			if rel.st.Readiness == api.Ready {
				rel.st.Readiness = api.ReadyWithWarnings
			}
		}
	}
	if len(critical) > 0 {
		rel.st.Readiness = api.NotReady
		return "production readiness: not_ready: " + strings.Join(critical, "; ")
	}
	return ""
}

// runStage starts a stage's rollouts and waits until each has passed (is
// held), returning why it failed, or "".
func (rel *release) runStage(ctx workflow.Context, stage spec.ReleaseStage) string {
	timer := workflow.NewTimerWithOptions(ctx, stage.Timeout.D(), workflow.TimerOptions{Summary: "activation " + stage.Name})
	timedOut := false
	workflow.Go(ctx, func(gctx workflow.Context) { timedOut = timer.Get(gctx, nil) == nil })
	batches := [][]string{stage.Services}
	if stage.Mode == spec.Sequential {
		batches = nil
		for _, n := range stage.Services {
			batches = append(batches, []string{n})
		}
	}
	for _, batch := range batches {
		for _, n := range batch {
			rel.start(ctx, n)
		}
		_ = workflow.Await(ctx, func() bool {
			return rel.aborted || timedOut || rel.anyFailed() || rel.allIn(batch, api.ServiceReadyState)
		})
		switch {
		case rel.aborted:
			return rel.reason
		case rel.anyFailed():
			for _, s := range rel.st.Services {
				if s.State == api.ServiceFailed {
					return fmt.Sprintf("service %s: %s", s.Name, s.Error)
				}
			}
		case timedOut && !rel.allIn(batch, api.ServiceReadyState):
			return fmt.Sprintf("%s did not pass within its activation timeout %s", stage.Name, stage.Timeout.D())
		}
	}
	return ""
}

// childMemo tells a rollout the release starts which spec rules to follow
// when they are not the ones a rollout starting now asks for: a release
// accepted before the bounds (specBoundsVersion) or the boundaries
// (specBoundariesVersion) must not see its services refused by them.
// (Replay does not compare a child's memo, so the memo a release from
// before the boundaries now sends changes no history.)
func (rel *release) childMemo() map[string]any {
	memo := map[string]any{}
	if rel.rules != spec.RulesCurrent {
		memo[memoSpecRules] = rel.rules
	}
	// Who started the release starts its rollouts, through it: the name is
	// cut so that the release's ID fits in what the trail keeps. Without a
	// name, a rollout's trail names the release (startedBy).
	if by := rel.st.StartedBy; by != "" {
		via := " (" + rel.st.WorkflowID + ")"
		memo[api.MemoStartedBy] = storableText(cutText(by, maxStoredText-len(via)) + via)
	}
	if len(memo) == 0 {
		return nil
	}
	return memo
}

// start launches a service's rollout as a child workflow.
func (rel *release) start(ctx workflow.Context, name string) {
	svc, _ := rel.spec.Service(name)
	s := rel.service(name)
	d := svc.Deploy
	if d.Environment == "" && rel.searchV >= 1 {
		d.Environment = rel.spec.Environment
	}
	cctx, cancel := workflow.WithCancel(rel.root)
	cctx = workflow.WithChildOptions(cctx, workflow.ChildWorkflowOptions{
		WorkflowID:          s.WorkflowID,
		TaskQueue:           api.TaskQueue,
		ParentClosePolicy:   enumspb.PARENT_CLOSE_POLICY_REQUEST_CANCEL,
		WaitForCancellation: true,
		StaticSummary:       fmt.Sprintf("%s in release %s", name, rel.st.WorkflowID),
		Memo:                rel.childMemo(),
	})
	f := workflow.ExecuteChildWorkflow(cctx, s.Workflow, api.RolloutInput{Spec: d, Release: rel.st.WorkflowID})
	rel.futures[name], rel.cancels[name] = f, cancel
	s.State = api.ServiceRunning
	workflow.Go(ctx, func(gctx workflow.Context) {
		dctx, _ := workflow.NewDisconnectedContext(gctx)
		var exec workflow.Execution
		if err := f.GetChildWorkflowExecution().Get(dctx, &exec); err != nil {
			s.State, s.Error = api.ServiceFailed, "start: "+errorMessage(err)
			return
		}
		s.RunID = exec.RunID
		res, err := childResult(dctx, f)
		s.Outcome = res.Outcome
		switch {
		case err != nil:
			s.Error = errorMessage(err)
		case res.Outcome != api.OutcomeSucceeded:
			s.Error = res.Error
		}
		switch {
		case s.State == api.ServiceRolledBack || s.State == api.ServiceManual:
			// The release's rollback set the state.
		case err == nil && res.Outcome == api.OutcomeSucceeded:
			s.State = api.ServiceSucceeded
		case s.Error == "":
			s.State, s.Error = api.ServiceFailed, "ended "+string(res.Outcome)
		default:
			s.State = api.ServiceFailed
		}
	})
}

// withReserved adds the workflow-only fields a release's input set
// (api.ReleaseInput.Reserved) to its validation's problems.
func withReserved(err error, reserved []spec.FieldError) error {
	if len(reserved) == 0 {
		return err
	}
	ve := &spec.ValidationError{}
	if err != nil && !errors.As(err, &ve) {
		return err
	}
	return &spec.ValidationError{Problems: append(append([]spec.FieldError(nil), ve.Problems...), reserved...)}
}

// childResult waits for a rollout's result, whether it closed Completed
// or, ending rolled_back, rollback_failed or rejected, Failed with its
// result in the failure (failedCloseVersion).
func childResult(ctx workflow.Context, f workflow.Future) (api.Result, error) {
	var res api.Result
	err := f.Get(ctx, &res)
	if err != nil && api.ResultOf(err, &res) {
		err = nil
	}
	return res, err
}

// commit tells every held rollout to finalize and waits for them.
func (rel *release) commit(ctx workflow.Context) api.ReleaseStatus {
	rel.st.Phase = api.ReleaseCommitting
	for _, s := range rel.st.Services {
		_ = workflow.SignalExternalWorkflow(ctx, s.WorkflowID, "", api.SignalCommit, nil).Get(ctx, nil)
	}
	_ = workflow.Await(ctx, func() bool { return rel.allDone() })
	for _, s := range rel.st.Services {
		if s.State != api.ServiceSucceeded {
			return rel.finish(ctx, api.OutcomeRollbackFailed, fmt.Sprintf("service %s failed to finalize after the commit: %s", s.Name, s.Error))
		}
	}
	return rel.finish(ctx, api.OutcomeSucceeded, "")
}

// rollback stops the rollouts still running (they roll themselves back),
// then rolls back the held ones in reverse dependency order: last stage
// first, and within a stage the reverse of its order, one at a time. A
// service whose rollback fails is marked for manual intervention; the rest
// still roll back.
func (rel *release) rollback(ctx workflow.Context, reason string) api.ReleaseStatus {
	rel.st.Phase = api.ReleaseRollingBack
	for i := range rel.st.Services {
		s := &rel.st.Services[i]
		switch s.State {
		case api.ServicePending:
			s.State = api.ServiceNotStarted
		case api.ServiceRunning:
			rel.cancels[s.Name]()
		}
	}
	_ = workflow.Await(ctx, func() bool {
		return !slices.ContainsFunc(rel.st.Services, func(s api.ServiceState) bool { return s.State == api.ServiceRunning })
	})
	manual := false
	for i := len(rel.spec.Stages) - 1; i >= 0; i-- {
		names := rel.spec.Stages[i].Services
		for j := len(names) - 1; j >= 0; j-- {
			s := rel.service(names[j])
			if s.State != api.ServiceReadyState {
				continue
			}
			rel.st.RollbackOrder = append(rel.st.RollbackOrder, s.Name)
			req := api.ControlRequest{By: rel.st.WorkflowID, Reason: "release rolled back: " + reason}
			// The latest run: a long rollout may have continued as new.
			err := workflow.SignalExternalWorkflow(ctx, s.WorkflowID, "", api.SignalAbort, req).Get(ctx, nil)
			var res api.Result
			if err == nil {
				res, err = childResult(ctx, rel.futures[s.Name])
			}
			s.Outcome = res.Outcome
			if err != nil || res.Outcome != api.OutcomeRolledBack {
				s.State, manual = api.ServiceManual, true
				s.Error = res.Error
				if err != nil {
					s.Error = errorMessage(err)
				}
				continue
			}
			s.State = api.ServiceRolledBack
		}
	}
	if rel.version >= 1 && !rel.restoreConfig(ctx) {
		manual = true
	}
	if manual || slices.ContainsFunc(rel.st.Services, func(s api.ServiceState) bool { return s.Outcome == api.OutcomeRollbackFailed }) {
		return rel.finish(ctx, api.OutcomeRollbackFailed, reason+"; some services need manual intervention")
	}
	return rel.finish(ctx, api.OutcomeRolledBack, reason)
}

func (rel *release) finish(ctx workflow.Context, o api.Outcome, msg string) api.ReleaseStatus {
	now := workflow.Now(ctx)
	rel.st.Phase, rel.st.Outcome, rel.st.Error, rel.st.CompletedAt = api.ReleaseDone, o, msg, &now
	workflow.GetLogger(ctx).Info("release finished", "release", rel.st.WorkflowID, "outcome", string(o), "error", msg)
	rel.notify(ctx, string(o), msg)
	rel.notifier.settle(ctx)
	rel.auditor.end(ctx, &rel.notifier)
	return rel.status()
}

// register installs the status query and the pause, resume and abort
// controls, which pause and resume pass on to the running rollouts. Each is
// a signal and (from releaseVersion) an update of the same name, whose
// validator rejects an illegal transition before it reaches the history.
func (rel *release) register(ctx workflow.Context) error {
	rel.byV = workflow.GetVersion(ctx, byVersion, workflow.DefaultVersion, 1)
	rel.boundsV = workflow.GetVersion(ctx, boundsVersion, workflow.DefaultVersion, 1)
	if err := workflow.SetQueryHandlerWithOptions(ctx, api.QueryStatus, func() (api.ReleaseStatus, error) { return rel.status(), nil },
		workflow.QueryHandlerOptions{Description: "The release's services with their states, its phase and the control log"}); err != nil {
		return err
	}
	for _, action := range []string{api.SignalPause, api.SignalResume, api.SignalAbort} {
		ch := workflow.GetSignalChannel(ctx, action)
		workflow.Go(ctx, func(gctx workflow.Context) {
			for {
				var req api.ControlRequest
				ch.Receive(gctx, &req)
				rel.control(gctx, action, req, "signal")
			}
		})
		if rel.version < 1 {
			continue
		}
		err := workflow.SetUpdateHandlerWithOptions(ctx, action,
			func(uctx workflow.Context, req api.ControlRequest) (api.ReleaseStatus, error) {
				rel.control(uctx, action, req, "update")
				return rel.status(), nil
			},
			workflow.UpdateHandlerOptions{
				Validator: func(req api.ControlRequest) error {
					if err := api.CheckBy(req.By); err != nil {
						return err
					}
					if err := api.CheckReason(req.Reason); err != nil {
						return err
					}
					return rel.check(action)
				},
				Description: fmt.Sprintf("%s the release and its running rollouts; rejected when the transition is illegal", action),
			})
		if err != nil {
			return err
		}
	}
	return nil
}

// check says whether action is legal now.
func (rel *release) check(action string) error {
	switch {
	case rel.st.Phase == api.ReleaseDone:
		return fmt.Errorf("cannot %s: release %s is finished (%s)", action, rel.st.WorkflowID, rel.st.Outcome)
	case rel.st.Phase == api.ReleaseRollingBack:
		return fmt.Errorf("cannot %s: release %s is rolling back", action, rel.st.WorkflowID)
	case rel.aborted:
		return fmt.Errorf("cannot %s: release %s is already aborting", action, rel.st.WorkflowID)
	case action == api.SignalAbort && rel.st.Phase == api.ReleaseCommitting && rel.commitV >= 1:
		return fmt.Errorf("cannot abort: release %s: %s", rel.st.WorkflowID, committingRefusal)
	case action == api.SignalPause && rel.st.Paused:
		return fmt.Errorf("cannot pause: release %s is already paused", rel.st.WorkflowID)
	case action == api.SignalResume && !rel.st.Paused:
		return fmt.Errorf("cannot resume: release %s is not paused", rel.st.WorkflowID)
	}
	return nil
}

func (rel *release) control(ctx workflow.Context, action string, req api.ControlRequest, via string) {
	if rel.byV >= 1 {
		req.By = api.ShownBy(req.By)
	}
	if rel.boundsV >= 1 {
		req.Reason = api.KeptReason(req.Reason)
	}
	rec := api.ControlRecord{Action: action, Via: via, By: req.By, Reason: req.Reason, At: workflow.Now(ctx), Accepted: true}
	// A signal is judged as an update's validator judges it
	// (boundsVersion): a pause of a paused release, say, is recorded
	// refused, and neither passed on to its rollouts nor notified.
	refusal := ""
	if rel.boundsV >= 1 {
		if err := rel.check(action); err != nil {
			refusal = err.Error()
		}
	}
	switch {
	case rel.st.Phase == api.ReleaseDone || rel.st.Phase == api.ReleaseRollingBack:
		rec.Accepted, rec.Error = false, "the release is "+rel.st.Phase
	case action == api.SignalAbort && rel.st.Phase == api.ReleaseCommitting && rel.commitV >= 1:
		rec.Accepted, rec.Error = false, committingRefusal
	case refusal != "":
		rec.Accepted, rec.Error = false, refusal
	case action == api.SignalAbort:
		rel.abort(describe(req))
	default:
		rel.st.Paused = action == api.SignalPause
		for _, s := range rel.st.Services {
			if s.State == api.ServiceRunning {
				workflow.SignalExternalWorkflow(ctx, s.WorkflowID, "", action, req)
			}
		}
		if action == api.SignalPause && rel.notifier.mayNotifyPause(rel.boundsV >= 1) {
			rel.notify(ctx, spec.EventPaused, describe(req))
		}
	}
	rel.keepControl(ctx, rec)
}

// keepControl adds rec to the release's control log (keepLatest).
func (rel *release) keepControl(ctx workflow.Context, rec api.ControlRecord) {
	rel.st.Controls = append(rel.st.Controls, rec)
	if rel.boundsV >= 1 {
		keepLatest(&rel.st.Controls, &rel.st.ControlsOmitted, rel.auditor.on, &rel.auditor.controls, func() { rel.auditCollect(ctx) })
	}
}

func (rel *release) abort(reason string) {
	if !rel.aborted {
		rel.aborted, rel.reason = true, "aborted: "+reason
	}
}

func (rel *release) status() api.ReleaseStatus {
	st := rel.st
	st.Services = slices.Clone(rel.st.Services)
	st.Controls = slices.Clone(rel.st.Controls)
	st.RollbackOrder = slices.Clone(rel.st.RollbackOrder)
	st.Config = slices.Clone(rel.st.Config)
	return st
}

func (rel *release) service(name string) *api.ServiceState {
	for i := range rel.st.Services {
		if rel.st.Services[i].Name == name {
			return &rel.st.Services[i]
		}
	}
	return nil
}

func (rel *release) byWorkflowID(id string) *api.ServiceState {
	for i := range rel.st.Services {
		if rel.st.Services[i].WorkflowID == id {
			return &rel.st.Services[i]
		}
	}
	return nil
}

func (rel *release) anyFailed() bool {
	return slices.ContainsFunc(rel.st.Services, func(s api.ServiceState) bool { return s.State == api.ServiceFailed })
}

func (rel *release) allIn(names []string, state string) bool {
	for _, n := range names {
		if rel.service(n).State != state {
			return false
		}
	}
	return true
}

func (rel *release) allDone() bool {
	return !slices.ContainsFunc(rel.st.Services, func(s api.ServiceState) bool {
		return s.State == api.ServiceRunning || s.State == api.ServiceReadyState
	})
}

func stageOf(r spec.Release, name string) int {
	for i, st := range r.Stages {
		if slices.Contains(st.Services, name) {
			return i
		}
	}
	return -1
}
