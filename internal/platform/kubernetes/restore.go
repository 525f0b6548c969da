package kubernetes

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"time"

	"golang.org/x/sync/errgroup"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"

	"github.com/stagecraft/stagecraft/internal/platform"
)

// restoreBackoff paces a rollback's fresh reads when its write of the
// stable Deployment lost a race (the controller's status write, a user's
// edit): everything is read and judged again, about a second in all.
var restoreBackoff = wait.Backoff{Steps: 8, Duration: 10 * time.Millisecond, Factor: 1.5, Jitter: 0.1}

// restoreRead is what a rollback reads, side by side, before it writes
// anything.
type restoreRead struct {
	targetRead
	sets   []appsv1.ReplicaSet // those the stable selector matches, the canary's among them
	listed bool                // sets was listed
	hpa    *autoscaler         // the stable Deployment's, when one targets it
}

// restore brings back the snapshot at once, in as few round trips to the
// API server as the fence allows, since a rollback is what an operator
// waits on:
//
//  1. Everything it changes is read side by side (the stable, canary and
//     green Deployments, the Service, the ReplicaSets and the autoscaler),
//     and judged by c's fence: a refusal changes nothing.
//  2. The stable Deployment is written with the snapshot's spec and c's
//     fence in one update, conditioned on what step 1 read. That write
//     takes the target's fence, as acquire's stamp does for a stage; when
//     it loses a race, step 1 is done again.
//  3. Then, side by side: the stable Deployment is waited for; the canary
//     is deleted as read in step 1 (the delete conditioned on that read,
//     like any fenced delete), then its ReplicaSets as listed there; the
//     Service gets its snapshot spec back and only then is green deleted,
//     since the Service may select green alone. The canary's pods carry
//     the stable template's labels, so the Service selects them whatever
//     it holds, and they may go before it is written.
//
// A canary that step 1 did not find is looked for again after step 2: a
// stale attempt that created one in between is refused by the target's
// fence after its create, but one whose check came first is this
// converge's to delete. A rollback takes the new version away as fast as
// it brings the old one back.
func (c *convergence) restore(ctx context.Context, planned int) error {
	desired := c.desired
	var r restoreRead
	var written *appsv1.Deployment
	err := retry.OnError(restoreBackoff, conflictOrExists, func() (err error) {
		c.desired, c.hpa, c.split = desired, nil, split{}
		if r, err = c.readForRestore(ctx); err != nil {
			return err
		}
		if err = c.admitRead(r.targetRead); err != nil {
			return err
		}
		if r.hpa != nil {
			if err = c.follow(ctx, planned, r.hpa, r.stable); err != nil {
				return err
			}
		}
		want := cleanDeployment(c.orig)
		want.Spec.Replicas = ptr(int32(c.desired.Old))
		written, err = c.writeStableFrom(ctx, r.stable, c.restoreStable(want), want)
		return err
	})
	if err != nil {
		return fmt.Errorf("restore deployment %q: %w", c.ns+"/"+c.orig.Name, err)
	}

	// The stable side and the canary's record what they do in their own
	// copies of the result, merged below, so the sides share nothing while
	// they run.
	side := *c
	side.res = platform.ConvergeResult{}
	stable := make(chan error, 1)
	go func() { stable <- side.wait(ctx, written) }()
	type gone struct {
		d   *appsv1.Deployment
		err error
	}
	canary := make(chan gone, 1)
	go func() {
		d, err := c.deleteRead(ctx, canaryName(c.orig.Name), r.canary, r.sets, r.listed)
		canary <- gone{d, err}
	}()
	err = c.restoreServiceFrom(ctx, r.svc)
	var deleting []*appsv1.Deployment
	if err == nil {
		deleting, err = c.startDeletes(ctx, greenName(c.orig.Name))
	}
	cg := <-canary
	if cg.d != nil {
		deleting = append([]*appsv1.Deployment{cg.d}, deleting...)
	}
	err = cmp.Or(err, cg.err)
	if err == nil {
		err = c.waitServing(ctx, deleting)
	}
	serr := <-stable
	c.res.Created = append(side.res.Created, c.res.Created...)
	c.res.Rewired = append(side.res.Rewired, c.res.Rewired...)
	if serr != nil {
		return serr
	}
	if err != nil {
		return err
	}
	c.noteRemoved(deleting)
	return c.noteTerminating(ctx)
}

// readForRestore reads, side by side, what a rollback changes.
func (c *convergence) readForRestore(ctx context.Context) (restoreRead, error) {
	var r restoreRead
	g, gctx := errgroup.WithContext(ctx)
	c.readTarget(gctx, g, &r.targetRead)
	if sel, err := metav1.LabelSelectorAsSelector(c.orig.Spec.Selector); err == nil && !sel.Empty() {
		g.Go(func() error {
			// Only a shortcut (deleteRead): when it fails the canary's
			// ReplicaSets are listed after its delete, as for any other.
			list, err := c.cs.AppsV1().ReplicaSets(c.ns).List(gctx, metav1.ListOptions{LabelSelector: sel.String()})
			if err == nil {
				r.sets, r.listed = list.Items, true
			}
			return nil
		})
	}
	g.Go(func() (err error) { r.hpa, err = findAutoscaler(gctx, c); return err })
	return r, g.Wait()
}

// deleteRead deletes the named Deployment of this service as cur, read
// before the target's fence was taken, and the ReplicaSets of sets it
// controls (when listed; otherwise they are listed now). It returns what
// waitServing is to wait for. When cur is nil, or was deleted or replaced
// by another object since that read, the name is looked up again: one
// created since is deleted too.
func (c *convergence) deleteRead(ctx context.Context, name string, cur *appsv1.Deployment, sets []appsv1.ReplicaSet, listed bool) (*appsv1.Deployment, error) {
	if cur == nil {
		ds, err := c.startDeletes(ctx, name)
		if err != nil {
			return nil, err
		}
		return ds[0], nil
	}
	if err := c.ownedByUs(cur.Labels, "deployment", name); err != nil {
		return nil, err
	}
	replaced, err := c.deleteFencedAs(ctx, cur, metav1.DeletePropagationBackground)
	if err != nil {
		return nil, fmt.Errorf("delete deployment %q: %w", c.ns+"/"+name, err)
	}
	if replaced {
		// Deleted, and perhaps made again, since the read: look again,
		// now that the target's fence is held.
		return c.deleteRead(ctx, name, nil, nil, false)
	}
	if listed {
		c.deleteSets(ctx, cur, sets)
	} else {
		c.deleteSetsOf(ctx, cur)
	}
	return cur, nil
}

// noteTerminating adds to the result's Terminating the pods of the new
// version the stable Deployment's own ReplicaSets still have terminating
// (after a handover the new version's pods are its own).
func (c *convergence) noteTerminating(ctx context.Context) error {
	sel, err := metav1.LabelSelectorAsSelector(c.orig.Spec.Selector)
	if err != nil || sel.Empty() {
		return nil
	}
	pods, err := c.cs.CoreV1().Pods(c.ns).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return fmt.Errorf("list pods: %w", err)
	}
	for i := range pods.Items {
		if p := &pods.Items[i]; p.DeletionTimestamp != nil && c.runsNew(p) {
			c.res.Terminating = appendOnce(c.res.Terminating, "pod/"+p.Name)
		}
	}
	return nil
}

// restoreStable returns the mutation that gives the stable Deployment the
// snapshot's labels, annotations (keeping the controller's revision) and
// spec.
func (c *convergence) restoreStable(want *appsv1.Deployment) func(*appsv1.Deployment) {
	return func(d *appsv1.Deployment) {
		d.Labels = want.Labels
		ann := maps.Clone(want.Annotations)
		if rev, ok := d.Annotations[revisionAnnotation]; ok {
			if ann == nil {
				ann = map[string]string{}
			}
			ann[revisionAnnotation] = rev
		}
		d.Annotations = withoutSplit(keepFence(d.Annotations, ann))
		d.Spec = want.Spec
	}
}
