package kubernetes

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// deleteRig is a convergence of the Deployment "web" (demo:v1 → demo:v2)
// whose canary and green Deployments are gone, on a fake clientset with
// objs, its reads paired by a rendezvous.
func deleteRig(t *testing.T, objs ...runtime.Object) (*convergence, *rendezvous) {
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
	orig := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns"},
		Spec: appsv1.DeploymentSpec{Selector: sel, Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "demo:v1"}}}}}}
	r := &rendezvous{t: t, arrived: map[string]chan struct{}{}}
	c := &convergence{cs: &hookedReads{Clientset: fake.NewClientset(objs...), before: r.meet}, log: zap.NewNop(), ns: "ns",
		deadline: 10 * time.Second, orig: orig,
		spec: spec.Spec{Service: "web", Image: "demo:v2",
			Platform: spec.Platform{Kubernetes: &spec.Kubernetes{Namespace: "ns", Deployment: "web", Container: "app"}}}}
	return c, r
}

// ghostPod is a pod of a ReplicaSet of the gone Deployment named owner,
// running demo:v2 and terminating, with labels.
func ghostPod(name, owner string, labels map[string]string) *corev1.Pod {
	p := podOf(name, owner+"-abc", "demo:v2")
	p.Labels = labels
	p.OwnerReferences[0].Kind, p.OwnerReferences[0].Name = "ReplicaSet", owner+"-abc"
	p.DeletionTimestamp = &metav1.Time{Time: time.Now()}
	return p
}

// TestDeleteRolloutLooksInOneRound: the last steps of a canary delete a
// canary and a green Deployment that are gone already; their reads go out
// side by side, not one after the other (each a round trip on a busy API
// server: 0.06–0.1 s of the final converge when they did).
func TestDeleteRolloutLooksInOneRound(t *testing.T) {
	c, r := deleteRig(t)
	r.pair("get deployments web-canary", "get deployments web-green")
	r.pair("list replicasets app=web", "list replicasets "+greenSelector)
	r.pair("list pods app=web", "list pods "+greenSelector)
	if err := c.deleteRollout(context.Background(), canaryName("web"), greenName("web")); err != nil {
		t.Fatal(err)
	}
	if len(c.res.Removed) != 0 {
		t.Errorf("removed %v, want nothing (both were gone)", c.res.Removed)
	}
}

// TestWaitServingLooksSideBySide: a rollback waits for the canary's and
// green's pods to stop serving side by side, and reports what still
// terminates of both, the canary's first.
func TestWaitServingLooksSideBySide(t *testing.T) {
	green := map[string]string{platform.LabelService: "web", LabelColor: colorGreen}
	c, r := deleteRig(t, ghostPod("c-1", "web-canary", map[string]string{"app": "web"}), ghostPod("g-1", "web-green", green))
	r.pair("list pods app=web", "list pods "+greenSelector)
	ds := []*appsv1.Deployment{c.ghost(canaryName("web")), c.ghost(greenName("web"))}
	if err := c.waitServing(context.Background(), ds); err != nil {
		t.Fatal(err)
	}
	if want := []string{"pod/c-1", "pod/g-1"}; !slices.Equal(c.res.Terminating, want) {
		t.Errorf("terminating %v, want %v", c.res.Terminating, want)
	}
}

// greenSelector is green's selector of the service "web", as listed.
var greenSelector = LabelColor + "=" + colorGreen + "," + platform.LabelService + "=web"

// rendezvous holds each call of a pair until the other has gone out too,
// failing t when that takes 2 s: calls made one after the other show as a
// stall. Calls of no pair pass.
type rendezvous struct {
	t       *testing.T
	mu      sync.Mutex
	partner map[string]string
	arrived map[string]chan struct{}
}

func (r *rendezvous) pair(a, b string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.partner == nil {
		r.partner = map[string]string{}
	}
	r.partner[a], r.partner[b] = b, a
}

// ch is the channel closed once key has gone out; call with mu held.
func (r *rendezvous) ch(key string) chan struct{} {
	c, ok := r.arrived[key]
	if !ok {
		c = make(chan struct{})
		r.arrived[key] = c
	}
	return c
}

func (r *rendezvous) meet(key string) {
	r.mu.Lock()
	other, ok := r.partner[key]
	if !ok {
		r.mu.Unlock()
		return
	}
	mine := r.ch(key)
	select {
	case <-mine:
	default:
		close(mine)
	}
	theirs := r.ch(other)
	r.mu.Unlock()
	select {
	case <-theirs:
	case <-time.After(2 * time.Second):
		r.t.Errorf("%q answered before %q went out: one waits for the other", key, other)
	}
}
