package workflows

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// The plan row keeps the run's lifecycle state, the spec it ran (sent once,
// in the first plan record), who started it and what it undoes, from the
// memo the starter set; the result carries the state too.
func TestAuditPlanKeepsStateSpecStarterAndUndo(t *testing.T) {
	h := newHarness(t)
	h.failAt, h.failAfter = 1, time.Minute
	h.env.SetMemoOnStart(map[string]any{api.MemoStartedBy: "alice@laptop",
		api.MemoUndo: api.Undo{Revision: 2, RunID: "run-of-v2", Image: "hello:v2", From: "run-of-v3"}})
	s := testSpec(spec.Rolling)
	res := h.run(s)
	require.Equal(t, api.OutcomeRolledBack, res.Outcome)
	require.Equal(t, api.StageRolledBack, res.State, "the result's state")
	require.Equal(t, "alice@laptop", res.StartedBy, "the result names who started it")
	require.Equal(t, "run-of-v2", res.UndoOf, "and the run it restores")

	_, plan, _ := trail(t, h.batches)
	require.Equal(t, "ROLLED_BACK", plan.State)
	require.Equal(t, "alice@laptop", plan.StartedBy)
	require.Equal(t, "run-of-v2", plan.UndoOf)

	var specs [][]byte
	states := map[string]bool{}
	for _, b := range h.batches {
		if b.Plan == nil {
			continue
		}
		states[b.Plan.State] = true
		if b.Plan.Spec != nil {
			specs = append(specs, b.Plan.Spec)
		}
	}
	require.Len(t, specs, 1, "the spec goes with one plan record, not every batch")
	var got spec.Spec
	require.NoError(t, json.Unmarshal(specs[0], &got))
	require.Equal(t, s.WithDefaults(), got, "the spec as the workflow normalized it")
	require.True(t, states["FAILED"] || states["VALIDATING"] || states["IN_PROGRESS"], "states on the way: %v", states)
}

// Without a memo, a rollout a release started is started by the release; one
// started by anyone else names nobody.
func TestAuditPlanStarterWithoutMemo(t *testing.T) {
	h := newHarness(t)
	res := h.run(testSpec(spec.Recreate))
	require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
	_, plan, _ := trail(t, h.batches)
	require.Equal(t, "COMPLETED", plan.State)
	require.Empty(t, plan.StartedBy)
	require.Empty(t, plan.UndoOf)
	require.Empty(t, res.StartedBy)
	require.Empty(t, res.UndoOf)
}
