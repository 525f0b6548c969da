//go:build faults

package faults

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	tclient "go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/control"
	"github.com/stagecraft/stagecraft/internal/itest"
	"github.com/stagecraft/stagecraft/internal/logging"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// fileDevServer is a Temporal dev server process keeping its state in a
// SQLite file, so it can be stopped and started again on the same port.
type fileDevServer struct {
	args []string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
}

func devFreePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func newFileDevServer(t *testing.T) (*fileDevServer, string) {
	t.Helper()
	bin := os.Getenv(itest.TemporalBinEnv)
	require.NotEmpty(t, bin, itest.TemporalBinEnv)
	dir := t.TempDir()
	port := devFreePort(t)
	args := append([]string{"server", "start-dev", "--ip", "127.0.0.1", "--port", strconv.Itoa(port),
		"--headless", "--http-port", strconv.Itoa(devFreePort(t)), "--metrics-port", strconv.Itoa(devFreePort(t)),
		"--db-filename", filepath.Join(dir, "temporal.db"), "--log-level", "error"},
		control.DevServerSearchAttributeArgs()...)
	d := &fileDevServer{args: append([]string{bin}, args...), log: filepath.Join(dir, "server.log")}
	t.Cleanup(func() {
		d.stop(t)
		if t.Failed() {
			b, _ := os.ReadFile(d.log)
			t.Logf("dev server log:\n%s", b)
		}
	})
	d.start(t)
	return d, "127.0.0.1:" + strconv.Itoa(port)
}

func (d *fileDevServer) start(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile(d.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	require.NoError(t, err)
	d.cmd = exec.Command(d.args[0], d.args[1:]...)
	d.cmd.Stdout, d.cmd.Stderr = f, f
	require.NoError(t, d.cmd.Start())
	d.done = make(chan struct{})
	done, cmd := d.done, d.cmd
	go func() { _ = cmd.Wait(); f.Close(); close(done) }()
}

// stop sends SIGTERM to the server's PID and waits for it to exit
// (SIGKILL after 30 s).
func (d *fileDevServer) stop(t *testing.T) {
	if d.cmd == nil {
		return
	}
	select {
	case <-d.done:
		return
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		t.Logf("dev server pid %d ignored SIGTERM: SIGKILL", d.cmd.Process.Pid)
		_ = d.cmd.Process.Signal(syscall.SIGKILL)
		<-d.done
	}
}

// waitServing waits until the frontend at address answers a health check.
func waitServing(t *testing.T, c tclient.Client) {
	t.Helper()
	itest.Eventually(t, time.Minute, "dev server serving", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := c.CheckHealth(ctx, &tclient.CheckHealthRequest{})
		return err == nil
	})
}

// pollBackoffCap is the Go SDK's cap on the backoff of a worker's pollers
// after failed polls (retryPollOperationMaxInterval).
const pollBackoffCap = 10 * time.Second

// TestDevServerRestartMidBake stops the Temporal dev server (file-backed)
// while a Docker canary's stage validates, keeps it down about 5 s,
// starts it again on the same port and file, and checks the rollout
// resumes and succeeds with the platform exactly as the spec says, and no
// bake ends early (one may end late by the outage and the SDK's poll
// backoff).
func TestDevServerRestartMidBake(t *testing.T) {
	const down = 5 * time.Second
	d, address := newFileDevServer(t)
	var c tclient.Client
	itest.Eventually(t, time.Minute, "dial the dev server", func() bool {
		var err error
		c, err = tclient.Dial(tclient.Options{HostPort: address, Logger: logging.Temporal(zap.NewNop())})
		return err == nil
	})
	t.Cleanup(c.Close)
	waitServing(t, c)

	w := startWorker(t, address, nil)
	x := newCrashTarget(t, spec.PlatformDocker, spec.Canary)
	hooks := newCrashHooks(t)
	s := x.spec(spec.Canary, false)
	s.Strategy.Steps = []int{50, 100}
	s.Strategy.Bake = spec.Duration(10 * time.Second)
	s.Notifications = []spec.Notification{{Name: "faults", Webhook: hooks.url}}
	s = s.WithDefaults()
	started, err := control.Start(context.Background(), c, s)
	require.NoError(t, err)

	waitStageStatus(t, c, started.WorkflowID, 1, api.StageValidating)
	time.Sleep(time.Second)
	d.stop(t)
	stopped := time.Now()
	time.Sleep(down)
	d.start(t)
	waitServing(t, c)
	back := time.Now()
	require.False(t, w.Exited(), "the worker rides out the server's absence")

	res := waitCrashRollout(t, c, started)
	events := history(t, c, started.WorkflowID, started.RunID)
	end := x.check(t, s, res)
	bs := bakes(t, events, res)
	notified, repeats := hooks.delivered()
	t.Logf("dev server down %s (stopped to serving again); rollout %s %s; finished %s after the restart; orphans=%d dups=%d bake-drift=%s notified=%d repeats=%d",
		back.Sub(stopped).Round(100*time.Millisecond), res.Outcome, res.Error, res.CompletedAt.Sub(back).Round(100*time.Millisecond),
		end.Orphans, end.Duplicates, maxDrift(bs).Round(10*time.Millisecond), notified, repeats)
	for _, b := range bs {
		t.Logf("  stage %-8s bake %s validated %s (drift %s)", b.Stage, b.Bake, b.Validated.Round(10*time.Millisecond), b.Drift().Round(10*time.Millisecond))
	}

	require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
	require.Empty(t, end.Problems, "end state")
	require.Len(t, bs, len(res.Stages))
	// A bake never ends early. It may end late by up to the outage plus the
	// SDK's poll backoff: pollers that failed through the outage retry with
	// exponential backoff capped at 10 s (not configurable in the Go SDK),
	// so the worker may poll again only seconds after the server is back.
	late := back.Sub(stopped) + pollBackoffCap + bakeTolerance
	for _, b := range bs {
		require.GreaterOrEqual(t, b.Drift(), -bakeTolerance,
			"stage %q validated for %s, bake %s: it ended early", b.Stage, b.Validated, b.Bake)
		require.LessOrEqual(t, b.Drift(), late,
			"stage %q validated for %s, bake %s: later than the outage and the poll backoff explain", b.Stage, b.Validated, b.Bake)
	}
	require.GreaterOrEqual(t, notified, 2)
	require.True(t, strings.Contains(w.Log(), "worker starting"), "one worker ran the rollout throughout")
}
