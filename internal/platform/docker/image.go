package docker

import (
	"context"
	"fmt"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
	"go.uber.org/zap"

	"github.com/stagecraft/stagecraft/internal/platform"
)

// registryLookWait bounds FindImage's question to a registry.
const registryLookWait = 10 * time.Second

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
	// A registry that does not answer must not hold the plan up.
	rctx, cancel := context.WithTimeout(ctx, registryLookWait)
	defer cancel()
	if _, err := p.cli.DistributionInspect(rctx, image, client.DistributionInspectOptions{}); err != nil {
		if rctx.Err() != nil {
			return false, fmt.Errorf("look for image %q in its registry: no answer within %s: %w", image, registryLookWait, rctx.Err())
		}
		p.log.Info("image absent and not in its registry", zap.String("image", image), zap.Error(err))
		return false, &platform.ImageNotFoundError{Image: image}
	}
	return false, nil
}
