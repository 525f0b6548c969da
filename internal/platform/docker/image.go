package docker

import (
	"context"
	"fmt"

	cerrdefs "github.com/containerd/errdefs"
)

// HasImage says whether image is on the engine now. It asks no registry
// (CheckImage pulls an absent image): a plan looks, a rollout pulls.
func (p *Platform) HasImage(ctx context.Context, image string) (bool, error) {
	if image == "" {
		return false, nil
	}
	_, err := p.cli.ImageInspect(ctx, image)
	switch {
	case err == nil:
		return true, nil
	case cerrdefs.IsNotFound(err):
		return false, nil
	}
	return false, fmt.Errorf("inspect image %q: %w", image, err)
}
