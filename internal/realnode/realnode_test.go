//go:build integration

package realnode

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/stagecraft/stagecraft/internal/itest"
)

var (
	cfg *rest.Config
	cs  kubernetes.Interface
	// kubeconfigPath is the plane's admin kubeconfig.
	kubeconfigPath string
)

func TestMain(m *testing.M) {
	start := time.Now()
	kubeconfig, stop, err := itest.KubeRealNode()
	if err != nil {
		fmt.Fprintf(os.Stderr, "real node: %v\n", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "real node: plane and node up in %.1fs\n", time.Since(start).Seconds())
	kubeconfigPath = kubeconfig
	code := func() int {
		defer stop()
		if cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig); err != nil {
			fmt.Fprintf(os.Stderr, "real node: %v\n", err)
			return 1
		}
		cfg.QPS, cfg.Burst = 50, 100
		if cs, err = kubernetes.NewForConfig(cfg); err != nil {
			fmt.Fprintf(os.Stderr, "real node: %v\n", err)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

// namespace creates a namespace for the test (deleted at cleanup) and waits
// for its default service account.
func namespace(t testing.TB, prefix string) string {
	t.Helper()
	ctx := context.Background()
	ns := itest.Name(prefix)
	_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	itest.Eventually(t, 30*time.Second, "default service account", func() bool {
		_, err := cs.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil
	})
	return ns
}

// rolledOut: the Deployment's controller has seen its latest generation and
// every replica runs it and is ready, none of an older one left.
func rolledOut(ctx context.Context, ns, name string, replicas int32) bool {
	d, err := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	return err == nil && d.Status.ObservedGeneration >= d.Generation &&
		d.Status.UpdatedReplicas == replicas && d.Status.ReadyReplicas == replicas &&
		d.Status.AvailableReplicas == replicas && d.Status.Replicas == replicas
}

// readyPods are the Ready, not terminating pods of app=web running image.
func readyPods(t testing.TB, ctx context.Context, ns, image string) []corev1.Pod {
	t.Helper()
	list, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	require.NoError(t, err)
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp != nil || p.Spec.Containers[0].Image != image {
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				out = append(out, p)
			}
		}
	}
	return out
}

// healthz asks pod's /healthz through a port-forward of the API server and
// returns the version it reports, and the time of the GET's round trip.
func healthz(t *testing.T, ctx context.Context, pod corev1.Pod) (string, time.Duration) {
	t.Helper()
	start := time.Now()
	local, stop, err := itest.PortForward(ctx, cfg, pod.Namespace, pod.Name, 8080)
	require.NoError(t, err)
	defer stop()
	setup := time.Since(start)
	hc := &http.Client{Timeout: 10 * time.Second}
	start = time.Now()
	resp, err := hc.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", local))
	require.NoError(t, err, "GET /healthz of %s through port-forward", pod.Name)
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	require.NoError(t, err)
	rtt := time.Since(start)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", pod.Name, body)
	var h struct{ Status, Version string }
	require.NoError(t, json.Unmarshal(body, &h), "%s", body)
	require.Equal(t, "ok", h.Status)
	t.Logf("%s (pod IP %s, never dialled): /healthz %s through port-forward on 127.0.0.1:%d (forward set up in %s, GET round trip %s)",
		pod.Name, pod.Status.PodIP, strings.TrimSpace(string(body)), local, setup.Round(time.Millisecond), rtt.Round(time.Millisecond))
	return h.Version, rtt
}

// TestRealNodeDeploymentServesThroughPortForward: a Deployment of 2 real
// pods of stagecraft-demo:v1 with an exec readiness probe (the app's own
// probe mode) becomes Ready, each pod answers /healthz through the API
// server's port-forward, and rolling the image to v2 brings 2 new Ready pods
// that answer as v2.
func TestRealNodeDeploymentServesThroughPortForward(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ns := namespace(t, "realnode")
	replicas, deadline, grace := int32(2), int32(60), int64(5)
	labels := map[string]string{"app": "web"}
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
							PeriodSeconds: 1, TimeoutSeconds: 3, FailureThreshold: 1,
						},
					}},
				},
			},
		},
	}
	start := time.Now()
	_, err := cs.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{})
	require.NoError(t, err)
	itest.Eventually(t, 90*time.Second, "2 Ready pods of v1", func() bool { return rolledOut(ctx, ns, "web", replicas) })
	t.Logf("2 pods of v1 Ready in %s", time.Since(start).Round(time.Millisecond))

	pods := readyPods(t, ctx, ns, "stagecraft-demo:v1")
	require.Len(t, pods, 2)
	for _, p := range pods {
		require.Equal(t, "localhost", p.Spec.NodeName, "pod %s runs on the real node", p.Name)
		v, _ := healthz(t, ctx, p)
		require.Equal(t, "v1", v)
	}

	start = time.Now()
	cur, err := cs.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	require.NoError(t, err)
	cur.Spec.Template.Spec.Containers[0].Image = "stagecraft-demo:v2"
	_, err = cs.AppsV1().Deployments(ns).Update(ctx, cur, metav1.UpdateOptions{})
	require.NoError(t, err)
	itest.Eventually(t, 90*time.Second, "rolled to v2", func() bool { return rolledOut(ctx, ns, "web", replicas) })
	t.Logf("rolled to v2 (2 new pods Ready) in %s", time.Since(start).Round(time.Millisecond))
	pods = readyPods(t, ctx, ns, "stagecraft-demo:v2")
	require.Len(t, pods, 2)
	for _, p := range pods {
		v, _ := healthz(t, ctx, p)
		require.Equal(t, "v2", v)
	}
}

// TestRealNodeMissingImage: a pod of an image no registry has
// (registry.invalid/..., whose pulls the node sends to a closed 127.0.0.1
// port) reports ErrImagePull or ImagePullBackOff.
func TestRealNodeMissingImage(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns := namespace(t, "realnode-missing")
	_, err := cs.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "missing"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "app", Image: "registry.invalid/nothing:v1", ImagePullPolicy: corev1.PullIfNotPresent,
		}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	var reason, msg string
	itest.Eventually(t, 45*time.Second, "ErrImagePull or ImagePullBackOff", func() bool {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, "missing", metav1.GetOptions{})
		if err != nil || len(p.Status.ContainerStatuses) == 0 || p.Status.ContainerStatuses[0].State.Waiting == nil {
			return false
		}
		w := p.Status.ContainerStatuses[0].State.Waiting
		reason, msg = w.Reason, w.Message
		return reason == "ErrImagePull" || reason == "ImagePullBackOff"
	})
	t.Logf("missing image: %s: %s", reason, msg)
}
