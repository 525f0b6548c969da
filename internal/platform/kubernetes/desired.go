package kubernetes

import (
	"maps"
	"slices"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// newTemplate is the snapshot's pod template with the new image and, when
// the spec names one, the new configuration: the container's environment
// comes from that ConfigMap in place of one an earlier release wrote.
func (c *convergence) newTemplate() corev1.PodTemplateSpec {
	tpl := *c.orig.Spec.Template.DeepCopy()
	ctr := &tpl.Spec.Containers[c.ci]
	ctr.Image = c.spec.Image
	if k := c.spec.Platform.Kubernetes; k.ConfigMap != "" {
		ctr.EnvFrom = withConfigMap(ctr.EnvFrom, k.Deployment, k.ConfigMap)
	}
	ctr.Env = withSecretEnv(ctr.Env, c.spec.Platform.Kubernetes.SecretEnv)
	return tpl
}

// withSecretEnv returns env with each of refs as a valueFrom.secretKeyRef
// entry: one of the same name is replaced where it stands (a later entry
// may refer to it as $(NAME)), new ones follow in name order. Only the
// reference goes into the template, so neither the Deployment nor the
// snapshot, and so no workflow history, holds a value.
func withSecretEnv(env []corev1.EnvVar, refs map[string]spec.SecretRef) []corev1.EnvVar {
	if len(refs) == 0 {
		return env
	}
	entry := func(name string) corev1.EnvVar {
		r := refs[name].SecretKeyRef
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: r.Name},
			Key:                  r.Key,
		}}}
	}
	out := make([]corev1.EnvVar, 0, len(env)+len(refs))
	done := map[string]bool{}
	for _, e := range env {
		if ref, ok := refs[e.Name]; ok && ref.SecretKeyRef != nil {
			if !done[e.Name] {
				out = append(out, entry(e.Name))
				done[e.Name] = true
			}
			continue
		}
		out = append(out, e)
	}
	for _, name := range slices.Sorted(maps.Keys(refs)) {
		if !done[name] && refs[name].SecretKeyRef != nil {
			out = append(out, entry(name))
		}
	}
	return out
}

// withConfigMap returns envFrom with name in it, and without the other
// ConfigMaps releases wrote for deployment.
func withConfigMap(envFrom []corev1.EnvFromSource, deployment, name string) []corev1.EnvFromSource {
	out := make([]corev1.EnvFromSource, 0, len(envFrom)+1)
	found := false
	for _, e := range envFrom {
		if ref := e.ConfigMapRef; ref != nil {
			if ref.Name == name {
				found = true
			} else if spec.IsReleaseConfigMap(deployment, ref.Name) {
				continue
			}
		}
		out = append(out, e)
	}
	if !found {
		out = append(out, corev1.EnvFromSource{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: name}}})
	}
	return out
}

// rolloutLabels returns the labels every object this rollout creates carries.
func (c *convergence) rolloutLabels(base map[string]string) map[string]string {
	out := maps.Clone(base)
	if out == nil {
		out = map[string]string{}
	}
	out[platform.LabelService] = c.spec.Service
	out[platform.LabelRollout] = c.rollout
	out[platform.LabelRole] = platform.RoleNew
	return out
}

// canary is the desired canary Deployment: the stable template with the new
// image and nothing else, selected by the stable Deployment's own selector,
// so that the Service sends its pods their share of requests and, at the
// last step, the stable Deployment can take its ReplicaSet over as its own
// new one (adopt.go): the Deployment controller adopts an orphaned
// ReplicaSet its selector matches and rolls on from the one whose template
// equals its own. Only the Deployment object carries the rollout's labels;
// its pods are told from the stable ones by their ReplicaSet's controller
// (ownedPods), which is how every count here tells them anyway.
func (c *convergence) canary() *appsv1.Deployment {
	sel := c.orig.Spec.Selector.DeepCopy()
	if sel == nil {
		sel = &metav1.LabelSelector{}
	}
	return c.rolloutDeployment(canaryName(c.orig.Name), sel, c.newTemplate())
}

// green is the desired green Deployment: the stable template with the new
// image, minus the labels the Service selects on, plus stagecraft.color.
func (c *convergence) green() *appsv1.Deployment {
	tpl := c.newTemplate()
	tpl.Labels = c.rolloutLabels(tpl.Labels)
	sel := c.orig.Spec.Selector.DeepCopy()
	if sel == nil {
		sel = &metav1.LabelSelector{}
	}
	sel.MatchLabels = maps.Clone(sel.MatchLabels)
	if sel.MatchLabels == nil {
		sel.MatchLabels = map[string]string{}
	}
	for k := range c.origSvc.Spec.Selector {
		delete(tpl.Labels, k)
		delete(sel.MatchLabels, k)
	}
	tpl.Labels[LabelTrack] = trackGreen
	tpl.Labels[LabelColor] = colorGreen
	sel.MatchLabels[platform.LabelService] = c.spec.Service
	sel.MatchLabels[LabelColor] = colorGreen
	return c.rolloutDeployment(greenName(c.orig.Name), sel, tpl)
}

// greenSelector is the Service selector after the switch: green's pods only.
func (c *convergence) greenSelector() map[string]string {
	return map[string]string{
		platform.LabelService: c.spec.Service,
		platform.LabelRollout: c.rollout,
		LabelColor:            colorGreen,
	}
}

func (c *convergence) rolloutDeployment(name string, sel *metav1.LabelSelector, tpl corev1.PodTemplateSpec) *appsv1.Deployment {
	ds := *c.orig.Spec.DeepCopy()
	ds.Replicas = ptr(int32(c.desired.New))
	ds.Selector = sel
	ds.Template = tpl
	ds.Paused = false
	ds.ProgressDeadlineSeconds = ptr(int32(max(1, c.deadline/time.Second)))
	return &appsv1.Deployment{
		TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      name,
			Namespace: c.ns,
			Labels:    c.rolloutLabels(c.orig.Labels),
		},
		Spec: ds,
	}
}
