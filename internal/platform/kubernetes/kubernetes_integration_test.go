//go:build integration

// These tests run against a real control plane (etcd, kube-apiserver,
// controller-manager, scheduler and a KWOK node) started by
// scripts/kube/up.sh; its binaries come from scripts/kube/build.sh.
package kubernetes

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/stagecraft/stagecraft/internal/plan"
	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

const (
	imageV1 = "demo:v1"
	imageV2 = "demo:v2"
)

var (
	kubeconfig string
	cs         kubernetes.Interface
)

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..", "..")
	dir, err := os.MkdirTemp("", "stagecraft-kube-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "temp dir:", err)
		return 1
	}
	up := exec.Command("bash", filepath.Join(root, "scripts", "kube", "up.sh"), dir)
	up.Stdout, up.Stderr = os.Stderr, os.Stderr
	if err := up.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "scripts/kube/up.sh:", err)
		_ = os.RemoveAll(dir)
		return 1
	}
	defer func() {
		down := exec.Command("bash", filepath.Join(root, "scripts", "kube", "down.sh"), dir)
		down.Stdout, down.Stderr = os.Stderr, os.Stderr
		if err := down.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "scripts/kube/down.sh:", err)
		}
	}()
	kubeconfig = filepath.Join(dir, "kubeconfig")
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kubeconfig:", err)
		return 1
	}
	if cs, err = kubernetes.NewForConfig(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		return 1
	}
	return m.Run()
}

// env is one test's namespace, its target and the platform under test.
type env struct {
	t    *testing.T
	ctx  context.Context
	ns   string
	p    *Platform
	spec spec.Spec
}

// newEnv makes a namespace with the target in it: Deployment "web" (4
// replicas of demo:v1, container "app", pods labelled app=x) and Service
// "web" selecting app=x. mutate, if not nil, edits the Deployment before it
// is created; ready says whether to wait for it.
func newEnv(t *testing.T, mutate func(*appsv1.Deployment), ready bool) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	ns := fmt.Sprintf("%.50s-%s", name, hex.EncodeToString(b))
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	t.Cleanup(func() {
		_ = cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
	})
	eventually(t, ctx, "default service account", func() (bool, error) {
		_, err := cs.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil, err
	})
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{
			Name:        target,
			Labels:      map[string]string{"app": "x", "tier": "web"},
			Annotations: map[string]string{"team": "payments"},
		},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(int32(4)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "x", "tier": "web"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name:  "app",
					Image: imageV1,
					Ports: []corev1.ContainerPort{{ContainerPort: 8080}},
					Env:   []corev1.EnvVar{{Name: "GREETING", Value: "hello"}},
				}}},
			},
		},
	}
	if mutate != nil {
		mutate(d)
	}
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create deployment: %v", err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: target, Labels: map[string]string{"app": "x"}},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "x"},
			Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
	if _, err := cs.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create service: %v", err)
	}
	e := &env{t: t, ctx: ctx, ns: ns, p: New(zaptest.NewLogger(t)), spec: spec.Spec{
		Service: "web",
		Image:   imageV2,
		Platform: spec.Platform{Kubernetes: &spec.Kubernetes{
			Namespace:        ns,
			Deployment:       target,
			Container:        "app",
			Service:          target,
			Kubeconfig:       kubeconfig,
			ProgressDeadline: spec.Duration(time.Minute),
		}},
	}}
	if ready {
		e.waitReady(target, 4)
	}
	return e
}

func eventually(t *testing.T, ctx context.Context, what string, f func() (bool, error)) {
	t.Helper()
	for {
		ok, err := f()
		if ok {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v (last error %v)", what, ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (e *env) waitReady(name string, n int32) {
	e.t.Helper()
	eventually(e.t, e.ctx, "deployment "+name+" ready", func() (bool, error) {
		d, err := cs.AppsV1().Deployments(e.ns).Get(e.ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		st := d.Status
		return st.ObservedGeneration >= d.Generation && st.ReadyReplicas == n && st.UpdatedReplicas == n && st.Replicas == n, nil
	})
}

func (e *env) snapshot() platform.Snapshot {
	e.t.Helper()
	snap, err := e.p.Snapshot(e.ctx, e.spec)
	if err != nil {
		e.t.Fatalf("Snapshot: %v", err)
	}
	return snap
}

func (e *env) converge(snap platform.Snapshot, d plan.Desired) platform.ConvergeResult {
	e.t.Helper()
	res, err := e.p.Converge(e.ctx, platform.ConvergeRequest{Spec: e.spec, Rollout: "r1a2b3", Snapshot: snap, Desired: d})
	if err != nil {
		e.t.Fatalf("Converge %+v: %v", d, err)
	}
	e.t.Logf("converge %+v: %+v", d, res)
	return res
}

func (e *env) deployment(name string) *appsv1.Deployment {
	e.t.Helper()
	d, err := cs.AppsV1().Deployments(e.ns).Get(e.ctx, name, metav1.GetOptions{})
	if err != nil {
		e.t.Fatalf("get deployment %s: %v", name, err)
	}
	return d
}

// settledDeployment reads the named Deployment once its status says ready
// as many as it wants, or as it is after 10 s.
func (e *env) settledDeployment(name string) *appsv1.Deployment {
	e.t.Helper()
	var d *appsv1.Deployment
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		d = e.deployment(name)
		if d.Status.ReadyReplicas == replicas(d) || time.Now().After(end) {
			return d
		}
	}
}

func (e *env) service() *corev1.Service {
	e.t.Helper()
	s, err := cs.CoreV1().Services(e.ns).Get(e.ctx, target, metav1.GetOptions{})
	if err != nil {
		e.t.Fatalf("get service: %v", err)
	}
	return s
}

func (e *env) assertGone(name string) {
	e.t.Helper()
	_, err := cs.AppsV1().Deployments(e.ns).Get(e.ctx, name, metav1.GetOptions{})
	if !apierrors.IsNotFound(err) {
		e.t.Fatalf("deployment %s: want not found, got %v", name, err)
	}
}

// servedImages returns the images of the ready, live pods the Service selects.
func (e *env) servedImages() []string {
	e.t.Helper()
	sel := labels.SelectorFromSet(e.service().Spec.Selector).String()
	pods, err := cs.CoreV1().Pods(e.ns).List(e.ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		e.t.Fatalf("list pods: %v", err)
	}
	var out []string
	for _, p := range pods.Items {
		if podReady(p) {
			out = append(out, p.Spec.Containers[0].Image)
		}
	}
	slices.Sort(out)
	return out
}

func (e *env) endpoints(snap platform.Snapshot, which platform.Which) []string {
	e.t.Helper()
	eps, err := e.p.Endpoints(e.ctx, e.spec, "r1a2b3", snap, which)
	if err != nil {
		e.t.Fatalf("Endpoints %s: %v", which, err)
	}
	for _, ep := range eps {
		if !strings.HasSuffix(ep, ":8080") {
			e.t.Fatalf("endpoint %q: want port 8080", ep)
		}
	}
	return eps
}

func counts(t *testing.T, res platform.ConvergeResult, newN, oldN int) {
	t.Helper()
	if res.NewCount != newN || res.OldCount != oldN || res.Total != newN+oldN {
		t.Fatalf("counts: got new=%d old=%d total=%d, want new=%d old=%d", res.NewCount, res.OldCount, res.Total, newN, oldN)
	}
}

func repeat(n int, s string) []string { return slices.Repeat([]string{s}, n) }

// assertRestored checks the stable Deployment and the Service are as the
// snapshot recorded them. The Deployment controller's revision annotation
// is compared only when the template never changed (keepRevision): rolling
// back a changed template is a new revision to the controller.
func (e *env) assertRestored(snap platform.Snapshot, keepRevision bool) {
	e.t.Helper()
	orig, origSvc, err := decodeSnapshot(snap)
	if err != nil {
		e.t.Fatal(err)
	}
	e.waitReady(target, 4)
	d := e.deployment(target)
	if !equality.Semantic.DeepEqual(d.Spec.Template, orig.Spec.Template) {
		e.t.Errorf("template not restored:\n got %+v\nwant %+v", d.Spec.Template, orig.Spec.Template)
	}
	if *d.Spec.Replicas != *orig.Spec.Replicas {
		e.t.Errorf("replicas %d, want %d", *d.Spec.Replicas, *orig.Spec.Replicas)
	}
	if !keepRevision {
		delete(d.Annotations, revisionAnnotation)
		delete(orig.Annotations, revisionAnnotation)
	}
	if !equality.Semantic.DeepEqual(d.Labels, orig.Labels) || !equality.Semantic.DeepEqual(d.Annotations, orig.Annotations) {
		e.t.Errorf("metadata not restored: labels %v annotations %v, want %v %v", d.Labels, d.Annotations, orig.Labels, orig.Annotations)
	}
	if got := e.service().Spec.Selector; !equality.Semantic.DeepEqual(got, origSvc.Spec.Selector) {
		e.t.Errorf("service selector %v, want %v", got, origSvc.Spec.Selector)
	}
}

func TestSnapshot(t *testing.T) {
	e := newEnv(t, nil, true)
	snap := e.snapshot()
	ks := snap.Kubernetes
	if ks == nil || ks.Replicas != 4 || ks.Image != imageV1 || len(ks.Service) == 0 {
		t.Fatalf("snapshot: %+v", ks)
	}
	var raw struct {
		Metadata map[string]any `json:"metadata"`
		Status   map[string]any `json:"status"`
	}
	if err := json.Unmarshal(ks.Deployment, &raw); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"resourceVersion", "uid", "managedFields", "generation"} {
		if _, ok := raw.Metadata[f]; ok {
			t.Errorf("snapshot deployment keeps metadata.%s", f)
		}
	}
	if raw.Metadata["name"] != target || len(raw.Status) != 0 {
		t.Errorf("snapshot deployment: metadata %v status %v", raw.Metadata, raw.Status)
	}
	if err := e.p.CheckImage(e.ctx, "anything:v9"); err != nil {
		t.Errorf("CheckImage: %v", err)
	}
}

func TestCanary(t *testing.T) {
	e := newEnv(t, nil, true)
	snap := e.snapshot()
	canary := canaryName(target)

	res := e.converge(snap, plan.Desired{New: 1, Old: 3, Traffic: plan.TrafficShared, Order: plan.Surge})
	if !slices.Contains(res.Created, "deployment/"+canary) {
		t.Errorf("created %v, want the canary", res.Created)
	}
	counts(t, res, 1, 3)
	c := e.deployment(canary)
	for k, v := range map[string]string{platform.LabelService: "web", platform.LabelRollout: "r1a2b3", platform.LabelRole: platform.RoleNew} {
		if c.Labels[k] != v {
			t.Errorf("canary label %s: deployment %q, want %q", k, c.Labels[k], v)
		}
	}
	// The canary's pods are the stable template's with the new image and
	// nothing else, so that the stable Deployment can take them over.
	stableTpl := e.deployment(target).Spec.Template
	if !maps.Equal(c.Spec.Template.Labels, stableTpl.Labels) || !maps.Equal(c.Spec.Selector.MatchLabels, map[string]string{"app": "x"}) {
		t.Errorf("canary pods labelled %v selected by %v, want the stable's %v selected by app=x", c.Spec.Template.Labels, c.Spec.Selector, stableTpl.Labels)
	}
	if got := *e.deployment(target).Spec.Replicas; got != 3 {
		t.Errorf("stable replicas %d, want 3", got)
	}
	want := append(repeat(1, imageV2), repeat(3, imageV1)...)
	slices.Sort(want)
	if got := e.servedImages(); !slices.Equal(got, want) {
		t.Errorf("service serves %v, want %v", got, want)
	}
	if n, o := e.endpoints(snap, platform.WhichNew), e.endpoints(snap, platform.WhichOld); len(n) != 1 || len(o) != 3 {
		t.Errorf("endpoints new %v old %v, want 1 and 3", n, o)
	}

	again := e.converge(snap, plan.Desired{New: 1, Old: 3, Traffic: plan.TrafficShared, Order: plan.Surge})
	if again.Changed() {
		t.Errorf("rerun changed %+v", again)
	}
	counts(t, again, 1, 3)

	counts(t, e.converge(snap, plan.Desired{New: 2, Old: 2, Traffic: plan.TrafficShared, Order: plan.Surge}), 2, 2)

	res = e.converge(snap, plan.Desired{New: 4, Old: 0, Traffic: plan.TrafficShared, Order: plan.Surge})
	counts(t, res, 4, 0)
	if !slices.Contains(res.Removed, "deployment/"+canary) {
		t.Errorf("removed %v, want the canary", res.Removed)
	}
	e.assertGone(canary)
	d := e.settledDeployment(target)
	if img := d.Spec.Template.Spec.Containers[0].Image; img != imageV2 || *d.Spec.Replicas != 4 || d.Status.ReadyReplicas != 4 {
		t.Errorf("stable: image %s replicas %d ready %d, want %s 4 4", img, *d.Spec.Replicas, d.Status.ReadyReplicas, imageV2)
	}
	if got := e.servedImages(); !slices.Equal(got, repeat(4, imageV2)) {
		t.Errorf("service serves %v", got)
	}
	if n := e.endpoints(snap, platform.WhichNew); len(n) != 4 {
		t.Errorf("new endpoints %v, want 4", n)
	}

	for _, d := range []plan.Desired{
		{New: 4, Old: 0, Traffic: plan.TrafficShared, Order: plan.Surge},
		{New: 4, Old: 0, Traffic: plan.TrafficNew, Order: plan.Surge}, // the plan's final state
	} {
		if res := e.converge(snap, d); res.Changed() {
			t.Errorf("rerun %+v changed %+v", d, res)
		}
	}
}

func TestCanaryRollback(t *testing.T) {
	e := newEnv(t, nil, true)
	snap := e.snapshot()
	e.converge(snap, plan.Desired{New: 1, Old: 3, Traffic: plan.TrafficShared, Order: plan.Surge})
	e.converge(snap, plan.Desired{New: 2, Old: 2, Traffic: plan.TrafficShared, Order: plan.Surge})

	back := plan.Desired{New: 0, Old: snap.Count(), Traffic: plan.TrafficOld, Order: plan.Surge}
	res := e.converge(snap, back)
	counts(t, res, 0, 4)
	e.assertGone(canaryName(target))
	e.assertRestored(snap, true)
	if again := e.converge(snap, back); again.Changed() {
		t.Errorf("rerun of rollback changed %+v", again)
	}
}

// TestRollbackAfterADeletionItDidNotSee: a converge that died after
// deleting the canary Deployment (background propagation: the object goes
// at once, the garbage collector takes its ReplicaSet and pods after) is
// retried; the retry finds no canary Deployment and still waits until the
// canary's ReplicaSet and pods are gone before it says restored.
func TestRollbackAfterADeletionItDidNotSee(t *testing.T) {
	e := newEnv(t, nil, true)
	snap := e.snapshot()
	e.converge(snap, plan.Desired{New: 2, Old: 2, Traffic: plan.TrafficShared, Order: plan.Surge})
	err := cs.AppsV1().Deployments(e.ns).Delete(e.ctx, canaryName(target), metav1.DeleteOptions{PropagationPolicy: ptr(metav1.DeletePropagationBackground)})
	if err != nil {
		t.Fatalf("delete the canary: %v", err)
	}
	counts(t, e.converge(snap, plan.Desired{New: 0, Old: 4, Traffic: plan.TrafficOld, Order: plan.Surge}), 0, 4)
	pods, err := cs.CoreV1().Pods(e.ns).List(e.ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		if p.Spec.Containers[0].Image != imageV1 {
			t.Errorf("canary pod %s left when the restore returned", p.Name)
		}
	}
	rss, err := cs.AppsV1().ReplicaSets(e.ns).List(e.ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, rs := range rss.Items {
		if strings.HasPrefix(rs.Name, canaryName(target)+"-") {
			t.Errorf("canary ReplicaSet %s left when the restore returned", rs.Name)
		}
	}
	e.assertRestored(snap, true)
}

func TestRollbackAfterPromote(t *testing.T) {
	e := newEnv(t, nil, true)
	snap := e.snapshot()
	e.converge(snap, plan.Desired{New: 2, Old: 2, Traffic: plan.TrafficShared, Order: plan.Surge})
	e.converge(snap, plan.Desired{New: 4, Old: 0, Traffic: plan.TrafficShared, Order: plan.Surge})
	counts(t, e.converge(snap, plan.Desired{New: 0, Old: 4, Traffic: plan.TrafficOld, Order: plan.Surge}), 0, 4)
	e.assertRestored(snap, false)
}

func TestBlueGreen(t *testing.T) {
	e := newEnv(t, nil, true)
	snap := e.snapshot()
	green := greenName(target)

	res := e.converge(snap, plan.Desired{New: 4, Old: 4, Traffic: plan.TrafficOld, Order: plan.Surge})
	counts(t, res, 4, 4)
	if got := e.service().Spec.Selector; !equality.Semantic.DeepEqual(got, map[string]string{"app": "x"}) {
		t.Errorf("selector changed before the switch: %v", got)
	}
	if got := e.servedImages(); !slices.Equal(got, repeat(4, imageV1)) {
		t.Errorf("before the switch the service serves %v", got)
	}
	if g := e.settledDeployment(green); g.Spec.Template.Labels[LabelColor] != colorGreen || g.Status.ReadyReplicas != 4 {
		t.Errorf("green: labels %v ready %d", g.Spec.Template.Labels, g.Status.ReadyReplicas)
	}

	sw := plan.Desired{New: 4, Old: 4, Traffic: plan.TrafficNew, Order: plan.Surge}
	res = e.converge(snap, sw)
	if !slices.Equal(res.Rewired, []string{"service/" + target}) || len(res.Created)+len(res.Removed) > 0 {
		t.Errorf("switch did %+v, want one service update", res)
	}
	if got := e.servedImages(); !slices.Equal(got, repeat(4, imageV2)) {
		t.Errorf("after the switch the service serves %v", got)
	}
	if got := e.deployment(target).Status.ReadyReplicas; got != 4 {
		t.Errorf("blue ready %d, want 4 kept", got)
	}
	if again := e.converge(snap, sw); again.Changed() {
		t.Errorf("rerun of switch changed %+v", again)
	}

	res = e.converge(snap, plan.Desired{New: 0, Old: 4, Traffic: plan.TrafficOld, Order: plan.Surge})
	counts(t, res, 0, 4)
	e.assertGone(green)
	e.assertRestored(snap, true)
	if got := e.servedImages(); !slices.Equal(got, repeat(4, imageV1)) {
		t.Errorf("after rollback the service serves %v", got)
	}
}

func TestBlueGreenFinal(t *testing.T) {
	e := newEnv(t, nil, true)
	snap := e.snapshot()
	e.converge(snap, plan.Desired{New: 4, Old: 4, Traffic: plan.TrafficOld, Order: plan.Surge})
	e.converge(snap, plan.Desired{New: 4, Old: 4, Traffic: plan.TrafficNew, Order: plan.Surge})
	final := plan.Desired{New: 4, Old: 0, Traffic: plan.TrafficNew, Order: plan.Surge}
	counts(t, e.converge(snap, final), 4, 0)
	e.assertGone(greenName(target))
	if got := e.service().Spec.Selector; !equality.Semantic.DeepEqual(got, map[string]string{"app": "x"}) {
		t.Errorf("selector %v, want the original", got)
	}
	if got := e.servedImages(); !slices.Equal(got, repeat(4, imageV2)) {
		t.Errorf("service serves %v", got)
	}
	if again := e.converge(snap, final); again.Changed() {
		t.Errorf("rerun changed %+v", again)
	}
}

func TestRecreate(t *testing.T) {
	e := newEnv(t, nil, true)
	snap := e.snapshot()
	// Watch the stable Deployment: stop-first must reach zero replicas
	// before the new template is written.
	w, err := cs.AppsV1().Deployments(e.ns).Watch(e.ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + target})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	res := e.converge(snap, plan.Desired{New: 4, Old: 0, Traffic: plan.TrafficNew, Order: plan.StopFirst})
	counts(t, res, 4, 0)
	d := e.settledDeployment(target)
	if img := d.Spec.Template.Spec.Containers[0].Image; img != imageV2 || d.Status.ReadyReplicas != 4 {
		t.Errorf("stable: image %s ready %d", img, d.Status.ReadyReplicas)
	}
	sawZero := false
	for {
		select {
		case ev := <-w.ResultChan():
			dd, ok := ev.Object.(*appsv1.Deployment)
			if !ok {
				continue
			}
			if *dd.Spec.Replicas == 0 && dd.Spec.Template.Spec.Containers[0].Image == imageV1 && dd.Status.Replicas == 0 {
				sawZero = true
			}
			if dd.Spec.Template.Spec.Containers[0].Image == imageV2 && !sawZero {
				t.Fatal("new template written before the old pods were gone")
			}
			continue
		case <-time.After(time.Second):
		}
		break
	}
	if !sawZero {
		t.Error("never saw the stable deployment at zero")
	}
	if again := e.converge(snap, plan.Desired{New: 4, Old: 0, Traffic: plan.TrafficNew, Order: plan.StopFirst}); again.Changed() {
		t.Errorf("rerun changed %+v", again)
	}
}

func TestMissingTarget(t *testing.T) {
	e := newEnv(t, nil, false)
	e.spec.Platform.Kubernetes.Deployment = "nope"
	_, err := e.p.Snapshot(e.ctx, e.spec)
	var tnf *TargetNotFoundError
	if !errors.As(err, &tnf) || !strings.Contains(err.Error(), fmt.Sprintf("deployment %q not found", e.ns+"/nope")) {
		t.Errorf("missing deployment: %v", err)
	}
	e.spec.Platform.Kubernetes.Deployment = target
	e.spec.Platform.Kubernetes.Service = "nope"
	if _, err := e.p.Snapshot(e.ctx, e.spec); !IsTargetNotFound(err) {
		t.Errorf("missing service: %v", err)
	}
	e.spec.Platform.Kubernetes.Service = target
	e.spec.Platform.Kubernetes.Container = "nope"
	_, err = e.p.Snapshot(e.ctx, e.spec)
	if !IsTargetNotFound(err) || !strings.Contains(err.Error(), `container "nope" not found`) {
		t.Errorf("wrong container: %v", err)
	}
	e.spec.Platform.Kubernetes.Container = ""
	if _, err := e.p.Snapshot(e.ctx, e.spec); err != nil {
		t.Errorf("the only container, unnamed: %v", err)
	}
}

func TestProgressDeadline(t *testing.T) {
	e := newEnv(t, func(d *appsv1.Deployment) {
		d.Spec.Template.Spec.NodeSelector = map[string]string{"stagecraft.test/nowhere": "true"}
	}, false)
	e.spec.Platform.Kubernetes.ProgressDeadline = spec.Duration(5 * time.Second)
	snap := e.snapshot()
	_, err := e.p.Converge(e.ctx, platform.ConvergeRequest{Spec: e.spec, Rollout: "r1a2b3", Snapshot: snap,
		Desired: plan.Desired{New: 1, Old: 3, Traffic: plan.TrafficShared, Order: plan.Surge}})
	var pde *ProgressDeadlineError
	if !errors.As(err, &pde) || pde.Message == "" {
		t.Fatalf("want ProgressDeadlineExceeded, got %v", err)
	}
	t.Logf("error: %v", err)
}

// TestShortUserDeadline: the stable Deployment's own progressDeadlineSeconds
// (1 s) is shorter than the spec's, and a ResourceQuota holds its new pods
// back for a moment, so its controller reports ProgressDeadlineExceeded
// and then, the quota gone, goes on rolling out. Promoting and then
// restoring it both wait for the rollout, as the spec's deadline says,
// instead of failing at the controller's first report of a stall (a busy
// control plane made 292 of 500 promoted rollouts end rollback_failed
// that way: docs/BENCHMARKS.md, P4).
//
// How the stall is made decides whether the test can fail on its own.
// The Deployment keeps no old ReplicaSet (revisionHistoryLimit 0), so each
// converge makes its controller create one, and its deadline counts from
// that: rolling back onto a kept ReplicaSet leaves the last rollout's
// NewReplicaSetAvailable in place, which never times out when the first
// status the controller writes already counts the surge pod. And a
// quota, not a cordon, holds the pods: pods pending Unschedulable for 30 s
// are a failure of their own (podfailure.go), so a cordon raced the
// controller's report and the scheduler's noticing the uncordon.
func TestShortUserDeadline(t *testing.T) {
	e := newEnv(t, func(d *appsv1.Deployment) {
		d.Spec.Replicas = ptr(int32(2))
		d.Spec.ProgressDeadlineSeconds = ptr(int32(1))
		d.Spec.RevisionHistoryLimit = ptr(int32(0))
		d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
			RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: ptr(intstr.FromInt32(1)), MaxUnavailable: ptr(intstr.FromInt32(0))}}
	}, false)
	e.waitReady(target, 2)
	e.spec.Platform.Kubernetes.ProgressDeadline = spec.Duration(2 * time.Minute)
	snap := e.snapshot()

	// trail is what the stalls saw of the Deployment's progress, logged
	// at the end: when one fails, it says which part was late.
	var trailMu sync.Mutex
	var trail []string
	note := func(format string, args ...any) {
		trailMu.Lock()
		defer trailMu.Unlock()
		trail = append(trail, time.Now().Format("15:04:05.000 ")+fmt.Sprintf(format, args...))
	}
	t.Cleanup(func() {
		trailMu.Lock()
		defer trailMu.Unlock()
		t.Logf("what the stalls saw:\n%s", strings.Join(trail, "\n"))
	})
	quotas := cs.CoreV1().ResourceQuotas(e.ns)
	// oneReplicaSet waits until the controller has deleted every
	// ReplicaSet but the Deployment's current one.
	oneReplicaSet := func() {
		eventually(t, e.ctx, "the controller to keep no old ReplicaSet", func() (bool, error) {
			rss, err := cs.AppsV1().ReplicaSets(e.ns).List(e.ctx, metav1.ListOptions{})
			if err != nil {
				return false, err
			}
			return len(rss.Items) == 1, nil
		})
	}
	// stall puts a quota of the pods running now on the namespace, until
	// the controller has reported ProgressDeadlineExceeded for a
	// generation written after stall began; then it lifts the quota. seen
	// says whether that report came, within a minute.
	stall := func() (seen chan bool) {
		since := e.deployment(target).Generation
		quota := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "stall"},
			Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("2")}}}
		if _, err := quotas.Create(e.ctx, quota, metav1.CreateOptions{}); err != nil {
			t.Fatalf("quota: %v", err)
		}
		note("quota of 2 pods")
		seen = make(chan bool, 1)
		go func() {
			stalled, last := false, ""
			defer func() {
				if err := quotas.Delete(context.Background(), "stall", metav1.DeleteOptions{}); err != nil {
					note("lifting the quota: %v", err)
				}
				note("quota lifted")
				seen <- stalled
			}()
			for deadline := time.Now().Add(time.Minute); !stalled && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
				d, err := cs.AppsV1().Deployments(e.ns).Get(e.ctx, target, metav1.GetOptions{})
				if err != nil {
					continue
				}
				if now := progressOf(d); now != last {
					note("%s", now)
					last = now
				}
				for _, c := range d.Status.Conditions {
					stalled = stalled || c.Type == appsv1.DeploymentProgressing && c.Reason == "ProgressDeadlineExceeded" &&
						d.Generation > since && d.Status.ObservedGeneration == d.Generation
				}
			}
		}()
		return seen
	}
	seen := stall()
	res := e.converge(snap, plan.Desired{New: 2, Old: 0, Traffic: plan.TrafficNew, Order: plan.Surge})
	if !<-seen {
		t.Fatal("promoting: the controller never reported ProgressDeadlineExceeded, so the test exercised no stall")
	}
	if res.NewCount != 2 || res.OldCount != 0 {
		t.Errorf("promoted: new %d old %d, want 2 and 0", res.NewCount, res.OldCount)
	}
	if got := e.deployment(target).Spec.Template.Spec.Containers[0].Image; got != imageV2 {
		t.Errorf("promoted image %q, want %q", got, imageV2)
	}
	oneReplicaSet()
	seen = stall()
	res = e.converge(snap, plan.Desired{New: 0, Old: 2, Traffic: plan.TrafficOld, Order: plan.Surge})
	if !<-seen {
		t.Fatal("restoring: the controller never reported ProgressDeadlineExceeded, so the test exercised no stall")
	}
	if res.NewCount != 0 || res.OldCount != 2 {
		t.Errorf("restored: new %d old %d, want 0 and 2", res.NewCount, res.OldCount)
	}
	if got := *e.deployment(target).Spec.ProgressDeadlineSeconds; got != 1 {
		t.Errorf("the user's progressDeadlineSeconds is %d after the restore, want 1", got)
	}
}

// progressOf is d's generations, counts and Progressing condition, one line.
func progressOf(d *appsv1.Deployment) string {
	st := d.Status
	s := fmt.Sprintf("generation %d observed %d replicas %d updated %d ready %d available %d",
		d.Generation, st.ObservedGeneration, st.Replicas, st.UpdatedReplicas, st.ReadyReplicas, st.AvailableReplicas)
	for _, c := range st.Conditions {
		if c.Type == appsv1.DeploymentProgressing {
			s += fmt.Sprintf(" progressing %s %s (updated %s)", c.Status, c.Reason, c.LastUpdateTime.Format("15:04:05"))
		}
	}
	return s
}

// TestPlans runs every strategy's planned stages and final state, as the
// workflow would, and checks the end state is the original objects with the
// new image.
func TestPlans(t *testing.T) {
	for _, st := range []spec.Strategy{
		{Type: spec.Canary, Steps: []int{25, 50, 100}},
		{Type: spec.Rolling, BatchSize: 3},
		{Type: spec.BlueGreen},
		{Type: spec.Recreate},
	} {
		t.Run(st.Type, func(t *testing.T) {
			e := newEnv(t, nil, true)
			e.spec.Strategy = st
			snap := e.snapshot()
			p, err := plan.Build(e.spec, snap.Count(), snap.Count())
			if err != nil {
				t.Fatal(err)
			}
			for _, stage := range p.Stages {
				res := e.converge(snap, stage.Desired())
				if res.NewCount != stage.New || res.OldCount != stage.Old {
					t.Errorf("stage %s: new=%d old=%d, want %d %d", stage.Name, res.NewCount, res.OldCount, stage.New, stage.Old)
				}
			}
			counts(t, e.converge(snap, p.Final), 4, 0)
			e.assertGone(canaryName(target))
			e.assertGone(greenName(target))
			d := e.settledDeployment(target)
			if img := d.Spec.Template.Spec.Containers[0].Image; img != imageV2 || d.Status.ReadyReplicas != 4 {
				t.Errorf("stable: image %s ready %d", img, d.Status.ReadyReplicas)
			}
			if got := e.service().Spec.Selector; !equality.Semantic.DeepEqual(got, map[string]string{"app": "x"}) {
				t.Errorf("selector %v, want the original", got)
			}
			if got := e.servedImages(); !slices.Equal(got, repeat(4, imageV2)) {
				t.Errorf("service serves %v", got)
			}
		})
	}
}
