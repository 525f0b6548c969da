//go:build integration

package e2e

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/control"
	"github.com/stagecraft/stagecraft/internal/itest"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// TestReplayRunningRolloutsBeforeAnUpgrade: `worker replay` fetches the
// histories of the rollouts running on the server and replays them against
// the worker binary's code, the check docs/UPGRADING.md runs before new
// workers take over.
func TestReplayRunningRolloutsBeforeAnUpgrade(t *testing.T) {
	itest.StartWorker(t, tc, dc)
	service := itest.Name("e2e-upgrade")
	cleanup(t, service)
	installV1(t, service)
	s := demoSpec(service, "stagecraft-demo:v2", spec.Canary, 3)
	s.Strategy.Bake = spec.Duration(time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	started, err := control.Start(ctx, tc, s)
	require.NoError(t, err)
	waitForStage(t, started.WorkflowID, 0, api.StageValidating)

	out, err := exec.Command(workerB, "replay", "--address", server.FrontendHostPort(),
		"--query", `WorkflowId = "`+started.WorkflowID+`" AND ExecutionStatus = "Running"`).CombinedOutput()
	require.NoError(t, err, string(out))
	require.Contains(t, string(out), "ok   "+started.WorkflowID+" "+started.RunID)
	require.Contains(t, string(out), "replayed 1 histories against this build: 1 ok, 0 failed")
	t.Logf("worker replay: %s", strings.TrimSpace(string(out)))

	_, err = control.Act(ctx, tc, started.WorkflowID, api.UpdatePromote, api.ControlRequest{Reason: "done", By: "e2e"})
	require.NoError(t, err)
	res, err := control.Wait(ctx, tc, started.WorkflowID, started.RunID, time.Second, nil)
	require.NoError(t, err)
	require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
}
