//go:build integration

package realnode

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	tclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"github.com/stagecraft/stagecraft/activities"
	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/control"
	"github.com/stagecraft/stagecraft/internal/itest"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// The real node's benchmarks (make bench runs them beside internal/e2e's;
// scripts/bench.sh prints one table). Each runs once (-benchtime 1x),
// repeats its own measurement, and reports as internal/e2e/bench_test.go
// does: "<figure>.med.<unit>", "<figure>.p99.<unit>", "<figure>.n".
// Nothing here asserts a speed: a benchmark fails only when a rollout it
// times does not end as it must. Every rollout runs through the real
// workflow on a dev server of the benchmark's own, with an in-process
// worker whose Kubernetes platform checks each pod through port-forward,
// on a Deployment "web" of 4 real pods of stagecraft-demo:v1 and its
// Service. docs/BENCHMARKS.md holds the method and the figures.
//
// Repetitions, read as internal/e2e reads them:
const (
	benchNEnv  = "STAGECRAFT_BENCH_N"    // P1 and P2 samples (default 20)
	benchP5Env = "STAGECRAFT_BENCH_P5_N" // P5 canaries, alternately to v2 and back (default 3)
)

const (
	benchReplicas = 4
	benchV1       = "stagecraft-demo:v1"
	benchV2       = "stagecraft-demo:v2"
	// benchBad's /healthz answers 500 from 3 s after its process starts.
	benchBad = "stagecraft-demo:v2-bad"
)

func benchSeconds(d time.Duration) float64 { return d.Seconds() }

// benchRig is a benchmark's dev server and worker, and its target: the
// namespace holding Deployment and Service "web" (4 ready pods of v1),
// watched.
type benchRig struct {
	c  tclient.Client
	ns string
	w  *benchWatch
}

func newBenchRig(b *testing.B) *benchRig {
	b.Helper()
	srv, err := itest.DevServer(context.Background())
	require.NoError(b, err)
	b.Cleanup(func() { _ = srv.Stop() })
	c := srv.Client()
	itest.StartKubeWorker(b, c, forwardingPlatform(b))
	ns := webTarget(b, "bench", benchReplicas)
	return &benchRig{c: c, ns: ns, w: watchNamespace(b, ns)}
}

// spec is a canary 25/50/100 of the target to image, each pod's /healthz
// checked through a forward every 500 ms.
func (r *benchRig) spec(image string, bake time.Duration) spec.Spec {
	s := webSpec(r.ns, kubeconfigPath, image)
	s.Strategy.Steps = []int{25, 50, 100}
	s.Strategy.Bake = spec.Duration(bake)
	return s
}

// benchWatch follows a namespace through informers (watches), and notes
// when it first saw each pod and when it first saw it Ready: a pod's start
// as the watch shows it, to the millisecond (the pod's own timestamps
// have whole seconds).
type benchWatch struct {
	factory informers.SharedInformerFactory
	changed chan struct{}
	ns      string

	mu    sync.Mutex
	pods  map[types.UID]*benchPod
	image map[string]string // pod name → image, kept after the pod is gone
}

type benchPod struct {
	image, owner string // owner: the ReplicaSet that made it
	seen, ready  time.Time
}

func watchNamespace(tb testing.TB, ns string) *benchWatch {
	tb.Helper()
	w := &benchWatch{factory: informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(ns)),
		changed: make(chan struct{}, 1), ns: ns, pods: map[types.UID]*benchPod{}, image: map[string]string{}}
	poke := func() {
		select {
		case w.changed <- struct{}{}:
		default:
		}
	}
	pod := func(obj any) {
		p, ok := obj.(*corev1.Pod)
		if !ok {
			return
		}
		now := time.Now()
		w.mu.Lock()
		bp := w.pods[p.UID]
		if bp == nil {
			bp = &benchPod{image: p.Spec.Containers[0].Image, seen: now}
			if o := metav1.GetControllerOf(p); o != nil {
				bp.owner = o.Name
			}
			w.pods[p.UID] = bp
			w.image[p.Name] = bp.image
		}
		if bp.ready.IsZero() && podReady(p) {
			bp.ready = now
		}
		w.mu.Unlock()
	}
	podHandler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { pod(obj); poke() },
		UpdateFunc: func(_, obj any) { pod(obj); poke() },
		DeleteFunc: func(any) { poke() },
	}
	h := cache.ResourceEventHandlerFuncs{AddFunc: func(any) { poke() }, UpdateFunc: func(any, any) { poke() }, DeleteFunc: func(any) { poke() }}
	_, err := w.factory.Core().V1().Pods().Informer().AddEventHandler(podHandler)
	require.NoError(tb, err)
	for _, inf := range []cache.SharedIndexInformer{w.factory.Apps().V1().Deployments().Informer(),
		w.factory.Discovery().V1().EndpointSlices().Informer()} {
		_, err := inf.AddEventHandler(h)
		require.NoError(tb, err)
	}
	stop := make(chan struct{})
	w.factory.Start(stop)
	tb.Cleanup(func() { close(stop); w.factory.Shutdown() })
	for typ, ok := range w.factory.WaitForCacheSync(stop) {
		require.True(tb, ok, "informer cache of %v", typ)
	}
	return w
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// until waits for cond to hold on the cached state and returns when it saw
// it (re-checking every 50 ms besides each watch event).
func (w *benchWatch) until(ctx context.Context, what string, cond func() bool) (time.Time, error) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		if cond() {
			return time.Now(), nil
		}
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("namespace %s: %s: %w", w.ns, what, ctx.Err())
		case <-w.changed:
		case <-t.C:
		}
	}
}

// endpoints counts the Service's ready endpoints by the image of the pod
// each points to (a terminating pod's endpoint is not ready: the Service
// sends it nothing while others are).
func (w *benchWatch) endpoints() map[string]int {
	eps, _ := w.factory.Discovery().V1().EndpointSlices().Lister().EndpointSlices(w.ns).List(
		labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: "web"}))
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]int{}
	for _, s := range eps {
		for _, ep := range s.Endpoints {
			if ep.TargetRef == nil || (ep.Conditions.Ready != nil && !*ep.Conditions.Ready) {
				continue
			}
			out[w.image[ep.TargetRef.Name]]++
		}
	}
	return out
}

// stableReady: Deployment "web" runs image on all its replicas, ready, at
// the generation last written, and is the namespace's only Deployment.
func (w *benchWatch) stableReady(image string) bool {
	deps, _ := w.factory.Apps().V1().Deployments().Lister().Deployments(w.ns).List(labels.Everything())
	if len(deps) != 1 || deps[0].Name != "web" {
		return false
	}
	d, st := deps[0], deps[0].Status
	return d.Spec.Template.Spec.Containers[0].Image == image && *d.Spec.Replicas == benchReplicas &&
		st.ObservedGeneration >= d.Generation && st.Replicas == benchReplicas && st.ReadyReplicas == benchReplicas &&
		st.UpdatedReplicas == benchReplicas && st.AvailableReplicas == benchReplicas
}

// restored: the old version ready (Deployment "web" on old, 4 ready pods,
// 4 ready endpoints of old) and the new version out of the Service's
// endpoints (none of its pods a ready endpoint). marks keeps when each of
// those parts was first seen holding (for good: a part seen to stop
// holding loses its mark).
func (w *benchWatch) restored(old, new string, marks map[string]time.Time) bool {
	ep := w.endpoints()
	all := true
	for part, ok := range map[string]bool{"old ready": w.stableReady(old) && ep[old] == benchReplicas, "new out of the endpoints": ep[new] == 0} {
		if !ok {
			all = false
			delete(marks, part)
		} else if _, seen := marks[part]; !seen {
			marks[part] = time.Now()
		}
	}
	return all
}

// since describes marks relative to t0.
func since(marks map[string]time.Time, t0 time.Time) string {
	var out []string
	for part, at := range marks {
		out = append(out, fmt.Sprintf("%s at %.3f s", part, benchSeconds(at.Sub(t0))))
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

// settled: restored, and nothing else left in any state (no pod of
// another image, none terminating), so the next run starts clean.
func (w *benchWatch) settled(ctx context.Context, tb testing.TB, image string) {
	tb.Helper()
	_, err := w.until(ctx, "settled on "+image, func() bool {
		pods, _ := w.factory.Core().V1().Pods().Lister().Pods(w.ns).List(labels.Everything())
		if len(pods) != benchReplicas {
			return false
		}
		for _, p := range pods {
			if p.DeletionTimestamp != nil || p.Spec.Containers[0].Image != image || !podReady(p) {
				return false
			}
		}
		ep := w.endpoints()
		return w.stableReady(image) && ep[image] == benchReplicas && len(ep) == 1
	})
	require.NoError(tb, err)
}

// started lists the pods of image the watch first saw at or after t0.
func (w *benchWatch) started(image string, t0 time.Time) []benchPod {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []benchPod
	for _, p := range w.pods {
		if p.image == image && !p.seen.Before(t0) {
			out = append(out, *p)
		}
	}
	return out
}

// waitStage polls the run's status until stage index has status want.
func (r *benchRig) waitStage(ctx context.Context, tb testing.TB, workflowID string, index int, want api.StageStatus) {
	tb.Helper()
	_, err := r.w.until(ctx, fmt.Sprintf("stage %d %s", index, want), func() bool {
		st, err := control.Status(ctx, r.c, workflowID)
		return err == nil && len(st.Stages) > index && st.Stages[index].Status == want
	})
	require.NoError(tb, err)
}

// history reads a run's whole history.
func (r *benchRig) history(tb testing.TB, workflowID, runID string) []*historypb.HistoryEvent {
	tb.Helper()
	return runHistory(tb, r.c, workflowID, runID).Events
}

// failingRound returns when the round that failed the stage started: the
// latest round of the first Watch that ended unhealthy.
func failingRound(tb testing.TB, events []*historypb.HistoryEvent) time.Time {
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

// activityTime sums the run time (started to completed) of the activities
// of the named types in a history.
func activityTime(events []*historypb.HistoryEvent, types ...string) time.Duration {
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

// BenchmarkRealNodeP1Abort starts canaries (25/50/100 of 4 pods, 1 h bake)
// and aborts each in its first stage's bake (1 v2 pod beside 3 of v1), at
// a random point of the check interval, with the abort update (what
// `starter abort` sends). It times the request to the target seen back:
// Deployment "web" on v1 with 4 ready pods, the Service's ready endpoints
// those 4 and no pod of v2 among them. One v1 pod was removed for the
// canary, so a new one must start on the node.
func BenchmarkRealNodeP1Abort(b *testing.B) {
	r := newBenchRig(b)
	n := itest.BenchEnvInt(b, benchNEnv, 20)
	var restored []float64
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		started, err := control.Start(ctx, r.c, r.spec(benchV2, time.Hour))
		require.NoError(b, err)
		r.waitStage(ctx, b, started.WorkflowID, 0, api.StageValidating)
		time.Sleep(200*time.Millisecond + mrand.N(500*time.Millisecond))

		t0 := time.Now()
		acted := make(chan error, 1)
		go func() {
			_, err := control.Act(ctx, r.c, started.WorkflowID, api.SignalAbort, api.ControlRequest{Reason: "benchmark", By: "bench"})
			acted <- err
		}()
		marks := map[string]time.Time{}
		at, err := r.w.until(ctx, "restored", func() bool { return r.w.restored(benchV1, benchV2, marks) })
		require.NoError(b, err)
		require.NoError(b, <-acted)
		res, err := control.Wait(ctx, r.c, started.WorkflowID, started.RunID, 200*time.Millisecond, nil)
		require.NoError(b, err)
		require.Equal(b, api.OutcomeRolledBack, res.Outcome, res.Error)
		require.True(b, res.Rollback.Verified, "rollback verified: %s", res.Rollback.Error)
		r.w.settled(ctx, b, benchV1)
		cancel()
		restored = append(restored, benchSeconds(at.Sub(t0)))
		b.Logf("rn-p1 run %d: restored %.3f s after the abort request (%s; run ended at %.3f s)",
			i+1, benchSeconds(at.Sub(t0)), since(marks, t0), benchSeconds(res.CompletedAt.Sub(t0)))
	}
	itest.BenchReport(b, "rn-p1-restored", "s", restored)
}

// BenchmarkRealNodeP2Failure rolls out stagecraft-demo:v2-bad (its
// /healthz answers 500 from 3 s after its start; its readiness probe
// tolerates that for 30 s, so the pod stays a ready endpoint while the
// per-pod check fails). It times the first failing check (the start of the
// round that failed the stage, from the history) to the target seen back
// as in P1.
func BenchmarkRealNodeP2Failure(b *testing.B) {
	r := newBenchRig(b)
	n := itest.BenchEnvInt(b, benchNEnv, 20)
	var restored []float64
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		started, err := control.Start(ctx, r.c, r.spec(benchBad, time.Minute))
		require.NoError(b, err)
		// The bad pod serves (a ready endpoint) before it fails.
		_, err = r.w.until(ctx, "v2-bad a ready endpoint", func() bool { return r.w.endpoints()[benchBad] > 0 })
		require.NoError(b, err)
		marks := map[string]time.Time{}
		at, err := r.w.until(ctx, "restored", func() bool { return r.w.restored(benchV1, benchBad, marks) })
		require.NoError(b, err)
		res, err := control.Wait(ctx, r.c, started.WorkflowID, started.RunID, 200*time.Millisecond, nil)
		require.NoError(b, err)
		require.Equal(b, api.OutcomeRolledBack, res.Outcome, res.Error)
		require.True(b, res.Rollback.Verified, "rollback verified: %s", res.Rollback.Error)
		failed := failingRound(b, r.history(b, started.WorkflowID, started.RunID))
		r.w.settled(ctx, b, benchV1)
		cancel()
		restored = append(restored, benchSeconds(at.Sub(failed)))
		b.Logf("rn-p2 run %d: restored %.3f s after the first failing check (%s)", i+1, benchSeconds(at.Sub(failed)), since(marks, failed))
	}
	itest.BenchReport(b, "rn-p2-restored", "s", restored)
}

// BenchmarkRealNodeP5Overhead runs canaries 25/50/100 of 4 pods with
// 3 × 5 s bakes, alternately to v2 and back to v1, and reports each one's
// wall time (start request to result) minus its bakes; beside it, each
// new-version pod's own start (first seen by the watch → first seen
// Ready), and how many pods of the new version each rollout started (4
// when each new pod starts once).
func BenchmarkRealNodeP5Overhead(b *testing.B) {
	r := newBenchRig(b)
	n := itest.BenchEnvInt(b, benchP5Env, 3)
	const bake = 5 * time.Second
	images := []string{benchV2, benchV1}
	var over, podStart, starts []float64
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		image := images[i%2]
		t0 := time.Now()
		started, err := control.Start(ctx, r.c, r.spec(image, bake))
		require.NoError(b, err)
		res, err := control.Wait(ctx, r.c, started.WorkflowID, started.RunID, 50*time.Millisecond, nil)
		require.NoError(b, err)
		wall := time.Since(t0)
		require.Equal(b, api.OutcomeSucceeded, res.Outcome, res.Error)
		r.w.settled(ctx, b, image)
		cancel()
		bakes := time.Duration(len(res.Stages)) * bake
		inPlatform := activityTime(r.history(b, started.WorkflowID, started.RunID), "Prepare", "Converge")
		pods := r.w.started(image, t0)
		var each []string
		owners := map[string]int{}
		for _, p := range pods {
			owners[p.owner]++
			if p.ready.IsZero() { // gone before it was ready
				each = append(each, "never")
				continue
			}
			d := p.ready.Sub(p.seen)
			podStart = append(podStart, benchSeconds(d))
			each = append(each, fmt.Sprintf("%.3f", benchSeconds(d)))
		}
		over = append(over, benchSeconds(wall-bakes))
		starts = append(starts, float64(len(pods)))
		b.Logf("rn-p5 run %d (to %s): %d stages, wall %.3f s, overhead %.3f s, of which %.3f s in Prepare and Converge activities; %d pods of %s started (by ReplicaSet: %v), each seen created → Ready in %s s",
			i+1, image, len(res.Stages), benchSeconds(wall), benchSeconds(wall-bakes), benchSeconds(inPlatform), len(pods), image, owners, strings.Join(each, " "))
	}
	itest.BenchReport(b, "rn-p5-overhead", "s", over)
	itest.BenchReport(b, "rn-pod-start", "s", podStart)
	itest.BenchReport(b, "rn-new-pod-starts", "pods", starts)
}
