package workflows

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"
	"go.uber.org/zap/zaptest"

	"github.com/stagecraft/stagecraft/internal/logging"
)

// TestReplayRecordedHistories replays every history recorded from the real
// dev server (make record-histories) against the current workflow code, so
// a change that breaks determinism for running rollouts fails here.
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "histories", "*.json"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 8, "success and rollback histories for each of the four strategies")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			Register(r)
			require.NoError(t, r.ReplayWorkflowHistoryFromJSONFile(logging.Temporal(zaptest.NewLogger(t)), f))
		})
	}
}
