//go:build integration

package workflows_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	tclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/stagecraft/stagecraft/internal/audit"
	"github.com/stagecraft/stagecraft/internal/itest"
	"github.com/stagecraft/stagecraft/workflows"
)

// TestCancelledWatchRoundsJoinTheTrail: the rounds a watch could not store
// (the database down) and hands back with its cancellation (a pause, a
// promote, an abort, a stage's end) are kept for the audit trail, not
// dropped with the cancelled future. The server carries the details of
// the activity's cancellation (the time-skipped environment does not).
func TestCancelledWatchRoundsJoinTheTrail(t *testing.T) {
	queue := itest.Name("drain")
	w := worker.New(tc, queue, worker.Options{})
	w.RegisterWorkflow(workflows.DrainWorkflow)
	w.RegisterActivity(workflows.HeldWatch)
	require.NoError(t, w.Start())
	defer w.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run, err := tc.ExecuteWorkflow(ctx, tclient.StartWorkflowOptions{ID: itest.Name("drain"), TaskQueue: queue}, workflows.DrainWorkflow)
	require.NoError(t, err)
	var rounds []audit.Round
	require.NoError(t, run.Get(ctx, &rounds))
	require.Len(t, rounds, 2, "the cancelled watch's unwritten rounds are kept")
	require.EqualValues(t, 2, rounds[1].Seq)
}
