package kubernetes

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestTargetNotFoundError(t *testing.T) {
	for _, tc := range []struct {
		err  *TargetNotFoundError
		want string
	}{
		{&TargetNotFoundError{Kind: "deployment", Namespace: "prod", Name: "payment"}, `deployment "prod/payment" not found`},
		{&TargetNotFoundError{Kind: "service", Namespace: "prod", Name: "payment"}, `service "prod/payment" not found`},
		{&TargetNotFoundError{Kind: "container", Name: "app", In: `deployment "prod/payment"`, Detail: "the pod template has [web]"},
			`container "app" not found in deployment "prod/payment": the pod template has [web]`},
	} {
		t.Run(tc.want, func(t *testing.T) {
			if got := tc.err.Error(); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if !IsTargetNotFound(fmt.Errorf("snapshot: %w", tc.err)) {
				t.Error("IsTargetNotFound of a wrapped error is false")
			}
		})
	}
}

func TestContainerIndex(t *testing.T) {
	dep := func(names ...string) *appsv1.Deployment {
		d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "d"}}
		for _, n := range names {
			d.Spec.Template.Spec.Containers = append(d.Spec.Template.Spec.Containers, corev1.Container{Name: n})
		}
		return d
	}
	for _, tc := range []struct {
		name      string
		d         *appsv1.Deployment
		container string
		want      int
		wantErr   bool
	}{
		{"only one, unnamed", dep("app"), "", 0, false},
		{"named", dep("sidecar", "app"), "app", 1, false},
		{"two, unnamed", dep("sidecar", "app"), "", 0, true},
		{"missing", dep("app"), "web", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := containerIndex(tc.d, tc.container)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("got %d, %v; want %d, error %v", got, err, tc.want, tc.wantErr)
			}
			if err != nil && !IsTargetNotFound(err) {
				t.Errorf("error %v is not a TargetNotFoundError", err)
			}
		})
	}
}

func TestRolledOut(t *testing.T) {
	n := int32(3)
	mk := func(gen, observed int64, updated, ready, available, total int32, conds ...appsv1.DeploymentCondition) *appsv1.Deployment {
		return &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "d", Namespace: "ns", Generation: gen},
			Spec:       appsv1.DeploymentSpec{Replicas: &n},
			Status: appsv1.DeploymentStatus{ObservedGeneration: observed, UpdatedReplicas: updated, ReadyReplicas: ready,
				AvailableReplicas: available, Replicas: total, Conditions: conds},
		}
	}
	exceeded := appsv1.DeploymentCondition{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse,
		Reason: "ProgressDeadlineExceeded", Message: "timed out"}
	for _, tc := range []struct {
		name    string
		d       *appsv1.Deployment
		written int64
		want    bool
		wantErr bool
	}{
		{"done", mk(2, 2, 3, 3, 3, 3), 2, true, false},
		{"stale status", mk(2, 1, 3, 3, 3, 3), 2, false, false},
		{"stale read of the written generation", mk(1, 1, 3, 3, 3, 3), 2, false, false},
		{"old pods left", mk(2, 2, 3, 3, 3, 4), 2, false, false},
		{"not ready", mk(2, 2, 3, 2, 2, 3), 2, false, false},
		{"deadline exceeded", mk(2, 2, 1, 0, 0, 1, exceeded), 2, false, true},
		{"deadline of an older generation", mk(3, 2, 1, 0, 0, 1, exceeded), 3, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := rolledOut(tc.d, tc.written)
			var pde *ProgressDeadlineError
			if got != tc.want || (err != nil) != tc.wantErr || (err != nil && !errors.As(err, &pde)) {
				t.Fatalf("got %v, %v; want %v, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

// TestOwnDeadline: the controller's ProgressDeadlineExceeded decides a wait
// only for a Deployment whose own deadline is at least the spec's.
func TestOwnDeadline(t *testing.T) {
	c := &convergence{deadline: 10 * time.Minute}
	for _, tc := range []struct {
		name string
		own  *int32
		want bool
	}{
		{"unset (the API defaults it)", nil, true},
		{"the spec's, as on the rollout's own Deployments", ptr(int32(600)), true},
		{"longer", ptr(int32(1200)), true},
		{"shorter, the user's", ptr(int32(60)), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &appsv1.Deployment{Spec: appsv1.DeploymentSpec{ProgressDeadlineSeconds: tc.own}}
			if got := c.ownDeadline(d); got != tc.want {
				t.Errorf("ownDeadline = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestWithConfigMap(t *testing.T) {
	ref := func(name string) corev1.EnvFromSource {
		return corev1.EnvFromSource{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: name}}}
	}
	secret := corev1.EnvFromSource{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "api-secrets"}}}
	names := func(es []corev1.EnvFromSource) []string {
		var out []string
		for _, e := range es {
			if e.ConfigMapRef != nil {
				out = append(out, e.ConfigMapRef.Name)
			} else {
				out = append(out, "secret:"+e.SecretRef.Name)
			}
		}
		return out
	}
	tests := []struct {
		name string
		in   []corev1.EnvFromSource
		want []string
	}{
		{"none before", nil, []string{"api-config-new"}},
		{"replaces an earlier release's", []corev1.EnvFromSource{ref("shared"), ref("api-config-old"), secret},
			[]string{"shared", "secret:api-secrets", "api-config-new"}},
		{"already there", []corev1.EnvFromSource{ref("api-config-new")}, []string{"api-config-new"}},
	}
	for _, tt := range tests {
		if got := names(withConfigMap(tt.in, "api", "api-config-new")); !slices.Equal(got, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}
