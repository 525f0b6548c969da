//go:build integration

package kubernetes

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/stagecraft/stagecraft/internal/plan"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// TestSecretKeyRef: the new version's pods take a variable from a Secret by
// reference (the canary's template, then the stable one's), the snapshot of
// the promoted Deployment holds only the reference, and a rollback returns
// the template without it.
func TestSecretKeyRef(t *testing.T) {
	e := newEnv(t, nil, true)
	const value = "s3cr3t-in-the-cluster"
	if _, err := cs.CoreV1().Secrets(e.ns).Create(e.ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "web-db"},
		StringData: map[string]string{"password": value},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create secret: %v", err)
	}
	e.spec.Platform.Kubernetes.SecretEnv = map[string]spec.SecretRef{
		"DB_PASSWORD": {SecretKeyRef: &spec.SecretKeyRef{Name: "web-db", Key: "password"}},
	}
	want := []corev1.EnvVar{{Name: "GREETING", Value: "hello"}, {Name: "DB_PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: "web-db"}, Key: "password"}}}}
	snap := e.snapshot()

	counts(t, e.converge(snap, plan.Desired{New: 1, Old: 3, Traffic: plan.TrafficShared, Order: plan.Surge}), 1, 3)
	if got := e.deployment(canaryName(target)).Spec.Template.Spec.Containers[0].Env; !reflect.DeepEqual(got, want) {
		t.Errorf("canary env = %+v, want %+v", got, want)
	}
	counts(t, e.converge(snap, plan.Desired{New: 4, Old: 0, Traffic: plan.TrafficShared, Order: plan.Surge}), 4, 0)
	if got := e.deployment(target).Spec.Template.Spec.Containers[0].Env; !reflect.DeepEqual(got, want) {
		t.Errorf("stable env = %+v, want %+v", got, want)
	}
	promoted := e.snapshot()
	b, _ := json.Marshal(promoted)
	if strings.Contains(string(b), value) || !strings.Contains(string(b), `"secretKeyRef":{"name":"web-db","key":"password"}`) {
		t.Errorf("snapshot of the promoted Deployment: %s", b)
	}

	counts(t, e.converge(snap, plan.Desired{New: 0, Old: 4, Traffic: plan.TrafficOld, Order: plan.Surge}), 0, 4)
	e.assertRestored(snap, false)
	if got := e.deployment(target).Spec.Template.Spec.Containers[0].Env; !reflect.DeepEqual(got, want[:1]) {
		t.Errorf("env after rollback = %+v, want %+v", got, want[:1])
	}
}
