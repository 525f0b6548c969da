package workflows

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// A run continued by a worker from before the status named its starter
// carries a status without startedBy: the continued run's status still
// names who started it, from the memo continue-as-new carries, as its
// trail does.
func TestStartedByKeptAcrossAContinueAsNewFromAnOlderWorker(t *testing.T) {
	next := carriedAfterTwoConverges(t, map[string]any{api.MemoStartedBy: "alice@laptop"}, func(c map[string]any) {
		delete(c["status"].(map[string]any), "startedBy") // as an older worker carried it
	})

	h2 := newHarness(t)
	h2.env.SetContinuedExecutionRunID("run-1")
	h2.env.SetMemoOnStart(map[string]any{api.MemoStartedBy: "alice@laptop"})
	h2.execute(api.RollingWorkflow, next)
	var res api.Result
	closedResult(t, h2.env, &res)
	require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
	for _, b := range h2.batches {
		if b.Plan != nil {
			require.Equal(t, "alice@laptop", b.Plan.StartedBy, "the trail")
		}
	}
	require.Equal(t, "alice@laptop", res.StartedBy, "the status")
}

// A release's rollouts keep the release's ID in who started them, however
// long the name of who started the release: the name is cut to fit the
// 200 bytes a trail keeps, not the ID.
func TestReleaseChildMemoKeepsTheReleaseID(t *testing.T) {
	for _, n := range []int{150, 190, 200} {
		rel := &release{rules: spec.RulesCurrent, st: api.ReleaseStatus{WorkflowID: "release:prod/shop", StartedBy: strings.Repeat("é", n/2)}}
		by := rel.childMemo()[api.MemoStartedBy].(string)
		require.LessOrEqual(t, len(by), 200, n)
		require.Equal(t, by, storableText(by), "stored as it is")
		require.True(t, strings.HasSuffix(by, " (release:prod/shop)"), "%d: %q", n, by)
		require.True(t, utf8.ValidString(by))
	}
}
