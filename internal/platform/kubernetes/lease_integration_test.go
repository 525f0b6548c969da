//go:build integration

package kubernetes

import (
	"errors"
	"testing"
	"time"

	"github.com/stagecraft/stagecraft/internal/platform"
)

// TestLeaseClaimedAtPreparation: preparation (CheckLease) claims the
// Deployment's lease for its rollout (its fence on the Deployment, written
// on the version it judged), so another owner preparing next is refused
// before either has converged anything, while the holder's own converges
// and its next run go on.
func TestLeaseClaimedAtPreparation(t *testing.T) {
	e := newEnv(t, nil, true)
	other := "elsewhere/deploy:kubernetes:web"
	lease := func(o string, step int64) platform.Fence {
		return platform.Fence{Owner: o, Step: step, Until: time.Now().Add(time.Minute)}
	}
	if err := e.p.CheckLease(e.ctx, e.spec, lease(owner, 10)); err != nil {
		t.Fatalf("a Deployment nobody holds: %v", err)
	}
	if f, _ := fenceOf(e.deployment(target).Annotations); f.Owner != owner || f.Step != 10 {
		t.Fatalf("fence after the claim %+v, want %s's step 10", f, owner)
	}
	err := e.p.CheckLease(e.ctx, e.spec, lease(other, 20))
	var fe *platform.FencedError
	if !errors.As(err, &fe) || fe.Held.Owner != owner {
		t.Fatalf("another owner preparing after the claim: %v; want refused, held by %s", err, owner)
	}
	snap := e.snapshot()
	e.mustConverge(snap, canaryStage, lease(owner, 30))
	if err := e.p.CheckLease(e.ctx, e.spec, lease(owner, 40)); err != nil {
		t.Fatalf("the holder's next run: %v", err)
	}
	if err := e.p.CheckLease(e.ctx, e.spec, platform.Fence{}); err != nil {
		t.Fatalf("no fence: %v", err)
	}
}
