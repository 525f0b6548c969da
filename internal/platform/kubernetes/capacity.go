package kubernetes

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// counted are the resources a capacity check compares, besides pod slots.
var counted = []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory}

// Capacity reports whether extraPods more pods of the target Deployment's
// template fit in what the cluster's nodes have left, as the scheduler
// counts: the pods' resource requests against the Ready, schedulable nodes'
// allocatable resources minus the requests of the pods bound to them. They
// fit when the total fits and one pod fits on at least one node. Taints,
// node selectors and affinity are not considered, so a fit is necessary,
// not sufficient. Reading nodes and every namespace's pods needs
// cluster-wide list permissions; without them the error wraps
// platform.ErrForbidden.
func (p *Platform) Capacity(ctx context.Context, s spec.Spec, extraPods int) (platform.CapacityReport, error) {
	rep, err := p.capacity(ctx, s, extraPods)
	return rep, forbidden(err)
}

func (p *Platform) capacity(ctx context.Context, s spec.Spec, extraPods int) (platform.CapacityReport, error) {
	k := s.Platform.Kubernetes
	if k == nil {
		return platform.CapacityReport{}, fmt.Errorf("capacity for %q: spec has no kubernetes platform", s.Service)
	}
	cs, err := p.client(k)
	if err != nil {
		return platform.CapacityReport{}, err
	}
	ns := namespace(k)
	d, err := cs.AppsV1().Deployments(ns).Get(ctx, k.Deployment, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return platform.CapacityReport{}, &TargetNotFoundError{Kind: "deployment", Namespace: ns, Name: k.Deployment}
	}
	if err != nil {
		return platform.CapacityReport{}, fmt.Errorf("get deployment %q: %w", ns+"/"+k.Deployment, err)
	}
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return platform.CapacityReport{}, fmt.Errorf("list nodes: %w", err)
	}
	pods, err := cs.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{
		FieldSelector: "status.phase!=" + string(corev1.PodSucceeded) + ",status.phase!=" + string(corev1.PodFailed),
	})
	if err != nil {
		return platform.CapacityReport{}, fmt.Errorf("list pods: %w", err)
	}
	return fit(podRequests(&d.Spec.Template.Spec), extraPods, nodes.Items, pods.Items), nil
}

// nodeRoom is what one node has left.
type nodeRoom struct {
	name string
	free corev1.ResourceList // counted resources and pods
}

// fit compares extra pods of per's requests with what the Ready,
// schedulable nodes have left once the non-terminated pods bound to them
// are counted.
func fit(per corev1.ResourceList, extra int, nodes []corev1.Node, pods []corev1.Pod) platform.CapacityReport {
	rep := platform.CapacityReport{Instances: extra, PerInstance: map[string]string{}, Need: map[string]string{}, Free: map[string]string{}}
	one := per.DeepCopy()
	one[corev1.ResourcePods] = *resource.NewQuantity(1, resource.DecimalSI)

	var rooms []nodeRoom
	byName := map[string]int{}
	for _, n := range nodes {
		if !schedulable(n) {
			continue
		}
		free := corev1.ResourceList{}
		for _, r := range append(slices.Clone(counted), corev1.ResourcePods) {
			if q, ok := n.Status.Allocatable[r]; ok {
				free[r] = q.DeepCopy()
			}
		}
		byName[n.Name] = len(rooms)
		rooms = append(rooms, nodeRoom{name: n.Name, free: free})
	}
	for _, pod := range pods {
		i, ok := byName[pod.Spec.NodeName]
		if !ok || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			continue
		}
		used := podRequests(&pod.Spec)
		used[corev1.ResourcePods] = *resource.NewQuantity(1, resource.DecimalSI)
		for r, q := range used {
			if f, ok := rooms[i].free[r]; ok {
				f.Sub(q)
				rooms[i].free[r] = f
			}
		}
	}

	total := corev1.ResourceList{}
	for _, room := range rooms {
		for r, q := range room.free {
			if q.Sign() < 0 { // over-committed: nothing left, not less
				q = resource.Quantity{Format: q.Format}
				room.free[r] = q
			}
			t := total[r]
			t.Add(q)
			total[r] = t
		}
	}
	var short []string
	for _, r := range append(slices.Clone(counted), corev1.ResourcePods) {
		q, declared := one[r]
		if !declared || q.IsZero() {
			continue
		}
		need := q.DeepCopy()
		need.Mul(int64(extra))
		free := total[r]
		rep.PerInstance[string(r)] = q.String()
		rep.Need[string(r)] = need.String()
		rep.Free[string(r)] = free.String()
		if need.Cmp(free) > 0 {
			short = append(short, fmt.Sprintf("%s %s needed, %s free", r, need.String(), free.String()))
		}
	}
	delete(rep.PerInstance, string(corev1.ResourcePods))

	switch {
	case extra <= 0:
		rep.Fits = true
		rep.Detail = "no pods beyond the current ones"
	case len(rooms) == 0:
		rep.Detail = "no Ready, schedulable node"
	case len(short) > 0:
		rep.Detail = strings.Join(short, "; ") + fmt.Sprintf(" on %d Ready, schedulable node(s)", len(rooms))
	default:
		if fitsOne(one, rooms) {
			rep.Fits = true
			return rep
		}
		rep.Detail = fmt.Sprintf("no node has room for one pod (%s): %s", describe(per), describeRooms(rooms))
	}
	return rep
}

// fitsOne reports whether one pod's requests fit on at least one node.
func fitsOne(one corev1.ResourceList, rooms []nodeRoom) bool {
	for _, room := range rooms {
		ok := true
		for r, q := range one {
			if f, has := room.free[r]; has && q.Cmp(f) > 0 {
				ok = false
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// schedulable reports whether new pods may land on n: Ready and not cordoned.
func schedulable(n corev1.Node) bool {
	if n.Spec.Unschedulable {
		return false
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// podRequests is what the scheduler reserves for a pod of ps, for the
// counted resources: the app containers' and the sidecars' requests, or
// more while a larger init container runs, plus the pod's overhead. A
// container with a limit and no request requests its limit, as the API
// server defaults it.
func podRequests(ps *corev1.PodSpec) corev1.ResourceList {
	sum := corev1.ResourceList{}
	for _, c := range ps.Containers {
		addTo(sum, containerRequests(c))
	}
	// Init containers run one at a time, each beside the sidecars
	// (restartPolicy Always) started before it; sidecars keep running.
	sidecars, initPeak := corev1.ResourceList{}, corev1.ResourceList{}
	for _, c := range ps.InitContainers {
		req := containerRequests(c)
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			addTo(sidecars, req)
			maxTo(initPeak, sidecars)
			continue
		}
		step := sidecars.DeepCopy()
		addTo(step, req)
		maxTo(initPeak, step)
	}
	addTo(sum, sidecars)
	maxTo(sum, initPeak)
	for _, r := range counted {
		if q, ok := ps.Overhead[r]; ok {
			addTo(sum, corev1.ResourceList{r: q})
		}
	}
	return sum
}

func containerRequests(c corev1.Container) corev1.ResourceList {
	out := corev1.ResourceList{}
	for _, r := range counted {
		if q, ok := c.Resources.Requests[r]; ok {
			out[r] = q.DeepCopy()
		} else if q, ok := c.Resources.Limits[r]; ok {
			out[r] = q.DeepCopy()
		}
	}
	return out
}

func addTo(dst, src corev1.ResourceList) {
	for r, q := range src {
		t := dst[r]
		t.Add(q)
		dst[r] = t
	}
}

func maxTo(dst, src corev1.ResourceList) {
	for r, q := range src {
		if t, ok := dst[r]; !ok || q.Cmp(t) > 0 {
			dst[r] = q.DeepCopy()
		}
	}
}

// describe writes a resource list as "cpu 2, memory 1Gi, pods 110", in a
// fixed order.
func describe(l corev1.ResourceList) string {
	var parts []string
	for _, r := range append(slices.Clone(counted), corev1.ResourcePods) {
		if q, ok := l[r]; ok {
			parts = append(parts, fmt.Sprintf("%s %s", r, q.String()))
		}
	}
	if len(parts) == 0 {
		return "no requests"
	}
	return strings.Join(parts, ", ")
}

// describeRooms lists what the nodes have left, the first few by name.
func describeRooms(rooms []nodeRoom) string {
	const shown = 5
	var parts []string
	for i, room := range rooms {
		if i == shown {
			parts = append(parts, fmt.Sprintf("and %d more", len(rooms)-shown))
			break
		}
		parts = append(parts, fmt.Sprintf("%s has %s", room.name, describe(room.free)))
	}
	return strings.Join(parts, "; ")
}
