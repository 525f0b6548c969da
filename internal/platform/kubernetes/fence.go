package kubernetes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"

	"go.uber.org/zap"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/stagecraft/stagecraft/internal/platform"
)

// AnnotationFence holds, as JSON, the platform.Fence of the last converge
// attempt that wrote an object of a target.
//
// The fence lives on every object a converge changes: the stable (user's)
// Deployment, which is the target's fence, and copies of it on the Service
// and the rollout's canary and green Deployments. A converge first writes
// its fence on each of them that exists (acquire), then conditions every
// call on the fence of the object it calls on, read in the same read as
// the rest of the object: an update carries that read's resourceVersion,
// a delete has it as a precondition. So once a later attempt has written
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
func (c *converge) fenceTarget() string { return "deployment " + c.ns + "/" + c.orig.Name }

// admit returns nil when c may change the object whose metadata m was just
// read; see admits.
func (c *converge) admit(m metav1.Object) error {
	return admits(c.fenceTarget(), c.fence, m.GetAnnotations(), time.Now())
}

// stamp records c's fence on m, which is about to be written.
func (c *converge) stamp(m *metav1.ObjectMeta) {
	m.Annotations = withFence(m.Annotations, c.fence)
}

// admitTarget reads the stable Deployment and returns admit's verdict on
// its fence, the target's. A missing Deployment fences nothing (the
// converge finds it missing itself).
func (c *converge) admitTarget(ctx context.Context) error {
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

// acquire writes c's fence on the target's objects that exist, the stable
// Deployment first, before the converge changes anything; it changes
// nothing and returns the refusal when one of them holds a fence c's does
// not admit. From then on an attempt that c's fence fences cannot change
// any of them.
func (c *converge) acquire(ctx context.Context) error {
	if c.fence.Zero() {
		return nil
	}
	deps := c.cs.AppsV1().Deployments(c.ns)
	if err := stampObject(ctx, c, "deployment", c.orig.Name, deps.Get, deps.Update, nil); err != nil {
		return err
	}
	if c.origSvc != nil {
		svcs := c.cs.CoreV1().Services(c.ns)
		if err := stampObject(ctx, c, "service", c.origSvc.Name, svcs.Get, svcs.Update, nil); err != nil {
			return err
		}
	}
	// The rollout's Deployments, when this service's; one of that name that
	// is not is refused by the converge when it gets to it.
	ours := func(m metav1.Object) bool { return m.GetLabels()[platform.LabelService] == c.spec.Service }
	for _, name := range []string{canaryName(c.orig.Name), greenName(c.orig.Name)} {
		if err := stampObject(ctx, c, "deployment", name, deps.Get, deps.Update, ours); err != nil {
			return err
		}
	}
	return nil
}

// fenced is an object of the kinds a converge changes.
type fenced[T any] interface {
	metav1.Object
	DeepCopy() T
}

// stampObject writes c's fence on the named object, if it exists and
// (when only is not nil) only says so, unless it carries it already.
func stampObject[T fenced[T]](ctx context.Context, c *converge, kind, name string,
	get func(context.Context, string, metav1.GetOptions) (T, error),
	update func(context.Context, T, metav1.UpdateOptions) (T, error),
	only func(metav1.Object) bool) error {
	err := retry.RetryOnConflict(fenceBackoff, func() error {
		cur, err := get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
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
		_, err = update(ctx, upd, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("fence %s %q: %w", kind, c.ns+"/"+name, err)
	}
	return nil
}

// undoCreate deletes d, which c created after the target's fence admitted
// it and which a later attempt's fence fenced before c could check again,
// unless the later attempt has written its fence on it since (then it has
// d in hand). The Deployment controller writes d's status and revision at
// once, so d is read again for the resourceVersion the delete is
// conditioned on.
func (c *converge) undoCreate(ctx context.Context, d *appsv1.Deployment) {
	api := c.cs.AppsV1().Deployments(c.ns)
	mine := encodeFence(c.fence)
	err := retry.RetryOnConflict(fenceBackoff, func() error {
		cur, err := api.Get(ctx, d.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if cur.UID != d.UID || cur.Annotations[AnnotationFence] != mine {
			return nil
		}
		err = api.Delete(ctx, d.Name, metav1.DeleteOptions{
			PropagationPolicy: ptr(metav1.DeletePropagationBackground),
			Preconditions:     &metav1.Preconditions{UID: &cur.UID, ResourceVersion: &cur.ResourceVersion},
		})
		if err == nil {
			c.log.Warn("deleted the deployment it created: a later converge attempt fenced the target meanwhile", zap.String("name", d.Name))
		}
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	})
	if err != nil {
		c.log.Error("fenced: could not delete the deployment it created", zap.String("name", d.Name), zap.Error(err))
	}
}

// createFenced creates d, one of the rollout's Deployments, carrying c's
// fence. The target's fence is checked before, and again after: a later
// attempt may have fenced the target in between, and may then have looked
// for d before it existed (a rollback that found no canary to delete), so
// d is deleted again and the attempt refused. With a fence, d is created
// paused (its controller makes no ReplicaSet and no pod for it) and
// resumed only once the second check has passed, in an update conditioned
// on d's fence like any other: an attempt frozen between the create and
// that check runs no pods meanwhile, and one that never resumes leaves a
// paused Deployment, not a serving one. (Created with no replicas and
// scaled up instead, it would roll out by scaling, which the controller's
// progress deadline does not judge: a canary that cannot start would wait
// out the spec's deadline without the controller's reason.)
func (c *converge) createFenced(ctx context.Context, d *appsv1.Deployment) (*appsv1.Deployment, error) {
	if err := c.admitTarget(ctx); err != nil {
		return nil, err
	}
	paused := d.Spec.Paused
	d = d.DeepCopy()
	c.stamp(&d.ObjectMeta)
	if !c.fence.Zero() {
		d.Spec.Paused = true
	}
	api := c.cs.AppsV1().Deployments(c.ns)
	out, err := api.Create(ctx, d, metav1.CreateOptions{})
	if err != nil || c.fence.Zero() {
		return out, err
	}
	if err := c.admitTarget(ctx); err != nil {
		if errors.Is(err, platform.ErrFenced) {
			c.undoCreate(ctx, out)
		}
		return nil, err
	}
	cur := out
	err = retry.RetryOnConflict(fenceBackoff, func() error {
		if err := c.admit(cur); err != nil {
			return err
		}
		upd := cur.DeepCopy()
		upd.Spec.Paused = paused
		written, err := api.Update(ctx, upd, metav1.UpdateOptions{})
		if err == nil {
			out = written
			return nil
		}
		if apierrors.IsNotFound(err) {
			if ferr := c.admitTarget(ctx); ferr != nil {
				return ferr // a later attempt deleted it
			}
		}
		if apierrors.IsConflict(err) {
			if again, gerr := api.Get(ctx, d.Name, metav1.GetOptions{}); gerr == nil {
				cur = again
			}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// deleteFenced deletes d, as read, with background propagation. With a
// fence, d's own must admit c's and the delete carries d's resourceVersion
// as a precondition, so it fails if a later attempt has written d since;
// on a conflict d is read again and judged again. A d that is gone, or
// whose name now holds another object (another UID), counts as deleted.
func (c *converge) deleteFenced(ctx context.Context, d *appsv1.Deployment) error {
	api := c.cs.AppsV1().Deployments(c.ns)
	cur := d
	return retry.OnError(fenceBackoff, func(err error) bool { return errors.Is(err, errReread) }, func() error {
		if err := c.admit(cur); err != nil {
			return err
		}
		pre := &metav1.Preconditions{UID: &d.UID}
		if !c.fence.Zero() {
			pre.ResourceVersion = ptr(cur.ResourceVersion)
		}
		err := api.Delete(ctx, d.Name, metav1.DeleteOptions{PropagationPolicy: ptr(metav1.DeletePropagationBackground), Preconditions: pre})
		switch {
		case err == nil || apierrors.IsNotFound(err):
			return nil
		case !apierrors.IsConflict(err):
			return err
		case c.fence.Zero():
			return nil // the UID precondition: another object has the name
		}
		again, err := api.Get(ctx, d.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if again.UID != d.UID {
			return nil
		}
		cur = again
		return errReread
	})
}

// errReread says a fenced delete met a changed object and reads it again.
var errReread = errors.New("changed since read")
