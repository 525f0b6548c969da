package kubernetes

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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
	// is quiet or cannot be opened.
	recheck = 2 * time.Second
)

// wait blocks until the Deployment written (at written.Generation) has rolled
// out, its controller reports ProgressDeadlineExceeded (when its deadline is
// not shorter than the spec's: ownDeadline), or the spec's progress deadline
// (plus a grace) passes; a deadline's error says what a pod not ready last
// reported (stalled). Each time it re-reads the Deployment it looks at the
// pods of its current ReplicaSet and ends the wait at once when one is
// certain never to become ready (podFailure: an image it cannot get, a
// crash loop, no node to run it). It watches the Deployment and re-reads it
// every few seconds in case the watch misses or cannot open.
func (c *convergence) wait(ctx context.Context, written *appsv1.Deployment) error {
	name := written.Name
	api := c.cs.AppsV1().Deployments(c.ns)
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, c.deadline+waitGrace)
	defer cancel()
	var last *appsv1.Deployment
	pods := newPodWatch(time.Now)
	for {
		d, err := api.Get(ctx, name, metav1.GetOptions{})
		switch {
		case err == nil:
			last = d
			done, err := rolledOut(d, written.Generation)
			if err != nil && c.ownDeadline(d) {
				return c.stalled(ctx, d, err)
			}
			if done {
				return nil
			}
			if d.Status.ObservedGeneration >= written.Generation {
				if err := c.podFailure(ctx, d, pods); err != nil {
					return err
				}
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
		c.awaitChange(ctx, name, last)
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

// awaitChange returns on the next watch event about name, after recheck, or
// when ctx ends.
func (c *convergence) awaitChange(ctx context.Context, name string, last *appsv1.Deployment) {
	t := time.NewTimer(recheck)
	defer t.Stop()
	opts := metav1.ListOptions{FieldSelector: "metadata.name=" + name, TimeoutSeconds: ptr(int64(recheck / time.Second * 2))}
	if last != nil {
		opts.ResourceVersion = last.ResourceVersion
	}
	w, err := c.cs.AppsV1().Deployments(c.ns).Watch(ctx, opts)
	if err != nil {
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		return
	}
	defer w.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-w.ResultChan():
	}
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
