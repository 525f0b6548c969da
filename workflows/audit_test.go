package workflows

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"

	"github.com/stagecraft/stagecraft/activities"
	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/audit"
	"github.com/stagecraft/stagecraft/internal/health"
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
	h.env.RegisterDelayedCallback(func() { h.env.SignalWorkflow(api.SignalPause, api.ControlRequest{By: "alice", Reason: "dashboards"}) }, 2*time.Minute)
	h.env.RegisterDelayedCallback(func() { h.env.SignalWorkflow(api.SignalResume, api.ControlRequest{By: "alice"}) }, 4*time.Minute)
	h.env.RegisterDelayedCallback(func() { h.env.SignalWorkflow(api.SignalResume, api.ControlRequest{By: "bob"}) }, 5*time.Minute)
	res := h.run(s)
	require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)

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
	require.Equal(t, api.OutcomeRolledBack, res.Outcome)
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
// their own clock, and every batch is written once the database is back, in
// order. (An outage that outlasts the outcome: trail_test.go.)
func TestAuditWaitsOutADatabaseOutage(t *testing.T) {
	h := newHarness(t)
	h.auditFails = 8 // about 4 minutes of backoff: 1+2+4+8+16+30+30+30 s
	res := h.run(testSpec(spec.Canary))
	require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
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
	require.Equal(t, api.OutcomeRejected, res.Outcome)
	events, plan, _ := trail(t, h.batches)
	require.Equal(t, "rejected", plan.Status)
	require.Contains(t, plan.Error, "image")
	require.Equal(t, audit.KindOutcome, events[len(events)-1].Kind)
}

// A long audit outage while watches hand the workflow their unwritten
// rounds: no Audit input ever nears the server's 2 MiB limit (past it the
// server terminates the workflow, with no rollback). The writer sends the
// rounds in inputs bounded by bytes, keeps at most maxAuditKeptBytes of them
// waiting, and once the store is back writes every round kept, in order and
// once each, with events saying how many rounds of which stage were not
// kept (by the watchers or by the workflow).
func TestAuditBatchesBoundedByBytes(t *testing.T) {
	const (
		perWatch   = 400 // rounds a watch hands over, about 250 KiB
		watcherCut = 7   // rounds each watcher reports it dropped
	)
	h := newHarness(t)
	// The first write fails as often as the test environment retries it
	// (10 attempts), 2.5 minutes in which every stage runs.
	h.auditFails = 9
	s := testSpec(spec.Canary)
	s.Platform.Docker.Replicas = 20
	s.Strategy.Steps = nil
	s.Strategy.Bake = spec.Duration(5 * time.Second)
	s.Health.Interval = spec.Duration(time.Second)
	for p := 5; p <= 100; p += 5 {
		s.Strategy.Steps = append(s.Strategy.Steps, p)
	}
	h.script = func(in activities.WatchInput, n int) (activities.WatchResult, time.Duration, bool) {
		if in.Mode != activities.WatchRounds {
			return activities.WatchResult{}, 0, false
		}
		rounds := watchRounds(in)
		res := activities.WatchResult{Healthy: true, Rounds: rounds, Passed: rounds,
			Tally: health.Tally{Counts: health.Counts{Healthy: rounds}, Rounds: rounds, Samples: rounds}}
		for i := range perWatch {
			res.Unwritten = append(res.Unwritten, audit.Round{ActivityID: fmt.Sprintf("watch-%02d", n), Seq: watcherCut + i + 1,
				Stage: in.Stage, Which: string(in.Which), Verdict: health.Degraded,
				Results: []health.Result{{Check: "healthz", Target: "10.0.0.1:8080", Verdict: health.Degraded,
					Error: strings.Repeat("upstream reset; ", 36)}}})
		}
		res.Unwritten[0].Dropped = watcherCut
		return res, 5 * time.Second, true
	}
	res := h.run(s)
	require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
	require.Greater(t, h.auditCalls, h.auditFails, "the store came back")

	// A retried input is the one first scheduled: the inputs written are
	// every input sent.
	for i, b := range h.batches {
		p, err := converter.GetDefaultDataConverter().ToPayload(b)
		require.NoError(t, err)
		require.LessOrEqual(t, p.Size(), maxAuditBatchBytes+1<<10, "Audit input %d: %d bytes, %d rounds", i, p.Size(), len(b.Rounds))
	}
	events, _, _ := trail(t, h.batches)
	watches := h.scripts
	require.Equal(t, 20, watches, "a watch per stage")
	dropped, byWatcher := 0, 0
	for _, e := range events {
		if e.Kind != audit.KindDropped {
			continue
		}
		n, err := strconv.Atoi(e.To)
		require.NoError(t, err)
		require.Contains(t, e.Reason, fmt.Sprintf("%d health rounds of stage %q", n, e.Action))
		dropped += n
		if strings.Contains(e.Reason, "watcher") {
			byWatcher += n
		}
	}
	require.Equal(t, watches*watcherCut, byWatcher, "every watcher's dropped count is recorded")
	require.Greater(t, dropped, byWatcher, "the workflow dropped rounds too: it keeps at most maxAuditKeptBytes waiting")

	// Every round kept is written once, in the order the watches ran them.
	var written []string
	seen := map[string]bool{}
	for _, b := range h.batches {
		for _, r := range b.Rounds {
			k := fmt.Sprintf("%s/%04d", r.ActivityID, r.Seq)
			require.False(t, seen[k], "round %s written twice", k)
			seen[k] = true
			written = append(written, k)
		}
	}
	require.True(t, slices.IsSorted(written), "rounds written in order")
	t.Logf("%d batches, %d rounds written, %d dropped (%d by watchers), last stage at %s", len(h.batches), len(written), dropped, byWatcher, h.converges[len(h.converges)-1].At.Sub(h.converges[0].At))
	require.Equal(t, watches*(perWatch+watcherCut), len(written)+dropped, "every round written or counted as dropped")
}
