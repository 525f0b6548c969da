//go:build integration

package store_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/audit"
	"github.com/stagecraft/stagecraft/internal/itest"
	"github.com/stagecraft/stagecraft/internal/store"
)

// planStatuses are every status a plan row holds (a rollout's phases and
// outcomes, a release's phases, a clear-hold's), each with whether it
// succeeded.
var planStatuses = []struct {
	status  string
	success bool
}{
	{"pending", false}, {"snapshot", false}, {"deploying", false}, {"validating", false}, {"paused", false},
	{"awaiting_approval", false}, {"keeping_blue", false}, {"awaiting_release", false}, {"finalizing", false},
	{"rolling_back", false}, {"verifying_rollback", false}, {"succeeded", true}, {"rolled_back", false},
	{"rollback_failed", false}, {"rejected", false}, {"prerequisites", false}, {"activating", false},
	{"integration_validation", false}, {"production_readiness", false}, {"committing", false},
	{"hold_cleared", true}, {"not_held", true},
}

// wantState is the state a plan of that status gets (api.PlanState; one
// that succeeded is COMPLETED).
func wantState(status string, success bool) string {
	if success {
		return string(api.StageCompleted)
	}
	return string(api.PlanState(api.Phase(status), api.Outcome(status)))
}

// A plan's state is in the lifecycle's names: written by the workflow,
// derived from its status when a writer leaves it out (as migration 3
// derived it for rows written before), and queried as stages are.
func testPlanState(t *testing.T, pg *itest.Postgres) {
	ctx := testContext(t)

	t.Run("migration derives it for rows written before", func(t *testing.T) {
		dsn := newDatabase(t, pg)
		if err := store.MigrateTo(ctx, dsn, 2); err != nil {
			t.Fatalf("migrate to 2: %v", err)
		}
		conn := connect(t, dsn)
		for i, p := range planStatuses {
			if _, err := conn.Exec(ctx, `INSERT INTO deployment_plans (workflow_id, run_id, status, success)
VALUES ('deploy:docker:old', $1, $2, $3)`, strconv.Itoa(i), p.status, p.success); err != nil {
				t.Fatalf("insert a row of migration 2: %v", err)
			}
		}
		if _, err := store.Migrate(ctx, dsn); err != nil {
			t.Fatalf("Migrate: %v", err)
		}
		for i, p := range planStatuses {
			var state string
			if err := conn.QueryRow(ctx, `SELECT state FROM deployment_plans WHERE run_id = $1`, strconv.Itoa(i)).Scan(&state); err != nil {
				t.Fatalf("state: %v", err)
			}
			if want := wantState(p.status, p.success); state != want {
				t.Errorf("a row of status %s written before migration 3 has state %q, want %q", p.status, state, want)
			}
		}
	})

	t.Run("written and queried as stages are", func(t *testing.T) {
		s, dsn := openStore(t, pg)
		for i, p := range planStatuses {
			b := audit.Batch{WorkflowID: "deploy:docker:s", RunID: strconv.Itoa(i),
				Plan: &audit.Plan{Service: "s", Status: p.status, Success: p.success, CreatedAt: base.Add(time.Duration(i) * time.Second)}}
			if err := s.Write(ctx, b); err != nil {
				t.Fatalf("Write: %v", err)
			}
			tr, err := s.Trail(ctx, "deploy:docker:s", b.RunID)
			if err != nil {
				t.Fatalf("Trail: %v", err)
			}
			if want := wantState(p.status, p.success); tr.Plan.State != want {
				t.Errorf("a plan of status %s written without a state reads back %q, want %q", p.status, tr.Plan.State, want)
			}
		}
		// The workflow's own state wins.
		b := fullBatch("deploy:docker:s", "own", "s", base.Add(time.Hour))
		b.Plan.Status, b.Plan.State = "paused", string(api.StageValidating)
		b.Stages[1].Status = string(api.StageRolledBack)
		if err := s.Write(ctx, b); err != nil {
			t.Fatalf("Write: %v", err)
		}
		conn := connect(t, dsn)
		var state string
		if err := conn.QueryRow(ctx, `SELECT state FROM deployment_plans WHERE run_id = 'own'`).Scan(&state); err != nil || state != "VALIDATING" {
			t.Errorf("a plan written with state VALIDATING stored %q (%v)", state, err)
		}
		// One query, the same names, for plans and stages.
		query := func(sql string) []string {
			rows, err := conn.Query(ctx, sql)
			if err != nil {
				t.Fatalf("%s: %v", sql, err)
			}
			defer rows.Close()
			var out []string
			for rows.Next() {
				var run string
				if err := rows.Scan(&run); err != nil {
					t.Fatal(err)
				}
				out = append(out, run)
			}
			return out
		}
		var wantPlans []string
		for i, p := range planStatuses {
			if wantState(p.status, p.success) == "ROLLED_BACK" {
				wantPlans = append(wantPlans, strconv.Itoa(i))
			}
		}
		if got := query(`SELECT run_id FROM deployment_plans WHERE state = 'ROLLED_BACK' ORDER BY created_at`); !slices.Equal(got, wantPlans) || len(got) == 0 {
			t.Errorf("plans WHERE state = 'ROLLED_BACK': %v, want %v", got, wantPlans)
		}
		if got := query(`SELECT run_id FROM deployment_stages WHERE status = 'ROLLED_BACK'`); !slices.Equal(got, []string{"own"}) {
			t.Errorf("stages WHERE status = 'ROLLED_BACK': %v, want [own]", got)
		}
	})
}

// Revisions lists a target's rollouts newest first, numbered oldest 1, each
// with the spec it ran, who started it and what it undid; a clear-hold's
// row is no revision.
func testRevisions(t *testing.T, pg *itest.Postgres) {
	ctx := testContext(t)
	s, _ := openStore(t, pg)
	type run struct {
		wf, run, service, image, strategy, status, by, undoOf string
	}
	runs := []run{ // oldest first
		{"deploy:docker:hello", "r1", "hello", "hello:v1", "recreate", "succeeded", "alice@h", ""},
		{"deploy:k8s:prod/hello", "k1", "hello", "hello:v1", "canary", "succeeded", "bob@h", ""},
		{"deploy:docker:hello", "r2", "hello", "hello:v2", "canary", "succeeded", "bob@h", ""},
		{"deploy:docker:hello", "clear", "hello", "", "clear-hold", "hold_cleared", "", ""},
		{"deploy:docker:hello", "r3", "hello", "hello:v3", "rolling", "rolled_back", "carol@h", ""},
		{"deploy:docker:hello", "r4", "hello", "hello:v2", "canary", "deploying", "dave@h", "r2"},
	}
	for i, r := range runs {
		at := base.Add(time.Duration(i) * time.Minute)
		spec, _ := json.Marshal(map[string]string{"image": r.image, "service": r.service})
		p := &audit.Plan{WorkflowID: r.wf, RunID: r.run, Service: r.service, ImageTo: r.image, Strategy: r.strategy,
			Status: r.status, Success: r.status == "succeeded" || r.status == "hold_cleared", CreatedAt: at, StartedAt: &at,
			Spec: spec, StartedBy: r.by, UndoOf: r.undoOf}
		if err := s.Write(ctx, audit.Batch{WorkflowID: r.wf, RunID: r.run, Plan: p}); err != nil {
			t.Fatalf("Write %s: %v", r.run, err)
		}
	}
	// A later write of r4 without spec, starter or undo keeps them.
	later := &audit.Plan{WorkflowID: "deploy:docker:hello", RunID: "r4", Service: "hello", ImageTo: "hello:v2",
		Strategy: "canary", Status: "succeeded", Success: true}
	if err := s.Write(ctx, audit.Batch{WorkflowID: later.WorkflowID, RunID: later.RunID, Plan: later}); err != nil {
		t.Fatalf("Write r4 again: %v", err)
	}

	revs, err := s.Revisions(ctx, "deploy:docker:hello", 0)
	if err != nil {
		t.Fatalf("Revisions: %v", err)
	}
	type row struct {
		n                                     int
		run, image, strategy, state, by, undo string
	}
	var got []row
	for _, r := range revs {
		got = append(got, row{r.Number, r.RunID, r.ImageTo, r.Strategy, r.State, r.StartedBy, r.UndoOf})
	}
	want := []row{
		{4, "r4", "hello:v2", "canary", "COMPLETED", "dave@h", "r2"},
		{3, "r3", "hello:v3", "rolling", "ROLLED_BACK", "carol@h", ""},
		{2, "r2", "hello:v2", "canary", "COMPLETED", "bob@h", ""},
		{1, "r1", "hello:v1", "recreate", "COMPLETED", "alice@h", ""},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Revisions:\n got %+v\nwant %+v", got, want)
	}
	var sp map[string]string
	if len(revs) > 0 {
		if err := json.Unmarshal(revs[0].Spec, &sp); err != nil || sp["image"] != "hello:v2" {
			t.Errorf("r4's spec after a write without one: %s (%v)", revs[0].Spec, err)
		}
	}
	if revs, err := s.Revisions(ctx, "deploy:docker:hello", 2); err != nil || len(revs) != 2 || revs[1].Number != 3 {
		t.Errorf("Revisions with limit 2: %+v, %v", revs, err)
	}
	t.Run("numbers never move", func(t *testing.T) { testRevisionNumbersStable(t, pg) })
	targets, err := s.Targets(ctx, "hello")
	if err != nil || !slices.Equal(targets, []string{"deploy:docker:hello", "deploy:k8s:prod/hello"}) {
		t.Errorf("Targets(hello) = %v, %v", targets, err)
	}
}

// A revision's number, once listed, names that revision for good: a run
// the trail records late (its batches handed to a trail workflow while a
// newer run was already written) takes the next number instead of moving
// the others, and a clear-hold's row takes none. The list stays newest
// first by when each run started.
func testRevisionNumbersStable(t *testing.T, pg *itest.Postgres) {
	ctx := testContext(t)
	s, _ := openStore(t, pg)
	write := func(run, strategy string, minute int) {
		t.Helper()
		at := base.Add(time.Duration(minute) * time.Minute)
		p := &audit.Plan{WorkflowID: "deploy:docker:n", RunID: run, Service: "n", ImageTo: "n:" + run,
			Strategy: strategy, Status: "succeeded", Success: true, CreatedAt: at, StartedAt: &at}
		if err := s.Write(ctx, audit.Batch{WorkflowID: p.WorkflowID, RunID: run, Plan: p}); err != nil {
			t.Fatalf("Write %s: %v", run, err)
		}
	}
	numbers := func() map[string]int {
		t.Helper()
		revs, err := s.Revisions(ctx, "deploy:docker:n", 0)
		if err != nil {
			t.Fatalf("Revisions: %v", err)
		}
		out := map[string]int{}
		for _, r := range revs {
			out[r.RunID] = r.Number
		}
		return out
	}
	write("a", "recreate", 0)
	write("c", "canary", 2)
	before := numbers()
	if want := map[string]int{"a": 1, "c": 2}; !reflect.DeepEqual(before, want) {
		t.Fatalf("numbers %v, want %v", before, want)
	}
	write("clear", "clear-hold", 3)
	write("b", "rolling", 1) // started before c, recorded after it
	after := numbers()
	if want := map[string]int{"a": 1, "c": 2, "b": 3}; !reflect.DeepEqual(after, want) {
		t.Errorf("after a late row and a clear-hold: numbers %v, want %v (a listed number never moves)", after, want)
	}
	revs, err := s.Revisions(ctx, "deploy:docker:n", 0)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, r := range revs {
		order = append(order, r.RunID)
	}
	if want := []string{"c", "b", "a"}; !slices.Equal(order, want) {
		t.Errorf("order %v, want %v (newest first by start)", order, want)
	}
}
