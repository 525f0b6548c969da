package kubernetes

import (
	"context"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	appsv1client "k8s.io/client-go/kubernetes/typed/apps/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
)

// hookedReads is a clientset that calls before ahead of each Deployment
// read ("get deployments NAME") and each ReplicaSet or pod list ("list
// replicasets SELECTOR", "list pods SELECTOR"), so a test can hold a call
// or pair it with another. (A fake's reactors run under one lock, so the
// hold is outside them.)
type hookedReads struct {
	*fake.Clientset
	before func(call string)
}

var _ kubernetes.Interface = (*hookedReads)(nil)

// hookedCall says whether call is of verb ("get", "list") and resource.
func hookedCall(call, verb, resource string) bool {
	return strings.HasPrefix(call, verb+" "+resource+" ")
}

func (h *hookedReads) AppsV1() appsv1client.AppsV1Interface {
	return hookedApps{h.Clientset.AppsV1(), h.before}
}

func (h *hookedReads) CoreV1() corev1client.CoreV1Interface {
	return hookedCore{h.Clientset.CoreV1(), h.before}
}

type hookedApps struct {
	appsv1client.AppsV1Interface
	before func(string)
}

func (a hookedApps) Deployments(ns string) appsv1client.DeploymentInterface {
	return hookedDeployments{a.AppsV1Interface.Deployments(ns), a.before}
}

func (a hookedApps) ReplicaSets(ns string) appsv1client.ReplicaSetInterface {
	return hookedSets{a.AppsV1Interface.ReplicaSets(ns), a.before}
}

type hookedDeployments struct {
	appsv1client.DeploymentInterface
	before func(string)
}

func (d hookedDeployments) Get(ctx context.Context, name string, opts metav1.GetOptions) (*appsv1.Deployment, error) {
	d.before("get deployments " + name)
	return d.DeploymentInterface.Get(ctx, name, opts)
}

type hookedSets struct {
	appsv1client.ReplicaSetInterface
	before func(string)
}

func (s hookedSets) List(ctx context.Context, opts metav1.ListOptions) (*appsv1.ReplicaSetList, error) {
	s.before("list replicasets " + opts.LabelSelector)
	return s.ReplicaSetInterface.List(ctx, opts)
}

type hookedCore struct {
	corev1client.CoreV1Interface
	before func(string)
}

func (c hookedCore) Pods(ns string) corev1client.PodInterface {
	return hookedPods{c.CoreV1Interface.Pods(ns), c.before}
}

type hookedPods struct {
	corev1client.PodInterface
	before func(string)
}

func (p hookedPods) List(ctx context.Context, opts metav1.ListOptions) (*corev1.PodList, error) {
	p.before("list pods " + opts.LabelSelector)
	return p.PodInterface.List(ctx, opts)
}
