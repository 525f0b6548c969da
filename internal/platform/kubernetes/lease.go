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
// a later attempt of its own has claimed it). Preparation asks it, so a
// rollout another namespace's lease refuses is rejected before any change.
func (p *Platform) CheckLease(ctx context.Context, s spec.Spec, mine platform.Fence) error {
	k := s.Platform.Kubernetes
	if mine.Zero() || k == nil {
		return nil
	}
	cs, err := p.client(k)
	if err != nil {
		return err
	}
	d, err := cs.AppsV1().Deployments(namespace(k)).Get(ctx, k.Deployment, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil // the snapshot says so
	case err != nil:
		return fmt.Errorf("read the lease of deployment %s/%s: %w", namespace(k), k.Deployment, err)
	}
	return admits("deployment "+namespace(k)+"/"+k.Deployment, mine, d.Annotations, time.Now())
}
