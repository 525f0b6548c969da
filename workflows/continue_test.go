package workflows

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/workflow"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/audit"
	"github.com/stagecraft/stagecraft/internal/plan"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// TestLongRollingContinuesAsNew: a rolling update of 1,000 batches
// continues as new whenever its history grows long (simulated here by the
// server's suggestion after 250 stages of a run), carrying its state: every
// batch runs once and in order, the pause a run received holds in the next,
// the audit trail numbers its events on across runs, and the result covers
// all 1,000 stages.
func TestLongRollingContinuesAsNew(t *testing.T) {
	s := testSpec(spec.Rolling)
	s.Platform.Docker.Replicas = 1000
	s.Strategy.BatchSize = 1
	s.Strategy.Bake = spec.Duration(2 * time.Second)
	s.Health.Interval = spec.Duration(time.Second)
	input := api.RolloutInput{Spec: s.WithDefaults()}

	var (
		desired []int // the New count of every converge, across runs
		events  []audit.Event
		res     api.Result
		runs    int
	)
	for runs = 1; runs <= 10; runs++ {
		h := newHarness(t)
		h.snapshot = snapshotOf(1000, "stagecraft-demo:v1")
		h.env.SetTestTimeout(2 * time.Minute)
		if runs > 1 {
			h.env.SetContinuedExecutionRunID(fmt.Sprintf("run-%d", runs-1))
		}
		h.onConverge = func(n int) {
			if n == 250 {
				h.env.SetContinueAsNewSuggested(true)
			}
		}
		if runs == 2 {
			// A pause and a resume in the second run: its control log
			// goes on in the later runs.
			h.env.RegisterDelayedCallback(func() { h.env.SignalWorkflow(api.SignalPause, api.ControlRequest{By: "ops"}) }, 101*time.Second)
			h.env.RegisterDelayedCallback(func() { h.env.SignalWorkflow(api.SignalResume, api.ControlRequest{By: "ops"}) }, time.Hour)
		}
		h.execute(api.RollingWorkflow, input)
		require.True(t, h.env.IsWorkflowCompleted())
		for _, c := range h.converges {
			desired = append(desired, c.Desired.New)
		}
		for _, b := range h.batches {
			events = append(events, b.Events...)
		}
		err := h.env.GetWorkflowError()
		var can *workflow.ContinueAsNewError
		if errors.As(err, &can) {
			require.Equal(t, api.RollingWorkflow, can.WorkflowType.Name)
			input = api.RolloutInput{}
			require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &input))
			require.NotEmpty(t, input.Resume)
			continue
		}
		closedResult(t, h.env, &res)
		break
	}
	t.Logf("runs %d, converges %d, outcome %s: %s", runs, len(desired), res.Outcome, res.Error)
	require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
	require.Equal(t, 4, runs, "250 stages a run")
	require.Len(t, res.Stages, 1000)
	for i, st := range res.Stages {
		require.Equal(t, api.StageCompleted, st.Status, "stage %d", i)
	}
	// Every batch converged once, in order, then the final state.
	require.Len(t, desired, 1001)
	for i := 0; i < 1000; i++ {
		require.Equal(t, i+1, desired[i], "converge %d", i)
	}
	// The pause and resume of run 2 are in the final control log.
	require.Len(t, res.Controls, 2)
	require.Equal(t, []string{"pause", "resume"}, []string{res.Controls[0].Action, res.Controls[1].Action})
	// The audit trail goes on numbering its events, none twice.
	for i, e := range events {
		require.Equal(t, int64(i+1), e.Seq, "event %d (%s %s)", i, e.Kind, e.To)
	}
	require.NotEqual(t, time.Time{}, res.StartedAt)
	require.Empty(t, res.Rollback)
}

// TestAbortDuringContinueAsNewHandoverRollsBack: an abort accepted while a
// run hands over to the next (here the audit trail waits minutes for its
// database while the run closes it) rolls the rollout back in that run;
// it once continued as new and the next run carried on to succeeded
// (review finding 3). The audit trail, reopened, records the rollback.
func TestAbortDuringContinueAsNewHandoverRollsBack(t *testing.T) {
	s := testSpec(spec.Rolling)
	s.Strategy.BatchSize = 1
	s.Strategy.Bake = spec.Duration(time.Minute)
	h := newHarness(t)
	h.auditFails = 12 // about 4 minutes of database outage
	h.onConverge = func(n int) {
		if n == 2 {
			h.env.SetContinueAsNewSuggested(true)
		}
	}
	var abortErr error
	accepted := false
	h.env.RegisterDelayedCallback(func() {
		h.env.UpdateWorkflow(api.UpdateAbort, "a1", &updateCallback{done: func(_ api.Status, err error) { abortErr, accepted = err, true }},
			api.ControlRequest{By: "oncall", Reason: "error rate up"})
	}, 150*time.Second)
	h.env.SetTestTimeout(time.Minute)
	h.execute(api.RollingWorkflow, s)
	require.True(t, h.env.IsWorkflowCompleted())
	require.True(t, accepted)
	require.NoError(t, abortErr)
	var res api.Result
	closedResult(t, h.env, &res) // not continued as new
	require.Equal(t, api.OutcomeRolledBack, res.Outcome, res.Error)
	require.Contains(t, res.Error, "aborted: requested by oncall: error rate up")
	// Two batches, then the restore; nothing after the abort.
	d := h.desired()
	require.Len(t, d, 3)
	require.Equal(t, restore, d[2])
	last := res.Controls[len(res.Controls)-1]
	require.Equal(t, []any{"abort", true}, []any{last.Action, last.Accepted})
	// The audit trail, closed for the handover, went on to the outcome.
	var outcome string
	for _, b := range h.batches {
		for _, e := range b.Events {
			if e.Kind == audit.KindOutcome {
				outcome = e.To
			}
		}
	}
	require.Equal(t, string(api.OutcomeRolledBack), outcome)
}

// TestAbortCarriedAcrossContinueAsNew: a run that carries an accepted
// abort (belt and braces: the handover itself rolls back now) rolls back
// at once instead of running the next stage.
func TestAbortCarriedAcrossContinueAsNew(t *testing.T) {
	next := carriedAfterTwoConverges(t, nil, func(c map[string]any) {
		c["aborted"], c["abortReason"] = true, "requested by oncall"
	})

	h2 := newHarness(t)
	h2.env.SetContinuedExecutionRunID("run-1")
	h2.execute(api.RollingWorkflow, next)
	var res api.Result
	closedResult(t, h2.env, &res)
	require.Equal(t, api.OutcomeRolledBack, res.Outcome, res.Error)
	require.Equal(t, "aborted: requested by oncall", res.Error)
	require.Equal(t, []plan.Desired{restore}, h2.desired())
}

// TestPauseDuringContinueAsNewHandoverHolds: a pause accepted while a run
// hands over is carried: the next run starts paused and converges nothing
// until the resume.
func TestPauseDuringContinueAsNewHandoverHolds(t *testing.T) {
	s := testSpec(spec.Rolling)
	s.Strategy.BatchSize = 1
	s.Strategy.Bake = spec.Duration(time.Minute)
	h := newHarness(t)
	h.auditFails = 12
	h.onConverge = func(n int) {
		if n == 2 {
			h.env.SetContinueAsNewSuggested(true)
		}
	}
	var pauseErr error
	h.env.RegisterDelayedCallback(func() {
		h.env.UpdateWorkflow(api.UpdatePause, "p1", &updateCallback{done: func(_ api.Status, err error) { pauseErr = err }},
			api.ControlRequest{By: "oncall"})
	}, 150*time.Second)
	h.execute(api.RollingWorkflow, s)
	require.NoError(t, pauseErr)
	var can *workflow.ContinueAsNewError
	require.ErrorAs(t, h.env.GetWorkflowError(), &can)
	var next api.RolloutInput
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))

	h2 := newHarness(t)
	h2.env.SetContinuedExecutionRunID("run-1")
	h2.env.RegisterDelayedCallback(func() { h2.env.SignalWorkflow(api.SignalResume, api.ControlRequest{By: "oncall"}) }, 10*time.Minute)
	start := h2.env.Now()
	h2.execute(api.RollingWorkflow, next)
	var res api.Result
	closedResult(t, h2.env, &res)
	require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
	require.Equal(t, 10*time.Minute, h2.converges[0].At.Sub(start), "the next run waited for the resume")
}

// carriedAfterTwoConverges runs a rolling rollout of batches of 1 (started
// with memo) until it continues as new after its second converge, and
// returns the next run's input with its carried state passed through edit.
func carriedAfterTwoConverges(t *testing.T, memo map[string]any, edit func(c map[string]any)) api.RolloutInput {
	t.Helper()
	s := testSpec(spec.Rolling)
	s.Strategy.BatchSize = 1
	s.Strategy.Bake = spec.Duration(time.Minute)
	h := newHarness(t)
	if memo != nil {
		h.env.SetMemoOnStart(memo)
	}
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
	edit(c)
	next.Resume, _ = json.Marshal(c)
	return next
}
