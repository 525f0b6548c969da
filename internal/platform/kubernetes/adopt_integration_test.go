//go:build integration

package kubernetes

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/retry"

	"github.com/stagecraft/stagecraft/internal/plan"
	"github.com/stagecraft/stagecraft/internal/platform"
)

// newPodStarts counts the pods of image created in e's namespace from now
// on, by watching them.
type newPodStarts struct {
	mu   sync.Mutex
	uids map[string]bool
}

func (e *env) countPodStarts(image string) *newPodStarts {
	e.t.Helper()
	list, err := cs.CoreV1().Pods(e.ns).List(e.ctx, metav1.ListOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	w, err := cs.CoreV1().Pods(e.ns).Watch(e.ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(w.Stop)
	n := &newPodStarts{uids: map[string]bool{}}
	go func() {
		for ev := range w.ResultChan() {
			if p, ok := ev.Object.(*corev1.Pod); ok && ev.Type == watch.Added && p.Spec.Containers[0].Image == image {
				n.mu.Lock()
				n.uids[string(p.UID)] = true
				n.mu.Unlock()
			}
		}
	}()
	return n
}

func (n *newPodStarts) count() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.uids)
}

// assertHandedOver checks the end state of a canary the stable Deployment
// took over: the stable Deployment as the user wrote it but for the image,
// its pods all new and in one ReplicaSet, the canary's, now its own; no
// canary Deployment; no mark of the handover.
func (e *env) assertHandedOver(snap platform.Snapshot, n int32) {
	e.t.Helper()
	orig, _, err := decodeSnapshot(snap)
	if err != nil {
		e.t.Fatal(err)
	}
	e.assertGone(canaryName(target))
	e.waitReady(target, n)
	d := e.deployment(target)
	if d.Spec.Paused != orig.Spec.Paused || !equality.Semantic.DeepEqual(d.Spec.Strategy, orig.Spec.Strategy) {
		e.t.Errorf("stable paused=%v strategy %+v, want the snapshot's paused=%v %+v", d.Spec.Paused, d.Spec.Strategy, orig.Spec.Paused, orig.Spec.Strategy)
	}
	if _, ok := d.Annotations[AnnotationHandover]; ok {
		e.t.Errorf("stable keeps the handover mark: %v", d.Annotations)
	}
	if img := d.Spec.Template.Spec.Containers[0].Image; img != imageV2 {
		e.t.Errorf("stable image %s, want %s", img, imageV2)
	}
	rss, err := cs.AppsV1().ReplicaSets(e.ns).List(e.ctx, metav1.ListOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	var serving []string
	for _, rs := range rss.Items {
		if !metav1.IsControlledBy(&rs, d) {
			e.t.Errorf("replicaset %s is not the stable deployment's (controller %v)", rs.Name, metav1.GetControllerOf(&rs))
		}
		if *rs.Spec.Replicas > 0 {
			serving = append(serving, rs.Name)
		}
	}
	if len(serving) != 1 || !strings.HasPrefix(serving[0], canaryName(target)+"-") {
		e.t.Errorf("replicasets with pods %v, want the canary's alone", serving)
	}
}

// stepsOf are the shared-traffic stages of a canary of n replicas
// through the given percentages, the last one 100.
func stepsOf(n int, percents ...int) []plan.Desired {
	var out []plan.Desired
	for _, p := range percents {
		k := max(1, (n*p+99)/100)
		out = append(out, plan.Desired{New: k, Old: n - k, Traffic: plan.TrafficShared, Order: plan.Surge})
	}
	return out
}

// TestCanaryPodsStartOnce: a canary of N replicas starts N new-version
// pods, not N plus the canary's: at the last step the stable Deployment
// takes the canary's ReplicaSet over, and what is left is the user's plain
// Deployment (its own strategy, not paused, no mark) with that ReplicaSet
// as its own. The final state and a rerun change nothing; a rollback
// afterwards still brings the old version back.
func TestCanaryPodsStartOnce(t *testing.T) {
	for _, tc := range []struct {
		name     string
		n        int
		percents []int
		mutate   func(*appsv1.Deployment)
		fenced   bool
	}{
		{"n4", 4, []int{25, 50, 100}, nil, false},
		{"n20", 20, []int{5, 25, 50, 100}, func(d *appsv1.Deployment) { d.Spec.Replicas = ptr(int32(20)) }, false},
		{"n4-recreate", 4, []int{25, 50, 100}, func(d *appsv1.Deployment) {
			d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
		}, false},
		{"n4-surge-zero", 4, []int{25, 50, 100}, func(d *appsv1.Deployment) {
			d.Spec.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{MaxSurge: ptr(intstr.FromInt32(0)), MaxUnavailable: ptr(intstr.FromInt32(1))}
		}, false},
		// As the Converge activity calls it: each stage fenced anew, so its
		// first write (the fence, an annotation) moves the stable
		// Deployment's generation just before the handover judges it.
		{"n20-fenced", 20, []int{5, 25, 50, 100}, func(d *appsv1.Deployment) { d.Spec.Replicas = ptr(int32(20)) }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.mutate, false)
			e.waitReady(target, int32(tc.n))
			snap := e.snapshot()
			starts := e.countPodStarts(imageV2)
			for i, d := range stepsOf(tc.n, tc.percents...) {
				if !tc.fenced {
					counts(t, e.converge(snap, d), d.New, d.Old)
					continue
				}
				fence := platform.Fence{Owner: "default/deploy:kubernetes:" + e.ns + "/" + target, Step: int64(i + 1), Until: time.Now().Add(time.Hour)}
				res, err := e.p.Converge(e.ctx, platform.ConvergeRequest{Spec: e.spec, Rollout: "r1a2b3", Snapshot: snap, Desired: d, Fence: fence})
				if err != nil {
					t.Fatalf("Converge %+v: %v", d, err)
				}
				counts(t, res, d.New, d.Old)
			}
			e.assertHandedOver(snap, int32(tc.n))
			if got := starts.count(); got != tc.n {
				t.Errorf("new-version pods started: %d, want %d", got, tc.n)
			}
			final := plan.Desired{New: tc.n, Old: 0, Traffic: plan.TrafficNew, Order: plan.Surge}
			if res := e.converge(snap, final); res.Changed() {
				t.Errorf("the final state after the handover changed %+v", res)
			}
			counts(t, e.converge(snap, plan.Desired{New: 0, Old: tc.n, Traffic: plan.TrafficOld, Order: plan.Surge}), 0, tc.n)
			orig, _, _ := decodeSnapshot(snap)
			e.waitReady(target, int32(tc.n))
			if d := e.deployment(target); !equality.Semantic.DeepEqual(d.Spec.Template, orig.Spec.Template) {
				t.Errorf("rolled back to template %+v, want the snapshot's", d.Spec.Template)
			}
		})
	}
}

// crash is a transport that, from the first request match accepts on,
// sends nothing and cancels the converge: a worker dying there.
type crash struct {
	next    http.RoundTripper
	match   func(*http.Request) bool
	cancel  context.CancelFunc
	mu      sync.Mutex
	crashed bool
}

func (c *crash) RoundTrip(req *http.Request) (*http.Response, error) {
	c.mu.Lock()
	if !c.crashed && c.match(req) {
		c.crashed = true
		c.cancel()
	}
	crashed := c.crashed
	c.mu.Unlock()
	if crashed {
		return nil, errors.New("the worker died")
	}
	return c.next.RoundTrip(req)
}

// convergeCrashing runs a converge that dies at the first request match
// accepts, and fails the test if it got past that point.
func (e *env) convergeCrashing(snap platform.Snapshot, d plan.Desired, match func(*http.Request) bool) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		e.t.Fatal(err)
	}
	tr := &crash{match: match, cancel: cancel}
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { tr.next = rt; return tr })
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	_, err = NewForClient(c, zaptest.NewLogger(e.t).Named("dying")).Converge(ctx, platform.ConvergeRequest{Spec: e.spec, Rollout: "r1a2b3", Snapshot: snap, Desired: d})
	if !tr.crashed || err == nil {
		e.t.Fatalf("the converge did not reach the crash point (err %v)", err)
	}
}

// counting is a transport that counts the requests match accepts.
type counting struct {
	next  http.RoundTripper
	match func(*http.Request) bool
	mu    sync.Mutex
	n     int
}

func (c *counting) RoundTrip(req *http.Request) (*http.Response, error) {
	if c.match(req) {
		c.mu.Lock()
		c.n++
		c.mu.Unlock()
	}
	return c.next.RoundTrip(req)
}

// convergeCounting runs a converge to d and returns how many of its
// requests match accepts.
func (e *env) convergeCounting(snap platform.Snapshot, d plan.Desired, match func(*http.Request) bool) int {
	e.t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		e.t.Fatal(err)
	}
	tr := &counting{match: match}
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { tr.next = rt; return tr })
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	res, err := NewForClient(c, zaptest.NewLogger(e.t)).Converge(e.ctx, platform.ConvergeRequest{Spec: e.spec, Rollout: "r1a2b3", Snapshot: snap, Desired: d})
	if err != nil {
		e.t.Fatalf("Converge %+v: %v", d, err)
	}
	counts(e.t, res, d.New, d.Old)
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.n
}

// TestHandoverResumesInOneWrite: when the Deployment's own strategy lets
// its controller add no pod once it holds the canary's ReplicaSet beside
// the old one (4 replicas, maxSurge 25%: 1, the old ReplicaSet's one pod
// left), the handover gives the stable Deployment New replicas and its
// strategy back in one write: three updates in the last step (the shrink
// behind the canary's growth to 3, the pause, the resume), where a
// maxSurge of 0 (the controller would take a pod away) needs the paused
// write of New replicas waited for first: four. Either way no pod of the
// old version is added, each new pod starts once, and the Deployment ends
// as the user's own.
func TestHandoverResumesInOneWrite(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*appsv1.Deployment)
		writes int
	}{
		{"default-strategy", nil, 3},
		{"surge-zero", func(d *appsv1.Deployment) {
			d.Spec.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{MaxSurge: ptr(intstr.FromInt32(0)), MaxUnavailable: ptr(intstr.FromInt32(1))}
		}, 4},
		{"recreate", func(d *appsv1.Deployment) {
			d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
		}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.mutate, true)
			snap := e.snapshot()
			steps := stepsOf(4, 25, 50, 100)
			e.converge(snap, steps[0])
			e.converge(snap, steps[1])
			starts := e.countPodStarts(imageV2)
			olds := e.countPodStarts(imageV1)
			puts := e.convergeCounting(snap, steps[2], func(req *http.Request) bool { return request(req, http.MethodPut, target) })
			if puts != tc.writes {
				t.Errorf("the last step updated the stable deployment %d times, want %d", puts, tc.writes)
			}
			e.assertHandedOver(snap, 4)
			if got := starts.count(); got != 2 {
				t.Errorf("new-version pods started in the last step: %d, want 2", got)
			}
			if got := olds.count(); got != 0 {
				t.Errorf("old-version pods started in the last step: %d, want 0", got)
			}
		})
	}
}

// nthWrite matches the nth update (PUT) of the stable Deployment, or the
// canary's delete.
func nthWrite(n int) func(*http.Request) bool {
	seen := 0
	return func(req *http.Request) bool {
		if request(req, http.MethodPut, target) {
			seen++
			return seen == n
		}
		return false
	}
}

// TestHandoverResumes: a worker dies at each step of the handover; the
// retried converge finishes it with no more new pods started, and a
// rollback from the point it died restores the snapshot.
func TestHandoverResumes(t *testing.T) {
	surgeZero := func(d *appsv1.Deployment) {
		d.Spec.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{MaxSurge: ptr(intstr.FromInt32(0)), MaxUnavailable: ptr(intstr.FromInt32(1))}
	}
	for _, tc := range []struct {
		name   string
		mutate func(*appsv1.Deployment)
		match  func() func(*http.Request) bool
	}{
		{"before-the-canary-goes", nil, func() func(*http.Request) bool {
			return func(req *http.Request) bool { return request(req, http.MethodDelete, canaryName(target)) }
		}},
		// The stable Deployment's updates in the last step of 2+2: shrunk
		// to 1 behind the canary's growth to 3, paused (the mark), then
		// New replicas resumed in one write (settleHandover).
		{"before-the-pause", nil, func() func(*http.Request) bool { return nthWrite(2) }},
		{"after-the-adoption", nil, func() func(*http.Request) bool { return nthWrite(3) }},
		// With maxSurge 0: New replicas paused, waited for, then resumed.
		{"surge-zero/after-the-adoption", surgeZero, func() func(*http.Request) bool { return nthWrite(3) }},
		{"surge-zero/before-the-strategy-is-back", surgeZero, func() func(*http.Request) bool { return nthWrite(4) }},
	} {
		for _, then := range []string{"retry", "rollback"} {
			t.Run(tc.name+"/"+then, func(t *testing.T) {
				e := newEnv(t, tc.mutate, true)
				snap := e.snapshot()
				starts := e.countPodStarts(imageV2)
				steps := stepsOf(4, 25, 50, 100)
				e.converge(snap, steps[0])
				e.converge(snap, steps[1])
				e.convergeCrashing(snap, steps[2], tc.match())
				if then == "retry" {
					counts(t, e.converge(snap, steps[2]), 4, 0)
					e.assertHandedOver(snap, 4)
					if got := starts.count(); got != 4 {
						t.Errorf("new-version pods started: %d, want 4", got)
					}
					return
				}
				counts(t, e.converge(snap, plan.Desired{New: 0, Old: 4, Traffic: plan.TrafficOld, Order: plan.Surge}), 0, 4)
				e.assertGone(canaryName(target))
				e.waitReady(target, 4)
				d := e.deployment(target)
				if _, ok := d.Annotations[AnnotationHandover]; ok || d.Spec.Paused {
					t.Errorf("rolled back stable paused=%v annotations %v", d.Spec.Paused, d.Annotations)
				}
				if img := d.Spec.Template.Spec.Containers[0].Image; img != imageV1 {
					t.Errorf("rolled back to %s", img)
				}
				if got := e.servedImages(); !slices.Equal(got, repeat(4, imageV1)) {
					t.Errorf("service serves %v", got)
				}
			})
		}
	}
}

// TestCanaryBackToAnEarlierRevision: the stable Deployment's revision
// history holds a ReplicaSet of the canary's template (it ran that version
// before). Its controller would take that oldest one as its new ReplicaSet
// and start every new pod again; with the Role of
// deployments/kubernetes/rbac.yaml the handover deletes it first, and each
// new pod still starts once. A Role without replicasets delete gets the
// stable Deployment rolling itself: more pod starts, the same end state.
func TestCanaryBackToAnEarlierRevision(t *testing.T) {
	for _, tc := range []struct {
		name   string
		delete bool
		starts int
	}{{"with-the-role", true, 4}, {"without-replicasets-delete", false, 6}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil, true)
			// v2, then v1 again, by hand: v2's ReplicaSet stays in history.
			for _, img := range []string{imageV2, imageV1} {
				d := e.deployment(target)
				d.Spec.Template.Spec.Containers[0].Image = img
				if _, err := cs.AppsV1().Deployments(e.ns).Update(e.ctx, d, metav1.UpdateOptions{}); err != nil {
					t.Fatal(err)
				}
				eventually(t, e.ctx, "rolled to "+img, func() (bool, error) {
					d, err := cs.AppsV1().Deployments(e.ns).Get(e.ctx, target, metav1.GetOptions{})
					if err != nil {
						return false, err
					}
					done, err := rolledOut(d, d.Generation)
					return done, err
				})
			}
			worker := workerClient(t, e.ns)
			if !tc.delete {
				role, err := cs.RbacV1().Roles(e.ns).Get(e.ctx, "stagecraft-rollouts", metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				for i, r := range role.Rules {
					if slices.Contains(r.Resources, "replicasets") {
						role.Rules[i].Verbs = slices.DeleteFunc(r.Verbs, func(v string) bool { return v == "delete" })
					}
				}
				if _, err := cs.RbacV1().Roles(e.ns).Update(e.ctx, role, metav1.UpdateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			e.p = NewForClient(worker, zaptest.NewLogger(t))
			snap := e.snapshot()
			starts := e.countPodStarts(imageV2)
			for _, d := range stepsOf(4, 25, 50, 100) {
				counts(t, e.converge(snap, d), d.New, d.Old)
			}
			e.assertGone(canaryName(target))
			e.waitReady(target, 4)
			if got := e.servedImages(); !slices.Equal(got, repeat(4, imageV2)) {
				t.Errorf("service serves %v", got)
			}
			if tc.delete {
				e.assertHandedOver(snap, 4)
			}
			if got := starts.count(); got != tc.starts {
				t.Errorf("new-version pods started: %d, want %d", got, tc.starts)
			}
		})
	}
}

// TestHandoverWithinTheDeploymentsSurge: the last step grows the canary in
// steps of the Deployment's own maxSurge (25% of 8: 2), the stable
// Deployment shrinking behind it, so a namespace whose pod quota leaves
// room for the Deployment's rolling update (8 + 2, here 12) is enough:
// growing the canary to 8 beside the 7 old pods at once would need 15.
func TestHandoverWithinTheDeploymentsSurge(t *testing.T) {
	e := newEnv(t, func(d *appsv1.Deployment) { d.Spec.Replicas = ptr(int32(8)) }, false)
	e.waitReady(target, 8)
	_, err := cs.CoreV1().ResourceQuotas(e.ns).Create(e.ctx, &corev1.ResourceQuota{
		ObjectMeta: metav1.ObjectMeta{Name: "pods"},
		Spec:       corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("12")}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	snap := e.snapshot()
	starts := e.countPodStarts(imageV2)
	counts(t, e.converge(snap, plan.Desired{New: 1, Old: 7, Traffic: plan.TrafficShared, Order: plan.Surge}), 1, 7)
	counts(t, e.converge(snap, plan.Desired{New: 8, Old: 0, Traffic: plan.TrafficShared, Order: plan.Surge}), 8, 0)
	e.assertHandedOver(snap, 8)
	if got := starts.count(); got != 8 {
		t.Errorf("new-version pods started: %d, want 8", got)
	}
}

// TestNoHandoverOfADeploymentRollingItself: someone else starts rolling
// the stable Deployment during the canary (a restart whose pods cannot be
// scheduled, so it stays half done). Paused with two ReplicaSets of pods,
// its controller would scale them proportionally (old pods added, the
// canary's resized), so the last step does not hand over: the stable
// Deployment rolls itself to the new version, as before the handover, and
// ends as the user's own.
func TestNoHandoverOfADeploymentRollingItself(t *testing.T) {
	e := newEnv(t, nil, true)
	snap := e.snapshot()
	e.converge(snap, plan.Desired{New: 2, Old: 2, Traffic: plan.TrafficShared, Order: plan.Surge})
	var d *appsv1.Deployment
	// The restart, as kubectl makes it: read, change, write, again when
	// the controller's status write came between.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d = e.deployment(target)
		d.Spec.Template.Annotations = map[string]string{"kubectl.kubernetes.io/restartedAt": "2026-12-03T00:00:00Z"}
		d.Spec.Template.Spec.NodeSelector = map[string]string{"stagecraft.test/nowhere": "true"}
		var err error
		d, err = cs.AppsV1().Deployments(e.ns).Update(e.ctx, d, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, e.ctx, "the restart half done", func() (bool, error) {
		rss, err := cs.AppsV1().ReplicaSets(e.ns).List(e.ctx, metav1.ListOptions{})
		n := 0
		for _, rs := range rss.Items {
			if metav1.IsControlledBy(&rs, d) && *rs.Spec.Replicas > 0 {
				n++
			}
		}
		return n == 2, err
	})
	w, err := cs.AppsV1().Deployments(e.ns).Watch(e.ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + target, ResourceVersion: d.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	paused := make(chan bool, 1)
	go func() {
		seen := false
		for ev := range w.ResultChan() {
			if d, ok := ev.Object.(*appsv1.Deployment); ok && d.Spec.Paused {
				seen = true
			}
		}
		paused <- seen
	}()
	counts(t, e.converge(snap, plan.Desired{New: 4, Old: 0, Traffic: plan.TrafficShared, Order: plan.Surge}), 4, 0)
	w.Stop()
	if <-paused {
		t.Errorf("the stable Deployment was paused for a handover while it rolled itself")
	}
	e.assertGone(canaryName(target))
	e.waitReady(target, 4)
	got := e.deployment(target)
	if _, ok := got.Annotations[AnnotationHandover]; ok || got.Spec.Paused {
		t.Errorf("stable paused=%v annotations %v", got.Spec.Paused, got.Annotations)
	}
	if img := got.Spec.Template.Spec.Containers[0].Image; img != imageV2 {
		t.Errorf("stable image %s", img)
	}
}

// TestSecondHandoverWithNoRevisionHistory: after one handover the stable
// Deployment's ReplicaSet is named after the canary; with
// revisionHistoryLimit 0 the next handover scales it down and its
// controller deletes it while its (old-version) pods still terminate. They
// are not the new canary's leftovers: the converge does not wait for them.
func TestSecondHandoverWithNoRevisionHistory(t *testing.T) {
	e := newEnv(t, func(d *appsv1.Deployment) { d.Spec.RevisionHistoryLimit = ptr(int32(0)) }, true)
	snap := e.snapshot()
	for _, d := range stepsOf(4, 50, 100) {
		e.converge(snap, d)
	}
	e.assertHandedOver(snap, 4)
	pods, err := cs.CoreV1().Pods(e.ns).List(e.ctx, metav1.ListOptions{})
	if err != nil || len(pods.Items) == 0 {
		t.Fatalf("pods: %v", err)
	}
	held := pods.Items[0].Name
	const finalizer = "stagecraft.test/hold"
	patch := []byte(`{"metadata":{"finalizers":["` + finalizer + `"]}}`)
	if _, err := cs.CoreV1().Pods(e.ns).Patch(e.ctx, held, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = cs.CoreV1().Pods(e.ns).Patch(context.Background(), held, types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{})
	})

	e.spec.Image = imageV1
	snap2 := e.snapshot()
	ctx, cancel := context.WithTimeout(e.ctx, 20*time.Second)
	defer cancel()
	for _, d := range stepsOf(4, 50, 100) {
		if _, err := e.p.Converge(ctx, platform.ConvergeRequest{Spec: e.spec, Rollout: "r2", Snapshot: snap2, Desired: d}); err != nil {
			t.Fatalf("converge %+v: %v", d, err)
		}
	}
}
