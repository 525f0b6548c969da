//go:build integration

package deployments_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/stagecraft/stagecraft/internal/itest"
)

// overlay is what one overlay must render to.
type overlay struct {
	name                  string
	workerNS, appNS       string
	replicas              int32
	temporalAddressSuffix string
}

var overlays = []overlay{
	{name: "dev", workerNS: "stagecraft-dev", appNS: "apps-dev", replicas: 1, temporalAddressSuffix: ".svc.cluster.local:7233"},
	{name: "production", workerNS: "stagecraft-prod", appNS: "shop", replicas: 2, temporalAddressSuffix: ".tmprl.cloud:7233"},
}

// render builds a kustomization directory as `kustomize build` would.
func render(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	resMap, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	require.NoError(t, err, "kustomize build %s", dir)
	var objs []*unstructured.Unstructured
	for _, r := range resMap.Resources() {
		m, err := r.Map()
		require.NoError(t, err)
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
	return objs
}

func find(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("no %s %q rendered", kind, name)
	return nil
}

func convert[T any](t *testing.T, o *unstructured.Unstructured) *T {
	t.Helper()
	var out T
	require.NoError(t, runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(o.Object, &out, true))
	return &out
}

// TestKubernetesOverlaysRender checks what each overlay renders: the
// worker's objects in its namespace, the Role in the application
// namespace bound to the worker's account, replicas, settings from the
// ConfigMap and the Secret, a hardened pod.
func TestKubernetesOverlaysRender(t *testing.T) {
	for _, ov := range overlays {
		t.Run(ov.name, func(t *testing.T) {
			objs := render(t, filepath.Join(itest.Root(), "deployments", "kubernetes", "overlays", ov.name))
			var kinds []string
			for _, o := range objs {
				kinds = append(kinds, o.GetKind()+"/"+o.GetNamespace()+"/"+o.GetName())
			}
			slices.Sort(kinds)
			require.Equal(t, []string{
				"ConfigMap/" + ov.workerNS + "/stagecraft-worker",
				"Deployment/" + ov.workerNS + "/stagecraft-worker",
				"Namespace//" + ov.workerNS,
				"PodDisruptionBudget/" + ov.workerNS + "/stagecraft-worker",
				"Role/" + ov.appNS + "/stagecraft-rollouts",
				"RoleBinding/" + ov.appNS + "/stagecraft-rollouts",
				"ServiceAccount/" + ov.workerNS + "/stagecraft-worker",
			}, kinds)

			binding := find(t, objs, "RoleBinding", "stagecraft-rollouts")
			subjects, _, _ := unstructured.NestedSlice(binding.Object, "subjects")
			require.Equal(t, []any{map[string]any{"kind": "ServiceAccount", "name": "stagecraft-worker", "namespace": ov.workerNS}}, subjects)

			cm := convert[corev1.ConfigMap](t, find(t, objs, "ConfigMap", "stagecraft-worker"))
			require.Contains(t, cm.Data["TEMPORAL_ADDRESS"], ov.temporalAddressSuffix)
			require.NotEmpty(t, cm.Data["TEMPORAL_NAMESPACE"])

			d := convert[appsv1.Deployment](t, find(t, objs, "Deployment", "stagecraft-worker"))
			require.Equal(t, ov.replicas, *d.Spec.Replicas)
			pod := d.Spec.Template.Spec
			require.Equal(t, "stagecraft-worker", pod.ServiceAccountName)
			require.True(t, *pod.SecurityContext.RunAsNonRoot)
			require.Len(t, pod.Containers, 1)
			c := pod.Containers[0]
			require.True(t, *c.SecurityContext.ReadOnlyRootFilesystem)
			require.False(t, *c.SecurityContext.AllowPrivilegeEscalation)
			require.Equal(t, []corev1.EnvFromSource{
				{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "stagecraft-worker"}}},
				{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "stagecraft-worker"}}},
			}, c.EnvFrom)
			require.False(t, c.Resources.Requests.Memory().IsZero())
			require.False(t, c.Resources.Limits.Memory().IsZero())
			// The liveness probe is the metrics endpoint the ConfigMap turns on.
			require.NotNil(t, c.LivenessProbe)
			require.Equal(t, "/metrics", c.LivenessProbe.HTTPGet.Path)
			require.Equal(t, "metrics", c.LivenessProbe.HTTPGet.Port.String())
			require.Contains(t, c.Ports, corev1.ContainerPort{Name: "metrics", ContainerPort: 9464})
			require.Equal(t, "0.0.0.0:9464", cm.Data["STAGECRAFT_METRICS_ADDRESS"])
			if ov.name == "production" {
				require.Equal(t, "/etc/stagecraft/temporal-tls/tls.crt", cm.Data["TEMPORAL_TLS_CLIENT_CERT_PATH"])
				require.Contains(t, c.VolumeMounts, corev1.VolumeMount{Name: "temporal-tls", MountPath: "/etc/stagecraft/temporal-tls", ReadOnly: true})
			}
		})
	}
}

// TestKubernetesOverlaysDryRunApply applies every object each overlay
// renders to a real kube-apiserver with server-side apply, dry run: the
// apiserver validates and defaults them and runs admission, and stores
// nothing. Namespaced objects pass admission only in an existing
// namespace, so the namespaces they name are created first, for real.
func TestKubernetesOverlaysDryRunApply(t *testing.T) {
	kubeconfig, stop, err := itest.KubePlane()
	require.NoError(t, err)
	t.Cleanup(stop)
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	require.NoError(t, err)
	// The apiserver warns about what it would accept but frowns on, the
	// restricted Pod Security Standard the namespace enforces among them.
	warnings := &warningRecorder{}
	cfg.WarningHandler = warnings
	dyn, err := dynamic.NewForConfig(cfg)
	require.NoError(t, err)
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	require.NoError(t, err)
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disc))
	nsRes := dyn.Resource(corev1.SchemeGroupVersion.WithResource("namespaces"))

	for _, ov := range overlays {
		t.Run(ov.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			objs := render(t, filepath.Join(itest.Root(), "deployments", "kubernetes", "overlays", ov.name))
			for _, ns := range []string{ov.workerNS, ov.appNS} {
				// Like the namespace the overlay renders (its Pod Security label).
				labels := map[string]any{}
				if ns == ov.workerNS {
					labels = find(t, objs, "Namespace", ns).Object["metadata"].(map[string]any)["labels"].(map[string]any)
				}
				_, err := nsRes.Create(ctx, &unstructured.Unstructured{Object: map[string]any{
					"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns, "labels": labels},
				}}, metav1.CreateOptions{})
				require.NoError(t, err, "create namespace %s", ns)
			}
			for _, o := range objs {
				id := fmt.Sprintf("%s %s/%s", o.GetKind(), o.GetNamespace(), o.GetName())
				gvk := o.GroupVersionKind()
				m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
				require.NoError(t, err, id)
				var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
				if m.Scope.Name() == "namespace" {
					require.NotEmpty(t, o.GetNamespace(), "%s has no namespace", id)
					ri = dyn.Resource(m.Resource).Namespace(o.GetNamespace())
				}
				got, err := ri.Apply(ctx, o.GetName(), o, metav1.ApplyOptions{
					FieldManager: "stagecraft-deployments-test",
					DryRun:       []string{metav1.DryRunAll},
				})
				require.NoError(t, err, "server-side apply (dry run) %s", id)
				require.Equal(t, o.GetName(), got.GetName(), id)
				t.Logf("dry-run applied %s", id)
			}
			require.Empty(t, warnings.take(), "apiserver warnings")
			// Dry run stored nothing.
			_, err := dyn.Resource(appsv1.SchemeGroupVersion.WithResource("deployments")).Namespace(ov.workerNS).
				Get(ctx, "stagecraft-worker", metav1.GetOptions{})
			require.Error(t, err, "a dry run must not create the Deployment")
		})
	}
}

// warningRecorder keeps the warnings the apiserver sends.
type warningRecorder struct {
	mu   sync.Mutex
	seen []string
}

func (w *warningRecorder) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seen = append(w.seen, text)
}

func (w *warningRecorder) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	seen := w.seen
	w.seen = nil
	return seen
}

// TestWorkerGracePeriodOutlastsStopTimeout checks, for each overlay, that
// the pod's grace period is longer than the time the worker gives running
// activities after SIGTERM (STAGECRAFT_STOP_TIMEOUT, which the ConfigMap
// must set so that it can be checked here), with room for the worker to
// report their results and exit; otherwise the kubelet's SIGKILL would cut
// a converge off mid-change, as if no stop timeout were set.
func TestWorkerGracePeriodOutlastsStopTimeout(t *testing.T) {
	for _, ov := range overlays {
		t.Run(ov.name, func(t *testing.T) {
			objs := render(t, filepath.Join(itest.Root(), "deployments", "kubernetes", "overlays", ov.name))
			cm := convert[corev1.ConfigMap](t, find(t, objs, "ConfigMap", "stagecraft-worker"))
			v, ok := cm.Data["STAGECRAFT_STOP_TIMEOUT"]
			require.True(t, ok, "the ConfigMap sets STAGECRAFT_STOP_TIMEOUT (without it the worker's default applies unchecked)")
			stop, err := time.ParseDuration(v)
			require.NoError(t, err)
			require.Positive(t, stop, "a zero stop timeout cancels running activities at once")
			d := convert[appsv1.Deployment](t, find(t, objs, "Deployment", "stagecraft-worker"))
			for _, c := range d.Spec.Template.Spec.Containers {
				for _, e := range c.Env {
					require.NotEqual(t, "STAGECRAFT_STOP_TIMEOUT", e.Name, "set in the ConfigMap only")
				}
			}
			grace := d.Spec.Template.Spec.TerminationGracePeriodSeconds
			require.NotNil(t, grace, "terminationGracePeriodSeconds is set")
			require.GreaterOrEqual(t, time.Duration(*grace)*time.Second, stop+5*time.Second,
				"terminationGracePeriodSeconds %d must outlast STAGECRAFT_STOP_TIMEOUT %s by a few seconds", *grace, stop)
		})
	}
}
