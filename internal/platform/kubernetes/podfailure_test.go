package kubernetes

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/stagecraft/stagecraft/internal/platform"
)

// failing fixtures: the Deployment web-canary at revision 2, its current
// ReplicaSet (rs-2) and an older one (rs-1).
func failingDeployment() *appsv1.Deployment {
	labels := map[string]string{"app": "web"}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web-canary", Namespace: "ns", UID: "d-uid", Generation: 2,
			Annotations: map[string]string{revisionAnnotation: "2"}},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "demo:v2"}}}}},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 2},
	}
}

func failingRS(name, rev string) *appsv1.ReplicaSet {
	return &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID(name),
		Labels:          map[string]string{"app": "web"},
		Annotations:     map[string]string{revisionAnnotation: rev},
		OwnerReferences: []metav1.OwnerReference{{UID: "d-uid", Controller: ptr(true)}}}}
}

// podOf is a pod of ReplicaSet rs running image, Running and Ready like a
// KWOK pod, until a case changes it.
func podOf(name, rs, image string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID(name), Labels: map[string]string{"app": "web"},
			OwnerReferences: []metav1.OwnerReference{{UID: types.UID(rs), Controller: ptr(true)}}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning,
			Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue},
				{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "app", Image: image, Ready: true,
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}},
	}
}

func waiting(p *corev1.Pod, reason, msg string) {
	p.Status.Conditions[1].Status = corev1.ConditionFalse
	p.Status.ContainerStatuses[0].Ready = false
	p.Status.ContainerStatuses[0].State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}}
}

func crashed(p *corev1.Pod, restarts int32) {
	waiting(p, "CrashLoopBackOff", "back-off 10s restarting failed container=app")
	p.Status.ContainerStatuses[0].RestartCount = restarts
	p.Status.ContainerStatuses[0].LastTerminationState.Terminated = &corev1.ContainerStateTerminated{
		ExitCode: 1, Reason: "Error", Message: "listening\nERROR_RATE: want a number from 0 to 1, got \"oops\"\n"}
}

func unschedulable(p *corev1.Pod) {
	p.Status.Phase = corev1.PodPending
	p.Status.ContainerStatuses = nil
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse,
		Reason: corev1.PodReasonUnschedulable, Message: "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint {kwok.x-k8s.io/node: fake}."}}
}

// podFailureHarness runs podFailure of one wait on a fake clientset, with
// a clock the case moves.
type podFailureHarness struct {
	t   *testing.T
	cs  *fake.Clientset
	c   *convergence
	w   *podWatch
	d   *appsv1.Deployment
	now time.Time
}

func newPodFailureHarness(t *testing.T, objs ...runtime.Object) *podFailureHarness {
	h := &podFailureHarness{t: t, now: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}
	h.cs = fake.NewClientset(append([]runtime.Object{failingRS("rs-1", "1"), failingRS("rs-2", "2")}, objs...)...)
	h.c = &convergence{cs: h.cs, log: zap.NewNop(), ns: "ns"}
	h.w = newPodWatch(func() time.Time { return h.now })
	h.d = failingDeployment()
	return h
}

// at moves the clock to start+after, applies change to the stored pod
// named, and returns podFailure's verdict.
func (h *podFailureHarness) at(after time.Duration, pod string, change func(*corev1.Pod)) error {
	h.t.Helper()
	ctx := context.Background()
	h.now = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC).Add(after)
	if change != nil {
		p, err := h.cs.CoreV1().Pods("ns").Get(ctx, pod, metav1.GetOptions{})
		if err != nil {
			h.t.Fatal(err)
		}
		change(p)
		if _, err := h.cs.CoreV1().Pods("ns").Update(ctx, p, metav1.UpdateOptions{}); err != nil {
			h.t.Fatal(err)
		}
	}
	return h.c.podFailure(ctx, h.d, h.w)
}

func TestPodFailure(t *testing.T) {
	type step struct {
		after  time.Duration
		change func(*corev1.Pod)
		want   string // "" for no failure yet, else text the error must hold
	}
	same := func(*corev1.Pod) {}
	cases := []struct {
		name  string
		pod   *corev1.Pod
		other []runtime.Object
		steps []step
	}{
		{"a KWOK-like Running pod never fails", podOf("p", "rs-2", "demo:v2"), nil, []step{
			{0, nil, ""}, {time.Minute, same, ""}, {10 * time.Minute, same, ""}}},
		{"a pod still creating is not yet certain", podOf("p", "rs-2", "demo:v2"), nil, []step{
			{0, func(p *corev1.Pod) { waiting(p, "ContainerCreating", "") }, ""}, {time.Minute, same, ""}}},
		{"ErrImageNeverPull at once", podOf("p", "rs-2", "demo:v2"), nil, []step{
			{0, func(p *corev1.Pod) {
				waiting(p, "ErrImageNeverPull", `Container image "demo:v2" is not present with pull policy of Never`)
			}, `cannot pull image "demo:v2": ErrImageNeverPull`}}},
		{"InvalidImageName at once", podOf("p", "rs-2", "demo:v2"), nil, []step{
			{0, func(p *corev1.Pod) { waiting(p, "InvalidImageName", "couldn't parse image name") }, "InvalidImageName"}}},
		{"a registry.invalid image at once", podOf("p", "rs-2", "registry.invalid/web:v2"), nil, []step{
			{0, func(p *corev1.Pod) {
				waiting(p, "ErrImagePull", "dial tcp 127.0.0.1:9: connect: connection refused")
			}, `cannot pull image "registry.invalid/web:v2": ErrImagePull`}}},
		{"a registry's not found at once", podOf("p", "rs-2", "demo:v2"), nil, []step{
			{0, func(p *corev1.Pod) {
				waiting(p, "ErrImagePull", `failed to resolve reference "demo:v2": demo:v2: not found`)
			}, "ErrImagePull"}}},
		{"a refused pull after its grace", podOf("p", "rs-2", "demo:v2"), nil, []step{
			{0, func(p *corev1.Pod) { waiting(p, "ErrImagePull", "dial tcp 10.0.0.1:443: connect: connection refused") }, ""},
			{20 * time.Second, func(p *corev1.Pod) { waiting(p, "ImagePullBackOff", `Back-off pulling image "demo:v2"`) }, ""},
			{pullGrace, same, "ImagePullBackOff"}}},
		{"a pull that recovers is forgotten", podOf("p", "rs-2", "demo:v2"), nil, []step{
			{0, func(p *corev1.Pod) { waiting(p, "ErrImagePull", "i/o timeout") }, ""},
			{20 * time.Second, func(p *corev1.Pod) { waiting(p, "ContainerCreating", "") }, ""},
			{25 * time.Second, func(p *corev1.Pod) { waiting(p, "ErrImagePull", "i/o timeout") }, ""},
			{45 * time.Second, same, ""}}},
		{"a crash loop after 3 restarts", podOf("p", "rs-2", "demo:v2"), nil, []step{
			{0, func(p *corev1.Pod) { crashed(p, 0) }, ""},
			{time.Second, func(p *corev1.Pod) { crashed(p, 1) }, ""},
			{11 * time.Second, func(p *corev1.Pod) { crashed(p, 2) }, ""},
			{31 * time.Second, func(p *corev1.Pod) { crashed(p, 3) },
				`pod "p" is crash-looping: container "app" restarted 3 times in this wait (3 in all), last exit code 1 (Error): listening | ERROR_RATE: want a number from 0 to 1, got "oops"; its output: kubectl logs -n ns p -c app --previous`}}},
		{"restarts from before the wait are not counted", podOf("p", "rs-2", "demo:v2"), nil, []step{
			{0, func(p *corev1.Pod) { p.Status.ContainerStatuses[0].RestartCount = 7 }, ""},
			{time.Second, func(p *corev1.Pod) { crashed(p, 9) }, ""},
			{time.Minute, func(p *corev1.Pod) { crashed(p, 10) }, "restarted 3 times in this wait (10 in all)"}}},
		{"unschedulable after its grace", podOf("p", "rs-2", "demo:v2"), nil, []step{
			{0, unschedulable, ""}, {10 * time.Second, same, ""},
			{unschedulableGrace, same, `pod "p" cannot be scheduled (Unschedulable for 30s): 0/2 nodes are available: 1 Insufficient cpu`}}},
		{"unschedulable again restarts its grace", podOf("p", "rs-2", "demo:v2"), nil, []step{
			{0, unschedulable, ""},
			{20 * time.Second, func(p *corev1.Pod) { p.Status.Conditions[0].Status = corev1.ConditionTrue }, ""},
			{25 * time.Second, unschedulable, ""}, {45 * time.Second, same, ""}}},
		{"unschedulable while a pod terminates waits", podOf("p", "rs-2", "demo:v2"),
			[]runtime.Object{func() *corev1.Pod {
				p := podOf("old", "rs-1", "demo:v1")
				p.DeletionTimestamp = &metav1.Time{Time: time.Now()}
				p.Finalizers = []string{"example.com/keep"}
				return p
			}()}, []step{{0, unschedulable, ""}, {time.Minute, same, ""}}},
		{"unschedulable while an autoscaler adds a node waits", podOf("p", "rs-2", "demo:v2"),
			[]runtime.Object{&corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "e", Namespace: "ns"}, Reason: "TriggeredScaleUp",
				InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "p", UID: "p"}, Message: "pod triggered scale-up"}},
			[]step{{0, unschedulable, ""}, {time.Minute, same, ""}}},
		{"a failing pod of an older ReplicaSet is not the rollout's", podOf("p", "rs-1", "demo:v2"), nil, []step{
			{0, func(p *corev1.Pod) { waiting(p, "ErrImageNeverPull", "not present") }, ""},
			{time.Second, func(p *corev1.Pod) { crashed(p, 5) }, ""}, {time.Minute, func(p *corev1.Pod) { crashed(p, 9) }, ""}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newPodFailureHarness(t, append([]runtime.Object{c.pod}, c.other...)...)
			h.d.Spec.Template.Spec.Containers[0].Image = c.pod.Spec.Containers[0].Image
			for i, s := range c.steps {
				err := h.at(s.after, c.pod.Name, s.change)
				if s.want == "" {
					if err != nil {
						t.Fatalf("step %d (%s): unexpected %v", i, s.after, err)
					}
					continue
				}
				if err == nil || !strings.Contains(err.Error(), s.want) {
					t.Fatalf("step %d (%s): got %v, want an error holding %q", i, s.after, err, s.want)
				}
				if !errors.Is(err, platform.ErrProgressDeadline) {
					t.Fatalf("step %d: %v does not wrap ErrProgressDeadline (non-retryable)", i, err)
				}
			}
		})
	}
}

// TestPodFailureNotBeforeTheControllerSawTheDeployment: while the
// controller has not seen the latest generation, the current ReplicaSet is
// not known and nothing is judged.
func TestPodFailureNotBeforeTheControllerSawTheDeployment(t *testing.T) {
	p := podOf("p", "rs-2", "demo:v2")
	waiting(p, "ErrImageNeverPull", "not present")
	h := newPodFailureHarness(t, p)
	d := failingDeployment()
	d.Status.ObservedGeneration = 1
	if err := h.c.podFailure(context.Background(), d, h.w); err != nil {
		t.Fatalf("unexpected %v", err)
	}
	if err := h.c.podFailure(context.Background(), failingDeployment(), h.w); err == nil {
		t.Fatal("once seen, the pod's ErrImageNeverPull fails the wait")
	}
}

// TestStalledSaysTheLastProbeFailure: at the progress deadline, the error
// keeps the controller's and adds the latest Unhealthy event of the first
// pod not ready, with its count.
func TestStalledSaysTheLastProbeFailure(t *testing.T) {
	notReady := podOf("p-a", "rs-2", "demo:v2")
	notReady.Status.Conditions[1].Status = corev1.ConditionFalse
	ready := podOf("p-b", "rs-2", "demo:v2")
	at := func(sec int) metav1.Time { return metav1.NewTime(time.Date(2026, 12, 3, 12, 0, sec, 0, time.UTC)) }
	ev := func(name, msg string, last metav1.Time, count int32) *corev1.Event {
		return &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"}, Reason: "Unhealthy", Message: msg, Count: count,
			LastTimestamp: last, InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "p-a", UID: "p-a"}}
	}
	h := newPodFailureHarness(t, notReady, ready,
		ev("old", "Liveness probe failed: old", at(1), 1),
		ev("new", `Readiness probe failed: probe http://127.0.0.1:8080/healthz: 500 Internal Server Error {"status":"failing"}`, at(9), 12),
		&corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: "ns"}, Reason: "Unhealthy", Message: "of another pod",
			LastTimestamp: at(20), InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "p-b", UID: "p-b"}})
	deadline := &ProgressDeadlineError{Namespace: "ns", Deployment: "web-canary", Message: `ReplicaSet "rs-2" has timed out progressing.`}
	err := h.c.stalled(context.Background(), failingDeployment(), deadline)
	want := `deployment "ns/web-canary": ProgressDeadlineExceeded: ReplicaSet "rs-2" has timed out progressing.; pod "p-a" is not ready: ` +
		`Readiness probe failed: probe http://127.0.0.1:8080/healthz: 500 Internal Server Error {"status":"failing"} (seen 12 times)`
	if err == nil || err.Error() != want {
		t.Fatalf("got  %v\nwant %s", err, want)
	}
	var pde *ProgressDeadlineError
	if !errors.As(err, &pde) || !errors.Is(err, platform.ErrProgressDeadline) {
		t.Fatalf("%v: the controller's error is kept", err)
	}

	// Every pod ready (nothing to add): the error is the controller's.
	h = newPodFailureHarness(t, ready)
	if err := h.c.stalled(context.Background(), failingDeployment(), deadline); err != deadline {
		t.Fatalf("got %v, want the deadline's error as is", err)
	}
}

// TestWaitEndsAtOnceOnACertainPodFailure: the converge's wait, on a
// Deployment that would roll out only at its 10 min deadline, returns as
// soon as it sees its current ReplicaSet's pod unable to ever get its image,
// or restarting again and again (not at the test's own 15 s bound).
func TestWaitEndsAtOnceOnACertainPodFailure(t *testing.T) {
	for _, c := range []struct {
		name string
		pod  func(*corev1.Pod)
		// restart, when set, makes the pod restart every 200 ms while the
		// wait runs.
		restart bool
		want    string
	}{
		{"image never pulled", func(p *corev1.Pod) { waiting(p, "ErrImageNeverPull", "not present") }, false, "ErrImageNeverPull"},
		{"crash loop", func(p *corev1.Pod) { crashed(p, 0) }, true, "is crash-looping"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := podOf("p", "rs-2", "demo:v2")
			c.pod(p)
			d := failingDeployment()
			cs := fake.NewClientset(d, failingRS("rs-2", "2"), p)
			conv := &convergence{cs: cs, log: zap.NewNop(), ns: "ns", deadline: 10 * time.Minute}
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			if c.restart {
				go func() {
					for n := int32(1); ctx.Err() == nil; n++ {
						time.Sleep(200 * time.Millisecond)
						cur, err := cs.CoreV1().Pods("ns").Get(ctx, "p", metav1.GetOptions{})
						if err != nil {
							return
						}
						crashed(cur, n)
						_, _ = cs.CoreV1().Pods("ns").Update(ctx, cur, metav1.UpdateOptions{})
					}
				}()
			}
			err := conv.wait(ctx, d)
			if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, platform.ErrProgressDeadline) {
				t.Fatalf("got %v, want the pod's failure (%s)", err, c.want)
			}
		})
	}
}
