package kubernetes

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// splitTarget is a stable Deployment "web" (demo:v1) mid-canary: its
// ReplicaSet with two old pods, one of them not ready; the canary's
// ReplicaSet with one new pod; and a pod of another owner the selector
// also matches. Green, when wanted, selects other labels.
func splitTarget(green bool) []runtime.Object {
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
	dep := func(name, uid string, sel *metav1.LabelSelector) *appsv1.Deployment {
		return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID(uid)},
			Spec: appsv1.DeploymentSpec{Selector: sel}}
	}
	rs := func(name, owner string, labels map[string]string) *appsv1.ReplicaSet {
		return &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID(name), Labels: labels,
			OwnerReferences: []metav1.OwnerReference{{UID: types.UID(owner), Controller: ptr(true)}}}}
	}
	web := map[string]string{"app": "web"}
	unready := podOf("old-2", "rs-web", "demo:v1")
	unready.Status.Conditions[1].Status = corev1.ConditionFalse
	objs := []runtime.Object{
		dep("web", "uid-web", sel), dep("web-canary", "uid-canary", sel.DeepCopy()),
		rs("rs-web", "uid-web", web), rs("rs-canary", "uid-canary", web),
		podOf("old-1", "rs-web", "demo:v1"), unready, podOf("new-1", "rs-canary", "demo:v2"),
		podOf("stray", "rs-someone-else", "demo:v2"),
	}
	if green {
		gsel := &metav1.LabelSelector{MatchLabels: map[string]string{"color": "green"}}
		g := map[string]string{"color": "green"}
		gp := podOf("green-1", "rs-green", "demo:v2")
		gp.Labels = g
		objs = append(objs, dep("web-green", "uid-green", gsel), rs("rs-green", "uid-green", g), gp)
	}
	return objs
}

// TestSplitPodsReadsInOneRound: a converge ends with splitPods, so its
// reads go out in one round: the ReplicaSets and pods of the stable
// selector are listed beside the Deployments' reads, not after them, and
// once for the stable Deployment and the canary (same selector). Only a
// Deployment of another selector (green) has its own listed after.
func TestSplitPodsReadsInOneRound(t *testing.T) {
	for _, green := range []bool{false, true} {
		name := "canary"
		if green {
			name = "canary-and-green"
		}
		t.Run(name, func(t *testing.T) {
			cs := fake.NewClientset(splitTarget(green)...)
			var mu sync.Mutex
			var lists []string
			listed := make(chan struct{})
			var once sync.Once
			cs.PrependReactor("list", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
				l := a.(k8stesting.ListAction)
				mu.Lock()
				lists = append(lists, a.GetResource().Resource+" "+l.GetListRestrictions().Labels.String())
				mu.Unlock()
				once.Do(func() { close(listed) })
				return false, nil, nil
			})
			// A Deployment read answers only once a list has gone out (or
			// after 2 s): lists made after the reads show as a stall.
			held := &hookedReads{Clientset: cs, before: func(call string) {
				if !hookedCall(call, "get", "deployments") {
					return
				}
				select {
				case <-listed:
				case <-time.After(2 * time.Second):
					t.Error("a Deployment read answered before any list went out: the lists wait for the reads")
				}
			}}
			sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
			alive := map[types.UID]bool{}
			newPods, oldPods, err := splitPodsAlive(context.Background(), held, "ns", "web", sel, "app", "demo:v1", alive)
			if err != nil {
				t.Fatal(err)
			}
			names := func(pods []corev1.Pod) []string {
				var out []string
				for _, p := range pods {
					out = append(out, p.Name)
				}
				slices.Sort(out)
				return out
			}
			wantNew := []string{"new-1"}
			wantLists := []string{"pods app=web", "replicasets app=web"}
			wantAlive := 3
			if green {
				wantNew = []string{"green-1", "new-1"}
				wantLists = append(wantLists, "pods color=green", "replicasets color=green")
				wantAlive = 4
			}
			if got := names(newPods); !slices.Equal(got, wantNew) {
				t.Errorf("new pods %v, want %v", got, wantNew)
			}
			if got := names(oldPods); !slices.Equal(got, []string{"old-1"}) {
				t.Errorf("old pods %v, want [old-1] (old-2 is not ready, stray is not the Deployments')", got)
			}
			if len(alive) != wantAlive || alive["stray"] {
				t.Errorf("alive %v, want the %d pods of the Deployments, ready or not", alive, wantAlive)
			}
			slices.Sort(lists)
			slices.Sort(wantLists)
			if !slices.Equal(lists, wantLists) {
				t.Errorf("lists %v, want %v", lists, wantLists)
			}
		})
	}
}
