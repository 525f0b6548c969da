//go:build integration

package kubernetes

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap/zaptest"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/stagecraft/stagecraft/activities"
	"github.com/stagecraft/stagecraft/internal/health"
	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

type noChecks struct{}

func (noChecks) Round(context.Context, []spec.Check, []spec.Check, []string) health.Round {
	return health.Round{}
}
func (noChecks) Allowlist() []string { return nil }

// workerClient applies deployments/kubernetes/rbac.yaml's Role to ns and
// returns a client for its ServiceAccount: the worker's least privilege.
func workerClient(t *testing.T, ns string) kubernetes.Interface {
	t.Helper()
	ctx := context.Background()
	_, file, _, _ := runtime.Caller(0)
	raw, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "..", "deployments", "kubernetes", "rbac.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.Role
	var binding rbacv1.RoleBinding
	for _, doc := range strings.Split(string(raw), "\n---\n") {
		switch {
		case strings.Contains(doc, "\nkind: RoleBinding\n"):
			err = yaml.UnmarshalStrict([]byte(doc), &binding)
		case strings.Contains(doc, "\nkind: Role\n"):
			err = yaml.UnmarshalStrict([]byte(doc), &role)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	role.Namespace, binding.Namespace = ns, ns
	binding.Subjects[0].Namespace = ns
	sa := binding.Subjects[0].Name
	if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.RbacV1().Roles(ns).Create(ctx, &role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.RbacV1().RoleBindings(ns).Create(ctx, &binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tok, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authnv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.BearerToken, cfg.BearerTokenFile = tok.Status.Token, ""
	cfg.CertFile, cfg.KeyFile, cfg.CertData, cfg.KeyData = "", "", nil, nil
	cfg.Username, cfg.Password = "", ""
	limited, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return limited
}

// TestHoldMarker: on a real API server, as the worker's least-privilege
// service account, a hold written after a failed rollback is a ConfigMap
// beside the Deployment that outlives the Platform that wrote it; Prepare
// refuses the held target, naming the failed rollout and how to clear it,
// before it snapshots anything; once cleared, Prepare accepts it again.
func TestHoldMarker(t *testing.T) {
	e := newEnv(t, nil, false)
	worker := workerClient(t, e.ns)
	p := NewForClient(worker, zaptest.NewLogger(t))
	s := e.spec
	s.Strategy.Type = spec.Canary
	s.Strategy.Steps = []int{50, 100}
	s.Health.Checks = []spec.Check{{Name: "healthz", HTTP: &spec.HTTPCheck{URL: "http://{{.Address}}/healthz"}}}
	s = s.WithDefaults()
	a := &activities.Activities{Platforms: map[string]activities.Platform{spec.PlatformKubernetes: p}, Checker: noChecks{}}
	if _, err := a.Prepare(e.ctx, activities.PrepareInput{Spec: s}); err != nil {
		t.Fatalf("prepare before any hold: %v", err)
	}
	h := platform.Hold{WorkflowID: s.WorkflowID(), RunID: "run-1", At: time.Now().UTC().Truncate(time.Second),
		Reason: "stage 1 failed; verify restored service: check \"healthz\" failed"}
	if err := a.Hold(e.ctx, activities.HoldInput{Spec: s, Hold: h}); err != nil {
		t.Fatalf("hold: %v", err)
	}
	if err := a.Hold(e.ctx, activities.HoldInput{Spec: s, Hold: platform.Hold{WorkflowID: "other", RunID: "run-2"}}); err != nil {
		t.Fatalf("hold again: %v", err)
	}
	cm, err := cs.CoreV1().ConfigMaps(e.ns).Get(e.ctx, holdConfigMap(target), metav1.GetOptions{})
	if err != nil {
		t.Fatalf("hold configmap: %v", err)
	}
	t.Logf("hold configmap %s/%s: %v", e.ns, cm.Name, cm.Data)

	fresh := NewForClient(worker, zaptest.NewLogger(t)) // a new worker
	got, err := fresh.HeldBy(e.ctx, s)
	if err != nil || got == nil {
		t.Fatalf("held by = %v, %v; want the hold", got, err)
	}
	if got.WorkflowID != h.WorkflowID || got.RunID != h.RunID || !got.At.Equal(h.At) || got.Reason != h.Reason || got.Target != s.TargetKey() {
		t.Fatalf("hold read back = %+v; want %+v", *got, h)
	}
	a = &activities.Activities{Platforms: map[string]activities.Platform{spec.PlatformKubernetes: fresh}, Checker: noChecks{}}
	_, err = a.Prepare(e.ctx, activities.PrepareInput{Spec: s})
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || app.Type() != platform.ErrTypeHeld || !app.NonRetryable() {
		t.Fatalf("prepare of a held target = %v; want a non-retryable %s error", err, platform.ErrTypeHeld)
	}
	for _, want := range []string{s.TargetKey() + " is held", "rollout " + s.WorkflowID() + " (run run-1) ended rollback_failed",
		`check "healthz" failed`, "starter clear " + s.TargetKey()} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("prepare error %q does not say %q", err, want)
		}
	}

	cleared, err := a.ClearHold(e.ctx, activities.ClearInput{Spec: s, Reason: "scaled v1 back by hand", By: "alice"})
	if err != nil || cleared.Cleared == nil || cleared.Cleared.RunID != "run-1" {
		t.Fatalf("clear = %+v, %v; want the hold of run-1", cleared, err)
	}
	if _, err := cs.CoreV1().ConfigMaps(e.ns).Get(e.ctx, holdConfigMap(target), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("hold configmap after clear: %v; want not found", err)
	}
	if _, err := a.Prepare(e.ctx, activities.PrepareInput{Spec: s}); err != nil {
		t.Fatalf("prepare after clear: %v", err)
	}
}
