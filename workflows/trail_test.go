package workflows

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/workflow"

	"github.com/stagecraft/stagecraft/activities"
	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/audit"
	"github.com/stagecraft/stagecraft/internal/health"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// outageFrom makes every Audit write fail from the nth converge on (the
// database goes down then) until `until` after the start of the test's
// clock.
func outageFrom(h *harness, n int, until time.Duration) {
	h.onConverge = func(c int) {
		if c == n {
			h.auditFails = 1 << 30 // mu held
		}
	}
	h.env.RegisterDelayedCallback(func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.auditFails = h.auditCalls // the database is back
	}, until)
}

// trailsStarted records the AuditTrail workflows a run starts, with when.
func trailsStarted(h *harness) *[]string {
	var ids []string
	h.env.SetOnChildWorkflowStartedListener(func(info *workflow.Info, _ workflow.Context, args converter.EncodedValues) {
		if info.WorkflowType.Name == AuditTrailWorkflow {
			var in TrailInput
			require.NoError(h.t, args.Get(&in))
			ids = append(ids, fmt.Sprintf("%s@%s batches=%d", info.WorkflowExecution.ID, h.env.Now().Format(time.TimeOnly), in.Batches))
		}
	})
	return &ids
}

// TestDecidedRolloutEndsDuringAuditOutage: a rollout whose outcome is
// decided while the audit store is down completes within AuditCloseWait
// (its target is free again), instead of staying open until the store
// answers (review finding 7); the trail workflow it hands its trail to
// writes every record once the store is back, exactly once, ending with an
// event that names the trail workflow.
func TestDecidedRolloutEndsDuringAuditOutage(t *testing.T) {
	const outage = 2 * time.Hour
	s := testSpec(spec.Canary)

	// The rollout alone: the test stops when the rollout's workflow ends.
	h := newHarness(t)
	h.env.SetDetachedChildWait(false)
	outageFrom(h, 4, outage) // the final converge
	start := h.env.Now()
	trails := trailsStarted(h)
	res := h.run(s)
	require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
	ended := h.env.Now()
	require.NotNil(t, res.CompletedAt)
	t.Logf("decided at %s, workflow ended at %s, store back at %s", res.CompletedAt.Sub(start), ended.Sub(start), outage)
	require.Less(t, ended.Sub(start), outage, "the rollout ended while the store was still down")
	require.LessOrEqual(t, ended.Sub(*res.CompletedAt), AuditCloseWait+5*time.Second,
		"a decided rollout waits at most AuditCloseWait for its audit trail")
	require.Len(t, *trails, 1)
	require.True(t, strings.HasPrefix((*trails)[0], TrailID(res.WorkflowID, res.RunID)+"@"), *trails)

	// The same, until the trail workflow is done.
	h = newHarness(t)
	outageFrom(h, 4, outage)
	start = h.env.Now()
	res = h.run(s)
	require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
	require.GreaterOrEqual(t, h.env.Now().Sub(start), outage, "the trail waited for the store")
	events, plan, stages := trail(t, h.batches) // numbered 1, 2, 3... once each
	require.Equal(t, "succeeded", plan.Status)
	require.Len(t, stages, 3)
	for i, st := range stages {
		require.Equal(t, "COMPLETED", st.Status, "stage %d", i)
	}
	last := events[len(events)-1]
	require.Equal(t, api.KindHandoff, last.Kind)
	require.Equal(t, TrailID(res.WorkflowID, res.RunID), last.To)
	require.Contains(t, last.Reason, "is written by workflow "+last.To)

	clean := newHarness(t)
	clean.run(s)
	cleanEvents, _, _ := trail(t, clean.batches)
	require.Equal(t, describeEvents(cleanEvents), describeEvents(events[:len(events)-1]), "the same trail, outage or not")
	require.Equal(t, audit.KindOutcome, events[len(events)-2].Kind)
}

// TestAuditHandoffInBoundedBatches: a hand-off of a queue that a long
// outage filled with health rounds passes it on in Audit inputs no larger
// than maxAuditBatchBytes (the trail workflow's input holds the first, its
// signals the others), and the trail writes every round kept, in order and
// once each.
func TestAuditHandoffInBoundedBatches(t *testing.T) {
	const perWatch = 1500 // rounds a watch hands over, about 1 MiB
	h := newHarness(t)
	s := testSpec(spec.Canary)
	s.Platform.Docker.Replicas = 10
	s.Strategy.Steps = []int{10, 20, 30, 40, 50, 60, 70, 80, 90, 100}
	s.Strategy.Bake = spec.Duration(5 * time.Second)
	s.Health.Interval = spec.Duration(time.Second)
	outageFrom(h, 5, 3*time.Hour) // the store goes down at stage 5 of 10
	h.script = func(in activities.WatchInput, n int) (activities.WatchResult, time.Duration, bool) {
		if in.Mode != activities.WatchRounds {
			return activities.WatchResult{}, 0, false
		}
		rounds := watchRounds(in)
		res := activities.WatchResult{Healthy: true, Rounds: rounds, Passed: rounds,
			Tally: health.Tally{Counts: health.Counts{Healthy: rounds}, Rounds: rounds, Samples: rounds}}
		for i := range perWatch {
			res.Unwritten = append(res.Unwritten, audit.Round{ActivityID: fmt.Sprintf("watch-%02d", n), Seq: i + 1,
				Stage: in.Stage, Which: string(in.Which), Verdict: health.Degraded,
				Results: []health.Result{{Check: "healthz", Target: "10.0.0.1:8080", Verdict: health.Degraded,
					Error: strings.Repeat("upstream reset; ", 36)}}})
		}
		return res, 5 * time.Second, true
	}
	trails := trailsStarted(h)
	res := h.run(s)
	require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
	require.Len(t, *trails, 1)
	var handed int
	_, err := fmt.Sscanf((*trails)[0][strings.LastIndex((*trails)[0], "batches="):], "batches=%d", &handed)
	require.NoError(t, err)
	require.Greater(t, handed, 2, "the hand-off needs signals: %s", (*trails)[0])

	for i, b := range h.batches {
		p, err := converter.GetDefaultDataConverter().ToPayload(TrailBatch{Index: i, Batch: b})
		require.NoError(t, err)
		require.LessOrEqual(t, p.Size(), maxAuditBatchBytes+1<<10, "Audit input %d: %d bytes, %d rounds", i, p.Size(), len(b.Rounds))
	}
	events, plan, _ := trail(t, h.batches)
	require.Equal(t, "succeeded", plan.Status)
	require.Equal(t, api.KindHandoff, events[len(events)-1].Kind)
	dropped := 0
	for _, e := range events {
		if e.Kind == audit.KindDropped {
			var n int
			_, err := fmt.Sscan(e.To, &n)
			require.NoError(t, err)
			dropped += n
		}
	}
	var written []string
	seen := map[string]bool{}
	for _, b := range h.batches {
		for _, r := range b.Rounds {
			k := fmt.Sprintf("%s/%05d", r.ActivityID, r.Seq)
			require.False(t, seen[k], "round %s written twice", k)
			seen[k] = true
			written = append(written, k)
		}
	}
	require.True(t, slices.IsSorted(written), "rounds written in order")
	require.Equal(t, h.scripts*perWatch, len(written)+dropped, "every round written or counted as dropped")
	t.Logf("%d batches written, %d rounds, %d dropped, %s", len(h.batches), len(written), dropped, (*trails)[0])
}

// TestDecidedRolloutHandsOffItsNotifications: a decided rollout whose
// outcome notification cannot be delivered (the receiver is down) completes
// within AuditCloseWait instead of waiting out the Notify retries (about 5
// minutes, review finding 7); its trail workflow delivers the notification
// once the receiver is back, and the audit trail says it was handed over.
func TestDecidedRolloutHandsOffItsNotifications(t *testing.T) {
	s := testSpec(spec.Canary)
	s.Notifications = []spec.Notification{{Name: "ops", Webhook: "http://127.0.0.1:1/hook"}}
	receiverDown := func(h *harness) {
		h.onConverge = func(c int) {
			if c == 4 { // the final converge
				h.notifyErr = errors.New("connect: connection refused") // mu held
			}
		}
		h.env.RegisterDelayedCallback(func() {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.notifyErr = nil
		}, 16*time.Minute)
	}

	h := newHarness(t)
	h.env.SetDetachedChildWait(false)
	receiverDown(h)
	start := h.env.Now()
	res := h.run(s)
	require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
	ended := h.env.Now()
	t.Logf("decided at %s, workflow ended at %s, receiver back at 16m", res.CompletedAt.Sub(start), ended.Sub(start))
	require.LessOrEqual(t, ended.Sub(*res.CompletedAt), AuditCloseWait+5*time.Second,
		"a decided rollout waits at most AuditCloseWait for its notifications")

	h = newHarness(t)
	receiverDown(h)
	res = h.run(s)
	require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
	var kinds []string
	for _, ev := range h.notified {
		if len(kinds) == 0 || kinds[len(kinds)-1] != ev.Kind {
			kinds = append(kinds, ev.Kind)
		}
		require.Equal(t, res.WorkflowID+"/"+res.RunID+"/"+ev.Kind, ev.Key, "the run's own idempotency key")
	}
	require.Equal(t, []string{"started", "succeeded"}, kinds)
	require.Greater(t, len(h.notified), 2, "the outcome was retried")
	require.Nil(t, h.notifyErr)
	events, _, _ := trail(t, h.batches)
	last := events[len(events)-1]
	require.Equal(t, api.KindHandoff, last.Kind)
	require.Contains(t, last.Reason, "1 notifications not delivered within 10s of the outcome (succeeded) are sent by workflow "+TrailID(res.WorkflowID, res.RunID))
	require.NotContains(t, last.Reason, "audit store", "the trail itself was written in time")
}

// TestDecidedReleaseEndsDuringAuditOutage: a release decided while the
// audit store is down completes within AuditCloseWait of its outcome (its
// rollouts too, each handing off its own trail), and its trail workflow
// writes the release's trail once the store is back, ending with the
// hand-off event.
func TestDecidedReleaseEndsDuringAuditOutage(t *testing.T) {
	const outage = 2 * time.Hour
	clean := newHarness(t)
	clean.runRelease(threeTier())
	last := len(clean.converges) // the store goes down at the last converge

	h := newHarness(t)
	h.env.SetDetachedChildWait(false)
	outageFrom(h, last, outage)
	trails := trailsStarted(h)
	start := h.env.Now()
	res := h.runRelease(threeTier())
	require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
	ended := h.env.Now()
	require.Less(t, ended.Sub(start), outage)
	require.LessOrEqual(t, ended.Sub(*res.CompletedAt), AuditCloseWait+5*time.Second,
		"a decided release waits at most AuditCloseWait for its audit trail")
	require.True(t, slices.ContainsFunc(*trails, func(s string) bool {
		return strings.HasPrefix(s, TrailID(res.WorkflowID, res.RunID)+"@")
	}), "the release handed its trail off: %v", *trails)

	h = newHarness(t)
	outageFrom(h, last, outage)
	res = h.runRelease(threeTier())
	require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
	var mine []audit.Batch
	for _, b := range h.batches {
		if b.WorkflowID == res.WorkflowID {
			mine = append(mine, b)
		}
	}
	events, plan, _ := trail(t, mine) // numbered 1, 2, 3... once each
	require.Equal(t, "succeeded", plan.Status)
	require.Equal(t, api.KindHandoff, events[len(events)-1].Kind)
	require.Equal(t, TrailID(res.WorkflowID, res.RunID), events[len(events)-1].To)
	require.Equal(t, audit.KindOutcome, events[len(events)-2].Kind)
}
