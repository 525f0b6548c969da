//go:build integration

package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/stagecraft/stagecraft/internal/plan"
	"github.com/stagecraft/stagecraft/internal/platform"
)

// imageExiter runs testdata/exiter: up at once, exits EXIT_AFTER later with
// EXIT_CODE. Built by the test, FROM scratch: nothing is pulled.
const imageExiter = "stagecraft-exiter:itest"

var (
	exiterOnce sync.Once
	exiterErr  error
)

// buildExiter builds testdata/exiter into imageExiter, once per test binary.
func buildExiter(t *testing.T, cli *client.Client) {
	t.Helper()
	exiterOnce.Do(func() { exiterErr = buildExiterImage(cli) })
	if exiterErr != nil {
		t.Fatalf("build %s: %v", imageExiter, exiterErr)
	}
}

func buildExiterImage(cli *client.Client) error {
	dir, err := os.MkdirTemp("", "exiter")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	bin := filepath.Join(dir, "exiter")
	cmd := exec.Command("go", "build", "-o", bin, "./testdata/exiter")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %w: %s", err, out)
	}
	exe, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dockerfile := []byte("FROM scratch\nCOPY exiter /exiter\nENTRYPOINT [\"/exiter\"]\n")
	for _, f := range []struct {
		name string
		mode int64
		body []byte
	}{{"Dockerfile", 0o644, dockerfile}, {"exiter", 0o755, exe}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.body))}); err != nil {
			return err
		}
		if _, err := tw.Write(f.body); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := cli.ImageBuild(ctx, &buf, client.ImageBuildOptions{Tags: []string{imageExiter}, Remove: true, ForceRemove: true})
	if err != nil {
		return err
	}
	defer func() { _ = res.Body.Close() }()
	out, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	// The engine reports a failed step in the stream, not as an error.
	if strings.Contains(string(out), `"errorDetail"`) {
		return fmt.Errorf("docker build: %s", out)
	}
	return nil
}

// TestExitAfterStartFailsConverge checks that a container that starts, runs
// a little and exits fails the converge that started it, with its exit code
// in the reason: at once (the old settle caught that too, without the exit
// code), after 0.5 s and after 0.7 s, within the 1 s every container must
// stay up; with one replica, and with three.
func TestExitAfterStartFailsConverge(t *testing.T) {
	for _, tc := range []struct {
		name     string
		after    string
		replicas int
	}{
		{"100ms", "100ms", 1},
		{"500ms", "500ms", 1},
		{"700ms", "700ms", 1},
		{"700ms of 3", "700ms", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			buildExiter(t, e.cli)
			s := e.spec(imageExiter)
			s.Platform.Docker.Env = map[string]string{"EXIT_AFTER": tc.after, "EXIT_CODE": "3"}
			start := time.Now()
			_, err := e.p.Converge(e.ctx, platform.ConvergeRequest{Spec: s, Rollout: "r1",
				Desired: plan.Desired{New: tc.replicas, Traffic: plan.TrafficNew, Order: plan.Surge}})
			took := time.Since(start)
			if err == nil {
				t.Fatalf("converge of a container that exits %s after starting succeeded (in %v)", tc.after, took)
			}
			if !strings.Contains(err.Error(), instanceName(e.svc, "r1", 0)) && tc.replicas == 1 {
				t.Errorf("error %q does not name the container", err)
			}
			if !strings.Contains(err.Error(), "exit code 3") {
				t.Errorf("error %q does not give the container's exit code 3", err)
			}
			t.Logf("failed in %v: %v", took.Round(time.Millisecond), err)
		})
	}
}

// TestHealthyStartsPass checks that a healthy start passes the stay-up
// check: a 3-replica stage of the demo app from nothing, then a second
// rollout's 3 replicas replacing them. The time each converge took is
// logged, not asserted (the benchmarks measure it).
func TestHealthyStartsPass(t *testing.T) {
	e := newEnv(t)
	s := e.spec(imageV1)
	start := time.Now()
	res := e.converge(s, "r1", platform.Snapshot{}, plan.Desired{New: 3, Traffic: plan.TrafficNew, Order: plan.Surge})
	t.Logf("3 new from nothing: %v", time.Since(start).Round(time.Millisecond))
	checkCounts(t, res, 3, 0, 3)
	snap := e.snapshot()
	s2 := e.spec(imageV2)
	start = time.Now()
	res = e.converge(s2, "r2", snap, plan.Desired{New: 3, Old: 0, Traffic: plan.TrafficNew, Order: plan.Surge})
	t.Logf("3 new replacing 3: %v", time.Since(start).Round(time.Millisecond))
	checkCounts(t, res, 3, 0, 3)
	e.checkVersions(s2, "r2", snap, platform.WhichNew, 3, "v2")
	// A rerun starts nothing and so waits for nothing.
	start = time.Now()
	e.converge(s2, "r2", snap, plan.Desired{New: 3, Old: 0, Traffic: plan.TrafficNew, Order: plan.Surge})
	t.Logf("rerun: %v", time.Since(start).Round(time.Millisecond))
}
