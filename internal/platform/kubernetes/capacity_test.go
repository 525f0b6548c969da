package kubernetes

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// res builds a resource list from name/quantity pairs.
func res(kv ...string) corev1.ResourceList {
	l := corev1.ResourceList{}
	for i := 0; i < len(kv); i += 2 {
		l[corev1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return l
}

func ctr(req, lim corev1.ResourceList) corev1.Container {
	return corev1.Container{Resources: corev1.ResourceRequirements{Requests: req, Limits: lim}}
}

func TestPodRequests(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	sidecar := func(c corev1.Container) corev1.Container { c.RestartPolicy = &always; return c }
	tests := []struct {
		name string
		spec corev1.PodSpec
		want corev1.ResourceList
	}{
		{"none", corev1.PodSpec{Containers: []corev1.Container{{}}}, res()},
		{"containers add up", corev1.PodSpec{Containers: []corev1.Container{
			ctr(res("cpu", "250m", "memory", "64Mi"), nil), ctr(res("cpu", "1"), nil)}},
			res("cpu", "1250m", "memory", "64Mi")},
		{"limit without request", corev1.PodSpec{Containers: []corev1.Container{
			ctr(res("cpu", "100m"), res("cpu", "2", "memory", "1Gi"))}},
			res("cpu", "100m", "memory", "1Gi")},
		{"larger init container", corev1.PodSpec{
			InitContainers: []corev1.Container{ctr(res("cpu", "3"), nil)},
			Containers:     []corev1.Container{ctr(res("cpu", "1", "memory", "1Gi"), nil)}},
			res("cpu", "3", "memory", "1Gi")},
		{"sidecar runs beside", corev1.PodSpec{
			InitContainers: []corev1.Container{sidecar(ctr(res("cpu", "500m"), nil)), ctr(res("cpu", "1"), nil)},
			Containers:     []corev1.Container{ctr(res("cpu", "1"), nil)}},
			res("cpu", "1500m")},
		{"overhead", corev1.PodSpec{Overhead: res("cpu", "100m", "memory", "20Mi"),
			Containers: []corev1.Container{ctr(res("cpu", "1", "memory", "100Mi"), nil)}},
			res("cpu", "1100m", "memory", "120Mi")},
		{"ephemeral storage not counted", corev1.PodSpec{Containers: []corev1.Container{
			ctr(res("cpu", "1", "ephemeral-storage", "1Gi"), nil)}},
			res("cpu", "1")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := podRequests(&tt.spec)
			if len(got) != len(tt.want) {
				t.Fatalf("podRequests = %v, want %v", got, tt.want)
			}
			for r, q := range tt.want {
				if g := got[r]; g.Cmp(q) != 0 {
					t.Errorf("%s = %s, want %s", r, g.String(), q.String())
				}
			}
		})
	}
}

func TestFit(t *testing.T) {
	node := func(name string, alloc corev1.ResourceList, edit func(*corev1.Node)) corev1.Node {
		n := corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NodeStatus{
			Allocatable: alloc,
			Conditions:  []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
		}}
		if edit != nil {
			edit(&n)
		}
		return n
	}
	notReady := func(n *corev1.Node) { n.Status.Conditions[0].Status = corev1.ConditionFalse }
	cordoned := func(n *corev1.Node) { n.Spec.Unschedulable = true }
	pod := func(nodeName string, req corev1.ResourceList, phase corev1.PodPhase) corev1.Pod {
		return corev1.Pod{Spec: corev1.PodSpec{NodeName: nodeName, Containers: []corev1.Container{ctr(req, nil)}},
			Status: corev1.PodStatus{Phase: phase}}
	}
	small := res("cpu", "4", "memory", "8Gi", "pods", "110")
	per := res("cpu", "1", "memory", "1Gi")
	tests := []struct {
		name   string
		per    corev1.ResourceList
		extra  int
		nodes  []corev1.Node
		pods   []corev1.Pod
		fits   bool
		free   map[string]string
		need   map[string]string
		detail string
	}{
		{name: "fits", per: per, extra: 3,
			nodes: []corev1.Node{node("a", small, nil)},
			pods:  []corev1.Pod{pod("a", res("cpu", "1", "memory", "512Mi"), corev1.PodRunning)},
			fits:  true,
			need:  map[string]string{"cpu": "3", "memory": "3Gi", "pods": "3"},
			free:  map[string]string{"cpu": "3", "memory": "7680Mi", "pods": "109"}},
		{name: "one cpu short", per: per, extra: 4,
			nodes:  []corev1.Node{node("a", small, nil)},
			pods:   []corev1.Pod{pod("a", res("cpu", "1"), corev1.PodRunning)},
			need:   map[string]string{"cpu": "4", "memory": "4Gi", "pods": "4"},
			free:   map[string]string{"cpu": "3", "memory": "8Gi", "pods": "109"},
			detail: "cpu 4 needed, 3 free on 1 Ready, schedulable node(s)"},
		{name: "terminated and unbound pods free nothing", per: per, extra: 4,
			nodes: []corev1.Node{node("a", small, nil)},
			pods: []corev1.Pod{pod("a", res("cpu", "4"), corev1.PodSucceeded), pod("a", res("cpu", "4"), corev1.PodFailed),
				pod("", res("cpu", "4"), corev1.PodPending), pod("elsewhere", res("cpu", "4"), corev1.PodRunning)},
			fits: true},
		{name: "not ready and cordoned nodes do not count", per: per, extra: 5,
			nodes:  []corev1.Node{node("a", small, nil), node("b", small, notReady), node("c", small, cordoned)},
			free:   map[string]string{"cpu": "4", "memory": "8Gi", "pods": "110"},
			detail: "cpu 5 needed, 4 free on 1 Ready"},
		{name: "total fits but no node holds one pod", per: res("cpu", "3"), extra: 1,
			nodes:  []corev1.Node{node("a", small, nil), node("b", small, nil)},
			pods:   []corev1.Pod{pod("a", res("cpu", "2"), corev1.PodRunning), pod("b", res("cpu", "2"), corev1.PodRunning)},
			free:   map[string]string{"cpu": "4", "pods": "218"},
			detail: "no node has room for one pod (cpu 3): a has cpu 2, memory 8Gi, pods 109; b has cpu 2"},
		{name: "over-committed node counts as full", per: res("cpu", "1"), extra: 1,
			nodes: []corev1.Node{node("a", small, nil)},
			pods:  []corev1.Pod{pod("a", res("cpu", "6"), corev1.PodRunning)},
			free:  map[string]string{"cpu": "0"}},
		{name: "pod slots count without requests", per: res(), extra: 2,
			nodes:  []corev1.Node{node("a", res("cpu", "4", "pods", "2"), nil)},
			pods:   []corev1.Pod{pod("a", nil, corev1.PodRunning)},
			need:   map[string]string{"pods": "2"},
			free:   map[string]string{"pods": "1"},
			detail: "pods 2 needed, 1 free"},
		{name: "no nodes", per: per, extra: 1, detail: "no Ready, schedulable node"},
		{name: "nothing extra", per: per, extra: 0, fits: true, detail: "no pods beyond"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := fit(tt.per, tt.extra, tt.nodes, tt.pods)
			t.Logf("%+v", rep)
			if rep.Fits != tt.fits {
				t.Errorf("fits = %v, want %v", rep.Fits, tt.fits)
			}
			for r, q := range tt.need {
				if rep.Need[r] != q {
					t.Errorf("need %s = %q, want %q", r, rep.Need[r], q)
				}
			}
			for r, q := range tt.free {
				if rep.Free[r] != q {
					t.Errorf("free %s = %q, want %q", r, rep.Free[r], q)
				}
			}
			if !strings.Contains(rep.Detail, tt.detail) {
				t.Errorf("detail %q, want %q", rep.Detail, tt.detail)
			}
			if _, ok := rep.PerInstance["pods"]; ok {
				t.Errorf("per instance lists pods: %v", rep.PerInstance)
			}
		})
	}
}
