package itest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Postgres is a throwaway PostgreSQL cluster that scripts/postgres.sh runs
// (Debian's server binaries) on 127.0.0.1, for the tests of the audit store.
type Postgres struct {
	// DSN connects as the owner of database stagecraft, e.g.
	// postgres://stagecraft@127.0.0.1:40123/stagecraft?sslmode=disable.
	DSN string
	// Dir holds the cluster: data/, postgres.log, postgres.pid, the socket.
	Dir string
	// Port is the 127.0.0.1 TCP port it listens on.
	Port int
}

// scriptTimeout bounds one run of scripts/postgres.sh; the script bounds its
// own waits (30s for start and for stop) well inside it.
const scriptTimeout = 2 * time.Minute

// StartPostgres starts a fresh cluster on a free 127.0.0.1 port, with a role
// and database stagecraft, and stops and removes it when the test ends.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatalf("postgres: pick a port: %v", err)
	}
	// Not t.TempDir(): its parent is 0700 to us, and as root the cluster runs
	// as user postgres, which must reach the dir.
	dir, err := os.MkdirTemp("", "stagecraft-postgres-")
	if err != nil {
		t.Fatalf("postgres: %v", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("postgres: %v", err)
	}
	p := &Postgres{Dir: dir, Port: port}
	// Registered before the start, so a start that fails half-way is cleaned
	// up too (stop is a no-op when nothing runs).
	t.Cleanup(func() {
		if _, err := postgresScript("stop", dir); err != nil {
			t.Errorf("%v", err)
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("postgres: remove %s: %v", dir, err)
		}
	})
	p.Start(t)
	return p
}

// Stop stops the cluster (a fast shutdown); its data stays for Start.
func (p *Postgres) Stop(t testing.TB) {
	t.Helper()
	if _, err := postgresScript("stop", p.Dir); err != nil {
		t.Fatalf("%v", err)
	}
}

// Start starts the cluster in p.Dir again (or for the first time) on p.Port.
func (p *Postgres) Start(t testing.TB) {
	t.Helper()
	out, err := postgresScript("start", p.Dir, strconv.Itoa(p.Port))
	if err != nil {
		t.Fatalf("%v", err)
	}
	dsn := strings.TrimSpace(out)
	if !strings.HasPrefix(dsn, "postgres://") {
		t.Fatalf("scripts/postgres.sh start printed %q, want a DSN", dsn)
	}
	p.DSN = dsn
}

// postgresScript runs scripts/postgres.sh with args and returns its stdout;
// the error carries its stderr.
func postgresScript(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
	defer cancel()
	script := filepath.Join(Root(), "scripts", "postgres.sh")
	cmd := exec.CommandContext(ctx, "bash", append([]string{script}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// Should anything the script starts keep its output open, do not wait
	// for it forever.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("scripts/postgres.sh %s: %w\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return stdout.String(), nil
}
