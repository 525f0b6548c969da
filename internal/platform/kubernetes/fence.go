package kubernetes

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"

	"github.com/stagecraft/stagecraft/internal/platform"
)

// AnnotationFence holds, as JSON, the platform.Fence of the last converge
// attempt that wrote an object of a target.
//
// The fence lives on every object a converge changes: the stable (user's)
// Deployment, which is the target's fence, and copies of it on the Service
// and the rollout's canary and green Deployments. A converge first reads
// them all and judges their fences, then writes its fence on each of them
// that exists, as read, the stable Deployment first (acquire), then
// conditions every
// call on the fence of the object it calls on, read in the same read as
// the rest of the object: an update carries that read's resourceVersion,
// a delete has it as a precondition. A rollback, which changes each object
// once, reads them all first and judges their fences, writes the stable
// Deployment (snapshot and fence in one update), and then makes each other
// object's one change under the same conditions (restore.go): the fence
// written with it, or the object deleted. So once a later attempt has written
// its fence on an object, an older attempt's write of it fails with a
// conflict, re-reads, and is refused; and what an older attempt wrote
// before that, the later attempt's converge reads and converges over.
// A create has nothing to carry a precondition on: the target's fence is
// checked before it and again after, a create a later attempt fenced
// meanwhile is deleted again, and the created Deployment gets its replicas
// only after that second check (see createFenced).
const AnnotationFence = "stagecraft.io/fence"

// fenceBackoff paces re-reads after a conflict on a fenced delete: the
// Deployment controller writes the status of a Deployment whose pods come
// and go, which moves its resourceVersion.
var fenceBackoff = retry.DefaultBackoff

// encodeFence is the annotation value of f.
func encodeFence(f platform.Fence) string {
	f.Until = f.Until.UTC()
	b, _ := json.Marshal(f) // a struct of a string, an int and a time
	return string(b)
}

// fenceOf returns the fence recorded in annotations; zero when there is none.
func fenceOf(annotations map[string]string) (platform.Fence, error) {
	v, ok := annotations[AnnotationFence]
	if !ok || v == "" {
		return platform.Fence{}, nil
	}
	var f platform.Fence
	if err := json.Unmarshal([]byte(v), &f); err != nil {
		return platform.Fence{}, fmt.Errorf("annotation %s=%q is not a Stagecraft fence (remove it to clear the fence): %w", AnnotationFence, v, err)
	}
	return f, nil
}

// admits returns nil when an attempt carrying mine may, at now, change an
// object whose annotations are held; otherwise an error wrapping
// platform.ErrFenced: a *platform.FencedError when the object's fence is a
// later attempt's or another owner's unexpired lease, or a plain wrap when
// mine's own lease has ended (past its deadline the attempt has timed out
// on the Temporal server, so another owner may already hold the target).
func admits(target string, mine platform.Fence, held map[string]string, now time.Time) error {
	if mine.Zero() {
		return nil
	}
	if !mine.Until.IsZero() && !now.Before(mine.Until) {
		return fmt.Errorf("converge attempt of %s (step %d) may not change %s: its lease ended at %s: %w",
			mine.Owner, mine.Step, target, mine.Until.UTC().Format(time.RFC3339), platform.ErrFenced)
	}
	f, err := fenceOf(held)
	if err != nil {
		return fmt.Errorf("%s: %w", target, err)
	}
	if !mine.Admits(f, now) {
		return &platform.FencedError{Target: target, Mine: mine, Held: f}
	}
	return nil
}

// withFence returns annotations with f recorded, as a new map (annotations
// may be a snapshot's, shared with later writes).
func withFence(annotations map[string]string, f platform.Fence) map[string]string {
	if f.Zero() {
		return annotations
	}
	out := maps.Clone(annotations)
	if out == nil {
		out = map[string]string{}
	}
	out[AnnotationFence] = encodeFence(f)
	return out
}

// keepFence returns want with the fence of live in it (or without one when
// live has none): a restore writes the snapshot's annotations, which must
// neither bring back an old fence nor drop the current one.
func keepFence(live, want map[string]string) map[string]string {
	v, ok := live[AnnotationFence]
	if cur, has := want[AnnotationFence]; has == ok && cur == v {
		return want
	}
	out := maps.Clone(want)
	if ok {
		if out == nil {
			out = map[string]string{}
		}
		out[AnnotationFence] = v
	} else {
		delete(out, AnnotationFence)
	}
	return out
}

// fenceTarget names the target in a FencedError.
func (c *convergence) fenceTarget() string { return "deployment " + c.ns + "/" + c.orig.Name }

// admit returns nil when c may change the object whose metadata m was just
// read; see admits.
func (c *convergence) admit(m metav1.Object) error {
	return admits(c.fenceTarget(), c.fence, m.GetAnnotations(), time.Now())
}

// stamp records c's fence on m, which is about to be written.
func (c *convergence) stamp(m *metav1.ObjectMeta) {
	m.Annotations = withFence(m.Annotations, c.fence)
}

// admitTarget reads the stable Deployment and returns admit's verdict on
// its fence, the target's. A missing Deployment fences nothing (the
// converge finds it missing itself).
func (c *convergence) admitTarget(ctx context.Context) error {
	if c.fence.Zero() {
		return nil
	}
	d, err := c.cs.AppsV1().Deployments(c.ns).Get(ctx, c.orig.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("get deployment %q: %w", c.ns+"/"+c.orig.Name, err)
	}
	return c.admit(d)
}

// targetRead is the objects of a target a converge writes its fence on,
// as one read, side by side, found them.
type targetRead struct {
	stable *appsv1.Deployment // nil: not there
	canary *appsv1.Deployment // nil: not there
	green  *appsv1.Deployment // nil: not there
	svc    *corev1.Service    // nil: not there, or the spec names none
}

// readTarget adds to g the reads of the target's objects into r.
func (c *convergence) readTarget(ctx context.Context, g *errgroup.Group, r *targetRead) {
	deps := c.cs.AppsV1().Deployments(c.ns)
	readInto(ctx, g, c, "deployment", c.orig.Name, deps.Get, &r.stable)
	readInto(ctx, g, c, "deployment", canaryName(c.orig.Name), deps.Get, &r.canary)
	readInto(ctx, g, c, "deployment", greenName(c.orig.Name), deps.Get, &r.green)
	if c.origSvc != nil {
		readInto(ctx, g, c, "service", c.origSvc.Name, c.cs.CoreV1().Services(c.ns).Get, &r.svc)
	}
}

// readInto adds to g the read of the named object into *into, left as it
// is (nil) when there is none.
func readInto[T any](ctx context.Context, g *errgroup.Group, c *convergence, kind, name string,
	get func(context.Context, string, metav1.GetOptions) (T, error), into *T) {
	g.Go(func() error {
		o, err := get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return nil
		case err != nil:
			return fmt.Errorf("get %s %q: %w", kind, c.ns+"/"+name, err)
		}
		*into = o
		return nil
	})
}

// ours says whether a Deployment of the rollout's names is this service's:
// one that is not is neither stamped nor judged, but refused by the
// converge when it gets to it.
func (c *convergence) ours(m metav1.Object) bool {
	return m.GetLabels()[platform.LabelService] == c.spec.Service
}

// admitRead returns the refusal of c's fence by any object r holds (the
// rollout's Deployments only when this service's), before anything is
// written.
func (c *convergence) admitRead(r targetRead) error {
	var objs []metav1.Object
	if r.stable != nil {
		objs = append(objs, r.stable)
	}
	if r.svc != nil {
		objs = append(objs, r.svc)
	}
	for _, d := range []*appsv1.Deployment{r.canary, r.green} {
		if d != nil && c.ours(d) {
			objs = append(objs, d)
		}
	}
	for _, o := range objs {
		if err := c.admit(o); err != nil {
			return err
		}
	}
	return nil
}

// acquire writes c's fence on the target's objects that exist, the stable
// Deployment first, before the converge changes anything. It reads them
// all side by side first and changes nothing, returning the refusal, when
// one of them holds a fence c's does not admit; each stamp then updates
// the object as read (reading it again when it changed since), and looks
// again for one the read did not find (an attempt that passed its own
// checks may have created it since). From then on an attempt that c's
// fence fences cannot change any of them.
// beside (which must not write to the cluster) runs while the copies on
// the other objects are written, once the target's fence is held.
func (c *convergence) acquire(ctx context.Context, beside func(context.Context) error) error {
	if c.fence.Zero() {
		return beside(ctx)
	}
	var r targetRead
	rg, rctx := errgroup.WithContext(ctx)
	c.readTarget(rctx, rg, &r)
	if err := rg.Wait(); err != nil {
		return err
	}
	if err := c.admitRead(r); err != nil {
		return err
	}
	deps := c.cs.AppsV1().Deployments(c.ns)
	stampDeployment := func(ctx context.Context, d *appsv1.Deployment, opts metav1.UpdateOptions) (*appsv1.Deployment, error) {
		out, err := deps.Update(ctx, d, opts)
		if err == nil && equality.Semantic.DeepEqual(out.Spec, d.Spec) {
			// Only the annotation changed: nothing on the server (a
			// mutating webhook) changed the spec beside it.
			c.stamps.note(out)
		}
		return out, err
	}
	if err := stampObject(ctx, c, "deployment", c.orig.Name, r.stable, r.stable != nil, deps.Get, stampDeployment, nil); err != nil {
		return err
	}
	// The target's fence is held: the copies on the others are written
	// side by side (each is conditioned on its own object alone).
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return beside(gctx) })
	if c.origSvc != nil {
		svcs := c.cs.CoreV1().Services(c.ns)
		g.Go(func() error {
			return stampObject(gctx, c, "service", c.origSvc.Name, r.svc, r.svc != nil, svcs.Get, svcs.Update, nil)
		})
	}
	stampRead := func(name string, d *appsv1.Deployment) {
		g.Go(func() error {
			return stampObject(gctx, c, "deployment", name, d, d != nil, deps.Get, stampDeployment, c.ours)
		})
	}
	stampRead(canaryName(c.orig.Name), r.canary)
	stampRead(greenName(c.orig.Name), r.green)
	return g.Wait()
}

// fenced is an object of the kinds a converge changes.
type fenced[T any] interface {
	metav1.Object
	DeepCopy() T
}

// stampObject writes c's fence on the named object, if it exists and
// (when only is not nil) only says so, unless it carries it already. found
// says the converge's read found it, as read: that is written back with the
// fence. One the read did not find is looked up again, since an attempt
// that passed its own fence checks may have created it since. When the
// write finds the object changed since it was read, it reads it again,
// judges its fence again, and retries; one deleted meanwhile is gone.
func stampObject[T fenced[T]](ctx context.Context, c *convergence, kind, name string, read T, found bool,
	get func(context.Context, string, metav1.GetOptions) (T, error),
	update func(context.Context, T, metav1.UpdateOptions) (T, error),
	only func(metav1.Object) bool) error {
	err := retry.RetryOnConflict(fenceBackoff, func() error {
		cur := read
		if !found {
			var err error
			if cur, err = get(ctx, name, metav1.GetOptions{}); apierrors.IsNotFound(err) {
				return nil
			} else if err != nil {
				return err
			}
		}
		found = false // a retry reads again
		if only != nil && !only(cur) {
			return nil
		}
		if err := c.admit(cur); err != nil {
			return err
		}
		want := encodeFence(c.fence)
		if cur.GetAnnotations()[AnnotationFence] == want {
			return nil
		}
		upd := cur.DeepCopy()
		upd.SetAnnotations(withFence(upd.GetAnnotations(), c.fence))
		if _, err := update(ctx, upd, metav1.UpdateOptions{}); !apierrors.IsNotFound(err) {
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("fence %s %q: %w", kind, c.ns+"/"+name, err)
	}
	return nil
}

// stampBook records, by UID, the generation acquire's fence stamp gave
// each Deployment it stamped. The stamp changes one annotation, which moves
// a Deployment's generation (its annotations are copied to its ReplicaSets)
// but nothing its controller rolls out: while a Deployment is still at that
// generation, a status its controller wrote for the one before speaks of
// its spec as it is (specGeneration). A nil book records nothing.
type stampBook struct {
	mu   sync.Mutex
	gens map[types.UID]int64
}

func (b *stampBook) note(d *appsv1.Deployment) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.gens == nil {
		b.gens = map[types.UID]int64{}
	}
	b.gens[d.UID] = d.Generation
}

func (b *stampBook) generation(uid types.UID) int64 {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.gens[uid]
}

// specGeneration is the generation of d whose status speaks of its spec as
// it is: d's own, or the one before when d is still at the generation
// this converge's fence stamp gave it.
func (c *convergence) specGeneration(d *appsv1.Deployment) int64 {
	if g := c.stamps.generation(d.UID); g != 0 && g == d.Generation {
		return g - 1
	}
	return d.Generation
}

// asUnstamped is d as its controller judges it: with specGeneration as its
// generation (a shallow copy when that differs).
func (c *convergence) asUnstamped(d *appsv1.Deployment) *appsv1.Deployment {
	g := c.specGeneration(d)
	if g == d.Generation {
		return d
	}
	v := *d
	v.Generation = g
	return &v
}
