package kubernetes

import (
	"context"
	"testing"

	"go.uber.org/zap"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/stagecraft/stagecraft/internal/plan"
	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

func TestShare(t *testing.T) {
	for _, tc := range []struct {
		name                string
		n, planned, want, w int
	}{
		{"same total", 1, 4, 4, 1},
		{"doubled", 1, 4, 8, 2},
		{"rounded up", 1, 4, 6, 2},
		{"halved keeps one", 1, 4, 2, 1},
		{"never more than want", 3, 4, 2, 2},
		{"none stays none", 0, 4, 8, 0},
		{"plan of more than planned", 5, 4, 8, 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := share(tc.n, tc.planned, tc.want); got != tc.w {
				t.Fatalf("share(%d, %d, %d) = %d, want %d", tc.n, tc.planned, tc.want, got, tc.w)
			}
		})
	}
}

func TestFollow(t *testing.T) {
	shared := func(n, o int) plan.Desired {
		return plan.Desired{New: n, Old: o, Traffic: plan.TrafficShared, Order: plan.Surge}
	}
	for _, tc := range []struct {
		name     string
		a        autoscaler
		d        plan.Desired
		planned  int
		want     int
		got      plan.Desired
		explains string
	}{
		{"canary step at the planned total", autoscaler{min: 1, max: 10}, shared(1, 3), 4, 4, shared(1, 3), "unchanged"},
		{"canary step at twice the total", autoscaler{min: 1, max: 10}, shared(1, 3), 4, 8, shared(2, 6), "the share is kept"},
		{"stable kept at the minimum", autoscaler{min: 3, max: 10}, shared(3, 1), 4, 4, shared(3, 3), "never below min"},
		{"stable never none", autoscaler{min: 1, max: 10}, shared(3, 1), 4, 2, shared(2, 1), "the canary takes want, the stable keeps one"},
		{"rollback restores want", autoscaler{min: 1, max: 10}, plan.Desired{Old: 4, Traffic: plan.TrafficOld}, 4, 7,
			plan.Desired{Old: 7, Traffic: plan.TrafficOld}, "not the snapshot's 4"},
		{"last step gives want", autoscaler{min: 1, max: 10}, plan.Desired{New: 4, Traffic: plan.TrafficNew}, 4, 6,
			plan.Desired{New: 6, Traffic: plan.TrafficNew}, "the final state"},
		{"green beside full blue", autoscaler{min: 1, max: 10}, plan.Desired{New: 4, Old: 4, Traffic: plan.TrafficOld}, 4, 6,
			plan.Desired{New: 6, Old: 6, Traffic: plan.TrafficOld}, "blue keeps want"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.a.follow(tc.d, tc.planned, tc.want); got != tc.got {
				t.Fatalf("follow(%+v, %d, %d) = %+v, want %+v (%s)", tc.d, tc.planned, tc.want, got, tc.got, tc.explains)
			}
		})
	}
}

func TestAutoscalerWant(t *testing.T) {
	rec := split{rollout: "r1", total: 4, stable: 3, seen: 4}
	for _, tc := range []struct {
		name     string
		a        autoscaler
		live     int
		recorded bool
		want     int
		beside   int
	}{
		{"before any split: its desired count", autoscaler{min: 1, max: 10, desired: 5}, 5, false, 5, 0},
		{"no desired count yet: what runs", autoscaler{min: 1, max: 10}, 4, false, 4, 0},
		{"no desired count, nothing runs: planned", autoscaler{min: 1, max: 10}, 0, false, 6, 0},
		{"bounded by its minimum", autoscaler{min: 5, max: 10, desired: 2}, 2, false, 5, 0},
		{"bounded by its maximum", autoscaler{min: 1, max: 3, desired: 5}, 5, false, 3, 0},
		{"not synced since the split: the split stands", autoscaler{min: 1, max: 10, desired: 4}, 3, true, 4, 0},
		{"content with the split (its target's own count): the split stands", autoscaler{min: 1, max: 10, desired: 3}, 3, true, 4, 0},
		{"no desired count, split untouched: the split stands", autoscaler{min: 1, max: 10}, 3, true, 4, 0},
		{"it scaled its target since: its desired count", autoscaler{min: 1, max: 10, desired: 8}, 8, true, 8, 0},
		{"it decided anew, not yet scaled: its desired count", autoscaler{min: 1, max: 10, desired: 6}, 3, true, 6, 0},
		{"someone scaled it, no desired count: what runs", autoscaler{min: 1, max: 10}, 7, true, 7, 0},
		{"appeared mid-rollout, no desired count: the canary's count too", autoscaler{min: 1, max: 10}, 1, false, 4, 3},
		{"appeared mid-rollout, sized by its target alone: not below what serves", autoscaler{min: 1, max: 10, desired: 1}, 1, false, 4, 3},
		{"appeared mid-rollout, wants more than serves: its count", autoscaler{min: 1, max: 10, desired: 6}, 1, false, 6, 3},
		{"appeared mid-rollout, bounded by its maximum", autoscaler{min: 1, max: 3}, 1, false, 3, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.a.want(tc.live, rec, tc.recorded, 6, tc.beside); got != tc.want {
				t.Fatalf("want(live %d, recorded %v) = %d, want %d", tc.live, tc.recorded, got, tc.want)
			}
		})
	}
}

func TestSplitRecord(t *testing.T) {
	s := split{rollout: "r1a2b3", total: 8, stable: 3, seen: 6}
	got, ok := splitOf(map[string]string{AnnotationSplit: s.String()})
	if !ok || got != s {
		t.Fatalf("splitOf(%q) = %+v %v, want %+v", s.String(), got, ok, s)
	}
	for _, bad := range []string{"", "4/3", "rollout=r,total=x,stable=1,desired=1", "rollout=r,total=0,stable=1,desired=1", "total=4,stable=3,desired=4"} {
		if _, ok := splitOf(map[string]string{AnnotationSplit: bad}); ok {
			t.Errorf("splitOf(%q): want not ok", bad)
		}
	}
	if got := withoutSplit(map[string]string{AnnotationSplit: s.String(), "team": "a"}); len(got) != 1 || got["team"] != "a" {
		t.Fatalf("withoutSplit: %v", got)
	}
}

func TestTargets(t *testing.T) {
	for _, tc := range []struct {
		ref  autoscalingv2.CrossVersionObjectReference
		want bool
	}{
		{autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"}, true},
		{autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web-canary"}, false},
		{autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "web"}, false},
		{autoscalingv2.CrossVersionObjectReference{APIVersion: "argoproj.io/v1alpha1", Kind: "Deployment", Name: "web"}, false},
	} {
		if got := targets(tc.ref, "web"); got != tc.want {
			t.Errorf("targets(%+v) = %v, want %v", tc.ref, got, tc.want)
		}
	}
}

// hpaRig converges a Deployment "web" (4 replicas of demo:v1) beside an
// autoscaler on a fake clientset, whose Deployments roll out the moment
// they are written. The test plays the autoscaler: desired sets its status,
// scale its target's replicas.
type hpaRig struct {
	t    *testing.T
	ctx  context.Context
	cs   *fake.Clientset
	p    *Platform
	spec spec.Spec
	snap platform.Snapshot
}

const hpaNS = "apps"

func newHPARig(t *testing.T, hpa *autoscalingv2.HorizontalPodAutoscaler) *hpaRig {
	t.Helper()
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: hpaNS, Labels: map[string]string{"app": "x"}},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(int32(4)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "x"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "demo:v1"}}},
			},
		},
	}
	objs := []runtime.Object{d}
	if hpa != nil {
		objs = append(objs, hpa)
	}
	cs := fake.NewClientset(objs...)
	cs.PrependReactor("*", "deployments", func(a k8stesting.Action) (bool, runtime.Object, error) {
		var d *appsv1.Deployment
		switch a := a.(type) {
		case k8stesting.CreateAction:
			d, _ = a.GetObject().(*appsv1.Deployment)
		case k8stesting.UpdateAction:
			d, _ = a.GetObject().(*appsv1.Deployment)
		}
		if d != nil {
			n := replicas(d)
			d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n}
		}
		return false, nil, nil
	})
	r := &hpaRig{t: t, ctx: context.Background(), cs: cs, p: NewForClient(cs, zap.NewNop()), spec: spec.Spec{
		Service:  "web",
		Image:    "demo:v2",
		Platform: spec.Platform{Kubernetes: &spec.Kubernetes{Namespace: hpaNS, Deployment: "web", Container: "app"}},
	}}
	var err error
	if r.snap, err = r.p.Snapshot(r.ctx, r.spec); err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	return r
}

func webHPA(minR *int32, maxR, desired int32) *autoscalingv2.HorizontalPodAutoscaler {
	return &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: hpaNS},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"},
			MinReplicas:    minR,
			MaxReplicas:    maxR,
		},
		Status: autoscalingv2.HorizontalPodAutoscalerStatus{CurrentReplicas: 4, DesiredReplicas: desired},
	}
}

func (r *hpaRig) converge(d plan.Desired) {
	r.t.Helper()
	if _, err := r.p.Converge(r.ctx, platform.ConvergeRequest{Spec: r.spec, Rollout: "r1a2b3", Snapshot: r.snap, Desired: d}); err != nil {
		r.t.Fatalf("Converge %+v: %v", d, err)
	}
}

func (r *hpaRig) deployment(name string) *appsv1.Deployment {
	r.t.Helper()
	d, err := r.cs.AppsV1().Deployments(hpaNS).Get(r.ctx, name, metav1.GetOptions{})
	if err != nil {
		r.t.Fatalf("get deployment %s: %v", name, err)
	}
	return d
}

// counts checks the stable and canary Deployments' replicas (canary -1:
// gone).
func (r *hpaRig) counts(stage string, canary, stable int32) {
	r.t.Helper()
	got := int32(-1)
	if d, err := r.cs.AppsV1().Deployments(hpaNS).Get(r.ctx, "web-canary", metav1.GetOptions{}); err == nil {
		got = replicas(d)
	} else if !apierrors.IsNotFound(err) {
		r.t.Fatal(err)
	}
	if s := replicas(r.deployment("web")); got != canary || s != stable {
		r.t.Fatalf("%s: canary %d, stable %d; want canary %d, stable %d", stage, got, s, canary, stable)
	}
}

// autoscale plays the autoscaler's sync: it scales its target to n and
// records n as its desired count (currentReplicas the count it found).
func (r *hpaRig) autoscale(n int32) {
	r.t.Helper()
	d := r.deployment("web")
	found := replicas(d)
	d.Spec.Replicas = &n
	if _, err := r.cs.AppsV1().Deployments(hpaNS).Update(r.ctx, d, metav1.UpdateOptions{}); err != nil {
		r.t.Fatal(err)
	}
	r.desired(found, n)
}

// desired sets the autoscaler's status.
func (r *hpaRig) desired(current, desired int32) {
	r.t.Helper()
	api := r.cs.AutoscalingV2().HorizontalPodAutoscalers(hpaNS)
	h, err := api.Get(r.ctx, "web", metav1.GetOptions{})
	if err != nil {
		r.t.Fatal(err)
	}
	h.Status.CurrentReplicas, h.Status.DesiredReplicas = current, desired
	if _, err := api.UpdateStatus(r.ctx, h, metav1.UpdateOptions{}); err != nil {
		r.t.Fatal(err)
	}
}

// stableWrites returns the replicas of every write of the stable Deployment
// so far.
func (r *hpaRig) stableWrites() []int32 {
	var out []int32
	for _, a := range r.cs.Actions() {
		u, ok := a.(k8stesting.UpdateAction)
		if !ok || a.GetResource() != (schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}) {
			continue
		}
		if d, ok := u.GetObject().(*appsv1.Deployment); ok && d.Name == "web" {
			out = append(out, replicas(d))
		}
	}
	return out
}

// handedBack checks the final state: the stable Deployment has the
// autoscaler's count, the image, no record of a split, and no canary.
func (r *hpaRig) handedBack(image string, want int32) {
	r.t.Helper()
	r.counts("handed back", -1, want)
	d := r.deployment("web")
	if img := d.Spec.Template.Spec.Containers[0].Image; img != image {
		r.t.Fatalf("image %s, want %s", img, image)
	}
	if v, ok := d.Annotations[AnnotationSplit]; ok {
		r.t.Fatalf("the rollout's split is left on the deployment: %s=%s", AnnotationSplit, v)
	}
}

var canarySteps = []plan.Desired{
	{New: 1, Old: 3, Traffic: plan.TrafficShared, Order: plan.Surge},
	{New: 2, Old: 2, Traffic: plan.TrafficShared, Order: plan.Surge},
	{New: 3, Old: 1, Traffic: plan.TrafficShared, Order: plan.Surge},
}

var final = plan.Desired{New: 4, Traffic: plan.TrafficNew, Order: plan.Surge}

// TestConvergeFollowsTheAutoscaler runs a 25/50/75 canary planned for 4
// beside an autoscaler (min 2, max 10) that reports its target's own count
// between stages, as it does within its tolerance, then scales to 8 in the
// middle of the rollout: each stage splits the autoscaler's count, no write
// leaves its bounds, and the final state is its count with nothing pinned.
func TestConvergeFollowsTheAutoscaler(t *testing.T) {
	r := newHPARig(t, webHPA(ptr(int32(2)), 10, 4))
	r.converge(canarySteps[0])
	r.counts("25%", 1, 3)
	r.desired(3, 3) // within tolerance: its target's own count
	r.converge(canarySteps[1])
	r.counts("50% of 4 (not of 3)", 2, 2)
	r.autoscale(8) // mid-stage: it scales its target from 2 to 8
	r.converge(canarySteps[2])
	r.counts("75% of 8", 6, 2)
	r.converge(canarySteps[2]) // a retried converge changes nothing
	r.counts("75% of 8, again", 6, 2)
	r.converge(final)
	r.handedBack("demo:v2", 8)
	for _, n := range r.stableWrites() {
		if n < 2 || n > 10 {
			t.Fatalf("the stable deployment was written with %d replicas, outside the autoscaler's 2..10 (writes %v)", n, r.stableWrites())
		}
	}
}

// TestConvergeNeverLeavesTheAutoscalersTargetEmpty shrinks the
// autoscaler's count under a 75% step: the canary takes it all, the
// stable Deployment keeps one replica.
func TestConvergeNeverLeavesTheAutoscalersTargetEmpty(t *testing.T) {
	r := newHPARig(t, webHPA(nil, 10, 4))
	r.converge(canarySteps[0])
	r.autoscale(2)
	r.converge(canarySteps[2])
	r.counts("75% of 2", 2, 1)
	for _, n := range r.stableWrites() {
		if n < 1 {
			t.Fatalf("the autoscaler's target was written with no replicas (writes %v)", r.stableWrites())
		}
	}
}

// TestRollbackRestoresTheAutoscalersCount rolls back after the autoscaler
// scaled to 6 mid-rollout: the snapshot's template comes back with 6
// replicas, not the snapshot's 4.
func TestRollbackRestoresTheAutoscalersCount(t *testing.T) {
	r := newHPARig(t, webHPA(ptr(int32(2)), 10, 4))
	r.converge(canarySteps[0])
	r.autoscale(6)
	r.converge(plan.Desired{Old: 4, Traffic: plan.TrafficOld, Order: plan.Surge})
	r.handedBack("demo:v1", 6)
}

// TestConvergeWithoutAnAutoscalerKeepsThePlan: an autoscaler of another
// Deployment, or none the worker may list, leaves the plan's counts alone.
func TestConvergeWithoutAnAutoscalerKeepsThePlan(t *testing.T) {
	other := webHPA(nil, 10, 9)
	other.Spec.ScaleTargetRef.Name = "api"
	r := newHPARig(t, other)
	r.converge(canarySteps[0])
	r.counts("25% of 4", 1, 3)

	r = newHPARig(t, webHPA(nil, 10, 9))
	r.cs.PrependReactor("list", "horizontalpodautoscalers", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "autoscaling", Resource: "horizontalpodautoscalers"}, "", nil)
	})
	r.converge(canarySteps[0])
	r.counts("25% of 4, autoscalers not listable", 1, 3)
}

// TestRollbackAfterTheAutoscalerAppeared: an autoscaler created while a
// canary runs at 75% (canary 3, stable 1 of 4) has never counted the
// canary's pods; a rollback gives the stable Deployment what both serve
// (4), not the autoscaler's view of its target alone (1), which would take
// three quarters of the service away with the canary. (A review finding:
// before, the stable Deployment was restored with 1.)
func TestRollbackAfterTheAutoscalerAppeared(t *testing.T) {
	for _, tc := range []struct {
		name    string
		desired int32
	}{
		{"no desired count yet", 0},
		{"sized by its target alone", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newHPARig(t, nil)
			for _, d := range canarySteps {
				r.converge(d)
			}
			r.counts("75%", 3, 1)
			h := webHPA(nil, 10, tc.desired)
			h.Status.CurrentReplicas = 1
			h.CreationTimestamp = metav1.Now() // after the canary's (the fake's zero time)
			if _, err := r.cs.AutoscalingV2().HorizontalPodAutoscalers(hpaNS).Create(r.ctx, h, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			r.converge(plan.Desired{Old: 4, Traffic: plan.TrafficOld, Order: plan.Surge})
			r.handedBack("demo:v1", 4)
		})
	}
}
