//go:build integration

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/control"
	"github.com/stagecraft/stagecraft/internal/itest"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestSecretsStayOutOfHistoryLogsAndAudit runs the built worker with a
// secret in its environment, debug logs and an audit store; rolls out a
// Docker service whose spec references the secret, then a bad version that
// rolls back (so the snapshot is taken and restored). The containers hold
// the value; the worker's logs, every event of the rollouts' histories and
// every audit row do not.
func TestSecretsStayOutOfHistoryLogsAndAudit(t *testing.T) {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	secret := "s3cr3t-" + hex.EncodeToString(b)
	variable := "STAGECRAFT_E2E_SECRET_" + strings.ToUpper(hex.EncodeToString(b[:3]))

	pg := itest.StartPostgres(t)
	var logs lockedBuffer
	cmd := exec.Command(workerB, "--address", server.FrontendHostPort(), "--log-level", "debug", "--database-url", pg.DSN,
		"--secret-env-prefix", "STAGECRAFT_E2E_SECRET_")
	cmd.Env = append(os.Environ(), variable+"="+secret)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})

	service := itest.Name("e2e-secrets")
	cleanup(t, service)
	withSecret := func(s spec.Spec) spec.Spec {
		s.Platform.Docker.SecretEnv = map[string]spec.SecretRef{"DB_PASSWORD": {FromEnv: variable}}
		return s
	}
	v1 := withSecret(demoSpec(service, "stagecraft-demo:v1", spec.Recreate, 2))
	v1.Strategy.Bake = spec.Duration(time.Second)
	started1, res := startAndWait(t, v1)
	require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
	before := instances(t, service)
	require.Len(t, before, 2)
	for _, in := range before {
		require.Contains(t, in.Env, "DB_PASSWORD="+secret, "container %s", in.Name)
	}

	bad := withSecret(demoSpec(service, "stagecraft-demo:v2-bad", spec.Rolling, 2))
	started2, res := startAndWait(t, bad)
	require.Equal(t, api.OutcomeRolledBack, res.Outcome, res.Error)
	after := instances(t, service)
	require.Equal(t, restorable(before), restorable(after), "the rollback recreates the snapshot's containers, secret included")
	recreated := false
	for _, in := range after {
		require.Contains(t, in.Env, "DB_PASSWORD="+secret, "container %s", in.Name)
		recreated = recreated || !slices.ContainsFunc(before, func(b instance) bool { return b.Addr == in.Addr })
	}
	require.True(t, recreated, "the rollback recreated no container, so it never resolved a reference again")

	// A reference the worker cannot resolve rejects the rollout before any
	// change, naming the field and the variable.
	missing := withSecret(demoSpec(service, "stagecraft-demo:v2", spec.Recreate, 2))
	missing.Platform.Docker.SecretEnv["API_TOKEN"] = spec.SecretRef{FromEnv: variable + "_UNSET"}
	started3, res := startAndWait(t, missing)
	require.Equal(t, api.OutcomeRejected, res.Outcome, res.Error)
	t.Logf("rejected: %s", res.Error)
	require.Contains(t, res.Error, `platform.docker.secretEnv.API_TOKEN: environment variable "`+variable+`_UNSET" not found on the worker`)
	require.Equal(t, restorable(after), restorable(instances(t, service)), "a rejected rollout changed the containers")

	// The histories: every event as protojson (what the Web UI and the CLI
	// show) and in its wire form, where payloads are not base64.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var events int
	var history bytes.Buffer
	for _, st := range []control.Started{started1, started2, started3} {
		for runID := st.RunID; runID != ""; {
			it := tc.GetWorkflowHistory(ctx, st.WorkflowID, runID, false, 0)
			runID = ""
			for it.HasNext() {
				ev, err := it.Next()
				require.NoError(t, err)
				events++
				j, err := protojson.Marshal(ev)
				require.NoError(t, err)
				w, err := proto.Marshal(ev)
				require.NoError(t, err)
				history.Write(j)
				history.Write(w)
				if a := ev.GetWorkflowExecutionContinuedAsNewEventAttributes(); a != nil {
					runID = a.GetNewExecutionRunId()
				}
			}
		}
	}
	require.Contains(t, history.String(), variable, "the histories hold the reference (so their payloads were searched)")
	require.Contains(t, history.String(), `"secretEnv"`, "the snapshot in history holds references")
	require.Contains(t, history.String(), "GREETING=hi stagecraft-demo:v1", "a plain env value in the snapshot is found, so a secret would be")
	require.NotContains(t, history.String(), secret, "a workflow history holds the secret")

	// The audit trail: every row of every table, as text.
	conn, err := pgx.Connect(ctx, pg.DSN)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	tables, err := conn.Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'`)
	require.NoError(t, err)
	names, err := pgx.CollectRows(tables, pgx.RowTo[string])
	require.NoError(t, err)
	var rows int
	var trail strings.Builder
	for _, name := range names {
		q := "SELECT t::text FROM " + pgx.Identifier{name}.Sanitize() + " t"
		rs, err := conn.Query(ctx, q)
		require.NoError(t, err, q)
		texts, err := pgx.CollectRows(rs, pgx.RowTo[string])
		require.NoError(t, err, q)
		rows += len(texts)
		for _, s := range texts {
			trail.WriteString(s)
			trail.WriteByte('\n')
		}
	}
	require.Contains(t, trail.String(), service, "the audit trail holds the rollouts")
	require.NotContains(t, trail.String(), secret, "an audit row holds the secret")

	// The worker's own logs, at debug level.
	out := logs.String()
	require.Contains(t, out, "snapshot taken", "the worker logged its work")
	require.NotContains(t, out, secret, "the worker logged the secret")
	t.Logf("secret %s (in %s) found in neither %d history events of %d runs, %d audit rows in %d tables, nor %d bytes of debug logs",
		secret[:7]+"…", variable, events, 3, rows, len(names), len(out))
}
