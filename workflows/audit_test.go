package workflows

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stagecraft/stagecraft/internal/audit"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// trail flattens the batches a run wrote: events in order, the last plan,
// the last row per stage.
func trail(t *testing.T, batches []audit.Batch) (events []audit.Event, plan audit.Plan, stages map[int]audit.Stage) {
	t.Helper()
	stages = map[int]audit.Stage{}
	for _, b := range batches {
		require.False(t, b.Empty())
		events = append(events, b.Events...)
		if b.Plan != nil {
			plan = *b.Plan
		}
		for _, s := range b.Stages {
			stages[s.Index] = s
		}
	}
	for i, e := range events {
		require.Equal(t, int64(i+1), e.Seq, "events are numbered 1, 2, 3... with no gap or repeat")
	}
	return events, plan, stages
}

func describeEvents(events []audit.Event) string {
	var lines []string
	for _, e := range events {
		switch e.Kind {
		case audit.KindStage:
			lines = append(lines, fmt.Sprintf("stage %d %s→%s", *e.Stage, e.From, e.To))
		case audit.KindControl:
			lines = append(lines, fmt.Sprintf("control %s via %s by %s", e.Action, e.Via, e.By))
		default:
			lines = append(lines, fmt.Sprintf("%s %s→%s", e.Kind, e.From, e.To))
		}
	}
	return strings.Join(lines, "\n")
}

func TestAuditTrailOfACanary(t *testing.T) {
	h := newHarness(t)
	s := testSpec(spec.Canary)
	s.Strategy.Steps = []int{50, 100}
	h.env.RegisterDelayedCallback(func() { h.env.SignalWorkflow(SignalPause, ControlRequest{By: "alice", Reason: "dashboards"}) }, 2*time.Minute)
	h.env.RegisterDelayedCallback(func() { h.env.SignalWorkflow(SignalResume, ControlRequest{By: "alice"}) }, 4*time.Minute)
	h.env.RegisterDelayedCallback(func() { h.env.SignalWorkflow(SignalResume, ControlRequest{By: "bob"}) }, 5*time.Minute)
	res := h.run(s)
	require.Equal(t, OutcomeSucceeded, res.Outcome, res.Error)

	events, plan, stages := trail(t, h.batches)
	want := strings.Join([]string{
		"phase →snapshot",
		"phase snapshot→deploying", "stage 0 →IN_PROGRESS", "stage 1 →PENDING",
		"phase deploying→validating", "stage 0 IN_PROGRESS→VALIDATING",
		"control pause via signal by alice", "phase validating→paused",
		"control resume via signal by alice", "phase paused→validating",
		"control resume via signal by bob",
		"phase validating→deploying", "stage 0 VALIDATING→COMPLETED", "stage 1 PENDING→IN_PROGRESS",
		"phase deploying→validating", "stage 1 IN_PROGRESS→VALIDATING",
		"phase validating→finalizing", "stage 1 VALIDATING→COMPLETED",
		"phase finalizing→done", "outcome →succeeded",
	}, "\n")
	require.Equal(t, want, describeEvents(events))
	rejected := events[10]
	require.False(t, rejected.Accepted)
	require.Contains(t, rejected.Error, "not paused")
	require.Equal(t, "dashboards", events[6].Reason)

	require.Equal(t, "succeeded", plan.Status)
	require.True(t, plan.Success)
	require.False(t, plan.RolledBack)
	require.Equal(t, "docker:hello", plan.Target)
	require.Equal(t, 2, plan.Stages)
	require.NotNil(t, plan.CompletedAt)
	require.Len(t, stages, 2)
	for i, st := range stages {
		require.Equal(t, "COMPLETED", st.Status, "stage %d", i)
		require.Equal(t, res.Stages[i].ChecksPassed, st.ChecksPassed)
		require.Equal(t, spec.Canary, st.Strategy)
	}
	require.Equal(t, 50, stages[0].Percent)
	require.Equal(t, 2, stages[0].TargetNew)
	require.Equal(t, 4, stages[0].TargetTotal)
}

func TestAuditOfARollback(t *testing.T) {
	h := newHarness(t)
	h.failAt, h.failAfter = 1, time.Minute
	res := h.run(testSpec(spec.Rolling))
	require.Equal(t, OutcomeRolledBack, res.Outcome)
	events, plan, stages := trail(t, h.batches)
	require.Equal(t, "rolled_back", plan.Status)
	require.True(t, plan.RolledBack)
	require.False(t, plan.Success)
	require.Equal(t, "ROLLED_BACK", stages[0].Status)
	require.Equal(t, "ROLLED_BACK", stages[1].Status)
	require.Contains(t, stages[1].Error, "status 500")
	last := events[len(events)-1]
	require.Equal(t, audit.KindOutcome, last.Kind)
	require.Contains(t, last.Reason, "status 500")
	require.Contains(t, describeEvents(events), "phase validating→rolling_back")
	require.Contains(t, describeEvents(events), "stage 1 VALIDATING→FAILED")
}

// A database outage delays the trail, never the rollout: the stages run on
// their own clock, every batch is written once the database is back, in
// order, and the workflow ends only then.
func TestAuditWaitsOutADatabaseOutage(t *testing.T) {
	h := newHarness(t)
	h.auditFails = 8 // about 4 minutes of backoff: 1+2+4+8+16+30+30+30 s
	res := h.run(testSpec(spec.Canary))
	require.Equal(t, OutcomeSucceeded, res.Outcome, res.Error)
	require.Equal(t, 5*time.Minute, h.converges[1].At.Sub(h.converges[0].At), "stages keep their pace")

	events, plan, _ := trail(t, h.batches)
	require.Equal(t, "succeeded", plan.Status)
	require.Equal(t, audit.KindOutcome, events[len(events)-1].Kind, "the last event is written before the workflow ends")

	clean := newHarness(t)
	clean.run(testSpec(spec.Canary))
	cleanEvents, _, _ := trail(t, clean.batches)
	require.Equal(t, describeEvents(cleanEvents), describeEvents(events), "the same trail, outage or not")
}

func TestAuditRejectedSpec(t *testing.T) {
	h := newHarness(t)
	s := testSpec(spec.Canary)
	s.Image = ""
	res := h.run(s)
	require.Equal(t, OutcomeRejected, res.Outcome)
	events, plan, _ := trail(t, h.batches)
	require.Equal(t, "rejected", plan.Status)
	require.Contains(t, plan.Error, "image")
	require.Equal(t, audit.KindOutcome, events[len(events)-1].Kind)
}
