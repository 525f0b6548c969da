//go:build integration

package kubernetes

import (
	"reflect"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/stagecraft/stagecraft/internal/plan"
)

// setImageIDs writes imageID into the status of the target container of
// the stable Deployment's pods that report none (all of them, first), as a
// kubelet would. KWOK's fake nodes report no image IDs, so the test plays
// the kubelet; the reads under test go through the real API server.
func (e *env) setImageIDs(imageID string) {
	e.t.Helper()
	pods, err := ownedPods(e.ctx, cs, e.deployment(target))
	if err != nil {
		e.t.Fatal(err)
	}
	for _, pod := range pods {
		changed := false
		for i, c := range pod.Status.ContainerStatuses {
			if c.Name == "app" && c.ImageID == "" {
				pod.Status.ContainerStatuses[i].ImageID = imageID
				changed = true
			}
		}
		if !changed {
			continue
		}
		if _, err := cs.CoreV1().Pods(e.ns).UpdateStatus(e.ctx, &pod, metav1.UpdateOptions{}); err != nil {
			e.t.Fatalf("set image ID of pod %s: %v", pod.Name, err)
		}
	}
}

// TestRollbackReportsImageDrift records the image IDs the pods ran in the
// snapshot, rolls a canary back, and then has the pods the restore brought
// up report other bytes under the same tag (a moved tag): the restoring
// converge says so in its result's Drift, naming both digests.
func TestRollbackReportsImageDrift(t *testing.T) {
	e := newEnv(t, nil, true)
	const ran = "docker.io/library/demo@sha256:1111111111111111111111111111111111111111111111111111111111111111"
	const moved = "docker.io/library/demo@sha256:9999999999999999999999999999999999999999999999999999999999999999"
	e.setImageIDs(ran)
	snap := e.snapshot()
	if want := []string{ran}; !reflect.DeepEqual(snap.Kubernetes.ImageIDs, want) {
		t.Fatalf("snapshot image IDs = %q, want %q", snap.Kubernetes.ImageIDs, want)
	}

	e.converge(snap, plan.Desired{New: 2, Old: 2, Traffic: plan.TrafficShared, Order: plan.Surge})
	back := plan.Desired{New: 0, Old: snap.Count(), Traffic: plan.TrafficOld, Order: plan.Surge}
	if res := e.converge(snap, back); len(res.Drift) != 0 {
		t.Errorf("restore whose pods report the snapshot's bytes or none says drift: %q", res.Drift)
	}
	e.assertRestored(snap, true)

	// The pods the restore started pulled the tag, which now names other bytes.
	e.setImageIDs(moved)
	res := e.converge(snap, back)
	if len(res.Drift) != 1 || !strings.Contains(res.Drift[0], "sha256:9999") || !strings.Contains(res.Drift[0], "sha256:1111") ||
		!strings.Contains(res.Drift[0], imageV1) {
		t.Errorf("restore drift = %q, want one sentence naming %s, the bytes it ran and the bytes it runs", res.Drift, imageV1)
	}
}
