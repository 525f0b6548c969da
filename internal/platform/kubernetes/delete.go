package kubernetes

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"

	"github.com/stagecraft/stagecraft/internal/platform"
)

// deletePoll is how often a deleted Deployment, its ReplicaSets and
// pods are looked for until they are gone (well under a second on a
// responsive cluster). Like the timings in wait.go, it bounds a wait on
// the cluster, not the work.
const deletePoll = 100 * time.Millisecond

// deleteInterval is the pause after the polls-th look (from 0) at what is
// left of a deleted Deployment: the garbage collector and the pods' own
// deletion act within tens of milliseconds on a responsive cluster, so the
// first second is looked at twice as often, then every deletePoll. Each
// look is three reads on the worker's client for the cluster, whose rate
// limit every rollout there shares: not faster.
func deleteInterval(polls int) time.Duration {
	if polls < 20 {
		return deletePoll / 2
	}
	return deletePoll
}

// deleteRollout deletes the named Deployments of this service, if present,
// and waits until they, their ReplicaSets and their pods are gone.
func (c *convergence) deleteRollout(ctx context.Context, names ...string) error {
	deleting, err := c.startDeletes(ctx, names...)
	if err != nil {
		return err
	}
	if err := c.waitDeleted(ctx, deleting); err != nil {
		return err
	}
	c.noteRemoved(deleting)
	return nil
}

// startDeletes deletes the named Deployments of this service that exist,
// without waiting. It returns what waitDeleted is to wait for: each one it
// deleted or, where one was gone already, its ghost (a retried converge may
// have deleted it before its pods were gone). The names are read side by
// side: the canary and green, both gone, are what most converges of a
// rollout's last steps look for.
func (c *convergence) startDeletes(ctx context.Context, names ...string) ([]*appsv1.Deployment, error) {
	api := c.cs.AppsV1().Deployments(c.ns)
	found := make([]*appsv1.Deployment, len(names))
	g, gctx := errgroup.WithContext(ctx)
	for i, name := range names {
		g.Go(func() error {
			cur, err := api.Get(gctx, name, metav1.GetOptions{})
			switch {
			case apierrors.IsNotFound(err):
				return nil
			case err != nil:
				return fmt.Errorf("get deployment %q: %w", c.ns+"/"+name, err)
			}
			found[i] = cur
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var out []*appsv1.Deployment
	for i, name := range names {
		cur := found[i]
		if cur == nil {
			out = append(out, c.ghost(name))
			continue
		}
		if err := c.ownedByUs(cur.Labels, "deployment", name); err != nil {
			return out, err
		}
		if err := c.delete(ctx, cur); err != nil {
			return out, err
		}
		out = append(out, cur)
	}
	return out, nil
}

// ghost stands for this rollout's Deployment name once it is gone: no UID
// (which tells it from one deleted now), and the selector it had: the
// stable one for the canary, the green one for green. What is left of it
// is told by name (leftOf).
func (c *convergence) ghost(name string) *appsv1.Deployment {
	sel := c.orig.Spec.Selector.DeepCopy()
	if name == greenName(c.orig.Name) {
		sel = &metav1.LabelSelector{MatchLabels: map[string]string{platform.LabelService: c.spec.Service, LabelColor: colorGreen}}
	}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: c.ns},
		Spec:       appsv1.DeploymentSpec{Selector: sel},
	}
}

// waitDeleted waits until everything of ds is gone.
func (c *convergence) waitDeleted(ctx context.Context, ds []*appsv1.Deployment) error {
	return c.waitAllGone(ctx, ds, false)
}

// waitServing waits until nothing of ds serves: every pod left of them is
// terminating (out of every Service's endpoints, its grace period and
// preStop hook running on, never cut short). It records those pods in the
// result's Terminating.
func (c *convergence) waitServing(ctx context.Context, ds []*appsv1.Deployment) error {
	return c.waitAllGone(ctx, ds, true)
}

// waitAllGone is waitGone for each of ds, side by side (each look is a
// round trip of its own, and the canary and green have nothing to wait for
// from each other). The terminating pods go to the result in ds's order.
func (c *convergence) waitAllGone(ctx context.Context, ds []*appsv1.Deployment, serving bool) error {
	terminating := make([][]string, len(ds))
	g, gctx := errgroup.WithContext(ctx)
	for i, d := range ds {
		g.Go(func() (err error) {
			terminating[i], err = c.waitGone(gctx, d, serving)
			return err
		})
	}
	err := g.Wait()
	for _, t := range terminating {
		c.res.Terminating = appendNew(c.res.Terminating, t...)
	}
	return err
}

// noteRemoved records the Deployments of ds it deleted (not the ghosts)
// in the result.
func (c *convergence) noteRemoved(ds []*appsv1.Deployment) {
	for _, d := range ds {
		if d.UID != "" {
			c.res.Removed = append(c.res.Removed, "deployment/"+d.Name)
			c.log.Info("deleted deployment", zap.String("name", d.Name))
		}
	}
}

// delete deletes d with background propagation: the object goes at once
// (nothing can scale it up again) and the garbage collector takes its
// ReplicaSets, then their pods; waitGone waits for those. A foreground
// deletion keeps the object until its pods are gone, which only delays
// the moment a watcher sees the new version's Deployment gone.
//
// Its ReplicaSets are then deleted here too, also in the background: the
// garbage collector would find them only once it has seen the Deployment
// gone, and their pods only once it has seen them gone, a step each. That
// is an optimisation only: without the grant to delete ReplicaSets (a Role
// from before it) the collector takes them as before.
func (c *convergence) delete(ctx context.Context, d *appsv1.Deployment) error {
	if err := c.deleteFenced(ctx, d, metav1.DeletePropagationBackground); err != nil {
		return fmt.Errorf("delete deployment %q: %w", c.ns+"/"+d.Name, err)
	}
	c.deleteSetsOf(ctx, d)
	return nil
}

// deleteSetsOf deletes, in the background, the ReplicaSets the deleted
// Deployment d controlled (a background deletion leaves their controller
// reference in place, so none of them can have been adopted; the UID
// precondition only keeps a ReplicaSet of the same name made since safe).
// It fails nothing: what it cannot delete the garbage collector does.
func (c *convergence) deleteSetsOf(ctx context.Context, d *appsv1.Deployment) {
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || sel.Empty() || d.UID == "" {
		return
	}
	list, err := c.cs.AppsV1().ReplicaSets(c.ns).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		c.log.Debug("cannot list the deleted deployment's replicasets; the garbage collector takes them", zap.String("name", d.Name), zap.Error(err))
		return
	}
	c.deleteSets(ctx, d, list.Items)
}

// deleteSets is deleteSetsOf with the ReplicaSets listed already (sets:
// any listing that holds d's, read before d was deleted or after). One
// made since the listing is left to the garbage collector.
func (c *convergence) deleteSets(ctx context.Context, d *appsv1.Deployment, sets []appsv1.ReplicaSet) {
	api := c.cs.AppsV1().ReplicaSets(c.ns)
	for i := range sets {
		rs := &sets[i]
		if !metav1.IsControlledBy(rs, d) || rs.DeletionTimestamp != nil {
			continue
		}
		err := api.Delete(ctx, rs.Name, metav1.DeleteOptions{PropagationPolicy: ptr(metav1.DeletePropagationBackground),
			Preconditions: &metav1.Preconditions{UID: &rs.UID}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			c.log.Debug("cannot delete the deleted deployment's replicaset; the garbage collector takes it", zap.String("replicaset", rs.Name), zap.Error(err))
		}
	}
}

// deleteAndWait deletes d and waits until it and its pods are gone.
func (c *convergence) deleteAndWait(ctx context.Context, d *appsv1.Deployment) error {
	if err := c.delete(ctx, d); err != nil {
		return err
	}
	return c.waitDeleted(ctx, []*appsv1.Deployment{d})
}

// waitGone polls until d (by UID) is gone and nothing of it is left: no
// ReplicaSet it controls, no pod of its ReplicaSets; with serving, pods
// that are terminating do not count, and those left are returned (it
// changes nothing of c, so several run side by side).
func (c *convergence) waitGone(ctx context.Context, d *appsv1.Deployment, serving bool) ([]string, error) {
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return nil, fmt.Errorf("deployment %q: selector: %w", c.ns+"/"+d.Name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.deadline+waitGrace)
	defer cancel()
	last := ""
	for polls := 0; ; polls++ {
		left, terminating, err := c.leftOf(ctx, d, sel)
		if err == nil && left == "" && (serving || len(terminating) == 0) {
			return terminating, nil
		}
		if err == nil && left == "" {
			left = fmt.Sprintf("%d terminating pod(s)", len(terminating))
		}
		if err != nil && ctx.Err() == nil {
			return nil, fmt.Errorf("deployment %q being deleted: %w", c.ns+"/"+d.Name, err)
		}
		if err == nil {
			last = left
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("deployment %q: %s still present after deletion: %w", c.ns+"/"+d.Name, cmp.Or(last, "something"), ctx.Err())
		case <-time.After(deleteInterval(polls)):
		}
	}
}

// leftOf says what of the deleted Deployment d is still there ("" when
// nothing): the object itself, a ReplicaSet it controls, pods of its
// ReplicaSets, which run the new image. Its selector may match other pods (the canary's is the
// stable Deployment's), so a pod counts by its ReplicaSet: one named after
// d that d still controls, or that is gone, or that nobody controls; not
// one that another Deployment has adopted (adopt.go). A ghost (no UID)
// stands for any Deployment of d's name.
func (c *convergence) leftOf(ctx context.Context, d *appsv1.Deployment, sel labels.Selector) (left string, terminating []string, err error) {
	list := metav1.ListOptions{LabelSelector: sel.String()}
	if d.UID != "" {
		cur, err := c.cs.AppsV1().Deployments(c.ns).Get(ctx, d.Name, metav1.GetOptions{})
		switch {
		case err == nil && cur.UID == d.UID:
			return "the deployment", nil, nil
		case err != nil && !apierrors.IsNotFound(err):
			return "", nil, err
		}
	}
	if sel.Empty() {
		return "", nil, nil // it would match every pod of the namespace
	}
	of := func(ref *metav1.OwnerReference) bool {
		return ref.Kind == "Deployment" && ref.Name == d.Name && (d.UID == "" || ref.UID == d.UID)
	}
	// The ReplicaSets and the pods are listed side by side: this is looked
	// at every 50 ms while a rollback waits for the new version to stop
	// serving.
	var rss *appsv1.ReplicaSetList
	var pods *corev1.PodList
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) { rss, err = c.cs.AppsV1().ReplicaSets(c.ns).List(gctx, list); return err })
	g.Go(func() (err error) { pods, err = c.cs.CoreV1().Pods(c.ns).List(gctx, list); return err })
	if err := g.Wait(); err != nil {
		return "", nil, err
	}
	others := map[types.UID]bool{} // ReplicaSets named after d that another controller has
	for i := range rss.Items {
		rs := &rss.Items[i]
		ref := metav1.GetControllerOf(rs)
		switch {
		case ref != nil && of(ref):
			return "replicaset " + rs.Name, nil, nil
		case ref != nil:
			others[rs.UID] = true
		}
	}
	n := 0
	for i := range pods.Items {
		pod := &pods.Items[i]
		ref := metav1.GetControllerOf(pod)
		switch {
		case ref == nil || ref.Kind != "ReplicaSet" || !strings.HasPrefix(ref.Name, d.Name+"-") || others[ref.UID]:
		case !c.runsNew(pod):
			// Not the new version: the pods of an earlier canary's
			// ReplicaSet, which the stable Deployment adopted and whose
			// pods outlive it (a revision history limit of 0).
		case pod.DeletionTimestamp != nil:
			terminating = append(terminating, "pod/"+pod.Name)
		default:
			n++
		}
	}
	if n > 0 {
		return fmt.Sprintf("%d pod(s)", n), terminating, nil
	}
	return "", terminating, nil
}

// deleteFenced deletes d, as read, with the propagation given. With a
// fence, d's own must admit c's and the delete carries d's resourceVersion
// as a precondition, so it fails if a later attempt has written d since;
// on a conflict d is read again and judged again. A d that is gone, or
// whose name now holds another object (another UID), counts as deleted.
func (c *convergence) deleteFenced(ctx context.Context, d *appsv1.Deployment, propagation metav1.DeletionPropagation) error {
	_, err := c.deleteFencedAs(ctx, d, propagation)
	return err
}

// deleteFencedAs is deleteFenced, also saying whether d was found gone or
// its name held by another object (so this call deleted nothing).
func (c *convergence) deleteFencedAs(ctx context.Context, d *appsv1.Deployment, propagation metav1.DeletionPropagation) (replaced bool, err error) {
	api := c.cs.AppsV1().Deployments(c.ns)
	cur := d
	err = retry.OnError(fenceBackoff, func(err error) bool { return errors.Is(err, errReread) }, func() error {
		if err := c.admit(cur); err != nil {
			return err
		}
		pre := &metav1.Preconditions{UID: &d.UID}
		if !c.fence.Zero() {
			pre.ResourceVersion = ptr(cur.ResourceVersion)
		}
		err := api.Delete(ctx, d.Name, metav1.DeleteOptions{PropagationPolicy: ptr(propagation), Preconditions: pre})
		switch {
		case err == nil:
			return nil
		case apierrors.IsNotFound(err):
			replaced = true
			return nil
		case !apierrors.IsConflict(err):
			return err
		case c.fence.Zero():
			replaced = true
			return nil // the UID precondition: another object has the name
		}
		again, err := api.Get(ctx, d.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			replaced = true
			return nil
		}
		if err != nil {
			return err
		}
		if again.UID != d.UID {
			replaced = true
			return nil
		}
		cur = again
		return errReread
	})
	return replaced, err
}

// errReread says a fenced delete met a changed object and reads it again.
var errReread = errors.New("changed since read")

// runsNew says whether pod's target container is the new template's:
// its image and environment (a release may change only the latter).
func (c *convergence) runsNew(pod *corev1.Pod) bool {
	want := c.newTemplate().Spec.Containers[c.ci]
	for _, ctr := range pod.Spec.Containers {
		if ctr.Name == want.Name {
			return ctr.Image == want.Image && equality.Semantic.DeepEqual(ctr.Env, want.Env) && equality.Semantic.DeepEqual(ctr.EnvFrom, want.EnvFrom)
		}
	}
	return false
}

// appendNew appends those of vs not in s yet.
func appendNew(s []string, vs ...string) []string {
	for _, v := range vs {
		s = appendOnce(s, v)
	}
	return s
}
