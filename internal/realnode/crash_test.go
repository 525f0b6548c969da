//go:build integration

package realnode

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	tclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.uber.org/zap/zaptest"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/control"
	"github.com/stagecraft/stagecraft/internal/itest"
	"github.com/stagecraft/stagecraft/internal/logging"
	"github.com/stagecraft/stagecraft/internal/spec"
	"github.com/stagecraft/stagecraft/workflows"
)

// workerProcess runs the built worker binary against the dev server at
// address, reaching pods through port-forward (it runs outside the
// cluster), until the test ends unless the test kills it first. Its log
// is shown when the test fails.
func workerProcess(t *testing.T, bin, address string) *exec.Cmd {
	t.Helper()
	logFile, err := os.Create(filepath.Join(t.TempDir(), "worker.log"))
	require.NoError(t, err)
	cmd := exec.Command(bin, "--address", address, "--log-level", "warn",
		"--allow-kubeconfig-paths", "--kube-check-via", "portForward")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		_ = logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logFile.Name())
			t.Logf("worker pid %d log:\n%s", cmd.Process.Pid, b)
		}
	})
	return cmd
}

// TestRealNodeWorkerKilledMidBake runs a canary (50/100 of 2 replicas, 10 s
// bakes, a per-pod check through port-forward every 500 ms) on a worker
// process, SIGKILLs that process by its PID while the first stage bakes on
// real pods (the canary's v2 pod running, ready and answering through a
// forward of the test's own), and starts a new worker process. The same run
// succeeds: the user's Deployment runs v2 on 2 ready pods, every
// ReplicaSet and pod belongs to it (no canary Deployment, ReplicaSet or pod
// left), the Service selects app=web again, every stage passed checks; and
// the run's history holds both workers' work, ends completed, and replays
// against the current workflow code.
func TestRealNodeWorkerKilledMidBake(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	srv, err := itest.DevServer(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Stop() })
	c := srv.Client()

	// The build and the target's pods take their time: both at once.
	type built struct {
		bin string
		err error
	}
	build := make(chan built, 1)
	go func() {
		bin, err := itest.Build(t.TempDir(), "worker")
		build <- built{bin, err}
	}()
	ns := webTarget(t, "killed", 2)
	b := <-build
	require.NoError(t, b.err)

	first := workerProcess(t, b.bin, srv.FrontendHostPort())
	s := webSpec(ns, kubeconfigPath, "stagecraft-demo:v2")
	s.Platform.Kubernetes.CheckVia = spec.CheckViaPortForward
	s.Strategy.Bake = spec.Duration(10 * time.Second)
	start := time.Now()
	started, err := control.Start(ctx, c, s)
	require.NoError(t, err)

	// Stage 1 bakes on a v2 pod that really runs and answers.
	var st api.Status
	itest.Eventually(t, 90*time.Second, "stage 1 validating", func() bool {
		st, err = control.Status(ctx, c, started.WorkflowID)
		return err == nil && len(st.Stages) > 0 && st.Stages[0].Status == api.StageValidating
	})
	canaryPods := readyPods(t, ctx, ns, "stagecraft-demo:v2")
	require.Len(t, canaryPods, 1, "the canary's pod is ready")
	v, _ := healthz(t, ctx, canaryPods[0])
	require.Equal(t, "v2", v)
	st, err = control.Status(ctx, c, started.WorkflowID)
	require.NoError(t, err)
	require.Equal(t, api.StageValidating, st.Stages[0].Status, "still baking when the worker is killed")

	require.NoError(t, first.Process.Signal(syscall.SIGKILL))
	var exit *exec.ExitError
	require.True(t, errors.As(first.Wait(), &exit), "the worker ended")
	ws := exit.Sys().(syscall.WaitStatus)
	require.True(t, ws.Signaled() && ws.Signal() == syscall.SIGKILL, "ended by SIGKILL: %v", exit)
	killed := time.Now()
	t.Logf("worker pid %d SIGKILLed %s after the start, in stage 1's bake (%s into it)",
		first.Process.Pid, killed.Sub(start).Round(time.Millisecond), killed.Sub(*st.Stages[0].StartedAt).Round(time.Millisecond))

	second := workerProcess(t, b.bin, srv.FrontendHostPort())
	wctx, wcancel := context.WithTimeout(ctx, 2*time.Minute)
	defer wcancel()
	res, err := control.Wait(wctx, c, started.WorkflowID, started.RunID, 200*time.Millisecond, nil)
	require.NoError(t, err, "no outcome within 2 min of the new worker's start")
	t.Logf("%s in %s (%s after the kill): %s", res.Outcome, time.Since(start).Round(time.Millisecond),
		time.Since(killed).Round(time.Millisecond), res.Error)
	require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
	require.Equal(t, started.RunID, res.RunID, "the same run finished")
	require.Len(t, res.Stages, 2)
	for _, stage := range res.Stages {
		require.Equal(t, api.StageCompleted, stage.Status, "stage %d", stage.Index)
		require.Positive(t, stage.ChecksPassed, "stage %d", stage.Index)
		require.Zero(t, stage.ChecksFailed, "stage %d", stage.Index)
	}

	// Nothing orphaned: only the user's Deployment, on v2, owning every
	// ReplicaSet; its 2 pods v2 and ready, none other left in any state.
	deps, err := cs.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	require.Len(t, deps.Items, 1, "no canary Deployment left")
	web := deps.Items[0]
	require.Equal(t, "web", web.Name)
	require.Equal(t, "stagecraft-demo:v2", web.Spec.Template.Spec.Containers[0].Image)
	rss, err := cs.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	for _, rs := range rss.Items {
		owner := metav1.GetControllerOf(&rs)
		require.True(t, owner != nil && owner.UID == web.UID, "ReplicaSet %s (labels %v) belongs to Deployment web", rs.Name, rs.Labels)
	}
	var pods []corev1.Pod
	itest.Eventually(t, time.Minute, "only web's 2 ready v2 pods", func() bool {
		list, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false
		}
		pods = list.Items
		return rolledOut(ctx, ns, "web", 2) && len(pods) == 2 && len(readyPods(t, ctx, ns, "stagecraft-demo:v2")) == 2
	})
	for _, p := range pods {
		owner := metav1.GetControllerOf(&p)
		require.NotNil(t, owner, "pod %s", p.Name)
		require.Equal(t, "ReplicaSet", owner.Kind, "pod %s", p.Name)
	}
	svc, err := cs.CoreV1().Services(ns).Get(ctx, "web", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, map[string]string{"app": "web"}, svc.Spec.Selector)

	// The history: one run, worked by the killed worker and then the new
	// one, completed, and replayable against the current code.
	h := runHistory(t, c, started.WorkflowID, started.RunID)
	identities := map[string]bool{}
	var attempts []string
	for _, ev := range h.Events {
		switch ev.GetEventType() {
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED:
			identities[ev.GetWorkflowTaskStartedEventAttributes().GetIdentity()] = true
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
			a := ev.GetActivityTaskStartedEventAttributes()
			identities[a.GetIdentity()] = true
			if a.GetAttempt() > 1 {
				attempts = append(attempts, fmt.Sprintf("event %d attempt %d by %s", ev.GetEventId(), a.GetAttempt(), a.GetIdentity()))
			}
		}
	}
	for _, pid := range []int{first.Process.Pid, second.Process.Pid} {
		found := false
		for id := range identities {
			found = found || strings.HasPrefix(id, fmt.Sprintf("%d@", pid))
		}
		require.True(t, found, "worker pid %d worked the run (identities %v)", pid, identities)
	}
	require.Equal(t, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED, h.Events[len(h.Events)-1].GetEventType())
	r := worker.NewWorkflowReplayer()
	workflows.Register(r)
	require.NoError(t, r.ReplayWorkflowHistory(logging.Temporal(zaptest.NewLogger(t)), h), "replay of the run's history")
	t.Logf("history: %d events, worked by %d identities, retried activities: %v", len(h.Events), len(identities), attempts)
}

// runHistory reads a run's whole history from the server.
func runHistory(t testing.TB, c tclient.Client, workflowID, runID string) *historypb.History {
	t.Helper()
	h := &historypb.History{}
	it := c.GetWorkflowHistory(context.Background(), workflowID, runID, false, 0)
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		h.Events = append(h.Events, ev)
	}
	return h
}
