//go:build integration

package realnode

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	appsv1 "k8s.io/api/apps/v1"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/control"
	"github.com/stagecraft/stagecraft/internal/health"
	"github.com/stagecraft/stagecraft/internal/itest"
	"github.com/stagecraft/stagecraft/internal/plan"
	"github.com/stagecraft/stagecraft/internal/platform"
	kubeplatform "github.com/stagecraft/stagecraft/internal/platform/kubernetes"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// webTarget makes a namespace holding what an application team would have
// on the real node: the Deployment "web" (replicas of stagecraft-demo:v1,
// container "app" on 8080, an exec readiness probe that tolerates 30 s of
// failures, so a pod whose /healthz turns bad stays in the Endpoints while
// the per-pod checks see it fail) and its Service. mutate, when not nil,
// adjusts the Deployment before it is created. It returns the namespace
// once the pods are ready.
func webTarget(t testing.TB, prefix string, replicas int32, mutate ...func(*appsv1.Deployment)) string {
	t.Helper()
	ctx := context.Background()
	ns := namespace(t, prefix)
	labels := map[string]string{"app": "web"}
	deadline, grace := int32(60), int64(2)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas, ProgressDeadlineSeconds: &deadline,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: &grace,
					Containers: []corev1.Container{{
						Name: "app", Image: "stagecraft-demo:v1", ImagePullPolicy: corev1.PullIfNotPresent,
						Ports: []corev1.ContainerPort{{ContainerPort: 8080}},
						ReadinessProbe: &corev1.Probe{
							ProbeHandler:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"/demo-app", "probe"}}},
							PeriodSeconds: 1, TimeoutSeconds: 3, FailureThreshold: 30,
						},
					}},
				},
			},
		},
	}
	for _, m := range mutate {
		m(d)
	}
	_, err := cs.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec:       corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	itest.Eventually(t, 90*time.Second, "web ready", func() bool { return rolledOut(ctx, ns, "web", replicas) })
	return ns
}

// webSpec is a canary of webTarget's Deployment to image with an HTTP
// check of each pod's /healthz ({{.Address}}) every 500 ms, defaults applied.
func webSpec(ns, kubeconfig, image string) spec.Spec {
	return spec.Spec{
		Service: "web",
		Image:   image,
		Platform: spec.Platform{Kubernetes: &spec.Kubernetes{Namespace: ns, Deployment: "web", Container: "app", Service: "web",
			Kubeconfig: kubeconfig, ProgressDeadline: spec.Duration(time.Minute)}},
		Strategy: spec.Strategy{Type: spec.Canary, Steps: []int{50, 100}, Bake: spec.Duration(3 * time.Second)},
		Health: spec.Health{Interval: spec.Duration(500 * time.Millisecond), Checks: []spec.Check{
			{Name: "healthz", HTTP: &spec.HTTPCheck{URL: "http://{{.Address}}/healthz", ExpectStatus: spec.StatusSet{"200"},
				Timeout: spec.Duration(2 * time.Second)}},
		}},
	}.WithDefaults()
}

// forwardingPlatform is the Kubernetes platform set to reach pods through
// the API server's port-forward, closed at the test's end.
func forwardingPlatform(t testing.TB) *kubeplatform.Platform {
	p := kubeplatform.New(zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel)))
	p.CheckVia = kubeplatform.CheckViaPortForward
	t.Cleanup(p.Close)
	return p
}

// endpoints asks p for which's addresses, checks each is a 127.0.0.1 port
// (never a pod IP), and returns them with the call's duration.
func endpoints(t *testing.T, ctx context.Context, p *kubeplatform.Platform, s spec.Spec, snap platform.Snapshot, which platform.Which) ([]string, time.Duration) {
	t.Helper()
	start := time.Now()
	addrs, err := p.Endpoints(ctx, s, "pf", snap, which)
	took := time.Since(start)
	require.NoError(t, err)
	for _, a := range addrs {
		require.True(t, strings.HasPrefix(a, "127.0.0.1:"), "address %q: want a local port forwarded to the pod", a)
	}
	return addrs, took
}

// healthyRound runs the spec's checks on addrs with the real checker and
// requires every result healthy; it returns the slowest check's latency.
func healthyRound(t *testing.T, ctx context.Context, s spec.Spec, addrs []string) time.Duration {
	t.Helper()
	r := (&health.Checker{}).Round(ctx, s.Health.Checks, nil, addrs)
	require.Len(t, r.Results, len(addrs))
	var slowest time.Duration
	for _, res := range r.Results {
		require.Equal(t, health.Healthy, res.Verdict, "%s on %s: %s", res.Check, res.Target, res.Error)
		slowest = max(slowest, res.Latency)
	}
	require.Equal(t, health.Healthy, r.Verdict)
	return slowest
}

// canary converges s's target to n canary pods beside its 3 stable ones.
func canary(t *testing.T, ctx context.Context, p *kubeplatform.Platform, s spec.Spec, snap platform.Snapshot, n int) {
	t.Helper()
	start := time.Now()
	res, err := p.Converge(ctx, platform.ConvergeRequest{Spec: s, Rollout: "pf", Snapshot: snap,
		Desired: plan.Desired{New: n, Old: 3, Traffic: plan.TrafficShared, Order: plan.Surge}})
	require.NoError(t, err)
	require.Equal(t, n, res.NewCount)
	t.Logf("canary of %d %s pods ready in %s", n, s.Image, time.Since(start).Round(time.Millisecond))
}

// TestRealNodePerPodChecksThroughPortForward: with the platform set to
// portForward, a canary of 2 real pods of stagecraft-demo:v2 beside 3 of v1
// gets, for each new pod, a 127.0.0.1 port forwarded through the API
// server, and the real health checker passes on each; a second round gets
// the same ports (forwards reused); the old version's 3 pods get theirs.
// One canary pod deleted, its replacement gets a new forward while the
// other keeps its own, and the deleted pod's forward is closed. A canary of
// stagecraft-demo:v2-bad (whose /healthz answers 500 three seconds after it
// starts) fails the same checks on each pod, named by its address.
func TestRealNodePerPodChecksThroughPortForward(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	p := forwardingPlatform(t)

	t.Run("v2 passes", func(t *testing.T) {
		ns := webTarget(t, "perpod", 3)
		s := webSpec(ns, kubeconfigPath, "stagecraft-demo:v2")
		snap, err := p.Snapshot(ctx, s)
		require.NoError(t, err)
		canary(t, ctx, p, s, snap, 2)

		addrs, setup := endpoints(t, ctx, p, s, snap, platform.WhichNew)
		require.Len(t, addrs, 2)
		rtt := healthyRound(t, ctx, s, addrs)
		t.Logf("round 1: %v; Endpoints with 2 new forwards %s, slowest check %s", addrs, setup.Round(time.Millisecond), rtt.Round(time.Millisecond))

		again, reuse := endpoints(t, ctx, p, s, snap, platform.WhichNew)
		require.Equal(t, addrs, again, "the second round reuses the forwards")
		rtt = healthyRound(t, ctx, s, again)
		t.Logf("round 2: same ports; Endpoints %s, slowest check %s", reuse.Round(time.Millisecond), rtt.Round(time.Millisecond))

		old, _ := endpoints(t, ctx, p, s, snap, platform.WhichOld)
		require.Len(t, old, 3)
		healthyRound(t, ctx, s, old)
		require.Equal(t, 5, p.ForwardCount())

		// Replace one canary pod: the kept pod keeps its port, the new pod
		// gets one of its own, the deleted pod's forward closes.
		all, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		require.NoError(t, err)
		var canaryPods []corev1.Pod
		for _, p := range all.Items {
			if p.Spec.Containers[0].Image == "stagecraft-demo:v2" {
				canaryPods = append(canaryPods, p)
			}
		}
		require.Len(t, canaryPods, 2)
		victim := canaryPods[0]
		require.NoError(t, cs.CoreV1().Pods(ns).Delete(ctx, victim.Name, metav1.DeleteOptions{}))
		start := time.Now()
		var after []string
		itest.Eventually(t, 90*time.Second, "a replacement canary pod with a forward of its own", func() bool {
			after, _ = endpoints(t, ctx, p, s, snap, platform.WhichNew)
			_, _ = endpoints(t, ctx, p, s, snap, platform.WhichOld)
			return len(after) == 2 && !slices.Equal(after, addrs) && p.ForwardCount() == 5
		})
		kept := 0
		for _, a := range after {
			if slices.Contains(addrs, a) {
				kept++
			}
		}
		require.Equal(t, 1, kept, "before %v, after %v: the surviving pod keeps its forward", addrs, after)
		healthyRound(t, ctx, s, after)
		t.Logf("pod %s deleted: replacement ready and forwarded in %s (%v -> %v); %d forwards open",
			victim.Name, time.Since(start).Round(time.Millisecond), addrs, after, p.ForwardCount())
	})

	t.Run("v2-bad fails", func(t *testing.T) {
		ns := webTarget(t, "perpod-bad", 3)
		s := webSpec(ns, kubeconfigPath, "stagecraft-demo:v2-bad")
		snap, err := p.Snapshot(ctx, s)
		require.NoError(t, err)
		canary(t, ctx, p, s, snap, 2)
		var last health.Round
		itest.Eventually(t, 30*time.Second, "every v2-bad pod's check failing", func() bool {
			addrs, _ := endpoints(t, ctx, p, s, snap, platform.WhichNew)
			if len(addrs) != 2 {
				return false
			}
			last = (&health.Checker{}).Round(ctx, s.Health.Checks, nil, addrs)
			for _, r := range last.Results {
				if r.Verdict != health.Failed || !strings.Contains(r.Error, "500") || !slices.Contains(addrs, strings.TrimSuffix(strings.TrimPrefix(r.Target, "http://"), "/healthz")) {
					return false
				}
			}
			return len(last.Results) == 2
		})
		require.Equal(t, health.Failed, last.Verdict)
		for _, r := range last.Results {
			t.Logf("%s on %s: %s: %s", r.Check, r.Target, r.Verdict, r.Error)
		}
		old, _ := endpoints(t, ctx, p, s, snap, platform.WhichOld)
		require.Len(t, old, 3)
		healthyRound(t, ctx, s, old)
	})
}

// TestRealNodeBrokenForwardIsSetUpAgain: a pod whose declared port has
// nothing listening (the app serves on 8081, the container declares 8080)
// refuses the check's connection inside the pod; client-go then drops the
// forward's whole connection, and the next Endpoints call sets up a new
// forward (another local port) instead of handing out the dead one.
func TestRealNodeBrokenForwardIsSetUpAgain(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ns := webTarget(t, "pfbroken", 1, func(d *appsv1.Deployment) {
		d.Spec.Template.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "PORT", Value: "8081"}}
	})
	p := forwardingPlatform(t)
	s := webSpec(ns, kubeconfigPath, "stagecraft-demo:v2")
	snap, err := p.Snapshot(ctx, s)
	require.NoError(t, err)
	first, _ := endpoints(t, ctx, p, s, snap, platform.WhichOld)
	require.Len(t, first, 1)
	r := (&health.Checker{}).Round(ctx, s.Health.Checks, nil, first)
	require.Equal(t, health.Failed, r.Verdict)
	t.Logf("check through %s: %s", first[0], r.Results[0].Error)
	start := time.Now()
	var again []string
	itest.Eventually(t, 30*time.Second, "a new forward in place of the lost one", func() bool {
		again, _ = endpoints(t, ctx, p, s, snap, platform.WhichOld)
		return len(again) == 1 && again[0] != first[0]
	})
	require.Equal(t, 1, p.ForwardCount(), "the lost forward is dropped, not kept beside the new one")
	t.Logf("forward to the pod set up again on %s (%s after the failed check)", again[0], time.Since(start).Round(time.Millisecond))
}

// roleKubeconfig binds the worker's ServiceAccount in ns to the Role and
// RoleBinding of each deployments/kubernetes file (moved to ns) and returns
// a kubeconfig for that account's token. Called again with other files, it
// adds their grants to the same account.
func roleKubeconfig(t *testing.T, ns string, files ...string) string {
	t.Helper()
	ctx := context.Background()
	const sa = "stagecraft-worker"
	if _, err := cs.CoreV1().ServiceAccounts(ns).Get(ctx, sa, metav1.GetOptions{}); err != nil {
		_, err = cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	for _, file := range files {
		raw, err := os.ReadFile(filepath.Join(itest.Root(), "deployments", "kubernetes", file))
		require.NoError(t, err)
		for _, doc := range strings.Split(string(raw), "\n---\n") {
			switch {
			case strings.Contains(doc, "\nkind: RoleBinding\n"):
				var b rbacv1.RoleBinding
				require.NoError(t, yaml.UnmarshalStrict([]byte(doc), &b))
				require.Equal(t, sa, b.Subjects[0].Name)
				b.Namespace, b.Subjects[0].Namespace = ns, ns
				_, err = cs.RbacV1().RoleBindings(ns).Create(ctx, &b, metav1.CreateOptions{})
				require.NoError(t, err)
			case strings.Contains(doc, "\nkind: Role\n"):
				var r rbacv1.Role
				require.NoError(t, yaml.UnmarshalStrict([]byte(doc), &r))
				r.Namespace = ns
				_, err = cs.RbacV1().Roles(ns).Create(ctx, &r, metav1.CreateOptions{})
				require.NoError(t, err)
			}
		}
	}
	tok, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authnv1.TokenRequest{}, metav1.CreateOptions{})
	require.NoError(t, err)
	kc, err := clientcmd.LoadFromFile(kubeconfigPath)
	require.NoError(t, err)
	for _, ai := range kc.AuthInfos {
		*ai = clientcmdapi.AuthInfo{Token: tok.Status.Token}
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	require.NoError(t, clientcmd.WriteToFile(*kc, path))
	return path
}

// allowed asks the API server whether the account of kubeconfig may do verb
// on pods' subresource in ns.
func allowed(t *testing.T, kubeconfig, ns, verb, subresource string) bool {
	t.Helper()
	c, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	require.NoError(t, err)
	acs, err := kubernetes.NewForConfig(c)
	require.NoError(t, err)
	r, err := acs.AuthorizationV1().SelfSubjectAccessReviews().Create(context.Background(), &authzv1.SelfSubjectAccessReview{
		Spec: authzv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authzv1.ResourceAttributes{
			Namespace: ns, Verb: verb, Resource: "pods", Subresource: subresource}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	return r.Status.Allowed
}

// TestRealNodePortForwardRBAC: as the worker's least-privilege account,
// bound only to deployments/kubernetes/rbac.yaml's Role, a port-forward is
// refused by the API server and Endpoints says so, naming pods/portforward;
// with rbac-portforward.yaml's Role added (create on pods/portforward and
// nothing else: no exec, attach or logs), the same Platform forwards to
// each pod and its checks pass.
func TestRealNodePortForwardRBAC(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ns := webTarget(t, "pfrbac", 1)
	limited := roleKubeconfig(t, ns, "rbac.yaml")
	require.False(t, allowed(t, limited, ns, "create", "portforward"), "rbac.yaml alone grants no port-forward")

	p := forwardingPlatform(t)
	s := webSpec(ns, limited, "stagecraft-demo:v2")
	snap, err := p.Snapshot(ctx, s)
	require.NoError(t, err)
	_, err = p.Endpoints(ctx, s, "pf", snap, platform.WhichOld)
	require.Error(t, err)
	require.Contains(t, err.Error(), "pods/portforward")
	require.Contains(t, err.Error(), "forbidden")
	t.Logf("without rbac-portforward.yaml: %v", err)
	require.Zero(t, p.ForwardCount(), "a refused forward is not kept")

	roleKubeconfig(t, ns, "rbac-portforward.yaml")
	require.True(t, allowed(t, limited, ns, "create", "portforward"))
	for _, no := range []struct{ verb, sub string }{{"create", "exec"}, {"create", "attach"}, {"get", "log"}, {"get", "portforward"}} {
		require.False(t, allowed(t, limited, ns, no.verb, no.sub), "%s pods/%s", no.verb, no.sub)
	}
	var addrs []string
	itest.Eventually(t, 30*time.Second, "a forward once the Role is bound", func() bool {
		addrs, err = p.Endpoints(ctx, s, "pf", snap, platform.WhichOld)
		return err == nil
	})
	require.Len(t, addrs, 1)
	healthyRound(t, ctx, s, addrs)
}

// TestRealNodeCanaryRolloutThroughPortForward runs whole canaries through
// the real workflow and activities (a real dev server, an in-process worker
// whose Kubernetes platform reaches pods through port-forward) on real
// pods: v2 succeeds with its per-pod checks passing at every stage; v2-bad
// rolls back from its failing per-pod check, the stable Deployment is v1
// again, and the rollback's verification checked each restored pod
// through a forward.
func TestRealNodeCanaryRolloutThroughPortForward(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel) // the parallel subtests run after this function returns
	srv, err := itest.DevServer(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Stop() })
	c := srv.Client()
	p := forwardingPlatform(t)
	itest.StartKubeWorker(t, c, p)

	run := func(t *testing.T, image string) api.Result {
		ns := webTarget(t, "pfcanary", 3)
		s := webSpec(ns, kubeconfigPath, image)
		start := time.Now()
		started, err := control.Start(ctx, c, s)
		require.NoError(t, err)
		res, err := control.Wait(ctx, c, started.WorkflowID, started.RunID, 200*time.Millisecond, nil)
		require.NoError(t, err)
		t.Logf("%s: %s in %s: %s", image, res.Outcome, time.Since(start).Round(time.Millisecond), res.Error)
		for _, st := range res.Stages {
			t.Logf("stage %d: %d%%, %d checks passed, %d failed", st.Index, st.Percent, st.ChecksPassed, st.ChecksFailed)
		}
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		require.NoError(t, err)
		res.ImageTo = d.Spec.Template.Spec.Containers[0].Image // what the stable Deployment runs now
		return res
	}
	t.Run("v2 succeeds", func(t *testing.T) {
		t.Parallel()
		res := run(t, "stagecraft-demo:v2")
		require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
		for _, st := range res.Stages {
			require.Positive(t, st.ChecksPassed, "stage %d", st.Index)
		}
		require.Equal(t, "stagecraft-demo:v2", res.ImageTo)
	})
	t.Run("v2-bad rolls back", func(t *testing.T) {
		t.Parallel()
		res := run(t, "stagecraft-demo:v2-bad")
		require.Equal(t, api.OutcomeRolledBack, res.Outcome, res.Error)
		require.Contains(t, res.Error, "healthz")
		require.Contains(t, res.Error, "127.0.0.1:")
		require.Equal(t, "stagecraft-demo:v1", res.ImageTo)
		// The rollback's verification checked the restored pods, each
		// through a forward of its own.
		require.NotNil(t, res.Rollback)
		require.True(t, res.Rollback.Verified, res.Rollback.Error)
		require.NotNil(t, res.Rollback.Verify)
		require.NotNil(t, res.Rollback.Verify.Latest)
		require.Len(t, res.Rollback.Verify.Latest.Results, 3)
		for _, r := range res.Rollback.Verify.Latest.Results {
			require.Equal(t, health.Healthy, r.Verdict, "%s on %s: %s", r.Check, r.Target, r.Error)
			require.True(t, strings.HasPrefix(r.Target, "http://127.0.0.1:"), r.Target)
		}
		t.Logf("rollback verified in %d rounds on %d restored pods through port-forward", res.Rollback.Verify.Rounds, len(res.Rollback.Verify.Latest.Results))
	})
}
