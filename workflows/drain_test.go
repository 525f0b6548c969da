package workflows

import (
	"context"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
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
	r.au.on, r.au.bytesV = true, 1
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
	return r.au.rounds, nil
}

// HeldWatch and DrainWorkflow are heldWatch and drainWorkflow for the test
// on the real server (e2e_drain_test.go): the time-skipped environment
// resolves a cancelled activity without the details it returns.
var HeldWatch, DrainWorkflow = heldWatch, drainWorkflow
