//go:build integration

package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
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

// A plan changes nothing, on Docker too: an image the engine does not have
// is said to be absent (a warning: the rollout pulls it when it starts),
// not pulled. The registry here is the test's own on 127.0.0.1 and counts
// what reaches it. (Before the worker's plan only looked, it pulled: "the
// plan asked the registry 3 time(s)".)
func TestPlanPullsNothing(t *testing.T) {
	e := newUndoEnv(t)
	var asked atomic.Int64
	registry := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		http.NotFound(w, r)
	}))
	t.Cleanup(registry.Close)
	image := strings.TrimPrefix(registry.URL, "http://") + "/stagecraft-absent:v1"
	raw, err := json.Marshal(e.spec(image, "absent"))
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "spec.json")
	require.NoError(t, os.WriteFile(path, raw, 0o600))

	out, errOut, code := e.starter(t, "plan", "-f", path)
	require.Equal(t, 0, code, "plan of an absent image: %s\n%s", out, errOut)
	require.Regexp(t, `warning\s+image\s+`+regexp.QuoteMeta(image)+` is not on the engine: the rollout pulls it when it starts`, out)
	require.Zero(t, asked.Load(), "the plan asked the registry %d time(s): it tried to pull %s", asked.Load(), image)
}
