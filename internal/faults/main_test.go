//go:build faults

package faults

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"
	tclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"

	"github.com/stagecraft/stagecraft/internal/itest"
)

// FullEnv, set to "full" (as `make faults` does), runs the whole matrix;
// otherwise each test runs its bounded form (what `make test` runs).
const FullEnv = "STAGECRAFT_FAULTS"

// One dev server (in memory), the Docker engine, a Kubernetes plane and a
// worker binary built with failpoints per run. Workers run as processes,
// so a test can SIGKILL them.
var (
	server     *testsuite.DevServer
	tc         tclient.Client
	dc         *client.Client
	kubeconfig string
	binDir     string
	workerBin  string
)

func TestMain(m *testing.M) {
	os.Exit(func() int {
		ctx := context.Background()
		var err error
		if server, err = itest.DevServer(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "dev server:", err)
			return 1
		}
		defer server.Stop()
		tc = server.Client()
		if dc, err = itest.Docker(); err != nil {
			fmt.Fprintln(os.Stderr, "docker:", err)
			return 1
		}
		var stopKube func()
		if kubeconfig, stopKube, err = itest.KubePlane(); err != nil {
			fmt.Fprintln(os.Stderr, "kubernetes:", err)
			return 1
		}
		defer stopKube()
		binDir, _ = os.MkdirTemp("", "stagecraft-faults")
		defer os.RemoveAll(binDir)
		if workerBin, err = itest.BuildTags(binDir, "worker", "failpoints"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return m.Run()
	}())
}

// full reports whether the whole matrix runs (make faults).
func full() bool { return os.Getenv(FullEnv) == "full" }

// workerProc is a worker process this test started; it is stopped by its
// PID, never by name.
type workerProc struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// startWorker starts the failpoint-built worker against address (the
// shared dev server when ""), with extra environment (for example
// STAGECRAFT_FAILPOINT=...) and flags. It is killed when the test ends, and
// its log is printed if the test failed.
func startWorker(t testing.TB, address string, env []string, flags ...string) *workerProc {
	t.Helper()
	if address == "" {
		address = server.FrontendHostPort()
	}
	logPath := filepath.Join(t.TempDir(), fmt.Sprintf("worker-%d.log", time.Now().UnixNano()))
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	// The rig's Kubernetes specs name the test plane's kubeconfig.
	args := append([]string{"--address", address, "--log-level", "info", "--allow-kubeconfig-paths"}, flags...)
	cmd := exec.Command(workerBin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start worker: %v", err)
	}
	w := &workerProc{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); f.Close(); close(w.done) }()
	t.Cleanup(func() {
		w.Kill()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			if len(lines) > 60 {
				lines = lines[len(lines)-60:]
			}
			t.Logf("worker pid %d log (last %d lines):\n%s", cmd.Process.Pid, len(lines), strings.Join(lines, "\n"))
		}
	})
	return w
}

// Kill sends SIGKILL to the worker's PID and waits for it to be gone.
func (w *workerProc) Kill() {
	select {
	case <-w.done:
		return
	default:
	}
	_ = w.cmd.Process.Signal(syscall.SIGKILL)
	<-w.done
}

// Exited reports whether the process has ended (a failpoint kills it).
func (w *workerProc) Exited() bool {
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}

// Wait waits up to timeout for the process to end by itself.
func (w *workerProc) Wait(timeout time.Duration) bool {
	select {
	case <-w.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// Log is the worker's output so far.
func (w *workerProc) Log() string {
	b, _ := os.ReadFile(w.log)
	return string(b)
}
