package docker

import (
	"context"
	"fmt"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
	"go.uber.org/zap"

	"github.com/stagecraft/stagecraft/internal/platform"
)

// FindImage says where image is without pulling it (CheckImage pulls an
// absent image): on the engine (local), or only in its registry, which is
// asked for the image's manifest and nothing more; a
// *platform.ImageNotFoundError when neither has it. A plan looks; a
// rollout pulls.
func (p *Platform) FindImage(ctx context.Context, image string) (local bool, err error) {
	if image == "" {
		return false, &platform.ImageNotFoundError{Image: image}
	}
	_, err = p.cli.ImageInspect(ctx, image)
	switch {
	case err == nil:
		return true, nil
	case !cerrdefs.IsNotFound(err):
		return false, fmt.Errorf("inspect image %q: %w", image, err)
	}
	if _, err := p.cli.DistributionInspect(ctx, image, client.DistributionInspectOptions{}); err != nil {
		if ctx.Err() != nil {
			return false, fmt.Errorf("look for image %q in its registry: %w", image, ctx.Err())
		}
		p.log.Info("image absent and not in its registry", zap.String("image", image), zap.Error(err))
		return false, &platform.ImageNotFoundError{Image: image}
	}
	return false, nil
}
