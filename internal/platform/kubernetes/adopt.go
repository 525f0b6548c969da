package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// AnnotationHandover marks the stable Deployment while it takes the
// canary's ReplicaSet over (handOver); its value is the rollout's ID. The
// handover's last write removes it, and a rollback restores the snapshot's
// annotations, so it outlives neither.
const AnnotationHandover = "stagecraft.io/handover"

// handoverPoll is how often the handover re-reads what it waits for: the
// garbage collector and the Deployment controller act within milliseconds.
const handoverPoll = 20 * time.Millisecond

// handOver ends a canary with the stable Deployment taking the canary's
// ReplicaSet over as its own new one, so that each new-version pod of the
// rollout starts once: the canary's pods are not replaced by identical
// pods of the stable Deployment, and nothing of the rollout's is left but
// a ReplicaSet named after the canary, now the Deployment's own (its
// revision history counts it like any other). It is the surge path of
// promote when the canary runs the new template; false means there is no
// such canary (a rolling start from the snapshot, a canary of an earlier
// version's shape) and promote rolls the stable Deployment itself.
//
// The Deployment controller adopts an orphaned ReplicaSet its selector
// matches and rolls on from the one whose template equals its own. The
// writes keep it from adding or removing a pod on its own meanwhile (its
// proportional scaling of a paused Deployment adds maxSurge + replicas −
// all pods, so maxSurge is set to make that zero):
//
//  1. the canary grows to New (all of the service) in steps of the
//     Deployment's own maxSurge, the stable Deployment shrinking behind
//     each step but the last, to no less than one pod (growCanary), so no
//     old pod goes before a new one is ready and the peak is the
//     Deployment's own;
//  2. the stable Deployment is paused with the new template, its replicas
//     as they are, marked with AnnotationHandover;
//  3. the canary Deployment is deleted orphaning its ReplicaSet, which the
//     stable Deployment adopts;
//  4. the stable Deployment gets New replicas (its controller then scales
//     the old ReplicaSets to zero: the new one is saturated);
//  5. the stable Deployment gets the snapshot's paused flag and strategy
//     back, without the mark, and is waited for until it has rolled out.
//     Steps 4 and 5 are one write when the snapshot's strategy lets its
//     controller add no pod meanwhile (settleHandover); otherwise step 4
//     is written paused and waited for until the controller has seen it.
//
// Each step reads before it writes, so a retry after a crash resumes where
// the last attempt stopped: the mark says steps 1 and 2 are done.
func (c *convergence) handOver(ctx context.Context, start bool) (bool, error) {
	tpl := c.newTemplate()
	var canary *appsv1.Deployment
	var cerr error
	stable, rss, err := c.readStable(ctx, func(ctx context.Context) {
		canary, cerr = c.cs.AppsV1().Deployments(c.ns).Get(ctx, canaryName(c.orig.Name), metav1.GetOptions{})
	})
	if err != nil {
		return false, err
	}
	if stable.Annotations[AnnotationHandover] != c.rollout {
		if !start || apierrors.IsNotFound(cerr) {
			return false, nil
		}
		if cerr != nil {
			return false, fmt.Errorf("get deployment %q: %w", c.ns+"/"+canaryName(c.orig.Name), cerr)
		}
		if err := c.ownedByUs(canary.Labels, "deployment", canary.Name); err != nil {
			return false, err
		}
		if !equality.Semantic.DeepEqual(canary.Spec.Template, tpl) || equalIgnoreHash(stable.Spec.Template, tpl) {
			return false, nil
		}
		if stable, rss, err = c.seenWithSets(ctx, stable, rss); err != nil {
			return false, err
		}
		if !settled(c.asUnstamped(stable), rss) {
			return false, nil
		}
		if ok, err := c.forgetRevision(ctx, rss, tpl); !ok || err != nil {
			return false, err
		}
		if err := c.growCanary(ctx, canary); err != nil {
			return true, err
		}
		if stable, rss, err = c.readStable(ctx, nil); err != nil {
			return true, err
		}
		if stable, rss, err = c.seenWithSets(ctx, stable, rss); err != nil {
			return true, err
		}
		if !settled(c.asUnstamped(stable), rss) {
			err = fmt.Errorf("deployment %q changed under the rollout (more than one ReplicaSet with pods) before the canary could be handed over: %w", c.ns+"/"+c.orig.Name, errNotSettled)
			return true, err
		}
		if stable, err = c.beginHandover(ctx, stable, rss, tpl); err != nil {
			return true, err
		}
	}
	if err := c.adoptCanary(ctx, stable, tpl); err != nil {
		return true, err
	}
	return true, c.settleHandover(ctx)
}

// readStable reads the stable Deployment and the ReplicaSets of its
// selector side by side (and also, when not nil, beside them). It returns
// the ReplicaSets the Deployment controls.
func (c *convergence) readStable(ctx context.Context, also func(context.Context)) (*appsv1.Deployment, []*appsv1.ReplicaSet, error) {
	var stable *appsv1.Deployment
	var rss []*appsv1.ReplicaSet
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) { stable, err = c.getStable(gctx); return err })
	g.Go(func() (err error) { rss, err = c.listSets(gctx); return err })
	if also != nil {
		g.Go(func() error { also(gctx); return nil })
	}
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	return stable, controlledBy(stable, rss), nil
}

// seenWithSets is seen for the stable Deployment read with its ReplicaSets
// rss: when its controller had not seen its latest generation, the
// ReplicaSets are listed again once it has.
func (c *convergence) seenWithSets(ctx context.Context, stable *appsv1.Deployment, rss []*appsv1.ReplicaSet) (*appsv1.Deployment, []*appsv1.ReplicaSet, error) {
	if stable.Status.ObservedGeneration >= c.specGeneration(stable) {
		return stable, rss, nil
	}
	stable, err := c.seen(ctx, stable)
	if err != nil {
		return nil, nil, err
	}
	if rss, err = c.listSets(ctx); err != nil {
		return nil, nil, err
	}
	return stable, controlledBy(stable, rss), nil
}

// controlledBy returns those of rss that d controls.
func controlledBy(d *appsv1.Deployment, rss []*appsv1.ReplicaSet) []*appsv1.ReplicaSet {
	return slices.DeleteFunc(rss, func(rs *appsv1.ReplicaSet) bool { return !metav1.IsControlledBy(rs, d) })
}

// errNotSettled says the stable Deployment was being rolled by something
// else while the canary grew; the converge is retried (and then rolls the
// stable Deployment itself if it is still not settled).
var errNotSettled = errors.New("the stable deployment is not settled")

// seen returns the stable Deployment once its controller has seen its
// latest generation, or as it is after settleWait. The generation this
// converge's own fence stamp gave it counts as seen once the one before is
// (specGeneration): the stamp is an annotation, which moves a Deployment's
// generation like its spec but changes nothing its controller rolls out.
func (c *convergence) seen(ctx context.Context, stable *appsv1.Deployment) (*appsv1.Deployment, error) {
	for end := time.Now().Add(settleWait); stable.Status.ObservedGeneration < c.specGeneration(stable) && time.Now().Before(end); {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(handoverPoll):
		}
		var err error
		if stable, err = c.getStable(ctx); err != nil {
			return nil, err
		}
	}
	return stable, nil
}

// settleWait bounds how long the handover waits for the stable
// Deployment's controller to see its latest generation before judging it
// (not settled, then: it rolls itself).
const settleWait = 10 * time.Second

// settled says whether the stable Deployment is at rest with some pods:
// rolled out (by its status, or by its ReplicaSets' as a wait judges it:
// the status follows one controller pass later), with exactly one of rss,
// the ReplicaSets it controls, having any, at its replicas. Its controller
// leaves a paused Deployment alone only then (it scales a lone active
// ReplicaSet to the Deployment's count); with two, its proportional
// scaling would add old pods and resize the canary's. A Deployment being
// rolled by something else (a restart, a hand edit, a sync) is not handed
// over: it rolls itself.
func settled(stable *appsv1.Deployment, rss []*appsv1.ReplicaSet) bool {
	if replicas(stable) < 1 {
		return false
	}
	if done, err := rolledOut(stable, stable.Generation); err != nil || (!done && !setsRolledOut(stable, stable.Generation, slices.Values(rss))) {
		return false
	}
	active := 0
	for _, rs := range rss {
		if rs.Spec.Replicas != nil && *rs.Spec.Replicas == 0 && rs.Status.Replicas == 0 {
			continue
		}
		active++
		if rs.Spec.Replicas == nil || *rs.Spec.Replicas != replicas(stable) {
			return false
		}
	}
	return active == 1
}

// growCanary is step 1: the canary grows to New in steps of the stable
// Deployment's own maxSurge (as the snapshot has it; all at once for a
// Recreate one), each step but the last waited for and followed by the
// stable Deployment shrinking by as much, never below one pod (the
// handover needs its ReplicaSet active until the canary's is adopted).
// After the last step the stable Deployment keeps its pods until the
// handover scales them to zero. So no step runs more pods at once than
// the Deployment's rolling update would, and no old pod goes before a new
// one is ready in its place. cur is the canary as just read.
func (c *convergence) growCanary(ctx context.Context, cur *appsv1.Deployment) error {
	n := int32(c.desired.New)
	step := n
	if c.orig.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		surge, err := c.maxSurge(n)
		if err != nil {
			return err
		}
		step = max(1, surge)
	}
	for {
		if cur == nil {
			var err error
			if cur, err = c.cs.AppsV1().Deployments(c.ns).Get(ctx, canaryName(c.orig.Name), metav1.GetOptions{}); err != nil {
				return fmt.Errorf("get deployment %q: %w", c.ns+"/"+canaryName(c.orig.Name), err)
			}
		}
		k := replicas(cur)
		if k >= n {
			return nil
		}
		next := min(n, k+step)
		want := c.canary()
		want.Spec.Replicas = &next
		if err := c.ensureRolloutFrom(ctx, want, cur); err != nil {
			return err
		}
		cur = nil // its controller writes its status after the wait: read it again
		if next == n {
			// The stable Deployment keeps what it has (one step's worth
			// at most, but for a Recreate one): the handover's saturated
			// ReplicaSet scales it to zero at once (step 4), so a shrink
			// here would only make the handover wait for the controllers
			// twice.
			return nil
		}
		old := max(1, n-next)
		if err := c.writeStable(ctx, func(d *appsv1.Deployment) { d.Spec.Replicas = ptr(min(replicas(d), old)) }, nil); err != nil {
			return err
		}
	}
}

// beginHandover is step 2: the stable Deployment (as just read, with rss
// the ReplicaSets it controls) paused with the new template and marked,
// its maxSurge such that its controller's proportional scaling adds
// nothing once it has adopted the canary's ReplicaSet of New pods.
func (c *convergence) beginHandover(ctx context.Context, stable *appsv1.Deployment, rss []*appsv1.ReplicaSet, tpl corev1.PodTemplateSpec) (*appsv1.Deployment, error) {
	active := sumReplicas(rss)
	written, err := c.updateStableFrom(ctx, stable, func(d *appsv1.Deployment) {
		ann := maps.Clone(d.Annotations)
		if ann == nil {
			ann = map[string]string{}
		}
		ann[AnnotationHandover] = c.rollout
		d.Annotations = ann
		d.Spec.Paused = true
		d.Spec.Template = tpl
		setMaxSurge(d, active+int32(c.desired.New)-replicas(d))
	})
	if err != nil {
		return nil, err
	}
	c.log.Info("stable deployment paused to take the canary's replicaset over")
	return written, nil
}

// forgetRevision deletes the ReplicaSets of the stable Deployment's
// revision history (of rss, those it controls) that have the new template
// (a rollout back to a version it ran before): its controller takes the oldest ReplicaSet of its
// template as its new one, and would scale that one up and the canary's
// down. They have no pods; the canary's becomes that revision. false (and
// no change) when one has pods (the stable Deployment runs the new
// template already, and rolls on from there itself) or when the worker may
// not delete ReplicaSets (a Role from before this grant): the stable
// Deployment then rolls itself, as a handover could not work.
func (c *convergence) forgetRevision(ctx context.Context, rss []*appsv1.ReplicaSet, tpl corev1.PodTemplateSpec) (bool, error) {
	api := c.cs.AppsV1().ReplicaSets(c.ns)
	var old []*appsv1.ReplicaSet
	for _, rs := range rss {
		if !equalIgnoreHash(rs.Spec.Template, tpl) {
			continue
		}
		if (rs.Spec.Replicas != nil && *rs.Spec.Replicas > 0) || rs.Status.Replicas > 0 {
			return false, nil
		}
		old = append(old, rs)
	}
	for _, rs := range old {
		err := api.Delete(ctx, rs.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &rs.UID}})
		if apierrors.IsForbidden(err) {
			c.log.Warn("not allowed to delete an earlier revision's replicaset of the new template (grant replicasets delete, deployments/kubernetes/rbac.yaml): the stable deployment rolls itself, starting its new pods anew",
				zap.String("replicaset", rs.Name), zap.Error(err))
			return false, nil
		}
		if err != nil && !apierrors.IsNotFound(err) {
			return false, fmt.Errorf("delete replicaset %q of an earlier revision with the new template: %w", c.ns+"/"+rs.Name, err)
		}
		c.res.Removed = append(c.res.Removed, "replicaset/"+rs.Name)
		c.log.Info("deleted an earlier revision's replicaset of the new template; the canary's takes its place", zap.String("replicaset", rs.Name))
	}
	return true, nil
}

// adoptCanary is step 3: it deletes the canary Deployment orphaning its
// ReplicaSet of the new template, and waits until the stable Deployment
// controls that ReplicaSet. With no such ReplicaSet there is nothing to
// adopt and the stable Deployment makes its own when it resumes.
func (c *convergence) adoptCanary(ctx context.Context, stable *appsv1.Deployment, tpl corev1.PodTemplateSpec) error {
	ctx, cancel := context.WithTimeout(ctx, c.deadline+waitGrace)
	defer cancel()
	name := canaryName(c.orig.Name)
	deleted := false
	for {
		rs, err := c.canaryReplicaSet(ctx, tpl)
		if err != nil {
			return err
		}
		if rs == nil {
			c.log.Warn("no replicaset of the canary to take over; the stable deployment makes its own")
			return nil
		}
		ref := metav1.GetControllerOf(rs)
		switch {
		case ref != nil && ref.UID == stable.UID:
			c.log.Info("stable deployment took the canary's replicaset over", zap.String("replicaset", rs.Name))
			return nil
		case ref != nil && ref.Kind == "Deployment" && ref.Name == name && !deleted:
			canary, err := c.cs.AppsV1().Deployments(c.ns).Get(ctx, name, metav1.GetOptions{})
			switch {
			case apierrors.IsNotFound(err):
			case err != nil:
				return fmt.Errorf("get deployment %q: %w", c.ns+"/"+name, err)
			case canary.UID == ref.UID:
				if err := c.deleteFenced(ctx, canary, metav1.DeletePropagationOrphan); err != nil {
					return fmt.Errorf("delete deployment %q orphaning its replicaset: %w", c.ns+"/"+name, err)
				}
				c.res.Removed = append(c.res.Removed, "deployment/"+name)
				c.log.Info("deleted the canary deployment, orphaning its replicaset", zap.String("replicaset", rs.Name))
			}
			deleted = true
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("replicaset %q of the canary not taken over by deployment %q: %w", c.ns+"/"+rs.Name, c.orig.Name, ctx.Err())
		case <-time.After(handoverPoll):
		}
	}
}

// canaryReplicaSet returns the ReplicaSet of the canary Deployment with the
// new template, wherever its controller reference now points; nil if there
// is none.
func (c *convergence) canaryReplicaSet(ctx context.Context, tpl corev1.PodTemplateSpec) (*appsv1.ReplicaSet, error) {
	rss, err := c.listSets(ctx)
	if err != nil {
		return nil, err
	}
	for _, rs := range rss {
		if strings.HasPrefix(rs.Name, canaryName(c.orig.Name)+"-") && rs.DeletionTimestamp == nil && equalIgnoreHash(rs.Spec.Template, tpl) {
			return rs, nil
		}
	}
	return nil, nil
}

// settleHandover is steps 4 and 5: New replicas on the stable Deployment,
// then the snapshot's paused flag and strategy back without the mark, and
// the wait until it has rolled out. When the snapshot's own strategy makes
// its controller's proportional scaling add nothing to the ReplicaSets as
// they are (addsNothing), both go in one write: the controller, seeing a
// scaling event, scales the old ReplicaSets to zero beside the saturated
// new one (or, with a new pod not ready at that moment, rolls on within
// the Deployment's own maxUnavailable, as it would after step 5). Otherwise
// the paused Deployment first gets New replicas with maxSurge such that
// its controller adds nothing, and is waited for until the controller has
// seen that (it has then written New as every active ReplicaSet's desired
// count, so resuming is no scaling event).
func (c *convergence) settleHandover(ctx context.Context) error {
	stable, rss, err := c.readStable(ctx, nil)
	if err != nil {
		return err
	}
	active := sumReplicas(rss)
	n := int32(c.desired.New)
	resume := func(d *appsv1.Deployment) {
		d.Spec.Paused = c.orig.Spec.Paused
		d.Spec.Strategy = *c.orig.Spec.Strategy.DeepCopy()
		d.Annotations = withoutHandover(d.Annotations)
		unmarkSplit(d)
	}
	if c.addsNothing(active, n) {
		written, err := c.updateStableFrom(ctx, stable, func(d *appsv1.Deployment) {
			d.Spec.Replicas = &n
			resume(d)
		})
		if err != nil {
			return err
		}
		return c.wait(ctx, written)
	}
	written, err := c.updateStableFrom(ctx, stable, func(d *appsv1.Deployment) {
		d.Spec.Replicas = &n
		setMaxSurge(d, active-n)
	})
	if err != nil {
		return err
	}
	if err := c.observed(ctx, written, n); err != nil {
		return err
	}
	return c.writeStable(ctx, resume, nil)
}

// addsNothing says whether the stable Deployment's controller, given n
// replicas and the snapshot's strategy, would add or remove no pod by
// proportional scaling while its ReplicaSets hold active replicas in all:
// a Recreate Deployment scales nothing proportionally, a rolling one adds
// n + its maxSurge (as its controller resolves it for n) − active.
func (c *convergence) addsNothing(active, n int32) bool {
	if c.orig.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
		return true
	}
	surge, err := c.maxSurge(n)
	return err == nil && n+surge == active
}

// maxSurge is the snapshot's rolling maxSurge as the Deployment controller
// resolves it for n replicas (a percentage rounded up; 25% by default).
func (c *convergence) maxSurge(n int32) (int32, error) {
	surge := intstr.FromString("25%")
	if ru := c.orig.Spec.Strategy.RollingUpdate; ru != nil && ru.MaxSurge != nil {
		surge = *ru.MaxSurge
	}
	v, err := intstr.GetScaledValueFromIntOrPercent(&surge, int(n), true)
	if err != nil {
		return 0, fmt.Errorf("deployment %q: maxSurge %q: %w", c.ns+"/"+c.orig.Name, surge.String(), err)
	}
	return int32(v), nil
}

// observed waits until the stable Deployment's controller has seen
// written (n replicas).
func (c *convergence) observed(ctx context.Context, written *appsv1.Deployment, n int32) error {
	ctx, cancel := context.WithTimeout(ctx, c.deadline+waitGrace)
	defer cancel()
	for {
		d, err := c.getStable(ctx)
		if err == nil && d.Status.ObservedGeneration >= written.Generation {
			return nil
		}
		if IsTargetNotFound(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("deployment %q: its controller did not see %d replicas: %w", c.ns+"/"+c.orig.Name, n, ctx.Err())
		case <-time.After(handoverPoll):
		}
	}
}

// sumReplicas sums the replicas rss want.
func sumReplicas(rss []*appsv1.ReplicaSet) int32 {
	var n int32
	for _, rs := range rss {
		if rs.Spec.Replicas != nil {
			n += *rs.Spec.Replicas
		}
	}
	return n
}

// listSets lists the ReplicaSets of the stable Deployment's selector
// (the canary's among them).
func (c *convergence) listSets(ctx context.Context) ([]*appsv1.ReplicaSet, error) {
	sel, err := metav1.LabelSelectorAsSelector(c.orig.Spec.Selector)
	if err != nil {
		return nil, fmt.Errorf("selector of deployment %q: %w", c.ns+"/"+c.orig.Name, err)
	}
	list, err := c.cs.AppsV1().ReplicaSets(c.ns).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, fmt.Errorf("list replicasets of %q: %w", c.ns+"/"+c.orig.Name, err)
	}
	out := make([]*appsv1.ReplicaSet, len(list.Items))
	for i := range list.Items {
		out[i] = &list.Items[i]
	}
	return out, nil
}

// setMaxSurge sets a rolling Deployment's maxSurge to n when n is positive
// (a Recreate one scales no ReplicaSet proportionally).
func setMaxSurge(d *appsv1.Deployment, n int32) {
	if d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType || n <= 0 {
		return
	}
	ru := d.Spec.Strategy.RollingUpdate
	if ru == nil {
		ru = &appsv1.RollingUpdateDeployment{}
		d.Spec.Strategy.RollingUpdate = ru
	}
	ru.MaxSurge = ptr(intstr.FromInt32(n))
}

// equalIgnoreHash compares pod templates as the Deployment controller does
// when it looks for its new ReplicaSet: without the pod-template-hash
// label it adds.
func equalIgnoreHash(a, b corev1.PodTemplateSpec) bool {
	a, b = *a.DeepCopy(), *b.DeepCopy()
	delete(a.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
	delete(b.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
	if len(a.Labels) == 0 {
		a.Labels = nil
	}
	if len(b.Labels) == 0 {
		b.Labels = nil
	}
	return equality.Semantic.DeepEqual(a, b)
}

// withoutHandover returns annotations without the handover mark (a copy
// when it was there).
func withoutHandover(annotations map[string]string) map[string]string {
	if _, ok := annotations[AnnotationHandover]; !ok {
		return annotations
	}
	out := maps.Clone(annotations)
	delete(out, AnnotationHandover)
	return out
}
