//go:build integration

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/converter"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/audit"
	"github.com/stagecraft/stagecraft/internal/control"
	"github.com/stagecraft/stagecraft/internal/itest"
	"github.com/stagecraft/stagecraft/internal/spec"
	"github.com/stagecraft/stagecraft/internal/store"
	"github.com/stagecraft/stagecraft/workflows"
)

// auditStore starts a throwaway PostgreSQL, migrates it and opens the store.
func auditStore(t *testing.T) (*itest.Postgres, *store.Store) {
	t.Helper()
	pg := itest.StartPostgres(t)
	ctx := context.Background()
	_, err := store.Migrate(ctx, pg.DSN)
	require.NoError(t, err)
	st, err := store.Open(ctx, pg.DSN)
	require.NoError(t, err)
	t.Cleanup(st.Close)
	return pg, st
}

// auditedBatches decodes the input of every Audit activity the run's
// history scheduled: what the workflow asked the store to keep.
func auditedBatches(t *testing.T, workflowID, runID string) []audit.Batch {
	t.Helper()
	var out []audit.Batch
	for _, ev := range fetchHistory(t, workflowID, runID).Events {
		if ev.GetEventType() != enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED {
			continue
		}
		attrs := ev.GetActivityTaskScheduledEventAttributes()
		if attrs.GetActivityType().GetName() != "Audit" {
			continue
		}
		var b audit.Batch
		require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(attrs.GetInput(), &b))
		out = append(out, b)
	}
	return out
}

// checkTrail compares the store's rows for a finished rollout with its
// Temporal history and its result: one plan row, one row per stage with
// its final status, one event per transition and control action, and every
// health round the watchers ran, each exactly once.
func checkTrail(t *testing.T, st *store.Store, started control.Started, res api.Result) audit.Trail {
	t.Helper()
	ctx := context.Background()
	batches := auditedBatches(t, started.WorkflowID, started.RunID)
	// A run decided while the store was down handed the rest of its trail
	// to an AuditTrail workflow: its events are in that one's history too.
	trailID := workflows.TrailID(started.WorkflowID, started.RunID)
	_, err := tc.DescribeWorkflowExecution(ctx, trailID, "")
	handed := err == nil
	if handed {
		itest.Eventually(t, 3*time.Minute, trailID+" completes", func() bool {
			d, err := tc.DescribeWorkflowExecution(ctx, trailID, "")
			return err == nil && d.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED
		})
		batches = append(batches, auditedBatches(t, trailID, "")...)
	}
	seqs := map[int64]bool{}
	for _, b := range batches {
		for _, e := range b.Events {
			seqs[e.Seq] = true
		}
	}
	events := len(seqs)
	counts, err := st.Counts(ctx, started.WorkflowID, started.RunID)
	require.NoError(t, err)
	rounds := 0
	for _, s := range res.Stages {
		rounds += s.Rounds.Healthy + s.Rounds.Degraded + s.Rounds.Failed + s.Rounds.NoData
	}
	if res.Rollback != nil && res.Rollback.Verify != nil {
		rounds += res.Rollback.Verify.Rounds
	}
	t.Logf("history: %d audit batches, %d events; store: %+v; rounds run: %d", len(batches), events, counts, rounds)
	require.Equal(t, 1, counts.Plans)
	require.Equal(t, len(res.Stages), counts.Stages)
	require.Equal(t, events, counts.Events, "one row per event the workflow recorded")
	require.Equal(t, rounds, counts.Rounds, "every round the watchers ran, once")

	tr, err := st.Trail(ctx, started.WorkflowID, started.RunID)
	require.NoError(t, err)
	require.Equal(t, string(res.Outcome), tr.Plan.Status)
	require.Equal(t, res.Outcome == api.OutcomeSucceeded, tr.Plan.Success)
	for i, s := range tr.Stages {
		require.Equal(t, string(res.Stages[i].Status), s.Status, "stage %d", i)
		require.Equal(t, res.Stages[i].ChecksPassed, s.ChecksPassed, "stage %d", i)
	}
	for i, e := range tr.Events {
		require.Equal(t, int64(i+1), e.Seq)
	}
	var controls []audit.Event
	for _, e := range tr.Events {
		if e.Kind == audit.KindControl {
			controls = append(controls, e)
		}
	}
	require.Len(t, controls, len(res.Controls))
	for i, c := range res.Controls {
		require.Equal(t, c.Action, controls[i].Action)
		require.Equal(t, c.By, controls[i].By)
		require.Equal(t, c.Reason, controls[i].Reason)
		require.Equal(t, c.Accepted, controls[i].Accepted)
	}
	last := tr.Events[len(tr.Events)-1]
	if handed {
		require.Equal(t, api.KindHandoff, last.Kind, "the trail says it was handed off")
		last = tr.Events[len(tr.Events)-2]
	}
	require.Equal(t, audit.KindOutcome, last.Kind)
	return tr
}

// TestAuditTrailMatchesHistory: a Docker canary with an operator's pause
// and resume, audited into a real PostgreSQL; the rows match the history,
// and writing any batch again writes nothing new.
func TestAuditTrailMatchesHistory(t *testing.T) {
	pg, st := auditStore(t)
	itest.StartWorkerWith(t, tc, dc, itest.WorkerConfig{Store: st})
	service := itest.Name("e2e-audit")
	cleanup(t, service)
	installV1(t, service)

	s := demoSpec(service, "stagecraft-demo:v2", spec.Canary, 3)
	s.Strategy.Bake = spec.Duration(4 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	started, err := control.Start(ctx, tc, s)
	require.NoError(t, err)
	waitForStage(t, started.WorkflowID, 0, api.StageValidating)
	_, err = control.Act(ctx, tc, started.WorkflowID, api.UpdatePause, api.ControlRequest{By: "alice@example", Reason: "checking dashboards"})
	require.NoError(t, err)
	time.Sleep(time.Second)
	_, err = control.Act(ctx, tc, started.WorkflowID, api.UpdateResume, api.ControlRequest{By: "alice@example"})
	require.NoError(t, err)
	res, err := control.Wait(ctx, tc, started.WorkflowID, started.RunID, time.Second, nil)
	require.NoError(t, err)
	require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
	recordNamed(t, started.WorkflowID, started.RunID, "canary-audited-succeeded")

	tr := checkTrail(t, st, started, res)
	require.Equal(t, "checking dashboards", tr.Events[indexOfControl(tr.Events, api.SignalPause)].Reason)

	// Idempotent: every batch the history holds, written again, adds nothing.
	before, err := st.Counts(ctx, started.WorkflowID, started.RunID)
	require.NoError(t, err)
	for _, b := range auditedBatches(t, started.WorkflowID, started.RunID) {
		require.NoError(t, st.Write(ctx, b))
	}
	after, err := st.Counts(ctx, started.WorkflowID, started.RunID)
	require.NoError(t, err)
	require.Equal(t, before, after)

	// The CLI reads the same trail.
	out, _, code := runCLI(t, "--database-url", pg.DSN, "history", started.WorkflowID)
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "status    succeeded")
	require.Contains(t, out, `pause via update by alice@example "checking dashboards"`)
	out, _, code = runCLI(t, "--database-url", pg.DSN, "list", "--service", service, "--json")
	require.Equal(t, 0, code, out)
	var rows []audit.Summary
	require.NoError(t, json.Unmarshal([]byte(out), &rows))
	require.Len(t, rows, 2, "the v1 install and the canary")
	require.Equal(t, started.RunID, rows[0].RunID, "newest first")
}

func indexOfControl(events []audit.Event, action string) int {
	for i, e := range events {
		if e.Kind == audit.KindControl && e.Action == action {
			return i
		}
	}
	return -1
}

// TestAuditSurvivesAPostgresOutage stops PostgreSQL for 35 s in the middle
// of a Docker canary: the rollout goes on at its own pace and succeeds, and
// afterwards the trail is complete, with no duplicates.
func TestAuditSurvivesAPostgresOutage(t *testing.T) {
	pg, st := auditStore(t)
	itest.StartWorkerWith(t, tc, dc, itest.WorkerConfig{Store: st})
	service := itest.Name("e2e-outage")
	cleanup(t, service)
	installV1(t, service)

	s := demoSpec(service, "stagecraft-demo:v2", spec.Canary, 3)
	s.Strategy.Bake = spec.Duration(20 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	started, err := control.Start(ctx, tc, s)
	require.NoError(t, err)
	waitForStage(t, started.WorkflowID, 0, api.StageValidating)
	time.Sleep(3 * time.Second)
	pg.Stop(t)
	down := time.Now()
	time.Sleep(35 * time.Second)
	mid, err := control.Status(ctx, tc, started.WorkflowID)
	require.NoError(t, err)
	require.GreaterOrEqual(t, mid.CurrentStage, 1, "the rollout moved on while the database was down")
	pg.Start(t)
	t.Logf("PostgreSQL was down for %s; the rollout was at stage %d", time.Since(down).Round(time.Second), mid.CurrentStage+1)

	res, err := control.Wait(ctx, tc, started.WorkflowID, started.RunID, time.Second, nil)
	require.NoError(t, err)
	require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
	for i := 1; i < len(res.Stages); i++ {
		gap := res.Stages[i].StartedAt.Sub(*res.Stages[i-1].CompletedAt)
		require.Less(t, gap, 10*time.Second, "stage %d started without waiting for the database", i)
	}
	recordNamed(t, started.WorkflowID, started.RunID, "canary-audit-outage-succeeded")
	checkTrail(t, st, started, res)
}

// TestWorkerMigratesAndRunsWhilePostgresIsDown: `worker migrate` applies the
// schema once; a worker started while PostgreSQL is down still runs a
// rollout to its outcome, and the trail is written once PostgreSQL is back.
func TestWorkerMigratesAndRunsWhilePostgresIsDown(t *testing.T) {
	pg := itest.StartPostgres(t)
	for _, want := range []string{"3 migration(s) applied [1 2 3]", "0 migration(s) applied"} {
		out, err := exec.Command(workerB, "migrate", "--database-url", pg.DSN).CombinedOutput()
		require.NoError(t, err, string(out))
		require.Contains(t, string(out), want)
	}
	pg.Stop(t)

	var logs bytes.Buffer
	cmd := exec.Command(workerB, "--address", server.FrontendHostPort(), "--log-level", "warn", "--database-url", pg.DSN)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	service := itest.Name("e2e-pgdown")
	cleanup(t, service)
	s := demoSpec(service, "stagecraft-demo:v1", spec.Recreate, 2)
	s.Strategy.Bake = spec.Duration(time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	started, err := control.Start(ctx, tc, s)
	require.NoError(t, err)
	outcome, err := control.WaitOutcome(ctx, tc, started.WorkflowID, started.RunID, time.Second, nil)
	require.NoError(t, err)
	require.Equal(t, api.OutcomeSucceeded, outcome.Outcome, outcome.Error)
	// Decided, it closes without the store: its trail workflow waits for it.
	res, err := control.Wait(ctx, tc, started.WorkflowID, started.RunID, time.Second, nil)
	require.NoError(t, err)
	d, err := tc.DescribeWorkflowExecution(ctx, workflows.TrailID(started.WorkflowID, started.RunID), "")
	require.NoError(t, err)
	require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, d.GetWorkflowExecutionInfo().GetStatus(),
		"the trail workflow waits for the store")

	pg.Start(t)
	st, err := store.Open(ctx, pg.DSN)
	require.NoError(t, err)
	defer st.Close()
	checkTrail(t, st, started, res)
	require.Contains(t, logs.String(), "audit store unavailable")
	recordNamed(t, started.WorkflowID, started.RunID, "recreate-audit-handoff-succeeded")
	recordNamed(t, workflows.TrailID(started.WorkflowID, started.RunID), "", "audit-trail")
}
