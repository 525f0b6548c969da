package docker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
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
		if ctx.Err() != nil {
			return false, fmt.Errorf("look for image %q in its registry: %w", image, ctx.Err())
		}
		if rctx.Err() != nil {
			return false, &platform.RegistryUnavailableError{Image: image,
				Err: fmt.Errorf("no answer within %s: %w", registryLookWait, rctx.Err())}
		}
		err = registryAnswer(image, err)
		p.log.Info("image absent and not found in its registry", zap.String("image", image), zap.Error(err))
		return false, err
	}
	return false, nil
}

// registryAnswer sorts the engine's error from a pull of image, or from a
// question about it to its registry, into what retrying cannot change, a
// *platform.ImageNotFoundError, and an outage, a
// *platform.RegistryUnavailableError. The engine (20.10 at least) reports
// every pull failure as a 500 with the registry's answer in its message,
// so the message decides where its status code does not: "manifest
// unknown" or "not found", "unauthorized" or "access denied", "invalid
// reference format", "no matching manifest", and a registry host whose name
// does not exist ("no such host": the DNS says so; a DNS that does not
// answer says something else) are answers; a refused or timed-out
// connection, a 5xx, "toomanyrequests" or anything not recognised is an
// outage, since a missing image must not be reported on a guess.
func registryAnswer(image string, err error) error {
	msg := strings.ToLower(err.Error())
	// "error parsing http …" is not the registry's own answer: a page of
	// whatever stood in front of it (a proxy's "404 page not found" while
	// the registry behind it restarts).
	answered := cerrdefs.IsNotFound(err) || cerrdefs.IsUnauthorized(err) || cerrdefs.IsPermissionDenied(err) || cerrdefs.IsInvalidArgument(err) ||
		!strings.Contains(msg, "error parsing http") && slices.ContainsFunc(registryAnswers, func(a string) bool { return strings.Contains(msg, a) })
	if answered {
		return &platform.ImageNotFoundError{Image: image, Reason: daemonMessage(err)}
	}
	return &platform.RegistryUnavailableError{Image: image, Err: errors.New(daemonMessage(err))}
}

// registryAnswers are the pieces of an engine's message that say the
// registry (or the DNS, for its host) answered: the image cannot be had.
var registryAnswers = []string{
	"manifest unknown", "name unknown", "not found", "no such host", "does not exist",
	"unauthorized", "denied", "no basic auth credentials",
	"invalid reference format", "no matching manifest",
}

// maxReason bounds the engine's message kept in an image error: it goes
// to the rollout's status, audit trail and notification.
const maxReason = 300

// daemonMessage is err's message without the client's "Error response from
// daemon: " prefix, bounded.
func daemonMessage(err error) string {
	msg := strings.TrimPrefix(err.Error(), "Error response from daemon: ")
	if len(msg) > maxReason {
		msg = strings.ToValidUTF8(msg[:maxReason], "") + "…"
	}
	return msg
}
