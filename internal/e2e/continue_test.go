//go:build integration

package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/control"
	"github.com/stagecraft/stagecraft/internal/itest"
	"github.com/stagecraft/stagecraft/internal/spec"
	"github.com/stagecraft/stagecraft/workflows"
)

// TestLongRollingContinuesAsNewOnTheRealServer: a rolling update of 12
// batches on the real Kubernetes control plane, with the continue-as-new
// threshold lowered to 100 events, runs as several runs of one workflow ID;
// every run's history stays under the threshold plus one stage, each
// replays, and the result (followed from the first run ID) covers every
// batch. The 1,000-batch case runs time-skipped (TestLongRollingContinuesAsNew).
func TestLongRollingContinuesAsNewOnTheRealServer(t *testing.T) {
	prev := workflows.ContinueAfterEvents
	workflows.ContinueAfterEvents = 100
	t.Cleanup(func() { workflows.ContinueAfterEvents = prev })
	itest.StartWorker(t, tc, dc)
	cs := kubeClient(t, kubeconfig)
	ns := kubeTargetN(t, cs, 12)
	s := kubeSpec(ns, kubeconfig, spec.Rolling, healthServer(t, cs, ns))
	s.Strategy.BatchSize = 1
	s.Strategy.Bake = spec.Duration(200 * time.Millisecond)
	s.Health.Interval = spec.Duration(100 * time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	started, err := control.Start(ctx, tc, s)
	require.NoError(t, err)
	res, err := control.Wait(ctx, tc, started.WorkflowID, started.RunID, time.Second, nil)
	require.NoError(t, err)
	require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
	require.Len(t, res.Stages, 12)
	for _, st := range res.Stages {
		require.Equal(t, api.StageCompleted, st.Status, st.Name)
	}
	require.Equal(t, started.RunID, res.RunID, "the status keeps the first run's ID")
	require.Equal(t, map[string]string{"web": "demo:v2 x12 ready 12"}, deployments(t, cs, ns))

	// Walk the chain of runs: each ended by continuing as new, the last
	// completed; each history replays and stays short.
	runID, runs := started.RunID, 0
	for runID != "" {
		runs++
		h := fetchHistory(t, started.WorkflowID, runID)
		events := h.GetEvents()
		t.Logf("run %d (%s): %d events", runs, runID, len(events))
		require.Less(t, len(events), 100+60, "run %d", runs)
		if runs == 1 {
			recordNamed(t, started.WorkflowID, runID, "rolling-continued-as-new")
		} else {
			recordNamed(t, started.WorkflowID, runID, "rolling-continued-as-new-resumed")
		}
		last := events[len(events)-1]
		switch last.GetEventType() {
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
			runID = last.GetWorkflowExecutionContinuedAsNewEventAttributes().GetNewExecutionRunId()
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
			runID = ""
		default:
			t.Fatalf("run %d ended with %s", runs, last.GetEventType())
		}
	}
	require.GreaterOrEqual(t, runs, 3)
}

// TestAbortDuringHandoverOnTheRealServer: a Docker rolling update (3
// batches) continues as new after its first batch (threshold 1 event),
// while PostgreSQL is down, so the run's handover waits for its audit trail
// to be written. An abort sent in that window is accepted; once PostgreSQL
// is back, the run rolls back (it completes: no next run) and v1 is
// restored. Before, the abort was accepted and lost: the next run rolled
// out the remaining batches (review finding 3).
func TestAbortDuringHandoverOnTheRealServer(t *testing.T) {
	prev := workflows.ContinueAfterEvents
	workflows.ContinueAfterEvents = 1
	t.Cleanup(func() { workflows.ContinueAfterEvents = prev })
	pg, st := auditStore(t)
	itest.StartWorkerWith(t, tc, dc, itest.WorkerConfig{Store: st})
	service := itest.Name("e2e-handover")
	cleanup(t, service)
	v1 := installV1(t, service)

	s := demoSpec(service, "stagecraft-demo:v2", spec.Rolling, 3)
	s.Strategy.Bake = spec.Duration(5 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	started, err := control.Start(ctx, tc, s)
	require.NoError(t, err)
	waitForStage(t, started.WorkflowID, 0, api.StageValidating)
	pg.Stop(t)
	// Batch 1 passes; the first run then hands over, waiting for the trail.
	waitForStage(t, started.WorkflowID, 0, api.StageCompleted)
	time.Sleep(2 * time.Second)
	d, err := tc.DescribeWorkflowExecution(ctx, started.WorkflowID, "")
	require.NoError(t, err)
	require.Equal(t, started.RunID, d.GetWorkflowExecutionInfo().GetExecution().GetRunId(), "still the first run, handing over")
	mid, err := control.Status(ctx, tc, started.WorkflowID)
	require.NoError(t, err)
	require.Equal(t, api.StagePending, mid.Stages[1].Status)

	_, err = control.Act(ctx, tc, started.WorkflowID, api.SignalAbort, api.ControlRequest{By: "oncall", Reason: "error rate up"})
	require.NoError(t, err, "the abort is accepted")
	pg.Start(t)

	res, err := control.Wait(ctx, tc, started.WorkflowID, started.RunID, time.Second, nil)
	require.NoError(t, err)
	require.Equal(t, api.OutcomeRolledBack, res.Outcome, res.Error)
	require.Contains(t, res.Error, "aborted: requested by oncall: error rate up")
	require.Equal(t, api.StagePending, res.Stages[1].Status, "no batch after the abort")
	events := fetchHistory(t, started.WorkflowID, started.RunID).GetEvents()
	require.Equal(t, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED, events[len(events)-1].GetEventType(), "the first run rolled back itself (and closed Failed, as rolled back)")
	require.Equal(t, restorable(v1), restorable(instances(t, service)), "v1 restored")
	recordNamed(t, started.WorkflowID, started.RunID, "rolling-abort-at-handover")
}
