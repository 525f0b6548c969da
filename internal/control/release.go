package control

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// StartRelease starts a release's workflow. The release is validated in
// full first; the workflow validates it again and rejects it with every
// problem before starting anything. One release of a name runs per
// environment at a time.
func StartRelease(ctx context.Context, c client.Client, r spec.Release) (Started, error) {
	return StartReleaseWith(ctx, c, r, StartOptions{})
}

// StartReleaseWith is StartRelease recording who starts it (opts.By, else
// the process's user@host) in the memo: the release's status and audit
// trail name them, and its rollouts' trails name them with the release.
// opts.Undo does not apply to a release.
func StartReleaseWith(ctx context.Context, c client.Client, r spec.Release, with StartOptions) (Started, error) {
	if err := api.CheckBy(with.By); err != nil {
		return Started{}, err
	}
	r = r.WithDefaults()
	if err := r.Validate(); err != nil {
		return Started{}, err
	}
	opts := client.StartWorkflowOptions{
		ID:                                       r.WorkflowID(),
		TaskQueue:                                api.TaskQueue,
		WorkflowIDConflictPolicy:                 enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		Memo:                                     map[string]any{api.MemoRequestID: r.RequestID(), api.MemoStartedBy: cmp.Or(with.By, Identity())},
		StaticSummary:                            fmt.Sprintf("release %s to %s: %d services", r.Name, r.Environment, len(r.Services)),
	}
	run, err := c.ExecuteWorkflow(ctx, opts, api.ReleaseWorkflow, r)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	switch {
	case errors.As(err, &started):
		st, err := joinRun(ctx, c, opts.ID, api.ReleaseWorkflow, r.RequestID(), nil)
		var busy *BusyError
		if !errors.As(err, &busy) || !awaitClosing(ctx, c, busy.WorkflowID, busy.RunID) {
			return st, err
		}
		// The release in the way had its outcome and has closed.
		if run, err = c.ExecuteWorkflow(ctx, opts, api.ReleaseWorkflow, r); errors.As(err, &started) {
			return joinRun(ctx, c, opts.ID, api.ReleaseWorkflow, r.RequestID(), nil)
		}
		if err != nil {
			return Started{}, fmt.Errorf("start %s: %w", opts.ID, err)
		}
	case err != nil:
		return Started{}, fmt.Errorf("start %s: %w", opts.ID, err)
	}
	return Started{WorkflowID: run.GetID(), RunID: run.GetRunID(), Workflow: api.ReleaseWorkflow}, nil
}

// ReleaseStatus queries a release's status.
func ReleaseStatus(ctx context.Context, c client.Client, workflowID string) (api.ReleaseStatus, error) {
	var st api.ReleaseStatus
	v, err := c.QueryWorkflow(ctx, workflowID, "", api.QueryStatus)
	if err != nil {
		return st, fmt.Errorf("query %s: %w", workflowID, err)
	}
	return st, v.Get(&st)
}

// WaitRelease waits for a release to end, calling progress every poll.
func WaitRelease(ctx context.Context, c client.Client, workflowID, runID string, poll time.Duration, progress func(api.ReleaseStatus)) (api.ReleaseStatus, error) {
	return waitRun(ctx, c, "release", workflowID, runID, poll, func() (bool, api.ReleaseStatus) {
		if progress != nil {
			if st, err := ReleaseStatus(ctx, c, workflowID); err == nil {
				progress(st)
			}
		}
		return false, api.ReleaseStatus{}
	})
}

// ActRelease pauses, resumes or aborts a release (an update; pause and
// resume reach its running rollouts, abort rolls it back) and returns its
// status after the action.
func ActRelease(ctx context.Context, c client.Client, workflowID, action string, req api.ControlRequest) (api.ReleaseStatus, error) {
	return act[api.ReleaseStatus](ctx, c, "release", workflowID, action, req)
}

// IsRelease reports whether a workflow ID names a release.
func IsRelease(workflowID string) bool { return strings.HasPrefix(workflowID, "release:") }
