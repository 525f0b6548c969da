package itest

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/stagecraft/stagecraft/internal/spec"
)

// KubeClient is a clientset for the kubeconfig at path.
func KubeClient(t testing.TB, path string) kubernetes.Interface {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	require.NoError(t, err)
	cs, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	return cs
}

// KubeWeb creates a namespace (prefix-…, deleted at cleanup) holding what an
// application team would have: the Deployment "web" (label app=web,
// replicas of image in container "app" on port 8080, progressDeadlineSeconds
// 30) and its Service "web" selecting app=web. mutate, when not nil, adjusts
// the Deployment before it is created. It returns the namespace once the
// Deployment's pods are ready.
func KubeWeb(t testing.TB, cs kubernetes.Interface, prefix, image string, replicas int32, mutate func(*appsv1.Deployment)) string {
	t.Helper()
	ctx := context.Background()
	ns := Name(prefix)
	_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	Eventually(t, 30*time.Second, "default service account", func() bool {
		_, err := cs.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil
	})
	labels := map[string]string{"app": "web"}
	deadline := int32(30)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas, ProgressDeadlineSeconds: &deadline,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image,
					Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}}},
			},
		},
	}
	if mutate != nil {
		mutate(d)
	}
	_, err = cs.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec:       corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	Eventually(t, time.Minute, "web ready", func() bool {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		return err == nil && d.Status.ReadyReplicas == replicas
	})
	return ns
}

// KubeHealth is the health endpoint of KubeWeb's service as the worker
// would reach it (through an ingress in production: pod IPs are fake here).
// It answers from the cluster's real state, read with cs: 500 while fail
// says so, given the ready pods of the namespace's Deployments that run
// image bad and whether the Service's selector has moved off app=web (to
// green); 200 otherwise.
func KubeHealth(t testing.TB, cs kubernetes.Interface, ns, bad string, fail func(readyBad int, switched bool) bool) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		list, err := cs.AppsV1().Deployments(ns).List(r.Context(), metav1.ListOptions{})
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		readyBad := 0
		for _, d := range list.Items {
			if d.Spec.Template.Spec.Containers[0].Image == bad {
				readyBad += int(d.Status.ReadyReplicas)
			}
		}
		svc, err := cs.CoreV1().Services(ns).Get(r.Context(), "web", metav1.GetOptions{})
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		if fail(readyBad, svc.Spec.Selector["app"] != "web") {
			http.Error(w, `{"status":"failing"}`, http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, `{"status":"ok"}`)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/healthz"
}

// KubeSpec is a spec rolling KubeWeb's Deployment "web" (and Service) to
// image: a 1-minute progress deadline, an HTTP check of healthURL every
// 500 ms, 2 s bakes, and the strategy's usual shape (canary 25/50/100,
// blue-green 2 s before and after the switch, rolling batch 2), defaults
// applied.
func KubeSpec(ns, kubeconfig, strategy, image, healthURL string) spec.Spec {
	s := spec.Spec{
		Service: "web",
		Image:   image,
		Platform: spec.Platform{Kubernetes: &spec.Kubernetes{Namespace: ns, Deployment: "web", Service: "web",
			Kubeconfig: kubeconfig, ProgressDeadline: spec.Duration(time.Minute)}},
		Strategy: spec.Strategy{Type: strategy, Bake: spec.Duration(2 * time.Second)},
		Health: spec.Health{Interval: spec.Duration(500 * time.Millisecond), Checks: []spec.Check{
			{Name: "healthz", HTTP: &spec.HTTPCheck{URL: healthURL}},
		}},
	}
	return shaped(s, []int{25, 50, 100}, 2)
}
