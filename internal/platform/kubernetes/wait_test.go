package kubernetes

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
)

// TestWaitIsNotHeldByThePodCheck: the pods of the Deployment waited for are
// looked at beside the wait, so a Deployment seen rolled out ends the wait
// even while a list of its pods has not answered (on a loaded control plane
// a list of pods took 40-100 ms, each time the Deployment changed).
func TestWaitIsNotHeldByThePodCheck(t *testing.T) {
	d := failingDeployment()
	d.Spec.Replicas = ptr(int32(1))
	listing := make(chan struct{}, 1)
	release := make(chan struct{})
	defer close(release)
	cs := &stuckPods{Clientset: fake.NewClientset(d, failingRS("rs-2", "2"), podOf("p", "rs-2", "demo:v2")),
		listing: listing, release: release}
	conv := &convergence{cs: cs, log: zap.NewNop(), ns: "ns", deadline: 10 * time.Minute}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- conv.wait(ctx, d) }()

	// The pod check is under way (and stuck); then the controller reports
	// the Deployment rolled out.
	select {
	case <-listing:
	case err := <-done:
		t.Fatalf("the wait ended (%v) before the Deployment rolled out", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the pods were never looked at")
	}
	cur, err := cs.AppsV1().Deployments("ns").Get(ctx, d.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cur.Status.Replicas, cur.Status.UpdatedReplicas, cur.Status.ReadyReplicas, cur.Status.AvailableReplicas = 1, 1, 1, 1
	if _, err := cs.AppsV1().Deployments("ns").UpdateStatus(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("got %v, want the wait to end rolled out", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the wait is still held by the pod check 10 s after the Deployment rolled out")
	}
}

// stuckPods is a clientset whose lists of pods do not answer until release
// is closed (signalling each on listing).
type stuckPods struct {
	*fake.Clientset
	listing chan struct{}
	release chan struct{}
}

func (s *stuckPods) CoreV1() corev1client.CoreV1Interface {
	return stuckCore{s.Clientset.CoreV1(), s}
}

type stuckCore struct {
	corev1client.CoreV1Interface
	s *stuckPods
}

func (c stuckCore) Pods(ns string) corev1client.PodInterface {
	return stuckPodList{c.CoreV1Interface.Pods(ns), c.s}
}

type stuckPodList struct {
	corev1client.PodInterface
	s *stuckPods
}

func (p stuckPodList) List(ctx context.Context, opts metav1.ListOptions) (*corev1.PodList, error) {
	select {
	case p.s.listing <- struct{}{}:
	default:
	}
	<-p.s.release
	return p.PodInterface.List(ctx, opts)
}
