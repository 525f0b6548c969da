package kubernetes

import (
	"context"
	"fmt"
	"iter"
	"maps"
	"time"

	"go.uber.org/zap"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/stagecraft/stagecraft/internal/platform"
)

// Timings of a converge. They bound waits on the cluster, not the work.
const (
	// waitGrace is added to the spec's progress deadline when waiting for a
	// Deployment: the controller notices an exceeded deadline a few seconds
	// late, and its condition (with its message) is a better error than a
	// timeout of ours.
	waitGrace = 30 * time.Second
	// recheck is how often a waiter re-reads the Deployment when its watch
	// is quiet or cannot be opened (and looks at its pods again: a pod's
	// restarts do not change the Deployment).
	recheck = 2 * time.Second
	// watchTimeout bounds one watch of a waiter; the apiserver closes it
	// then and the waiter opens another.
	watchTimeout = 5 * time.Minute
)

// wait blocks until the Deployment written (at written.Generation) has rolled
// out, its controller reports ProgressDeadlineExceeded (when its deadline is
// not shorter than the spec's: ownDeadline), or the spec's progress deadline
// (plus a grace) passes; a deadline's error says what a pod not ready last
// reported (stalled). Beside it, each version of the Deployment seen is
// handed to a pod check (podChecks) that looks at the pods of its current
// ReplicaSet and ends the wait at once when one is certain never to become
// ready (podFailure: an image it cannot get, a crash loop, no node to run
// it). The check runs off the wait's path, so listing pods never delays
// seeing the rollout done. The wait follows the Deployment through one
// watch, taking each version from its events, and re-reads it when the
// watch is quiet for a few seconds, ends or cannot open.
//
// It also follows the Deployment's ReplicaSets through a watch of their
// own: once the controller has seen the generation written, the rollout is
// done when they say so (setsRolledOut), the ReplicaSet controller's status
// the Deployment's status is made from. That status reaches the Deployment
// one controller pass later, and the Deployment controller, whose requests
// are paced (20 a second by default), took 10-100 ms for it in a rollout's
// busiest step here.
func (c *convergence) wait(ctx context.Context, written *appsv1.Deployment) error {
	name := written.Name
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, c.deadline+waitGrace)
	defer cancel()
	var last *appsv1.Deployment
	pods := c.startPodChecks(ctx)
	f := &follower{c: c, name: name}
	defer f.stop()
	f.followSets(ctx, written)
	// The write's own answer is the first version judged, and its
	// resourceVersion where the watch starts: one round trip fewer than
	// reading it again (on a busy control plane 20-30 ms each).
	d, err := written, error(nil)
	for {
		switch {
		case err == nil:
			fresh := d != last
			last = d
			view, gen := c.asUnstamped(d), c.specGeneration(written)
			done, err := rolledOut(view, gen)
			if err != nil && c.ownDeadline(d) {
				return c.stalled(ctx, d, err)
			}
			if done || (err == nil && f.sets != nil && setsRolledOut(view, gen, maps.Values(f.sets))) {
				return nil
			}
			if fresh && d.Status.ObservedGeneration >= gen {
				pods.offer(d)
			}
		case ctx.Err() != nil:
		case apierrors.IsNotFound(err):
			return fmt.Errorf("deployment %q disappeared while waiting for it to roll out", c.ns+"/"+name)
		default:
			c.log.Warn("reading deployment while waiting", zap.String("name", name), zap.Error(err))
		}
		if ctx.Err() != nil {
			if parent.Err() != nil {
				return fmt.Errorf("deployment %q: waiting to roll out: %w", c.ns+"/"+name, parent.Err())
			}
			err := notReady(c.ns, name, last, c.deadline)
			if last != nil {
				// The wait's own context is over: say why with a short one.
				explain, cancel := context.WithTimeout(parent, 10*time.Second)
				err = c.stalled(explain, last, err)
				cancel()
			}
			return err
		}
		var failure error
		if d, failure, err = f.next(ctx, last, pods.failed); failure != nil {
			return failure
		}
	}
}

// follower follows one Deployment for a wait through a watch kept open
// across versions, and its ReplicaSets through another.
type follower struct {
	c    *convergence
	name string
	w    watch.Interface
	// sets are the ReplicaSets of the Deployment's selector as the watch
	// rsw last said; nil when they could not be listed or the watch ended
	// (the wait then judges by the Deployment's status alone).
	sets      map[string]*appsv1.ReplicaSet
	rsw       watch.Interface
	ready     <-chan setsFollowed // followSets' result, until taken
	recheckAt time.Time           // when the Deployment is read afresh; zero: recheck from now
}

// followSets lists the ReplicaSets of d's selector and opens a watch of
// them from there, beside the wait's first read of the Deployment: next
// takes them up when they are ready. When either fails, sets stays nil.
func (f *follower) followSets(ctx context.Context, d *appsv1.Deployment) {
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || sel.Empty() {
		return
	}
	ready := make(chan setsFollowed, 1)
	f.ready = ready
	go func() {
		api := f.c.cs.AppsV1().ReplicaSets(f.c.ns)
		list, err := api.List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
		if err != nil {
			ready <- setsFollowed{err: err}
			return
		}
		w, err := api.Watch(ctx, metav1.ListOptions{LabelSelector: sel.String(), ResourceVersion: list.ResourceVersion,
			TimeoutSeconds: ptr(int64(watchTimeout / time.Second))})
		if err != nil {
			ready <- setsFollowed{err: err}
			return
		}
		sets := make(map[string]*appsv1.ReplicaSet, len(list.Items))
		for i := range list.Items {
			sets[list.Items[i].Name] = &list.Items[i]
		}
		ready <- setsFollowed{w: w, sets: sets}
	}()
}

// setsFollowed is what followSets found: a watch and the ReplicaSets as
// listed, or why not.
type setsFollowed struct {
	w    watch.Interface
	sets map[string]*appsv1.ReplicaSet
	err  error
}

// takeSets installs what followSets found.
func (f *follower) takeSets(got setsFollowed) {
	f.ready = nil
	if got.err != nil {
		f.c.log.Debug("replicasets not followed while waiting", zap.String("name", f.name), zap.Error(got.err))
		return
	}
	f.rsw, f.sets = got.w, got.sets
}

// setChanged applies one event of the ReplicaSets' watch; anything but an
// addition, change or deletion ends the following of them.
func (f *follower) setChanged(ev watch.Event, ok bool) {
	rs, isSet := ev.Object.(*appsv1.ReplicaSet)
	switch {
	case ok && isSet && (ev.Type == watch.Added || ev.Type == watch.Modified):
		f.sets[rs.Name] = rs
	case ok && isSet && ev.Type == watch.Deleted:
		delete(f.sets, rs.Name)
	case ok && ev.Type == watch.Bookmark:
	default:
		f.rsw.Stop()
		f.rsw, f.sets = nil, nil
	}
}

// setsRolledOut reports whether d, whose controller has seen the
// generation written, has rolled out by its ReplicaSets' own status, as
// its controller would next report it: the one ReplicaSet d controls with
// d's template has d's replicas, all of them ready and available, and every
// other one it controls has none, each status of its ReplicaSet's current
// generation. Anything else (two of d's template, none while d wants
// pods, an orphaned ReplicaSet with pods of its selector) is left to d's
// own status.
func setsRolledOut(d *appsv1.Deployment, generation int64, sets iter.Seq[*appsv1.ReplicaSet]) bool {
	if d.Status.ObservedGeneration < max(generation, d.Generation) {
		return false
	}
	want := replicas(d)
	current := 0
	for rs := range sets {
		if metav1.GetControllerOf(rs) == nil && ((rs.Spec.Replicas != nil && *rs.Spec.Replicas > 0) || rs.Status.Replicas > 0) {
			// Orphaned, with pods its selector may select (a canary's
			// ReplicaSet between the handover's delete of the canary and
			// an adoption): the Deployment's own status judges.
			return false
		}
		if !metav1.IsControlledBy(rs, d) {
			continue
		}
		st := rs.Status
		if st.ObservedGeneration < rs.Generation || rs.Spec.Replicas == nil {
			return false
		}
		if !equalIgnoreHash(rs.Spec.Template, d.Spec.Template) {
			if *rs.Spec.Replicas != 0 || st.Replicas != 0 {
				return false
			}
			continue
		}
		current++
		if *rs.Spec.Replicas != want || st.Replicas != want || st.ReadyReplicas != want || st.AvailableReplicas != want {
			return false
		}
	}
	return current == 1 || (current == 0 && want == 0)
}

// next returns the Deployment's next version: from the watch (opened from
// last's resource version) when it delivers one, or read afresh when the
// watch ends, reports an error, cannot open or is quiet for recheck. A
// change of its ReplicaSets returns last again, to be judged anew. A pod
// check's failure (on failed) is returned as failure.
func (f *follower) next(ctx context.Context, last *appsv1.Deployment, failed <-chan error) (d *appsv1.Deployment, failure, err error) {
	api := f.c.cs.AppsV1().Deployments(f.c.ns)
	if f.w == nil && last != nil {
		w, err := api.Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + f.name,
			ResourceVersion: last.ResourceVersion, TimeoutSeconds: ptr(int64(watchTimeout / time.Second))})
		if err == nil {
			f.w = w
		}
	}
	var events, setEvents <-chan watch.Event
	if f.w != nil {
		events = f.w.ResultChan()
	}
	ready := f.ready
	if last == nil {
		ready = nil // nothing to judge them with yet
	}
	if f.rsw != nil && last != nil {
		setEvents = f.rsw.ResultChan()
	}
	// The recheck is due recheck after the Deployment was last seen, not
	// after the last event of its ReplicaSets (which may come more often).
	if f.recheckAt.IsZero() {
		f.recheckAt = time.Now().Add(recheck)
	}
	t := time.NewTimer(time.Until(f.recheckAt))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	case failure := <-failed:
		return nil, failure, nil
	case got := <-ready:
		f.takeSets(got)
		return last, nil, nil
	case ev, ok := <-setEvents:
		f.setChanged(ev, ok)
		return last, nil, nil
	case <-t.C:
	case ev, ok := <-events:
		if d, isDeployment := ev.Object.(*appsv1.Deployment); ok && isDeployment && (ev.Type == watch.Modified || ev.Type == watch.Added) {
			f.recheckAt = time.Time{}
			return d, nil, nil
		}
		// Closed, deleted, an error (a resource version too old) or a
		// bookmark: read it, and open a new watch from there next time.
		f.w.Stop()
		f.w = nil
	}
	f.recheckAt = time.Time{}
	d, err = api.Get(ctx, f.name, metav1.GetOptions{})
	return d, nil, err
}

// stop ends both watches, also one followSets is still opening (whose
// watch is stopped once it is there: a watch never stopped keeps its
// reader blocked after its request is cancelled).
func (f *follower) stop() {
	if f.w != nil {
		f.w.Stop()
		f.w = nil
	}
	if f.rsw != nil {
		f.rsw.Stop()
		f.rsw, f.sets = nil, nil
	}
	if f.ready != nil {
		go func(ready <-chan setsFollowed) {
			if got := <-ready; got.w != nil {
				got.w.Stop()
			}
		}(f.ready)
		f.ready = nil
	}
}

// podChecks runs podFailure on the latest version of a Deployment offered,
// one check at a time, in a goroutine of its own that ends with the wait's
// context; the first certain failure is sent on failed.
type podChecks struct {
	offers chan *appsv1.Deployment
	failed chan error
}

func (c *convergence) startPodChecks(ctx context.Context) *podChecks {
	p := &podChecks{offers: make(chan *appsv1.Deployment, 1), failed: make(chan error, 1)}
	go func() {
		w := newPodWatch(time.Now)
		for {
			select {
			case <-ctx.Done():
				return
			case d := <-p.offers:
				if err := c.podFailure(ctx, d, w); err != nil {
					p.failed <- err
					return
				}
			}
		}
	}()
	return p
}

// offer hands d to the checks, in place of a version not yet checked.
func (p *podChecks) offer(d *appsv1.Deployment) {
	select {
	case <-p.offers:
	default:
	}
	select {
	case p.offers <- d:
	default:
	}
}

// ownDeadline says whether d's controller judges progress by a deadline at
// least the spec's (the rollout's own Deployments carry the spec's), so its
// ProgressDeadlineExceeded is the stage's verdict. A Deployment of the
// user's with a shorter progressDeadlineSeconds is still waited for until
// the spec's deadline: the controller only reports a stall and keeps
// rolling out, and a stage (or a rollback, which restores that field with
// the snapshot) must not fail because a busy control plane was slower than
// a deadline the spec did not set.
func (c *convergence) ownDeadline(d *appsv1.Deployment) bool {
	own := d.Spec.ProgressDeadlineSeconds
	return own == nil || time.Duration(*own)*time.Second >= c.deadline
}

// rolledOut reports whether d has rolled out the generation written: the
// controller has seen it and every replica is updated, ready and available,
// with no old pod left. A ProgressDeadlineExceeded condition is an error.
func rolledOut(d *appsv1.Deployment, generation int64) (bool, error) {
	st := d.Status
	if st.ObservedGeneration < max(generation, d.Generation) {
		return false, nil
	}
	for _, cond := range st.Conditions {
		if cond.Type == appsv1.DeploymentProgressing && cond.Status == corev1.ConditionFalse &&
			cond.Reason == "ProgressDeadlineExceeded" {
			return false, &ProgressDeadlineError{Namespace: d.Namespace, Deployment: d.Name, Message: cond.Message}
		}
	}
	want := replicas(d)
	return st.UpdatedReplicas == want && st.ReadyReplicas == want && st.AvailableReplicas == want && st.Replicas == want, nil
}

func notReady(ns, name string, last *appsv1.Deployment, deadline time.Duration) error {
	if last == nil {
		return fmt.Errorf("deployment %q not read within the progress deadline %s (+%s): %w", ns+"/"+name, deadline, waitGrace, platform.ErrProgressDeadline)
	}
	st := last.Status
	stalled := ""
	for _, cond := range st.Conditions {
		if cond.Type == appsv1.DeploymentProgressing && cond.Status == corev1.ConditionFalse {
			stalled = fmt.Sprintf(" (its controller: %s: %s)", cond.Reason, cond.Message)
		}
	}
	return fmt.Errorf("deployment %q not rolled out within the progress deadline %s (+%s): %d wanted, %d updated, %d ready, %d available, %d total%s: %w",
		ns+"/"+name, deadline, waitGrace, replicas(last), st.UpdatedReplicas, st.ReadyReplicas, st.AvailableReplicas, st.Replicas, stalled, platform.ErrProgressDeadline)
}
