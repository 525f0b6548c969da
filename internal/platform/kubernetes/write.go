package kubernetes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"go.uber.org/zap"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"

	"github.com/stagecraft/stagecraft/internal/platform"
)

// ensureRollout creates want or updates the existing Deployment of that name
// to it, then waits for it to roll out. An existing Deployment must be
// Stagecraft's for this service; one whose selector differs (it cannot be
// changed) is deleted and created again.
func (c *convergence) ensureRollout(ctx context.Context, want *appsv1.Deployment) error {
	return c.ensureRolloutFrom(ctx, want, nil)
}

// ensureRolloutFrom is ensureRollout whose first attempt starts from
// first, the Deployment as just read (nil: read it); a retry reads it
// again.
func (c *convergence) ensureRolloutFrom(ctx context.Context, want, first *appsv1.Deployment) error {
	api := c.cs.AppsV1().Deployments(c.ns)
	var written *appsv1.Deployment
	err := retry.OnError(retry.DefaultRetry, conflictOrExists, func() error {
		cur, err := first, error(nil)
		if first == nil {
			cur, err = api.Get(ctx, want.Name, metav1.GetOptions{})
		}
		first = nil
		if err == nil && !equality.Semantic.DeepEqual(cur.Spec.Selector, want.Spec.Selector) {
			if err := c.ownedByUs(cur.Labels, "deployment", cur.Name); err != nil {
				return err
			}
			c.log.Info("replacing deployment with another selector", zap.String("name", want.Name))
			if err := c.deleteAndWait(ctx, cur); err != nil {
				return err
			}
			err = apierrors.NewNotFound(appsv1.Resource("deployments"), want.Name)
		}
		if apierrors.IsNotFound(err) {
			out, err := c.createFenced(ctx, want)
			if err != nil {
				return err
			}
			written = out
			c.res.Created = append(c.res.Created, "deployment/"+want.Name)
			c.log.Info("created deployment", zap.String("name", want.Name), zap.Int32("replicas", *want.Spec.Replicas))
			return nil
		}
		if err != nil {
			return err
		}
		if err := c.ownedByUs(cur.Labels, "deployment", cur.Name); err != nil {
			return err
		}
		written, err = c.updateDeployment(ctx, cur, func(d *appsv1.Deployment) {
			d.Labels = want.Labels
			d.Spec = want.Spec
		})
		return err
	})
	if err != nil {
		return fmt.Errorf("write deployment %q: %w", c.ns+"/"+want.Name, err)
	}
	return c.wait(ctx, written)
}

// getStable reads the stable Deployment.
func (c *convergence) getStable(ctx context.Context) (*appsv1.Deployment, error) {
	d, err := c.cs.AppsV1().Deployments(c.ns).Get(ctx, c.orig.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, &TargetNotFoundError{Kind: "deployment", Namespace: c.ns, Name: c.orig.Name}
	}
	if err != nil {
		return nil, fmt.Errorf("get deployment %q: %w", c.ns+"/"+c.orig.Name, err)
	}
	return d, nil
}

// writeStable applies mutate to the live stable Deployment, writes it if
// that changed anything, and waits for it to roll out. When the Deployment
// is gone, recreate (if not nil) is created in its place; otherwise that is
// a TargetNotFoundError.
func (c *convergence) writeStable(ctx context.Context, mutate func(*appsv1.Deployment), recreate *appsv1.Deployment) error {
	written, err := c.updateStable(ctx, mutate, recreate)
	if err != nil {
		return err
	}
	return c.wait(ctx, written)
}

// updateStable is writeStable without the wait: it returns the Deployment
// as written (or as found, when nothing changed).
func (c *convergence) updateStable(ctx context.Context, mutate func(*appsv1.Deployment), recreate *appsv1.Deployment) (*appsv1.Deployment, error) {
	var written *appsv1.Deployment
	err := retry.OnError(retry.DefaultRetry, conflictOrExists, func() error {
		cur, err := c.getStable(ctx)
		if err != nil && !IsTargetNotFound(err) {
			return err
		}
		written, err = c.writeStableFrom(ctx, cur, mutate, recreate)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("write deployment %q: %w", c.ns+"/"+c.orig.Name, err)
	}
	return written, nil
}

// updateStableFrom is updateStable whose first attempt starts from first,
// the stable Deployment as just read; a lost race reads it again.
func (c *convergence) updateStableFrom(ctx context.Context, first *appsv1.Deployment, mutate func(*appsv1.Deployment)) (*appsv1.Deployment, error) {
	written, err := c.updateDeployment(ctx, first, mutate)
	if conflictOrExists(err) {
		return c.updateStable(ctx, mutate, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("write deployment %q: %w", c.ns+"/"+c.orig.Name, err)
	}
	return written, nil
}

// writeStableFrom is one attempt of updateStable from cur, the stable
// Deployment as just read (nil when it is not there): a lost race is the
// caller's to retry.
func (c *convergence) writeStableFrom(ctx context.Context, cur *appsv1.Deployment, mutate func(*appsv1.Deployment), recreate *appsv1.Deployment) (*appsv1.Deployment, error) {
	if cur != nil {
		return c.updateDeployment(ctx, cur, mutate)
	}
	if recreate == nil {
		return nil, &TargetNotFoundError{Kind: "deployment", Namespace: c.ns, Name: c.orig.Name}
	}
	recreate = recreate.DeepCopy()
	c.stamp(&recreate.ObjectMeta)
	out, err := c.cs.AppsV1().Deployments(c.ns).Create(ctx, recreate, metav1.CreateOptions{})
	if err != nil {
		return nil, err
	}
	c.res.Created = append(c.res.Created, "deployment/"+c.orig.Name)
	c.log.Info("recreated deployment from the snapshot")
	return out, nil
}

// updateDeployment applies mutate to a copy of cur, a Deployment of this
// target just read and admitted by c's fence, stamps c's fence on it and
// writes it if that changed anything. It returns the Deployment as written
// (or cur, when nothing changed); a lost race is the caller's to retry.
func (c *convergence) updateDeployment(ctx context.Context, cur *appsv1.Deployment, mutate func(*appsv1.Deployment)) (*appsv1.Deployment, error) {
	if err := c.admit(cur); err != nil {
		return nil, err
	}
	upd := cur.DeepCopy()
	mutate(upd)
	c.stamp(&upd.ObjectMeta)
	if equality.Semantic.DeepEqual(upd, cur) {
		return cur, nil
	}
	out, err := c.cs.AppsV1().Deployments(c.ns).Update(ctx, upd, metav1.UpdateOptions{})
	if err != nil {
		return nil, err
	}
	c.res.Rewired = appendOnce(c.res.Rewired, "deployment/"+cur.Name)
	c.log.Info("updated deployment", zap.String("name", cur.Name), zap.Int32("replicas", replicas(out)))
	return out, nil
}

// restoreService gives the Service its snapshot labels, annotations and
// spec, keeping the cluster IPs it was allocated.
func (c *convergence) restoreService(ctx context.Context) error {
	return c.restoreServiceFrom(ctx, nil)
}

// restoreServiceFrom is restoreService starting from first, the Service
// as just read (nil: read it).
func (c *convergence) restoreServiceFrom(ctx context.Context, first *corev1.Service) error {
	if c.origSvc == nil {
		return nil
	}
	want := c.origSvc
	return c.writeServiceFrom(ctx, first, func(s *corev1.Service) {
		s.Labels = want.Labels
		s.Annotations = keepFence(s.Annotations, want.Annotations)
		ss := *want.Spec.DeepCopy()
		ss.ClusterIP, ss.ClusterIPs = s.Spec.ClusterIP, s.Spec.ClusterIPs
		ss.IPFamilies, ss.IPFamilyPolicy = s.Spec.IPFamilies, s.Spec.IPFamilyPolicy
		ss.HealthCheckNodePort = s.Spec.HealthCheckNodePort
		s.Spec = ss
	})
}

// writeService applies mutate to the live Service and writes it if that
// changed anything.
func (c *convergence) writeService(ctx context.Context, mutate func(*corev1.Service)) error {
	return c.writeServiceFrom(ctx, nil, mutate)
}

// writeServiceFrom is writeService whose first attempt starts from first,
// the Service as just read (nil: read it); a retry reads it again.
func (c *convergence) writeServiceFrom(ctx context.Context, first *corev1.Service, mutate func(*corev1.Service)) error {
	api := c.cs.CoreV1().Services(c.ns)
	name := c.origSvc.Name
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur := first
		first = nil
		if cur == nil {
			var err error
			cur, err = api.Get(ctx, name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return &TargetNotFoundError{Kind: "service", Namespace: c.ns, Name: name}
			}
			if err != nil {
				return err
			}
		}
		if err := c.admit(cur); err != nil {
			return err
		}
		upd := cur.DeepCopy()
		mutate(upd)
		c.stamp(&upd.ObjectMeta)
		if equality.Semantic.DeepEqual(upd, cur) {
			return nil
		}
		if _, err := api.Update(ctx, upd, metav1.UpdateOptions{}); err != nil {
			return err
		}
		c.res.Rewired = appendOnce(c.res.Rewired, "service/"+name)
		c.log.Info("updated service", zap.String("name", name), zap.Any("selector", upd.Spec.Selector))
		return nil
	})
	if err != nil {
		return fmt.Errorf("write service %q: %w", c.ns+"/"+name, err)
	}
	return nil
}

// conflictOrExists says a write lost a race: read again and retry.
func conflictOrExists(err error) bool {
	return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err)
}

// createFenced creates d, one of the rollout's Deployments, carrying c's
// fence. The target's fence is checked before, and again after: a later
// attempt may have fenced the target in between, and may then have looked
// for d before it existed (a rollback that found no canary to delete), so
// d is deleted again and the attempt refused. With a fence, d is created
// paused (its controller makes no ReplicaSet and no pod for it) and
// resumed only once the second check has passed, in a write conditioned
// on d's fence like any other: an attempt frozen between the create and
// that check runs no pods meanwhile, and one that never resumes leaves a
// paused Deployment, not a serving one. (Created with no replicas and
// scaled up instead, it would roll out by scaling, which the controller's
// progress deadline does not judge: a canary that cannot start would wait
// out the spec's deadline without the controller's reason.)
func (c *convergence) createFenced(ctx context.Context, d *appsv1.Deployment) (*appsv1.Deployment, error) {
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
	// The controller writes d's status right after the create, so an
	// update from the create's read would lose that race: the resume is a
	// JSON patch conditioned on d's UID and fence instead, as an update
	// would be. When it fails (the fence moved, d was replaced, or the
	// patch was refused) the update below reads d again and says why.
	resumed, err := c.resumeCreated(ctx, out, paused)
	if err == nil {
		return resumed, nil
	}
	c.log.Debug("resume by patch failed; resuming by update", zap.String("name", d.Name), zap.Error(err))
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
				if again.UID != out.UID {
					// Not the Deployment this attempt created: deleted and
					// made again by someone else meanwhile.
					if ferr := c.admitTarget(ctx); ferr != nil {
						return ferr
					}
					return fmt.Errorf("deployment %q was replaced (deleted and created again by someone else) before this converge could resume the one it created", c.ns+"/"+d.Name)
				}
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

// resumeCreated sets spec.paused of d, which c created paused, to paused,
// in one JSON patch whose first operations test that it is still d (its
// UID) and still carries c's fence (the patch fails, changing nothing,
// once another attempt has written its own).
func (c *convergence) resumeCreated(ctx context.Context, d *appsv1.Deployment, paused bool) (*appsv1.Deployment, error) {
	patch, err := json.Marshal([]map[string]any{
		{"op": "test", "path": "/metadata/uid", "value": string(d.UID)},
		{"op": "test", "path": "/metadata/annotations/" + jsonPointerEscape(AnnotationFence), "value": encodeFence(c.fence)},
		{"op": "replace", "path": "/spec/paused", "value": paused},
	})
	if err != nil {
		return nil, err
	}
	return c.cs.AppsV1().Deployments(c.ns).Patch(ctx, d.Name, types.JSONPatchType, patch, metav1.PatchOptions{})
}

// jsonPointerEscape escapes s as one token of a JSON pointer (RFC 6901).
func jsonPointerEscape(s string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
}

// undoCreate deletes d, which c created after the target's fence admitted
// it and which a later attempt's fence fenced before c could check again,
// unless the later attempt has written its fence on it since (then it has
// d in hand). The Deployment controller writes d's status and revision at
// once, so d is read again for the resourceVersion the delete is
// conditioned on.
func (c *convergence) undoCreate(ctx context.Context, d *appsv1.Deployment) {
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
