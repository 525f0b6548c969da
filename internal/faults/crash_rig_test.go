//go:build faults

package faults

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/workflowservice/v1"
	tclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/durationpb"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/itest"
	"github.com/stagecraft/stagecraft/internal/plan"
	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/platform/docker"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// A crash case runs in a Temporal namespace of its own on the shared dev
// server: its workers (one with a failpoint) poll only its rollouts, and
// no other test's worker takes its tasks. The dev server limits how many
// namespaces it registers, so a case whose rollout closed hands its
// namespace on to a later case; one that did not is not used again.
var crashNamespaces struct {
	sync.Mutex
	free []string
}

// crashNS is a case's namespace; the case sets closed once its rollout
// has closed, which frees the namespace for the next case.
type crashNS struct {
	name   string
	closed bool
}

func crashNamespace(t *testing.T) (tclient.Client, *crashNS) {
	t.Helper()
	crashNamespaces.Lock()
	var ns string
	if n := len(crashNamespaces.free); n > 0 {
		ns, crashNamespaces.free = crashNamespaces.free[n-1], crashNamespaces.free[:n-1]
	}
	crashNamespaces.Unlock()
	if ns == "" {
		ns = itest.Name("faults")
		itest.Eventually(t, 2*time.Minute, "register namespace "+ns, func() bool {
			_, err := tc.WorkflowService().RegisterNamespace(context.Background(), &workflowservice.RegisterNamespaceRequest{
				Namespace: ns, WorkflowExecutionRetentionPeriod: durationpb.New(24 * time.Hour)})
			if err != nil {
				t.Logf("register namespace %s: %v (retrying)", ns, err)
				time.Sleep(time.Second)
			}
			return err == nil
		})
	}
	c, err := tclient.NewClientFromExisting(tc, tclient.Options{Namespace: ns})
	require.NoError(t, err)
	held := &crashNS{name: ns}
	t.Cleanup(func() {
		c.Close()
		if held.closed {
			crashNamespaces.Lock()
			crashNamespaces.free = append(crashNamespaces.free, ns)
			crashNamespaces.Unlock()
		}
	})
	return c, held
}

// crashTarget is the service a crash case rolls out, on one platform.
type crashTarget struct {
	platform string
	// Docker: the service; its v1 containers as installed.
	service string
	v1      []crashBox
	// Kubernetes: the namespace holding Deployment and Service "web".
	cs kubernetes.Interface
	ns string
	// health is the Kubernetes health endpoint (on 127.0.0.1).
	health string
}

const (
	crashReplicas = 4
	crashV1       = "stagecraft-demo:v1"
	crashV2       = "stagecraft-demo:v2"
	crashBad      = "stagecraft-demo:v2-bad"
	kubeV1        = "demo:v1"
	kubeV2        = "demo:v2"
	kubeBad       = "demo:v2-bad"
)

// newCrashTarget puts v1 in place: 3 Docker containers, or a 4-replica
// Deployment with its Service.
func newCrashTarget(t *testing.T, platformName, strategy string) *crashTarget {
	t.Helper()
	if platformName == spec.PlatformKubernetes {
		return newKubeCrashTarget(t)
	}
	service := itest.Name("fx-" + strings.ReplaceAll(strategy, "-", ""))
	t.Cleanup(func() {
		list, _ := dc.ContainerList(context.Background(), client.ContainerListOptions{All: true,
			Filters: make(client.Filters).Add("label", platform.LabelService+"="+service)})
		for _, c := range list.Items {
			_, _ = dc.ContainerRemove(context.Background(), c.ID, client.ContainerRemoveOptions{Force: true})
		}
	})
	// v1 is installed by the platform directly (as a recreate rollout's
	// final converge would), so the case's workers see only its rollout.
	s := itest.DemoSpec(service, crashV1, spec.Recreate, 3)
	_, err := docker.New(dc, zap.NewNop()).Converge(context.Background(), platform.ConvergeRequest{
		Spec: s, Rollout: "install", Desired: plan.Desired{New: 3, Traffic: plan.TrafficNew, Order: plan.Surge}})
	require.NoError(t, err, "install v1")
	v1 := crashBoxes(t, service)
	require.Len(t, v1, 3)
	return &crashTarget{platform: platformName, service: service, v1: v1}
}

// spec is the v2 rollout of the target (image: the v2 or the bad one).
func (x *crashTarget) spec(strategy string, bad bool) spec.Spec {
	if x.platform == spec.PlatformKubernetes {
		image := kubeV2
		if bad {
			image = kubeBad
		}
		return itest.KubeSpec(x.ns, kubeconfig, strategy, image, x.health)
	}
	image := crashV2
	if bad {
		image = crashBad
	}
	return itest.DemoSpec(x.service, image, strategy, crashReplicas)
}

func newKubeCrashTarget(t *testing.T) *crashTarget {
	t.Helper()
	cs := itest.KubeClient(t, kubeconfig)
	ns := itest.KubeWeb(t, cs, "fx", kubeV1, crashReplicas, nil)
	// The service's health, as an ingress would show it: failing while a
	// pod of the bad version is ready.
	health := itest.KubeHealth(t, cs, ns, kubeBad, func(readyBad int, _ bool) bool { return readyBad > 0 })
	return &crashTarget{platform: spec.PlatformKubernetes, cs: cs, ns: ns, health: health}
}

// crashBox is one container of the service, read from the engine.
type crashBox struct {
	Name, Image string
	Env         []string
	Labels      map[string]string
	Aliases     []string
	Running     bool
}

func crashBoxes(t *testing.T, service string) []crashBox {
	t.Helper()
	var out []crashBox
	for _, in := range itest.ServiceContainers(t, dc, service) {
		b := crashBox{Name: strings.TrimPrefix(in.Name, "/"), Image: in.Config.Image, Env: in.Config.Env,
			Labels: in.Config.Labels, Running: in.State.Running}
		for _, n := range in.NetworkSettings.Networks {
			for _, a := range n.Aliases {
				if a == service {
					b.Aliases = append(b.Aliases, a)
				}
			}
		}
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// endState is what a finished case left on the platform beyond what its
// outcome calls for.
type endState struct {
	// Orphans: containers or objects of the service beyond the expected
	// set (stopped, wrong version, leftover canary/green, extra pods).
	Orphans int
	// Duplicates: two containers for one name, slot or snapshot instance.
	Duplicates int
	Problems   []string
}

func (e *endState) orphan(format string, args ...any) {
	e.Orphans++
	e.Problems = append(e.Problems, "orphan: "+fmt.Sprintf(format, args...))
}

func (e *endState) duplicate(format string, args ...any) {
	e.Duplicates++
	e.Problems = append(e.Problems, "duplicate: "+fmt.Sprintf(format, args...))
}

func (e *endState) problem(format string, args ...any) {
	e.Problems = append(e.Problems, fmt.Sprintf(format, args...))
}

// check compares the platform with the outcome: succeeded, exactly
// `replicas` ready instances of the new image and nothing else of the
// service; rolled back, exactly the snapshot.
func (x *crashTarget) check(t *testing.T, s spec.Spec, res api.Result) endState {
	t.Helper()
	if x.platform == spec.PlatformKubernetes {
		return x.checkKube(t, s, res)
	}
	var e endState
	got := crashBoxes(t, x.service)
	seen := map[string]int{}
	for _, b := range got {
		key := b.Name
		if b.Labels[platform.LabelRole] == platform.RoleNew {
			// One container per rollout slot.
			key = b.Labels[platform.LabelRollout] + "/" + b.Labels[platform.LabelSlot]
		}
		if seen[key]++; seen[key] > 1 {
			e.duplicate("%s holds %s again", b.Name, key)
		}
	}
	switch res.Outcome {
	case api.OutcomeSucceeded:
		n := 0
		for _, b := range got {
			if b.Image != s.Image || !b.Running || !slices.Equal(b.Aliases, []string{x.service}) {
				e.orphan("%s (%s, running %v, aliases %v)", b.Name, b.Image, b.Running, b.Aliases)
				continue
			}
			if n++; n > s.Platform.Docker.Replicas {
				e.orphan("%s beyond %d replicas", b.Name, s.Platform.Docker.Replicas)
			}
		}
		if n < s.Platform.Docker.Replicas {
			e.problem("%d of %d instances of %s", n, s.Platform.Docker.Replicas, s.Image)
		}
	case api.OutcomeRolledBack:
		want := map[string]crashBox{}
		for _, b := range x.v1 {
			want[b.Name] = b
		}
		for _, b := range got {
			w, ok := want[b.Name]
			if !ok {
				e.orphan("%s (%s) is not in the snapshot", b.Name, b.Image)
				continue
			}
			delete(want, b.Name)
			if b.Image != w.Image || !b.Running || !slices.Equal(b.Env, w.Env) || !slices.Equal(b.Aliases, w.Aliases) {
				e.problem("%s differs from the snapshot: %+v, want %+v", b.Name, b, w)
			}
		}
		for name := range want {
			e.problem("snapshot instance %s is missing", name)
		}
	default:
		e.problem("outcome %s: %s", res.Outcome, res.Error)
	}
	return e
}

func (x *crashTarget) checkKube(t *testing.T, s spec.Spec, res api.Result) endState {
	t.Helper()
	image := kubeV1
	switch res.Outcome {
	case api.OutcomeSucceeded:
		image = s.Image
	case api.OutcomeRolledBack:
	default:
		return endState{Problems: []string{fmt.Sprintf("outcome %s: %s", res.Outcome, res.Error)}}
	}
	// Deleted objects' pods and ReplicaSets go through the garbage
	// collector: give it time to settle, then count what is left.
	var e endState
	deadline := time.Now().Add(30 * time.Second)
	for {
		e = x.kubeState(t, image)
		if len(e.Problems) == 0 || time.Now().After(deadline) {
			return e
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// kubeState compares the namespace with one Deployment "web" at image with
// crashReplicas ready pods, its one live ReplicaSet, its pods and the
// Service "web" selecting app=web.
func (x *crashTarget) kubeState(t *testing.T, image string) endState {
	t.Helper()
	ctx := context.Background()
	var e endState
	deps, err := x.cs.AppsV1().Deployments(x.ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	for _, d := range deps.Items {
		if d.Name != "web" {
			e.orphan("Deployment %s", d.Name)
			continue
		}
		got := fmt.Sprintf("%s x%d ready %d", d.Spec.Template.Spec.Containers[0].Image, *d.Spec.Replicas, d.Status.ReadyReplicas)
		if want := fmt.Sprintf("%s x%d ready %d", image, crashReplicas, crashReplicas); got != want {
			e.problem("Deployment web: %s, want %s", got, want)
		}
	}
	rss, err := x.cs.AppsV1().ReplicaSets(x.ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	live := 0
	for _, rs := range rss.Items {
		owner := ""
		if ref := metav1.GetControllerOf(&rs); ref != nil {
			owner = ref.Name
		}
		switch {
		case owner != "web":
			e.orphan("ReplicaSet %s (owner %q)", rs.Name, owner)
		case *rs.Spec.Replicas > 0:
			if live++; live > 1 {
				e.duplicate("ReplicaSet %s is a second live one of web", rs.Name)
			}
		}
	}
	pods, err := x.cs.CoreV1().Pods(x.ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	n := 0
	for _, p := range pods.Items {
		if p.Spec.Containers[0].Image != image || p.DeletionTimestamp != nil {
			e.orphan("pod %s (%s)", p.Name, p.Spec.Containers[0].Image)
			continue
		}
		if n++; n > crashReplicas {
			e.orphan("pod %s beyond %d", p.Name, crashReplicas)
		}
	}
	svcs, err := x.cs.CoreV1().Services(x.ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	for _, svc := range svcs.Items {
		switch {
		case svc.Name != "web":
			e.orphan("Service %s", svc.Name)
		case svc.Spec.Selector["app"] != "web" || len(svc.Spec.Selector) != 1:
			e.problem("Service web selects %v", svc.Spec.Selector)
		}
	}
	return e
}

// history is a run's events.
func history(t *testing.T, c tclient.Client, workflowID, runID string) []*historypb.HistoryEvent {
	t.Helper()
	var out []*historypb.HistoryEvent
	it := c.GetWorkflowHistory(context.Background(), workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		out = append(out, ev)
	}
	return out
}

// activityCounts counts the activities a history scheduled, by type.
func activityCounts(events []*historypb.HistoryEvent) map[string]int {
	out := map[string]int{}
	for _, ev := range events {
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
			out[a.GetActivityType().GetName()]++
		}
	}
	return out
}

// retriedAt is when the first retry of an activity (attempt 2 or later)
// started after since, from the history; zero if none did.
func retriedAt(events []*historypb.HistoryEvent, since time.Time) time.Time {
	for _, ev := range events {
		a := ev.GetActivityTaskStartedEventAttributes()
		if a != nil && a.GetAttempt() > 1 && ev.GetEventTime().AsTime().After(since) {
			return ev.GetEventTime().AsTime()
		}
	}
	return time.Time{}
}

// stickyTimeouts counts workflow tasks that timed out before a worker
// started them: after a crash the first one waits out the dead worker's
// sticky queue (worker.Options.StickyScheduleToStartTimeout, 5 s).
func stickyTimeouts(events []*historypb.HistoryEvent) int {
	n := 0
	for _, ev := range events {
		if a := ev.GetWorkflowTaskTimedOutEventAttributes(); a != nil && a.GetTimeoutType() == enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START {
			n++
		}
	}
	return n
}

// closedAt is when the history's run closed (its last event).
func closedAt(events []*historypb.HistoryEvent) time.Time {
	if len(events) == 0 {
		return time.Time{}
	}
	return events[len(events)-1].GetEventTime().AsTime()
}

// stageBake is one stage's validation as the history and the result tell
// it: from its bake timer's start to the stage's completion.
type stageBake struct {
	Stage     string
	Bake      time.Duration
	Validated time.Duration
}

// Drift is how far the validation's length is from the bake.
func (b stageBake) Drift() time.Duration { return b.Validated - b.Bake }

// bakes pairs each completed stage that baked with its bake timer (the
// timer's summary names the stage).
func bakes(t *testing.T, events []*historypb.HistoryEvent, res api.Result) []stageBake {
	t.Helper()
	started := map[string]time.Time{}
	for _, ev := range events {
		if ev.GetTimerStartedEventAttributes() == nil || ev.GetUserMetadata().GetSummary() == nil {
			continue
		}
		var summary string
		require.NoError(t, converter.GetDefaultDataConverter().FromPayload(ev.GetUserMetadata().GetSummary(), &summary))
		if name, ok := strings.CutPrefix(summary, "bake "); ok {
			if _, dup := started[name]; !dup {
				started[name] = ev.GetEventTime().AsTime()
			}
		}
	}
	var out []stageBake
	for _, st := range res.Stages {
		at, ok := started[st.Name]
		if st.Bake <= 0 || st.CompletedAt == nil || !ok || st.Status == api.StageRolledBack {
			continue
		}
		out = append(out, stageBake{Stage: st.Name, Bake: st.Bake, Validated: st.CompletedAt.Sub(at)})
	}
	return out
}

// maxDrift is the largest drift (by magnitude) of the bakes.
func maxDrift(bs []stageBake) time.Duration {
	var m time.Duration
	for _, b := range bs {
		if d := b.Drift(); d.Abs() > m.Abs() {
			m = d
		}
	}
	return m
}

// crashHooks receives the rollout's notifications on 127.0.0.1.
type crashHooks struct {
	mu   sync.Mutex
	keys map[string]int
	url  string
}

func newCrashHooks(t *testing.T) *crashHooks {
	h := &crashHooks{keys: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, req *http.Request) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.keys[req.Header.Get("Idempotency-Key")]++
	}))
	t.Cleanup(srv.Close)
	h.url = srv.URL + "/hook"
	return h
}

// delivered returns the distinct notifications received and how many were
// repeats (a retried Notify delivers again, with the same key).
func (h *crashHooks) delivered() (distinct, repeats int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, n := range h.keys {
		distinct++
		repeats += n - 1
	}
	return distinct, repeats
}
