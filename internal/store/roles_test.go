//go:build integration

package store_test

import (
	"errors"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/stagecraft/stagecraft/internal/itest"
	"github.com/stagecraft/stagecraft/internal/store"
)

// testRoles applies deployments/postgres/roles.sql to a migrated database
// and checks what each role may do: the worker writes (and rewrites) whole
// batches but can neither change nor remove an event or a round; the reader
// only reads; and even the tables' owner cannot change or remove events and
// rounds (the append-only triggers).
func testRoles(t *testing.T, pg *itest.Postgres) {
	ctx := testContext(t)
	dsn := newDatabase(t, pg)
	if _, err := store.Migrate(ctx, dsn); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(dsn)
	as := func(user string) string {
		v := *u
		v.User = url.UserPassword(user, "test-password")
		return v.String()
	}
	psql, err := exec.LookPath("psql")
	if err != nil {
		matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/psql")
		if len(matches) == 0 {
			t.Fatal("no psql: scripts/postgres.sh install puts Debian's postgresql in place")
		}
		psql = matches[0]
	}
	roles := filepath.Join(itest.Root(), "deployments", "postgres", "roles.sql")
	if out, err := exec.Command(psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-v", "worker_password=test-password",
		"-v", "reader_password=test-password", "-d", as("postgres"), "-f", roles).CombinedOutput(); err != nil {
		t.Fatalf("psql -f roles.sql: %v\n%s", err, out)
	}

	// The worker role writes whole batches, twice (the upserts of plans and
	// stages update), and reads them back.
	w, err := store.Open(ctx, as("stagecraft_worker"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	b := fullBatch("deploy:docker:roles", "run-1", "roles", base)
	for i := range 2 {
		if err := w.Write(ctx, b); err != nil {
			t.Fatalf("write %d as stagecraft_worker: %v", i+1, err)
		}
	}
	b.Plan.Status = "succeeded"
	if err := w.Write(ctx, b); err != nil {
		t.Fatalf("update the plan as stagecraft_worker: %v", err)
	}
	assertCounts(t, w, "deploy:docker:roles", "run-1", store.Counts{Plans: 1, Stages: 3, Events: 6, Checks: 6, Rounds: 5})

	refused := func(who, q, want string) {
		t.Helper()
		_, err := connect(t, as(who)).Exec(ctx, q)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "42501" || !strings.Contains(pe.Message, want) {
			t.Errorf("%s: %q: err = %v; want insufficient_privilege mentioning %q", who, q, err, want)
		}
	}
	owner := u.User.Username()
	for _, table := range []string{"deployment_events", "check_rounds"} {
		refused("stagecraft_worker", "DELETE FROM "+table, "permission denied")
		refused("stagecraft_worker", "UPDATE "+table+" SET workflow_id = 'x'", "permission denied")
		refused("stagecraft_worker", "TRUNCATE "+table, "permission denied")
		refused(owner, "DELETE FROM "+table, "append-only")
		refused(owner, "UPDATE "+table+" SET workflow_id = 'x'", "append-only")
		refused(owner, "TRUNCATE "+table, "append-only")
	}
	for _, table := range []string{"deployment_plans", "deployment_stages"} {
		refused("stagecraft_worker", "DELETE FROM "+table, "permission denied")
		refused("stagecraft_reader", "UPDATE "+table+" SET workflow_id = 'x'", "permission denied")
	}
	refused("stagecraft_reader", "INSERT INTO deployment_events (workflow_id, run_id, seq, at, kind) VALUES ('x', 'y', 1, now(), 'phase')", "permission denied")

	r, err := store.Open(ctx, as("stagecraft_reader"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	tr, err := r.Trail(ctx, "deploy:docker:roles", "")
	if err != nil {
		t.Fatalf("read the trail as stagecraft_reader: %v", err)
	}
	if len(tr.Events) != 6 {
		t.Errorf("reader sees %d events, want 6", len(tr.Events))
	}
}
