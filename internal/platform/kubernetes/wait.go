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
	"k8s.io/apimachinery/pkg/types"
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
// It also follows the Deployment's ReplicaSets and pods through a watch
// each: once the controller has seen the generation written, the rollout
// is done when they say so (setsRolledOut), by the ReplicaSet controller's
// status the Deployment's status is made from, or by the pods that status
// counts. That status reaches the Deployment one controller pass later,
// and the Deployment controller, whose requests are paced (20 a second by
// default), took 10-100 ms for it in a rollout's busiest step here; the
// ReplicaSet controller, paced alike, wrote its own up to 100 ms after the
// last pod was ready.
func (c *convergence) wait(ctx context.Context, written *appsv1.Deployment) error {
	return c.waitFor(ctx, written, false)
}

// waitStatus waits until the stable Deployment's own status says it has
// rolled out its latest generation, as `kubectl rollout status` reads it.
// A converge that hands the Deployment back to its owner (the last
// canary step and the final state, a restore) ends with it: its waits
// end on the ReplicaSets and pods, which the Deployment controller (its
// requests paced) reports one pass later, and whoever looks at the
// Deployment once the rollout is over should find it saying what the
// rollout says.
func (c *convergence) waitStatus(ctx context.Context) error {
	d, err := c.getStable(ctx)
	if err != nil {
		return err
	}
	return c.waitFor(ctx, d, true)
}

func (c *convergence) waitFor(ctx context.Context, written *appsv1.Deployment, statusOnly bool) error {
	name := written.Name
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, c.deadline+waitGrace)
	defer cancel()
	var last *appsv1.Deployment
	pods := c.startPodChecks(ctx)
	f := &follower{c: c, name: name, statusOnly: statusOnly}
	defer f.stop()
	if !statusOnly {
		f.follow(ctx, written)
	}
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
			if f.done(view, gen, done && err == nil) {
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
// across versions, and its ReplicaSets and pods through a watch each.
type follower struct {
	c    *convergence
	name string
	w    watch.Interface
	// sets and pods are the ReplicaSets and pods of the Deployment's
	// selector as their watches last said; their items are nil when they
	// could not be listed or the watch ended (the wait then judges by the
	// Deployment's status alone, or by the ReplicaSets' status alone).
	sets      tracked[*appsv1.ReplicaSet]
	pods      tracked[*corev1.Pod]
	recheckAt time.Time // when the Deployment is read afresh; zero: recheck from now
	// statusOnly judges by the Deployment's own status alone (waitStatus).
	statusOnly bool
}

// done judges a version of the Deployment (view, with gen the generation
// written; statusDone its own status's verdict): by its ReplicaSets and
// pods once they are followed (judgeSets), by its status where they cannot
// tell or cannot be followed, and not at all while their lists are under
// way. Its status alone can look rolled out when it is not: the Deployment
// controller makes it from its ReplicaSets' status whatever generation
// that is of, so a shrink seen done by its pods (their ReplicaSet's status
// still counting the pods gone) and scaled back at once reads as a
// Deployment at its count with all of them ready.
func (f *follower) done(view *appsv1.Deployment, gen int64, statusDone bool) bool {
	if f.statusOnly {
		return statusDone
	}
	if f.sets.items == nil {
		return statusDone && f.sets.ready == nil
	}
	done, decided := judgeSets(view, gen, maps.Values(f.sets.items), f.pods.seq())
	return done || (!decided && statusDone)
}

// follow lists the ReplicaSets and the pods of d's selector and opens a
// watch of each from there, beside the wait's first read of the
// Deployment: next takes them up when they are ready.
func (f *follower) follow(ctx context.Context, d *appsv1.Deployment) {
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || sel.Empty() {
		return
	}
	opts := metav1.ListOptions{LabelSelector: sel.String()}
	rss, pods := f.c.cs.AppsV1().ReplicaSets(f.c.ns), f.c.cs.CoreV1().Pods(f.c.ns)
	f.sets.start(ctx, opts, rss.Watch, func(ctx context.Context, opts metav1.ListOptions) ([]*appsv1.ReplicaSet, string, error) {
		list, err := rss.List(ctx, opts)
		if err != nil {
			return nil, "", err
		}
		return pointers(list.Items), list.ResourceVersion, nil
	})
	f.pods.start(ctx, opts, pods.Watch, func(ctx context.Context, opts metav1.ListOptions) ([]*corev1.Pod, string, error) {
		list, err := pods.List(ctx, opts)
		if err != nil {
			return nil, "", err
		}
		return pointers(list.Items), list.ResourceVersion, nil
	})
}

func pointers[T any](items []T) []*T {
	out := make([]*T, len(items))
	for i := range items {
		out[i] = &items[i]
	}
	return out
}

// tracked is the objects of one kind of a selector, followed through a
// watch opened where their list left off.
type tracked[T metav1.Object] struct {
	items map[string]T // by name; nil when not followed (yet)
	w     watch.Interface
	ready <-chan followed[T] // start's result, until taken
}

// followed is what start found: a watch and the objects as listed, or why
// not.
type followed[T metav1.Object] struct {
	w     watch.Interface
	items map[string]T
	err   error
}

// start lists the objects and opens a watch from there, in a goroutine;
// its result comes on ready.
func (t *tracked[T]) start(ctx context.Context, opts metav1.ListOptions,
	open func(context.Context, metav1.ListOptions) (watch.Interface, error),
	list func(context.Context, metav1.ListOptions) ([]T, string, error)) {
	ready := make(chan followed[T], 1)
	t.ready = ready
	go func() {
		items, rv, err := list(ctx, opts)
		if err != nil {
			ready <- followed[T]{err: err}
			return
		}
		wopts := opts
		wopts.ResourceVersion, wopts.TimeoutSeconds = rv, ptr(int64(watchTimeout/time.Second))
		w, err := open(ctx, wopts)
		if err != nil {
			ready <- followed[T]{err: err}
			return
		}
		byName := make(map[string]T, len(items))
		for _, o := range items {
			byName[o.GetName()] = o
		}
		ready <- followed[T]{w: w, items: byName}
	}()
}

// take installs what start found.
func (t *tracked[T]) take(got followed[T], log *zap.Logger, what string) {
	t.ready = nil
	if got.err != nil {
		log.Debug(what+" not followed while waiting", zap.Error(got.err))
		return
	}
	t.w, t.items = got.w, got.items
}

// seq is the objects as last seen; nil when not followed.
func (t *tracked[T]) seq() iter.Seq[T] {
	if t.items == nil {
		return nil
	}
	return maps.Values(t.items)
}

// events is the watch's channel once taken (nil before: a nil channel is
// never ready).
func (t *tracked[T]) events() <-chan watch.Event {
	if t.w == nil {
		return nil
	}
	return t.w.ResultChan()
}

// changed applies one event of the watch; anything but an addition,
// change, deletion or bookmark ends the following.
func (t *tracked[T]) changed(ev watch.Event, ok bool) {
	o, isT := ev.Object.(T)
	switch {
	case ok && isT && (ev.Type == watch.Added || ev.Type == watch.Modified):
		t.items[o.GetName()] = o
	case ok && isT && ev.Type == watch.Deleted:
		delete(t.items, o.GetName())
	case ok && ev.Type == watch.Bookmark:
	default:
		t.w.Stop()
		t.w, t.items = nil, nil
	}
}

// stop ends the watch, also one start is still opening (whose watch is
// stopped once it is there: a watch never stopped keeps its reader
// blocked after its request is cancelled).
func (t *tracked[T]) stop() {
	if t.w != nil {
		t.w.Stop()
		t.w, t.items = nil, nil
	}
	if t.ready != nil {
		go func(ready <-chan followed[T]) {
			if got := <-ready; got.w != nil {
				got.w.Stop()
			}
		}(t.ready)
		t.ready = nil
	}
}

// setsRolledOut reports whether d, whose controller has seen the
// generation written, has rolled out by its ReplicaSets (judgeSets).
func setsRolledOut(d *appsv1.Deployment, generation int64, sets iter.Seq[*appsv1.ReplicaSet], pods iter.Seq[*corev1.Pod]) bool {
	done, _ := judgeSets(d, generation, sets, pods)
	return done
}

// judgeSets judges whether d, whose controller has seen the generation
// written, has rolled out by its ReplicaSets, as its controller would
// next report it: the one ReplicaSet d controls with d's template has d's
// replicas, all of them ready and available, and every other one it
// controls has none, each ReplicaSet's status of its current generation.
// decided is false where the ReplicaSets alone cannot tell (two of d's
// template, none while d wants pods, an orphaned ReplicaSet with pods of
// its selector): d's own status judges then.
//
// How many pods a ReplicaSet has, and how many are ready, is read from its
// status or, when pods is not nil (the pods of d's selector) and d wants
// some, from its pods themselves: the ReplicaSet controller, whose requests
// are paced like the Deployment controller's, wrote that status up to
// 100 ms after the last pod was ready here. A pod counts while it is not
// terminating and not finished (as the ReplicaSet controller counts it),
// and as available when ready, which it is at once only without
// minReadySeconds: with them, the status judges. A Deployment scaled to
// zero (stop-first) is judged by the status alone, as before any pod rule.
func judgeSets(d *appsv1.Deployment, generation int64, sets iter.Seq[*appsv1.ReplicaSet], pods iter.Seq[*corev1.Pod]) (done, decided bool) {
	if d.Status.ObservedGeneration < max(generation, d.Generation) {
		return false, true
	}
	want := replicas(d)
	var have map[types.UID]podCount
	if pods != nil && d.Spec.MinReadySeconds == 0 && want > 0 {
		have = countPods(pods)
	}
	current := 0
	for rs := range sets {
		if metav1.GetControllerOf(rs) == nil && ((rs.Spec.Replicas != nil && *rs.Spec.Replicas > 0) || rs.Status.Replicas > 0) {
			// Orphaned, with pods its selector may select (a canary's
			// ReplicaSet between the handover's delete of the canary and
			// an adoption): the Deployment's own status judges.
			return false, false
		}
		if !metav1.IsControlledBy(rs, d) {
			continue
		}
		st := rs.Status
		if st.ObservedGeneration < rs.Generation || rs.Spec.Replicas == nil {
			return false, true
		}
		n := have[rs.UID] // zero when it has no pod
		if !equalIgnoreHash(rs.Spec.Template, d.Spec.Template) {
			if *rs.Spec.Replicas != 0 || (st.Replicas != 0 && (have == nil || n.active != 0)) {
				return false, true
			}
			continue
		}
		current++
		if *rs.Spec.Replicas != want {
			return false, true
		}
		byStatus := st.Replicas == want && st.ReadyReplicas == want && st.AvailableReplicas == want
		byPods := have != nil && n.active == want && n.ready == want
		if !byStatus && !byPods {
			return false, true
		}
	}
	switch {
	case current == 1 || (current == 0 && want == 0):
		return true, true
	case current == 0:
		// None of d's template yet while d wants pods: as listed, its
		// controller's may not be there yet.
		return false, false
	}
	return false, false // two of d's template
}

// podCount is how many pods a ReplicaSet has, and how many of them are
// ready.
type podCount struct{ active, ready int32 }

// countPods counts pods by the ReplicaSet that controls them, those that
// are not terminating and not finished.
func countPods(pods iter.Seq[*corev1.Pod]) map[types.UID]podCount {
	out := map[types.UID]podCount{}
	for p := range pods {
		ref := metav1.GetControllerOf(p)
		if ref == nil || p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		n := out[ref.UID]
		n.active++
		if podReady(*p) {
			n.ready++
		}
		out[ref.UID] = n
	}
	return out
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
	var events, setEvents, podEvents <-chan watch.Event
	if f.w != nil {
		events = f.w.ResultChan()
	}
	setsReady, podsReady := f.sets.ready, f.pods.ready
	if last != nil {
		setEvents, podEvents = f.sets.events(), f.pods.events()
	} else {
		setsReady, podsReady = nil, nil // nothing to judge them with yet
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
	case got := <-setsReady:
		f.sets.take(got, f.c.log.With(zap.String("name", f.name)), "replicasets")
		return last, nil, nil
	case got := <-podsReady:
		f.pods.take(got, f.c.log.With(zap.String("name", f.name)), "pods")
		return last, nil, nil
	case ev, ok := <-setEvents:
		f.sets.changed(ev, ok)
		return last, nil, nil
	case ev, ok := <-podEvents:
		f.pods.changed(ev, ok)
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

// stop ends the watches, also those follow is still opening.
func (f *follower) stop() {
	if f.w != nil {
		f.w.Stop()
		f.w = nil
	}
	f.sets.stop()
	f.pods.stop()
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
