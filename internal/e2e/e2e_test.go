//go:build integration

package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"
	tclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/control"
	"github.com/stagecraft/stagecraft/internal/itest"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// One dev server, one in-process worker and the built binaries per run.
var (
	server  *testsuite.DevServer
	tc      tclient.Client
	dc      *client.Client
	binDir  string
	workerB string
	starter string
	// kubeconfig is the admin kubeconfig of the real control plane.
	kubeconfig string
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
		binDir, _ = os.MkdirTemp("", "stagecraft-e2e")
		defer os.RemoveAll(binDir)
		for _, cmd := range []string{"worker", "starter"} {
			b, err := itest.Build(binDir, cmd)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			if cmd == "worker" {
				workerB = b
			} else {
				starter = b
			}
		}
		return m.Run()
	}())
}

// instance is what the engine says about one container, independently of
// the platform code under test.
type instance struct {
	Name    string
	Image   string
	Env     []string
	Ports   string
	Aliases []string
	Running bool
	Addr    string
}

func instances(t *testing.T, service string) []instance {
	t.Helper()
	var out []instance
	for _, in := range itest.ServiceContainers(t, dc, service) {
		i := instance{Name: strings.TrimPrefix(in.Name, "/"), Image: in.Config.Image, Env: in.Config.Env,
			Running: in.State.Running, Ports: fmt.Sprint(in.HostConfig.PortBindings)}
		for _, n := range in.NetworkSettings.Networks {
			for _, a := range n.Aliases {
				if a == service {
					i.Aliases = append(i.Aliases, a)
				}
			}
		}
		for _, b := range in.NetworkSettings.Ports {
			for _, pb := range b {
				i.Addr = "127.0.0.1:" + pb.HostPort
			}
		}
		out = append(out, i)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out
}

// comparable drops what legitimately changes when a container is recreated.
func restorable(in []instance) []instance {
	out := slices.Clone(in)
	for i := range out {
		out[i].Addr = ""
	}
	return out
}

func healthz(t *testing.T, addr string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func cleanup(t *testing.T, service string) {
	t.Cleanup(func() {
		for _, i := range instances(t, service) {
			_, _ = dc.ContainerRemove(context.Background(), i.Name, client.ContainerRemoveOptions{Force: true})
		}
		itest.RemoveMarkers(context.Background(), dc, service)
	})
}

func demoSpec(service, image, strategy string, replicas int) spec.Spec {
	return itest.DemoSpec(service, image, strategy, replicas)
}

func deploy(t *testing.T, s spec.Spec) api.Result {
	t.Helper()
	started, res := startAndWait(t, s)
	recordHistory(t, started, s, res)
	return res
}

// startAndWait starts a rollout and waits (up to 4 minutes) for its end.
func startAndWait(t *testing.T, s spec.Spec) (control.Started, api.Result) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	started, err := control.Start(ctx, tc, s)
	require.NoError(t, err)
	res, err := control.Wait(ctx, tc, started.WorkflowID, started.RunID, time.Second, nil)
	require.NoError(t, err)
	return started, res
}

// installV1 puts 3 instances of v1 in place with a recreate rollout.
func installV1(t *testing.T, service string) []instance {
	t.Helper()
	s := demoSpec(service, "stagecraft-demo:v1", spec.Recreate, 3)
	s.Strategy.Bake = spec.Duration(time.Second)
	res := deploy(t, s)
	require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
	require.True(t, res.FreshInstall)
	v1 := instances(t, service)
	require.Len(t, v1, 3)
	return v1
}

var strategies = []string{spec.Canary, spec.BlueGreen, spec.Rolling, spec.Recreate}

func TestEveryStrategyRollsOutV2(t *testing.T) {
	itest.StartWorker(t, tc, dc)
	for _, strategy := range strategies {
		t.Run(strategy, func(t *testing.T) {
			t.Parallel()
			service := itest.Name("e2e-" + strings.ReplaceAll(strategy, "-", ""))
			cleanup(t, service)
			installV1(t, service)

			s := demoSpec(service, "stagecraft-demo:v2", strategy, 4)
			res := deploy(t, s)
			require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
			for _, st := range res.Stages {
				require.Equal(t, api.StageCompleted, st.Status, st.Name)
				require.Positive(t, st.ChecksPassed, st.Name)
			}
			got := instances(t, service)
			require.Len(t, got, 4, "exactly the specified count")
			for _, in := range got {
				require.Equal(t, "stagecraft-demo:v2", in.Image, in.Name)
				require.True(t, in.Running, in.Name)
				require.Contains(t, in.Env, "GREETING=hi stagecraft-demo:v2")
				require.Equal(t, []string{service}, in.Aliases, "serves traffic: "+in.Name)
				require.Contains(t, in.Ports, "127.0.0.1")
				code, body := healthz(t, in.Addr)
				require.Equal(t, 200, code, body)
				require.Contains(t, body, `"version":"v2"`)
			}
		})
	}
}

func TestEveryStrategyRollsBackBadV2ToTheSnapshot(t *testing.T) {
	itest.StartWorker(t, tc, dc)
	for _, strategy := range strategies {
		t.Run(strategy, func(t *testing.T) {
			t.Parallel()
			service := itest.Name("e2e-bad-" + strings.ReplaceAll(strategy, "-", ""))
			cleanup(t, service)
			v1 := installV1(t, service)

			// v2-bad starts failing /healthz 3 s after it starts: the first
			// stage's 6 s bake sees it.
			s := demoSpec(service, "stagecraft-demo:v2-bad", strategy, 4)
			s.Strategy.Bake = spec.Duration(6 * time.Second)
			if strategy == spec.BlueGreen {
				s.Strategy.Bake = 0
				s.Strategy.BakeBeforeSwitch = spec.Duration(6 * time.Second)
			}
			res := deploy(t, s)
			require.Equal(t, api.OutcomeRolledBack, res.Outcome, res.Error)
			require.Contains(t, res.Error, "status 500")
			require.True(t, res.Rollback.Verified)
			require.Equal(t, api.StageRolledBack, res.Stages[0].Status)
			require.Positive(t, res.Stages[0].ChecksFailed)

			after := instances(t, service)
			require.Equal(t, restorable(v1), restorable(after), "exactly the snapshot: names, image, env, ports, aliases")
			for _, in := range after {
				code, body := healthz(t, in.Addr)
				require.Equal(t, 200, code, body)
				require.Contains(t, body, `"version":"v1"`)
			}
		})
	}
}

func clientStart(id string) tclient.StartWorkflowOptions {
	return tclient.StartWorkflowOptions{ID: id, TaskQueue: api.TaskQueue}
}
