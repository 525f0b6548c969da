//go:build integration

package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	tclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.uber.org/zap"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/stagecraft/stagecraft/activities"
	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/control"
	"github.com/stagecraft/stagecraft/internal/itest"
	"github.com/stagecraft/stagecraft/internal/plan"
	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/platform/docker"
	kubeplatform "github.com/stagecraft/stagecraft/internal/platform/kubernetes"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// The benchmarks of `make bench` (scripts/bench.sh), against the same real
// engines as the integration tests. Each is meant to run once
// (-benchtime 1x): it repeats its own measurement and reports, with
// b.ReportMetric, "<figure>.med.<unit>", "<figure>.p99.<unit>" and
// "<figure>.n" (p99 is nearest-rank, so with fewer than 100 samples it is
// the largest). Nothing here asserts a speed: a benchmark fails only when
// the rollout it times does not end as it must. docs/BENCHMARKS.md holds the
// method and the figures.
//
// Repetitions are set from the environment:
const (
	benchNEnv       = "STAGECRAFT_BENCH_N"           // P1 and P2 samples per platform (default 20)
	benchP3Env      = "STAGECRAFT_BENCH_P3_N"        // P3 runs of each canary shape (default 3)
	benchP5Env      = "STAGECRAFT_BENCH_P5_N"        // P5 3 × 30 s canaries per platform (default 3)
	benchDirectEnv  = "STAGECRAFT_BENCH_P5_DIRECT_N" // P5 zero-bake workflow/direct pairs (default 5)
	benchP6Env      = "STAGECRAFT_BENCH_P6_N"        // P6 runs of the workflow test matrix (default 5)
	benchDensityEnv = "STAGECRAFT_BENCH_DENSITY"     // P4 sizes, comma-separated (default "100,100:own"; 0 skips)
)

func benchSeconds(d time.Duration) float64 { return d.Seconds() }

// benchWaitStage waits for stage of the run to reach want.
func benchWaitStage(tb testing.TB, started control.Started, stage int, want api.StageStatus) {
	tb.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	var seen []string // what the queries saw, for the failure message
	for {
		st, err := control.Status(context.Background(), tc, started.WorkflowID)
		saw := fmt.Sprintf("%s phase %s", time.Now().Format("15:04:05.000"), st.Phase)
		if len(st.Stages) > stage {
			saw += " stage " + string(st.Stages[stage].Status)
		}
		if err != nil {
			saw += " error " + err.Error()
		}
		if len(seen) == 0 || seen[len(seen)-1][12:] != saw[12:] {
			seen = append(seen, saw)
		}
		if err == nil && st.RunID == started.RunID {
			if len(st.Stages) > stage && st.Stages[stage].Status == want {
				return
			}
			if st.Phase == api.PhaseDone {
				tb.Fatalf("%s ended (%s: %s) before stage %d was %s; seen:\n%s", started.WorkflowID, st.Outcome, st.Error, stage, want, strings.Join(seen, "\n"))
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s: stage %d not %s after 3 minutes; seen:\n%s", started.WorkflowID, stage, want, strings.Join(seen, "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// benchHistory reads a run's whole history.
func benchHistory(tb testing.TB, workflowID, runID string) []*historypb.HistoryEvent {
	tb.Helper()
	var out []*historypb.HistoryEvent
	it := tc.GetWorkflowHistory(context.Background(), workflowID, runID, false, 0)
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(tb, err)
		out = append(out, ev)
	}
	return out
}

// benchRollbackCall finds the rollback's Converge in a history: the first
// Converge activity scheduled at or after t0 (the abort request). It
// returns when the activity was scheduled, when the worker started it
// (when the platform call begins) and when it completed.
func benchRollbackCall(tb testing.TB, events []*historypb.HistoryEvent, t0 time.Time) (scheduled, started, completed time.Time) {
	tb.Helper()
	var id int64
	for _, ev := range events {
		switch ev.GetEventType() {
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			at := ev.GetEventTime().AsTime()
			if id == 0 && ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName() == "Converge" && !at.Before(t0) {
				id, scheduled = ev.GetEventId(), at
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
			if a := ev.GetActivityTaskStartedEventAttributes(); id != 0 && a.GetScheduledEventId() == id {
				if a.GetAttempt() > 1 {
					tb.Logf("the rollback's converge was retried (attempt %d): its start is the last attempt's", a.GetAttempt())
				}
				started = ev.GetEventTime().AsTime()
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
			if id != 0 && ev.GetActivityTaskCompletedEventAttributes().GetScheduledEventId() == id {
				return scheduled, started, ev.GetEventTime().AsTime()
			}
		}
	}
	tb.Fatalf("no completed rollback converge after %s in the history", t0.Format(time.RFC3339Nano))
	return
}

// benchFailingRound returns when the round that failed the stage started:
// the latest round of the first Watch that ended unhealthy.
func benchFailingRound(tb testing.TB, events []*historypb.HistoryEvent) time.Time {
	tb.Helper()
	watches := map[int64]bool{}
	for _, ev := range events {
		switch ev.GetEventType() {
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			if ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName() == "Watch" {
				watches[ev.GetEventId()] = true
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
			a := ev.GetActivityTaskCompletedEventAttributes()
			if !watches[a.GetScheduledEventId()] {
				continue
			}
			var res activities.WatchResult
			require.NoError(tb, converter.GetDefaultDataConverter().FromPayloads(a.GetResult(), &res))
			if !res.Healthy && res.Latest != nil {
				return res.Latest.At
			}
		}
	}
	tb.Fatal("no failed watch in the history")
	return time.Time{}
}

// benchTarget is a service to roll out on one platform, kept at its
// snapshot between rollouts by the rollbacks themselves.
type benchTarget struct {
	// spec is a 3-step canary (25/50/100) of 4 instances to image, checked
	// every 500 ms.
	spec     func(image string) spec.Spec
	from, to string
	bad      string
	// restoredAt waits until the target is back at its snapshot (the new
	// version gone, the old one ready) and returns when it saw that, and
	// when it first saw each part of it (the parts named in marks).
	restoredAt func(ctx context.Context) (time.Time, benchMarks, error)
	// platform is the platform package the worker uses, for direct calls.
	platform activities.Platform
}

// benchMarks holds when each part of a state was seen to start holding
// (for good: a part seen to stop holding loses its mark).
type benchMarks map[string]time.Time

// observe records the parts that hold now and reports whether all do.
func (m benchMarks) observe(parts map[string]bool) bool {
	if len(parts) == 0 {
		return false
	}
	all := true
	for name, ok := range parts {
		if !ok {
			all = false
			delete(m, name)
		} else if _, seen := m[name]; !seen {
			m[name] = time.Now()
		}
	}
	return all
}

// since describes the marks relative to t0, in order.
func (m benchMarks) since(t0 time.Time) string {
	names := slices.SortedFunc(func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}, func(a, b string) int { return m[a].Compare(m[b]) })
	var out []string
	for _, k := range names {
		out = append(out, fmt.Sprintf("%s %.3f s", k, m[k].Sub(t0).Seconds()))
	}
	return strings.Join(out, ", ")
}

// --- Docker

type benchBox struct {
	name, image, state, addr string
}

func benchBoxes(ctx context.Context, service string) ([]benchBox, error) {
	res, err := dc.ContainerList(ctx, client.ContainerListOptions{All: true,
		Filters: make(client.Filters).Add("label", platform.LabelService+"="+service)})
	if err != nil {
		return nil, err
	}
	var out []benchBox
	for _, c := range res.Items {
		b := benchBox{image: c.Image, state: string(c.State)}
		if len(c.Names) > 0 {
			b.name = strings.TrimPrefix(c.Names[0], "/")
		}
		for _, p := range c.Ports {
			if p.PrivatePort == 8080 && p.PublicPort != 0 {
				b.addr = fmt.Sprintf("127.0.0.1:%d", p.PublicPort)
			}
		}
		out = append(out, b)
	}
	return out, nil
}

func benchCleanupDocker(tb testing.TB, service string) {
	tb.Cleanup(func() {
		boxes, _ := benchBoxes(context.Background(), service)
		for _, b := range boxes {
			_, _ = dc.ContainerRemove(context.Background(), b.name, client.ContainerRemoveOptions{Force: true})
		}
	})
}

// benchDockerTarget installs 4 instances of stagecraft-demo:v1 with a
// recreate rollout and returns the target.
func benchDockerTarget(b *testing.B, prefix string) *benchTarget {
	b.Helper()
	service := itest.Name(prefix)
	benchCleanupDocker(b, service)
	tg := &benchTarget{from: "stagecraft-demo:v1", to: "stagecraft-demo:v2", bad: "stagecraft-demo:v2-bad",
		platform: docker.New(dc, zap.NewNop())}
	tg.spec = func(image string) spec.Spec {
		s := demoSpec(service, image, spec.Canary, 4)
		s.Strategy.Steps = []int{25, 50, 100}
		return s
	}
	install := demoSpec(service, tg.from, spec.Recreate, 4)
	install.Strategy.Bake = spec.Duration(time.Second)
	res := benchRun(b, install)
	require.Equal(b, api.OutcomeSucceeded, res.Outcome, res.Error)
	boxes, err := benchBoxes(context.Background(), service)
	require.NoError(b, err)
	require.Len(b, boxes, 4)
	snapshot := map[string]bool{}
	for _, bx := range boxes {
		snapshot[bx.name] = true
	}
	hc := &http.Client{Timeout: time.Second}
	// Back at the snapshot: the snapshot's containers (by name) running the
	// old image and answering /healthz with 200; nothing else of the
	// service, in any state.
	parts := func(ctx context.Context) map[string]bool {
		boxes, err := benchBoxes(ctx, service)
		if err != nil {
			return nil
		}
		newGone, oldUp := true, 0
		var addrs []string
		for _, bx := range boxes {
			if !snapshot[bx.name] || bx.image != tg.from {
				newGone = false
			} else if bx.state == "running" && bx.addr != "" {
				oldUp++
				addrs = append(addrs, bx.addr)
			}
		}
		oldReady := oldUp == len(snapshot)
		for _, addr := range addrs {
			if !oldReady {
				break
			}
			resp, err := hc.Get("http://" + addr + "/healthz")
			if err != nil {
				oldReady = false
				break
			}
			resp.Body.Close()
			oldReady = resp.StatusCode == http.StatusOK
		}
		return map[string]bool{"new gone": newGone, "old running": oldUp == len(snapshot), "old ready": oldReady}
	}
	// Polled: the engine's list plus a GET per instance, every 5 ms.
	tg.restoredAt = func(ctx context.Context) (time.Time, benchMarks, error) {
		marks := benchMarks{}
		for {
			if marks.observe(parts(ctx)) {
				return time.Now(), marks, nil
			}
			select {
			case <-ctx.Done():
				return time.Time{}, marks, fmt.Errorf("docker:%s not back at its snapshot: %w", service, ctx.Err())
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	return tg
}

// benchNewStarted waits for a running container of image in the service
// and returns when the engine started it.
func benchNewStarted(ctx context.Context, tb testing.TB, service, image string) time.Time {
	tb.Helper()
	for {
		boxes, err := benchBoxes(ctx, service)
		require.NoError(tb, err)
		for _, bx := range boxes {
			if bx.image != image || bx.state != "running" {
				continue
			}
			res, err := dc.ContainerInspect(ctx, bx.name, client.ContainerInspectOptions{})
			require.NoError(tb, err)
			at, err := time.Parse(time.RFC3339Nano, res.Container.State.StartedAt)
			require.NoError(tb, err)
			return at
		}
		select {
		case <-ctx.Done():
			tb.Fatalf("no running container of %s in %s: %v", image, service, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// --- Kubernetes

// benchKube is an admin client without client-go's default rate limit (5
// requests/s), so the measuring side never waits on itself.
func benchKube(tb testing.TB) kubernetes.Interface {
	tb.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	require.NoError(tb, err)
	cfg.QPS, cfg.Burst = 1000, 2000
	cs, err := kubernetes.NewForConfig(cfg)
	require.NoError(tb, err)
	return cs
}

// benchNamespace creates a namespace, deleted (and waited for) at cleanup.
func benchNamespace(tb testing.TB, cs kubernetes.Interface) string {
	tb.Helper()
	ctx := context.Background()
	ns := itest.Name("bench")
	_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	require.NoError(tb, err)
	tb.Cleanup(func() {
		_ = cs.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
		// Wait, bounded, so the next figure does not share the machine
		// with this namespace's garbage collection.
		deadline := time.Now().Add(3 * time.Minute)
		for time.Now().Before(deadline) {
			if _, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); apierrors.IsNotFound(err) {
				return
			}
			time.Sleep(time.Second)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := cs.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{}); err == nil {
			return ns
		}
		if time.Now().After(deadline) {
			tb.Fatalf("namespace %s has no default service account after 30 s", ns)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// benchDeployment creates a Deployment name of replicas pods of image,
// labelled app=name, as an application team would have it.
func benchDeployment(ctx context.Context, cs kubernetes.Interface, ns, name, image string, replicas int32) error {
	lbl := map[string]string{"app": name}
	deadline := int32(60)
	_, err := cs.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbl},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas, ProgressDeadlineSeconds: &deadline,
			Selector: &metav1.LabelSelector{MatchLabels: lbl},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: lbl},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image,
					Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}}},
			},
		},
	}, metav1.CreateOptions{})
	return err
}

// benchDeploymentsReady waits until n Deployments of ns are ready.
func benchDeploymentsReady(tb testing.TB, cs kubernetes.Interface, ns string, n int, timeout time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		list, err := cs.AppsV1().Deployments(ns).List(context.Background(), metav1.ListOptions{})
		ready := 0
		if err == nil {
			for _, d := range list.Items {
				if d.Status.ObservedGeneration >= d.Generation && d.Status.ReadyReplicas == *d.Spec.Replicas {
					ready++
				}
			}
		}
		if ready >= n {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%d of %d Deployments ready in %s after %s", ready, n, ns, timeout)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// benchOKServer is a health endpoint on 127.0.0.1 that always passes.
func benchOKServer(tb testing.TB) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `{"status":"ok"}`)
	}))
	tb.Cleanup(srv.Close)
	return srv.URL + "/healthz"
}

// benchKubeCluster watches one namespace's Deployments, ReplicaSets, Pods and Service
// through informers, so waiting for a state costs no polling of the
// apiserver and sees it within a watch event's delivery.
type benchKubeCluster struct {
	factory informers.SharedInformerFactory
	changed chan struct{}
	ns      string
}

func benchWatchNamespace(tb testing.TB, cs kubernetes.Interface, ns string) *benchKubeCluster {
	tb.Helper()
	c := &benchKubeCluster{factory: informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(ns)),
		changed: make(chan struct{}, 1), ns: ns}
	poke := func() {
		select {
		case c.changed <- struct{}{}:
		default:
		}
	}
	h := cache.ResourceEventHandlerFuncs{AddFunc: func(any) { poke() }, UpdateFunc: func(any, any) { poke() }, DeleteFunc: func(any) { poke() }}
	for _, inf := range []cache.SharedIndexInformer{c.factory.Apps().V1().Deployments().Informer(),
		c.factory.Core().V1().Pods().Informer(), c.factory.Core().V1().Services().Informer(),
		c.factory.Apps().V1().ReplicaSets().Informer()} {
		_, err := inf.AddEventHandler(h)
		require.NoError(tb, err)
	}
	stop := make(chan struct{})
	c.factory.Start(stop)
	tb.Cleanup(func() { close(stop); c.factory.Shutdown() })
	for typ, ok := range c.factory.WaitForCacheSync(stop) {
		require.True(tb, ok, "informer cache of %v", typ)
	}
	return c
}

func (c *benchKubeCluster) deployments() []*appsv1.Deployment {
	l, _ := c.factory.Apps().V1().Deployments().Lister().Deployments(c.ns).List(labels.Everything())
	return l
}

// readyImage counts the ready pods of Deployments running image.
func (c *benchKubeCluster) readyImage(image string) int {
	n := 0
	for _, d := range c.deployments() {
		if d.Spec.Template.Spec.Containers[0].Image == image {
			n += int(d.Status.ReadyReplicas)
		}
	}
	return n
}

// until waits for cond to hold on the cached state and returns when it saw
// it (re-checking every 50 ms besides each watch event).
func (c *benchKubeCluster) until(ctx context.Context, cond func() bool) (time.Time, error) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		if cond() {
			return time.Now(), nil
		}
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("namespace %s not back at its snapshot: %w", c.ns, ctx.Err())
		case <-c.changed:
		case <-t.C:
		}
	}
}

// benchKubeTarget creates a namespace with the 4-replica Deployment "web"
// (demo:v1) and its Service, checked through healthURL.
func benchKubeTarget(b *testing.B, cs kubernetes.Interface, healthURL string) (*benchTarget, *benchKubeCluster) {
	b.Helper()
	return benchKubeTargetOf(b, cs, healthURL, 4)
}

// benchKubeTargetOf is benchKubeTarget with replicas pods.
func benchKubeTargetOf(b *testing.B, cs kubernetes.Interface, healthURL string, replicas int32) (*benchTarget, *benchKubeCluster) {
	b.Helper()
	ctx := context.Background()
	ns := benchNamespace(b, cs)
	require.NoError(b, benchDeployment(ctx, cs, ns, "web", "demo:v1", replicas))
	_, err := cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}, metav1.CreateOptions{})
	require.NoError(b, err)
	benchDeploymentsReady(b, cs, ns, 1, time.Minute)
	cluster := benchWatchNamespace(b, cs, ns)
	tg := &benchTarget{from: "demo:v1", to: "demo:v2", bad: badImage, platform: kubeplatform.New(zap.NewNop())}
	tg.spec = func(image string) spec.Spec {
		s := kubeSpec(ns, kubeconfig, spec.Canary, healthURL)
		s.Image = image
		return s
	}
	// Back at the snapshot: "web" at its ready pods of v1 of the generation
	// written, and nothing else: no other Deployment, no pod of another
	// image in any state; the Service selecting app=web.
	parts := func() map[string]bool {
		stableReady, canaryGone := false, true
		for _, d := range cluster.deployments() {
			if d.Name != "web" {
				canaryGone = false
				continue
			}
			st := d.Status
			stableReady = d.Spec.Template.Spec.Containers[0].Image == tg.from && *d.Spec.Replicas == replicas &&
				st.ObservedGeneration >= d.Generation && st.Replicas == replicas && st.ReadyReplicas == replicas &&
				st.UpdatedReplicas == replicas && st.AvailableReplicas == replicas
		}
		podsGone := true
		pods, _ := cluster.factory.Core().V1().Pods().Lister().Pods(ns).List(labels.Everything())
		for _, p := range pods {
			if p.Spec.Containers[0].Image != tg.from {
				podsGone = false
			}
		}
		svc, err := cluster.factory.Core().V1().Services().Lister().Services(ns).Get("web")
		selector := err == nil && len(svc.Spec.Selector) == 1 && svc.Spec.Selector["app"] == "web"
		return map[string]bool{"stable ready": stableReady, "canary deleted": canaryGone, "new pods gone": podsGone, "service": selector}
	}
	tg.restoredAt = func(ctx context.Context) (time.Time, benchMarks, error) {
		marks := benchMarks{}
		at, err := cluster.until(ctx, func() bool { return marks.observe(parts()) })
		return at, marks, err
	}
	return tg, cluster
}

// --- running rollouts

// benchRun runs a rollout to its end.
func benchRun(tb testing.TB, s spec.Spec) api.Result {
	tb.Helper()
	_, res := benchStartWait(tb, s)
	return res
}

func benchStartWait(tb testing.TB, s spec.Spec) (control.Started, api.Result) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	started, err := control.Start(ctx, tc, s)
	require.NoError(tb, err)
	res, err := control.Wait(ctx, tc, started.WorkflowID, started.RunID, time.Second, nil)
	require.NoError(tb, err)
	return started, res
}

// --- P1: abort → restored

func BenchmarkP1AbortDocker(b *testing.B) {
	itest.StartWorker(b, tc, dc)
	benchAbort(b, "p1-docker", benchDockerTarget(b, "bench-abort"))
}

func BenchmarkP1AbortKubernetes(b *testing.B) {
	itest.StartWorker(b, tc, dc)
	tg, _ := benchKubeTarget(b, benchKube(b), benchOKServer(b))
	benchAbort(b, "p1-k8s", tg)
}

// benchAbort starts canaries with a long bake and aborts each in the bake
// of its first stage, at a random point of the check interval, with the
// abort update (control.Act, as `starter abort` sends it). It times the
// request to the target seen back at its snapshot, and the request to the
// start of the rollback's Converge activity (from the history).
func benchAbort(b *testing.B, figure string, tg *benchTarget) {
	n := itest.BenchEnvInt(b, benchNEnv, 20)
	var restored, first []float64
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		s := tg.spec(tg.to)
		s.Strategy.Bake = spec.Duration(time.Hour)
		started, err := control.Start(ctx, tc, s)
		require.NoError(b, err)
		benchWaitStage(b, started, 0, api.StageValidating)
		time.Sleep(200*time.Millisecond + mrand.N(500*time.Millisecond))

		t0 := time.Now()
		acted := make(chan error, 1)
		go func() {
			_, err := control.Act(ctx, tc, started.WorkflowID, api.SignalAbort, api.ControlRequest{Reason: "benchmark", By: "bench"})
			acted <- err
		}()
		at, marks, err := tg.restoredAt(ctx)
		require.NoError(b, err)
		require.NoError(b, <-acted)
		res, err := control.Wait(ctx, tc, started.WorkflowID, started.RunID, time.Second, nil)
		require.NoError(b, err)
		require.Equal(b, api.OutcomeRolledBack, res.Outcome, res.Error)
		require.True(b, res.Rollback.Verified, "rollback verified")
		sched, call, done := benchRollbackCall(b, benchHistory(b, started.WorkflowID, started.RunID), t0)
		cancel()
		restored = append(restored, benchSeconds(at.Sub(t0)))
		first = append(first, benchSeconds(call.Sub(t0)))
		b.Logf("%s run %d: after the abort request: rollback converge scheduled %.3f s, started %.3f s, completed %.3f s; restored %.3f s (%s)",
			figure, i+1, benchSeconds(sched.Sub(t0)), benchSeconds(call.Sub(t0)), benchSeconds(done.Sub(t0)), benchSeconds(at.Sub(t0)), marks.since(t0))
	}
	itest.BenchReport(b, figure+"-restored", "s", restored)
	itest.BenchReport(b, figure+"-first-call", "s", first)
}

// --- P2: failure → restored

// BenchmarkP2FailureDocker rolls out stagecraft-demo:v2-bad, whose /healthz
// answers 500 from 3 s after its process starts: the failing instant is the
// container's StartedAt + 3 s, and the first failing check is the start of
// the round that failed the stage (the failed watch's latest round, from
// the history).
func BenchmarkP2FailureDocker(b *testing.B) {
	itest.StartWorker(b, tc, dc)
	tg := benchDockerTarget(b, "bench-fail")
	n := itest.BenchEnvInt(b, benchNEnv, 20)
	var detect, restored []float64
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		s := tg.spec(tg.bad)
		s.Strategy.Bake = spec.Duration(time.Minute)
		started, err := control.Start(ctx, tc, s)
		require.NoError(b, err)
		failing := benchNewStarted(ctx, b, s.Service, tg.bad).Add(3 * time.Second)
		at, marks, err := tg.restoredAt(ctx)
		require.NoError(b, err)
		res, err := control.Wait(ctx, tc, started.WorkflowID, started.RunID, time.Second, nil)
		require.NoError(b, err)
		require.Equal(b, api.OutcomeRolledBack, res.Outcome, res.Error)
		require.True(b, res.Rollback.Verified, "rollback verified")
		failed := benchFailingRound(b, benchHistory(b, started.WorkflowID, started.RunID))
		cancel()
		detect = append(detect, benchSeconds(failed.Sub(failing)))
		restored = append(restored, benchSeconds(at.Sub(failed)))
		b.Logf("p2-docker run %d: first failing check %.3f s after v2-bad began failing; restored %.3f s after it (%s)",
			i+1, benchSeconds(failed.Sub(failing)), benchSeconds(at.Sub(failed)), marks.since(failed))
	}
	itest.BenchReport(b, "p2-docker-detect", "s", detect)
	itest.BenchReport(b, "p2-docker-restored", "s", restored)
}

// BenchmarkP2FailureKubernetes checks through a health server on 127.0.0.1
// that starts failing at a known instant (2–2.5 s into the first stage's
// bake, at a random point of the check interval), while the new version
// has ready pods; the first failing check is the first 500 it answers.
func BenchmarkP2FailureKubernetes(b *testing.B) {
	itest.StartWorker(b, tc, dc)
	cs := benchKube(b)
	var failFrom, firstFail atomic.Int64 // unix ns; 0: not set
	var cluster *benchKubeCluster
	var mu sync.Mutex
	var checks []time.Time // this run's checks, for their spacing
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		now := time.Now()
		mu.Lock()
		checks = append(checks, now)
		mu.Unlock()
		if f := failFrom.Load(); f != 0 && now.UnixNano() >= f && cluster.readyImage("demo:v2") > 0 {
			firstFail.CompareAndSwap(0, now.UnixNano())
			http.Error(w, `{"status":"failing"}`, http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, `{"status":"ok"}`)
	}))
	b.Cleanup(srv.Close)
	tg, c := benchKubeTarget(b, cs, srv.URL+"/healthz")
	cluster = c
	n := itest.BenchEnvInt(b, benchNEnv, 20)
	var detect, restored []float64
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		failFrom.Store(0)
		firstFail.Store(0)
		mu.Lock()
		checks = nil
		mu.Unlock()
		s := tg.spec(tg.to)
		s.Strategy.Bake = spec.Duration(time.Minute)
		started, err := control.Start(ctx, tc, s)
		require.NoError(b, err)
		benchWaitStage(b, started, 0, api.StageValidating)
		failing := time.Now().Add(2*time.Second + mrand.N(500*time.Millisecond))
		failFrom.Store(failing.UnixNano())
		at, marks, err := tg.restoredAt(ctx)
		require.NoError(b, err)
		res, err := control.Wait(ctx, tc, started.WorkflowID, started.RunID, time.Second, nil)
		require.NoError(b, err)
		require.Equal(b, api.OutcomeRolledBack, res.Outcome, res.Error)
		require.True(b, res.Rollback.Verified, "rollback verified")
		cancel()
		failed := time.Unix(0, firstFail.Load())
		require.NotZero(b, firstFail.Load(), "the health server never failed a check")
		detect = append(detect, benchSeconds(failed.Sub(failing)))
		restored = append(restored, benchSeconds(at.Sub(failed)))
		mu.Lock()
		var gaps []string
		for k := 1; k < len(checks) && !checks[k].After(failed); k++ {
			gaps = append(gaps, fmt.Sprintf("%.3f", benchSeconds(checks[k].Sub(checks[k-1]))))
		}
		mu.Unlock()
		b.Logf("p2-k8s run %d: first failing check %.3f s after the server began failing; restored %.3f s after it (%s); seconds between checks up to the failure: %s",
			i+1, benchSeconds(failed.Sub(failing)), benchSeconds(at.Sub(failed)), marks.since(failed), strings.Join(gaps, " "))
	}
	itest.BenchReport(b, "p2-k8s-detect", "s", detect)
	itest.BenchReport(b, "p2-k8s-restored", "s", restored)
}

// --- P3: history events

// BenchmarkP3HistoryEvents counts the real dev server's history events of
// a canary of the seed's shape (5/25/50/100, three checks, ten check rounds
// per stage as 5 min bakes with 30 s checks give, here 2 s bakes with
// 200 ms checks: the count does not depend on bake or interval, see
// TestHistoryBudget) and of an 8-step canary; the difference over the 4
// extra stages is the cost of a stage.
func BenchmarkP3HistoryEvents(b *testing.B) {
	itest.StartWorker(b, tc, dc)
	tg := benchDockerTarget(b, "bench-history")
	n := itest.BenchEnvInt(b, benchP3Env, 3)
	images := []string{tg.to, tg.from}
	run := 0
	count := func(steps []int) float64 {
		s := tg.spec(images[run%2])
		run++
		s.Strategy.Steps = steps
		s.Strategy.Bake = spec.Duration(2 * time.Second)
		s.Health.Interval = spec.Duration(200 * time.Millisecond)
		s.Health.Checks = append(s.Health.Checks, spec.Check{Name: "root",
			HTTP: &spec.HTTPCheck{URL: "http://{{.Address}}/", ExpectStatus: spec.StatusSet{"200"}, Timeout: spec.Duration(time.Second)}})
		started, res := benchStartWait(b, s)
		require.Equal(b, api.OutcomeSucceeded, res.Outcome, res.Error)
		events := len(benchHistory(b, started.WorkflowID, started.RunID))
		b.Logf("p3: canary %v: %d history events", steps, events)
		return float64(events)
	}
	var four, perStage []float64
	for range n {
		f := count([]int{5, 25, 50, 100})
		e := count([]int{5, 10, 20, 25, 40, 50, 75, 100})
		four = append(four, f)
		perStage = append(perStage, (e-f)/4)
	}
	itest.BenchReport(b, "p3-seed-canary", "events", four)
	itest.BenchReport(b, "p3-per-stage", "events", perStage)
}

// --- P5: overhead

func BenchmarkP5OverheadDocker(b *testing.B) {
	itest.StartWorker(b, tc, dc)
	benchOverhead(b, "p5-docker", benchDockerTarget(b, "bench-overhead"))
}

func BenchmarkP5OverheadKubernetes(b *testing.B) {
	itest.StartWorker(b, tc, dc)
	tg, _ := benchKubeTarget(b, benchKube(b), benchOKServer(b))
	benchOverhead(b, "p5-k8s", tg)
}

// benchOverhead runs 3-step canaries with 3 × 30 s bakes (checks every
// 10 s), alternately to the new and back to the old image, and reports each
// one's wall time (start request to result) minus the 90 s of bakes; and
// that overhead minus the time spent inside the platform activities
// (Prepare and the Converges, started to completed in the history): what
// the orchestration itself adds.
func benchOverhead(b *testing.B, figure string, tg *benchTarget) {
	n := itest.BenchEnvInt(b, benchP5Env, 3)
	const bake = 30 * time.Second
	images := []string{tg.to, tg.from}
	var over, orch []float64
	for i := range n {
		s := tg.spec(images[i%2])
		s.Strategy.Bake = spec.Duration(bake)
		s.Health.Interval = spec.Duration(10 * time.Second)
		t0 := time.Now()
		started, res := benchStartWait(b, s)
		wall := time.Since(t0)
		require.Equal(b, api.OutcomeSucceeded, res.Outcome, res.Error)
		bakes := time.Duration(len(res.Stages)) * bake
		inPlatform := benchActivityTime(benchHistory(b, started.WorkflowID, started.RunID), "Prepare", "Converge")
		over = append(over, benchSeconds(wall-bakes))
		orch = append(orch, benchSeconds(wall-bakes-inPlatform))
		b.Logf("%s run %d: %d stages, wall %.3f s, overhead %.3f s, of which %.3f s in Prepare and Converge activities",
			figure, i+1, len(res.Stages), benchSeconds(wall), benchSeconds(wall-bakes), benchSeconds(inPlatform))
	}
	itest.BenchReport(b, figure+"-overhead", "s", over)
	itest.BenchReport(b, figure+"-orchestration", "s", orch)
}

// benchActivityTime sums the run time (started to completed) of the
// activities of the named types in a history.
func benchActivityTime(events []*historypb.HistoryEvent, types ...string) time.Duration {
	want := map[int64]bool{}
	started := map[int64]time.Time{}
	var total time.Duration
	for _, ev := range events {
		switch ev.GetEventType() {
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			if slices.Contains(types, ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName()) {
				want[ev.GetEventId()] = true
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
			if id := ev.GetActivityTaskStartedEventAttributes().GetScheduledEventId(); want[id] {
				started[id] = ev.GetEventTime().AsTime()
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
			if id := ev.GetActivityTaskCompletedEventAttributes().GetScheduledEventId(); want[id] {
				total += ev.GetEventTime().AsTime().Sub(started[id])
			}
		}
	}
	return total
}

func BenchmarkP5DirectDocker(b *testing.B) {
	itest.StartWorker(b, tc, dc)
	benchDirect(b, "p5-docker", benchDockerTarget(b, "bench-direct"))
}

func BenchmarkP5DirectKubernetes(b *testing.B) {
	itest.StartWorker(b, tc, dc)
	tg, _ := benchKubeTarget(b, benchKube(b), benchOKServer(b))
	benchDirect(b, "p5-k8s", tg)
}

// benchDirect compares a zero-bake 4-step canary (5/25/50/100) through the
// workflow (promoted from its start, so no stage bakes) with the same
// platform calls made directly from Go: CheckImage, Snapshot, a Converge
// per planned stage and the final Converge, on the same engine in the same
// run. Both go from the old image to the new; the target is put back
// between them, untimed.
func benchDirect(b *testing.B, figure string, tg *benchTarget) {
	n := itest.BenchEnvInt(b, benchDirectEnv, 5)
	steps := []int{5, 25, 50, 100}
	at := func(image string) spec.Spec {
		s := tg.spec(image)
		s.Strategy.Steps = steps
		return s.WithDefaults()
	}
	var wf, direct, ratio []float64
	for i := range n {
		w := benchPromoted(b, at(tg.to))
		benchConverge(b, tg.platform, at(tg.from))
		d := benchConverge(b, tg.platform, at(tg.to))
		benchConverge(b, tg.platform, at(tg.from))
		wf, direct, ratio = append(wf, benchSeconds(w)), append(direct, benchSeconds(d)), append(ratio, benchSeconds(w)/benchSeconds(d))
		b.Logf("%s zero-bake run %d: workflow %.3f s, direct %.3f s, ratio %.2f", figure, i+1, benchSeconds(w), benchSeconds(d), benchSeconds(w)/benchSeconds(d))
	}
	itest.BenchReport(b, figure+"-zero-bake-workflow", "s", wf)
	itest.BenchReport(b, figure+"-zero-bake-direct", "s", direct)
	itest.BenchReport(b, figure+"-zero-bake-ratio", "x", ratio)
}

// benchPromoted starts a rollout with the promote signal (signal-with-start,
// so it is promoted before its first stage and no stage bakes) and returns
// the time from the request to its result.
func benchPromoted(tb testing.TB, s spec.Spec) time.Duration {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	name, err := api.WorkflowFor(s.Strategy.Type)
	require.NoError(tb, err)
	opts := tclient.StartWorkflowOptions{ID: s.WorkflowID(), TaskQueue: api.TaskQueue,
		Memo: map[string]any{api.MemoRequestID: s.RequestID(), api.MemoExecutionID: s.ExecutionID}}
	t0 := time.Now()
	run, err := tc.SignalWithStartWorkflow(ctx, s.WorkflowID(), api.SignalPromote,
		api.ControlRequest{Reason: "benchmark: zero bake", By: "bench"}, opts, name, s)
	require.NoError(tb, err)
	var res api.Result
	require.NoError(tb, control.Result(ctx, run, &res))
	d := time.Since(t0)
	require.Equal(tb, api.OutcomeSucceeded, res.Outcome, res.Error)
	for _, st := range res.Stages {
		require.Equal(tb, api.StageCompleted, st.Status, st.Name)
	}
	return d
}

// benchConverge makes the platform calls of a rollout of s directly, as the
// workflow's activities make them: CheckImage and Snapshot (Prepare), a
// Converge per planned stage, then the final Converge. It returns their
// wall time.
func benchConverge(tb testing.TB, p activities.Platform, s spec.Spec) time.Duration {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	require.NoError(tb, s.Validate())
	token := make([]byte, 4)
	_, _ = rand.Read(token)
	t0 := time.Now()
	require.NoError(tb, p.CheckImage(ctx, s.Image))
	snap, err := p.Snapshot(ctx, s)
	require.NoError(tb, err)
	total := s.Replicas()
	if total == 0 {
		total = snap.Count()
	}
	pl, err := plan.Build(s, total, snap.Count())
	require.NoError(tb, err)
	req := platform.ConvergeRequest{Spec: s, Rollout: hex.EncodeToString(token), Snapshot: snap}
	for _, st := range pl.Stages {
		req.Desired = st.Desired()
		_, err := p.Converge(ctx, req)
		require.NoError(tb, err, st.Name)
	}
	req.Desired = pl.Final
	_, err = p.Converge(ctx, req)
	require.NoError(tb, err, "final")
	return time.Since(t0)
}

// --- P6: the time-skipped workflow test matrix

// BenchmarkP6WorkflowTests times `go test -count=1 -run . ./workflows`
// (no integration tag: the time-skipped workflow tests and the replays),
// after one untimed run that warms the build cache. A failing test run is
// still timed, and fails the benchmark.
func BenchmarkP6WorkflowTests(b *testing.B) {
	n := itest.BenchEnvInt(b, benchP6Env, 5)
	run := func() time.Duration {
		cmd := exec.Command("go", "test", "-count=1", "-run", ".", "./workflows")
		cmd.Dir = itest.Root()
		t0 := time.Now()
		out, err := cmd.CombinedOutput()
		d := time.Since(t0)
		if err != nil {
			var failed []string
			for _, l := range strings.Split(string(out), "\n") {
				if strings.HasPrefix(strings.TrimSpace(l), "--- FAIL") || strings.HasPrefix(l, "FAIL") {
					failed = append(failed, l)
				}
			}
			b.Errorf("go test ./workflows failed (%v) in %.1f s:\n%s", err, d.Seconds(), strings.Join(failed, "\n"))
		}
		return d
	}
	run()
	var wall []float64
	for i := range n {
		d := run()
		wall = append(wall, benchSeconds(d))
		b.Logf("p6 run %d: %.3f s", i+1, benchSeconds(d))
	}
	itest.BenchReport(b, "p6-workflow-tests", "s", wall)
}

// --- P4: density

// BenchmarkP4Density holds N rollouts in a bake at once on one worker
// process (the built worker binary, with an activity slot per watcher), on
// N Deployments of one namespace of the Kubernetes plane, each checked every
// 30 s against a health server on 127.0.0.1 that logs every check. Once all
// N bake (or after the longer of 10 minutes and N × 0.45 s, with those that
// do), it measures for four intervals: the check-schedule lag and the
// worker's resident memory (sampled every second). Then it promotes them all
// and waits, bounded, for their end, and logs their outcomes.
//
// The lag of a check is the gap since the rollout's previous check minus
// the interval: how late the round started after the one before. A
// rollout whose next check is overdue at the window's end adds a sample of
// how overdue it is (a lower bound).
//
// STAGECRAFT_BENCH_DENSITY lists the sizes: "100" shares one kubeconfig (as
// every rollout of one cluster does, so they share the worker's one client
// for that cluster); "100:own" gives each rollout a copy of its own, so each
// gets its own client (and its own client-side rate limit).
func BenchmarkP4Density(b *testing.B) {
	sizes := os.Getenv(benchDensityEnv)
	if sizes == "" {
		sizes = "100,100:own"
	}
	for _, f := range strings.Split(sizes, ",") {
		count, mode, _ := strings.Cut(strings.TrimSpace(f), ":")
		n, err := strconv.Atoi(count)
		if err != nil || n < 0 || (mode != "" && mode != "own") {
			b.Fatalf("%s: want sizes like 100 or 100:own separated by commas, got %q", benchDensityEnv, sizes)
		}
		if n == 0 {
			continue
		}
		name := fmt.Sprintf("N=%d", n)
		if mode != "" {
			name += "/" + mode
		}
		b.Run(name, func(b *testing.B) { benchDensity(b, n, mode == "own") })
	}
}

// benchBound is how long P4 waits for a phase with n rollouts: base, or
// per rollout times n when that is longer (the controllers' pace).
func benchBound(base time.Duration, n int, per time.Duration) time.Duration {
	return max(base, time.Duration(n)*per)
}

func benchRSS(pid int) (float64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

func benchDensity(b *testing.B, n int, ownConfig bool) {
	const interval = 30 * time.Second
	const window = 4 * interval
	figure := fmt.Sprintf("p4-n%d", n)
	if ownConfig {
		figure += "-own"
	}
	cs := benchKube(b)
	ns := benchNamespace(b, cs)
	ctx := context.Background()

	// N targets of 2 pods each, created 8 at a time.
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := benchDeployment(ctx, cs, ns, fmt.Sprintf("d%d", i), "demo:v1", 2); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(b, err)
	}
	// How long each setup phase may take: the controllers' pace.
	setup := benchBound(10*time.Minute, n, 450*time.Millisecond)
	benchDeploymentsReady(b, cs, ns, n, setup)

	var mu sync.Mutex
	checks := map[string][]time.Time{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		mu.Lock()
		id := r.URL.Query().Get("id")
		checks[id] = append(checks[id], now)
		mu.Unlock()
		fmt.Fprint(w, `{"status":"ok"}`)
	}))
	b.Cleanup(srv.Close)

	// One worker process, started here and stopped by its PID; its log
	// goes to a file, summarised at the end.
	logf, err := os.CreateTemp("", "stagecraft-bench-worker-*.log")
	require.NoError(b, err)
	b.Cleanup(func() { logf.Close(); os.Remove(logf.Name()) })
	cmd := exec.Command(workerB, "--address", server.FrontendHostPort(), "--log-level", "warn",
		"--max-concurrent-activities", strconv.Itoa(n+50), "--allow-kubeconfig-paths")
	cmd.Stdout, cmd.Stderr = logf, logf
	require.NoError(b, cmd.Start())
	b.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	time.Sleep(3 * time.Second)
	idle, err := benchRSS(cmd.Process.Pid)
	require.NoError(b, err)

	configs := b.TempDir()
	raw, err := os.ReadFile(kubeconfig)
	require.NoError(b, err)
	t0 := time.Now()
	var rollouts []control.Started
	for i := range n {
		name := fmt.Sprintf("d%d", i)
		config := kubeconfig
		if ownConfig {
			config = fmt.Sprintf("%s/%s.kubeconfig", configs, name)
			require.NoError(b, os.WriteFile(config, raw, 0o600))
		}
		s := spec.Spec{
			Service: name,
			Image:   "demo:v2",
			Platform: spec.Platform{Kubernetes: &spec.Kubernetes{Namespace: ns, Deployment: name,
				Kubeconfig: config, ProgressDeadline: spec.Duration(10 * time.Minute)}},
			Strategy: spec.Strategy{Type: spec.Canary, Steps: []int{50, 100}, Bake: spec.Duration(time.Hour)},
			Health: spec.Health{Interval: spec.Duration(interval), Checks: []spec.Check{
				{Name: "healthz", HTTP: &spec.HTTPCheck{URL: srv.URL + "/healthz?id=" + name}},
			}},
		}.WithDefaults()
		started, err := control.Start(ctx, tc, s)
		require.NoError(b, err)
		rollouts = append(rollouts, started)
	}
	// All baking: every rollout's first stage validating (bounded).
	deadline := time.Now().Add(setup)
	baking := 0
	for {
		baking = 0
		for _, r := range rollouts {
			st, err := control.Status(ctx, tc, r.WorkflowID)
			if err == nil && len(st.Stages) > 0 && st.Stages[0].Status == api.StageValidating {
				baking++
			}
		}
		if baking == n || time.Now().After(deadline) {
			break
		}
		time.Sleep(2 * time.Second)
	}
	from := time.Now()
	b.Logf("%s: %d of %d rollouts baking %.1f s after the first start; worker RSS idle %.1f MiB", figure, baking, n, benchSeconds(from.Sub(t0)), idle)

	var rss []float64
	for time.Since(from) < window {
		v, err := benchRSS(cmd.Process.Pid)
		require.NoError(b, err, "worker process gone")
		rss = append(rss, v)
		time.Sleep(time.Second)
	}
	to := time.Now()
	var lag []float64
	observed, overdue, never := 0, 0, 0
	mu.Lock()
	for _, r := range rollouts {
		ts := checks[strings.TrimPrefix(r.WorkflowID, "deploy:k8s:"+ns+"/")]
		var prev time.Time
		for _, t := range ts {
			if t.After(to) {
				break
			}
			if !t.Before(from) {
				observed++
				if !prev.IsZero() {
					lag = append(lag, benchSeconds(t.Sub(prev)-interval))
				}
			}
			prev = t
		}
		switch {
		case prev.IsZero():
			never++
		case to.Sub(prev) > interval:
			overdue++
			lag = append(lag, benchSeconds(to.Sub(prev)-interval))
		}
	}
	mu.Unlock()
	b.Logf("%s: %d checks in the %.0f s window (%d expected at one per interval per rollout); %d rollouts overdue at its end, %d never checked",
		figure, observed, window.Seconds(), n*int(window/interval), overdue, never)
	itest.BenchReport(b, figure+"-lag", "s", lag)
	itest.BenchReport(b, figure+"-rss", "MiB", rss)
	b.Logf("%s: worker RSS per rollout ≈ %.0f KiB (median over the window, minus idle, over N)", figure, (itest.Median(rss)-idle)*1024/float64(n))

	// Promote them all and wait for their end (bounded); outcomes logged.
	end := time.Now()
	for _, r := range rollouts {
		_, _ = control.Act(ctx, tc, r.WorkflowID, api.SignalPromote, api.ControlRequest{Reason: "benchmark done", By: "bench"})
	}
	// 500 promoted at once take about 10 minutes here: every one's
	// Deployment rolls through one controller-manager (20 requests/s by
	// default; STAGECRAFT_KUBE_API_QPS raises it).
	bound := benchBound(20*time.Minute, n, 900*time.Millisecond)
	wctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	outcomes := map[string]int{}
	for _, r := range rollouts {
		res, err := control.Wait(wctx, tc, r.WorkflowID, r.RunID, time.Second, nil)
		switch {
		case err != nil:
			outcomes["not finished"]++
			_ = tc.TerminateWorkflow(ctx, r.WorkflowID, r.RunID, fmt.Sprintf("benchmark: did not finish in %s", bound))
		default:
			outcomes[string(res.Outcome)]++
		}
	}
	logText, _ := os.ReadFile(logf.Name())
	// Promoting cancels every watcher: each logs a cancelled activity and,
	// often, a heartbeat refused as cancelled. Only the rest are errors.
	activityErrors, heartbeat := 0, 0
	for _, line := range strings.Split(string(logText), "\n") {
		if strings.Contains(line, `"Error":"canceled"`) {
			continue
		}
		switch {
		case strings.Contains(line, `"msg":"Activity error."`):
			activityErrors++
		case strings.Contains(line, "RecordActivityHeartbeat with error"):
			heartbeat++
		}
	}
	b.Logf("%s: promoted, %.1f s later: outcomes %v; worker log: %d activity errors, %d failed heartbeats (besides the cancelled watchers')",
		figure, benchSeconds(time.Since(end)), outcomes, activityErrors, heartbeat)
	if outcomes[string(api.OutcomeSucceeded)] != n {
		// Keep the worker's log to find out why.
		keep := filepath.Join(itest.Root(), ".data", "bench-worker-"+figure+".log")
		if err := os.WriteFile(keep, logText, 0o644); err == nil {
			b.Logf("%s: not every rollout succeeded; the worker's log is kept in %s", figure, keep)
		}
	}
}
