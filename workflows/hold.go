package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/stagecraft/stagecraft/activities"
	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/platform"
)

// holdVersion: a rollout that ends rollback_failed holds its target
// (activities.Hold): the next rollout, whoever starts it, is refused by
// Prepare until an operator clears the hold (ClearHoldWorkflow).
const holdVersion = "hold-20261203"

// hold marks the target held after the rollback failed. It runs on the
// rollback's disconnected context and retries for a long while: a target
// left unmarked is what this exists to prevent. If it still fails, the
// outcome says so.
func (r *rollout) hold(ctx workflow.Context, msg string) string {
	if workflow.GetVersion(ctx, holdVersion, workflow.DefaultVersion, 1) < 1 {
		return msg
	}
	in := activities.HoldInput{Spec: r.spec, Hold: platform.Hold{Target: r.spec.TargetKey(),
		WorkflowID: r.st.WorkflowID, RunID: r.st.RunID, At: workflow.Now(ctx), Reason: msg}}
	err := workflow.ExecuteActivity(beating(retried(ctx, "hold target", 2*time.Minute, time.Minute, 30)), acts.Hold, in).Get(ctx, nil)
	if err != nil {
		workflow.GetLogger(ctx).Error("target not held after a failed rollback", "target", r.spec.TargetKey(), "error", err)
		return msg + "; the target could not be marked held (" + errorMessage(err) + "): check it before the next rollout"
	}
	return msg + "; target held until cleared (starter clear " + r.spec.TargetKey() + ")"
}

// ClearHold clears the hold a failed rollback left on a target, recording
// who cleared it and why in the audit trail.
func ClearHold(ctx workflow.Context, req api.ClearHoldRequest) (api.ClearHoldResult, error) {
	s := req.Spec
	res := api.ClearHoldResult{Target: s.TargetKey(), By: req.By, Reason: req.Reason}
	info := workflow.GetInfo(ctx)
	st := api.Status{WorkflowID: info.WorkflowExecution.ID, RunID: info.WorkflowExecution.RunID, Service: s.Service,
		Platform: s.PlatformName(), Target: s.TargetKey(), Strategy: api.ClearHoldWorkflow, Phase: api.PhasePending,
		StartedAt: workflow.Now(ctx)}
	// status answers like a rollout's, so status and watch of the target's
	// ID say what its latest run did.
	if err := workflow.SetQueryHandler(ctx, api.QueryStatus, func() (api.Status, error) { return st, nil }); err != nil {
		return res, err
	}
	// As a rollout's (ownerVersion): asked only when the IDs differ, so a
	// replay under the replayer's own ID finds no marker and goes on.
	// refused ends the status with why, as a failed clear does.
	refused := func(err error) (api.ClearHoldResult, error) {
		now := workflow.Now(ctx)
		st.Phase, st.CompletedAt, st.Error = api.PhaseDone, &now, errorMessage(err)
		return res, err
	}
	if id := info.WorkflowExecution.ID; id != s.WorkflowID() && workflow.GetVersion(ctx, ownerVersion, workflow.DefaultVersion, 1) >= 1 {
		return refused(fmt.Errorf("%s", ownerProblem("clear", s.TargetKey(), id, s.WorkflowID())))
	}
	if req.Reason == "" {
		return refused(fmt.Errorf("clear %s: a reason is required (it is kept in the audit trail)", s.TargetKey()))
	}
	if workflow.GetVersion(ctx, byVersion, workflow.DefaultVersion, 1) >= 1 {
		req.By = api.ShownBy(req.By)
		res.By = req.By
	}
	if workflow.GetVersion(ctx, boundsVersion, workflow.DefaultVersion, 1) >= 1 {
		req.Reason = api.KeptReason(req.Reason)
		res.Reason = req.Reason
		if strings.TrimSpace(req.Reason) == "" {
			return refused(fmt.Errorf("clear %s: a reason is required (it is kept in the audit trail); only NUL or blank characters were given", s.TargetKey()))
		}
	}
	var out activities.ClearResult
	in := activities.ClearInput{Spec: s, Reason: req.Reason, By: req.By, At: workflow.Now(ctx)}
	err := workflow.ExecuteActivity(beating(retried(ctx, "clear hold", 2*time.Minute, 10*time.Second, 10)), acts.ClearHold, in).Get(ctx, &out)
	if err != nil {
		return refused(err)
	}
	now := workflow.Now(ctx)
	st.Phase, st.CompletedAt = api.PhaseDone, &now
	res.Cleared = out.Cleared
	return res, nil
}
