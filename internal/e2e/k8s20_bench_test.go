//go:build integration

package e2e

import (
	"bytes"
	"context"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/yaml"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/control"
	"github.com/stagecraft/stagecraft/internal/itest"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// The Kubernetes figures of the 20-replica shape (issue 20), measured as a
// user sees them: through the starter binary, from the start of its process.
// The shape is the one Argo Rollouts was measured on, on the same KWOK
// plane: a Deployment of 20 replicas, canary steps 5/25/50/100.
const (
	benchPodsEnv   = "STAGECRAFT_BENCH_PODS_N"    // pod-start canaries per size (default 3)
	benchZeroEnv   = "STAGECRAFT_BENCH_P5_ZERO_N" // P5 zero-bake starter runs at 20 replicas (default 5)
	benchK8s20     = 20
	benchBakeShort = time.Millisecond // "zero" bake: a bake must be positive
)

var benchK8s20Steps = []int{5, 25, 50, 100}

// benchK8s20Target is the 20-replica target with the 4-step canary, and a
// recorder of what the cluster did.
func benchK8s20Target(b *testing.B, replicas int32) (*benchTarget, *benchKubeCluster, *benchRecorder) {
	b.Helper()
	tg, cluster := benchKubeTargetOf(b, benchKube(b), benchOKServer(b), replicas)
	base := tg.spec
	tg.spec = func(image string) spec.Spec {
		s := base(image)
		s.Strategy.Steps = benchK8s20Steps
		return s
	}
	return tg, cluster, benchRecord(b, cluster)
}

// benchRecorder keeps, from the namespace's informers, when each pod was
// created (by the watch event that first showed it) with its image, and a
// timeline of every Deployment and pod event.
type benchRecorder struct {
	mu     sync.Mutex
	pods   map[types.UID]string // UID → image, every pod ever seen
	fresh  map[types.UID]string // pods first seen since reset
	events []time.Time          // every event since reset
	trace  []benchTraced        // with STAGECRAFT_BENCH_TRACE set: what each event said
}

// benchTraced is one event of the trace.
type benchTraced struct {
	at   time.Time
	what string
}

const benchTraceEnv = "STAGECRAFT_BENCH_TRACE" // set: log every Deployment and pod event of the 20-replica runs

func benchRecord(tb testing.TB, c *benchKubeCluster) *benchRecorder {
	tb.Helper()
	r := &benchRecorder{pods: map[types.UID]string{}, fresh: map[types.UID]string{}}
	tracing := os.Getenv(benchTraceEnv) != ""
	note := func(now time.Time, what func() string) {
		r.events = append(r.events, now)
		if tracing {
			r.trace = append(r.trace, benchTraced{now, what()})
		}
	}
	pod := func(verb string, obj any) {
		now := time.Now()
		p, ok := obj.(*corev1.Pod)
		if !ok {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				p, _ = d.Obj.(*corev1.Pod)
			}
		}
		if p == nil {
			return
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		note(now, func() string {
			ready := false
			for _, c := range p.Status.Conditions {
				ready = ready || (c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue)
			}
			return fmt.Sprintf("pod %s %s %s node=%q phase=%s ready=%t deleting=%t", verb, p.Name, p.Spec.Containers[0].Image,
				p.Spec.NodeName, p.Status.Phase, ready, p.DeletionTimestamp != nil)
		})
		if _, seen := r.pods[p.UID]; !seen && verb != "delete" {
			r.pods[p.UID] = p.Spec.Containers[0].Image
			r.fresh[p.UID] = p.Spec.Containers[0].Image
		}
	}
	// noted notes one event of a Deployment or ReplicaSet, described by
	// describe when it is one (as typed), by kind and verb when not.
	noted := func(kind, verb string, describe func() (string, bool)) {
		now := time.Now()
		r.mu.Lock()
		defer r.mu.Unlock()
		note(now, func() string {
			if what, ok := describe(); ok {
				return what
			}
			return kind + " " + verb
		})
	}
	deploy := func(verb string, was, obj any) {
		noted("deployment", verb, func() (string, bool) {
			d, ok := obj.(*appsv1.Deployment)
			if !ok {
				return "", false
			}
			st := d.Status
			return fmt.Sprintf("deployment %s %s gen %d/%d spec %d: replicas %d updated %d ready %d available %d%s", verb, d.Name,
				st.ObservedGeneration, d.Generation, *d.Spec.Replicas, st.Replicas, st.UpdatedReplicas, st.ReadyReplicas, st.AvailableReplicas,
				benchChanged(was, obj)), true
		})
	}
	rs := func(verb string, was, obj any) {
		if !tracing {
			return
		}
		noted("replicaset", verb, func() (string, bool) {
			s, ok := obj.(*appsv1.ReplicaSet)
			if !ok {
				return "", false
			}
			st := s.Status
			return fmt.Sprintf("replicaset %s %s gen %d/%d spec %d: replicas %d ready %d available %d%s", verb, s.Name,
				st.ObservedGeneration, s.Generation, *s.Spec.Replicas, st.Replicas, st.ReadyReplicas, st.AvailableReplicas,
				benchChanged(was, obj)), true
		})
	}
	pod1 := func(verb string, _, obj any) { pod(verb, obj) }
	for inf, on := range map[cache.SharedIndexInformer]func(string, any, any){
		c.factory.Core().V1().Pods().Informer():        pod1,
		c.factory.Apps().V1().Deployments().Informer(): deploy,
		c.factory.Apps().V1().ReplicaSets().Informer(): rs,
	} {
		_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(o any) { on("add", nil, o) },
			UpdateFunc: func(was, o any) { on("update", was, o) },
			DeleteFunc: func(o any) { on("delete", nil, o) }})
		require.NoError(tb, err)
	}
	// The handlers replay what is there: those pods are not new.
	require.True(tb, cache.WaitForCacheSync(nil, c.factory.Core().V1().Pods().Informer().HasSynced))
	pods, _ := c.factory.Core().V1().Pods().Lister().Pods(c.ns).List(labels.Everything())
	r.mu.Lock()
	for _, p := range pods {
		r.pods[p.UID] = p.Spec.Containers[0].Image
	}
	r.mu.Unlock()
	r.reset()
	return r
}

// benchChanged names what an update changed in a Deployment or
// ReplicaSet (which annotations, the owner, the spec, the status), for the
// trace: " [...]", or "" for anything else.
func benchChanged(was, obj any) string {
	switch cur := obj.(type) {
	case *appsv1.Deployment:
		if old, ok := was.(*appsv1.Deployment); ok {
			return benchDiff(&old.ObjectMeta, &cur.ObjectMeta, [2]any{old.Spec, cur.Spec}, [2]any{old.Status, cur.Status})
		}
	case *appsv1.ReplicaSet:
		if old, ok := was.(*appsv1.ReplicaSet); ok {
			return benchDiff(&old.ObjectMeta, &cur.ObjectMeta, [2]any{old.Spec, cur.Spec}, [2]any{old.Status, cur.Status})
		}
	}
	return ""
}

// benchDiff is benchChanged's " [...]" from the metadata, spec and status
// (each as was, now) of one object.
func benchDiff(old, cur *metav1.ObjectMeta, spec, status [2]any) string {
	parts := benchMetaChanged(old, cur)
	if !equality.Semantic.DeepEqual(spec[0], spec[1]) {
		parts = append(parts, "spec")
	}
	if !equality.Semantic.DeepEqual(status[0], status[1]) {
		parts = append(parts, "status")
	}
	return " [" + strings.Join(parts, " ") + "]"
}

func benchMetaChanged(old, cur *metav1.ObjectMeta) []string {
	var parts []string
	for k, v := range cur.Annotations {
		if ov, ok := old.Annotations[k]; !ok || ov != v {
			parts = append(parts, "+ann:"+k)
		}
	}
	for k := range old.Annotations {
		if _, ok := cur.Annotations[k]; !ok {
			parts = append(parts, "-ann:"+k)
		}
	}
	if !equality.Semantic.DeepEqual(old.OwnerReferences, cur.OwnerReferences) {
		parts = append(parts, "owner")
	}
	if !equality.Semantic.DeepEqual(old.Finalizers, cur.Finalizers) || !equality.Semantic.DeepEqual(old.DeletionTimestamp, cur.DeletionTimestamp) {
		parts = append(parts, "deletion")
	}
	if !equality.Semantic.DeepEqual(old.Labels, cur.Labels) {
		parts = append(parts, "labels")
	}
	slices.Sort(parts)
	return parts
}

// reset forgets the pods and events seen so far (the pods stay known).
func (r *benchRecorder) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fresh = map[types.UID]string{}
	r.events = nil
	r.trace = nil
}

// traced logs the trace since reset, relative to t0 and marked with the
// activities of the run (started and completed).
func (r *benchRecorder) traced(tb testing.TB, t0 time.Time, acts []benchActivity) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.trace) == 0 {
		return
	}
	var lines []string
	marks := make([]benchTraced, 0, 2*len(acts))
	for _, a := range acts {
		marks = append(marks, benchTraced{a.started, "--- " + a.typ + " started"}, benchTraced{a.complete, "--- " + a.typ + " completed"})
	}
	all := append(slices.Clone(r.trace), marks...)
	slices.SortStableFunc(all, func(a, b benchTraced) int { return a.at.Compare(b.at) })
	for _, e := range all {
		lines = append(lines, fmt.Sprintf("%8.3f %s", benchSeconds(e.at.Sub(t0)), e.what))
	}
	tb.Logf("trace:\n%s", strings.Join(lines, "\n"))
}

// created counts the pods of image first seen since reset.
func (r *benchRecorder) created(image string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, img := range r.fresh {
		if img == image {
			n++
		}
	}
	return n
}

// within returns the first and last cluster event in [from, to].
func (r *benchRecorder) within(from, to time.Time) (first, last time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, at := range r.events {
		if at.Before(from) || at.After(to) {
			continue
		}
		if first.IsZero() {
			first = at
		}
		last = at
	}
	return first, last
}

// benchActivity is one activity of a history, by its last attempt.
type benchActivity struct {
	typ                          string
	scheduled, started, complete time.Time
}

// benchRunTimes is what a history says of a run: its activities in order of
// scheduling, and when it started and closed.
type benchRunTimes struct {
	acts          []benchActivity
	opened, close time.Time
	closedAs      enumspb.EventType
	// timers is how long each timer of bake took from its start to its
	// firing, as the server fired it.
	timers []time.Duration
}

func benchTimes(events []*historypb.HistoryEvent, bake time.Duration) benchRunTimes {
	var rt benchRunTimes
	idx := map[int64]int{}
	timers := map[int64]time.Time{}
	for _, ev := range events {
		at := ev.GetEventTime().AsTime()
		switch ev.GetEventType() {
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
			rt.opened = at
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			idx[ev.GetEventId()] = len(rt.acts)
			rt.acts = append(rt.acts, benchActivity{typ: ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName(), scheduled: at})
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
			if i, ok := idx[ev.GetActivityTaskStartedEventAttributes().GetScheduledEventId()]; ok {
				rt.acts[i].started = at
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
			if i, ok := idx[ev.GetActivityTaskCompletedEventAttributes().GetScheduledEventId()]; ok {
				rt.acts[i].complete = at
			}
		case enumspb.EVENT_TYPE_TIMER_STARTED:
			if ev.GetTimerStartedEventAttributes().GetStartToFireTimeout().AsDuration() == bake {
				timers[ev.GetEventId()] = at
			}
		case enumspb.EVENT_TYPE_TIMER_FIRED:
			if from, ok := timers[ev.GetTimerFiredEventAttributes().GetStartedEventId()]; ok {
				rt.timers = append(rt.timers, at.Sub(from))
			}
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
			enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT:
			rt.close, rt.closedAs = at, ev.GetEventType()
		}
	}
	return rt
}

// benchStarterRun runs the starter binary with args and returns when its
// process was started and when it exited, and its output.
func benchStarterRun(tb testing.TB, args ...string) (t0, exit time.Time, out string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, starter, append([]string{"--address", server.FrontendHostPort()}, args...)...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	t0 = time.Now()
	err := cmd.Run()
	exit = time.Now()
	require.NoError(tb, err, "starter %s:\n%s", strings.Join(args, " "), buf.String())
	return t0, exit, buf.String()
}

func benchSpecFile(tb testing.TB, s spec.Spec) string {
	tb.Helper()
	raw, err := yaml.Marshal(s)
	require.NoError(tb, err)
	f := filepath.Join(tb.TempDir(), "spec.yaml")
	require.NoError(tb, os.WriteFile(f, raw, 0o644))
	return f
}

// benchLatestRun is the run ID of the workflow's latest run.
func benchLatestRun(tb testing.TB, workflowID string) string {
	tb.Helper()
	d, err := tc.DescribeWorkflowExecution(context.Background(), workflowID, "")
	require.NoError(tb, err)
	return d.GetWorkflowExecutionInfo().GetExecution().GetRunId()
}

// --- P5 at 20 replicas, through `starter deploy --wait`

// BenchmarkP5StarterKubernetes20 times `starter deploy -f SPEC --wait` (a
// canary 5/25/50/100 of 20 replicas, 30 s bakes, checks every 10 s), from
// the start of its process to its exit, minus the bakes; alternately to the
// new image and back.
func BenchmarkP5StarterKubernetes20(b *testing.B) {
	itest.StartWorker(b, tc, dc)
	benchStarterOverhead(b, "p5-k8s20", itest.BenchEnvInt(b, benchP5Env, 3), 30*time.Second)
}

// BenchmarkP5StarterKubernetes20ZeroBake is the same with bakes of 1 ms
// (a bake must be positive) and no checks (a stage waits for a passing
// round, which with 30 s bakes falls inside the bake), for quick iteration.
func BenchmarkP5StarterKubernetes20ZeroBake(b *testing.B) {
	itest.StartWorker(b, tc, dc)
	benchStarterOverhead(b, "p5-k8s20-zero-bake", itest.BenchEnvInt(b, benchZeroEnv, 5), benchBakeShort)
}

// benchStarterOverhead runs n starter deploys and reports total − bakes,
// and where the time went, from the history and the cluster's events:
//   - start: process start → the workflow started (the starter's exec,
//     its connection and the start request);
//   - platform: inside Prepare and the Converges (started → completed);
//   - converge tails: from the last Deployment or pod event a converge
//     caused to its completion (how long it took to see it was done);
//   - exit: the workflow closed → the process exited (the starter's
//     polling of the result; negative when it exited on the outcome
//     before the run closed).
func benchStarterOverhead(b *testing.B, figure string, n int, bake time.Duration) {
	tg, _, rec := benchK8s20Target(b, benchK8s20)
	images := []string{tg.to, tg.from}
	var over, start, inPlatform, tails, exitLag, pods []float64
	for i := range n {
		image := images[i%2]
		s := tg.spec(image)
		s.Strategy.Bake = spec.Duration(bake)
		s.Health.Interval = spec.Duration(10 * time.Second)
		if bake < s.Health.Interval.D() {
			s.Health.Checks = nil
		}
		file := benchSpecFile(b, s)
		rec.reset()
		t0, exit, out := benchStarterRun(b, "deploy", "-f", file, "--wait")
		// The starter exits on the outcome; the run closes after its
		// notifications and trail, so its history is read once it has.
		run := benchLatestRun(b, s.WorkflowID())
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		require.NoError(b, tc.GetWorkflow(ctx, s.WorkflowID(), run).Get(ctx, nil), "starter said:\n%s", out)
		cancel()
		rt := benchTimes(benchHistory(b, s.WorkflowID(), run), bake)
		require.Equal(b, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED, rt.closedAs, "starter said:\n%s", out)
		require.Len(b, rt.timers, len(benchK8s20Steps), "a bake timer per stage")
		wall := exit.Sub(t0)
		// Total minus the bakes; a bake shorter than a second is taken as
		// the server fired its timer (the dev server fires it about 1 s
		// late), so the figure holds what Stagecraft adds.
		var bakes time.Duration
		for _, d := range rt.timers {
			if bake < time.Second {
				bakes += d
			} else {
				bakes += bake
			}
		}
		o := wall - bakes
		var plat, tail time.Duration
		var parts []string
		prev := rt.opened
		for _, a := range rt.acts {
			if a.typ != "Prepare" && a.typ != "Converge" {
				continue
			}
			run := a.complete.Sub(a.started)
			plat += run
			_, last := rec.within(a.started, a.complete)
			t := time.Duration(0)
			if !last.IsZero() {
				t = a.complete.Sub(last)
			}
			tail += t
			parts = append(parts, fmt.Sprintf("%s: +%.3f after the previous, queued %.3f, ran %.3f (cluster quiet %.3f before its end)",
				a.typ, benchSeconds(a.scheduled.Sub(prev)), benchSeconds(a.started.Sub(a.scheduled)), benchSeconds(run), benchSeconds(t)))
			prev = a.complete
		}
		created := rec.created(image)
		if i == 0 {
			rec.traced(b, t0, rt.acts)
		}
		over = append(over, benchSeconds(o))
		start = append(start, benchSeconds(rt.opened.Sub(t0)))
		inPlatform = append(inPlatform, benchSeconds(plat))
		tails = append(tails, benchSeconds(tail))
		exitLag = append(exitLag, benchSeconds(exit.Sub(rt.close)))
		pods = append(pods, float64(created))
		b.Logf("%s run %d (%s): wall %.3f s, bakes %.3f s, overhead %.3f s; process start → workflow started %.3f; %s; last converge → closed %.3f; closed → process exit %.3f; %d new pods of %s created",
			figure, i+1, image, benchSeconds(wall), benchSeconds(bakes), benchSeconds(o), benchSeconds(rt.opened.Sub(t0)), strings.Join(parts, "; "),
			benchSeconds(rt.close.Sub(prev)), benchSeconds(exit.Sub(rt.close)), created, image)
	}
	itest.BenchReport(b, figure+"-overhead", "s", over)
	itest.BenchReport(b, figure+"-starter-start", "s", start)
	itest.BenchReport(b, figure+"-in-platform", "s", inPlatform)
	itest.BenchReport(b, figure+"-converge-tails", "s", tails)
	itest.BenchReport(b, figure+"-starter-exit", "s", exitLag)
	itest.BenchReport(b, figure+"-pod-starts", "pods", pods)
}

// --- P1 at 20 replicas, through `starter abort`

// BenchmarkP1AbortKubernetes20 aborts, with `starter abort`, canaries of 20
// replicas in the bake of their 25% step (5 new, 15 old), at a random point
// of the check interval, and times from the start of that process to the
// target seen back at its snapshot (20 old ready, no new pod in any state)
// and to the start of the rollback's Converge (from the history). The bakes
// are 5 s, so the 5% step passes and the abort (0.2–0.7 s into the 25%
// step's bake) comes well within the next.
func BenchmarkP1AbortKubernetes20(b *testing.B) {
	itest.StartWorker(b, tc, dc)
	tg, _, rec := benchK8s20Target(b, benchK8s20)
	n := itest.BenchEnvInt(b, benchNEnv, 20)
	var restored, first []float64
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		s := tg.spec(tg.to)
		s.Strategy.Bake = spec.Duration(5 * time.Second)
		started, err := control.Start(ctx, tc, s)
		require.NoError(b, err)
		benchWaitStage(b, started, 1, api.StageValidating)
		time.Sleep(200*time.Millisecond + mrand.N(500*time.Millisecond))

		type seen struct {
			at    time.Time
			marks benchMarks
			err   error
		}
		back := make(chan seen, 1)
		// The observer runs before the process starts, so it sees the
		// restore however fast it is.
		ready := make(chan struct{})
		go func() {
			close(ready)
			at, marks, err := tg.restoredAt(ctx)
			back <- seen{at, marks, err}
		}()
		<-ready
		rec.reset()
		t0, exit, _ := benchStarterRun(b, "abort", started.WorkflowID, "--reason", "benchmark", "--by", "bench")
		got := <-back
		require.NoError(b, got.err)
		res, err := control.Wait(ctx, tc, started.WorkflowID, started.RunID, time.Second, nil)
		require.NoError(b, err)
		require.Equal(b, api.OutcomeRolledBack, res.Outcome, res.Error)
		require.True(b, res.Rollback.Verified, "rollback verified")
		events := benchHistory(b, started.WorkflowID, started.RunID)
		sched, call, done := benchRollbackCall(b, events, t0)
		accepted := benchUpdateAccepted(events, t0)
		if i == 0 {
			rec.traced(b, t0, benchTimes(events, 0).acts) // with STAGECRAFT_BENCH_TRACE set
		}
		cancel()
		restored = append(restored, benchSeconds(got.at.Sub(t0)))
		first = append(first, benchSeconds(call.Sub(t0)))
		b.Logf("p1-k8s20 run %d: after the starter process started: abort accepted %.3f s, rollback converge scheduled %.3f s, started %.3f s, completed %.3f s; process exited %.3f s; restored %.3f s (%s)",
			i+1, benchSeconds(accepted.Sub(t0)), benchSeconds(sched.Sub(t0)), benchSeconds(call.Sub(t0)), benchSeconds(done.Sub(t0)),
			benchSeconds(exit.Sub(t0)), benchSeconds(got.at.Sub(t0)), got.marks.since(t0))
	}
	itest.BenchReport(b, "p1-k8s20-restored", "s", restored)
	itest.BenchReport(b, "p1-k8s20-starter-first-call", "s", first)
}

// benchUpdateAccepted is when the first update after t0 was accepted.
func benchUpdateAccepted(events []*historypb.HistoryEvent, t0 time.Time) time.Time {
	for _, ev := range events {
		if ev.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED && !ev.GetEventTime().AsTime().Before(t0) {
			return ev.GetEventTime().AsTime()
		}
	}
	return time.Time{}
}

// --- new-version pod starts per rollout

// BenchmarkP5PodStartsKubernetes counts the pods of the new image created
// during one successful canary (5/25/50/100, bakes of 1 ms) of a Deployment
// of 4 and of 20 replicas, from the namespace's pod watch: each pod object
// is one start. The floor is N.
func BenchmarkP5PodStartsKubernetes(b *testing.B) {
	itest.StartWorker(b, tc, dc)
	n := itest.BenchEnvInt(b, benchPodsEnv, 3)
	for _, size := range []int32{4, benchK8s20} {
		tg, _, rec := benchK8s20Target(b, size)
		images := []string{tg.to, tg.from}
		var starts []float64
		for i := range n {
			image := images[i%2]
			s := tg.spec(image)
			s.Strategy.Bake = spec.Duration(benchBakeShort)
			s.Health.Checks = nil
			rec.reset()
			started, res := benchStartWait(b, s)
			require.Equal(b, api.OutcomeSucceeded, res.Outcome, res.Error)
			// The final converge returned with the Deployment rolled out;
			// give the watch a moment to deliver the last pods.
			time.Sleep(200 * time.Millisecond)
			got := rec.created(image)
			starts = append(starts, float64(got))
			b.Logf("pod-starts-n%d run %d (%s, %s): %d pods of %s created", size, i+1, started.WorkflowID, image, got, image)
		}
		itest.BenchReport(b, fmt.Sprintf("pod-starts-n%d", size), "pods", starts)
	}
}
