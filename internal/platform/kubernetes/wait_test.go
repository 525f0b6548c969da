package kubernetes

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	k8stesting "k8s.io/client-go/testing"
)

// TestWaitIsNotHeldByThePodCheck: the pods of the Deployment waited for are
// looked at beside the wait, so a Deployment seen rolled out (its
// ReplicaSet too) ends the wait even while no list of its pods has
// answered, neither the pod check's nor the wait's own (on a loaded
// control plane a list of pods took 40-100 ms, each time the Deployment
// changed).
func TestWaitIsNotHeldByThePodCheck(t *testing.T) {
	d := failingDeployment()
	d.Spec.Replicas = ptr(int32(1))
	listing := make(chan struct{}, 1)
	release := make(chan struct{})
	defer close(release)
	cs := &stuckPods{Clientset: fake.NewClientset(d, setOf("rs-2", true, 1, 0), podOf("p", "rs-2", "demo:v2")),
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
	if _, err := cs.AppsV1().ReplicaSets("ns").UpdateStatus(ctx, setOf("rs-2", true, 1, 1), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
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
			if got := setsRolledOut(d, 2, slices.Values(tc.sets), nil); got != tc.done {
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

// TestWaitStopsThePodWatchItDidNotTake: a wait that ends before its
// watch of the pods is open (here as soon as its ReplicaSets are listed:
// the Deployment as written has rolled out, and so have they) stops that
// watch once it is there; a watch never stopped keeps its reader blocked
// for good after its request ends. (The ReplicaSets' watch is waited
// for: the wait judges by them once they can be listed.)
func TestWaitStopsThePodWatchItDidNotTake(t *testing.T) {
	d := failingDeployment()
	d.Spec.Replicas = ptr(int32(1))
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 1, UpdatedReplicas: 1, ReadyReplicas: 1, AvailableReplicas: 1}
	inner := fake.NewClientset(d, setOf("new", true, 1, 1))
	fw := watch.NewFake()
	inner.PrependWatchReactor("pods", func(k8stesting.Action) (bool, watch.Interface, error) { return true, fw, nil })
	release := make(chan struct{})
	cs := &stuckPods{Clientset: inner, listing: make(chan struct{}, 1), release: release}
	conv := &convergence{cs: cs, log: zap.NewNop(), ns: "ns", deadline: 10 * time.Minute}
	if err := conv.wait(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	close(release)
	for end := time.Now().Add(5 * time.Second); !fw.IsStopped(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the watch of the pods opened after the wait ended was never stopped")
		}
	}
}

// TestWaitDoesNotTrustAStatusItsReplicaSetsBelie: the Deployment
// controller makes a Deployment's status from its ReplicaSets' status of
// whatever generation. A shrink seen done by its pods and scaled back at
// once leaves a ReplicaSet status that still counts the pods gone, and a
// Deployment status at the count with all ready; the wait does not take
// it while the ReplicaSet, its status of an older generation, and its
// pods say otherwise.
func TestWaitDoesNotTrustAStatusItsReplicaSetsBelie(t *testing.T) {
	d := failingDeployment()
	d.Spec.Replicas = ptr(int32(4))
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 4, UpdatedReplicas: 4, ReadyReplicas: 4, AvailableReplicas: 4}
	rs := setOf("new", true, 4, 4) // status of generation 3: before the shrink to 2
	rs.Generation = 5              // scaled to 2 (4), then back to 4 (5)
	cs := fake.NewClientset(d, rs, podOf("new-0", "new", "demo:v2"), podOf("new-1", "new", "demo:v2"))
	conv := &convergence{cs: cs, log: zap.NewNop(), ns: "ns", deadline: 10 * time.Minute}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- conv.wait(ctx, d) }()
	select {
	case err := <-done:
		t.Fatalf("the wait ended (%v) on the Deployment's status with 2 of 4 pods", err)
	case <-time.After(500 * time.Millisecond):
	}
	// The ReplicaSet controller sees the scale-back and makes two pods,
	// which are ready before it says so.
	rs = rs.DeepCopy()
	rs.Status = appsv1.ReplicaSetStatus{ObservedGeneration: 5, Replicas: 4, ReadyReplicas: 2, AvailableReplicas: 2}
	if _, err := cs.AppsV1().ReplicaSets("ns").UpdateStatus(ctx, rs, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"new-2", "new-3"} {
		if _, err := cs.CoreV1().Pods("ns").Create(ctx, podOf(name, "new", "demo:v2"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("got %v, want the wait to end rolled out", err)
		}
	case <-time.After(recheck / 2):
		t.Fatal("the wait did not end on the pods")
	}
}

// TestSetsRolledOutByPods: with the pods of the selector at hand, a
// ReplicaSet's count is also read from its pods, which the ReplicaSet
// controller's status follows one paced request later: not terminating,
// not finished, ready. Without minReadySeconds only (a ready pod is then
// available at once); with them, the status judges.
func TestSetsRolledOutByPods(t *testing.T) {
	lagging := func(name string, current bool, spec, have int32) *appsv1.ReplicaSet {
		rs := setOf(name, current, spec, have)
		return rs
	}
	pods := func(rs string, n int, image string) []*corev1.Pod {
		var out []*corev1.Pod
		for i := range n {
			out = append(out, podOf(fmt.Sprintf("%s-%d", rs, i), rs, image))
		}
		return out
	}
	unready := func(p []*corev1.Pod) []*corev1.Pod {
		p[0].Status.Conditions[1].Status = corev1.ConditionFalse
		return p
	}
	terminating := func(p []*corev1.Pod) []*corev1.Pod { p[0].DeletionTimestamp = &metav1.Time{Time: time.Now()}; return p }
	finished := func(p []*corev1.Pod) []*corev1.Pod { p[0].Status.Phase = corev1.PodFailed; return p }
	for _, tc := range []struct {
		name       string
		minReady   int32
		sets       []*appsv1.ReplicaSet
		pods       []*corev1.Pod
		done       bool
		withoutPod bool // the verdict by status alone
	}{
		{"the current set's pods are all ready before its status says so", 0,
			[]*appsv1.ReplicaSet{lagging("new", true, 3, 2)}, pods("new", 3, "demo:v2"), true, false},
		{"one of them is not ready", 0,
			[]*appsv1.ReplicaSet{lagging("new", true, 3, 2)}, unready(pods("new", 3, "demo:v2")), false, false},
		{"a terminating pod does not count", 0,
			[]*appsv1.ReplicaSet{lagging("new", true, 3, 2)}, terminating(pods("new", 3, "demo:v2")), false, false},
		{"a finished pod does not count", 0,
			[]*appsv1.ReplicaSet{lagging("new", true, 3, 2)}, finished(pods("new", 3, "demo:v2")), false, false},
		{"more pods than wanted", 0,
			[]*appsv1.ReplicaSet{lagging("new", true, 3, 2)}, pods("new", 4, "demo:v2"), false, false},
		{"another set's pods are not counted", 0,
			[]*appsv1.ReplicaSet{lagging("new", true, 3, 2)}, append(pods("new", 2, "demo:v2"), pods("other", 1, "demo:v2")...), false, false},
		{"the old set's last pods are terminating before its status says none", 0,
			[]*appsv1.ReplicaSet{setOf("new", true, 3, 3), lagging("old", false, 0, 2)},
			append(pods("new", 3, "demo:v2"), terminating(terminating(pods("old", 1, "demo:v1")))...), true, false},
		{"the old set still has a pod running", 0,
			[]*appsv1.ReplicaSet{setOf("new", true, 3, 3), lagging("old", false, 0, 2)},
			append(pods("new", 3, "demo:v2"), pods("old", 1, "demo:v1")...), false, false},
		{"the old set is still wanted", 0,
			[]*appsv1.ReplicaSet{setOf("new", true, 3, 3), lagging("old", false, 1, 0)}, pods("new", 3, "demo:v2"), false, false},
		{"the set is not scaled yet", 0,
			[]*appsv1.ReplicaSet{lagging("new", true, 2, 2)}, pods("new", 3, "demo:v2"), false, false},
		{"the set's status is of an older generation", 0,
			[]*appsv1.ReplicaSet{func() *appsv1.ReplicaSet { rs := lagging("new", true, 3, 2); rs.Generation = 4; return rs }()},
			pods("new", 3, "demo:v2"), false, false},
		{"with minReadySeconds the status judges", 10,
			[]*appsv1.ReplicaSet{lagging("new", true, 3, 2)}, pods("new", 3, "demo:v2"), false, false},
		{"the status alone still ends it", 0,
			[]*appsv1.ReplicaSet{setOf("new", true, 3, 3)}, unready(pods("new", 3, "demo:v2")), true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := failingDeployment()
			d.Spec.Replicas = ptr(int32(3))
			d.Spec.MinReadySeconds = tc.minReady
			if got := setsRolledOut(d, 2, slices.Values(tc.sets), slices.Values(tc.pods)); got != tc.done {
				t.Errorf("setsRolledOut = %v, want %v", got, tc.done)
			}
			if got := setsRolledOut(d, 2, slices.Values(tc.sets), nil); got != tc.withoutPod {
				t.Errorf("without the pods: setsRolledOut = %v, want %v", got, tc.withoutPod)
			}
		})
	}
}

// TestWaitEndsOnThePods: the wait follows the pods of the Deployment's
// selector too, and ends once the controller has seen the generation
// written and the current ReplicaSet's pods are all there and ready, its
// own status (and the Deployment's) still a count behind.
func TestWaitEndsOnThePods(t *testing.T) {
	d := failingDeployment()
	d.Spec.Replicas = ptr(int32(3))
	d.Status.ObservedGeneration = 2
	third := podOf("new-2", "new", "demo:v2")
	third.Status.Conditions[1].Status = corev1.ConditionFalse
	cs := fake.NewClientset(d, setOf("new", true, 3, 2), podOf("new-0", "new", "demo:v2"), podOf("new-1", "new", "demo:v2"), third)
	conv := &convergence{cs: cs, log: zap.NewNop(), ns: "ns", deadline: 10 * time.Minute}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- conv.wait(ctx, d) }()
	select {
	case err := <-done:
		t.Fatalf("the wait ended (%v) with a pod not ready", err)
	case <-time.After(300 * time.Millisecond):
	}
	third = third.DeepCopy()
	third.Status.Conditions[1].Status = corev1.ConditionTrue
	if _, err := cs.CoreV1().Pods("ns").UpdateStatus(ctx, third, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("got %v, want the wait to end rolled out", err)
		}
	case <-time.After(recheck / 2):
		t.Fatal("the wait did not end on the pods")
	}
}
