//go:build integration

package deployments_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"
	tclient "go.temporal.io/sdk/client"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/control"
	"github.com/stagecraft/stagecraft/internal/itest"
	"github.com/stagecraft/stagecraft/internal/plan"
	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// TestExamplesRunOnRealEngines runs the bundled examples that name a
// Kubernetes target, as written, through a real Temporal dev server, an
// in-process worker, a real Kubernetes control plane (KWOK nodes) and the
// real Docker engine: every kubernetes-*.yaml spec (one per strategy; the
// example test in internal/spec makes every Kubernetes spec so named) and
// every release*.yaml with a Kubernetes service (one at least mixing in
// Docker), each on the objects deployments/examples/kubernetes describes.
// Each must succeed.
//
// What differs from a user's cluster is overridden, and only that (see
// onThisPlane): a fresh namespace per example, the plane's kubeconfig, the
// checks re-aimed at a server on 127.0.0.1 (KWOK's pod IPs are fake), a
// Docker service name of this run's own (the engine is shared), and bakes
// and intervals shortened so that the whole test takes about a minute. The
// images are the examples' own: KWOK pulls nothing, and the Docker engine
// has the demo images (scripts/build-demo.sh).
func TestExamplesRunOnRealEngines(t *testing.T) {
	ctx := context.Background()
	server, err := itest.DevServer(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = server.Stop() })
	kubeconfig, stop, err := itest.KubePlane()
	require.NoError(t, err)
	t.Cleanup(stop)
	dc, err := itest.Docker()
	require.NoError(t, err)
	tc := server.Client()
	itest.StartWorker(t, tc, dc)
	cs := itest.KubeClient(t, kubeconfig)
	objects := exampleObjects(t)

	specs, err := filepath.Glob(filepath.Join(examplesDir(), "kubernetes-*.yaml"))
	require.NoError(t, err)
	releases, err := filepath.Glob(filepath.Join(examplesDir(), "release*.yaml"))
	require.NoError(t, err)
	strategies := map[string]bool{}
	for _, f := range specs {
		s, err := spec.Parse(readFile(t, f))
		require.NoError(t, err, f)
		require.NotNil(t, s.Platform.Kubernetes, "%s is on Kubernetes", f)
		strategies[s.Strategy.Type] = true
	}
	require.Equal(t, map[string]bool{spec.Canary: true, spec.BlueGreen: true, spec.Rolling: true, spec.Recreate: true}, strategies,
		"a Kubernetes example of each strategy")

	// The group's Run returns when its parallel subtests have all
	// finished, so the engines outlive them.
	t.Run("examples", func(t *testing.T) {
		for _, f := range specs {
			t.Run(filepath.Base(f), func(t *testing.T) {
				t.Parallel()
				s, err := spec.Parse(readFile(t, f))
				require.NoError(t, err)
				ns := exampleNamespace(t, cs)
				before := createTarget(t, cs, objects, ns, s.Platform.Kubernetes)
				s = onThisPlane(t, s, ns, kubeconfig, serving(t, cs, ns, s.Platform.Kubernetes))

				start := time.Now()
				res := rollOut(t, tc, s)
				require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
				t.Logf("%s: %s in %s, %d stages", s.Strategy.Type, res.Outcome, time.Since(start).Round(time.Second), len(res.Stages))
				requireRolledOut(t, cs, ns, before, s.Image)
			})
		}
		mixed := 0
		for _, f := range releases {
			r, err := spec.ParseRelease(readFile(t, f))
			require.NoError(t, err, f)
			platforms := platformsOf(r)
			if !platforms[spec.PlatformKubernetes] {
				continue // on Docker alone, like release.yaml: not this test's (internal/e2e runs releases on Docker)
			}
			if len(platforms) > 1 {
				mixed++
			}
			t.Run(filepath.Base(f), func(t *testing.T) {
				t.Parallel()
				runMixedRelease(t, tc, dc, cs, kubeconfig, objects, r)
			})
		}
		require.Positive(t, mixed, "a release that mixes platforms")
	})
}

// runMixedRelease plans r as its workflow will (waves, then each
// service's stages on what runs before), runs it on this plane and the
// Docker engine, and checks that every service ended on its new version
// with the release's configuration, each the way its platform takes it.
func runMixedRelease(t *testing.T, tc tclient.Client, dc *client.Client, cs kubernetes.Interface, kubeconfig string, objects exampleSet, r spec.Release) {
	t.Helper()
	require.NotEmpty(t, r.Stages, "waves from dependsOn")
	ns := exampleNamespace(t, cs)
	r.Services = slices.Clone(r.Services)
	befores := map[string]target{}
	var kubeTargets []*spec.Kubernetes
	for i, svc := range r.Services {
		d := svc.Deploy
		var total, current int
		switch {
		case d.Platform.Kubernetes != nil:
			before := createTarget(t, cs, objects, ns, d.Platform.Kubernetes)
			befores[svc.Name] = before
			d = onThisPlane(t, d, ns, kubeconfig, serving(t, cs, ns, d.Platform.Kubernetes))
			kubeTargets = append(kubeTargets, d.Platform.Kubernetes)
			total, current = int(*before.deployment.Spec.Replicas), int(*before.deployment.Spec.Replicas)
		case d.Platform.Docker != nil:
			// The Docker engine is shared (other tests, earlier runs): a
			// service name of this run's own; its checks stay as written,
			// on the containers' published ports.
			d.Service = itest.Name("example-" + d.Service)
			itest.RemoveService(t, dc, d.Service)
			d = quick(d)
			require.NoError(t, d.Validate(), "service %s with this engine's overrides", svc.Name)
			total = d.Platform.Docker.Replicas // a fresh install: nothing runs yet
		}
		p, err := plan.Build(d, total, current)
		require.NoError(t, err, svc.Name)
		require.NotEmpty(t, p.Stages, svc.Name)
		r.Services[i].Deploy = d
	}
	// The release's own checks ask for the shop through its ingress: here,
	// the server answering for every Kubernetes service of the release.
	if in := r.Integration; in != nil {
		in.Checks = reaimed(t, in.Checks, serving(t, cs, ns, kubeTargets...))
		in.Interval = spec.Duration(500 * time.Millisecond)
	}
	for i := range r.Readiness {
		r.Readiness[i].Check = reaimed(t, []spec.Check{r.Readiness[i].Check}, serving(t, cs, ns, kubeTargets...))[0]
	}
	require.NoError(t, r.Validate(), "the release with this plane's overrides")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	started, err := control.StartRelease(ctx, tc, r)
	require.NoError(t, err)
	res, err := control.WaitRelease(ctx, tc, started.WorkflowID, started.RunID, 500*time.Millisecond, nil)
	require.NoError(t, err)
	require.Equal(t, api.OutcomeSucceeded, res.Outcome, "%s %q", res.Error, res.Problems)
	t.Logf("release %s: %s in %s, waves %d", r.Name, res.Outcome, time.Since(start).Round(time.Second), len(res.Stages))
	for _, st := range res.Services {
		require.Equal(t, api.ServiceSucceeded, st.State, st.Name)
	}
	for _, svc := range r.WithDefaults().Services {
		d := svc.Deploy
		config := r.ServiceConfig(svc.Name)
		switch {
		case d.Platform.Kubernetes != nil:
			requireRolledOut(t, cs, ns, befores[svc.Name], d.Image)
			got, err := cs.AppsV1().Deployments(ns).Get(ctx, d.Platform.Kubernetes.Deployment, metav1.GetOptions{})
			require.NoError(t, err)
			require.Equal(t, []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: spec.ConfigMapName(d.Platform.Kubernetes.Deployment, config)}}}},
				got.Spec.Template.Spec.Containers[0].EnvFrom, "%s's pods take the release's configuration", svc.Name)
			cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, spec.ConfigMapName(d.Platform.Kubernetes.Deployment, config), metav1.GetOptions{})
			require.NoError(t, err)
			require.Equal(t, config, cm.Data)
		case d.Platform.Docker != nil:
			list, err := dc.ContainerList(ctx, client.ContainerListOptions{All: true,
				Filters: make(client.Filters).Add("label", platform.LabelService+"="+d.Service)})
			require.NoError(t, err)
			require.Len(t, list.Items, d.Platform.Docker.Replicas, svc.Name)
			for _, c := range list.Items {
				in, err := dc.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{})
				require.NoError(t, err)
				require.Equal(t, d.Image, in.Container.Config.Image, svc.Name)
				require.True(t, in.Container.State.Running, svc.Name)
				for k, v := range config {
					require.Contains(t, in.Container.Config.Env, k+"="+v, "%s's containers take the release's configuration", svc.Name)
				}
			}
		}
	}
}

// platformsOf is the set of platforms r's services are on.
func platformsOf(r spec.Release) map[string]bool {
	seen := map[string]bool{}
	for _, s := range r.Services {
		seen[s.Deploy.PlatformName()] = true
	}
	return seen
}

// onThisPlane overrides what must differ from the example's own cluster:
//   - the namespace: a fresh one per example, so they run side by side and
//     leave nothing behind;
//   - the kubeconfig: the plane's admin one (the in-process worker allows a
//     spec's own kubeconfig, as `worker --allow-kubeconfig-paths` does);
//   - the checks' targets: KWOK's pods are not there to answer, so each
//     HTTP check asks healthURL and each TCP check its address, keeping
//     everything else the example asks of the answer;
//   - the durations: bakes 2 s (blue kept 1 s), a round every 500 ms, so
//     that a stage still needs the example's passing rounds but takes
//     seconds, not minutes.
//
// It returns the spec validated again.
func onThisPlane(t *testing.T, s spec.Spec, ns, kubeconfig, healthURL string) spec.Spec {
	t.Helper()
	k := *s.Platform.Kubernetes
	k.Namespace, k.Kubeconfig = ns, kubeconfig
	s.Platform.Kubernetes = &k
	s.Health.Checks = reaimed(t, s.Health.Checks, healthURL)
	s = quick(s)
	require.NoError(t, s.Validate(), "the example with this plane's overrides")
	return s
}

// quick shortens s's bakes and health interval (see onThisPlane).
func quick(s spec.Spec) spec.Spec {
	for _, d := range []*spec.Duration{&s.Strategy.Bake, &s.Strategy.BakeBeforeSwitch, &s.Strategy.BakeAfterSwitch} {
		if *d > 0 {
			*d = spec.Duration(2 * time.Second)
		}
	}
	if s.Strategy.KeepBlueFor > 0 {
		s.Strategy.KeepBlueFor = spec.Duration(time.Second)
	}
	s.Health.Interval = spec.Duration(500 * time.Millisecond)
	return s
}

// reaimed points each check at the server at healthURL: an HTTP check's
// URL, a TCP check's address. An example with another kind of check needs
// this test taught how to answer it.
func reaimed(t *testing.T, checks []spec.Check, healthURL string) []spec.Check {
	t.Helper()
	u, err := url.Parse(healthURL)
	require.NoError(t, err)
	out := make([]spec.Check, len(checks))
	for i, c := range checks {
		switch {
		case c.HTTP != nil:
			h := *c.HTTP
			h.URL = healthURL
			c.HTTP = &h
		case c.TCP != nil:
			tc := *c.TCP
			tc.Address = u.Host
			c.TCP = &tc
		default:
			t.Fatalf("check %q: this test answers HTTP and TCP checks only", c.Name)
		}
		out[i] = c
	}
	return out
}

// serving is the health endpoint of the targets as the worker would reach
// them through an ingress (pod IPs are fake here). It answers from the
// cluster's real state: {"status":"ok"} while each target has a ready pod
// behind it (behind its Service, wherever that points now, or else its
// Deployment's selector), 503 otherwise.
func serving(t *testing.T, cs kubernetes.Interface, ns string, targets ...*spec.Kubernetes) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, k := range targets {
			ready, err := readyPods(r.Context(), cs, ns, k)
			if err != nil || ready == 0 {
				http.Error(w, fmt.Sprintf(`{"status":"down","target":%q,"error":%q}`, k.Deployment, fmt.Sprint(err)), http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprint(w, `{"status":"ok"}`)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/healthz"
}

// readyPods counts the ready pods k's traffic reaches.
func readyPods(ctx context.Context, cs kubernetes.Interface, ns string, k *spec.Kubernetes) (int, error) {
	var selector map[string]string
	if k.Service != "" {
		svc, err := cs.CoreV1().Services(ns).Get(ctx, k.Service, metav1.GetOptions{})
		if err != nil {
			return 0, err
		}
		selector = svc.Spec.Selector
	} else {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, k.Deployment, metav1.GetOptions{})
		if err != nil {
			return 0, err
		}
		selector = d.Spec.Selector.MatchLabels
	}
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(selector).String()})
	if err != nil {
		return 0, err
	}
	ready := 0
	for _, p := range pods.Items {
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue && p.DeletionTimestamp == nil {
				ready++
			}
		}
	}
	return ready, nil
}

// rollOut starts s and waits (at most 2 minutes) for its result.
func rollOut(t *testing.T, tc tclient.Client, s spec.Spec) api.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	started, err := control.Start(ctx, tc, s)
	require.NoError(t, err)
	res, err := control.Wait(ctx, tc, started.WorkflowID, started.RunID, 500*time.Millisecond, nil)
	require.NoError(t, err)
	return res
}

// exampleSet is the objects deployments/examples/kubernetes describes, by
// name.
type exampleSet struct {
	deployments map[string]*appsv1.Deployment
	services    map[string]*corev1.Service
}

func examplesDir() string { return filepath.Join(itest.Root(), "deployments", "examples") }

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}

// exampleObjects reads every manifest under deployments/examples/kubernetes,
// strictly: a field the API does not have is an error here, as kubectl
// apply's would be.
func exampleObjects(t *testing.T) exampleSet {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(examplesDir(), "kubernetes", "*.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	set := exampleSet{deployments: map[string]*appsv1.Deployment{}, services: map[string]*corev1.Service{}}
	for _, f := range files {
		for _, doc := range strings.Split("\n"+string(readFile(t, f)), "\n---\n") {
			var meta metav1.TypeMeta
			require.NoError(t, yaml.Unmarshal([]byte(doc), &meta), f)
			switch meta.Kind {
			case "Deployment":
				var d appsv1.Deployment
				require.NoError(t, yaml.UnmarshalStrict([]byte(doc), &d), f)
				set.deployments[d.Name] = &d
			case "Service":
				var s corev1.Service
				require.NoError(t, yaml.UnmarshalStrict([]byte(doc), &s), f)
				set.services[s.Name] = &s
			default:
				t.Fatalf("%s: a %q; the examples' manifests hold Deployments and Services", f, meta.Kind)
			}
		}
	}
	return set
}

// exampleNamespace creates a namespace of the test's own, deleted at
// cleanup, and waits for its default service account (pods need it).
func exampleNamespace(t *testing.T, cs kubernetes.Interface) string {
	t.Helper()
	ctx := context.Background()
	ns := itest.Name("example")
	_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	itest.Eventually(t, 30*time.Second, "default service account", func() bool {
		_, err := cs.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil
	})
	return ns
}

// createTarget creates in ns, from the examples' manifests, the Deployment
// and Service k names, as `kubectl apply -n` would, waits for the
// Deployment's pods to be ready, and returns what it created, read back.
func createTarget(t *testing.T, cs kubernetes.Interface, objects exampleSet, ns string, k *spec.Kubernetes) target {
	t.Helper()
	ctx := context.Background()
	d, ok := objects.deployments[k.Deployment]
	require.True(t, ok, "deployments/examples/kubernetes has the Deployment %q", k.Deployment)
	d = d.DeepCopy()
	d.Namespace = ns
	_, err := cs.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{})
	require.NoError(t, err)
	var tg target
	if k.Service != "" {
		s, ok := objects.services[k.Service]
		require.True(t, ok, "deployments/examples/kubernetes has the Service %q", k.Service)
		s = s.DeepCopy()
		s.Namespace = ns
		tg.service, err = cs.CoreV1().Services(ns).Create(ctx, s, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	itest.Eventually(t, time.Minute, k.Deployment+" ready", func() bool {
		got, err := cs.AppsV1().Deployments(ns).Get(ctx, k.Deployment, metav1.GetOptions{})
		tg.deployment = got
		return err == nil && got.Status.ObservedGeneration >= got.Generation && got.Status.ReadyReplicas == *d.Spec.Replicas
	})
	return tg
}

// target is an example's Deployment and Service as they were before.
type target struct {
	deployment *appsv1.Deployment
	service    *corev1.Service
}

// requireRolledOut checks what a successful rollout leaves: the original
// Deployment running image at its replicas, all ready, and otherwise as it
// was; the Service as it was; none of the rollout's own Deployments.
func requireRolledOut(t *testing.T, cs kubernetes.Interface, ns string, before target, image string) {
	t.Helper()
	ctx := context.Background()
	name := before.deployment.Name
	var d *appsv1.Deployment
	require.Eventually(t, func() bool {
		var err error
		d, err = cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		return err == nil && d.Spec.Replicas != nil && d.Status.ReadyReplicas == *d.Spec.Replicas
	}, 10*time.Second, 20*time.Millisecond, "deployment %s/%s: ready replicas never caught up", ns, name)
	require.Equal(t, image, d.Spec.Template.Spec.Containers[0].Image)
	require.Equal(t, *before.deployment.Spec.Replicas, *d.Spec.Replicas)
	require.Equal(t, before.deployment.Spec.Selector, d.Spec.Selector)
	for _, suffix := range []string{"-canary", "-green"} {
		_, err := cs.AppsV1().Deployments(ns).Get(ctx, name+suffix, metav1.GetOptions{})
		require.True(t, apierrors.IsNotFound(err), "%s%s is gone: %v", name, suffix, err)
	}
	if before.service != nil {
		svc, err := cs.CoreV1().Services(ns).Get(ctx, before.service.Name, metav1.GetOptions{})
		require.NoError(t, err)
		require.Equal(t, before.service.Spec.Selector, svc.Spec.Selector, "the Service selects the Deployment's own pods again")
	}
}
