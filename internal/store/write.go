package store

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/audit"
)

// Bounds on the text the store keeps, in characters.
const (
	// maxError bounds error messages and reasons.
	maxError = 2000
	// maxExcerpt bounds evidence excerpts, which health already bounds to
	// spec.MaxOutputExcerpt bytes; this only guards the table.
	maxExcerpt = 1024
	// maxText bounds every other free-text column (names, targets, images).
	maxText = 1000
	// maxSpec bounds a plan's spec, in bytes of JSON; a larger one is not
	// kept.
	maxSpec = 256 << 10
)

// Write stores a batch in one transaction, idempotently: the plan and its
// stages are upserted by their keys with the batch's values, events and
// check rows are inserted once. Writing the same batch again changes
// nothing; the plan may come before, with or after its children.
func (s *Store) Write(ctx context.Context, b audit.Batch) error {
	if b.Empty() {
		return nil
	}
	if b.WorkflowID == "" || b.RunID == "" {
		return fmt.Errorf("audit store: batch without workflow ID (%q) or run ID (%q)", b.WorkflowID, b.RunID)
	}
	batch, rows := writeBatch(b)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		br := tx.SendBatch(ctx, batch)
		// One statement at a time, to know which row a refusal is about.
		for i := range rows {
			if _, err := br.Exec(); err != nil {
				_ = br.Close()
				return unstorable(b, rows[i], batch.QueuedQueries[i].SQL, err)
			}
		}
		return br.Close()
	})
	if ue := (*UnstorableError)(nil); errors.As(err, &ue) {
		return ue
	}
	if err != nil {
		return fmt.Errorf("audit store: write %s run %s (%d stages, %d events, %d rounds): %w",
			b.WorkflowID, b.RunID, len(b.Stages), len(b.Events), len(b.Rounds), err)
	}
	return nil
}

// writeBatch queues a batch's statements: plan, stages, events, check rows,
// each in key order, so two transactions writing overlapping rows lock them
// in the same order and cannot deadlock. rows names each statement's row,
// for errors.
func writeBatch(b audit.Batch) (batch *pgx.Batch, rows []string) {
	batch = &pgx.Batch{}
	if b.Plan != nil {
		rows = append(rows, "plan")
		p := b.Plan
		var created *time.Time
		if !p.CreatedAt.IsZero() {
			created = &p.CreatedAt
		}
		batch.Queue(upsertPlan, b.WorkflowID, b.RunID, text(p.ExecutionID, maxText), text(p.RequestID, maxText),
			text(p.Service, maxText), text(p.Platform, maxText), text(p.Strategy, maxText), text(p.Target, maxText),
			text(p.ImageFrom, maxText), text(p.ImageTo, maxText), text(p.Status, maxText), p.Success, p.RolledBack,
			text(p.Error, maxError), p.Stages, created, p.StartedAt, p.CompletedAt, text(planState(*p), maxText),
			specJSON(p.Spec), text(p.StartedBy, maxText), text(p.UndoOf, maxText))
	}
	for _, st := range sortedStages(b.Stages) {
		rows = append(rows, fmt.Sprintf("stage %d (%s)", st.Index, text(st.Name, maxText)))
		batch.Queue(upsertStage, b.WorkflowID, b.RunID, st.Index, text(st.Name, maxText), text(st.Strategy, maxText),
			st.Percent, st.TargetNew, st.TargetTotal, text(st.Status, maxText), st.ChecksPassed, st.ChecksFailed,
			st.Rounds.Healthy, st.Rounds.Degraded, st.Rounds.Failed, st.Rounds.NoData,
			st.InstancesUpdated, st.InstancesTotal, text(st.Error, maxError), st.StartedAt, st.CompletedAt)
	}
	for _, e := range sortedEvents(b.Events) {
		rows = append(rows, fmt.Sprintf("event %d", e.Seq))
		batch.Queue(insertEvent, b.WorkflowID, b.RunID, e.Seq, e.At, text(e.Kind, maxText), e.Stage,
			text(e.Action, maxText), text(e.From, maxText), text(e.To, maxText), text(e.Via, maxText),
			text(e.By, maxText), text(e.Reason, maxError), e.Accepted, text(e.Error, maxError))
	}
	for _, r := range checkRows(b.Rounds) {
		rows = append(rows, fmt.Sprintf("check round %q/%d result %d", r.ActivityID, r.RoundSeq, r.ResultIndex))
		batch.Queue(insertCheck, b.WorkflowID, b.RunID, r.ActivityID, r.RoundSeq, r.ResultIndex, r.Stage, r.Which,
			r.At, r.RoundVerdict, r.Check, r.Target, r.Verdict, r.LatencyMS, r.StatusCode, r.ExitCode, r.Value,
			r.Error, r.Excerpt)
	}
	return batch, rows
}

// The plan and stage upserts skip rows whose values are unchanged, so a
// repeated batch leaves updated_at and the table alone. A plan without
// created_at ($16 NULL) keeps the one stored, or gets now() when new; one
// without a spec ($20 NULL), started_by or undo_of (”) keeps the stored
// one, so a writer sends the spec once.
const (
	upsertPlan = `
INSERT INTO deployment_plans AS p (workflow_id, run_id, execution_id, request_id, service, platform, strategy,
    target, image_from, image_to, status, success, rolled_back, error, stage_count, created_at, started_at,
    completed_at, state, spec, started_by, undo_of)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, COALESCE($16, now()), $17, $18, $19,
    $20, $21, $22)
ON CONFLICT (workflow_id, run_id) DO UPDATE SET
    execution_id = EXCLUDED.execution_id, request_id = EXCLUDED.request_id, service = EXCLUDED.service,
    platform = EXCLUDED.platform, strategy = EXCLUDED.strategy, target = EXCLUDED.target,
    image_from = EXCLUDED.image_from, image_to = EXCLUDED.image_to, status = EXCLUDED.status,
    success = EXCLUDED.success, rolled_back = EXCLUDED.rolled_back, error = EXCLUDED.error,
    stage_count = EXCLUDED.stage_count, created_at = COALESCE($16, p.created_at),
    started_at = EXCLUDED.started_at, completed_at = EXCLUDED.completed_at, state = EXCLUDED.state,
    spec = COALESCE(EXCLUDED.spec, p.spec), started_by = COALESCE(NULLIF(EXCLUDED.started_by, ''), p.started_by),
    undo_of = COALESCE(NULLIF(EXCLUDED.undo_of, ''), p.undo_of), updated_at = now()
WHERE (p.execution_id, p.request_id, p.service, p.platform, p.strategy, p.target, p.image_from, p.image_to,
       p.status, p.success, p.rolled_back, p.error, p.stage_count, p.created_at, p.started_at, p.completed_at,
       p.state, p.spec, p.started_by, p.undo_of)
    IS DISTINCT FROM
      (EXCLUDED.execution_id, EXCLUDED.request_id, EXCLUDED.service, EXCLUDED.platform, EXCLUDED.strategy,
       EXCLUDED.target, EXCLUDED.image_from, EXCLUDED.image_to, EXCLUDED.status, EXCLUDED.success,
       EXCLUDED.rolled_back, EXCLUDED.error, EXCLUDED.stage_count, COALESCE($16, p.created_at),
       EXCLUDED.started_at, EXCLUDED.completed_at, EXCLUDED.state, COALESCE(EXCLUDED.spec, p.spec),
       COALESCE(NULLIF(EXCLUDED.started_by, ''), p.started_by), COALESCE(NULLIF(EXCLUDED.undo_of, ''), p.undo_of))`

	upsertStage = `
INSERT INTO deployment_stages AS s (workflow_id, run_id, stage_index, name, strategy, target_percent, target_new,
    target_total, status, checks_passed, checks_failed, rounds_healthy, rounds_degraded, rounds_failed,
    rounds_no_data, instances_updated, instances_total, error, started_at, completed_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)
ON CONFLICT (workflow_id, run_id, stage_index) DO UPDATE SET
    name = EXCLUDED.name, strategy = EXCLUDED.strategy, target_percent = EXCLUDED.target_percent,
    target_new = EXCLUDED.target_new, target_total = EXCLUDED.target_total, status = EXCLUDED.status,
    checks_passed = EXCLUDED.checks_passed, checks_failed = EXCLUDED.checks_failed,
    rounds_healthy = EXCLUDED.rounds_healthy, rounds_degraded = EXCLUDED.rounds_degraded,
    rounds_failed = EXCLUDED.rounds_failed, rounds_no_data = EXCLUDED.rounds_no_data,
    instances_updated = EXCLUDED.instances_updated, instances_total = EXCLUDED.instances_total,
    error = EXCLUDED.error, started_at = EXCLUDED.started_at, completed_at = EXCLUDED.completed_at
WHERE (s.name, s.strategy, s.target_percent, s.target_new, s.target_total, s.status, s.checks_passed,
       s.checks_failed, s.rounds_healthy, s.rounds_degraded, s.rounds_failed, s.rounds_no_data,
       s.instances_updated, s.instances_total, s.error, s.started_at, s.completed_at)
    IS DISTINCT FROM
      (EXCLUDED.name, EXCLUDED.strategy, EXCLUDED.target_percent, EXCLUDED.target_new, EXCLUDED.target_total,
       EXCLUDED.status, EXCLUDED.checks_passed, EXCLUDED.checks_failed, EXCLUDED.rounds_healthy,
       EXCLUDED.rounds_degraded, EXCLUDED.rounds_failed, EXCLUDED.rounds_no_data, EXCLUDED.instances_updated,
       EXCLUDED.instances_total, EXCLUDED.error, EXCLUDED.started_at, EXCLUDED.completed_at)`

	insertEvent = `
INSERT INTO deployment_events (workflow_id, run_id, seq, at, kind, stage_index, action, from_state, to_state, via,
    by_whom, reason, accepted, error)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
ON CONFLICT (workflow_id, run_id, seq) DO NOTHING`

	insertCheck = `
INSERT INTO check_rounds (workflow_id, run_id, activity_id, round_seq, result_index, stage, which, at,
    round_verdict, check_name, target, verdict, latency_ms, status_code, exit_code, value, error, excerpt)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
ON CONFLICT (workflow_id, run_id, activity_id, round_seq, result_index) DO NOTHING`
)

// planState is the plan's lifecycle state: its own, or else derived from
// its status as the migration derived it for rows written before (a plan
// that succeeded is COMPLETED whatever its status says, as a clear-hold
// row).
func planState(p audit.Plan) string {
	switch {
	case p.State != "":
		return p.State
	case p.Success:
		return string(api.StageCompleted)
	}
	return string(api.PlanState(api.Phase(p.Status), api.Outcome(p.Status)))
}

// specJSON is the spec as a jsonb parameter: NULL when there is none, so
// the stored one stays.
func specJSON(b json.RawMessage) any {
	if len(b) == 0 || len(b) > maxSpec || !json.Valid(b) {
		return nil
	}
	// jsonb refuses the NUL character that JSON text may escape.
	return strings.ReplaceAll(string(b), `\u0000`, `\ufffd`)
}

// sortedStages returns the stages by index. The sort is stable, so of two
// records of one stage the later one in the batch is written last and wins.
func sortedStages(in []audit.Stage) []audit.Stage {
	out := slices.Clone(in)
	slices.SortStableFunc(out, func(a, b audit.Stage) int { return cmp.Compare(a.Index, b.Index) })
	return out
}

// sortedEvents returns the events by sequence number (stable: of two events
// with one number, the first one in the batch is kept).
func sortedEvents(in []audit.Event) []audit.Event {
	out := slices.Clone(in)
	slices.SortStableFunc(out, func(a, b audit.Event) int { return cmp.Compare(a.Seq, b.Seq) })
	return out
}

// checkRow is one row of check_rounds: one result of a round, or the
// placeholder (ResultIndex -1) of a round without results.
type checkRow struct {
	ActivityID   string
	RoundSeq     int
	ResultIndex  int
	Stage        string
	Which        string
	At           time.Time
	RoundVerdict string
	Check        string
	Target       string
	Verdict      string
	LatencyMS    float64
	StatusCode   *int
	ExitCode     *int
	Value        *float64
	Error        string
	Excerpt      string
}

// checkRows flattens rounds into rows, in key order, with their text
// bounded.
func checkRows(rounds []audit.Round) []checkRow {
	var rows []checkRow
	for _, r := range rounds {
		row := checkRow{
			ActivityID: r.ActivityID, RoundSeq: r.Seq, ResultIndex: -1, Stage: text(r.Stage, maxText),
			Which: text(r.Which, maxText), At: r.At, RoundVerdict: text(string(r.Verdict), maxText),
		}
		if len(r.Results) == 0 {
			rows = append(rows, row)
			continue
		}
		for i, res := range r.Results {
			row := row
			row.ResultIndex = i
			row.Check = text(res.Check, maxText)
			row.Target = text(res.Target, maxText)
			row.Verdict = text(string(res.Verdict), maxText)
			row.LatencyMS = float64(res.Latency) / float64(time.Millisecond)
			if res.Code != 0 {
				code := res.Code
				row.StatusCode = &code
			}
			row.ExitCode = res.Exit
			row.Value = res.Value
			row.Error = text(res.Error, maxError)
			row.Excerpt = text(res.Excerpt, maxExcerpt)
			rows = append(rows, row)
		}
	}
	slices.SortStableFunc(rows, func(a, b checkRow) int {
		return cmp.Or(cmp.Compare(a.ActivityID, b.ActivityID), cmp.Compare(a.RoundSeq, b.RoundSeq),
			cmp.Compare(a.ResultIndex, b.ResultIndex))
	})
	return rows
}

// text makes s storable and bounded: valid UTF-8 (PostgreSQL refuses
// anything else), no NUL characters (text cannot hold them) and at most max
// characters, cut with a trailing "…".
func text(s string, limit int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "")
	}
	if len(s) <= limit || utf8.RuneCountInString(s) <= limit {
		return s
	}
	n, i := 0, 0
	for i = range s {
		if n == limit-1 {
			break
		}
		n++
	}
	return s[:i] + "…"
}

// UnstorableError says PostgreSQL refused a value of a batch for its
// characters: a byte sequence invalid in the database's encoding
// (SQLSTATE 22021, character_not_in_repertoire, e.g. a NUL in a key) or a
// character the encoding has no equivalent for (22P05,
// untranslatable_character, e.g. "→" in a LATIN1 database, which Open
// refuses, or a JSON "\u0000"). Writing the batch again cannot succeed, so it must not be
// retried as it is; Write returns it unwrapped, so its type name
// (UnstorableError) is what a Temporal retry policy's NonRetryableErrorTypes
// lists.
type UnstorableError struct {
	WorkflowID, RunID string
	// Row names the batch's row: "plan", "stage 1 (canary-50)", "event 7",
	// `check round "11"/2 result 0`.
	Row string
	// Field is the column whose value was refused; empty when PostgreSQL
	// did not say.
	Field    string
	SQLState string
	Err      error
}

func (e *UnstorableError) Error() string {
	field := ""
	if e.Field != "" {
		field = ", field " + e.Field
	}
	return fmt.Sprintf("audit store: write %s run %s: %s%s cannot be stored, not now nor on a retry (SQLSTATE %s): %v",
		e.WorkflowID, e.RunID, e.Row, field, e.SQLState, e.Err)
}

func (e *UnstorableError) Unwrap() error { return e.Err }

// unstorableCodes are the SQLSTATEs that refuse a value for its characters.
var unstorableCodes = map[string]bool{"22021": true, "22P05": true}

// unstorable returns err as an *UnstorableError about row when PostgreSQL
// refused a value of it for its characters, naming the column from the
// parameter the refusal's context names in sql; any other err as it is.
func unstorable(b audit.Batch, row, sql string, err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || !unstorableCodes[pe.Code] {
		return err
	}
	ue := &UnstorableError{WorkflowID: b.WorkflowID, RunID: b.RunID, Row: row, SQLState: pe.Code, Err: err}
	// PostgreSQL's context of a bad bind parameter:
	// "unnamed portal parameter $20 = '...'".
	if m := portalParameter.FindStringSubmatch(pe.Where); m != nil {
		n, _ := strconv.Atoi(m[1])
		if cols := insertColumns(sql); n >= 1 && n <= len(cols) {
			ue.Field = cols[n-1]
		}
	}
	return ue
}

var (
	portalParameter = regexp.MustCompile(`portal parameter \$(\d+)`)
	insertList      = regexp.MustCompile(`(?s)INSERT INTO \S+(?: AS \S+)? \(([^)]*)\)`)
)

// insertColumns are the columns an INSERT statement names, in the order of
// its parameters ($1 is the first).
func insertColumns(sql string) []string {
	m := insertList.FindStringSubmatch(sql)
	if m == nil {
		return nil
	}
	var cols []string
	for c := range strings.SplitSeq(m[1], ",") {
		cols = append(cols, strings.TrimSpace(c))
	}
	return cols
}
