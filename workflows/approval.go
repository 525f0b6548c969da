package workflows

import (
	"fmt"

	"go.temporal.io/sdk/workflow"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// gateVersion: a promote while a gate is open approves it (recorded as the
// promoter's approval), and a pause taken while a gate waits holds the
// stage after it is approved.
const gateVersion = "approval-gate-20261203"

// awaitApproval holds stage i, before it starts, until an operator
// approves it (the approve update or signal, or a promote), an abort, or
// the approval timeout: then the spec's onTimeout aborts (the rollout rolls
// back) or proceeds. The wait is a durable timer, so it survives restarts.
func (r *rollout) awaitApproval(ctx workflow.Context, i int) error {
	a := r.spec.Approval
	r.gateV = workflow.GetVersion(ctx, gateVersion, workflow.DefaultVersion, 1)
	stage := r.plan.Stages[i]
	now := workflow.Now(ctx)
	r.st.Approvals = append(r.st.Approvals, api.ApprovalRecord{Stage: i, Name: stage.Name, RequestedAt: now,
		Deadline: now.Add(a.Timeout.D()), OnTimeout: a.OnTimeout})
	r.approved = false
	prev := r.st.Phase
	r.st.Phase, r.st.CurrentStage = api.PhaseAwaitingApproval, i
	r.notify(ctx, spec.EventApprovalNeeded, fmt.Sprintf("%s waits for approval until %s, then %s",
		stage.Name, now.Add(a.Timeout.D()).UTC().Format("2006-01-02 15:04:05 UTC"), a.OnTimeout))
	err := r.inStage(ctx, func(sctx workflow.Context) error {
		timer := workflow.NewTimerWithOptions(sctx, a.Timeout.D(), workflow.TimerOptions{Summary: "approval " + stage.Name})
		return r.waitWoken(sctx, timer, nil, func(w woken) (bool, error) {
			switch {
			case r.approved:
				return true, nil
			case r.promoted && r.gateV >= 1:
				// Promote approves what is left, the open gate too.
				rec := &r.st.Approvals[len(r.st.Approvals)-1]
				at := r.promotedAt
				rec.ApprovedBy, rec.Reason, rec.ApprovedAt, rec.Via = r.promotedBy.By, r.promotedBy.Reason, &at, api.SignalPromote
				return true, nil
			case w.err != nil:
				return true, w.err
			case w.fired:
				rec := &r.st.Approvals[len(r.st.Approvals)-1]
				rec.TimedOut = true
				if a.OnTimeout == spec.OnTimeoutProceed {
					return true, nil
				}
				return true, causedBy(causeApprovalTimeout, fmt.Errorf("approval of %s not given within %s", stage.Name, a.Timeout.D()))
			}
			return false, nil
		})
	})
	if r.st.Phase == api.PhaseAwaitingApproval {
		r.st.Phase = prev
	}
	return err
}

// openApproval is the approval gate that waits now, or nil.
func (r *rollout) openApproval() *api.ApprovalRecord {
	if n := len(r.st.Approvals); n > 0 && r.st.Approvals[n-1].Open() && r.st.Phase == api.PhaseAwaitingApproval {
		return &r.st.Approvals[n-1]
	}
	return nil
}

// approve records who approved the open gate and why.
func (r *rollout) approve(ctx workflow.Context, req api.ControlRequest) {
	a := r.openApproval()
	now := workflow.Now(ctx)
	a.ApprovedBy, a.Reason, a.ApprovedAt, a.Via = req.By, req.Reason, &now, api.SignalApprove
	r.approved = true
}
