//go:build faults

package faults

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	tclient "go.temporal.io/sdk/client"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/audit"
	"github.com/stagecraft/stagecraft/internal/control"
	"github.com/stagecraft/stagecraft/internal/itest"
	"github.com/stagecraft/stagecraft/internal/spec"
	"github.com/stagecraft/stagecraft/internal/store"
	"github.com/stagecraft/stagecraft/workflows"
)

// TestSecondRolloutWhilePostgresIsDown stops the audit store's PostgreSQL
// while a Docker canary bakes its first stage. The canary succeeds and its
// execution closes (within AuditCloseWait of its outcome, its trail handed
// to an AuditTrail workflow), so a second rollout of the same target, a
// hotfix back to v1 started with control.Start as the starter does, starts
// and succeeds with PostgreSQL still down (before, the first held the
// target's workflow ID until the database answered: "target is busy").
// PostgreSQL is then started again (the whole form keeps it down 10
// minutes), and both rollouts' trails must be complete (plan, every stage,
// every event ending with the outcome and the hand-off, every round) with
// no row twice.
func TestSecondRolloutWhilePostgresIsDown(t *testing.T) {
	t.Parallel()
	outage := time.Duration(0) // the bounded form: as long as the two rollouts take
	if full() {
		outage = 10 * time.Minute
	}
	began := time.Now()
	ctx := context.Background()
	r := newPlatRig(t)
	pg := itest.StartPostgres(t)
	r.worker(t, "--database-url", pg.DSN)
	service := itest.Name("pf-pgdown")
	platRemoveService(t, service)
	r.installV1(t, service, platV1)

	first := itest.DemoSpec(service, platV2, spec.Canary, 3)
	first.Strategy.Bake = spec.Duration(6 * time.Second)
	a := r.start(t, first)
	r.waitStage(t, a.WorkflowID, 0, api.StageValidating)
	pg.Stop(t)
	down := time.Now()
	var err error

	// The canary's outcome is decided; give its execution a minute more
	// than AuditCloseWait to close, then start the hotfix either way.
	var decided api.Status
	itest.Eventually(t, 2*time.Minute, "the canary's outcome is decided", func() bool {
		decided, err = control.Status(ctx, r.c, a.WorkflowID)
		return err == nil && decided.Outcome != ""
	})
	require.Equal(t, api.OutcomeSucceeded, decided.Outcome, decided.Error)
	closeBy := time.Now().Add(workflows.AuditCloseWait + time.Minute)
	for time.Now().Before(closeBy) && r.statusOf(t, a.WorkflowID) == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		time.Sleep(500 * time.Millisecond)
	}

	// The hotfix: the target is free although its last trail is not written.
	second := itest.DemoSpec(service, platV1, spec.Rolling, 3)
	b, err := control.Start(ctx, r.c, second)
	require.NoError(t, err, "a second rollout of the target starts while PostgreSQL is down")
	require.NotEqual(t, a.RunID, b.RunID)
	resA := r.wait(t, a, time.Minute)
	require.Equal(t, api.OutcomeSucceeded, resA.Outcome, resA.Error)
	require.NotNil(t, resA.CompletedAt)
	endedA := r.closedAt(t, a.WorkflowID, a.RunID).Sub(*resA.CompletedAt)
	trailA := workflows.TrailID(a.WorkflowID, a.RunID)
	require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, r.statusOf(t, trailA), "its trail waits for the database")
	resB := r.wait(t, b, 2*time.Minute)
	require.Equal(t, api.OutcomeSucceeded, resB.Outcome, resB.Error)
	endedB := r.closedAt(t, b.WorkflowID, b.RunID).Sub(*resB.CompletedAt)
	platRequireServing(t, service, platV1, "v1", 3)
	bothDone := time.Since(down)

	if rest := outage - time.Since(down); rest > 0 {
		time.Sleep(rest)
	}
	pg.Start(t)
	back := time.Now()
	downFor := back.Sub(down)

	runs := []platRun{{a, resA}, {b, resB}}
	itest.Eventually(t, 3*time.Minute, "both trail workflows complete", func() bool {
		for _, run := range runs {
			if r.statusOf(t, workflows.TrailID(run.started.WorkflowID, run.started.RunID)) != enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
				return false
			}
		}
		return true
	})
	complete := time.Since(back)

	st, err := store.Open(ctx, pg.DSN)
	require.NoError(t, err)
	defer st.Close()
	conn, err := pgx.Connect(ctx, pg.DSN)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var rows []string
	for _, run := range runs {
		n := r.checkHandedTrail(t, st, run)
		var events, distinctEvents, checks, distinctChecks int
		require.NoError(t, conn.QueryRow(ctx, `SELECT count(*), count(DISTINCT (workflow_id, run_id, seq)) FROM deployment_events WHERE workflow_id = $1 AND run_id = $2`,
			run.started.WorkflowID, run.started.RunID).Scan(&events, &distinctEvents))
		require.NoError(t, conn.QueryRow(ctx, `SELECT count(*), count(DISTINCT (activity_id, round_seq, result_index)) FROM check_rounds WHERE workflow_id = $1 AND run_id = $2`,
			run.started.WorkflowID, run.started.RunID).Scan(&checks, &distinctChecks))
		require.Equal(t, events, distinctEvents, "no event row twice")
		require.Equal(t, checks, distinctChecks, "no check row twice")
		rows = append(rows, fmt.Sprintf("%s run %s %s: 1 plan, %d stages, %d events (%d distinct), %d rounds, %d check rows (%d distinct)",
			run.res.Strategy, run.started.RunID[:8], run.res.Outcome, n.Stages, events, distinctEvents, n.Rounds, checks, distinctChecks))
	}
	t.Logf("PostgreSQL down %s; rollout 1 closed %s after its outcome, rollout 2 %s after its own; both ended %s into the outage; "+
		"both trails complete %s after PostgreSQL came back:\n  %s\n  total %s",
		downFor.Round(time.Second), endedA.Round(100*time.Millisecond), endedB.Round(100*time.Millisecond),
		bothDone.Round(time.Second), complete.Round(time.Second), strings.Join(rows, "\n  "), time.Since(began).Round(time.Second))
}

// closedAt is when a run's execution closed.
func (r *platRig) closedAt(t *testing.T, id, runID string) time.Time {
	t.Helper()
	d, err := r.c.DescribeWorkflowExecution(context.Background(), id, runID)
	require.NoError(t, err)
	require.NotNil(t, d.GetWorkflowExecutionInfo().GetCloseTime(), "%s is closed", id)
	return d.GetWorkflowExecutionInfo().GetCloseTime().AsTime()
}

// statusOf is the status of a workflow's latest run (unspecified when there
// is none).
func (r *platRig) statusOf(t *testing.T, id string) enumspb.WorkflowExecutionStatus {
	t.Helper()
	d, err := r.c.DescribeWorkflowExecution(context.Background(), id, "")
	if err != nil {
		return enumspb.WORKFLOW_EXECUTION_STATUS_UNSPECIFIED
	}
	return d.GetWorkflowExecutionInfo().GetStatus()
}

// checkHandedTrail checks the store's rows for a run whose trail was
// finished by its AuditTrail workflow: one plan row with the outcome, one
// row per stage with its final status, one row per event the run or its
// trail workflow asked the store to keep (numbered 1..n: the outcome, then
// the hand-off naming the trail workflow), and every round the watchers
// ran, less those the trail says were not kept.
func (r *platRig) checkHandedTrail(t *testing.T, st *store.Store, run platRun) store.Counts {
	t.Helper()
	ctx := context.Background()
	started, res := run.started, run.res
	trailID := workflows.TrailID(started.WorkflowID, started.RunID)
	seqs := map[int64]bool{}
	for _, src := range []control.Started{started, {WorkflowID: trailID}} {
		for _, b := range r.auditBatches(t, src) {
			require.Equal(t, started.WorkflowID, b.WorkflowID)
			require.Equal(t, started.RunID, b.RunID)
			for _, e := range b.Events {
				seqs[e.Seq] = true
			}
		}
	}
	counts, err := st.Counts(ctx, started.WorkflowID, started.RunID)
	require.NoError(t, err)
	require.Equal(t, 1, counts.Plans, "%s: plan row", res.Strategy)
	require.Equal(t, len(res.Stages), counts.Stages, "%s: stage rows", res.Strategy)
	require.Equal(t, len(seqs), counts.Events, "%s: one row per event the run and its trail recorded", res.Strategy)

	tr, err := st.Trail(ctx, started.WorkflowID, started.RunID)
	require.NoError(t, err)
	require.Equal(t, string(res.Outcome), tr.Plan.Status)
	require.Equal(t, res.Outcome == api.OutcomeSucceeded, tr.Plan.Success)
	require.Len(t, tr.Stages, len(res.Stages))
	for i, s := range tr.Stages {
		require.Equal(t, string(res.Stages[i].Status), s.Status, "stage %d", i)
		require.Equal(t, res.Stages[i].ChecksPassed, s.ChecksPassed, "stage %d", i)
	}
	dropped := 0
	for i, e := range tr.Events {
		require.Equal(t, int64(i+1), e.Seq, "events numbered without gap or repeat")
		if e.Kind == audit.KindDropped {
			var n int
			_, err := fmt.Sscan(e.To, &n)
			require.NoError(t, err)
			dropped += n
		}
	}
	require.GreaterOrEqual(t, len(tr.Events), 2)
	require.Equal(t, audit.KindOutcome, tr.Events[len(tr.Events)-2].Kind)
	handoff := tr.Events[len(tr.Events)-1]
	require.Equal(t, api.KindHandoff, handoff.Kind, "the trail says it was handed off")
	require.Equal(t, trailID, handoff.To)

	rounds := 0
	for _, s := range res.Stages {
		rounds += s.Rounds.Healthy + s.Rounds.Degraded + s.Rounds.Failed + s.Rounds.NoData
	}
	require.Equal(t, rounds-dropped, counts.Rounds, "%s: every round the watchers ran, once (%d not kept)", res.Strategy, dropped)
	return counts
}

// waitTrail waits (up to 3 minutes) for the AuditTrail workflow of a closed
// run to complete, if the run handed its trail to one, and reports whether
// it did. A run starts it before it closes, so after the close its absence
// means there is none.
func waitTrail(t *testing.T, c tclient.Client, workflowID, runID string) bool {
	t.Helper()
	id := workflows.TrailID(workflowID, runID)
	status := func() enumspb.WorkflowExecutionStatus {
		d, err := c.DescribeWorkflowExecution(context.Background(), id, "")
		if err != nil {
			return enumspb.WORKFLOW_EXECUTION_STATUS_UNSPECIFIED
		}
		return d.GetWorkflowExecutionInfo().GetStatus()
	}
	if status() == enumspb.WORKFLOW_EXECUTION_STATUS_UNSPECIFIED {
		return false
	}
	itest.Eventually(t, 3*time.Minute, id+" completes", func() bool {
		return status() == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED
	})
	return true
}
