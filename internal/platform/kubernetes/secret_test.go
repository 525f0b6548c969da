package kubernetes

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/stagecraft/stagecraft/internal/spec"
)

func TestNewTemplateSecretEnv(t *testing.T) {
	orig := &appsv1.Deployment{}
	orig.Spec.Template.Spec.Containers = []corev1.Container{
		{Name: "sidecar", Image: "proxy:1"},
		{Name: "app", Image: "demo:v1", Env: []corev1.EnvVar{
			{Name: "DB_PASSWORD", Value: "old-inline"},
			{Name: "DSN", Value: "postgres://app:$(DB_PASSWORD)@db"},
		}},
	}
	c := &convergence{orig: orig, ci: 1, spec: spec.Spec{Image: "demo:v2", Platform: spec.Platform{Kubernetes: &spec.Kubernetes{
		Deployment: "web",
		SecretEnv: map[string]spec.SecretRef{
			"DB_PASSWORD": {SecretKeyRef: &spec.SecretKeyRef{Name: "web-db", Key: "password"}},
			"API_TOKEN":   {SecretKeyRef: &spec.SecretKeyRef{Name: "web-api", Key: "token"}},
		},
	}}}}
	tpl := c.newTemplate()
	ref := func(name, secret, key string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: secret}, Key: key}}}
	}
	want := []corev1.EnvVar{
		ref("DB_PASSWORD", "web-db", "password"),
		{Name: "DSN", Value: "postgres://app:$(DB_PASSWORD)@db"},
		ref("API_TOKEN", "web-api", "token"),
	}
	if got := tpl.Spec.Containers[1].Env; !reflect.DeepEqual(got, want) {
		t.Errorf("env = %+v\nwant %+v", got, want)
	}
	if tpl.Spec.Containers[0].Env != nil || tpl.Spec.Containers[1].Image != "demo:v2" {
		t.Errorf("template = %+v", tpl.Spec.Containers)
	}
	if orig.Spec.Template.Spec.Containers[1].Env[0].Value != "old-inline" {
		t.Error("the snapshot's template changed")
	}
	b, _ := json.Marshal(tpl)
	if !strings.Contains(string(b), `"valueFrom":{"secretKeyRef":{"name":"web-db","key":"password"}}`) {
		t.Errorf("template JSON lacks the reference: %s", b)
	}
	// Converging again from a template that already has them changes nothing.
	orig.Spec.Template = tpl
	if again := c.newTemplate(); !reflect.DeepEqual(again.Spec.Containers[1].Env, want) {
		t.Errorf("second render = %+v", again.Spec.Containers[1].Env)
	}
}
