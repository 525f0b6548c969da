package workflows

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/workflow"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// A run continued by a worker from before the status named its starter
// carries a status without startedBy: the continued run's status still
// names who started it, from the memo continue-as-new carries, as its
// trail does.
func TestStartedByKeptAcrossAContinueAsNewFromAnOlderWorker(t *testing.T) {
	s := testSpec(spec.Rolling)
	s.Strategy.BatchSize = 1
	s.Strategy.Bake = spec.Duration(time.Minute)
	h := newHarness(t)
	h.env.SetMemoOnStart(map[string]any{api.MemoStartedBy: "alice@laptop"})
	h.onConverge = func(n int) {
		if n == 2 {
			h.env.SetContinueAsNewSuggested(true)
		}
	}
	h.execute(api.RollingWorkflow, s)
	var can *workflow.ContinueAsNewError
	require.ErrorAs(t, h.env.GetWorkflowError(), &can)
	var next api.RolloutInput
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	var c map[string]any
	require.NoError(t, json.Unmarshal(next.Resume, &c))
	delete(c["status"].(map[string]any), "startedBy") // as an old worker carried it
	next.Resume, _ = json.Marshal(c)

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
