//go:build integration

package workflows

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	tclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/stagecraft/stagecraft/activities"
	"github.com/stagecraft/stagecraft/internal/audit"
)

// heldWatch is a watch that runs until cancelled and then returns, as the
// real watcher does, the rounds it could not store with its cancellation.
func heldWatch(ctx context.Context) (activities.WatchResult, error) {
	for {
		select {
		case <-ctx.Done():
			return activities.WatchResult{}, temporal.NewCanceledError(activities.WatchResult{Unwritten: []audit.Round{
				{ActivityID: "watch-1", Seq: 1, Stage: "canary 25%", Which: "new"},
				{ActivityID: "watch-1", Seq: 2, Stage: "canary 25%", Which: "new"}}})
		case <-time.After(100 * time.Millisecond):
			activity.RecordHeartbeat(ctx)
		}
	}
}

// drainWorkflow starts heldWatch, cancels it as the bake does (a pause, an
// abort), drains it, and returns the rounds the trail then holds.
func drainWorkflow(ctx workflow.Context) ([]audit.Round, error) {
	r := &rollout{}
	r.auditor.on, r.auditor.bytesV = true, 1
	wctx, cancel := workflow.WithCancel(ctx)
	wctx = workflow.WithActivityOptions(wctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute,
		HeartbeatTimeout: 5 * time.Second, WaitForCancellation: true})
	f := workflow.ExecuteActivity(wctx, heldWatch)
	if err := workflow.Sleep(ctx, time.Second); err != nil {
		return nil, err
	}
	cancel()
	r.drainWatch(ctx, f)
	r.awaitDrains(ctx)
	return r.auditor.rounds, nil
}

// TestCancelledWatchRoundsJoinTheTrail: the rounds a watch could not store
// (the database down) and hands back with its cancellation (a pause, a
// promote, an abort, a stage's end) are kept for the audit trail, not
// dropped with the cancelled future. The server carries the details of
// the activity's cancellation (the time-skipped environment does not).
func TestCancelledWatchRoundsJoinTheTrail(t *testing.T) {
	tc := devServer(t)
	const queue = "drain"
	w := worker.New(tc, queue, worker.Options{})
	w.RegisterWorkflow(drainWorkflow)
	w.RegisterActivity(heldWatch)
	require.NoError(t, w.Start())
	defer w.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run, err := tc.ExecuteWorkflow(ctx, tclient.StartWorkflowOptions{ID: "drain", TaskQueue: queue}, drainWorkflow)
	require.NoError(t, err)
	var rounds []audit.Round
	require.NoError(t, run.Get(ctx, &rounds))
	require.Len(t, rounds, 2, "the cancelled watch's unwritten rounds are kept")
	require.EqualValues(t, 2, rounds[1].Seq)
}
