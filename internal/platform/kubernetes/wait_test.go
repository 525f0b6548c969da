package kubernetes

import (
	"context"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
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
	// Lists of pods do not answer until release is closed, signalling
	// each on listing.
	cs := &hookedReads{Clientset: fake.NewClientset(d, failingRS("rs-2", "2"), podOf("p", "rs-2", "demo:v2")),
		before: func(call string) {
			if !hookedCall(call, "list", "pods") {
				return
			}
			select {
			case listing <- struct{}{}:
			default:
			}
			<-release
		}}
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

// setOf is a ReplicaSet of failingDeployment's: of its template when
// current, else of an older one; spec and status replicas as given (all
// ready and available), its status of its own generation.
func setOf(name string, current bool, spec, have int32) *appsv1.ReplicaSet {
	rs := failingRS(name, "1")
	rs.Generation = 3
	rs.Spec.Replicas = ptr(spec)
	rs.Spec.Template = failingDeployment().Spec.Template
	if !current {
		rs.Spec.Template.Spec.Containers[0].Image = "demo:v1"
	}
	rs.Spec.Template.Labels = map[string]string{"app": "web", appsv1.DefaultDeploymentUniqueLabelKey: name}
	rs.Status = appsv1.ReplicaSetStatus{ObservedGeneration: 3, Replicas: have, ReadyReplicas: have, AvailableReplicas: have}
	return rs
}

func TestSetsRolledOut(t *testing.T) {
	d := failingDeployment()
	d.Spec.Replicas = ptr(int32(5))
	notOurs := setOf("canary-rs", true, 3, 1)
	notOurs.OwnerReferences[0].UID = "another"
	for _, tc := range []struct {
		name     string
		observed int64
		want     int32
		sets     []*appsv1.ReplicaSet
		done     bool
	}{
		{"the current set has them all, the old none", 2, 5, []*appsv1.ReplicaSet{setOf("new", true, 5, 5), setOf("old", false, 0, 0)}, true},
		{"another deployment's sets are not judged", 2, 5, []*appsv1.ReplicaSet{setOf("new", true, 5, 5), notOurs}, true},
		{"the controller has not seen the generation written", 1, 5, []*appsv1.ReplicaSet{setOf("new", true, 5, 5)}, false},
		{"the current set is not scaled yet", 2, 5, []*appsv1.ReplicaSet{setOf("new", true, 4, 4)}, false},
		{"the current set's pods are not all ready", 2, 5, []*appsv1.ReplicaSet{func() *appsv1.ReplicaSet {
			rs := setOf("new", true, 5, 5)
			rs.Status.ReadyReplicas, rs.Status.AvailableReplicas = 4, 4
			return rs
		}()}, false},
		{"the current set's status is of an older generation", 2, 5, []*appsv1.ReplicaSet{func() *appsv1.ReplicaSet {
			rs := setOf("new", true, 5, 5)
			rs.Generation = 4
			return rs
		}()}, false},
		{"an old set still has pods", 2, 5, []*appsv1.ReplicaSet{setOf("new", true, 5, 5), setOf("old", false, 0, 1)}, false},
		{"an old set is still wanted", 2, 5, []*appsv1.ReplicaSet{setOf("new", true, 5, 5), setOf("old", false, 1, 0)}, false},
		{"no set of the template yet", 2, 5, []*appsv1.ReplicaSet{setOf("old", false, 5, 5)}, false},
		{"two sets of the template", 2, 5, []*appsv1.ReplicaSet{setOf("new", true, 5, 5), setOf("new2", true, 5, 5)}, false},
		{"none wanted and none left", 2, 0, []*appsv1.ReplicaSet{setOf("old", false, 0, 0)}, true},
		{"an orphaned set of the selector has pods", 2, 5, []*appsv1.ReplicaSet{setOf("new", true, 5, 5), func() *appsv1.ReplicaSet {
			rs := setOf("orphan", false, 3, 3)
			rs.OwnerReferences = nil
			return rs
		}()}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := d.DeepCopy()
			d.Status.ObservedGeneration = tc.observed
			d.Spec.Replicas = ptr(tc.want)
			if got := setsRolledOut(d, 2, slices.Values(tc.sets)); got != tc.done {
				t.Errorf("setsRolledOut = %v, want %v", got, tc.done)
			}
		})
	}
}

// TestWaitEndsOnTheReplicaSets: once the controller has seen the
// generation written, the wait ends when the Deployment's ReplicaSets say
// it has rolled out, without waiting for the Deployment's own status (one
// controller pass later); before that, a ReplicaSet complete at the count
// it had does not end it.
func TestWaitEndsOnTheReplicaSets(t *testing.T) {
	d := failingDeployment()
	d.Spec.Replicas = ptr(int32(3))
	d.Status.ObservedGeneration = 1 // the write of 3 not seen yet
	old := setOf("new", true, 2, 2)
	cs := fake.NewClientset(d, old)
	conv := &convergence{cs: cs, log: zap.NewNop(), ns: "ns", deadline: 10 * time.Minute}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- conv.wait(ctx, d) }()

	settle := func() {
		select {
		case err := <-done:
			t.Fatalf("the wait ended (%v) before the deployment rolled out", err)
		case <-time.After(300 * time.Millisecond):
		}
	}
	settle()
	// The controller sees the generation and scales the set; its status
	// still counts 2.
	cur, err := cs.AppsV1().Deployments("ns").Get(ctx, d.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cur.Status.ObservedGeneration = 2
	if _, err := cs.AppsV1().Deployments("ns").UpdateStatus(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	scaled := setOf("new", true, 3, 2)
	if _, err := cs.AppsV1().ReplicaSets("ns").Update(ctx, scaled, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	settle()
	// Its third pod is ready: the ReplicaSet says so, the Deployment not yet.
	if _, err := cs.AppsV1().ReplicaSets("ns").Update(ctx, setOf("new", true, 3, 3), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("got %v, want the wait to end rolled out", err)
		}
	case <-time.After(recheck / 2):
		t.Fatal("the wait did not end on the ReplicaSet's status")
	}
}

// TestWaitCountsTheFenceStampAsSeen: a Deployment whose last change is this
// converge's fence stamp (an annotation, which moves its generation) is
// rolled out by the status its controller wrote for the generation
// before: a converge that writes nothing else to it does not wait for the
// controller to see the stamp. A generation past the stamp's is waited for.
func TestWaitCountsTheFenceStampAsSeen(t *testing.T) {
	for _, tc := range []struct {
		name    string
		stamped int64 // the generation the stamp gave
		done    bool
	}{
		{"still at the stamp's generation", 3, true},
		{"written since the stamp", 2, false},
		{"not stamped", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := failingDeployment()
			d.Generation = 3
			d.Spec.Replicas = ptr(int32(2))
			d.Status = appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 2, UpdatedReplicas: 2, ReadyReplicas: 2, AvailableReplicas: 2}
			conv := &convergence{cs: fake.NewClientset(d, setOf("new", true, 2, 2)), log: zap.NewNop(), ns: "ns", deadline: 10 * time.Minute, stamps: &stampBook{}}
			if tc.stamped != 0 {
				stamped := d.DeepCopy()
				stamped.Generation = tc.stamped
				conv.stamps.note(stamped)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			err := conv.wait(ctx, d)
			if done := err == nil; done != tc.done {
				t.Fatalf("wait: %v; want rolled out %v", err, tc.done)
			}
		})
	}
}

// TestWaitStopsTheReplicaSetWatchItDidNotTake: a wait that ends before
// its watch of the ReplicaSets is open (here at once: the Deployment as
// written has rolled out) stops that watch once it is there; a watch never
// stopped keeps its reader blocked for good after its request ends.
func TestWaitStopsTheReplicaSetWatchItDidNotTake(t *testing.T) {
	d := failingDeployment()
	d.Spec.Replicas = ptr(int32(1))
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 1, UpdatedReplicas: 1, ReadyReplicas: 1, AvailableReplicas: 1}
	cs := fake.NewClientset(d)
	release := make(chan struct{})
	cs.PrependReactor("list", "replicasets", func(k8stesting.Action) (bool, runtime.Object, error) {
		<-release
		return false, nil, nil
	})
	fw := watch.NewFake()
	cs.PrependWatchReactor("replicasets", func(k8stesting.Action) (bool, watch.Interface, error) { return true, fw, nil })
	conv := &convergence{cs: cs, log: zap.NewNop(), ns: "ns", deadline: 10 * time.Minute}
	if err := conv.wait(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	close(release)
	for end := time.Now().Add(5 * time.Second); !fw.IsStopped(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the watch of the ReplicaSets opened after the wait ended was never stopped")
		}
	}
}
