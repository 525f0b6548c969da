//go:build integration

package kubernetes

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/stagecraft/stagecraft/internal/plan"
)

// TestRestoreReportsTerminatingPodsApart: a rollback restores the snapshot
// while a canary pod is still terminating (held here by a finalizer, as a
// long grace period or preStop hook holds a real one). The restore neither
// waits it out nor cuts it short: it returns restored, with that pod named
// in Terminating, and the pod is left to finish.
func TestRestoreReportsTerminatingPodsApart(t *testing.T) {
	e := newEnv(t, nil, true)
	snap := e.snapshot()
	e.converge(snap, plan.Desired{New: 2, Old: 2, Traffic: plan.TrafficShared, Order: plan.Surge})
	pods, err := cs.CoreV1().Pods(e.ns).List(e.ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var held string
	for _, p := range pods.Items {
		if p.Spec.Containers[0].Image == imageV2 {
			held = p.Name
			break
		}
	}
	if held == "" {
		t.Fatal("no canary pod")
	}
	const finalizer = "stagecraft.test/hold"
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"finalizers": []string{finalizer}}})
	if _, err := cs.CoreV1().Pods(e.ns).Patch(e.ctx, held, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	release := func() {
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"finalizers": nil}})
		_, _ = cs.CoreV1().Pods(e.ns).Patch(e.ctx, held, types.MergePatchType, patch, metav1.PatchOptions{})
	}
	t.Cleanup(release)

	res := e.converge(snap, plan.Desired{New: 0, Old: 4, Traffic: plan.TrafficOld, Order: plan.Surge})
	counts(t, res, 0, 4)
	// The held pod is named; so may be the other canary pod, if the
	// restore looked while it too was terminating (KWOK removes it within
	// milliseconds): every name is a canary pod's.
	if !slices.Contains(res.Terminating, "pod/"+held) {
		t.Errorf("terminating %v, want pod/%s among them", res.Terminating, held)
	}
	for _, name := range res.Terminating {
		if !strings.HasPrefix(name, "pod/"+canaryName(target)+"-") {
			t.Errorf("terminating %v: %s is not a canary pod", res.Terminating, name)
		}
	}
	p, err := cs.CoreV1().Pods(e.ns).Get(e.ctx, held, metav1.GetOptions{})
	if err != nil || p.DeletionTimestamp == nil {
		t.Fatalf("held pod: %v (deletion %v), want it still there, terminating", err, p.DeletionTimestamp)
	}
	if got := e.servedImages(); !slices.Equal(got, repeat(4, imageV1)) {
		t.Errorf("service serves %v", got)
	}
	release()
	eventually(t, e.ctx, "the held pod gone", func() (bool, error) {
		_, err := cs.CoreV1().Pods(e.ns).Get(e.ctx, held, metav1.GetOptions{})
		return err != nil, nil
	})
	if again := e.converge(snap, plan.Desired{New: 0, Old: 4, Traffic: plan.TrafficOld, Order: plan.Surge}); len(again.Terminating) > 0 {
		t.Errorf("terminating after the pod went: %v", again.Terminating)
	}
}
