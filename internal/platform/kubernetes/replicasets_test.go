package kubernetes

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// setOf is a ReplicaSet of failingDeployment's (template image) with spec
// replicas and status replicas/ready/available all n.
func setOf(name, image string, spec, n int32) *appsv1.ReplicaSet {
	rs := failingRS(name, "1")
	d := failingDeployment()
	rs.Generation = 1
	rs.Spec.Replicas = ptr(spec)
	rs.Spec.Template = *d.Spec.Template.DeepCopy()
	rs.Spec.Template.Labels = map[string]string{"app": "web", appsv1.DefaultDeploymentUniqueLabelKey: name}
	rs.Spec.Template.Spec.Containers[0].Image = image
	rs.Status = appsv1.ReplicaSetStatus{ObservedGeneration: 1, Replicas: n, ReadyReplicas: n, AvailableReplicas: n}
	return rs
}

func TestSetsRolledOut(t *testing.T) {
	d := failingDeployment() // demo:v2, generation 2 observed
	d.Spec.Replicas = ptr(int32(4))
	stale := d.DeepCopy()
	stale.Status.ObservedGeneration = 1
	notSeen := setOf("new", "demo:v2", 4, 4)
	notSeen.Generation = 2
	short := setOf("new", "demo:v2", 4, 4)
	short.Status.AvailableReplicas = 3
	oldTemplate := setOf("old", "demo:v1", 4, 4)
	for _, tc := range []struct {
		name string
		d    *appsv1.Deployment
		sets []*appsv1.ReplicaSet
		want bool
	}{
		{"one set of the template, all ready and available", d, []*appsv1.ReplicaSet{setOf("new", "demo:v2", 4, 4), setOf("old", "demo:v1", 0, 0)}, true},
		{"not followed", d, nil, false},
		{"the deployment's controller has not seen the write", stale, []*appsv1.ReplicaSet{setOf("new", "demo:v2", 4, 4)}, false},
		{"the set's controller has not seen its change", d, []*appsv1.ReplicaSet{notSeen}, false},
		{"one not available yet (minReadySeconds)", d, []*appsv1.ReplicaSet{short}, false},
		{"old pods still counted", d, []*appsv1.ReplicaSet{setOf("new", "demo:v2", 4, 4), setOf("old", "demo:v1", 0, 1)}, false},
		{"old set still wanted", d, []*appsv1.ReplicaSet{setOf("new", "demo:v2", 4, 4), setOf("old", "demo:v1", 1, 0)}, false},
		{"only another template's pods", d, []*appsv1.ReplicaSet{oldTemplate}, false},
		{"two sets of the template with pods", d, []*appsv1.ReplicaSet{setOf("a", "demo:v2", 4, 4), setOf("b", "demo:v2", 4, 4)}, false},
		{"fewer than wanted", d, []*appsv1.ReplicaSet{setOf("new", "demo:v2", 4, 3)}, false},
		{"no set for zero replicas", func() *appsv1.Deployment { z := d.DeepCopy(); z.Spec.Replicas = ptr(int32(0)); return z }(), []*appsv1.ReplicaSet{setOf("old", "demo:v1", 0, 0)}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := setsRolledOut(tc.d, 2, tc.sets); got != tc.want {
				t.Fatalf("setsRolledOut = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestWaitEndsOnTheReplicaSets: a Deployment whose ReplicaSet has all its
// pods ready and available has rolled out, though its controller has not
// summed that into its status yet (it does so a sync later, behind its
// rate limit); the wait ends on the ReplicaSet's change.
func TestWaitEndsOnTheReplicaSets(t *testing.T) {
	d := failingDeployment()
	d.Spec.Replicas = ptr(int32(2))
	d.Status.Replicas, d.Status.UpdatedReplicas = 2, 2 // ready 0: the status lags
	rs := setOf("new", "demo:v2", 2, 2)
	rs.Status.ReadyReplicas, rs.Status.AvailableReplicas = 1, 1
	cs := fake.NewClientset(d, rs)
	conv := &convergence{cs: cs, log: zap.NewNop(), ns: "ns", deadline: 10 * time.Minute}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- conv.wait(ctx, d) }()

	select {
	case err := <-done:
		t.Fatalf("the wait ended (%v) with one pod of two ready", err)
	case <-time.After(300 * time.Millisecond):
	}
	// The ReplicaSet controller reports the second pod ready; the
	// Deployment's status is left as it was.
	cur, err := cs.AppsV1().ReplicaSets("ns").Get(ctx, rs.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cur.Status.ReadyReplicas, cur.Status.AvailableReplicas = 2, 2
	if _, err := cs.AppsV1().ReplicaSets("ns").UpdateStatus(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("got %v, want the wait to end rolled out", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("still waiting 10 s after the ReplicaSet had every pod ready and available")
	}
}

// TestHandoverJudgesTheStableDeploymentOnceSeen: the fence a converge
// stamps first moves the stable Deployment's generation (annotations do,
// on a Deployment); the handover judges it settled only once its
// controller has seen that generation, not from the status of the one
// before (which would make it roll the Deployment itself, starting every
// new pod again).
func TestHandoverJudgesTheStableDeploymentOnceSeen(t *testing.T) {
	d := failingDeployment()
	d.Name = "web"
	d.Generation = 3 // the fence's write; the controller has seen 2
	cs := fake.NewClientset(d)
	conv := &convergence{cs: cs, log: zap.NewNop(), ns: "ns", deadline: 10 * time.Minute, orig: d.DeepCopy()}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go func() {
		time.Sleep(200 * time.Millisecond)
		cur, err := cs.AppsV1().Deployments("ns").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return
		}
		cur.Status.ObservedGeneration = 3
		_, _ = cs.AppsV1().Deployments("ns").UpdateStatus(ctx, cur, metav1.UpdateOptions{})
	}()
	got, err := conv.seen(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status.ObservedGeneration != 3 {
		t.Fatalf("judged at observed generation %d, want 3 (the fence's)", got.Status.ObservedGeneration)
	}
}
