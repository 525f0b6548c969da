package docker

import (
	"context"
	"fmt"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
	"go.uber.org/zap"

	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// A service's hold is an empty Docker volume named after it and labelled
// with the hold: an object of the engine's own that no container uses, so
// removing, recreating or pruning the service's containers leaves it, and a
// new worker (or an operator with docker volume ls) finds it.
func holdVolume(service string) string { return "stagecraft-hold-" + service }

// Hold marks the service held by h. Marking it again keeps the first hold.
func (p *Platform) Hold(ctx context.Context, s spec.Spec, h platform.Hold) error {
	name := holdVolume(s.Service)
	labels := h.Metadata()
	labels[platform.LabelService] = s.Service
	labels[platform.LabelRole] = "hold"
	// Creating a volume that exists returns it unchanged: a retry keeps the
	// hold the first attempt wrote.
	if _, err := p.cli.VolumeCreate(ctx, client.VolumeCreateOptions{Name: name, Labels: labels}); err != nil {
		return fmt.Errorf("write hold volume %q: %w", name, err)
	}
	// Read back: a volume of that name that is not a hold (made by hand or
	// by another tool) would leave the target unmarked while the outcome
	// says it is held.
	if held, err := p.HeldBy(ctx, s); err != nil {
		return err
	} else if held == nil {
		return fmt.Errorf("hold volume %q: a volume of that name exists and is not a Stagecraft hold: %w", name, platform.ErrConfigConflict)
	}
	p.log.Warn("target held", zap.String("service", s.Service), zap.String("volume", name), zap.String("rollout", h.WorkflowID))
	return nil
}

// HeldBy returns the service's hold, or nil when it has none.
func (p *Platform) HeldBy(ctx context.Context, s spec.Spec) (*platform.Hold, error) {
	name := holdVolume(s.Service)
	res, err := p.cli.VolumeInspect(ctx, name, client.VolumeInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("inspect hold volume %q: %w", name, err)
	}
	if res.Volume.Labels[platform.LabelHold] == "" {
		return nil, nil // a volume of that name that is not a hold
	}
	h := platform.HoldFrom(res.Volume.Labels)
	return &h, nil
}

// ClearHold removes the service's hold and returns it; nil when it had none.
func (p *Platform) ClearHold(ctx context.Context, s spec.Spec) (*platform.Hold, error) {
	h, err := p.HeldBy(ctx, s)
	if err != nil || h == nil {
		return nil, err
	}
	name := holdVolume(s.Service)
	if _, err := p.cli.VolumeRemove(ctx, name, client.VolumeRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
		return nil, fmt.Errorf("remove hold volume %q: %w", name, err)
	}
	p.log.Info("hold cleared", zap.String("service", s.Service), zap.String("volume", name))
	return h, nil
}
