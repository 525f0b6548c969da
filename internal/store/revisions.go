package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/stagecraft/stagecraft/internal/audit"
)

// Revision is one past rollout of a target as the audit trail holds it:
// its plan row (with the spec it ran) and its number among the target's
// rollouts in the order the trail recorded them, oldest 1.
type Revision struct {
	Number int `json:"revision"`
	audit.Plan
}

// clearHold is the strategy of the plan row a clear-hold writes under the
// target's workflow ID (activities.ActionClearHold): not a rollout.
const clearHold = "clear-hold"

// Revisions returns the rollouts of the target whose workflow ID is
// workflowID, newest first (by when they started), at most limit (0:
// defaultLimit), each numbered by its place among all of them in the order
// their rows were recorded (id), oldest 1. Rows are never removed and a
// clear-hold's row is none of them, so a number, once listed, names the
// same revision for good (an operator reads it from `starter revisions`
// and passes it to `undo --to`); a run whose row was recorded late (the
// store was down and its trail caught up after a newer run's) takes the
// next number then, not a place among the older ones.
func (s *Store) Revisions(ctx context.Context, workflowID string, limit int) ([]Revision, error) {
	if limit <= 0 {
		limit = defaultLimit
	}
	limit = min(limit, maxLimit)
	rows, err := s.pool.Query(ctx, `
SELECT n, `+planColumns+` FROM (
    SELECT row_number() OVER (ORDER BY id) AS n, *
    FROM deployment_plans WHERE workflow_id = $1 AND strategy <> $2) p
ORDER BY p.created_at DESC, p.id DESC
LIMIT $3`, workflowID, clearHold, limit)
	if err != nil {
		return nil, fmt.Errorf("audit store: revisions of %s: %w", workflowID, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Revision, error) {
		var r Revision
		err := row.Scan(append([]any{&r.Number}, planDest(&r.Plan)...)...)
		r.Plan = utcPlan(r.Plan)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("audit store: revisions of %s: %w", workflowID, err)
	}
	return out, nil
}

// Targets returns the workflow IDs of the rollouts of service (every
// target a service of that name was rolled out to), sorted.
func (s *Store) Targets(ctx context.Context, service string) ([]string, error) {
	rows, err := s.pool.Query(ctx, `
SELECT DISTINCT workflow_id FROM deployment_plans
WHERE service = $1 AND workflow_id LIKE 'deploy:%' AND strategy <> $2
ORDER BY workflow_id`, service, clearHold)
	if err != nil {
		return nil, fmt.Errorf("audit store: targets of service %s: %w", service, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("audit store: targets of service %s: %w", service, err)
	}
	return out, nil
}
