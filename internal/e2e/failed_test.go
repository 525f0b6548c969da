//go:build integration

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/control"
	"github.com/stagecraft/stagecraft/internal/itest"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// TestRolledBackRolloutShowsFailed: a rollout that rolls back is a Failed
// workflow wherever operators look (a list query by status, the Web UI's
// own HTTP API), with the one-line summary as its failure, while a rollout
// that succeeded stays Completed; the client still reads its result.
func TestRolledBackRolloutShowsFailed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	srv, ui, err := itest.DevServerWithUI(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Stop() })
	c := srv.Client()
	itest.StartWorker(t, c, dc)
	service := itest.Name("e2e-failed")
	cleanup(t, service)

	v1 := demoSpec(service, "stagecraft-demo:v1", spec.Recreate, 2)
	v1.Strategy.Bake = spec.Duration(time.Second)
	good, err := control.Start(ctx, c, v1)
	require.NoError(t, err)
	res, err := control.Wait(ctx, c, good.WorkflowID, good.RunID, time.Second, nil)
	require.NoError(t, err)
	require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)

	// v2-bad fails /healthz 3 s after it starts: the first stage sees it.
	bad := demoSpec(service, "stagecraft-demo:v2-bad", spec.Canary, 2)
	bad.Strategy.Bake = spec.Duration(6 * time.Second)
	failed, err := control.Start(ctx, c, bad)
	require.NoError(t, err)
	res, err = control.Wait(ctx, c, failed.WorkflowID, failed.RunID, time.Second, nil)
	require.NoError(t, err, "the client reads the result of a run closed as Failed")
	require.Equal(t, api.OutcomeRolledBack, res.Outcome, res.Error)
	require.True(t, res.Rollback.Verified)

	// The server's list, by status: visibility is eventually consistent.
	byStatus := func(status string) []string {
		var runs []string
		require.Eventually(t, func() bool {
			resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
				Query: fmt.Sprintf(`WorkflowId = %q AND ExecutionStatus = %q`, good.WorkflowID, status)})
			if err != nil || len(resp.Executions) == 0 {
				return false
			}
			runs = nil
			for _, e := range resp.Executions {
				runs = append(runs, e.Execution.RunId)
			}
			return true
		}, 20*time.Second, 200*time.Millisecond, "no %s run listed", status)
		return runs
	}
	require.Equal(t, []string{failed.RunID}, byStatus("Failed"))
	require.Equal(t, []string{good.RunID}, byStatus("Completed"))

	// The Web UI's own HTTP API, as its pages read it.
	describe := func(runID string) string {
		u := fmt.Sprintf("%s/api/v1/namespaces/default/workflows/%s?execution.runId=%s", ui, url.PathEscape(good.WorkflowID), runID)
		resp, err := http.Get(u)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, u)
		var d struct {
			Info struct {
				Status string `json:"status"`
			} `json:"workflowExecutionInfo"`
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&d))
		return d.Info.Status
	}
	require.Equal(t, "WORKFLOW_EXECUTION_STATUS_FAILED", describe(failed.RunID))
	require.Equal(t, "WORKFLOW_EXECUTION_STATUS_COMPLETED", describe(good.RunID))

	// The failure an operator opens says what happened in one line.
	hist := c.GetWorkflowHistory(ctx, good.WorkflowID, failed.RunID, false, 0)
	var msg, typ string
	for hist.HasNext() {
		ev, err := hist.Next()
		require.NoError(t, err)
		if a := ev.GetWorkflowExecutionFailedEventAttributes(); a != nil {
			msg, typ = a.GetFailure().GetMessage(), a.GetFailure().GetApplicationFailureInfo().GetType()
		}
	}
	require.Equal(t, api.ErrTypeRolledBack, typ)
	require.Equal(t, fmt.Sprintf("rolled_back at %s (stage 1/%d), cause health: %s", res.Stages[0].Name, len(res.Stages), res.Error), msg)
}
