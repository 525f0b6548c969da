package docker

import (
	"context"

	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// CheckLease refuses, with a *platform.FencedError, a rollout whose owner
// may not converge the service now: another owner's lease holds it (or a
// later attempt of its own has claimed it); otherwise it claims the lease
// for the preparing attempt (its marker), so another owner preparing next
// is refused too. Preparation asks it, so a rollout another namespace's
// lease refuses is rejected before any change (and never rolls back into
// the same refusal, nor holds the target). Two owners preparing within the
// same instant can still both pass (Docker has no compare-and-swap); the
// fences of their converges still keep them from writing at once.
func (p *Platform) CheckLease(ctx context.Context, s spec.Spec, mine platform.Fence) error {
	f := &fencer{p: p, log: p.log, service: s.Service, target: s.TargetKey(), mine: mine}
	return f.claim(ctx)
}
