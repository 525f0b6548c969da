//go:build integration

package docker

import (
	"errors"
	"testing"
	"time"

	"github.com/stagecraft/stagecraft/internal/plan"
	"github.com/stagecraft/stagecraft/internal/platform"
)

// TestLeaseCheckedAtPreparation: what preparation asks (CheckLease) says
// whether a rollout may converge the service at all: the holder's next
// run may, another owner may not while the lease holds, so such a
// rollout is rejected before any change instead of failing its first
// stage and then its rollback.
func TestLeaseCheckedAtPreparation(t *testing.T) {
	e := newEnv(t)
	e.removeFencesAtEnd()
	v1 := e.spec(imageV1)
	owner, other := "default/"+v1.WorkflowID(), "elsewhere/"+v1.WorkflowID()
	if err := e.p.CheckLease(e.ctx, v1, platform.Fence{Owner: other, Step: 1, Until: time.Now().Add(time.Minute)}); err != nil {
		t.Fatalf("a service nobody holds: %v", err)
	}
	holder := platform.Fence{Owner: owner, Step: 10, Until: time.Now().Add(time.Minute)}
	if _, err := e.fencedConverge(v1, "r1", platform.Snapshot{}, plan.Desired{New: 1, Traffic: plan.TrafficNew}, holder); err != nil {
		t.Fatalf("holder: %v", err)
	}
	if err := e.p.CheckLease(e.ctx, v1, platform.Fence{Owner: owner, Step: 20, Until: time.Now().Add(time.Minute)}); err != nil {
		t.Fatalf("the holder's next run: %v", err)
	}
	err := e.p.CheckLease(e.ctx, v1, platform.Fence{Owner: other, Step: 30, Until: time.Now().Add(time.Minute)})
	var fe *platform.FencedError
	if !errors.As(err, &fe) || fe.Held.Owner != owner {
		t.Fatalf("another owner during the lease: %v; want refused, held by %s", err, owner)
	}
	if err := e.p.CheckLease(e.ctx, v1, platform.Fence{}); err != nil {
		t.Fatalf("no fence: %v", err)
	}
}
