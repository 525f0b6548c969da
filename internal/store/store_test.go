//go:build integration

package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stagecraft/stagecraft/internal/audit"
	"github.com/stagecraft/stagecraft/internal/health"
	"github.com/stagecraft/stagecraft/internal/itest"
	"github.com/stagecraft/stagecraft/internal/store"
)

// TestStore runs the store against a real PostgreSQL (scripts/postgres.sh):
// one cluster, a fresh database per subtest.
func TestStore(t *testing.T) {
	pg := itest.StartPostgres(t)
	t.Run("Migrate", func(t *testing.T) { testMigrate(t, pg) })
	t.Run("MigrateConcurrently", func(t *testing.T) { testMigrateConcurrently(t, pg) })
	t.Run("WriteIsIdempotent", func(t *testing.T) { testWriteIdempotent(t, pg) })
	t.Run("LaterWritesOverwrite", func(t *testing.T) { testLaterWritesOverwrite(t, pg) })
	t.Run("ChildrenBeforePlan", func(t *testing.T) { testChildrenBeforePlan(t, pg) })
	t.Run("ConcurrentOverlappingWrites", func(t *testing.T) { testConcurrentWrites(t, pg) })
	t.Run("BoundedText", func(t *testing.T) { testBoundedText(t, pg) })
	t.Run("List", func(t *testing.T) { testList(t, pg) })
	t.Run("Trail", func(t *testing.T) { testTrail(t, pg) })
	t.Run("Roles", func(t *testing.T) { testRoles(t, pg) })
	t.Run("PlanState", func(t *testing.T) { testPlanState(t, pg) })
	t.Run("Revisions", func(t *testing.T) { testRevisions(t, pg) })
	t.Run("Unstorable", func(t *testing.T) { testUnstorable(t, pg) })
	// Last: it stops and starts the cluster every subtest shares.
	t.Run("Outage", func(t *testing.T) { testOutage(t, pg) })
}

func testMigrate(t *testing.T, pg *itest.Postgres) {
	ctx := testContext(t)
	dsn := newDatabase(t, pg)
	want := migrationVersions(t)
	applied, err := store.Migrate(ctx, dsn)
	if err != nil {
		t.Fatalf("Migrate on an empty database: %v", err)
	}
	if !slices.Equal(applied, want) {
		t.Fatalf("Migrate on an empty database applied %v, want %v", applied, want)
	}
	again, err := store.Migrate(ctx, dsn)
	if err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	if len(again) != 0 {
		t.Fatalf("second Migrate applied %v, want nothing", again)
	}
	conn := connect(t, dsn)
	for _, table := range []string{"deployment_plans", "deployment_stages", "deployment_events", "check_rounds"} {
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil || n != 0 {
			t.Errorf("table %s after Migrate: %d rows, %v", table, n, err)
		}
	}
}

// Workers starting at once all migrate: each version is applied once.
func testMigrateConcurrently(t *testing.T, pg *itest.Postgres) {
	ctx := testContext(t)
	dsn := newDatabase(t, pg)
	var mu sync.Mutex
	var all []int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			applied, err := store.Migrate(ctx, dsn)
			if err != nil {
				t.Errorf("concurrent Migrate: %v", err)
			}
			mu.Lock()
			all = append(all, applied...)
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.Sort(all)
	if want := migrationVersions(t); !slices.Equal(all, want) {
		t.Fatalf("concurrent Migrates applied %v together, want %v once each", all, want)
	}
}

func testWriteIdempotent(t *testing.T, pg *itest.Postgres) {
	ctx := testContext(t)
	s, dsn := openStore(t, pg)
	b := fullBatch("deploy:docker:hello", "run-1", "hello", base)
	if err := s.Write(ctx, b); err != nil {
		t.Fatalf("Write: %v", err)
	}
	want := store.Counts{Plans: 1, Stages: 3, Events: 6, Checks: 6, Rounds: 5}
	assertCounts(t, s, "deploy:docker:hello", "run-1", want)
	updated := planUpdatedAt(t, dsn, "deploy:docker:hello", "run-1")

	if err := s.Write(ctx, b); err != nil {
		t.Fatalf("Write again: %v", err)
	}
	assertCounts(t, s, "deploy:docker:hello", "run-1", want)
	if again := planUpdatedAt(t, dsn, "deploy:docker:hello", "run-1"); !again.Equal(updated) {
		t.Errorf("writing the same batch again moved updated_at from %v to %v", updated, again)
	}

	tr, err := s.Trail(ctx, "deploy:docker:hello", "")
	if err != nil {
		t.Fatalf("Trail: %v", err)
	}
	if !reflect.DeepEqual(tr.Plan, *b.Plan) {
		t.Errorf("plan read back:\n got %+v\nwant %+v", tr.Plan, *b.Plan)
	}
	if !reflect.DeepEqual(tr.Stages, b.Stages) {
		t.Errorf("stages read back:\n got %+v\nwant %+v", tr.Stages, b.Stages)
	}
	if !reflect.DeepEqual(tr.Events, b.Events) {
		t.Errorf("events read back:\n got %+v\nwant %+v", tr.Events, b.Events)
	}
	wantRounds := health.Counts{Healthy: 2, Degraded: 1, Failed: 1, NoData: 1}
	if tr.Rounds != wantRounds || tr.Checks != 6 {
		t.Errorf("trail rounds %+v, checks %d; want %+v, 6", tr.Rounds, tr.Checks, wantRounds)
	}
	wantByStage := map[string]health.Counts{
		"canary-10": {Healthy: 1, Failed: 1, NoData: 1},
		"canary-50": {Healthy: 1, Degraded: 1},
	}
	if !reflect.DeepEqual(tr.RoundsByStage, wantByStage) {
		t.Errorf("rounds by stage = %+v, want %+v", tr.RoundsByStage, wantByStage)
	}

	// The round without results is kept as one placeholder row.
	var n int
	err = connect(t, dsn).QueryRow(ctx, `SELECT count(*) FROM check_rounds
		WHERE workflow_id = $1 AND run_id = $2 AND result_index = -1 AND check_name = ''`,
		"deploy:docker:hello", "run-1").Scan(&n)
	if err != nil || n != 1 {
		t.Errorf("placeholder rows for the round without results: %d, %v; want 1", n, err)
	}
}

func testLaterWritesOverwrite(t *testing.T, pg *itest.Postgres) {
	ctx := testContext(t)
	s, dsn := openStore(t, pg)
	b := fullBatch("deploy:docker:hello", "run-1", "hello", base)
	if err := s.Write(ctx, b); err != nil {
		t.Fatalf("Write: %v", err)
	}
	updated := planUpdatedAt(t, dsn, "deploy:docker:hello", "run-1")

	done := base.Add(10 * time.Minute)
	plan := *b.Plan
	plan.Status, plan.Success, plan.CompletedAt, plan.State = "completed", true, &done, "COMPLETED"
	plan.CreatedAt = time.Time{}        // unknown: the stored one stays
	plan.Spec, plan.StartedBy = nil, "" // sent once: the stored ones stay
	stage := b.Stages[2]
	stage.Status, stage.ChecksPassed, stage.Rounds, stage.CompletedAt = "completed", 9, health.Counts{Healthy: 9}, &done
	later := audit.Batch{
		WorkflowID: "deploy:docker:hello", RunID: "run-1", Plan: &plan, Stages: []audit.Stage{stage},
		// Seq 1 again, different: events are written once, the first stays.
		Events: []audit.Event{{Seq: 1, At: done, Kind: audit.KindOutcome, To: "rewritten"},
			{Seq: 7, At: done, Kind: audit.KindOutcome, To: "completed", Accepted: true}},
	}
	if err := s.Write(ctx, later); err != nil {
		t.Fatalf("Write later batch: %v", err)
	}
	assertCounts(t, s, "deploy:docker:hello", "run-1", store.Counts{Plans: 1, Stages: 3, Events: 7, Checks: 6, Rounds: 5})
	if again := planUpdatedAt(t, dsn, "deploy:docker:hello", "run-1"); !again.After(updated) {
		t.Errorf("updated_at %v did not move past %v on a changed plan", again, updated)
	}
	tr, err := s.Trail(ctx, "deploy:docker:hello", "run-1")
	if err != nil {
		t.Fatalf("Trail: %v", err)
	}
	plan.CreatedAt, plan.Spec, plan.StartedBy = b.Plan.CreatedAt, b.Plan.Spec, b.Plan.StartedBy
	if !reflect.DeepEqual(tr.Plan, plan) {
		t.Errorf("plan after the later write:\n got %+v\nwant %+v", tr.Plan, plan)
	}
	if !reflect.DeepEqual(tr.Stages[2], stage) || !reflect.DeepEqual(tr.Stages[:2], b.Stages[:2]) {
		t.Errorf("stages after the later write: %+v", tr.Stages)
	}
	if tr.Events[0].To != b.Events[0].To || tr.Events[6].To != "completed" {
		t.Errorf("events after the later write: first %+v, last %+v", tr.Events[0], tr.Events[6])
	}
}

// Rounds from a watcher may land before the workflow writes the plan.
func testChildrenBeforePlan(t *testing.T, pg *itest.Postgres) {
	ctx := testContext(t)
	s, _ := openStore(t, pg)
	b := fullBatch("deploy:docker:early", "run-1", "early", base)
	children := b
	children.Plan = nil
	if err := s.Write(ctx, children); err != nil {
		t.Fatalf("Write without a plan: %v", err)
	}
	assertCounts(t, s, "deploy:docker:early", "run-1", store.Counts{Stages: 3, Events: 6, Checks: 6, Rounds: 5})
	if _, err := s.Trail(ctx, "deploy:docker:early", ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Trail of the latest run without any plan: %v, want ErrNotFound", err)
	}
	tr, err := s.Trail(ctx, "deploy:docker:early", "run-1")
	if err != nil {
		t.Fatalf("Trail of a run without its plan: %v", err)
	}
	if tr.Plan.WorkflowID != "deploy:docker:early" || tr.Plan.RunID != "run-1" || len(tr.Events) != 6 || tr.Checks != 6 {
		t.Errorf("trail of a run without its plan: %+v", tr)
	}
	if err := s.Write(ctx, audit.Batch{WorkflowID: b.WorkflowID, RunID: b.RunID, Plan: b.Plan}); err != nil {
		t.Fatalf("Write the plan: %v", err)
	}
	assertCounts(t, s, "deploy:docker:early", "run-1", store.Counts{Plans: 1, Stages: 3, Events: 6, Checks: 6, Rounds: 5})
	if tr, err := s.Trail(ctx, "deploy:docker:early", ""); err != nil || tr.Plan.Service != "early" {
		t.Errorf("Trail once the plan is in: %+v, %v", tr.Plan, err)
	}
}

// A watcher and the workflow's writer may write overlapping rounds at once:
// no deadlock, no duplicate.
func testConcurrentWrites(t *testing.T, pg *itest.Postgres) {
	ctx := testContext(t)
	s, _ := openStore(t, pg)
	var rounds []audit.Round
	for i := range 200 {
		rounds = append(rounds, round("w", i, "canary-10", health.Healthy, 3))
	}
	var wg sync.WaitGroup
	for w := range 8 {
		// Each writer a different overlapping slice, in its own order.
		part := slices.Clone(rounds[w*10 : 100+w*10])
		if w%2 == 1 {
			slices.Reverse(part)
		}
		wg.Go(func() {
			err := s.Write(ctx, audit.Batch{WorkflowID: "deploy:docker:busy", RunID: "run-1", Rounds: part})
			if err != nil {
				t.Errorf("concurrent Write %d: %v", w, err)
			}
		})
	}
	wg.Wait()
	assertCounts(t, s, "deploy:docker:busy", "run-1", store.Counts{Checks: 170 * 3, Rounds: 170})
}

func testBoundedText(t *testing.T, pg *itest.Postgres) {
	ctx := testContext(t)
	s, dsn := openStore(t, pg)
	r := round("w", 1, "canary", health.Failed, 1)
	r.Results[0].Error = strings.Repeat("é", 5000)
	r.Results[0].Excerpt = "bad \xff bytes and a NUL \x00 here"
	b := audit.Batch{WorkflowID: "deploy:docker:text", RunID: "run-1", Rounds: []audit.Round{r},
		Events: []audit.Event{{Seq: 1, At: base, Kind: audit.KindControl, Reason: strings.Repeat("r", 3000)}}}
	if err := s.Write(ctx, b); err != nil {
		t.Fatalf("Write unbounded text: %v", err)
	}
	conn := connect(t, dsn)
	var errLen int
	var excerpt string
	err := conn.QueryRow(ctx, `SELECT char_length(error), excerpt FROM check_rounds WHERE workflow_id = $1`,
		"deploy:docker:text").Scan(&errLen, &excerpt)
	if err != nil {
		t.Fatal(err)
	}
	if errLen != 2000 || excerpt != "bad \uFFFD bytes and a NUL  here" {
		t.Errorf("stored error of %d characters, excerpt %q", errLen, excerpt)
	}
	var reasonLen int
	if err := conn.QueryRow(ctx, `SELECT char_length(reason) FROM deployment_events`).Scan(&reasonLen); err != nil || reasonLen != 2000 {
		t.Errorf("stored reason of %d characters, %v; want 2000", reasonLen, err)
	}
}

// A value PostgreSQL refuses for its characters (22021 invalid in the
// database's encoding) can never be written: the error says so, is a
// *store.UnstorableError (which a caller must not retry) and names the row
// and the field. A database that would refuse some (22P05 without an
// equivalent in its encoding) is refused itself.
func testUnstorable(t *testing.T, pg *itest.Postgres) {
	ctx := testContext(t)
	t.Run("22021 a NUL in a key", func(t *testing.T) {
		s, _ := openStore(t, pg)
		b := fullBatch("deploy:docker:nul", "run-1", "nul", base)
		b.Rounds[3].ActivityID = "17\x00"
		err := s.Write(ctx, b)
		assertUnstorable(t, err, "22021", "check round \"17\\x00\"/1 result 0", "activity_id")
		assertCounts(t, s, "deploy:docker:nul", "run-1", store.Counts{})
	})
	// In a LATIN1 database, a spec's "\u2028" (as encoding/json writes
	// it) is refused with 22P05 on every try; in a SQL_ASCII one (an old
	// cluster made with the C locale) jsonb cannot take it either
	// ("conversion between UTF8 and SQL_ASCII is not supported", 0A000).
	// The store refuses such a database instead, when the worker starts.
	for _, enc := range []string{"LATIN1", "SQL_ASCII"} {
		t.Run("a "+enc+" database is refused before any change", func(t *testing.T) {
			dsn := newDatabase(t, pg, "ENCODING '"+enc+"' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0")
			applied, err := store.Migrate(ctx, dsn)
			if !errors.Is(err, store.ErrEncoding) || len(applied) != 0 {
				t.Fatalf("Migrate on a %s database = %v, %v; want ErrEncoding and nothing applied", enc, applied, err)
			}
			for _, want := range []string{enc, "ENCODING 'UTF8'"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Migrate's error %q does not say %q", err, want)
				}
			}
			conn, err := pgx.Connect(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			var tables int
			if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = 'public'`).Scan(&tables); err != nil || tables != 0 {
				t.Errorf("tables after the refused Migrate: %d, %v; want none", tables, err)
			}
			if s, err := store.Open(ctx, dsn); !errors.Is(err, store.ErrEncoding) {
				if s != nil {
					s.Close()
				}
				t.Errorf("Open on a %s database = %v, want ErrEncoding", enc, err)
			}
		})
	}
	t.Run("a transient error is not unstorable", func(t *testing.T) {
		s, _ := openStore(t, pg)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		err := s.Write(cctx, fullBatch("deploy:docker:x", "run-1", "x", base))
		if ue := (*store.UnstorableError)(nil); err == nil || errors.As(err, &ue) {
			t.Errorf("Write on a cancelled context = %v, want an error that is not unstorable", err)
		}
	})
}

// assertUnstorable checks err is a *store.UnstorableError of code naming
// row and field, and its message says which.
func assertUnstorable(t *testing.T, err error, code, row, field string) {
	t.Helper()
	var ue *store.UnstorableError
	if !errors.As(err, &ue) {
		t.Fatalf("Write = %v (%T), want a *store.UnstorableError", err, err)
	}
	if ue.SQLState != code || ue.Row != row || ue.Field != field {
		t.Errorf("unstorable: SQLSTATE %q, row %q, field %q; want %q, %q, %q", ue.SQLState, ue.Row, ue.Field, code, row, field)
	}
	for _, want := range []string{row, "field " + field, code, "deploy:docker:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}

func testList(t *testing.T, pg *itest.Postgres) {
	ctx := testContext(t)
	s, _ := openStore(t, pg)
	type rollout struct{ wf, service, status string }
	rollouts := []rollout{ // oldest first
		{"deploy:docker:a", "a", "completed"},
		{"deploy:docker:b", "b", "failed"},
		{"deploy:docker:a", "a", "failed"}, // a second run of a
		{"deploy:docker:c", "c", "running"},
		{"deploy:docker:b", "b", "completed"},
	}
	for i, r := range rollouts {
		created := base.Add(time.Duration(i) * time.Minute)
		b := audit.Batch{WorkflowID: r.wf, RunID: "run-" + strconv.Itoa(i),
			Plan:   &audit.Plan{Service: r.service, Status: r.status, Strategy: "canary", CreatedAt: created},
			Events: make([]audit.Event, i+1)}
		for j := range b.Events {
			b.Events[j] = audit.Event{Seq: int64(j + 1), At: created, Kind: audit.KindPhase}
		}
		if err := s.Write(ctx, b); err != nil {
			t.Fatalf("Write %d: %v", i, err)
		}
	}
	runs := func(sums []audit.Summary) []string {
		var out []string
		for _, s := range sums {
			out = append(out, s.RunID)
		}
		return out
	}
	tests := []struct {
		name string
		f    store.Filter
		want []string
	}{
		{"all, newest first", store.Filter{}, []string{"run-4", "run-3", "run-2", "run-1", "run-0"}},
		{"by service", store.Filter{Service: "a"}, []string{"run-2", "run-0"}},
		{"by status", store.Filter{Status: "completed"}, []string{"run-4", "run-0"}},
		{"by both", store.Filter{Service: "b", Status: "failed"}, []string{"run-1"}},
		{"limit", store.Filter{Limit: 2}, []string{"run-4", "run-3"}},
		{"none", store.Filter{Service: "nope"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.List(ctx, tt.f)
			if err != nil {
				t.Fatalf("List(%+v): %v", tt.f, err)
			}
			if !slices.Equal(runs(got), tt.want) {
				t.Errorf("List(%+v) = %v, want %v", tt.f, runs(got), tt.want)
			}
		})
	}
	got, err := s.List(ctx, store.Filter{Limit: 1})
	if err != nil || len(got) != 1 {
		t.Fatalf("List: %v, %v", got, err)
	}
	if sum := got[0]; sum.Events != 5 || sum.WorkflowID != "deploy:docker:b" || sum.Service != "b" ||
		!sum.CreatedAt.Equal(base.Add(4*time.Minute)) {
		t.Errorf("newest summary = %+v", sum)
	}
}

func testTrail(t *testing.T, pg *itest.Postgres) {
	ctx := testContext(t)
	s, _ := openStore(t, pg)
	first := fullBatch("deploy:k8s:prod/payment", "run-old", "payment", base)
	first.Plan.ExecutionID = "release-41"
	second := fullBatch("deploy:k8s:prod/payment", "run-new", "payment", base.Add(time.Hour))
	second.Plan.ExecutionID = "release-42"
	second.Events = second.Events[:2]
	other := fullBatch("deploy:docker:web", "run-web", "web", base.Add(2*time.Hour))
	other.Plan.ExecutionID = "release-41" // reused by the caller: the latest run with it wins
	for _, b := range []audit.Batch{second, first, other} {
		if err := s.Write(ctx, b); err != nil {
			t.Fatalf("Write %s/%s: %v", b.WorkflowID, b.RunID, err)
		}
	}
	tests := []struct {
		name, id, run string
		wantRun       string
		wantEvents    int
	}{
		{"workflow ID: latest run", "deploy:k8s:prod/payment", "", "run-new", 2},
		{"workflow ID and run", "deploy:k8s:prod/payment", "run-old", "run-old", 6},
		{"execution ID", "release-42", "", "run-new", 2},
		{"reused execution ID: latest run", "release-41", "", "run-web", 6},
		{"execution ID and run", "release-41", "run-old", "run-old", 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := s.Trail(ctx, tt.id, tt.run)
			if err != nil {
				t.Fatalf("Trail(%q, %q): %v", tt.id, tt.run, err)
			}
			if tr.Plan.RunID != tt.wantRun || len(tr.Events) != tt.wantEvents || len(tr.Stages) != 3 {
				t.Errorf("Trail(%q, %q): run %s with %d events, %d stages; want %s with %d events, 3 stages",
					tt.id, tt.run, tr.Plan.RunID, len(tr.Events), len(tr.Stages), tt.wantRun, tt.wantEvents)
			}
		})
	}
	for _, nf := range []struct{ id, run string }{
		{"deploy:docker:nothing", ""},
		{"deploy:k8s:prod/payment", "run-missing"},
		{"release-99", ""},
		{"", ""},
	} {
		if _, err := s.Trail(ctx, nf.id, nf.run); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Trail(%q, %q) = %v, want ErrNotFound", nf.id, nf.run, err)
		}
	}
}

// While the database is down writes fail; once it is back the same store
// writes again.
func testOutage(t *testing.T, pg *itest.Postgres) {
	ctx := testContext(t)
	s, _ := openStore(t, pg)
	b := fullBatch("deploy:docker:outage", "run-1", "outage", base)
	pg.Stop(t)
	short, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := s.Write(short, b); err == nil {
		t.Fatal("Write succeeded while the database was stopped")
	}
	pg.Start(t)
	if err := s.Write(ctx, b); err != nil {
		t.Fatalf("Write after the database came back: %v", err)
	}
	assertCounts(t, s, "deploy:docker:outage", "run-1", store.Counts{Plans: 1, Stages: 3, Events: 6, Checks: 6, Rounds: 5})
}

// BenchmarkWriteRounds writes batches as large as a watcher's backlog can
// grow (500 rounds, 5 results each), each a new set of rows.
func BenchmarkWriteRounds(b *testing.B) {
	pg := itest.StartPostgres(b)
	s, _ := openStore(b, pg)
	ctx := testContext(b)
	i := 0
	for b.Loop() {
		var rounds []audit.Round
		for j := range 500 {
			rounds = append(rounds, round("bench-"+strconv.Itoa(i), j, "canary", health.Healthy, 5))
		}
		i++
		if err := s.Write(ctx, audit.Batch{WorkflowID: "deploy:docker:bench", RunID: "run-1", Rounds: rounds}); err != nil {
			b.Fatalf("Write: %v", err)
		}
	}
	b.ReportMetric(float64(i*500*5)/b.Elapsed().Seconds(), "rows/s")
}

// base is a fixed time with microsecond precision, as PostgreSQL keeps.
var base = time.Date(2026, 11, 22, 9, 30, 0, 123456000, time.UTC)

// fullBatch is a whole rollout: its plan, 3 stages, 6 events, and 5 rounds
// from two watchers, one round without results.
func fullBatch(wf, run, service string, at time.Time) audit.Batch {
	ts := func(d time.Duration) *time.Time { t := at.Add(d); return &t }
	stage0, stage1 := 0, 1
	exit, value := 1, 0.02
	rounds := []audit.Round{
		round("11", 1, "canary-10", health.Healthy, 2),
		round("11", 2, "canary-10", health.Failed, 1),
		round("11", 3, "canary-10", health.NoData, 0),
		round("17", 1, "canary-50", health.Healthy, 2),
		round("17", 2, "canary-50", health.Degraded, 1),
	}
	rounds[1].Results[0].Exit = &exit
	rounds[3].Results[1].Value = &value
	return audit.Batch{
		WorkflowID: wf, RunID: run,
		Plan: &audit.Plan{
			WorkflowID: wf, RunID: run, RequestID: "sha256:abc", Service: service, Platform: "docker",
			Strategy: "canary", Target: "docker:" + service, ImageFrom: service + ":v1", ImageTo: service + ":v2",
			Status: "running", Stages: 3, CreatedAt: at, StartedAt: ts(time.Second), State: "IN_PROGRESS",
			// As jsonb gives it back.
			Spec: json.RawMessage(`{"image": "` + service + `:v2", "service": "` + service + `"}`), StartedBy: "alice@host",
		},
		Stages: []audit.Stage{
			{Index: 0, Name: "canary-10", Strategy: "canary", Percent: 10, TargetNew: 1, TargetTotal: 4,
				Status: "completed", ChecksPassed: 1, ChecksFailed: 1, Rounds: health.Counts{Healthy: 1, Failed: 1, NoData: 1},
				InstancesUpdated: 1, InstancesTotal: 4, StartedAt: ts(2 * time.Second), CompletedAt: ts(time.Minute)},
			{Index: 1, Name: "canary-50", Strategy: "canary", Percent: 50, TargetNew: 2, TargetTotal: 4,
				Status: "running", Rounds: health.Counts{Healthy: 1, Degraded: 1}, InstancesUpdated: 2,
				InstancesTotal: 4, StartedAt: ts(time.Minute)},
			{Index: 2, Name: "full", Strategy: "canary", Percent: 100, TargetNew: 4, TargetTotal: 4, Status: "pending",
				Error: "not yet"},
		},
		Events: []audit.Event{
			{Seq: 1, At: at, Kind: audit.KindPhase, From: "pending", To: "running", Accepted: true},
			{Seq: 2, At: at.Add(time.Second), Kind: audit.KindStage, Stage: &stage0, From: "pending", To: "running", Accepted: true},
			{Seq: 3, At: at.Add(30 * time.Second), Kind: audit.KindControl, Action: "pause", Via: "signal", By: "alice",
				Reason: "look first", Accepted: true},
			{Seq: 4, At: at.Add(40 * time.Second), Kind: audit.KindControl, Action: "promote", Via: "update", By: "bob",
				Error: "paused: resume first"},
			{Seq: 5, At: at.Add(time.Minute), Kind: audit.KindStage, Stage: &stage0, From: "running", To: "completed", Accepted: true},
			{Seq: 6, At: at.Add(time.Minute), Kind: audit.KindStage, Stage: &stage1, From: "pending", To: "running", Accepted: true},
		},
		Rounds: rounds,
	}
}

// round is a round with n results of its verdict.
func round(activity string, seq int, stage string, v health.Verdict, n int) audit.Round {
	r := audit.Round{ActivityID: activity, Seq: seq, Stage: stage, Which: "new",
		At: base.Add(time.Duration(seq) * time.Second), Verdict: v}
	for i := range n {
		r.Results = append(r.Results, health.Result{Check: fmt.Sprintf("check-%d", i), Target: "127.0.0.1:8080",
			Verdict: v, Latency: 3 * time.Millisecond, Code: 200, Excerpt: `{"status":"ok"}`})
	}
	return r
}

func assertCounts(t *testing.T, s *store.Store, wf, run string, want store.Counts) {
	t.Helper()
	got, err := s.Counts(testContext(t), wf, run)
	if err != nil {
		t.Fatalf("Counts: %v", err)
	}
	if got != want {
		t.Errorf("Counts(%s, %s) = %+v, want %+v", wf, run, got, want)
	}
}

// planUpdatedAt reads a plan's updated_at, which the API does not show.
func planUpdatedAt(t *testing.T, dsn, wf, run string) time.Time {
	t.Helper()
	var at time.Time
	err := connect(t, dsn).QueryRow(testContext(t),
		`SELECT updated_at FROM deployment_plans WHERE workflow_id = $1 AND run_id = $2`, wf, run).Scan(&at)
	if err != nil {
		t.Fatalf("updated_at: %v", err)
	}
	return at
}

// openStore migrates a fresh database and opens a store on it; it returns
// the database's DSN too, for looking at rows directly.
func openStore(t testing.TB, pg *itest.Postgres) (*store.Store, string) {
	t.Helper()
	ctx := testContext(t)
	dsn := newDatabase(t, pg)
	if _, err := store.Migrate(ctx, dsn); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	s, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(s.Close)
	return s, dsn
}

// newDatabase creates an empty database owned by the DSN's role, with the
// options given (e.g. an encoding), and returns a DSN for it.
func newDatabase(t testing.TB, pg *itest.Postgres, options ...string) string {
	t.Helper()
	u, err := url.Parse(pg.DSN)
	if err != nil {
		t.Fatalf("parse DSN %q: %v", pg.DSN, err)
	}
	owner := u.User.Username()
	name := "t_" + strings.ToLower(strings.NewReplacer("/", "_", "-", "_").Replace(t.Name()))
	name = name[:min(len(name), 63)]
	admin := *u
	admin.User, admin.Path = url.User("postgres"), "/postgres"
	conn := connect(t, admin.String())
	ctx := testContext(t)
	for _, q := range []string{
		"DROP DATABASE IF EXISTS " + pgx.Identifier{name}.Sanitize(),
		"CREATE DATABASE " + pgx.Identifier{name}.Sanitize() + " OWNER " + pgx.Identifier{owner}.Sanitize() +
			" " + strings.Join(options, " "),
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	u.Path = "/" + name
	return u.String()
}

// connect opens a plain connection, closed when the test ends.
func connect(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(testContext(t), dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// migrationVersions are the versions of the migration files, in order.
func migrationVersions(t *testing.T) []int64 {
	t.Helper()
	files, err := filepath.Glob("migrations/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("migration files: %v, %v", files, err)
	}
	var out []int64
	for _, f := range files {
		v, err := strconv.ParseInt(strings.SplitN(filepath.Base(f), "_", 2)[0], 10, 64)
		if err != nil {
			t.Fatalf("migration %s: %v", f, err)
		}
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}
