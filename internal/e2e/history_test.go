//go:build integration

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/worker"
	"go.uber.org/zap/zaptest"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/control"
	"github.com/stagecraft/stagecraft/internal/itest"
	"github.com/stagecraft/stagecraft/internal/logging"
	"github.com/stagecraft/stagecraft/internal/spec"
	"github.com/stagecraft/stagecraft/workflows"
)

// fetchHistory reads a finished rollout's whole history from the server.
func fetchHistory(t *testing.T, workflowID, runID string) *historypb.History {
	t.Helper()
	h := &historypb.History{}
	it := tc.GetWorkflowHistory(context.Background(), workflowID, runID, false, 0)
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		h.Events = append(h.Events, ev)
	}
	return h
}

// recordHistory replays the real history just recorded against the current
// workflow code, and with STAGECRAFT_RECORD_HISTORIES=1 saves it under
// workflows/testdata/histories for the replay tests every run performs.
func recordHistory(t *testing.T, started control.Started, s spec.Spec, res api.Result) {
	t.Helper()
	name := s.Strategy.Type + "-" + string(res.Outcome)
	if s.PlatformName() == spec.PlatformKubernetes {
		name = "k8s-" + name
	}
	recordNamed(t, started.WorkflowID, started.RunID, name)
}

var (
	recordedMu sync.Mutex
	recorded   = map[string]bool{}
)

// recordNamed replays a finished rollout's history and, when recording,
// saves it as workflows/testdata/histories/NAME.json (once per test run).
func recordNamed(t *testing.T, workflowID, runID, name string) {
	t.Helper()
	h := fetchHistory(t, workflowID, runID)
	r := worker.NewWorkflowReplayer()
	workflows.Register(r)
	require.NoError(t, r.ReplayWorkflowHistory(logging.Temporal(zaptest.NewLogger(t)), h), "replay of the recorded history")
	recordedMu.Lock()
	defer recordedMu.Unlock()
	if os.Getenv("STAGECRAFT_RECORD_HISTORIES") == "" || recorded[name] {
		return
	}
	recorded[name] = true
	b, err := protojson.MarshalOptions{Indent: "  "}.Marshal(h)
	require.NoError(t, err)
	name = filepath.Join(itest.Root(), "workflows", "testdata", "histories", name+".json")
	require.NoError(t, os.MkdirAll(filepath.Dir(name), 0o755))
	require.NoError(t, os.WriteFile(name, b, 0o644))
	t.Logf("recorded %s (%d events)", name, len(h.Events))
}
