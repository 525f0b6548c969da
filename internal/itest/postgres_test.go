//go:build integration

package itest_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stagecraft/stagecraft/internal/itest"
)

// TestPostgresOutage checks the throwaway cluster the audit store tests use:
// it takes connections on its DSN, refuses them while stopped, and keeps its
// data across a stop and a start.
func TestPostgresOutage(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pg := itest.StartPostgres(t)

	conn := connectPostgres(ctx, t, pg.DSN)
	var one int
	if err := conn.QueryRow(ctx, "select 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("select 1: got %d, %v", one, err)
	}
	if _, err := conn.Exec(ctx, "create table probe (id int primary key, note text not null)"); err != nil {
		t.Fatalf("create table: %v", err)
	}
	if _, err := conn.Exec(ctx, "insert into probe values (1, 'before the outage')"); err != nil {
		t.Fatalf("insert: %v", err)
	}
	_ = conn.Close(ctx)

	pg.Stop(t)
	down, cancelDown := context.WithTimeout(ctx, 5*time.Second)
	defer cancelDown()
	if c, err := pgx.Connect(down, pg.DSN); err == nil {
		_ = c.Close(down)
		t.Fatal("connected while the cluster is stopped")
	}

	pg.Start(t)
	conn = connectPostgres(ctx, t, pg.DSN)
	var note string
	if err := conn.QueryRow(ctx, "select note from probe where id = 1").Scan(&note); err != nil {
		t.Fatalf("select after restart: %v", err)
	}
	if note != "before the outage" {
		t.Fatalf("note after restart = %q, want %q", note, "before the outage")
	}
}

// connectPostgres opens a connection, closed when the test ends.
func connectPostgres(ctx context.Context, t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect %s: %v", dsn, err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}
