package kubernetes

import (
	"errors"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"

	"github.com/stagecraft/stagecraft/internal/plan"
	"github.com/stagecraft/stagecraft/internal/platform"
)

func (r *hpaRig) try(d plan.Desired) error {
	_, err := r.p.Converge(r.ctx, platform.ConvergeRequest{Spec: r.spec, Rollout: "r1a2b3", Snapshot: r.snap, Desired: d})
	return err
}

// The autoscaler existed all along (desired 4). The last step writes the
// stable Deployment (4, split unmarked) and then fails before the canary
// is deleted; the rollback then counts the canary in as if the autoscaler
// had appeared mid-rollout.
func TestRollbackAfterAFailedLastStepKeepsTheAutoscalersCount(t *testing.T) {
	r := newHPARig(t, webHPA(nil, 10, 4))
	for _, d := range canarySteps {
		r.converge(d)
	}
	r.counts("75%", 3, 1)
	failed := false
	r.cs.PrependReactor("delete", "deployments", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.(k8stesting.DeleteAction).GetName() == "web-canary" && !failed {
			failed = true
			return true, nil, errors.New("injected: apiserver 503")
		}
		return false, nil, nil
	})
	if err := r.try(final); err == nil {
		t.Fatal("want the last step to fail")
	}
	r.counts("after the failed last step", 3, 4)
	r.converge(plan.Desired{Old: 4, Traffic: plan.TrafficOld, Order: plan.Surge})
	r.handedBack("demo:v1", 4)
}

// The first shared stage's stable write fails once (canary already up);
// the retry of the same stage counts the canary in.
func TestRetriedFirstStageKeepsTheAutoscalersCount(t *testing.T) {
	r := newHPARig(t, webHPA(nil, 10, 4))
	failed := false
	r.cs.PrependReactor("update", "deployments", func(a k8stesting.Action) (bool, runtime.Object, error) {
		d, _ := a.(k8stesting.UpdateAction).GetObject().(*appsv1.Deployment)
		if d != nil && d.Name == "web" && !failed && d.Annotations[AnnotationSplit] != "" {
			failed = true
			return true, nil, errors.New("injected: apiserver 503")
		}
		return false, nil, nil
	})
	if err := r.try(canarySteps[0]); err == nil {
		t.Fatal("want the first attempt to fail")
	}
	r.counts("after the failed attempt", 1, 4)
	r.converge(canarySteps[0])
	r.counts("25% of 4, retried", 1, 3)
}

func TestRetriedLastStepKeepsTheAutoscalersCount(t *testing.T) {
	r := newHPARig(t, webHPA(nil, 10, 4))
	for _, d := range canarySteps {
		r.converge(d)
	}
	failed := false
	r.cs.PrependReactor("delete", "deployments", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.(k8stesting.DeleteAction).GetName() == "web-canary" && !failed {
			failed = true
			return true, nil, errors.New("injected: apiserver 503")
		}
		return false, nil, nil
	})
	if err := r.try(final); err == nil {
		t.Fatal("want the last step to fail")
	}
	r.converge(final)
	r.handedBack("demo:v2", 4)
}
