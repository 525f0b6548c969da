package workflows

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stagecraft/stagecraft/activities"
	"github.com/stagecraft/stagecraft/internal/audit"
	"github.com/stagecraft/stagecraft/internal/health"
)

// A rollback's verify, in the result, is the watch's result under the same
// JSON names, less the activity's own bookkeeping: what results recorded
// before the contract's WatchSummary said, callers still read.
func TestWatchSummaryKeepsTheWatchResultsJSON(t *testing.T) {
	at := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	w := activities.WatchResult{Healthy: true, Paused: true, Rounds: 5, Passed: 4, Failed: 1,
		Tally: health.Tally{Counts: health.Counts{Healthy: 4, Failed: 1}}, LastFailure: "status 500",
		Latest: &health.Round{At: at, Verdict: health.Healthy}, Settled: true, SettleTries: 2,
		Unwritten: []audit.Round{{Seq: 1}}, Dropped: 3, Lost: 1, RoundStarted: at, Started: at, OwedSince: 2}
	var full, sum map[string]any
	b, err := json.Marshal(w)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &full))
	b, err = json.Marshal(watchSummary(w))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &sum))
	for _, internal := range []string{"unwritten", "dropped", "roundStarted", "owedSince"} {
		require.Contains(t, full, internal)
		delete(full, internal)
	}
	require.Equal(t, full, sum)
}
