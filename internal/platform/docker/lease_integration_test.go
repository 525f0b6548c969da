//go:build integration

package docker

import (
	"errors"
	"testing"
	"time"

	"github.com/stagecraft/stagecraft/internal/plan"
	"github.com/stagecraft/stagecraft/internal/platform"
)

// TestLeaseClaimedAtPreparation: preparation (CheckLease) claims the
// service's lease for its rollout, so another owner preparing next is
// refused before either has converged anything, while the holder's own
// converges and its next run go on.
func TestLeaseClaimedAtPreparation(t *testing.T) {
	e := newEnv(t)
	e.removeFencesAtEnd()
	v1 := e.spec(imageV1)
	owner, other := "default/"+v1.WorkflowID(), "elsewhere/"+v1.WorkflowID()
	lease := func(o string, step int64) platform.Fence {
		return platform.Fence{Owner: o, Step: step, Until: time.Now().Add(time.Minute)}
	}
	if err := e.p.CheckLease(e.ctx, v1, lease(owner, 10)); err != nil {
		t.Fatalf("a service nobody holds: %v", err)
	}
	err := e.p.CheckLease(e.ctx, v1, lease(other, 20))
	var fe *platform.FencedError
	if !errors.As(err, &fe) || fe.Held.Owner != owner {
		t.Fatalf("another owner preparing after the claim: %v; want refused, held by %s", err, owner)
	}
	if _, err := e.fencedConverge(v1, "r1", platform.Snapshot{}, plan.Desired{New: 1, Traffic: plan.TrafficNew}, lease(owner, 30)); err != nil {
		t.Fatalf("the holder's converge: %v", err)
	}
	if err := e.p.CheckLease(e.ctx, v1, lease(owner, 40)); err != nil {
		t.Fatalf("the holder's next run: %v", err)
	}
	if err := e.p.CheckLease(e.ctx, v1, platform.Fence{}); err != nil {
		t.Fatalf("no fence: %v", err)
	}
}
