//go:build integration

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	watchtools "k8s.io/client-go/tools/watch"
	"sigs.k8s.io/yaml"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/control"
	"github.com/stagecraft/stagecraft/internal/itest"
	"github.com/stagecraft/stagecraft/internal/spec"
)

func kubeClient(t *testing.T, path string) kubernetes.Interface { return itest.KubeClient(t, path) }

// kubeTarget creates a namespace with a 4-replica Deployment "web" (v1) and
// its Service, as an application team would have them.
func kubeTarget(t *testing.T, cs kubernetes.Interface) string { return kubeTargetN(t, cs, 4) }

func kubeTargetN(t *testing.T, cs kubernetes.Interface, n int32) string {
	return itest.KubeWeb(t, cs, "e2e", "demo:v1", n, func(d *appsv1.Deployment) {
		d.Annotations = map[string]string{"team": "payments"}
		d.Spec.Template.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "GREETING", Value: "hello"}}
	})
}

// healthServer is the service's health endpoint as the worker would reach
// it (through an ingress in production). Pod IPs are fake here, so it
// answers from the cluster's real state: failing while any ready pod of the
// namespace's Deployments runs the bad image.
func healthServer(t *testing.T, cs kubernetes.Interface, ns string) string {
	return healthServerWhen(t, cs, ns, func(readyBad int, switched bool) bool { return readyBad > 0 })
}

// healthServerWhen fails when fail says so, given the number of ready pods
// of the bad image and whether the Service's selector has moved to green.
func healthServerWhen(t *testing.T, cs kubernetes.Interface, ns string, fail func(readyBad int, switched bool) bool) string {
	return itest.KubeHealth(t, cs, ns, badImage, fail)
}

const badImage = "demo:v2-bad"

func kubeSpec(ns, config, strategy, healthURL string) spec.Spec {
	return itest.KubeSpec(ns, config, strategy, "demo:v2", healthURL)
}

// deployments lists the namespace's Deployments as name → image/replicas.
func deployments(t *testing.T, cs kubernetes.Interface, ns string) map[string]string {
	t.Helper()
	list, err := cs.AppsV1().Deployments(ns).List(context.Background(), metav1.ListOptions{})
	require.NoError(t, err)
	out := map[string]string{}
	for _, d := range list.Items {
		out[d.Name] = fmt.Sprintf("%s x%d ready %d", d.Spec.Template.Spec.Containers[0].Image, *d.Spec.Replicas, d.Status.ReadyReplicas)
	}
	return out
}

func TestKubernetesEveryStrategy(t *testing.T) {
	itest.StartWorker(t, tc, dc)
	cs := kubeClient(t, kubeconfig)
	for _, strategy := range strategies {
		t.Run(strategy+"/succeeds", func(t *testing.T) {
			t.Parallel()
			ns := kubeTarget(t, cs)
			res := deploy(t, kubeSpec(ns, kubeconfig, strategy, healthServer(t, cs, ns)))
			require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
			require.Equal(t, "demo:v1", res.ImageFrom)
			require.Equal(t, map[string]string{"web": "demo:v2 x4 ready 4"}, deployments(t, cs, ns),
				"the original Deployment carries v2 at its replicas; nothing else is left")
			svc, err := cs.CoreV1().Services(ns).Get(context.Background(), "web", metav1.GetOptions{})
			require.NoError(t, err)
			require.Equal(t, map[string]string{"app": "web"}, svc.Spec.Selector)
		})
		t.Run(strategy+"/fails-mid-way-and-rolls-back", func(t *testing.T) {
			t.Parallel()
			ns := kubeTarget(t, cs)
			ctx := context.Background()
			before, err := cs.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
			require.NoError(t, err)
			beforeSvc, err := cs.CoreV1().Services(ns).Get(ctx, "web", metav1.GetOptions{})
			require.NoError(t, err)
			// The bad version passes its first stage and fails in the next:
			// at 2 ready pods for canary (1, 2, 4), at 3 for rolling in
			// batches of 2 (2, 4), at the switch for blue-green. Recreate
			// has one stage.
			failStage, fail := 1, func(readyBad int, switched bool) bool { return readyBad >= 2 }
			switch strategy {
			case spec.Rolling:
				fail = func(readyBad int, _ bool) bool { return readyBad >= 3 }
			case spec.BlueGreen:
				fail = func(_ int, switched bool) bool { return switched }
			case spec.Recreate:
				failStage, fail = 0, func(readyBad int, _ bool) bool { return readyBad > 0 }
			}
			s := kubeSpec(ns, kubeconfig, strategy, healthServerWhen(t, cs, ns, fail))
			s.Image = badImage
			res := deploy(t, s)
			require.Equal(t, api.OutcomeRolledBack, res.Outcome, res.Error)
			require.Contains(t, res.Error, "status 500")
			require.Contains(t, res.Stages[failStage].Error, "status 500", "fails at stage %d", failStage)
			for i := range failStage {
				require.Empty(t, res.Stages[i].Error, "stage %d passed before", i)
				require.Positive(t, res.Stages[i].ChecksPassed)
			}
			after, err := cs.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
			require.NoError(t, err)
			afterSvc, err := cs.CoreV1().Services(ns).Get(ctx, "web", metav1.GetOptions{})
			require.NoError(t, err)
			require.Equal(t, before.Spec.Template, after.Spec.Template, "pod template restored exactly")
			require.Equal(t, before.Spec.Replicas, after.Spec.Replicas)
			require.Equal(t, before.Spec.Strategy, after.Spec.Strategy)
			require.Equal(t, beforeSvc.Spec, afterSvc.Spec, "Service restored exactly")
			require.Equal(t, beforeSvc.Labels, afterSvc.Labels)
			require.True(t, res.Rollback.Verified)
			require.Equal(t, map[string]string{"web": "demo:v1 x4 ready 4"}, deployments(t, cs, ns))
			require.Equal(t, before.Labels, after.Labels)
			require.Equal(t, before.Annotations["team"], after.Annotations["team"])
		})
	}
}

func TestKubernetesMissingTargetIsRejected(t *testing.T) {
	itest.StartWorker(t, tc, dc)
	cs := kubeClient(t, kubeconfig)
	ns := kubeTarget(t, cs)
	url := healthServer(t, cs, ns)
	s := kubeSpec(ns, kubeconfig, spec.Canary, url)
	s.Platform.Kubernetes.Deployment = "nope"
	res := deploy(t, s)
	require.Equal(t, api.OutcomeRejected, res.Outcome)
	require.Contains(t, res.Error, `deployment "`+ns+`/nope" not found`)
	s = kubeSpec(ns, kubeconfig, spec.Canary, url)
	s.Platform.Kubernetes.Container = "sidecar"
	res = deploy(t, s)
	require.Equal(t, api.OutcomeRejected, res.Outcome)
	require.Contains(t, res.Error, `container "sidecar" not found`)
	require.Equal(t, map[string]string{"web": "demo:v1 x4 ready 4"}, deployments(t, cs, ns), "nothing changed")
}

// rbacKubeconfig applies deployments/kubernetes/rbac.yaml to ns (minus any
// verbs drop lists per resource) and returns a kubeconfig for its
// ServiceAccount's token.
func rbacKubeconfig(t *testing.T, admin kubernetes.Interface, ns string, drop map[string]string) string {
	t.Helper()
	ctx := context.Background()
	raw, err := os.ReadFile(filepath.Join(itest.Root(), "deployments", "kubernetes", "rbac.yaml"))
	require.NoError(t, err)
	var role rbacv1.Role
	var binding rbacv1.RoleBinding
	for _, doc := range strings.Split(string(raw), "\n---\n") {
		switch {
		case strings.Contains(doc, "\nkind: RoleBinding\n"):
			require.NoError(t, yaml.UnmarshalStrict([]byte(doc), &binding))
		case strings.Contains(doc, "\nkind: Role\n"):
			require.NoError(t, yaml.UnmarshalStrict([]byte(doc), &role))
		}
	}
	require.NotEmpty(t, role.Rules)
	for i, r := range role.Rules {
		if verb, ok := drop[r.Resources[0]]; ok {
			require.Contains(t, r.Verbs, verb)
			role.Rules[i].Verbs = slices.DeleteFunc(slices.Clone(r.Verbs), func(v string) bool { return v == verb })
		}
	}
	role.Namespace, binding.Namespace = ns, ns
	binding.Subjects[0].Namespace = ns
	sa := binding.Subjects[0].Name
	_, err = admin.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = admin.RbacV1().Roles(ns).Create(ctx, &role, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = admin.RbacV1().RoleBindings(ns).Create(ctx, &binding, metav1.CreateOptions{})
	require.NoError(t, err)
	tok, err := admin.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authnv1.TokenRequest{}, metav1.CreateOptions{})
	require.NoError(t, err)
	cfg, err := clientcmd.LoadFromFile(kubeconfig)
	require.NoError(t, err)
	for _, ai := range cfg.AuthInfos {
		*ai = clientcmdapi.AuthInfo{Token: tok.Status.Token}
	}
	limited := filepath.Join(t.TempDir(), "kubeconfig")
	require.NoError(t, clientcmd.WriteToFile(*cfg, limited))
	return limited
}

// TestKubernetesLeastPrivilegeRBAC runs a canary as a service account bound
// only to deployments/kubernetes/rbac.yaml's Role, checks that the Role
// grants nothing beyond it, and that without one of its verbs the rollout
// cannot succeed.
func TestKubernetesLeastPrivilegeRBAC(t *testing.T) {
	itest.StartWorker(t, tc, dc)
	admin := kubeClient(t, kubeconfig)
	ctx := context.Background()
	t.Run("sufficient", func(t *testing.T) {
		ns := kubeTarget(t, admin)
		limited := rbacKubeconfig(t, admin, ns, nil)
		worker := kubeClient(t, limited)
		_, err := worker.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
		require.True(t, apierrors.IsForbidden(err), "no secrets: %v", err)
		_, err = worker.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		require.True(t, apierrors.IsForbidden(err), "nothing cluster-wide: %v", err)
		_, err = worker.AppsV1().Deployments("default").List(ctx, metav1.ListOptions{})
		require.True(t, apierrors.IsForbidden(err), "only the bound namespace: %v", err)

		res := deploy(t, kubeSpec(ns, limited, spec.Canary, healthServer(t, admin, ns)))
		require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
		require.Equal(t, map[string]string{"web": "demo:v2 x4 ready 4"}, deployments(t, admin, ns))
	})
	for resource, verb := range map[string]string{"deployments": "update", "services": "get"} {
		t.Run("without "+resource+" "+verb, func(t *testing.T) {
			ns := kubeTarget(t, admin)
			limited := rbacKubeconfig(t, admin, ns, map[string]string{resource: verb})
			res := deploy(t, kubeSpec(ns, limited, spec.Canary, healthServer(t, admin, ns)))
			require.NotEqual(t, api.OutcomeSucceeded, res.Outcome)
			require.Contains(t, res.Error, "forbidden")
		})
	}
}

// TestKubernetesCanaryCountsAtEveryStage watches the canary and stable
// Deployments through a seed-sized canary (20 replicas, 5/25/50/100) and
// checks every count against the planner.
func TestKubernetesCanaryCountsAtEveryStage(t *testing.T) {
	itest.StartWorker(t, tc, dc)
	cs := kubeClient(t, kubeconfig)
	ns := kubeTargetN(t, cs, 20)
	s := kubeSpec(ns, kubeconfig, spec.Canary, healthServer(t, cs, ns))
	s.Strategy.Steps = []int{5, 25, 50, 100}
	// Every write to the two Deployments is seen: a watch delivers each
	// change (a poll could miss one that lasts less than its interval).
	var (
		mu            sync.Mutex
		canary        []int32
		stable        []int32
		lastRV        = map[string]string{} // each Deployment's last version seen
		watchProblems []string
	)
	list, err := cs.AppsV1().Deployments(ns).List(t.Context(), metav1.ListOptions{})
	require.NoError(t, err)
	add := func(seen *[]int32, d *appsv1.Deployment) {
		if v := *d.Spec.Replicas; len(*seen) == 0 || (*seen)[len(*seen)-1] != v {
			*seen = append(*seen, v)
		}
	}
	see := func(typ watch.EventType, d *appsv1.Deployment) {
		mu.Lock()
		defer mu.Unlock()
		lastRV[d.Name] = d.ResourceVersion
		if typ == watch.Deleted {
			lastRV[d.Name] = "deleted"
			return
		}
		switch d.Name {
		case "web-canary":
			add(&canary, d)
		case "web":
			add(&stable, d)
		}
	}
	for i := range list.Items {
		see(watch.Added, &list.Items[i])
	}
	wctx, stopWatch := context.WithCancel(t.Context())
	defer stopWatch()
	rw, err := watchtools.NewRetryWatcherWithContext(wctx, list.ResourceVersion, &cache.ListWatch{
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return cs.AppsV1().Deployments(ns).Watch(ctx, o)
		}})
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range rw.ResultChan() {
			if d, ok := ev.Object.(*appsv1.Deployment); ok {
				see(ev.Type, d)
			} else if ev.Type == watch.Error {
				mu.Lock()
				watchProblems = append(watchProblems, fmt.Sprintf("%v", ev.Object))
				mu.Unlock()
			}
		}
	}()
	res := deploy(t, s)
	// The watch has caught up once it has seen each Deployment as it is
	// now, and the deletion of each one gone.
	require.Eventually(t, func() bool {
		now, err := cs.AppsV1().Deployments(ns).List(t.Context(), metav1.ListOptions{})
		if err != nil {
			return false
		}
		mu.Lock()
		defer mu.Unlock()
		want := map[string]string{"web-canary": "deleted"}
		for _, d := range now.Items {
			want[d.Name] = d.ResourceVersion
		}
		for name, rv := range want {
			if lastRV[name] != rv {
				return false
			}
		}
		return true
	}, 30*time.Second, 50*time.Millisecond, "the watch did not catch up with the Deployments")
	stopWatch()
	rw.Stop()
	<-done
	require.Empty(t, watchProblems, "the watch of the Deployments")
	require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
	var updated []int
	for _, st := range res.Stages {
		updated = append(updated, st.InstancesUpdated)
	}
	require.Equal(t, []int{1, 5, 10, 20}, updated, "ready new pods per stage, as planned")
	// At 100% the canary grows in steps of the Deployment's maxSurge (25%
	// of 20: 5), the original shrinking behind each growth but the last,
	// then the original takes the canary's ReplicaSet over at 20 (its last
	// 5 old pods scaled to zero by the handover).
	require.Equal(t, []int32{1, 5, 10, 15, 20}, canary, "canary replicas observed")
	require.Equal(t, []int32{20, 19, 15, 10, 5, 20}, stable, "original replicas observed")
	require.Equal(t, map[string]string{"web": "demo:v2 x20 ready 20"}, deployments(t, cs, ns))
}

// TestKubernetesWorkerKilledMidBake SIGKILLs the worker process in a bake;
// a new worker finishes with no canary left behind.
func TestKubernetesWorkerKilledMidBake(t *testing.T) {
	cs := kubeClient(t, kubeconfig)
	ns := kubeTarget(t, cs)
	first := startWorkerProcess(t)
	s := kubeSpec(ns, kubeconfig, spec.Canary, healthServer(t, cs, ns))
	s.Strategy.Bake = spec.Duration(6 * time.Second)
	ctx := context.Background()
	started, err := control.Start(ctx, tc, s)
	require.NoError(t, err)
	waitForStage(t, started.WorkflowID, 1, api.StageValidating)
	require.NoError(t, first.Process.Signal(syscall.SIGKILL))
	_ = first.Wait()
	startWorkerProcess(t)
	res, err := control.Wait(ctx, tc, started.WorkflowID, started.RunID, time.Second, nil)
	require.NoError(t, err)
	require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
	require.Equal(t, map[string]string{"web": "demo:v2 x4 ready 4"}, deployments(t, cs, ns), "no leftover canary")
	recordNamed(t, started.WorkflowID, started.RunID, "k8s-canary-worker-killed")
}

// TestKubernetesProgressDeadlineRollsBack: a quota leaves no room for the
// canary's pods, the Deployment reports ProgressDeadlineExceeded, the stage
// fails with the condition and the rollout rolls back.
func TestKubernetesProgressDeadlineRollsBack(t *testing.T) {
	itest.StartWorker(t, tc, dc)
	cs := kubeClient(t, kubeconfig)
	ns := kubeTarget(t, cs)
	_, err := cs.CoreV1().ResourceQuotas(ns).Create(context.Background(), &corev1.ResourceQuota{
		ObjectMeta: metav1.ObjectMeta{Name: "pods"},
		Spec:       corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("4")}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	s := kubeSpec(ns, kubeconfig, spec.Canary, healthServer(t, cs, ns))
	s.Platform.Kubernetes.ProgressDeadline = spec.Duration(5 * time.Second)
	res := deploy(t, s)
	require.Equal(t, api.OutcomeRolledBack, res.Outcome, res.Error)
	require.Contains(t, res.Stages[0].Error, "ProgressDeadlineExceeded")
	require.Equal(t, api.StageRolledBack, res.Stages[0].Status)
	require.Equal(t, map[string]string{"web": "demo:v1 x4 ready 4"}, deployments(t, cs, ns))
}
