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
	"github.com/stagecraft/stagecraft/internal/health"
	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// ReleaseWorkflow is the workflow type of a multi-service release.
const ReleaseWorkflow = "Release"

// Signals between a release and its rollouts.
const (
	// SignalServiceReady: a release's rollout passed every stage.
	SignalServiceReady = "service-ready"
	// SignalCommit: the release succeeded; the rollout finalizes.
	SignalCommit = "commit"
)

// ServiceReady is what a rollout reports to its release.
type ServiceReady struct {
	WorkflowID string `json:"workflowId"`
	RunID      string `json:"runId"`
}

// Release phases and service states.
const (
	ReleaseValidating    = "validating"
	ReleasePrerequisites = "prerequisites"
	ReleaseActivating    = "activating"
	ReleaseIntegrating   = "integration_validation"
	ReleaseReadiness     = "production_readiness"
	ReleaseCommitting    = "committing"
	ReleaseRollingBack   = "rolling_back"
	ReleaseDone          = "done"

	ServicePending    = "pending"     // not started yet
	ServiceRunning    = "running"     // its rollout runs its stages
	ServiceReadyState = "ready"       // every stage passed; held for the release
	ServiceSucceeded  = "succeeded"   // committed and finalized
	ServiceFailed     = "failed"      // its rollout failed (and rolled itself back)
	ServiceRolledBack = "rolled_back" // rolled back by the release
	ServiceManual     = "needs_manual_intervention"
	ServiceNotStarted = "not_started" // the release stopped before it
)

// ServiceState is one service of a release as the status query shows it.
type ServiceState struct {
	Name       string   `json:"name"`
	DependsOn  []string `json:"dependsOn,omitempty"`
	Stage      int      `json:"stage"`
	Workflow   string   `json:"workflow"`
	WorkflowID string   `json:"workflowId"`
	RunID      string   `json:"runId,omitempty"`
	State      string   `json:"state"`
	Outcome    Outcome  `json:"outcome,omitempty"`
	Error      string   `json:"error,omitempty"`
}

// ReleaseStatus is a release's state; the final one is its result.
type ReleaseStatus struct {
	WorkflowID  string              `json:"workflowId"`
	RunID       string              `json:"runId,omitempty"`
	Name        string              `json:"name"`
	Environment string              `json:"environment"`
	Phase       string              `json:"phase"`
	Paused      bool                `json:"paused,omitempty"`
	Stage       int                 `json:"stage"`
	Stages      []spec.ReleaseStage `json:"stages"`
	Services    []ServiceState      `json:"services"`
	// Integration is the last round of the integration checks.
	Integration *health.Round `json:"integration,omitempty"`
	// Readiness is ready, ready_with_warnings or not_ready, with each
	// criterion's result.
	Readiness        string            `json:"readiness,omitempty"`
	ReadinessResults []ReadinessResult `json:"readinessResults,omitempty"`
	// Config is the configuration the release prepared, per service: the
	// ConfigMap it wrote, the ones the pods used before, and on rollback
	// whether it was removed. ConfigError says why restoring it failed.
	Config      []platform.ConfigResult `json:"config,omitempty"`
	ConfigError string                  `json:"configError,omitempty"`
	// RollbackOrder lists the services the release rolled back, in order.
	RollbackOrder []string        `json:"rollbackOrder,omitempty"`
	Controls      []ControlRecord `json:"controls,omitempty"`
	StartedAt     time.Time       `json:"startedAt"`
	CompletedAt   *time.Time      `json:"completedAt,omitempty"`
	Outcome       Outcome         `json:"outcome,omitempty"`
	Error         string          `json:"error,omitempty"`
	Problems      []string        `json:"problems,omitempty"`
}

// Readiness verdicts.
const (
	Ready             = "ready"
	ReadyWithWarnings = "ready_with_warnings"
	NotReady          = "not_ready"
)

// ReadinessResult is one readiness criterion's result.
type ReadinessResult struct {
	Name     string         `json:"name"`
	Category string         `json:"category"`
	Severity string         `json:"severity"`
	Verdict  health.Verdict `json:"verdict"`
	Error    string         `json:"error,omitempty"`
}

type release struct {
	// root is the workflow's context: rollouts run on it, not on the
	// launching context that a failure cancels.
	root workflow.Context
	st   ReleaseStatus
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
	// commitV is commitVersion's, taken just before the commit.
	commitV workflow.Version
	au      releaseAudit
	nt      notifier
}

// ReleaseDeployment runs a multi-service release: each stage's services as
// child rollouts (in parallel or one by one), a service only after what it
// depends on has passed; every rollout holds once its stages pass. When all
// have passed the release commits them; on any failure it stops launching,
// cancels the rollouts still running (they roll themselves back) and rolls
// back the held ones in reverse dependency order.
func ReleaseDeployment(ctx workflow.Context, in spec.Release) (ReleaseStatus, error) {
	r := in.WithDefaults()
	info := workflow.GetInfo(ctx)
	rel := &release{root: ctx, spec: r, futures: map[string]workflow.ChildWorkflowFuture{}, cancels: map[string]workflow.CancelFunc{},
		nt: notifier{targets: r.Notifications},
		st: ReleaseStatus{WorkflowID: info.WorkflowExecution.ID, RunID: info.WorkflowExecution.RunID, Name: r.Name, Environment: r.Environment,
			Phase: ReleaseValidating, Stages: r.Stages, StartedAt: workflow.Now(ctx)}}
	for i, s := range r.Services {
		wf, _ := WorkflowFor(s.Deploy.Strategy.Type)
		rel.st.Services = append(rel.st.Services, ServiceState{Name: s.Name, DependsOn: s.DependsOn, Stage: stageOf(r, s.Name),
			Workflow: wf, WorkflowID: r.Services[i].Deploy.WorkflowID(), State: ServicePending})
	}
	// One owner per release, as per rollout target (see ownerVersion):
	// refused before anything is recorded, notified or changed.
	if id := rel.st.WorkflowID; id != r.WorkflowID() && workflow.GetVersion(ctx, ownerVersion, workflow.DefaultVersion, 1) >= 1 {
		msg := ownerProblem("release", r.Environment+"/"+r.Name, id, r.WorkflowID())
		now := workflow.Now(ctx)
		rel.st.Problems = []string{msg}
		for i := range rel.st.Services {
			rel.st.Services[i].State = ServiceNotStarted
		}
		rel.st.Outcome, rel.st.Error = OutcomeRejected, msg
		rel.st.Phase, rel.st.CompletedAt = ReleaseDone, &now
		workflow.GetLogger(ctx).Warn("release refused: not its owner", "error", msg)
		return rel.status(), nil
	}
	rel.version = workflow.GetVersion(ctx, releaseVersion, workflow.DefaultVersion, 1)
	if rel.version >= 1 {
		rel.au.start(ctx, rel.auditDirty, rel.auditCollect)
	}
	rel.searchV = workflow.GetVersion(ctx, searchVersion, workflow.DefaultVersion, 1)
	rel.startSearch(ctx)
	if err := rel.register(ctx); err != nil {
		return ReleaseStatus{}, err
	}
	// Validated under the rules the release started with (specBoundsVersion),
	// so a release accepted before the bounds is not refused on replay.
	rules := newRules(ctx)
	rel.rules = rules
	if err := r.ValidateUnder(rules); err != nil {
		var ve *spec.ValidationError
		if errors.As(err, &ve) {
			for _, p := range ve.Problems {
				rel.st.Problems = append(rel.st.Problems, p.Error())
			}
		}
		for i := range rel.st.Services {
			rel.st.Services[i].State = ServiceNotStarted
		}
		return rel.finish(ctx, OutcomeRejected, "invalid release: "+err.Error()), nil
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
			rel.st.Services[i].State = ServiceNotStarted
		}
		return rel.finish(ctx, OutcomeRejected, msg), nil
	}
	if rel.version >= 1 {
		if failure := rel.prepare(ctx); failure != "" {
			dctx, _ := workflow.NewDisconnectedContext(ctx)
			rel.restoreConfig(dctx)
			for i := range rel.st.Services {
				rel.st.Services[i].State = ServiceNotStarted
			}
			return rel.finish(dctx, OutcomeRolledBack, failure), nil
		}
	}
	ready := workflow.GetSignalChannel(ctx, SignalServiceReady)
	workflow.Go(ctx, func(gctx workflow.Context) {
		for {
			var msg ServiceReady
			ready.Receive(gctx, &msg)
			if s := rel.byWorkflowID(msg.WorkflowID); s != nil && s.State == ServiceRunning {
				s.State = ServiceReadyState
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

	rel.st.Phase = ReleaseActivating
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
	rel.st.Phase = ReleasePrerequisites
	in := activities.PreflightInput{Checks: rel.spec.ReleaseChecks()}
	for _, s := range rel.spec.Services {
		in.Specs, in.Names = append(in.Specs, s.Deploy), append(in.Names, s.Name)
		in.Requires = append(in.Requires, s.Requires)
	}
	actx := retried(ctx, "prerequisites", 5*time.Minute, 10*time.Second, 5)
	opts := workflow.GetActivityOptions(actx)
	opts.HeartbeatTimeout = time.Minute
	var res activities.PreflightResult
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(actx, opts), acts.Preflight, in).Get(ctx, &res)
	return res.Problems, err
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
		rel.st.Phase = ReleaseIntegrating
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
	rel.st.Phase = ReleaseReadiness
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
	rel.st.Readiness = Ready
	var critical []string
	for _, c := range rel.spec.Readiness {
		r := ReadinessResult{Name: c.Name, Category: c.Category, Severity: c.Severity, Verdict: health.NoData, Error: "no result"}
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
			if rel.st.Readiness == Ready {
				rel.st.Readiness = ReadyWithWarnings
			}
		}
	}
	if len(critical) > 0 {
		rel.st.Readiness = NotReady
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
			return rel.aborted || timedOut || rel.anyFailed() || rel.allIn(batch, ServiceReadyState)
		})
		switch {
		case rel.aborted:
			return rel.reason
		case rel.anyFailed():
			for _, s := range rel.st.Services {
				if s.State == ServiceFailed {
					return fmt.Sprintf("service %s: %s", s.Name, s.Error)
				}
			}
		case timedOut && !rel.allIn(batch, ServiceReadyState):
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
	if rel.rules == spec.RulesCurrent {
		return nil
	}
	return map[string]any{memoSpecRules: rel.rules}
}

// start launches a service's rollout as a child workflow.
func (rel *release) start(ctx workflow.Context, name string) {
	svc, _ := rel.spec.Service(name)
	s := rel.service(name)
	d := svc.Deploy
	d.Release = rel.st.WorkflowID
	if d.Environment == "" && rel.searchV >= 1 {
		d.Environment = rel.spec.Environment
	}
	cctx, cancel := workflow.WithCancel(rel.root)
	cctx = workflow.WithChildOptions(cctx, workflow.ChildWorkflowOptions{
		WorkflowID:          s.WorkflowID,
		TaskQueue:           TaskQueue,
		ParentClosePolicy:   enumspb.PARENT_CLOSE_POLICY_REQUEST_CANCEL,
		WaitForCancellation: true,
		StaticSummary:       fmt.Sprintf("%s in release %s", name, rel.st.WorkflowID),
		Memo:                rel.childMemo(),
	})
	f := workflow.ExecuteChildWorkflow(cctx, s.Workflow, d)
	rel.futures[name], rel.cancels[name] = f, cancel
	s.State = ServiceRunning
	workflow.Go(ctx, func(gctx workflow.Context) {
		dctx, _ := workflow.NewDisconnectedContext(gctx)
		var exec workflow.Execution
		if err := f.GetChildWorkflowExecution().Get(dctx, &exec); err != nil {
			s.State, s.Error = ServiceFailed, "start: "+errorMessage(err)
			return
		}
		s.RunID = exec.RunID
		var res Result
		err := f.Get(dctx, &res)
		s.Outcome = res.Outcome
		switch {
		case err != nil:
			s.Error = errorMessage(err)
		case res.Outcome != OutcomeSucceeded:
			s.Error = res.Error
		}
		switch {
		case s.State == ServiceRolledBack || s.State == ServiceManual:
			// The release's rollback set the state.
		case err == nil && res.Outcome == OutcomeSucceeded:
			s.State = ServiceSucceeded
		case s.Error == "":
			s.State, s.Error = ServiceFailed, "ended "+string(res.Outcome)
		default:
			s.State = ServiceFailed
		}
	})
}

// commit tells every held rollout to finalize and waits for them.
func (rel *release) commit(ctx workflow.Context) ReleaseStatus {
	rel.st.Phase = ReleaseCommitting
	for _, s := range rel.st.Services {
		_ = workflow.SignalExternalWorkflow(ctx, s.WorkflowID, "", SignalCommit, nil).Get(ctx, nil)
	}
	_ = workflow.Await(ctx, func() bool { return rel.allDone() })
	for _, s := range rel.st.Services {
		if s.State != ServiceSucceeded {
			return rel.finish(ctx, OutcomeRollbackFailed, fmt.Sprintf("service %s failed to finalize after the commit: %s", s.Name, s.Error))
		}
	}
	return rel.finish(ctx, OutcomeSucceeded, "")
}

// rollback stops the rollouts still running (they roll themselves back),
// then rolls back the held ones in reverse dependency order: last stage
// first, and within a stage the reverse of its order, one at a time. A
// service whose rollback fails is marked for manual intervention; the rest
// still roll back.
func (rel *release) rollback(ctx workflow.Context, reason string) ReleaseStatus {
	rel.st.Phase = ReleaseRollingBack
	for i := range rel.st.Services {
		s := &rel.st.Services[i]
		switch s.State {
		case ServicePending:
			s.State = ServiceNotStarted
		case ServiceRunning:
			rel.cancels[s.Name]()
		}
	}
	_ = workflow.Await(ctx, func() bool {
		return !slices.ContainsFunc(rel.st.Services, func(s ServiceState) bool { return s.State == ServiceRunning })
	})
	manual := false
	for i := len(rel.spec.Stages) - 1; i >= 0; i-- {
		names := rel.spec.Stages[i].Services
		for j := len(names) - 1; j >= 0; j-- {
			s := rel.service(names[j])
			if s.State != ServiceReadyState {
				continue
			}
			rel.st.RollbackOrder = append(rel.st.RollbackOrder, s.Name)
			req := ControlRequest{By: rel.st.WorkflowID, Reason: "release rolled back: " + reason}
			// The latest run: a long rollout may have continued as new.
			err := workflow.SignalExternalWorkflow(ctx, s.WorkflowID, "", SignalAbort, req).Get(ctx, nil)
			var res Result
			if err == nil {
				err = rel.futures[s.Name].Get(ctx, &res)
			}
			s.Outcome = res.Outcome
			if err != nil || res.Outcome != OutcomeRolledBack {
				s.State, manual = ServiceManual, true
				s.Error = res.Error
				if err != nil {
					s.Error = errorMessage(err)
				}
				continue
			}
			s.State = ServiceRolledBack
		}
	}
	if rel.version >= 1 && !rel.restoreConfig(ctx) {
		manual = true
	}
	if manual || slices.ContainsFunc(rel.st.Services, func(s ServiceState) bool { return s.Outcome == OutcomeRollbackFailed }) {
		return rel.finish(ctx, OutcomeRollbackFailed, reason+"; some services need manual intervention")
	}
	return rel.finish(ctx, OutcomeRolledBack, reason)
}

func (rel *release) finish(ctx workflow.Context, o Outcome, msg string) ReleaseStatus {
	now := workflow.Now(ctx)
	rel.st.Phase, rel.st.Outcome, rel.st.Error, rel.st.CompletedAt = ReleaseDone, o, msg, &now
	workflow.GetLogger(ctx).Info("release finished", "release", rel.st.WorkflowID, "outcome", string(o), "error", msg)
	rel.notify(ctx, string(o), msg)
	rel.nt.settle(ctx)
	rel.au.end(ctx, &rel.nt)
	return rel.status()
}

// register installs the status query and the pause, resume and abort
// controls, which pause and resume pass on to the running rollouts. Each is
// a signal and (from releaseVersion) an update of the same name, whose
// validator rejects an illegal transition before it reaches the history.
func (rel *release) register(ctx workflow.Context) error {
	if err := workflow.SetQueryHandlerWithOptions(ctx, QueryStatus, func() (ReleaseStatus, error) { return rel.status(), nil },
		workflow.QueryHandlerOptions{Description: "The release's services with their states, its phase and the control log"}); err != nil {
		return err
	}
	for _, action := range []string{SignalPause, SignalResume, SignalAbort} {
		ch := workflow.GetSignalChannel(ctx, action)
		workflow.Go(ctx, func(gctx workflow.Context) {
			for {
				var req ControlRequest
				ch.Receive(gctx, &req)
				rel.control(gctx, action, req, "signal")
			}
		})
		if rel.version < 1 {
			continue
		}
		err := workflow.SetUpdateHandlerWithOptions(ctx, action,
			func(uctx workflow.Context, req ControlRequest) (ReleaseStatus, error) {
				rel.control(uctx, action, req, "update")
				return rel.status(), nil
			},
			workflow.UpdateHandlerOptions{
				Validator:   func(req ControlRequest) error { return rel.check(action) },
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
	case rel.st.Phase == ReleaseDone:
		return fmt.Errorf("cannot %s: release %s is finished (%s)", action, rel.st.WorkflowID, rel.st.Outcome)
	case rel.st.Phase == ReleaseRollingBack:
		return fmt.Errorf("cannot %s: release %s is rolling back", action, rel.st.WorkflowID)
	case rel.aborted:
		return fmt.Errorf("cannot %s: release %s is already aborting", action, rel.st.WorkflowID)
	case action == SignalAbort && rel.st.Phase == ReleaseCommitting && rel.commitV >= 1:
		return fmt.Errorf("cannot abort: release %s: %s", rel.st.WorkflowID, committingRefusal)
	case action == SignalPause && rel.st.Paused:
		return fmt.Errorf("cannot pause: release %s is already paused", rel.st.WorkflowID)
	case action == SignalResume && !rel.st.Paused:
		return fmt.Errorf("cannot resume: release %s is not paused", rel.st.WorkflowID)
	}
	return nil
}

func (rel *release) control(ctx workflow.Context, action string, req ControlRequest, via string) {
	rec := ControlRecord{Action: action, Via: via, By: req.By, Reason: req.Reason, At: workflow.Now(ctx), Accepted: true}
	switch {
	case rel.st.Phase == ReleaseDone || rel.st.Phase == ReleaseRollingBack:
		rec.Accepted, rec.Error = false, "the release is "+rel.st.Phase
	case action == SignalAbort && rel.st.Phase == ReleaseCommitting && rel.commitV >= 1:
		rec.Accepted, rec.Error = false, committingRefusal
	case action == SignalAbort:
		rel.abort(describe(req))
	default:
		rel.st.Paused = action == SignalPause
		for _, s := range rel.st.Services {
			if s.State == ServiceRunning {
				workflow.SignalExternalWorkflow(ctx, s.WorkflowID, "", action, req)
			}
		}
		if action == SignalPause {
			rel.notify(ctx, spec.EventPaused, describe(req))
		}
	}
	rel.st.Controls = append(rel.st.Controls, rec)
}

func (rel *release) abort(reason string) {
	if !rel.aborted {
		rel.aborted, rel.reason = true, "aborted: "+reason
	}
}

func (rel *release) status() ReleaseStatus {
	st := rel.st
	st.Services = slices.Clone(rel.st.Services)
	st.Controls = slices.Clone(rel.st.Controls)
	st.RollbackOrder = slices.Clone(rel.st.RollbackOrder)
	st.Config = slices.Clone(rel.st.Config)
	return st
}

func (rel *release) service(name string) *ServiceState {
	for i := range rel.st.Services {
		if rel.st.Services[i].Name == name {
			return &rel.st.Services[i]
		}
	}
	return nil
}

func (rel *release) byWorkflowID(id string) *ServiceState {
	for i := range rel.st.Services {
		if rel.st.Services[i].WorkflowID == id {
			return &rel.st.Services[i]
		}
	}
	return nil
}

func (rel *release) anyFailed() bool {
	return slices.ContainsFunc(rel.st.Services, func(s ServiceState) bool { return s.State == ServiceFailed })
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
	return !slices.ContainsFunc(rel.st.Services, func(s ServiceState) bool {
		return s.State == ServiceRunning || s.State == ServiceReadyState
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
