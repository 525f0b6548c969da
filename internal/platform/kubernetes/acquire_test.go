package kubernetes

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// acquireRig is a convergence of the Deployment "web" on a fake clientset,
// for what acquire does between its read and its stamps. (The real API
// server's side of the fences: fence_integration_test.go.)
type acquireRig struct {
	cs          *fake.Clientset
	stale, mine platform.Fence
}

func newAcquireRig(t *testing.T, canary bool) *acquireRig {
	t.Helper()
	until := time.Now().Add(time.Hour)
	r := &acquireRig{stale: platform.Fence{Owner: owner, Step: 1, Until: until}, mine: platform.Fence{Owner: owner, Step: 2, Until: until}}
	objs := []runtime.Object{r.deployment(target)}
	if canary {
		objs = append(objs, r.deployment(canaryName(target)))
	}
	r.cs = fake.NewClientset(objs...)
	return r
}

// deployment is one of the service's Deployments, written by the stale
// attempt.
func (r *acquireRig) deployment(name string) *appsv1.Deployment {
	return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + name),
		Labels:      map[string]string{platform.LabelService: target},
		Annotations: map[string]string{AnnotationFence: encodeFence(r.stale)}}}
}

// onStableStamp runs fn once, as the stable Deployment's stamp is sent:
// after acquire's read, before its other stamps.
func (r *acquireRig) onStableStamp(fn func()) {
	var once sync.Once
	r.cs.PrependReactor("update", "deployments", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.(k8stesting.UpdateAction).GetObject().(*appsv1.Deployment).Name == target {
			once.Do(fn)
		}
		return false, nil, nil
	})
}

func (r *acquireRig) acquire() error {
	_, err := r.acquireInto()
	return err
}

// acquireInto is acquire, also returning the convergence it ran in.
func (r *acquireRig) acquireInto() (*convergence, error) {
	orig := r.deployment(target)
	c := &convergence{cs: r.cs, log: zap.NewNop(), ns: "ns", deadline: time.Minute, orig: orig,
		spec: spec.Spec{Service: target}, fence: r.mine, stamps: &stampBook{}}
	return c, c.acquire(context.Background(), func(context.Context) error { return nil })
}

// The generation a stamp gives the stable Deployment counts as one its
// controller need not see (specGeneration) only when the stamp changed
// nothing but its annotation: a spec the API server changed beside it (a
// mutating webhook) has to be seen.
func TestStampCountsOnlyWhenTheSpecIsAsSent(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mutated bool
	}{{"the spec as sent", false}, {"the spec changed by the server", true}} {
		t.Run(tc.name, func(t *testing.T) {
			r := newAcquireRig(t, false)
			r.cs.PrependReactor("update", "deployments", func(a k8stesting.Action) (bool, runtime.Object, error) {
				d := a.(k8stesting.UpdateAction).GetObject().(*appsv1.Deployment).DeepCopy()
				d.Generation = 5
				if tc.mutated {
					d.Spec.MinReadySeconds = 7
				}
				return true, d, r.cs.Tracker().Update(deployments, d, "ns")
			})
			c, err := r.acquireInto()
			if err != nil {
				t.Fatal(err)
			}
			stable := r.deployment(target)
			stable.Generation = 5
			want := int64(4)
			if tc.mutated {
				want = 5
			}
			if got := c.specGeneration(stable); got != want {
				t.Errorf("specGeneration after the stamp = %d, want %d", got, want)
			}
		})
	}
}

// The tests' Deployment (the integration tests' too) and its rollout's
// fence owner.
const (
	target = "web"
	owner  = "default/deploy:kubernetes:web"
)

var deployments = appsv1.SchemeGroupVersion.WithResource("deployments")

// A canary a stale attempt creates after acquire's read (it found none)
// but before acquire holds the target's fence carries acquire's fence
// when acquire returns: the stale attempt, which resumes its canary only
// if it still holds the canary's fence, cannot then run it.
func TestAcquireStampsACanaryMadeAfterItsRead(t *testing.T) {
	r := newAcquireRig(t, false)
	r.onStableStamp(func() {
		if err := r.cs.Tracker().Create(deployments, r.deployment(canaryName(target)), "ns"); err != nil {
			t.Error(err)
		}
	})
	if err := r.acquire(); err != nil {
		t.Fatal(err)
	}
	d, err := r.cs.AppsV1().Deployments("ns").Get(context.Background(), canaryName(target), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Annotations[AnnotationFence]; got != encodeFence(r.mine) {
		t.Errorf("canary fence after acquire %s, want %s", got, encodeFence(r.mine))
	}
}

// A canary deleted after acquire's read (by a user, or an attempt it
// admitted) is gone, not a failure of the converge.
func TestAcquireTakesACanaryDeletedAfterItsReadAsGone(t *testing.T) {
	r := newAcquireRig(t, true)
	r.onStableStamp(func() {
		if err := r.cs.Tracker().Delete(deployments, "ns", canaryName(target)); err != nil {
			t.Error(err)
		}
	})
	if err := r.acquire(); err != nil {
		t.Fatalf("acquire: %v", err)
	}
}
