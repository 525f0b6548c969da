package kubernetes

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// CheckLease refuses, with a *platform.FencedError, a rollout whose owner
// may not converge the Deployment now: another owner's lease holds it (or
// a later attempt of its own has claimed it); otherwise it claims the
// lease for the preparing attempt, writing its fence on the Deployment
// conditioned on the version it judged (so of two owners preparing at once,
// one is refused). Preparation asks it, so a rollout another namespace's
// lease refuses is rejected before any change.
func (p *Platform) CheckLease(ctx context.Context, s spec.Spec, mine platform.Fence) error {
	k := s.Platform.Kubernetes
	if mine.Zero() || k == nil {
		return nil
	}
	cs, err := p.client(k)
	if err != nil {
		return err
	}
	api := cs.AppsV1().Deployments(namespace(k))
	target := "deployment " + namespace(k) + "/" + k.Deployment
	for range 5 {
		d, err := api.Get(ctx, k.Deployment, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return nil // the snapshot says so
		case err != nil:
			return fmt.Errorf("read the lease of %s: %w", target, err)
		}
		if err := admits(target, mine, d.Annotations, time.Now()); err != nil {
			return err
		}
		d.Annotations = withFence(d.Annotations, mine)
		_, err = api.Update(ctx, d, metav1.UpdateOptions{})
		switch {
		case err == nil:
			return nil
		case !apierrors.IsConflict(err):
			return fmt.Errorf("claim the lease of %s: %w", target, err)
		}
	}
	return fmt.Errorf("claim the lease of %s: it kept changing under five attempts", target)
}
