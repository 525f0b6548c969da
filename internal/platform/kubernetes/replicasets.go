package kubernetes

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
)

// replicaSets follows, for a wait, the ReplicaSets one Deployment controls,
// through one list and a watch from it. The ReplicaSet controller writes a
// ReplicaSet's status as its pods come and go; the Deployment controller
// sums those into the Deployment's status a sync later (behind its own
// client's rate limit), so a wait that reads the ReplicaSets sees a rollout
// done that much sooner (setsRolledOut). When they cannot be followed (no
// watch permission, an error) the wait goes by the Deployment's status
// alone, as before.
type replicaSets struct {
	changed chan struct{} // a ReplicaSet changed: judge again

	mu        sync.Mutex
	following bool
	byUID     map[types.UID]*appsv1.ReplicaSet
}

// followReplicaSets starts following the ReplicaSets of d (by its UID and
// selector) until ctx ends.
func (c *convergence) followReplicaSets(ctx context.Context, d *appsv1.Deployment) *replicaSets {
	r := &replicaSets{changed: make(chan struct{}, 1), byUID: map[types.UID]*appsv1.ReplicaSet{}}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || sel.Empty() || d.UID == "" {
		return r
	}
	api := c.cs.AppsV1().ReplicaSets(c.ns)
	opts := metav1.ListOptions{LabelSelector: sel.String()}
	go func() {
		for ctx.Err() == nil {
			list, err := api.List(ctx, opts)
			if err != nil {
				r.stopFollowing()
				c.log.Debug("cannot list replicasets while waiting; going by the deployment's status", zap.String("name", d.Name), zap.Error(err))
				return
			}
			r.reset(d.UID, list.Items)
			w, err := api.Watch(ctx, metav1.ListOptions{LabelSelector: opts.LabelSelector, ResourceVersion: list.ResourceVersion,
				TimeoutSeconds: ptr(int64(watchTimeout / time.Second))})
			if err != nil {
				r.stopFollowing()
				c.log.Debug("cannot watch replicasets while waiting; going by the deployment's status", zap.String("name", d.Name), zap.Error(err))
				return
			}
			r.drain(ctx, d.UID, w)
			w.Stop()
		}
	}()
	return r
}

// drain applies w's events until it ends (then the caller lists again).
func (r *replicaSets) drain(ctx context.Context, owner types.UID, w watch.Interface) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.ResultChan():
			rs, isRS := ev.Object.(*appsv1.ReplicaSet)
			if !ok || !isRS {
				return // closed, or an error (a resource version too old)
			}
			r.mu.Lock()
			switch {
			case ev.Type == watch.Deleted || !metav1.IsControlledBy(rs, ownerRef(owner)):
				delete(r.byUID, rs.UID)
			default:
				r.byUID[rs.UID] = rs
			}
			r.mu.Unlock()
			r.signal()
		}
	}
}

func (r *replicaSets) reset(owner types.UID, items []appsv1.ReplicaSet) {
	r.mu.Lock()
	r.following = true
	r.byUID = map[types.UID]*appsv1.ReplicaSet{}
	for i := range items {
		if rs := &items[i]; metav1.IsControlledBy(rs, ownerRef(owner)) {
			r.byUID[rs.UID] = rs
		}
	}
	r.mu.Unlock()
	r.signal()
}

func (r *replicaSets) stopFollowing() {
	r.mu.Lock()
	r.following = false
	r.mu.Unlock()
}

func (r *replicaSets) signal() {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// current returns the ReplicaSets as last seen; nil when they are not
// followed.
func (r *replicaSets) current() []*appsv1.ReplicaSet {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.following {
		return nil
	}
	out := make([]*appsv1.ReplicaSet, 0, len(r.byUID))
	for _, rs := range r.byUID {
		out = append(out, rs)
	}
	return out
}

// ownerRef stands for the Deployment of UID uid in IsControlledBy.
func ownerRef(uid types.UID) metav1.Object { return &metav1.ObjectMeta{UID: uid} }

// setsRolledOut says, from the ReplicaSets d controls, what rolledOut will
// say from d's status once its controller has summed them: d's controller
// has seen the generation written (and so scaled its ReplicaSets for it),
// exactly one ReplicaSet of d has or wants pods, it has d's template and
// all of d's replicas ready and available, and each ReplicaSet's
// controller has seen its own last change. Terminating pods
// count in no ReplicaSet's replicas, as in the Deployment's. nil sets (not
// followed) says nothing.
func setsRolledOut(d *appsv1.Deployment, generation int64, sets []*appsv1.ReplicaSet) bool {
	if sets == nil || d.Status.ObservedGeneration < max(generation, d.Generation) {
		return false
	}
	want := replicas(d)
	found := false
	for _, rs := range sets {
		if rs.Status.ObservedGeneration < rs.Generation {
			return false
		}
		spec := int32(1)
		if rs.Spec.Replicas != nil {
			spec = *rs.Spec.Replicas
		}
		if spec == 0 && rs.Status.Replicas == 0 {
			continue
		}
		// One ReplicaSet with pods, of d's template, at d's count.
		st := rs.Status
		if found || !equalIgnoreHash(rs.Spec.Template, d.Spec.Template) ||
			spec != want || st.Replicas != want || st.ReadyReplicas != want || st.AvailableReplicas != want {
			return false
		}
		found = true
	}
	return found || want == 0
}
