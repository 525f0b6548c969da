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

// TestHandoverJudgesTheStableDeploymentByItsReplicaSets: a wait ends on
// the ReplicaSets' status (wait.go), one controller pass before the
// Deployment's own says the same; the handover right after it judges the
// stable Deployment settled the same way, not by a status that lags (which
// would make it roll the Deployment itself, starting every new pod again).
func TestHandoverJudgesTheStableDeploymentByItsReplicaSets(t *testing.T) {
	d := failingDeployment()
	d.Name = "web"
	d.Spec.Replicas = ptr(int32(2))
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 3, UpdatedReplicas: 3, ReadyReplicas: 3, AvailableReplicas: 3}
	for _, tc := range []struct {
		name string
		set  *appsv1.ReplicaSet
		want bool
	}{
		{"its one ReplicaSet shrunk", setOf("web-1", true, 2, 2), true},
		{"its one ReplicaSet still shrinking", setOf("web-1", true, 2, 3), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := settled(d, []*appsv1.ReplicaSet{tc.set}); got != tc.want {
				t.Fatalf("settled = %v, want %v", got, tc.want)
			}
		})
	}
}
