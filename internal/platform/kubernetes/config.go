package kubernetes

import (
	"context"
	"fmt"
	"maps"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"go.uber.org/zap"

	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// AnnotationRelease names the release that wrote a ConfigMap.
const AnnotationRelease = "stagecraft.io/release"

// WriteConfig writes a release's configuration for a service as the
// immutable ConfigMap the spec names (spec.ConfigMapName), and reports the
// release ConfigMap the Deployment's pods use now, which a rollback returns
// to. A ConfigMap already there with the same content is kept: Created says
// whether this release (owner) wrote it, counting an earlier attempt of the
// same release.
func (p *Platform) WriteConfig(ctx context.Context, s spec.Spec, data map[string]string, owner string) (platform.ConfigResult, error) {
	res, err := p.writeConfig(ctx, s, data, owner)
	return res, forbidden(err)
}

func (p *Platform) writeConfig(ctx context.Context, s spec.Spec, data map[string]string, owner string) (platform.ConfigResult, error) {
	k := s.Platform.Kubernetes
	res := platform.ConfigResult{Service: s.Service, Name: k.ConfigMap, Keys: len(data)}
	if k.ConfigMap == "" {
		return res, fmt.Errorf("config for %q: the spec names no ConfigMap", s.Service)
	}
	cs, err := p.client(k)
	if err != nil {
		return res, err
	}
	ns := namespace(k)
	d, err := cs.AppsV1().Deployments(ns).Get(ctx, k.Deployment, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return res, &TargetNotFoundError{Kind: "deployment", Namespace: ns, Name: k.Deployment}
	}
	if err != nil {
		return res, fmt.Errorf("get deployment %q: %w", ns+"/"+k.Deployment, err)
	}
	res.Previous = releaseConfigMaps(d, k.Deployment)
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Name:        k.ConfigMap,
			Namespace:   ns,
			Labels:      map[string]string{platform.LabelService: s.Service, "app.kubernetes.io/managed-by": "stagecraft"},
			Annotations: map[string]string{AnnotationRelease: owner},
		},
		Data:      data,
		Immutable: ptr(true),
	}
	_, err = cs.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{})
	if err == nil {
		res.Created = true
		p.log.Info("configmap written", zap.String("configmap", ns+"/"+k.ConfigMap))
		return res, nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return res, fmt.Errorf("create configmap %q: %w", ns+"/"+k.ConfigMap, err)
	}
	cur, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, k.ConfigMap, metav1.GetOptions{})
	if err != nil {
		return res, fmt.Errorf("get configmap %q: %w", ns+"/"+k.ConfigMap, err)
	}
	if !maps.Equal(cur.Data, data) {
		return res, &ConfigConflictError{Namespace: ns, Name: k.ConfigMap}
	}
	res.Created = cur.Annotations[AnnotationRelease] == owner
	return res, nil
}

// RemoveConfig deletes the ConfigMap a release (owner) wrote for a service,
// once no pod template of the service refers to it: a preparation's
// rollback. One it did not write is left alone; one still referred to is
// left and reported (InUse), as is one already gone (Removed false).
func (p *Platform) RemoveConfig(ctx context.Context, s spec.Spec, owner string) (platform.ConfigResult, error) {
	res, err := p.removeConfig(ctx, s, owner)
	return res, forbidden(err)
}

func (p *Platform) removeConfig(ctx context.Context, s spec.Spec, owner string) (platform.ConfigResult, error) {
	k := s.Platform.Kubernetes
	res := platform.ConfigResult{Service: s.Service, Name: k.ConfigMap}
	cs, err := p.client(k)
	if err != nil {
		return res, err
	}
	ns := namespace(k)
	cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, k.ConfigMap, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return res, nil
	case err != nil:
		return res, fmt.Errorf("get configmap %q: %w", ns+"/"+k.ConfigMap, err)
	case cm.Annotations[AnnotationRelease] != owner:
		return res, nil
	}
	for _, name := range []string{k.Deployment, canaryName(k.Deployment), greenName(k.Deployment)} {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return res, fmt.Errorf("get deployment %q: %w", ns+"/"+name, err)
		}
		for _, used := range releaseConfigMaps(d, k.Deployment) {
			if used == k.ConfigMap {
				res.InUse = append(res.InUse, name)
			}
		}
	}
	if len(res.InUse) > 0 {
		return res, nil
	}
	err = cs.CoreV1().ConfigMaps(ns).Delete(ctx, k.ConfigMap, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &cm.UID}})
	if err != nil && !apierrors.IsNotFound(err) {
		return res, fmt.Errorf("delete configmap %q: %w", ns+"/"+k.ConfigMap, err)
	}
	res.Removed = err == nil
	p.log.Info("configmap removed", zap.String("configmap", ns+"/"+k.ConfigMap))
	return res, nil
}

// releaseConfigMaps lists the release ConfigMaps a Deployment's pod
// template takes its environment from.
func releaseConfigMaps(d *appsv1.Deployment, deployment string) []string {
	var out []string
	for _, c := range d.Spec.Template.Spec.Containers {
		for _, e := range c.EnvFrom {
			if ref := e.ConfigMapRef; ref != nil && spec.IsReleaseConfigMap(deployment, ref.Name) {
				out = append(out, ref.Name)
			}
		}
	}
	return out
}

// ConfigConflictError: a ConfigMap with the release's name holds other
// data. Names carry a hash of the content, so only a hand-made object can
// do this; it is not overwritten.
type ConfigConflictError struct{ Namespace, Name string }

func (e *ConfigConflictError) Error() string {
	return fmt.Sprintf("configmap %q exists with other data; stagecraft does not overwrite it", e.Namespace+"/"+e.Name)
}

func (e *ConfigConflictError) Unwrap() error { return platform.ErrConfigConflict }
