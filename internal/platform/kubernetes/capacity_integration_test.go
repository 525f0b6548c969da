//go:build integration

package kubernetes

import (
	"context"
	"maps"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/stagecraft/stagecraft/internal/platform"
)

// requesting sets the target container's requests and the replicas.
func requesting(replicas int32, kv ...string) func(*appsv1.Deployment) {
	return func(d *appsv1.Deployment) {
		d.Spec.Replicas = ptr(replicas)
		d.Spec.Template.Spec.Containers[0].Resources.Requests = res(kv...)
	}
}

func (e *env) capacity(extra int) platform.CapacityReport {
	e.t.Helper()
	rep, err := e.p.Capacity(e.ctx, e.spec, extra)
	if err != nil {
		e.t.Fatalf("Capacity(%d): %v", extra, err)
	}
	e.t.Logf("Capacity(%d): %+v", extra, rep)
	return rep
}

// addNode registers a node with the given allocatable resources, managed by
// KWOK (so it turns Ready) or not (so it never does), removed at the end.
func addNode(t *testing.T, name string, kwok bool, alloc corev1.ResourceList) {
	t.Helper()
	ctx := t.Context()
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"type": "kwok", "kubernetes.io/hostname": name}},
		Status:     corev1.NodeStatus{Capacity: alloc, Allocatable: alloc},
	}
	if kwok {
		n.Annotations = map[string]string{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"}
	}
	if _, err := cs.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create node %s: %v", name, err)
	}
	t.Cleanup(func() { _ = cs.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{}) })
	if !kwok {
		return
	}
	eventually(t, ctx, "node "+name+" Ready", func() (bool, error) {
		got, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		return err == nil && schedulable(*got), err
	})
}

// TestCapacityKubernetes checks reports against the KWOK node, which
// allocates 64 CPUs, 256Gi and 10000 pods.
func TestCapacityKubernetes(t *testing.T) {
	t.Run("fits", func(t *testing.T) {
		e := newEnv(t, requesting(4, "cpu", "2", "memory", "1Gi"), true)
		// The free pod count is the node's: wait until the pods earlier
		// tests left in namespaces being deleted are gone.
		eventually(t, e.ctx, "only this test's pods on the nodes", func() (bool, error) {
			pods, err := cs.CoreV1().Pods("").List(e.ctx, metav1.ListOptions{})
			if err != nil {
				return false, err
			}
			for _, p := range pods.Items {
				if p.Namespace != e.ns && p.Spec.NodeName != "" {
					return false, nil
				}
			}
			return true, nil
		})
		rep := e.capacity(4)
		want := platform.CapacityReport{Instances: 4, Fits: true,
			PerInstance: map[string]string{"cpu": "2", "memory": "1Gi"},
			Need:        map[string]string{"cpu": "8", "memory": "4Gi", "pods": "4"},
			Free:        map[string]string{"cpu": "56", "memory": "252Gi", "pods": "9996"}}
		if !equalReport(rep, want) {
			t.Errorf("report %+v, want %+v", rep, want)
		}
		rep = e.capacity(40)
		if rep.Fits || !strings.Contains(rep.Detail, "cpu 80 needed, 56 free") {
			t.Errorf("40 more pods of 2 CPUs: fits %v, detail %q; want a cpu shortfall", rep.Fits, rep.Detail)
		}
	})
	t.Run("pods larger than the nodes", func(t *testing.T) {
		e := newEnv(t, requesting(1, "cpu", "100", "memory", "1Gi"), false)
		rep := e.capacity(1)
		if rep.Fits || !strings.Contains(rep.Detail, "cpu 100 needed") {
			t.Errorf("a pod of 100 CPUs: fits %v, detail %q; want a cpu shortfall", rep.Fits, rep.Detail)
		}
		// Its own pod stays Pending, bound to no node: it takes nothing.
		if free := resource.MustParse(rep.Free["cpu"]); free.Value() < 56 {
			t.Errorf("free cpu %s: an unbound pod was counted", rep.Free["cpu"])
		}
	})
	t.Run("no node holds one pod", func(t *testing.T) {
		addNode(t, "capacity-small", true, res("cpu", "32", "memory", "64Gi", "pods", "110"))
		addNode(t, "capacity-not-ready", false, res("cpu", "1000", "memory", "1Ti", "pods", "110"))
		e := newEnv(t, requesting(0, "cpu", "70"), false)
		rep := e.capacity(1)
		if rep.Fits || !strings.Contains(rep.Detail, "no node has room for one pod (cpu 70)") ||
			!strings.Contains(rep.Detail, "capacity-small has cpu 32") || strings.Contains(rep.Detail, "capacity-not-ready") {
			t.Errorf("a pod of 70 CPUs on nodes of 64 and 32: fits %v, detail %q; want no room on any node", rep.Fits, rep.Detail)
		}
		// The total (64 + 32, less what earlier pods still hold) would hold
		// it; the node that never turned Ready is not counted.
		if free := resource.MustParse(rep.Free["cpu"]); free.Value() < 70 || free.Value() > 96 {
			t.Errorf("free cpu %s, want between 70 and 96", rep.Free["cpu"])
		}
	})
}

func equalReport(a, b platform.CapacityReport) bool {
	return a.Instances == b.Instances && a.Fits == b.Fits &&
		maps.Equal(a.PerInstance, b.PerInstance) && maps.Equal(a.Need, b.Need) && maps.Equal(a.Free, b.Free)
}
