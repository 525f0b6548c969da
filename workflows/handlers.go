package workflows

import (
	"errors"
	"fmt"

	"go.temporal.io/sdk/workflow"

	"github.com/stagecraft/stagecraft/internal/spec"
)

// controls are the actions an operator may take, each as a signal and as an
// update of the same name; both go through rollout.control.
var controls = []string{SignalPause, SignalResume, SignalAbort, SignalPromote, SignalApprove}

// register installs the status query and the control signals and updates.
func (r *rollout) register(ctx workflow.Context) error {
	if err := workflow.SetQueryHandlerWithOptions(ctx, QueryStatus, func() (Status, error) {
		return r.status(), nil
	}, workflow.QueryHandlerOptions{Description: "The rollout's plan, every stage and the control log"}); err != nil {
		return err
	}
	for _, action := range controls {
		ch := workflow.GetSignalChannel(ctx, action)
		workflow.Go(ctx, func(gctx workflow.Context) {
			for {
				var req ControlRequest
				ch.Receive(gctx, &req)
				_, _ = r.control(gctx, action, req, "signal")
			}
		})
		err := workflow.SetUpdateHandlerWithOptions(ctx, action,
			func(uctx workflow.Context, req ControlRequest) (Status, error) {
				return r.control(uctx, action, req, "update")
			},
			workflow.UpdateHandlerOptions{
				Validator:   func(req ControlRequest) error { return r.check(action) },
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
	case r.st.Phase == PhaseDone:
		return fmt.Errorf("cannot %s: rollout %s is finished (%s)", action, r.st.WorkflowID, r.st.Outcome)
	case r.rollingBack:
		return fmt.Errorf("cannot %s: rollout %s is rolling back", action, r.st.WorkflowID)
	case r.aborted:
		return fmt.Errorf("cannot %s: rollout %s is already aborting", action, r.st.WorkflowID)
	}
	switch action {
	case SignalPause:
		if r.paused {
			return errors.New("cannot pause: rollout is already paused")
		}
		if r.promoted {
			return errors.New("cannot pause: rollout was promoted")
		}
	case SignalResume:
		if !r.paused {
			return errors.New("cannot resume: rollout is not paused")
		}
	case SignalPromote:
		if r.promoted {
			return errors.New("cannot promote: rollout is already promoted")
		}
	case SignalAbort:
	case SignalApprove:
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
func (r *rollout) control(ctx workflow.Context, action string, req ControlRequest, via string) (Status, error) {
	rec := ControlRecord{Action: action, Via: via, Reason: req.Reason, By: req.By, At: workflow.Now(ctx)}
	if err := r.check(action); err != nil {
		rec.Error = err.Error()
		r.st.Controls = append(r.st.Controls, rec)
		workflow.GetLogger(ctx).Warn("control rejected", "action", action, "via", via, "error", err)
		return r.status(), err
	}
	rec.Accepted = true
	r.st.Controls = append(r.st.Controls, rec)
	switch action {
	case SignalPause:
		r.paused = true
		r.st.Paused = true
		r.notify(ctx, spec.EventPaused, describe(req))
	case SignalResume:
		r.paused = false
		r.st.Paused = false
		// Resuming a pause the health policy took accepts degradation
		// for the rest of the rollout.
		r.acceptDegraded = r.acceptDegraded || r.healthPaused
	case SignalPromote:
		r.promoted, r.paused = true, false
		r.st.Promoted, r.st.Paused = true, false
		r.promotedBy, r.promotedAt = req, rec.At
	case SignalApprove:
		r.approve(ctx, req)
	case SignalAbort:
		r.aborted = true
		r.abortReason = describe(req)
		if r.cancelStage != nil {
			r.cancelStage()
		}
	}
	r.wake.SendAsync(struct{}{})
	workflow.GetLogger(ctx).Info("control applied", "action", action, "via", via, "by", req.By, "reason", req.Reason)
	return r.status(), nil
}

// status is the state as callers see it: a paused rollout says so.
func (r *rollout) status() Status {
	st := r.st
	st.Phase = r.phase()
	st.Stages = append([]StageRecord(nil), r.st.Stages...)
	st.Controls = append([]ControlRecord(nil), r.st.Controls...)
	return st
}

// phase is the phase callers see: a paused rollout says so.
func (r *rollout) phase() Phase {
	if r.paused && (r.st.Phase == PhaseDeploying || r.st.Phase == PhaseValidating) {
		return PhasePaused
	}
	return r.st.Phase
}

func describe(req ControlRequest) string {
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
	w.RegisterWorkflowWithOptions(CanaryDeployment, workflow.RegisterOptions{Name: CanaryWorkflow})
	w.RegisterWorkflowWithOptions(BlueGreenDeployment, workflow.RegisterOptions{Name: BlueGreenWorkflow})
	w.RegisterWorkflowWithOptions(RollingDeployment, workflow.RegisterOptions{Name: RollingWorkflow})
	w.RegisterWorkflowWithOptions(RecreateDeployment, workflow.RegisterOptions{Name: RecreateWorkflow})
	w.RegisterWorkflowWithOptions(ReleaseDeployment, workflow.RegisterOptions{Name: ReleaseWorkflow})
	w.RegisterWorkflowWithOptions(ClearHold, workflow.RegisterOptions{Name: ClearHoldWorkflow})
	w.RegisterWorkflowWithOptions(AuditTrail, workflow.RegisterOptions{Name: AuditTrailWorkflow})
}
