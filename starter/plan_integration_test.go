//go:build integration

package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/control"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// A plan says what deploy would do with the target's running rollout: a
// different request would be refused as busy (so the plan is not ready,
// exit 5), the same request would join it; never a mere warning that
// leaves the plan "ready".
func TestPlanSaysARunningRolloutRefusesTheStart(t *testing.T) {
	e := newUndoEnv(t)
	running := e.spec("stagecraft-demo:v1", "one")
	running.Strategy.Bake = spec.Duration(10 * time.Minute)
	started := e.start(t, running)
	t.Cleanup(func() {
		_ = e.tc.TerminateWorkflow(context.Background(), started.WorkflowID, started.RunID, "test done")
	})
	baking := func() bool {
		st, err := control.Status(context.Background(), e.tc, started.WorkflowID)
		return err == nil && st.Phase == api.PhaseValidating
	}
	require.Eventually(t, baking, 2*time.Minute, 200*time.Millisecond, "the running rollout bakes")

	file := func(s spec.Spec) string {
		raw, err := json.Marshal(s)
		require.NoError(t, err)
		path := filepath.Join(t.TempDir(), "spec.json")
		require.NoError(t, os.WriteFile(path, raw, 0o600))
		return path
	}
	out, errOut, code := e.starter(t, "plan", "-f", file(e.spec("stagecraft-demo:v2", "two")))
	require.Equal(t, exitRejected, code, "plan of another request while a rollout runs: %s\n%s", out, errOut)
	require.Regexp(t, `failed\s+target\s+a start now would be refused: target is busy: rollout `+e.target()+` \(run `+started.RunID, out)
	require.Contains(t, out, "Not ready")
	require.Contains(t, errOut, "target is busy")

	out, errOut, code = e.starter(t, "plan", "-f", file(running))
	require.Equal(t, 0, code, "plan of the running request: %s\n%s", out, errOut)
	require.Regexp(t, `warning\s+target\s+a start now would join rollout `+e.target()+` \(run `+started.RunID+`\), which runs this same request`, out)
}
