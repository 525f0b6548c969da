//go:build integration

package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/itest"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// imageExiter runs internal/platform/docker/testdata/exiter: up at once,
// exits EXIT_AFTER later with EXIT_CODE. Built here, FROM scratch.
const imageExiter = "stagecraft-exiter:e2e"

// TestCanaryRollsBackAVersionThatExitsAfterItsConverge runs a canary to a
// version whose process exits (code 3) 900 ms after it starts, so after its
// converge has returned (0.3-0.6 s after the start here: a converge no
// longer holds the new instances' 1 s stay-up window when a watch follows)
// and within that window: the bake's watch sees the exit (the platform's
// StayedUp) and fails the first stage, and the rollout rolls back to v1 with
// the container and its exit code in the reason. The health check is on a
// listener of the test's own, which always passes, so only the stay-up
// window can fail the stage; without the watch's half of it, the next
// stage's converge would catch the exit 10 s later, with another reason.
func TestCanaryRollsBackAVersionThatExitsAfterItsConverge(t *testing.T) {
	itest.StartWorker(t, tc, dc)
	buildExiter(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	service := itest.Name("e2e-exits")
	cleanup(t, service)
	v1 := installV1(t, service)

	s := demoSpec(service, imageExiter, spec.Canary, 3)
	s.Platform.Docker.Env = map[string]string{"EXIT_AFTER": "900ms", "EXIT_CODE": "3"}
	s.Strategy.Bake = spec.Duration(10 * time.Second)
	s.Health.Checks = []spec.Check{{Name: "listener", TCP: &spec.TCPCheck{Address: ln.Addr().String()}}}
	_, res := startAndWait(t, s)
	require.Equal(t, api.OutcomeRolledBack, res.Outcome, res.Error)
	require.Contains(t, res.Error, "is not running")
	require.Contains(t, res.Error, "exit code 3")
	require.Contains(t, res.Error, "health check failed", "the bake's watch, not a converge, failed the stage")
	require.Equal(t, api.StageRolledBack, res.Stages[0].Status)
	t.Logf("rolled back: %s", res.Error)
	require.True(t, res.Rollback.Verified)
	require.Equal(t, restorable(v1), restorable(instances(t, service)), "exactly the snapshot")
}

// buildExiter builds the exiter image (nothing is pulled).
func buildExiter(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "exiter")
	cmd := exec.Command("go", "build", "-o", bin, "./internal/platform/docker/testdata/exiter")
	cmd.Dir = itest.Root()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	exe, err := os.ReadFile(bin)
	require.NoError(t, err)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct {
		name string
		mode int64
		body []byte
	}{{"Dockerfile", 0o644, []byte("FROM scratch\nCOPY exiter /exiter\nENTRYPOINT [\"/exiter\"]\n")}, {"exiter", 0o755, exe}} {
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.body))}))
		_, err := tw.Write(f.body)
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := dc.ImageBuild(ctx, &buf, client.ImageBuildOptions{Tags: []string{imageExiter}, Remove: true, ForceRemove: true})
	require.NoError(t, err)
	defer func() { _ = res.Body.Close() }()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	require.NotContains(t, string(body), `"errorDetail"`, "docker build")
}
