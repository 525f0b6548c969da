//go:build integration

package kubernetes

import (
	"errors"
	"testing"
	"time"

	"github.com/stagecraft/stagecraft/internal/platform"
)

// TestLeaseCheckedAtPreparation: what preparation asks (CheckLease) says
// whether a rollout may converge the Deployment at all: the holder's next
// run may, another owner may not while the lease holds, so such a rollout
// is rejected before any change instead of failing its first stage and
// then its rollback.
func TestLeaseCheckedAtPreparation(t *testing.T) {
	e := newEnv(t, nil, true)
	other := "elsewhere/deploy:kubernetes:web"
	if err := e.p.CheckLease(e.ctx, e.spec, fence(other, 1)); err != nil {
		t.Fatalf("a Deployment nobody holds: %v", err)
	}
	snap := e.snapshot()
	e.mustConverge(snap, canaryStage, fence(owner, 10))
	if err := e.p.CheckLease(e.ctx, e.spec, fence(owner, 20)); err != nil {
		t.Fatalf("the holder's next run: %v", err)
	}
	err := e.p.CheckLease(e.ctx, e.spec, platform.Fence{Owner: other, Step: 30, Until: time.Now().Add(time.Minute)})
	var fe *platform.FencedError
	if !errors.As(err, &fe) || fe.Held.Owner != owner {
		t.Fatalf("another owner during the lease: %v; want refused, held by %s", err, owner)
	}
	if err := e.p.CheckLease(e.ctx, e.spec, platform.Fence{}); err != nil {
		t.Fatalf("no fence: %v", err)
	}
}
