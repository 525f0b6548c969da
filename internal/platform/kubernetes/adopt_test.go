package kubernetes

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"
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
