//go:build integration

package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/stagecraft/stagecraft/internal/plan"
	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
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

// checked is s with a health check, so a converge leaves its new instances'
// stay-up window to the stage's watch (StayedUp) and to the next converge.
func checked(s spec.Spec) spec.Spec {
	s.Health.Checks = []spec.Check{{Name: "port", TCP: &spec.TCPCheck{Address: "{{.Address}}"}}}
	return s
}

// notUp checks that err is a *NotUpError naming container name with want
// in its reason.
func notUp(t *testing.T, err error, name, want string) {
	t.Helper()
	var down *NotUpError
	if !errors.As(err, &down) {
		t.Fatalf("error %v (%T); want a *NotUpError", err, err)
	}
	if down.Container != name || !strings.Contains(down.Why, want) {
		t.Fatalf("error %q; want container %q and %q in the reason", err, name, want)
	}
}

// crash kills a container's process from the host (as a crash would: the
// engine's own kill counts as a manual stop, which its restart policy
// leaves stopped).
func crash(t *testing.T, e *env, name string) {
	t.Helper()
	in, err := e.cli.ContainerInspect(e.ctx, name, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatalf("inspect %s: %v", name, err)
	}
	if in.Container.State == nil || in.Container.State.Pid == 0 {
		t.Fatalf("%s runs no process", name)
	}
	if err := syscall.Kill(in.Container.State.Pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill %s (pid %d): %v", name, in.Container.State.Pid, err)
	}
}

// TestStayedUpSeesAnExitAfterTheConverge checks the window a converge no
// longer holds when a watch follows it: a new instance that exits within 1 s
// of its start, or is killed right after the converge returned, fails
// StayedUp (what the bake's watch asks) with its exit code. A converge may
// see a quick exit itself; either way the stage fails with the code.
func TestStayedUpSeesAnExitAfterTheConverge(t *testing.T) {
	for _, tc := range []struct {
		name  string
		after string
		kill  bool // SIGKILL it as soon as the converge returns
		code  string
	}{
		{"exits 300ms after start", "300ms", false, "exit code 3"},
		{"exits 800ms after start", "800ms", false, "exit code 3"},
		{"killed right after the converge", "1h", true, "exit code 137"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			buildExiter(t, e.cli)
			s := checked(e.spec(imageExiter))
			s.Platform.Docker.Env = map[string]string{"EXIT_AFTER": tc.after, "EXIT_CODE": "3"}
			name := instanceName(e.svc, "r1", 0)
			start := time.Now()
			_, err := e.p.Converge(e.ctx, platform.ConvergeRequest{Spec: s, Rollout: "r1",
				Desired: plan.Desired{New: 1, Traffic: plan.TrafficNew, Order: plan.Surge}})
			took := time.Since(start)
			if err != nil {
				if tc.kill {
					t.Fatalf("converge of a container that stays up failed: %v", err)
				}
				t.Logf("the converge saw it itself, in %v: %v", took.Round(time.Millisecond), err)
				notUp(t, err, name, tc.code)
				return
			}
			t.Logf("converge returned in %v", took.Round(time.Millisecond))
			if tc.kill {
				crash(t, e, name)
			}
			err = e.p.StayedUp(e.ctx, s, "r1")
			if err == nil {
				t.Fatalf("StayedUp passed a container that exits %s after its start (kill: %v)", tc.after, tc.kill)
			}
			t.Logf("StayedUp, %v after the converge began: %v", time.Since(start).Round(time.Millisecond), err)
			notUp(t, err, name, tc.code)
		})
	}
}

// TestStayedUpPassesAndCountsRestarts checks that healthy new instances pass
// StayedUp once their windows are over, and that one restarted at any time
// later (its restart policy hides the exit) fails it.
func TestStayedUpPassesAndCountsRestarts(t *testing.T) {
	e := newEnv(t)
	s := checked(e.spec(imageV1))
	start := time.Now()
	e.converge(s, "r1", platform.Snapshot{}, plan.Desired{New: 3, Traffic: plan.TrafficNew, Order: plan.Surge})
	t.Logf("converge of 3 new: %v", time.Since(start).Round(time.Millisecond))
	if err := e.p.StayedUp(e.ctx, s, "r1"); err != nil {
		t.Fatalf("StayedUp of healthy containers: %v", err)
	}
	t.Logf("StayedUp passed %v after the converge began", time.Since(start).Round(time.Millisecond))
	name := instanceName(e.svc, "r1", 1)
	crash(t, e, name)
	deadline := time.Now().Add(30 * time.Second)
	for {
		in, err := e.cli.ContainerInspect(e.ctx, name, client.ContainerInspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if in.Container.RestartCount > 0 && in.Container.State.Running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s was not restarted by its restart policy", name)
		}
		time.Sleep(50 * time.Millisecond)
	}
	notUp(t, e.p.StayedUp(e.ctx, s, "r1"), name, "restarted 1 times")
}

// TestNextConvergeChecksTheWindow checks a stage that does not bake (or a
// promoted rollout): the next converge waits out the window of the new
// instance the converge before it started and fails on its exit, before it
// changes anything (the second new instance is not created).
func TestNextConvergeChecksTheWindow(t *testing.T) {
	e := newEnv(t)
	buildExiter(t, e.cli)
	s := checked(e.spec(imageExiter))
	s.Platform.Docker.Env = map[string]string{"EXIT_AFTER": "700ms", "EXIT_CODE": "3"}
	req := platform.ConvergeRequest{Spec: s, Rollout: "r1", Desired: plan.Desired{New: 1, Traffic: plan.TrafficShared, Order: plan.Surge}}
	if _, err := e.p.Converge(e.ctx, req); err != nil {
		t.Skipf("the first converge saw the exit itself (a slow engine): %v", err)
	}
	req.Desired.New = 2
	_, err := e.p.Converge(e.ctx, req)
	if err == nil {
		t.Fatal("the next converge went on after a new instance of the one before exited within its window")
	}
	notUp(t, err, instanceName(e.svc, "r1", 0), "exit code 3")
	if _, err := e.cli.ContainerInspect(e.ctx, instanceName(e.svc, "r1", 1), client.ContainerInspectOptions{}); err == nil {
		t.Errorf("the next converge created %s before it checked the window", instanceName(e.svc, "r1", 1))
	}
}
