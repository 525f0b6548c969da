//go:build integration

package kubernetes

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/stagecraft/stagecraft/internal/plan"
	"github.com/stagecraft/stagecraft/internal/platform"
)

// recorder is a transport that notes each request as "METHOD path", in
// the order they are sent, and which of them the server refused with a
// conflict.
type recorder struct {
	next      http.RoundTripper
	mu        sync.Mutex
	sent      []string
	conflicts map[int]bool
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	i := len(r.sent)
	r.sent = append(r.sent, req.Method+" "+req.URL.Path)
	r.mu.Unlock()
	resp, err := r.next.RoundTrip(req)
	if err == nil && resp.StatusCode == http.StatusConflict {
		r.mu.Lock()
		if r.conflicts == nil {
			r.conflicts = map[int]bool{}
		}
		r.conflicts[i] = true
		r.mu.Unlock()
	}
	return resp, err
}

// conflicted says whether request i was refused with a conflict.
func (r *recorder) conflicted(i int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.conflicts[i]
}

func (r *recorder) requests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.sent)
}

// recorded returns a Platform whose requests rec notes.
func (e *env) recorded() (*Platform, *recorder) {
	e.t.Helper()
	rec := &recorder{}
	return e.wrapped("recorded", func(rt http.RoundTripper) http.RoundTripper { rec.next = rt; return rec }), rec
}

// deploymentPath is the API path of the named Deployment of e's namespace.
func (e *env) deploymentPath(name string) string {
	return fmt.Sprintf("/apis/apps/v1/namespaces/%s/deployments/%s", e.ns, name)
}

// TestRollbackTakesTheFenceInItsFirstWrite: a rollback of a canary stage
// reads everything before it writes, its first write is the stable
// Deployment's (the snapshot and its fence in one update), and it deletes
// the canary as it read it, without reading it again: the canary is gone
// three round trips into the converge (read, the stable's update, the
// delete), where stamping each object first took seven.
func TestRollbackTakesTheFenceInItsFirstWrite(t *testing.T) {
	e := newEnv(t, nil, true)
	snap := e.snapshot()
	e.mustConverge(snap, canaryStage, fence(owner, 1))

	p, rec := e.recorded()
	if _, err := e.convergeAs(p, snap, rollbackOf(snap), fence(owner, 2)); err != nil {
		t.Fatal(err)
	}
	sent := rec.requests()
	t.Logf("requests:\n%s", strings.Join(sent, "\n"))
	// The stable Deployment's update that took: one that lost a race
	// with its controller's status write (a conflict) reads everything
	// again and tries again.
	stablePut := -1
	for i, r := range sent {
		if r == "PUT "+e.deploymentPath(target) && !rec.conflicted(i) {
			stablePut = i
			break
		}
	}
	canaryDelete := slices.Index(sent, "DELETE "+e.deploymentPath(canaryName(target)))
	if stablePut < 0 || canaryDelete < 0 {
		t.Fatalf("want the stable Deployment updated and the canary deleted; sent %d requests", len(sent))
	}
	for i, r := range sent[:stablePut] {
		if !strings.HasPrefix(r, "GET ") && !(r == "PUT "+e.deploymentPath(target) && rec.conflicted(i)) {
			t.Errorf("request %d, %q, is sent before the stable Deployment's update takes the fence", i, r)
		}
	}
	if canaryDelete < stablePut {
		t.Errorf("the canary is deleted (request %d) before the stable Deployment's update takes the fence (request %d)", canaryDelete, stablePut)
	}
	for i, r := range sent[stablePut:canaryDelete] {
		if strings.HasSuffix(r, "/deployments/"+canaryName(target)) {
			t.Errorf("request %d, %q: the canary is read or written again between the fence and its delete", stablePut+i, r)
		}
	}
	e.assertGone(canaryName(target))
	e.assertSnapshotState(snap, fence(owner, 2))
	e.waitReady(target, 4)
}

// TestRollbackRefusedChangesNothing: the Service holds a later attempt's
// fence while the stable Deployment does not (a user recreated it, say).
// The rollback is refused before it writes anything: the stable
// Deployment and the canary are as they were.
func TestRollbackRefusedChangesNothing(t *testing.T) {
	e := newEnv(t, nil, true)
	snap := e.snapshot()
	was := e.serviceFencedLater(snap)
	_, err := e.convergeAs(e.p, snap, rollbackOf(snap), fence(owner, 2))
	assertFenced(t, err)
	e.assertUnwritten("the refused rollback", was)
}

// TestRollbackReadsAgainAfterALostRace: someone edits the stable
// Deployment between the rollback's read and its write (here a user's
// scale, no fence). The write, conditioned on the read, fails; the
// rollback reads everything again and restores the snapshot over the edit.
func TestRollbackReadsAgainAfterALostRace(t *testing.T) {
	e := newEnv(t, nil, true)
	snap := e.snapshot()
	e.mustConverge(snap, canaryStage, fence(owner, 1))
	p := e.interleaved(func(req *http.Request) bool { return request(req, http.MethodPut, target) }, func() {
		if err := e.editDeployment(target, func(d *appsv1.Deployment) { d.Spec.Replicas = ptr(int32(7)) }); err != nil {
			t.Error(err)
		}
	})
	if _, err := e.convergeAs(p, snap, rollbackOf(snap), fence(owner, 2)); err != nil {
		t.Fatal(err)
	}
	e.assertGone(canaryName(target))
	e.assertSnapshotState(snap, fence(owner, 2))
	e.waitReady(target, 4)
}

// TestRollbackDeletesACanaryMadeAfterItsRead: the rollback reads no
// canary; before its write takes the target's fence, a stale attempt that
// passed its own fence checks creates one. The rollback looks for it again
// once it holds the fence, and deletes it.
func TestRollbackDeletesACanaryMadeAfterItsRead(t *testing.T) {
	e := newEnv(t, nil, true)
	snap := e.snapshot()
	p := e.interleaved(func(req *http.Request) bool { return request(req, http.MethodPut, target) }, func() {
		if err := e.createStaleCanary(snap); err != nil {
			t.Error(err)
		}
	})
	if _, err := e.convergeAs(p, snap, rollbackOf(snap), fence(owner, 2)); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.AppsV1().Deployments(e.ns).Get(e.ctx, canaryName(target), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the canary made after the rollback's read: want it deleted, got %v", err)
	}
	e.assertSnapshotState(snap, fence(owner, 2))
	e.waitReady(target, 4)
}

// converging is a convergence of e's spec towards d from snap, for
// building the objects a converge would write.
func (e *env) converging(snap platform.Snapshot, d plan.Desired) *convergence {
	e.t.Helper()
	orig, origSvc, err := decodeSnapshot(snap)
	if err != nil {
		e.t.Fatal(err)
	}
	ci, err := containerIndex(orig, e.spec.Platform.Kubernetes.Container)
	if err != nil {
		e.t.Fatal(err)
	}
	return &convergence{spec: e.spec, ns: e.ns, rollout: "r1a2b3", desired: d, orig: orig, origSvc: origSvc, ci: ci, deadline: time.Minute}
}

// TestRollbackDeletesACanaryReplacedAfterItsRead: between the rollback's
// read and its write, the canary it read is deleted and a stale attempt
// makes another of the same name. The rollback's delete of the one it
// read finds another UID; it looks again and deletes the new one.
func TestRollbackDeletesACanaryReplacedAfterItsRead(t *testing.T) {
	e := newEnv(t, nil, true)
	snap := e.snapshot()
	e.mustConverge(snap, canaryStage, fence(owner, 1))
	old := e.deployment(canaryName(target))
	p := e.interleaved(func(req *http.Request) bool { return request(req, http.MethodPut, target) }, func() {
		err := cs.AppsV1().Deployments(e.ns).Delete(e.ctx, old.Name, metav1.DeleteOptions{PropagationPolicy: ptr(metav1.DeletePropagationBackground)})
		if err != nil {
			t.Error(err)
		}
		if err := e.createStaleCanary(snap); err != nil {
			t.Error(err)
		}
	})
	if _, err := e.convergeAs(p, snap, rollbackOf(snap), fence(owner, 2)); err != nil {
		t.Fatal(err)
	}
	if c, err := cs.AppsV1().Deployments(e.ns).Get(e.ctx, canaryName(target), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the canary made after the rollback's read: want it deleted, got %v (old UID %s)", err, old.UID)
	} else if c != nil && c.UID != "" {
		t.Fatalf("canary %s left", c.UID)
	}
	e.assertSnapshotState(snap, fence(owner, 2))
	e.waitReady(target, 4)
}

// createStaleCanary creates the canary of snap's first stage as a stale
// attempt (step 1) whose fence checks passed would.
func (e *env) createStaleCanary(snap platform.Snapshot) error {
	c := e.converging(snap, canaryStage).canary()
	c.Annotations = withFence(c.Annotations, fence(owner, 1))
	_, err := cs.AppsV1().Deployments(e.ns).Create(e.ctx, c, metav1.CreateOptions{})
	return err
}

// editDeployment applies mutate to the named Deployment as it is now,
// again on a conflict.
func (e *env) editDeployment(name string, mutate func(*appsv1.Deployment)) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d := e.deployment(name)
		mutate(d)
		_, err := cs.AppsV1().Deployments(e.ns).Update(e.ctx, d, metav1.UpdateOptions{})
		return err
	})
}
