// Package itest starts the real engines integration tests run against: the
// Temporal dev server (the pinned `temporal` CLI that scripts/temporal.sh
// builds) and a Stagecraft worker wired to the real Docker engine.
package itest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
	tclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/stagecraft/stagecraft/activities"
	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/control"
	"github.com/stagecraft/stagecraft/internal/health"
	"github.com/stagecraft/stagecraft/internal/logging"
	"github.com/stagecraft/stagecraft/internal/platform/docker"
	"github.com/stagecraft/stagecraft/internal/platform/kubernetes"
	"github.com/stagecraft/stagecraft/internal/spec"
	"github.com/stagecraft/stagecraft/workflows"
)

// TemporalBinEnv names the env var holding the temporal CLI's path.
const TemporalBinEnv = "STAGECRAFT_TEMPORAL_BIN"

// DevServer starts a Temporal dev server on a free 127.0.0.1 port, with the
// search attributes Stagecraft uses, and returns it; call Stop when done.
func DevServer(ctx context.Context) (*testsuite.DevServer, error) {
	bin := os.Getenv(TemporalBinEnv)
	if bin == "" {
		return nil, fmt.Errorf("%s is not set: run the integration tests with `make test`, which builds the Temporal CLI and sets it", TemporalBinEnv)
	}
	return testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath: bin,
		LogLevel:     "error",
		ClientOptions: &tclient.Options{
			Logger: logging.Temporal(zap.NewNop()),
		},
		ExtraArgs: append(control.DevServerSearchAttributeArgs(), "--ip", "127.0.0.1"),
	})
}

// DevServerWithUI is DevServer with the Temporal Web UI on, for a test
// that reads what the UI shows; it returns the UI's base URL
// (http://127.0.0.1:PORT), whose /api/v1 is the UI's own HTTP API.
func DevServerWithUI(ctx context.Context) (*testsuite.DevServer, string, error) {
	bin := os.Getenv(TemporalBinEnv)
	if bin == "" {
		return nil, "", fmt.Errorf("%s is not set: run the integration tests with `make test`, which builds the Temporal CLI and sets it", TemporalBinEnv)
	}
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	srv, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath:  bin,
		LogLevel:      "error",
		EnableUI:      true,
		UIPort:        strconv.Itoa(port),
		ClientOptions: &tclient.Options{Logger: logging.Temporal(zap.NewNop())},
		ExtraArgs:     append(control.DevServerSearchAttributeArgs(), "--ip", "127.0.0.1"),
	})
	return srv, fmt.Sprintf("http://127.0.0.1:%d", port), err
}

// Docker returns a client for the local engine.
func Docker() (*client.Client, error) { return client.New(client.FromEnv) }

// StartWorker runs an in-process worker on c with the real Docker platform
// until the test ends.
func StartWorker(t testing.TB, c tclient.Client, dc *client.Client) {
	t.Helper()
	StartWorkerWith(t, c, dc, WorkerConfig{})
}

// WorkerConfig holds the worker settings a test may change.
type WorkerConfig struct {
	// Commands is the command-check allowlist (--allow-command).
	Commands []string
	// Store is the audit store; nil leaves the trail off.
	Store activities.Store
}

// StartWorkerWith is StartWorker with settings.
func StartWorkerWith(t testing.TB, c tclient.Client, dc *client.Client, cfg WorkerConfig) {
	t.Helper()
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	w := worker.New(c, api.TaskQueue, worker.Options{StickyScheduleToStartTimeout: time.Second})
	workflows.Register(w)
	w.RegisterActivity(&activities.Activities{
		Platforms: map[string]activities.Platform{
			spec.PlatformDocker:     docker.New(dc, log),
			spec.PlatformKubernetes: kubernetes.New(log),
		},
		Checker: &health.Checker{Commands: cfg.Commands},
		Store:   cfg.Store,
		Server:  c,
		Log:     log,
	})
	if err := w.Start(); err != nil {
		t.Fatalf("start worker: %v", err)
	}
	t.Cleanup(w.Stop)
}

// Root is the module's root directory.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Build builds ./cmdDir (e.g. "worker") into dir and returns the binary.
func Build(dir, cmdDir string) (string, error) { return BuildTags(dir, cmdDir, "") }

// BuildTags is Build with build tags (comma-separated; "" for none).
func BuildTags(dir, cmdDir, tags string) (string, error) {
	out := filepath.Join(dir, filepath.Base(cmdDir))
	cmd := exec.Command("go", "build", "-tags", tags, "-o", out, "./"+cmdDir)
	cmd.Dir = Root()
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", cmdDir, err, b)
	}
	return out, nil
}

// Eventually polls cond every 100ms until it holds or timeout passes.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Name returns a service name unique to this test run.
func Name(prefix string) string {
	return strings.ToLower(fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()%1_000_000_000))
}

// KubePlane starts a real Kubernetes control plane (etcd, kube-apiserver,
// controller-manager, scheduler, a KWOK node) with scripts/kube/up.sh and
// returns its admin kubeconfig and a function that stops it.
func KubePlane() (kubeconfig string, stop func(), err error) {
	dir, err := os.MkdirTemp("", "stagecraft-kube-")
	if err != nil {
		return "", nil, err
	}
	up := exec.Command("bash", filepath.Join(Root(), "scripts", "kube", "up.sh"), dir)
	up.Stdout, up.Stderr = os.Stderr, os.Stderr
	if err := up.Run(); err != nil {
		_ = os.RemoveAll(dir)
		return "", nil, fmt.Errorf("scripts/kube/up.sh: %w", err)
	}
	stop = func() {
		down := exec.Command("bash", filepath.Join(Root(), "scripts", "kube", "down.sh"), dir)
		down.Stdout, down.Stderr = os.Stderr, os.Stderr
		_ = down.Run()
	}
	return filepath.Join(dir, "kubeconfig"), stop, nil
}
