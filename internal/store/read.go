package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stagecraft/stagecraft/internal/audit"
	"github.com/stagecraft/stagecraft/internal/health"
)

// Filter selects rollouts for List; empty fields select all.
type Filter struct {
	Service, Status string
	// Limit bounds the rows returned: 0 means defaultLimit, and no more than
	// maxLimit are ever returned.
	Limit int
}

const (
	defaultLimit = 50
	maxLimit     = 1000
)

// Counts are one run's row counts, for tests that compare the store with a
// workflow's history.
type Counts struct {
	// Plans is 1 once the run's plan is stored, else 0.
	Plans  int
	Stages int
	Events int
	// Checks counts check results (not the placeholder row of a round that
	// had none).
	Checks int
	// Rounds counts distinct rounds, with or without results.
	Rounds int
}

// planColumns are deployment_plans' columns in scanPlan's order.
const planColumns = `p.workflow_id, p.run_id, p.execution_id, p.request_id, p.service, p.platform, p.strategy,
    p.target, p.image_from, p.image_to, p.status, p.success, p.rolled_back, p.error, p.stage_count, p.created_at,
    p.started_at, p.completed_at, p.state, p.spec, p.started_by, p.undo_of`

// planDest returns scan destinations for planColumns into p.
func planDest(p *audit.Plan) []any {
	return []any{&p.WorkflowID, &p.RunID, &p.ExecutionID, &p.RequestID, &p.Service, &p.Platform, &p.Strategy,
		&p.Target, &p.ImageFrom, &p.ImageTo, &p.Status, &p.Success, &p.RolledBack, &p.Error, &p.Stages,
		&p.CreatedAt, &p.StartedAt, &p.CompletedAt, &p.State, &p.Spec, &p.StartedBy, &p.UndoOf}
}

// utcPlan returns p with its times in UTC (pgx hands them back in local time).
func utcPlan(p audit.Plan) audit.Plan {
	p.CreatedAt = p.CreatedAt.UTC()
	p.StartedAt, p.CompletedAt = utc(p.StartedAt), utc(p.CompletedAt)
	return p
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// List returns the most recent rollouts first (by created_at), filtered by
// service and status, each with its number of events.
func (s *Store) List(ctx context.Context, f Filter) ([]audit.Summary, error) {
	query, args := listQuery(f)
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("audit store: list rollouts: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (audit.Summary, error) {
		var sum audit.Summary
		err := row.Scan(append(planDest(&sum.Plan), &sum.Events)...)
		sum.Plan = utcPlan(sum.Plan)
		return sum, err
	})
	if err != nil {
		return nil, fmt.Errorf("audit store: list rollouts: %w", err)
	}
	return out, nil
}

// listQuery builds List's query: only the conditions asked for, so the
// planner can use the service or status index.
func listQuery(f Filter) (string, []any) {
	var where []string
	var args []any
	add := func(column, value string) {
		args = append(args, value)
		where = append(where, column+" = $"+strconv.Itoa(len(args)))
	}
	if f.Service != "" {
		add("p.service", f.Service)
	}
	if f.Status != "" {
		add("p.status", f.Status)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = defaultLimit
	}
	limit = min(limit, maxLimit)
	args = append(args, limit)
	var b strings.Builder
	b.WriteString("SELECT " + planColumns + `,
    (SELECT count(*) FROM deployment_events e WHERE e.workflow_id = p.workflow_id AND e.run_id = p.run_id)
FROM deployment_plans p`)
	if len(where) > 0 {
		b.WriteString("\nWHERE " + strings.Join(where, " AND "))
	}
	b.WriteString("\nORDER BY p.created_at DESC, p.id DESC\nLIMIT $" + strconv.Itoa(len(args)))
	return b.String(), args
}

// Trail returns a rollout's audit trail. id is a workflow ID or a caller's
// execution ID (a workflow ID wins when both match); runID "" means the
// latest run (by created_at). A run given by ID whose plan is not stored yet
// still has a trail if any of its other records are. Returns an error
// wrapping ErrNotFound when there is none.
func (s *Store) Trail(ctx context.Context, id, runID string) (audit.Trail, error) {
	var t audit.Trail
	if id == "" {
		return t, fmt.Errorf("audit store: trail: %w: empty ID", ErrNotFound)
	}
	// One snapshot, so the plan, stages, events and rounds agree.
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly},
		func(tx pgx.Tx) error {
			var err error
			t, err = trail(ctx, tx, id, runID)
			return err
		})
	if err != nil {
		return audit.Trail{}, fmt.Errorf("audit store: trail of %q (run %q): %w", id, runID, err)
	}
	return t, nil
}

func trail(ctx context.Context, tx pgx.Tx, id, runID string) (audit.Trail, error) {
	t := audit.Trail{Stages: []audit.Stage{}, Events: []audit.Event{}, RoundsByStage: map[string]health.Counts{}}
	query := "SELECT " + planColumns + `
FROM deployment_plans p
WHERE (p.workflow_id = $1 OR p.execution_id = $1) AND ($2 = '' OR p.run_id = $2)
ORDER BY p.workflow_id = $1 DESC, p.created_at DESC, p.id DESC
LIMIT 1`
	err := tx.QueryRow(ctx, query, id, runID).Scan(planDest(&t.Plan)...)
	switch {
	case errors.Is(err, pgx.ErrNoRows) && runID != "":
		c, err := counts(ctx, tx, id, runID)
		if err != nil {
			return t, err
		}
		if c == (Counts{}) {
			return t, ErrNotFound
		}
		t.Plan = audit.Plan{WorkflowID: id, RunID: runID}
	case errors.Is(err, pgx.ErrNoRows):
		return t, ErrNotFound
	case err != nil:
		return t, fmt.Errorf("plan: %w", err)
	}
	t.Plan = utcPlan(t.Plan)
	wf, run := t.Plan.WorkflowID, t.Plan.RunID

	rows, _ := tx.Query(ctx, `
SELECT stage_index, name, strategy, target_percent, target_new, target_total, status, checks_passed, checks_failed,
    rounds_healthy, rounds_degraded, rounds_failed, rounds_no_data, instances_updated, instances_total, error,
    started_at, completed_at
FROM deployment_stages WHERE workflow_id = $1 AND run_id = $2 ORDER BY stage_index`, wf, run)
	t.Stages, err = pgx.AppendRows(t.Stages, rows, func(row pgx.CollectableRow) (audit.Stage, error) {
		var s audit.Stage
		err := row.Scan(&s.Index, &s.Name, &s.Strategy, &s.Percent, &s.TargetNew, &s.TargetTotal, &s.Status,
			&s.ChecksPassed, &s.ChecksFailed, &s.Rounds.Healthy, &s.Rounds.Degraded, &s.Rounds.Failed,
			&s.Rounds.NoData, &s.InstancesUpdated, &s.InstancesTotal, &s.Error, &s.StartedAt, &s.CompletedAt)
		s.StartedAt, s.CompletedAt = utc(s.StartedAt), utc(s.CompletedAt)
		return s, err
	})
	if err != nil {
		return t, fmt.Errorf("stages: %w", err)
	}

	rows, _ = tx.Query(ctx, `
SELECT seq, at, kind, stage_index, action, from_state, to_state, via, by_whom, reason, accepted, error
FROM deployment_events WHERE workflow_id = $1 AND run_id = $2 ORDER BY seq`, wf, run)
	t.Events, err = pgx.AppendRows(t.Events, rows, func(row pgx.CollectableRow) (audit.Event, error) {
		var e audit.Event
		err := row.Scan(&e.Seq, &e.At, &e.Kind, &e.Stage, &e.Action, &e.From, &e.To, &e.Via, &e.By, &e.Reason,
			&e.Accepted, &e.Error)
		e.At = e.At.UTC()
		return e, err
	})
	if err != nil {
		return t, fmt.Errorf("events: %w", err)
	}

	// A round's rows all carry its stage and verdict: count one per round.
	rows, _ = tx.Query(ctx, `
SELECT stage, round_verdict, count(*) FROM (
    SELECT DISTINCT activity_id, round_seq, stage, round_verdict
    FROM check_rounds WHERE workflow_id = $1 AND run_id = $2) r
GROUP BY stage, round_verdict`, wf, run)
	var stage, verdict string
	var n int
	_, err = pgx.ForEachRow(rows, []any{&stage, &verdict, &n}, func() error {
		t.Rounds = addRounds(t.Rounds, verdict, n)
		t.RoundsByStage[stage] = addRounds(t.RoundsByStage[stage], verdict, n)
		return nil
	})
	if err != nil {
		return t, fmt.Errorf("rounds: %w", err)
	}
	err = tx.QueryRow(ctx, `
SELECT count(*) FROM check_rounds WHERE workflow_id = $1 AND run_id = $2 AND result_index >= 0`, wf, run).
		Scan(&t.Checks)
	if err != nil {
		return t, fmt.Errorf("checks: %w", err)
	}
	return t, nil
}

// addRounds adds n rounds with the verdict to c. A verdict the store does
// not know counts as failed, as health ranks it.
func addRounds(c health.Counts, verdict string, n int) health.Counts {
	switch health.Verdict(verdict) {
	case health.Healthy:
		c.Healthy += n
	case health.Degraded:
		c.Degraded += n
	case health.NoData:
		c.NoData += n
	default:
		c.Failed += n
	}
	return c
}

// Counts returns one run's row counts.
func (s *Store) Counts(ctx context.Context, workflowID, runID string) (Counts, error) {
	c, err := counts(ctx, s.pool, workflowID, runID)
	if err != nil {
		return c, fmt.Errorf("audit store: counts of %s run %s: %w", workflowID, runID, err)
	}
	return c, nil
}

// querier is what counts needs of a pool or a transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func counts(ctx context.Context, q querier, workflowID, runID string) (Counts, error) {
	var c Counts
	err := q.QueryRow(ctx, `
SELECT
    (SELECT count(*) FROM deployment_plans WHERE workflow_id = $1 AND run_id = $2),
    (SELECT count(*) FROM deployment_stages WHERE workflow_id = $1 AND run_id = $2),
    (SELECT count(*) FROM deployment_events WHERE workflow_id = $1 AND run_id = $2),
    (SELECT count(*) FROM check_rounds WHERE workflow_id = $1 AND run_id = $2 AND result_index >= 0),
    (SELECT count(DISTINCT (activity_id, round_seq)) FROM check_rounds WHERE workflow_id = $1 AND run_id = $2)`,
		workflowID, runID).Scan(&c.Plans, &c.Stages, &c.Events, &c.Checks, &c.Rounds)
	return c, err
}
