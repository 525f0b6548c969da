//go:build integration

package deployments_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/itest"
)

// docker runs the docker CLI and returns its stdout, stderr and exit code
// (-1 when it could not run).
func docker(ctx context.Context, args ...string) (stdout, stderr string, code int) {
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code = 0
	if err != nil {
		code = -1
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
	}
	return out.String(), errb.String(), code
}

// TestWorkerImage builds the worker image as scripts/image.sh does (under a
// tag of its own, removed at the end) and runs it: --help, migrate without
// and with a database (the one deployments/compose/postgres-init.sh
// creates), and a worker container polling a real Temporal dev server.
// Containers use the host's network to reach servers on 127.0.0.1.
func TestWorkerImage(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	image := fmt.Sprintf("stagecraft-worker:itest-%d", time.Now().UnixNano()%1_000_000_000)
	build := exec.CommandContext(ctx, "bash", filepath.Join(itest.Root(), "scripts", "image.sh"))
	build.Env = append(os.Environ(), "IMAGE="+image)
	out, err := build.CombinedOutput()
	require.NoError(t, err, "scripts/image.sh:\n%s", out)
	t.Cleanup(func() {
		if _, stderr, code := docker(context.Background(), "image", "rm", "-f", image); code != 0 {
			t.Errorf("remove %s: %s", image, stderr)
		}
	})
	user, _, code := docker(ctx, "image", "inspect", "-f", "{{.Config.User}}", image)
	require.Zero(t, code)
	require.Equal(t, "65532:65532", strings.TrimSpace(user), "non-root, numeric")

	t.Run("help", func(t *testing.T) {
		stdout, stderr, code := docker(ctx, "run", "--rm", image, "--help")
		require.Zero(t, code, stderr)
		require.Contains(t, stdout, "--address")
		require.Contains(t, stdout, "--database-url")
		stdout, stderr, code = docker(ctx, "run", "--rm", "--entrypoint", "starter", image, "--help")
		require.Zero(t, code, stderr)
		require.Contains(t, stdout, "deploy")
	})

	t.Run("migrate without a database", func(t *testing.T) {
		_, stderr, code := docker(ctx, "run", "--rm", image, "migrate")
		require.Equal(t, 1, code)
		require.Contains(t, stderr, "migrate: set DATABASE_URL or --database-url")
	})

	t.Run("migrate the database the compose init script creates", func(t *testing.T) {
		pg := itest.StartPostgres(t)
		initScript := exec.CommandContext(ctx, "bash", filepath.Join(itest.Root(), "deployments", "compose", "postgres-init.sh"))
		initScript.Env = append(os.Environ(), "PGHOST=127.0.0.1", fmt.Sprintf("PGPORT=%d", pg.Port),
			"POSTGRES_USER=postgres", "STAGECRAFT_DB=audit", "STAGECRAFT_DB_USER=auditor", "STAGECRAFT_DB_PASSWORD=secret")
		out, err := initScript.CombinedOutput()
		require.NoError(t, err, "postgres-init.sh:\n%s", out)
		dsn := fmt.Sprintf("postgres://auditor:secret@127.0.0.1:%d/audit?sslmode=disable", pg.Port)
		stdout, stderr, code := docker(ctx, "run", "--rm", "--network", "host", "-e", "DATABASE_URL="+dsn, image, "migrate")
		require.Zero(t, code, stderr)
		require.Contains(t, stdout, "audit store migrated")
	})

	t.Run("worker polls Temporal", func(t *testing.T) {
		srv, err := itest.DevServer(ctx)
		require.NoError(t, err)
		t.Cleanup(func() { _ = srv.Stop() })
		name := strings.ReplaceAll(image, ":", "-")
		_, stderr, code := docker(ctx, "run", "-d", "--name", name, "--network", "host", "--read-only",
			"-e", "TEMPORAL_ADDRESS="+srv.FrontendHostPort(), image)
		require.Zero(t, code, stderr)
		t.Cleanup(func() {
			if _, stderr, code := docker(context.Background(), "rm", "-f", name); code != 0 {
				t.Errorf("remove container %s: %s", name, stderr)
			}
		})
		c := srv.Client()
		itest.Eventually(t, 30*time.Second, "the container's worker polling task queue "+api.TaskQueue, func() bool {
			resp, err := c.DescribeTaskQueue(ctx, api.TaskQueue, enumspb.TASK_QUEUE_TYPE_WORKFLOW)
			return err == nil && len(resp.GetPollers()) > 0
		})
		_, logs, _ := docker(ctx, "logs", name)
		require.Contains(t, logs, "worker starting", "worker logs:\n%s", logs)
		t.Logf("worker container log:\n%s", logs)
	})
}
