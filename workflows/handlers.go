package workflows

import (
	"errors"
	"fmt"
	"slices"

	"go.temporal.io/sdk/workflow"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// controls are the actions an operator may take, each as a signal and as an
// update of the same name; both go through rollout.control.
var controls = []string{api.SignalPause, api.SignalResume, api.SignalAbort, api.SignalPromote, api.SignalApprove}

// byVersion: who acts, as a control request from any Temporal client
// names them (not only the starter, which checks it before it calls), is
// kept as api.ShownBy: one with control or invisible characters, not
// UTF-8 or past api.MaxBy bytes is quoted, escaped and cut, in the
// control log, the audit trail, notifications and the requests a release
// passes on. The action itself is applied (a signal cannot be refused,
// and an abort is the brake). An update's validator refuses such a by
// outright (validators do not run on replay, so that needs no version).
// Runs from before it, replayed or still running, keep by as sent.
const byVersion = "control-by-20261205"

// boundsVersion: why a control request was made is kept as
// api.KeptReason (at most api.MaxReason bytes of UTF-8, no NUL), and the
// control log keeps the latest api.MaxControls records, the older ones
// dropped once the audit trail has them (Status.ControlsOmitted counts
// them). Before it, one signal from any Temporal client with a reason
// near 2 MiB, or a flood of signals, grew the state every status query,
// update result, continue-as-new input and the workflow's result carry
// past Temporal's payload limit: the run could neither continue nor
// finish. An update's validator refuses a reason api.CheckReason refuses.
const boundsVersion = "control-bounds-20261205"

// register installs the status query and the control signals and updates.
func (r *rollout) register(ctx workflow.Context) error {
	r.byV = workflow.GetVersion(ctx, byVersion, workflow.DefaultVersion, 1)
	r.boundsV = workflow.GetVersion(ctx, boundsVersion, workflow.DefaultVersion, 1)
	if err := workflow.SetQueryHandlerWithOptions(ctx, api.QueryStatus, func() (api.Status, error) {
		return r.status(), nil
	}, workflow.QueryHandlerOptions{Description: "The rollout's plan, every stage and the control log"}); err != nil {
		return err
	}
	for _, action := range controls {
		ch := workflow.GetSignalChannel(ctx, action)
		workflow.Go(ctx, func(gctx workflow.Context) {
			for {
				var req api.ControlRequest
				ch.Receive(gctx, &req)
				_, _ = r.control(gctx, action, req, "signal")
			}
		})
		err := workflow.SetUpdateHandlerWithOptions(ctx, action,
			func(uctx workflow.Context, req api.ControlRequest) (api.Status, error) {
				return r.control(uctx, action, req, "update")
			},
			workflow.UpdateHandlerOptions{
				Validator: func(req api.ControlRequest) error {
					if err := api.CheckBy(req.By); err != nil {
						return err
					}
					if err := api.CheckReason(req.Reason); err != nil {
						return err
					}
					return r.check(action)
				},
				Description: fmt.Sprintf("%s the rollout; rejected when the transition is illegal", action),
			})
		if err != nil {
			return err
		}
	}
	return nil
}

// check says whether action is legal now.
func (r *rollout) check(action string) error {
	switch {
	case r.st.Phase == api.PhaseDone:
		return fmt.Errorf("cannot %s: rollout %s is finished (%s)", action, r.st.WorkflowID, r.st.Outcome)
	case r.rollingBack:
		return fmt.Errorf("cannot %s: rollout %s is rolling back", action, r.st.WorkflowID)
	case r.aborted:
		return fmt.Errorf("cannot %s: rollout %s is already aborting", action, r.st.WorkflowID)
	}
	switch action {
	case api.SignalPause:
		if r.paused {
			return errors.New("cannot pause: rollout is already paused")
		}
		if r.promoted {
			return errors.New("cannot pause: rollout was promoted")
		}
	case api.SignalResume:
		if !r.paused {
			return errors.New("cannot resume: rollout is not paused")
		}
	case api.SignalPromote:
		if r.promoted {
			return errors.New("cannot promote: rollout is already promoted")
		}
	case api.SignalAbort:
	case api.SignalApprove:
		if r.openApproval() == nil {
			return fmt.Errorf("cannot approve: rollout %s is not waiting for approval", r.st.WorkflowID)
		}
	default:
		return fmt.Errorf("unknown action %q", action)
	}
	return nil
}

// control applies an action (from a signal, an update or the deadline),
// records it, and wakes the stage loop.
func (r *rollout) control(ctx workflow.Context, action string, req api.ControlRequest, via string) (api.Status, error) {
	if r.byV >= 1 {
		req.By = api.ShownBy(req.By)
	}
	if r.boundsV >= 1 {
		req.Reason = api.KeptReason(req.Reason)
	}
	rec := api.ControlRecord{Action: action, Via: via, Reason: req.Reason, By: req.By, At: workflow.Now(ctx)}
	if err := r.check(action); err != nil {
		rec.Error = err.Error()
		r.keepControl(ctx, rec)
		workflow.GetLogger(ctx).Warn("control rejected", "action", action, "via", via, "error", err)
		return r.status(), err
	}
	rec.Accepted = true
	r.keepControl(ctx, rec)
	switch action {
	case api.SignalPause:
		r.paused = true
		r.st.Paused = true
		r.notifyPause(ctx, req)
	case api.SignalResume:
		r.paused = false
		r.st.Paused = false
		// Resuming a pause the health policy took accepts degradation
		// for the rest of the rollout.
		r.acceptDegraded = r.acceptDegraded || r.healthPaused
	case api.SignalPromote:
		r.promoted, r.paused = true, false
		r.st.Promoted, r.st.Paused = true, false
		r.promotedBy, r.promotedAt = req, rec.At
	case api.SignalApprove:
		r.approve(ctx, req)
	case api.SignalAbort:
		r.aborted = true
		r.abortReason, r.abortVia = describe(req), via
		if r.cancelStage != nil {
			r.cancelStage()
		}
	}
	r.wake.SendAsync(struct{}{})
	workflow.GetLogger(ctx).Info("control applied", "action", action, "via", via, "by", req.By, "reason", req.Reason)
	return r.status(), nil
}

// maxPauseNotices bounds the paused notifications one run sends
// (boundsVersion): every pause is applied and kept in the control log and
// the audit trail, but a flood of pause signals from any client does not
// become a flood of Notify activities, or of undelivered notifications
// handed to the trail workflow in one input.
const maxPauseNotices = 10

// notifyPause notifies an accepted pause, up to maxPauseNotices a run.
func (r *rollout) notifyPause(ctx workflow.Context, req api.ControlRequest) {
	if !r.notifier.mayNotifyPause(r.boundsV >= 1) {
		workflow.GetLogger(ctx).Warn("pause not notified: this run has sent as many paused notifications as it may", "max", maxPauseNotices)
		return
	}
	r.notify(ctx, spec.EventPaused, describe(req))
}

// mayNotifyPause says whether another paused notification may go:
// always, unless bounded (boundsVersion) and maxPauseNotices went.
func (n *notifier) mayNotifyPause(bounded bool) bool {
	return !bounded || n.sent[spec.EventPaused] < maxPauseNotices
}

// keepControl adds rec to the control log (keepLatest).
func (r *rollout) keepControl(ctx workflow.Context, rec api.ControlRecord) {
	r.st.Controls = append(r.st.Controls, rec)
	if r.boundsV >= 1 {
		keepLatest(&r.st.Controls, &r.st.ControlsOmitted, r.auditor.on, &r.auditor.controls, func() { r.auditCollect(ctx) })
	}
}

// keepLatest keeps the latest api.MaxControls records of a control log
// (boundsVersion), counting those it drops in omitted. collected is how
// many of the log the audit trail (when audited) has queued; the older
// records go only once it has them all, so collect runs first when it lags.
func keepLatest(log *[]api.ControlRecord, omitted *int, audited bool, collected *int, collect func()) {
	if len(*log) <= api.MaxControls {
		return
	}
	if audited && *collected < len(*log) {
		collect()
	}
	n := len(*log) - api.MaxControls
	*log = slices.Clone((*log)[n:])
	*omitted += n
	*collected = max(0, *collected-n)
}

// status is the state as callers see it: a paused rollout says so.
func (r *rollout) status() api.Status {
	st := r.st
	st.Phase = r.phase()
	st.Stages = append([]api.StageRecord(nil), r.st.Stages...)
	st.Controls = append([]api.ControlRecord(nil), r.st.Controls...)
	return st
}

// phase is the phase callers see: a paused rollout says so.
func (r *rollout) phase() api.Phase {
	if r.paused && (r.st.Phase == api.PhaseDeploying || r.st.Phase == api.PhaseValidating) {
		return api.PhasePaused
	}
	return r.st.Phase
}

func describe(req api.ControlRequest) string {
	s := "requested"
	if req.By != "" {
		s += " by " + req.By
	}
	if req.Reason != "" {
		s += ": " + req.Reason
	}
	return s
}

// Register registers every strategy workflow, the release workflow,
// ClearHold and AuditTrail by name.
func Register(w interface {
	RegisterWorkflowWithOptions(w interface{}, options workflow.RegisterOptions)
}) {
	w.RegisterWorkflowWithOptions(CanaryDeployment, workflow.RegisterOptions{Name: api.CanaryWorkflow})
	w.RegisterWorkflowWithOptions(BlueGreenDeployment, workflow.RegisterOptions{Name: api.BlueGreenWorkflow})
	w.RegisterWorkflowWithOptions(RollingDeployment, workflow.RegisterOptions{Name: api.RollingWorkflow})
	w.RegisterWorkflowWithOptions(RecreateDeployment, workflow.RegisterOptions{Name: api.RecreateWorkflow})
	w.RegisterWorkflowWithOptions(ReleaseDeployment, workflow.RegisterOptions{Name: api.ReleaseWorkflow})
	w.RegisterWorkflowWithOptions(ClearHold, workflow.RegisterOptions{Name: api.ClearHoldWorkflow})
	w.RegisterWorkflowWithOptions(AuditTrail, workflow.RegisterOptions{Name: AuditTrailWorkflow})
	w.RegisterWorkflowWithOptions(PreviewRollout, workflow.RegisterOptions{Name: api.PreviewWorkflow})
	w.RegisterWorkflowWithOptions(PreviewRelease, workflow.RegisterOptions{Name: api.PreviewReleaseWorkflow})
}
