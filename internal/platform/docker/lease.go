package docker

import (
	"context"
	"time"

	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// CheckLease refuses, with a *platform.FencedError, a rollout whose owner
// may not converge the service now: another owner's lease holds it (or a
// later attempt of its own has claimed it). Preparation asks it, so a
// rollout another namespace's lease refuses is rejected before any change
// (and never rolls back into the same refusal, nor holds the target).
func (p *Platform) CheckLease(ctx context.Context, s spec.Spec, mine platform.Fence) error {
	if mine.Zero() {
		return nil
	}
	ms, err := p.fences(ctx, s.Service)
	if err != nil {
		return err
	}
	f := &fencer{p: p, log: p.log, service: s.Service, target: s.TargetKey(), mine: mine}
	return f.admitted(ms, time.Now())
}
