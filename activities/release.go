package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/stagecraft/stagecraft/internal/health"
	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// PreflightInput holds what a release is about to roll out.
type PreflightInput struct {
	// Specs are the services' rollout specs, in release order.
	Specs []spec.Spec `json:"specs"`
	// Names name the services, for the problems.
	Names []string `json:"names"`
	// Checks are the release's own checks (integration, readiness).
	Checks spec.Health `json:"checks"`
	// Requires holds each service's requirements, in release order.
	Requires [][]spec.Requirement `json:"requires,omitempty"`
	// LookOnly asks for each image to be looked for, not pulled (a plan
	// changes nothing). A release's own preflight pulls: an image the
	// engine cannot run (another platform, a layer gone, no room) is then
	// a problem before the first service changes, not a failure of a
	// later one's Prepare after earlier ones have.
	LookOnly bool `json:"lookOnly,omitempty"`
}

// PreflightResult lists every problem found; empty means go.
type PreflightResult struct {
	Problems []string `json:"problems,omitempty"`
}

// Preflight checks a release's prerequisites before anything changes: each
// service's platform is configured here, its command checks are allowed,
// its image is present or pullable and its target is reachable (a
// Kubernetes Deployment exists and may be read). It changes nothing but
// the engine's images (a pulled image; with LookOnly, not even that). A
// transient error is returned (and retried); what retrying cannot fix is a
// problem in the result.
func (a *Activities) Preflight(ctx context.Context, in PreflightInput) (PreflightResult, error) {
	var res PreflightResult
	problem := func(name, format string, args ...any) {
		res.Problems = append(res.Problems, fmt.Sprintf("service %s: ", name)+fmt.Sprintf(format, args...))
	}
	if err := in.Checks.CommandNotAllowed(a.Checker.Allowlist()); err != nil {
		res.Problems = append(res.Problems, "release checks: "+err.Error())
	}
	for i, s := range in.Specs {
		name := in.Names[i]
		activity.RecordHeartbeat(ctx, i)
		p, err := a.platform(s)
		if err != nil {
			problem(name, "%v", err)
			continue
		}
		if err := s.Health.CommandNotAllowed(a.Checker.Allowlist()); err != nil {
			problem(name, "%v", err)
		}
		// A target held after a failed rollback would refuse this service's
		// rollout mid-release, after the waves before it changed theirs.
		if h, ok := p.(Holder); ok {
			held, err := h.HeldBy(ctx, s)
			if err != nil {
				return res, fmt.Errorf("service %s: look for a hold on %s: %w", name, s.TargetKey(), err)
			}
			if held != nil {
				if held.Target == "" {
					held.Target = s.TargetKey()
				}
				problem(name, "%v", &platform.HeldError{Hold: *held})
				continue
			}
		}
		var nf *platform.ImageNotFoundError
		var outage *platform.RegistryUnavailableError
		check := p.CheckImage
		if in.LookOnly {
			check = func(ctx context.Context, image string) error { return lookForImage(ctx, p, image) }
		}
		switch err := check(ctx, s.Image); {
		case errors.As(err, &nf):
			problem(name, "%v", err)
		case in.LookOnly && errors.As(err, &outage):
			// A plan: the service's own plan warns of it, and the release,
			// started, would retry its pull.
		case err != nil:
			return res, fmt.Errorf("service %s: check image: %w", name, err)
		}
		var tnf *platform.TargetNotFoundError
		switch _, err := p.Snapshot(ctx, s); {
		case errors.As(err, &tnf), errors.Is(err, platform.ErrForbidden), errors.Is(err, platform.ErrUnrestorable):
			problem(name, "target %s: %v", s.TargetKey(), err)
		case err != nil:
			return res, fmt.Errorf("service %s: reach target %s: %w", name, s.TargetKey(), err)
		}
		var rs []spec.Requirement
		if i < len(in.Requires) {
			rs = in.Requires[i]
		}
		more, err := a.prerequisiteProblems(ctx, name, s, rs)
		if err != nil {
			return res, err
		}
		res.Problems = append(res.Problems, more...)
	}
	return res, nil
}

// lookForImage says whether image can be had, pulling nothing: a platform
// that holds images (ImageLooker) is looked at and its registry asked for
// the manifest; the service's Prepare pulls it when its rollout starts.
// Another platform's CheckImage pulls nothing.
func lookForImage(ctx context.Context, p Platform, image string) error {
	if l, ok := p.(ImageLooker); ok {
		_, err := l.FindImage(ctx, image)
		return err
	}
	return p.CheckImage(ctx, image)
}

// ProbeInput is a set of fixed checks run as rounds until one is healthy.
type ProbeInput struct {
	Checks   []spec.Check  `json:"checks"`
	Attempts int           `json:"attempts"`
	Interval time.Duration `json:"interval"`
}

// Probe runs rounds of fixed checks (no instances) until one is healthy or
// the attempts are spent, and returns the last round, bounded.
func (a *Activities) Probe(ctx context.Context, in ProbeInput) (health.Round, error) {
	var round health.Round
	for attempt := 1; attempt <= max(in.Attempts, 1); attempt++ {
		round = a.Checker.Round(ctx, in.Checks, nil, nil)
		activity.RecordHeartbeat(ctx, attempt)
		if round.Verdict == health.Healthy || attempt == max(in.Attempts, 1) {
			break
		}
		select {
		case <-ctx.Done():
			return round.Bounded(maxEvidence), ctx.Err()
		case <-time.After(in.Interval):
		}
	}
	return round.Bounded(maxEvidence), nil
}

// Configurer is a platform that holds configuration of its own
// (Kubernetes: ConfigMaps) that a release prepares before its rollouts.
type Configurer interface {
	WriteConfig(ctx context.Context, s spec.Spec, data map[string]string, owner string) (platform.ConfigResult, error)
	RemoveConfig(ctx context.Context, s spec.Spec, owner string) (platform.ConfigResult, error)
}

// ConfigItem is one service's configuration.
type ConfigItem struct {
	// Name is the service's name in the release, which the results carry.
	Name string            `json:"name"`
	Spec spec.Spec         `json:"spec"`
	Data map[string]string `json:"data"`
}

// ConfigInput is a release's configuration for its services; Owner (the
// release's workflow ID) marks what it wrote.
type ConfigInput struct {
	Owner string       `json:"owner"`
	Items []ConfigItem `json:"items"`
}

// PrepareConfig writes each service's configuration, reporting for each
// what it wrote and what the pods used before. Writing again is a no-op.
func (a *Activities) PrepareConfig(ctx context.Context, in ConfigInput) ([]platform.ConfigResult, error) {
	return a.eachConfig(ctx, in, func(c Configurer, it ConfigItem) (platform.ConfigResult, error) {
		return c.WriteConfig(ctx, it.Spec, it.Data, in.Owner)
	})
}

// RestoreConfig removes the configuration the release wrote, once no pod
// template refers to it: the preparation's rollback, run after the
// services rolled back. What the pods used before was never changed.
func (a *Activities) RestoreConfig(ctx context.Context, in ConfigInput) ([]platform.ConfigResult, error) {
	return a.eachConfig(ctx, in, func(c Configurer, it ConfigItem) (platform.ConfigResult, error) {
		return c.RemoveConfig(ctx, it.Spec, in.Owner)
	})
}

func (a *Activities) eachConfig(ctx context.Context, in ConfigInput, do func(Configurer, ConfigItem) (platform.ConfigResult, error)) ([]platform.ConfigResult, error) {
	out := make([]platform.ConfigResult, 0, len(in.Items))
	for i, it := range in.Items {
		activity.RecordHeartbeat(ctx, i)
		p, err := a.platform(it.Spec)
		if err != nil {
			return out, err
		}
		c, ok := p.(Configurer)
		if !ok {
			return out, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("service %s: platform %s holds no configuration of its own", it.Spec.Service, it.Spec.PlatformName()), platform.ErrTypeInvalidSpec, nil)
		}
		res, err := do(c, it)
		if it.Name != "" {
			res.Service = it.Name
		}
		if err != nil {
			return out, classify(fmt.Errorf("service %s: configuration %s: %w", it.Spec.Service, res.Name, err))
		}
		out = append(out, res)
	}
	return out, nil
}
