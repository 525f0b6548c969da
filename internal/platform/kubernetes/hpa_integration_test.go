//go:build integration

package kubernetes

import (
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/stagecraft/stagecraft/internal/plan"
)

// hpaEnv is an env whose target has a HorizontalPodAutoscaler (min 2,
// max 10, CPU at 50%), converged by a Platform with the worker's
// least-privilege Role (deployments/kubernetes/rbac.yaml). The test plane's
// controller-manager runs the autoscaler controller, but with no metrics
// API on KWOK it cannot compute a count: it only records the target's
// count and its failure in the autoscaler's status, and would scale a
// target outside min..max back into it. The test plays its part where it
// decides: it scales the target through the scale subresource and records
// its desired count in the status, as the controller does.
type hpaEnv struct {
	*env
}

func newHPAEnv(t *testing.T) hpaEnv {
	t.Helper()
	e := newEnv(t, nil, true)
	hpa := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: target},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: target},
			MinReplicas:    ptr(int32(2)),
			MaxReplicas:    10,
			Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
				Name:   corev1.ResourceCPU,
				Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr(int32(50))},
			}}},
		},
	}
	e.createAutoscaler(hpa)
	e.p = NewForClient(workerClient(t, e.ns), zaptest.NewLogger(t))
	h := hpaEnv{e}
	h.decide(4, 4)
	return h
}

// createAutoscaler creates hpa in e's namespace and waits for the
// controller-manager's autoscaler controller to sync it once (it reports,
// within a sync, that it cannot get metrics).
func (e *env) createAutoscaler(hpa *autoscalingv2.HorizontalPodAutoscaler) {
	e.t.Helper()
	if _, err := cs.AutoscalingV2().HorizontalPodAutoscalers(e.ns).Create(e.ctx, hpa, metav1.CreateOptions{}); err != nil {
		e.t.Fatalf("create autoscaler: %v", err)
	}
	eventually(e.t, e.ctx, "the autoscaler controller's first sync", func() (bool, error) {
		h, err := cs.AutoscalingV2().HorizontalPodAutoscalers(e.ns).Get(e.ctx, hpa.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range h.Status.Conditions {
			if c.Type == autoscalingv2.ScalingActive {
				e.t.Logf("autoscaler controller: %s=%s %s: %s (currentReplicas %d, desiredReplicas %d)",
					c.Type, c.Status, c.Reason, c.Message, h.Status.CurrentReplicas, h.Status.DesiredReplicas)
				return true, nil
			}
		}
		return false, nil
	})
}

// decide records the autoscaler's status: the count it found on its
// target and the one it decided on.
func (h hpaEnv) decide(current, desired int32) {
	h.t.Helper()
	api := cs.AutoscalingV2().HorizontalPodAutoscalers(h.ns)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error { // the controller writes the status too
		a, err := api.Get(h.ctx, target, metav1.GetOptions{})
		if err != nil {
			return err
		}
		a.Status.CurrentReplicas, a.Status.DesiredReplicas = current, desired
		_, err = api.UpdateStatus(h.ctx, a, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		h.t.Fatalf("autoscaler status: %v", err)
	}
}

// autoscale scales the target to n through its scale subresource and
// records n as the autoscaler's decision, as its controller does.
func (h hpaEnv) autoscale(n int32) {
	h.t.Helper()
	api := cs.AppsV1().Deployments(h.ns)
	var found int32
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		sc, err := api.GetScale(h.ctx, target, metav1.GetOptions{})
		if err != nil {
			return err
		}
		found = sc.Spec.Replicas
		_, err = api.UpdateScale(h.ctx, target, &autoscalingv1.Scale{ObjectMeta: sc.ObjectMeta, Spec: autoscalingv1.ScaleSpec{Replicas: n}}, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		h.t.Fatalf("scale %s to %d: %v", target, n, err)
	}
	h.decide(found, n)
	h.waitReady(target, n)
}

// split checks the canary's and the stable Deployment's replicas, then
// waits for both to be ready.
func (h hpaEnv) split(stage string, canary, stable int32) {
	h.t.Helper()
	if got := replicas(h.deployment(target)); got != stable {
		h.t.Fatalf("%s: stable %d, want %d", stage, got, stable)
	}
	if got := replicas(h.deployment(canaryName(target))); got != canary {
		h.t.Fatalf("%s: canary %d, want %d", stage, got, canary)
	}
	h.waitReady(canaryName(target), canary)
	h.waitReady(target, stable)
}

// handedBack checks the state after the rollout: the stable Deployment
// alone, with image and the autoscaler's count, nothing of the rollout's
// split on it.
func (h hpaEnv) handedBack(image string, n int32) {
	h.t.Helper()
	h.assertGone(canaryName(target))
	d := h.deployment(target)
	if got := replicas(d); got != n {
		h.t.Fatalf("handed back %d replicas, want the autoscaler's %d", got, n)
	}
	if got := d.Spec.Template.Spec.Containers[0].Image; got != image {
		h.t.Fatalf("image %s, want %s", got, image)
	}
	if v, ok := d.Annotations[AnnotationSplit]; ok {
		h.t.Fatalf("the rollout's split is left on the deployment: %s=%s", AnnotationSplit, v)
	}
	h.waitReady(target, n)
}

// afterSync waits out a sync of the real autoscaler controller (every 15
// s) and checks it found n replicas on its target and left them: it scales
// a target outside its bounds back into them even without metrics.
func (h hpaEnv) afterSync(n int32) {
	h.t.Helper()
	time.Sleep(20 * time.Second)
	a, err := cs.AutoscalingV2().HorizontalPodAutoscalers(h.ns).Get(h.ctx, target, metav1.GetOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	if got := replicas(h.deployment(target)); got != n || a.Status.CurrentReplicas != n {
		h.t.Fatalf("after a sync of the autoscaler controller: deployment %d, its currentReplicas %d; want %d", got, a.Status.CurrentReplicas, n)
	}
	h.t.Logf("autoscaler after a sync: currentReplicas %d, desiredReplicas %d", a.Status.CurrentReplicas, a.Status.DesiredReplicas)
}

var hpaSteps = []plan.Desired{
	{New: 1, Old: 3, Traffic: plan.TrafficShared, Order: plan.Surge},
	{New: 2, Old: 2, Traffic: plan.TrafficShared, Order: plan.Surge},
	{New: 3, Old: 1, Traffic: plan.TrafficShared, Order: plan.Surge},
}

// TestPlaneCanaryFollowsTheAutoscaler: a 25/50/75 canary planned for the 4
// replicas that ran, beside an autoscaler (min 2, max 10) that, within its
// tolerance, reports its target's own count, then scales its target from
// 2 to 8 in the middle of the rollout: each stage splits the autoscaler's
// count, the stable Deployment never goes below its minimum (the real
// controller, given a sync, leaves it), and the final state is the new
// image at the autoscaler's 8, which the controller leaves too.
func TestPlaneCanaryFollowsTheAutoscaler(t *testing.T) {
	h := newHPAEnv(t)
	snap := h.snapshot()
	h.converge(snap, hpaSteps[0])
	h.split("25% of 4", 1, 3)
	h.decide(3, 3) // within its tolerance: its target's own count
	h.converge(snap, hpaSteps[1])
	h.split("50% of 4", 2, 2)
	h.autoscale(8) // mid-stage
	h.converge(snap, hpaSteps[2])
	h.split("75% of 8, the stable at the autoscaler's minimum", 6, 2)
	h.afterSync(2)
	h.converge(snap, plan.Desired{New: 4, Traffic: plan.TrafficNew, Order: plan.Surge})
	h.handedBack(imageV2, 8)
	h.afterSync(8)
}

// TestPlaneRollbackRestoresTheAutoscalersCount: the autoscaler scales its
// target from 3 to 6 during the first stage; the rollback restores the
// snapshot's template at 6 replicas, not the snapshot's 4.
func TestPlaneRollbackRestoresTheAutoscalersCount(t *testing.T) {
	h := newHPAEnv(t)
	snap := h.snapshot()
	h.converge(snap, hpaSteps[0])
	h.split("25% of 4", 1, 3)
	h.autoscale(6)
	h.converge(snap, plan.Desired{Old: 4, Traffic: plan.TrafficOld, Order: plan.Surge})
	h.handedBack(imageV1, 6)
	h.afterSync(6)
}

// TestPlaneRollbackAfterTheAutoscalerAppeared: an autoscaler created while
// the canary runs at 75% (canary 3, stable 1) sizes its target by the
// target's own count; the rollback restores the 4 both served, not 1.
func TestPlaneRollbackAfterTheAutoscalerAppeared(t *testing.T) {
	e := newEnv(t, nil, true)
	e.p = NewForClient(workerClient(t, e.ns), zaptest.NewLogger(t))
	snap := e.snapshot()
	for _, d := range hpaSteps {
		e.converge(snap, d)
	}
	// Creation times have a resolution of a second: one created in the
	// canary's second counts as there before it.
	time.Sleep(1100 * time.Millisecond)
	hpa := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: target},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: target},
			MaxReplicas:    10,
		},
	}
	e.createAutoscaler(hpa)
	e.converge(snap, plan.Desired{Old: 4, Traffic: plan.TrafficOld, Order: plan.Surge})
	e.assertGone(canaryName(target))
	if n := replicas(e.deployment(target)); n != 4 {
		t.Fatalf("restored with %d replicas, want the 4 that served (canary 3, stable 1)", n)
	}
	e.waitReady(target, 4)
}
