package kubernetes

import (
	"context"
	"fmt"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// A Deployment's hold is a ConfigMap named after it in its namespace,
// holding the hold's fields as data: nothing runs from it, it survives the
// Deployment's own changes, and the worker's Role already may get, create
// and delete ConfigMaps (a release's configuration).
func holdConfigMap(deployment string) string { return "stagecraft-hold-" + deployment }

// Hold marks the Deployment held by h. Marking it again keeps the first hold.
func (p *Platform) Hold(ctx context.Context, s spec.Spec, h platform.Hold) error {
	return forbidden(p.hold(ctx, s, h))
}

func (p *Platform) hold(ctx context.Context, s spec.Spec, h platform.Hold) error {
	k := s.Platform.Kubernetes
	cs, err := p.client(k)
	if err != nil {
		return err
	}
	ns, name := namespace(k), holdConfigMap(k.Deployment)
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Name:      name,
			Namespace: ns,
			Labels: map[string]string{platform.LabelService: s.Service, platform.LabelRole: "hold",
				"app.kubernetes.io/managed-by": "stagecraft"},
		},
		Data: h.Metadata(),
	}
	_, err = cs.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("write hold configmap %q: %w", ns+"/"+name, err)
	}
	// Read back: a ConfigMap of that name that is not a hold would leave
	// the target unmarked while the outcome says it is held.
	if held, err := p.heldBy(ctx, s); err != nil {
		return err
	} else if held == nil {
		return fmt.Errorf("hold configmap %q: a ConfigMap of that name exists and is not a Stagecraft hold: %w", ns+"/"+name, platform.ErrConfigConflict)
	}
	p.log.Warn("target held", zap.String("configmap", ns+"/"+name), zap.String("rollout", h.WorkflowID))
	return nil
}

// HeldBy returns the Deployment's hold, or nil when it has none.
func (p *Platform) HeldBy(ctx context.Context, s spec.Spec) (*platform.Hold, error) {
	h, err := p.heldBy(ctx, s)
	return h, forbidden(err)
}

func (p *Platform) heldBy(ctx context.Context, s spec.Spec) (*platform.Hold, error) {
	k := s.Platform.Kubernetes
	cs, err := p.client(k)
	if err != nil {
		return nil, err
	}
	ns, name := namespace(k), holdConfigMap(k.Deployment)
	cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get hold configmap %q: %w", ns+"/"+name, err)
	}
	if cm.Data[platform.LabelHold] == "" {
		return nil, nil // a ConfigMap of that name that is not a hold
	}
	h := platform.HoldFrom(cm.Data)
	return &h, nil
}

// ClearHold removes the Deployment's hold and returns it; nil when it had
// none.
func (p *Platform) ClearHold(ctx context.Context, s spec.Spec) (*platform.Hold, error) {
	h, err := p.heldBy(ctx, s)
	if err != nil || h == nil {
		return nil, forbidden(err)
	}
	k := s.Platform.Kubernetes
	cs, err := p.client(k)
	if err != nil {
		return nil, err
	}
	ns, name := namespace(k), holdConfigMap(k.Deployment)
	if err := cs.CoreV1().ConfigMaps(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return nil, forbidden(fmt.Errorf("delete hold configmap %q: %w", ns+"/"+name, err))
	}
	p.log.Info("hold cleared", zap.String("configmap", ns+"/"+name))
	return h, nil
}
