//go:build integration

package kubernetes

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/retry"

	"github.com/stagecraft/stagecraft/internal/plan"
	"github.com/stagecraft/stagecraft/internal/platform"
)

var (
	canaryStage = plan.Desired{New: 1, Old: 3, Traffic: plan.TrafficShared, Order: plan.Surge}
	nextStage   = plan.Desired{New: 2, Old: 2, Traffic: plan.TrafficShared, Order: plan.Surge}
)

func fence(o string, step int64) platform.Fence {
	return platform.Fence{Owner: o, Step: step, Until: time.Now().Add(time.Hour)}
}

func rollbackOf(snap platform.Snapshot) plan.Desired {
	return plan.Desired{New: 0, Old: snap.Count(), Traffic: plan.TrafficOld, Order: plan.Surge}
}

// convergeAs runs one converge attempt carrying f on p.
func (e *env) convergeAs(p *Platform, snap platform.Snapshot, d plan.Desired, f platform.Fence) (platform.ConvergeResult, error) {
	res, err := p.Converge(e.ctx, platform.ConvergeRequest{Spec: e.spec, Rollout: "r1a2b3", Snapshot: snap, Desired: d, Fence: f})
	e.t.Logf("converge %+v as %+v: %+v, %v", d, f, res, err)
	return res, err
}

// mustConverge is convergeAs on the env's own platform, failing on an error.
func (e *env) mustConverge(snap platform.Snapshot, d plan.Desired, f platform.Fence) {
	e.t.Helper()
	if _, err := e.convergeAs(e.p, snap, d, f); err != nil {
		e.t.Fatalf("converge %+v as %+v: %v", d, f, err)
	}
}

// assertFenced checks err is a refusal of the fence.
func assertFenced(t *testing.T, err error) {
	t.Helper()
	var fe *platform.FencedError
	if !errors.Is(err, platform.ErrFenced) || !errors.As(err, &fe) {
		t.Fatalf("stale attempt: want a *platform.FencedError, got %v", err)
	}
}

// assertNoCanary checks the rollout's canary Deployment is not there.
func (e *env) assertNoCanary() {
	e.t.Helper()
	_, err := cs.AppsV1().Deployments(e.ns).Get(e.ctx, canaryName(target), metav1.GetOptions{})
	if err == nil {
		e.t.Errorf("deployment %s exists: the stale attempt created it after the rollback deleted it", canaryName(target))
	} else if !apierrors.IsNotFound(err) {
		e.t.Fatal(err)
	}
}

// assertSnapshotState checks the stable Deployment and the Service are as
// the snapshot recorded them, the user's annotations included, with the
// fence of the attempt that restored them beside those (want; zero: none
// looked for).
func (e *env) assertSnapshotState(snap platform.Snapshot, want platform.Fence) {
	e.t.Helper()
	orig, origSvc, err := decodeSnapshot(snap)
	if err != nil {
		e.t.Fatal(err)
	}
	d := e.deployment(target)
	if img := d.Spec.Template.Spec.Containers[0].Image; img != imageV1 || *d.Spec.Replicas != *orig.Spec.Replicas {
		e.t.Errorf("stable deployment: image %s replicas %d, want the restored %s and %d", img, *d.Spec.Replicas, imageV1, *orig.Spec.Replicas)
	}
	if !equality.Semantic.DeepEqual(d.Spec.Template, orig.Spec.Template) {
		e.t.Errorf("template not restored:\n got %+v\nwant %+v", d.Spec.Template, orig.Spec.Template)
	}
	// The user's annotations: the fence is the converge's, the revision the
	// controller's.
	users := func(a map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range a {
			if k != AnnotationFence && k != revisionAnnotation {
				out[k] = v
			}
		}
		return out
	}
	if got, want := users(d.Annotations), users(orig.Annotations); !equality.Semantic.DeepEqual(d.Labels, orig.Labels) || !equality.Semantic.DeepEqual(got, want) {
		e.t.Errorf("metadata: labels %v annotations %v, want %v %v", d.Labels, got, orig.Labels, want)
	}
	svc := e.service()
	if !equality.Semantic.DeepEqual(svc.Spec.Selector, origSvc.Spec.Selector) {
		e.t.Errorf("service selector %v, want %v", svc.Spec.Selector, origSvc.Spec.Selector)
	}
	if want.Zero() {
		return
	}
	for what, a := range map[string]map[string]string{"deployment": d.Annotations, "service": svc.Annotations} {
		if got, err := fenceOf(a); err != nil || got.Owner != want.Owner || got.Step != want.Step {
			e.t.Errorf("%s fence %+v (%v), want %+v", what, got, err, want)
		}
	}
}

// interleave is a transport that, before the first request match picks,
// runs fn: another attempt gets in between a converge's read and its write.
type interleave struct {
	next  http.RoundTripper
	match func(*http.Request) bool
	once  sync.Once
	fn    func()
}

func (i *interleave) RoundTrip(req *http.Request) (*http.Response, error) {
	if i.match(req) {
		i.once.Do(i.fn)
	}
	return i.next.RoundTrip(req)
}

// interleaved returns a Platform whose first request match picks waits
// for fn.
func (e *env) interleaved(match func(*http.Request) bool, fn func()) *Platform {
	e.t.Helper()
	return e.wrapped("stale", func(rt http.RoundTripper) http.RoundTripper { return &interleave{next: rt, match: match, fn: fn} })
}

// wrapped returns a Platform, logging as name, whose requests go through
// the transport wrap makes.
func (e *env) wrapped(name string, wrap func(http.RoundTripper) http.RoundTripper) *Platform {
	e.t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		e.t.Fatal(err)
	}
	cfg.Wrap(wrap)
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return NewForClient(c, zaptest.NewLogger(e.t).Named(name))
}

// request says whether req is a method call on the deployments path (the
// collection when name is empty).
func request(req *http.Request, method, name string) bool {
	path := "/deployments"
	if name != "" {
		path += "/" + name
	}
	return req.Method == method && strings.HasPrefix(req.URL.Path, "/apis/apps/v1/") && strings.HasSuffix(req.URL.Path, path)
}

// TestZombieConvergeIsFenced: a canary stage's attempt (step 1) times out
// on the Temporal server but its worker lives on; the rollback (step 2)
// restores the target; then the zombie converges its stage again. It is
// refused and the target stays as restored: no canary Deployment, the
// snapshot's Service selector, image and replicas.
func TestZombieConvergeIsFenced(t *testing.T) {
	e := newEnv(t, nil, true)
	snap := e.snapshot()
	stale := fence(owner, 1)
	e.mustConverge(snap, canaryStage, stale)
	e.mustConverge(snap, rollbackOf(snap), fence(owner, 2))
	e.assertGone(canaryName(target))

	_, err := e.convergeAs(e.p, snap, canaryStage, stale)
	e.assertNoCanary()
	e.assertSnapshotState(snap, fence(owner, 2))
	assertFenced(t, err)
}

// TestFencedWriteAfterALaterAttemptWrote: the stale attempt has read the
// stable Deployment and is about to write it (its next stage scales the
// stable side down) when the rollback runs; its write, carrying what it
// read, is refused, and the target stays as the rollback left it.
func TestFencedWriteAfterALaterAttemptWrote(t *testing.T) {
	e := newEnv(t, nil, true)
	snap := e.snapshot()
	stale := fence(owner, 1)
	e.mustConverge(snap, canaryStage, stale)

	p := e.interleaved(func(req *http.Request) bool { return request(req, http.MethodPut, target) }, func() {
		e.mustConverge(snap, rollbackOf(snap), fence(owner, 2))
	})
	_, err := e.convergeAs(p, snap, nextStage, stale)
	e.assertNoCanary()
	e.assertSnapshotState(snap, fence(owner, 2))
	assertFenced(t, err)
	e.waitReady(target, 4)
}

// TestFencedCreateAfterALaterAttemptWrote: the stale attempt (a first
// canary stage) has found no canary and is about to create it when the
// rollback runs and finds nothing to delete; the canary it creates is
// taken away again and the attempt refused.
func TestFencedCreateAfterALaterAttemptWrote(t *testing.T) {
	e := newEnv(t, nil, true)
	snap := e.snapshot()
	p := e.interleaved(func(req *http.Request) bool { return request(req, http.MethodPost, "") }, func() {
		e.mustConverge(snap, rollbackOf(snap), fence(owner, 2))
	})
	_, err := e.convergeAs(p, snap, canaryStage, fence(owner, 1))
	e.assertNoCanary() // deleted with background propagation: the object goes at once
	e.assertSnapshotState(snap, fence(owner, 2))
	assertFenced(t, err)
	e.waitReady(target, 4)
}

// TestFencedCreateRunsNoPodsUntilChecked: the stale attempt freezes right
// after creating the canary, before it checks the target's fence again.
// Meanwhile the canary runs no pods, and the rollback that runs then takes
// it away; the stale attempt, resumed, is refused.
func TestFencedCreateRunsNoPodsUntilChecked(t *testing.T) {
	e := newEnv(t, nil, true)
	snap := e.snapshot()
	var created bool
	p := e.interleaved(func(req *http.Request) bool {
		if request(req, http.MethodPost, "") {
			created = true
		}
		return created && request(req, http.MethodGet, target)
	}, func() {
		c := e.deployment(canaryName(target))
		if !c.Spec.Paused {
			t.Errorf("the canary created by an attempt not yet checked again is not paused: its controller makes its pods")
		}
		e.mustConverge(snap, rollbackOf(snap), fence(owner, 2))
	})
	_, err := e.convergeAs(p, snap, canaryStage, fence(owner, 1))
	e.assertNoCanary()
	e.assertSnapshotState(snap, fence(owner, 2))
	assertFenced(t, err)
	e.waitReady(target, 4)
}

// TestFencedResumeAfterALaterAttemptWrote: a stale attempt has created the
// canary paused and checked the target's fence again when a later attempt
// converges the same stage, writing its fence on the canary and resuming
// it. The stale attempt's resume (a patch testing its own fence on the
// canary) changes nothing, and the stale attempt is refused.
func TestFencedResumeAfterALaterAttemptWrote(t *testing.T) {
	e := newEnv(t, nil, true)
	snap := e.snapshot()
	p := e.interleaved(func(req *http.Request) bool { return request(req, http.MethodPatch, canaryName(target)) }, func() {
		e.mustConverge(snap, canaryStage, fence(owner, 2))
	})
	_, err := e.convergeAs(p, snap, canaryStage, fence(owner, 1))
	assertFenced(t, err)
	c := e.deployment(canaryName(target))
	if got, err := fenceOf(c.Annotations); err != nil || got.Step != 2 {
		t.Errorf("canary fence %+v (%v), want the later attempt's (step 2)", got, err)
	}
	e.waitReady(canaryName(target), 1)
}

// TestFencedResumeOfACanaryALaterAttemptHolds: as above, but the later
// attempt has only written its fence on the canary, still paused (it is
// about to converge it, or froze). The stale attempt's resume must not
// start its pods: it is refused and the canary stays paused.
func TestFencedResumeOfACanaryALaterAttemptHolds(t *testing.T) {
	e := newEnv(t, nil, true)
	snap := e.snapshot()
	p := e.interleaved(func(req *http.Request) bool { return request(req, http.MethodPatch, canaryName(target)) }, func() {
		later := fence(owner, 2)
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			c := e.deployment(canaryName(target))
			if !c.Spec.Paused {
				t.Errorf("the canary before its resume is not paused")
			}
			c.Annotations = withFence(c.Annotations, later)
			_, err := cs.AppsV1().Deployments(e.ns).Update(e.ctx, c, metav1.UpdateOptions{})
			return err
		})
		if err != nil {
			t.Error(err)
		}
	})
	_, err := e.convergeAs(p, snap, canaryStage, fence(owner, 1))
	assertFenced(t, err)
	c := e.deployment(canaryName(target))
	if !c.Spec.Paused {
		t.Errorf("the stale attempt resumed the canary a later attempt holds")
	}
	if got, err := fenceOf(c.Annotations); err != nil || got.Step != 2 {
		t.Errorf("canary fence %+v (%v), want the later attempt's (step 2)", got, err)
	}
}

// TestFencedDeleteAfterALaterAttemptWrote: a stale rollback attempt has
// read the canary and is about to delete it when a later attempt converges
// a stage with it; the delete, conditioned on what it read, is refused and
// the later attempt's canary stays.
func TestFencedDeleteAfterALaterAttemptWrote(t *testing.T) {
	e := newEnv(t, nil, true)
	snap := e.snapshot()
	e.mustConverge(snap, canaryStage, fence(owner, 1))

	p := e.interleaved(func(req *http.Request) bool { return request(req, http.MethodDelete, canaryName(target)) }, func() {
		e.mustConverge(snap, nextStage, fence(owner, 3))
	})
	_, err := e.convergeAs(p, snap, rollbackOf(snap), fence(owner, 2))
	c, gerr := cs.AppsV1().Deployments(e.ns).Get(e.ctx, canaryName(target), metav1.GetOptions{})
	if gerr != nil {
		t.Fatalf("the later attempt's canary: %v", gerr)
	}
	if *c.Spec.Replicas != 2 || *e.deployment(target).Spec.Replicas != 2 {
		t.Errorf("canary %d stable %d replicas, want the later stage's 2 and 2", *c.Spec.Replicas, *e.deployment(target).Spec.Replicas)
	}
	assertFenced(t, err)
}

// TestConvergeRefusedChangesNothing: the Service holds a later attempt's
// fence while the stable Deployment and the canary do not. The next stage
// is refused before it writes anything, its fence included: a converge
// judges every object's fence from one read before its first write.
func TestConvergeRefusedChangesNothing(t *testing.T) {
	e := newEnv(t, nil, true)
	snap := e.snapshot()
	was := e.serviceFencedLater(snap)
	_, err := e.convergeAs(e.p, snap, nextStage, fence(owner, 2))
	assertFenced(t, err)
	e.assertUnwritten("the refused converge", was)
}

// serviceFencedLater converges the canary stage as step 1 and then puts
// step 3's fence on the Service alone (a user recreated the Deployment, say),
// and returns the stable Deployment and the canary as they are then.
func (e *env) serviceFencedLater(snap platform.Snapshot) []*appsv1.Deployment {
	e.t.Helper()
	e.mustConverge(snap, canaryStage, fence(owner, 1))
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		s := e.service()
		s.Annotations = withFence(s.Annotations, fence(owner, 3))
		_, err := cs.CoreV1().Services(e.ns).Update(e.ctx, s, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return []*appsv1.Deployment{e.deployment(target), e.deployment(canaryName(target))}
}

// assertUnwritten checks each Deployment of was is the same object with
// the same generation and fence: who (a refused converge) wrote none.
func (e *env) assertUnwritten(who string, was []*appsv1.Deployment) {
	e.t.Helper()
	for _, w := range was {
		got := e.deployment(w.Name)
		if got.UID != w.UID || got.Generation != w.Generation || got.Annotations[AnnotationFence] != w.Annotations[AnnotationFence] {
			e.t.Errorf("%s wrote Deployment %s: generation %d → %d, fence %s → %s", who, w.Name,
				w.Generation, got.Generation, w.Annotations[AnnotationFence], got.Annotations[AnnotationFence])
		}
	}
}

// TestConvergeStampsWhatItRead: a converge reads the stable Deployment,
// the canary, green and the Service side by side, and stamps its fence on
// each as read: the stable Deployment first, then the others, each with
// no second read of its own (a Get and an Update each, one after the
// other, took four round trips before the first write of the stage).
func TestConvergeStampsWhatItRead(t *testing.T) {
	e := newEnv(t, nil, true)
	snap := e.snapshot()
	e.mustConverge(snap, canaryStage, fence(owner, 1))

	p, rec := e.recorded()
	f := fence(owner, 2)
	if _, err := e.convergeAs(p, snap, nextStage, f); err != nil {
		t.Fatal(err)
	}
	sent := rec.requests()
	t.Logf("requests:\n%s", strings.Join(sent, "\n"))
	first := slices.IndexFunc(sent, func(r string) bool { return !strings.HasPrefix(r, "GET ") })
	if first < 0 || sent[first] != "PUT "+e.deploymentPath(target) {
		t.Fatalf("want the stable Deployment's update (its fence) first of the writes; sent %d requests, the first write %d", len(sent), first)
	}
	for _, want := range []string{e.deploymentPath(target), e.deploymentPath(canaryName(target)), e.deploymentPath(greenName(target)),
		fmt.Sprintf("/api/v1/namespaces/%s/services/%s", e.ns, target)} {
		if !slices.Contains(sent[:first], "GET "+want) {
			t.Errorf("%s is not read before the first write", want)
		}
	}
	canaryPut := slices.Index(sent, "PUT "+e.deploymentPath(canaryName(target)))
	if canaryPut < 0 {
		t.Fatalf("the canary's fence is not written")
	}
	if slices.Contains(sent[first:canaryPut], "GET "+e.deploymentPath(canaryName(target))) {
		t.Errorf("the canary is read again before its fence is written")
	}
	if got := e.deployment(canaryName(target)).Annotations[AnnotationFence]; got != encodeFence(f) {
		t.Errorf("canary fence %s", got)
	}
}

// TestFenceLease: another owner (another Temporal namespace, or a rollout
// under another workflow ID) is refused while the holder's attempt may
// still write, and admitted once its lease has ended; the old holder's
// attempt, past its own lease, is refused in turn.
func TestFenceLease(t *testing.T) {
	e := newEnv(t, nil, true)
	snap := e.snapshot()
	e.mustConverge(snap, canaryStage, fence(owner, 1))
	a := platform.Fence{Owner: owner, Step: 2, Until: time.Now().Add(3 * time.Second)}
	e.mustConverge(snap, canaryStage, a) // a retry, done at once; its lease ends soon

	b := fence("other/deploy:kubernetes:web", 1)
	_, err := e.convergeAs(e.p, snap, nextStage, b)
	var fe *platform.FencedError
	if !errors.As(err, &fe) || fe.Held.Owner != owner || !fe.Held.Until.Equal(a.Until) {
		t.Fatalf("another owner during the lease: want a *FencedError naming %s until %s, got %v", owner, a.Until, err)
	}
	if n := *e.deployment(canaryName(target)).Spec.Replicas; n != 1 {
		t.Fatalf("the refused owner changed the canary to %d replicas", n)
	}

	time.Sleep(time.Until(a.Until))
	e.mustConverge(snap, nextStage, b)
	if n := *e.deployment(canaryName(target)).Spec.Replicas; n != 2 {
		t.Fatalf("canary %d replicas after the lease, want 2", n)
	}
	if f, _ := fenceOf(e.deployment(target).Annotations); f.Owner != b.Owner {
		t.Fatalf("fence %+v, want %s's", f, b.Owner)
	}

	_, err = e.convergeAs(e.p, snap, rollbackOf(snap), a)
	if !errors.Is(err, platform.ErrFenced) {
		t.Fatalf("the old holder past its lease: want ErrFenced, got %v", err)
	}
	if n := *e.deployment(canaryName(target)).Spec.Replicas; n != 2 {
		t.Fatalf("the old holder changed the canary to %d replicas", n)
	}
}
