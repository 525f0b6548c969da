// Package activities adapts workflow calls to the seams: the platform that
// runs a service and the health checker. Every activity is idempotent and
// classifies its errors as retryable or not at this boundary.
package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"

	"github.com/stagecraft/stagecraft/internal/health"
	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// Platform is the seam every platform implements: converge a target to a
// desired state and report what runs.
type Platform interface {
	// CheckImage returns *platform.ImageNotFoundError if image cannot be had.
	CheckImage(ctx context.Context, image string) error
	// Snapshot captures what runs now, completely enough to restore it.
	Snapshot(ctx context.Context, s spec.Spec) (platform.Snapshot, error)
	// Converge brings the target to a desired state; re-running it is a no-op.
	Converge(ctx context.Context, req platform.ConvergeRequest) (platform.ConvergeResult, error)
	// Endpoints lists 127.0.0.1:port addresses of the selected instances.
	Endpoints(ctx context.Context, s spec.Spec, rollout string, snap platform.Snapshot, which platform.Which) ([]string, error)
}

// Checker runs one round of health checks.
type Checker interface {
	Round(ctx context.Context, checks []spec.Check, addresses []string) health.Round
}

// Activities holds the clients activities use. Register it with a worker.
type Activities struct {
	// Platforms by name ("docker").
	Platforms map[string]Platform
	Checker   Checker
	Log       *zap.Logger
}

// PrepareInput asks for a target's snapshot after checking the request.
type PrepareInput struct {
	Spec spec.Spec `json:"spec"`
}

// PrepareResult holds the snapshot a rollback restores.
type PrepareResult struct {
	Snapshot platform.Snapshot `json:"snapshot"`
}

// Prepare validates the request against the platform (the image exists) and
// snapshots the target. It changes nothing.
func (a *Activities) Prepare(ctx context.Context, in PrepareInput) (PrepareResult, error) {
	p, err := a.platform(in.Spec)
	if err != nil {
		return PrepareResult{}, err
	}
	if err := in.Spec.Validate(); err != nil {
		return PrepareResult{}, temporal.NewNonRetryableApplicationError(err.Error(), platform.ErrTypeInvalidSpec, err)
	}
	if err := p.CheckImage(ctx, in.Spec.Image); err != nil {
		return PrepareResult{}, classify(err)
	}
	snap, err := p.Snapshot(ctx, in.Spec)
	if err != nil {
		return PrepareResult{}, classify(fmt.Errorf("snapshot %s: %w", in.Spec.TargetKey(), err))
	}
	a.logger(ctx).Info("snapshot taken", zap.String("service", in.Spec.Service), zap.Int("instances", len(snap.Instances)))
	return PrepareResult{Snapshot: snap}, nil
}

// ConvergeInput is a converge request.
type ConvergeInput struct {
	Request platform.ConvergeRequest `json:"request"`
}

// Converge brings the target to the requested desired state.
func (a *Activities) Converge(ctx context.Context, in ConvergeInput) (platform.ConvergeResult, error) {
	p, err := a.platform(in.Request.Spec)
	if err != nil {
		return platform.ConvergeResult{}, err
	}
	res, err := p.Converge(ctx, in.Request)
	if err != nil {
		return res, classify(err)
	}
	a.logger(ctx).Info("converged", zap.String("service", in.Request.Spec.Service),
		zap.Int("new", res.NewCount), zap.Int("old", res.OldCount),
		zap.Strings("created", res.Created), zap.Strings("removed", res.Removed))
	return res, nil
}

// WatchMode says when a watch ends.
type WatchMode string

const (
	// WatchRounds runs Rounds rounds, one every interval, and returns healthy,
	// or returns at the first failing round.
	WatchRounds WatchMode = "rounds"
	// WatchVerify runs rounds until one passes (healthy) or Rounds fail.
	WatchVerify WatchMode = "verify"
)

// WatchInput configures a health watch over a selection of instances.
type WatchInput struct {
	Spec     spec.Spec         `json:"spec"`
	Rollout  string            `json:"rollout"`
	Snapshot platform.Snapshot `json:"snapshot"`
	Which    platform.Which    `json:"which"`
	Mode     WatchMode         `json:"mode"`
	Rounds   int               `json:"rounds"`
}

// WatchResult summarises the rounds a watch ran. On failure it carries the
// failing round as evidence; otherwise only counts, to keep history small.
type WatchResult struct {
	Healthy     bool          `json:"healthy"`
	Rounds      int           `json:"rounds"`
	Passed      int           `json:"passed"`
	Failed      int           `json:"failed"`
	LastFailure string        `json:"lastFailure,omitempty"`
	Evidence    *health.Round `json:"evidence,omitempty"`
}

// Watch runs health-check rounds, one every interval (the first after one
// interval, giving new instances time to start), heartbeating its summary.
// Cancelled, it returns its summary as the cancellation's details. Retried
// after a worker crash, it carries on from the last heartbeat's summary.
func (a *Activities) Watch(ctx context.Context, in WatchInput) (WatchResult, error) {
	p, err := a.platform(in.Spec)
	if err != nil {
		return WatchResult{}, err
	}
	var sum WatchResult
	if activity.HasHeartbeatDetails(ctx) {
		_ = activity.GetHeartbeatDetails(ctx, &sum)
	}
	log := a.logger(ctx).With(zap.String("service", in.Spec.Service), zap.String("which", string(in.Which)))
	rounds := max(in.Rounds, 1)
	next := time.NewTimer(in.Spec.Health.Interval.D())
	defer next.Stop()
	beat := time.NewTicker(500 * time.Millisecond)
	defer beat.Stop()
	for sum.Rounds < rounds {
		select {
		case <-ctx.Done():
			return sum, temporal.NewCanceledError(sum)
		case <-beat.C:
			activity.RecordHeartbeat(ctx, sum)
			continue
		case <-next.C:
		}
		round := a.round(ctx, p, in)
		if ctx.Err() != nil {
			return sum, temporal.NewCanceledError(sum)
		}
		sum.Rounds++
		if round.OK {
			sum.Passed++
		} else {
			sum.Failed++
			sum.LastFailure = round.FirstFailure()
			sum.Evidence = &round
		}
		activity.RecordHeartbeat(ctx, sum)
		switch {
		case in.Mode == WatchVerify && round.OK:
			sum.Healthy = true
			return sum, nil
		case !round.OK && in.Mode != WatchVerify:
			log.Warn("health round failed", zap.String("failure", sum.LastFailure))
			return sum, nil
		}
		next.Reset(in.Spec.Health.Interval.D())
	}
	sum.Healthy = in.Mode != WatchVerify
	return sum, nil
}

func (a *Activities) round(ctx context.Context, p Platform, in WatchInput) health.Round {
	addrs, err := p.Endpoints(ctx, in.Spec, in.Rollout, in.Snapshot, in.Which)
	if err != nil {
		return health.Round{At: time.Now(), Results: []health.Result{{Check: "endpoints", Error: err.Error()}}}
	}
	return a.Checker.Round(ctx, in.Spec.Health.Checks, addrs)
}

func (a *Activities) platform(s spec.Spec) (Platform, error) {
	name := s.PlatformName()
	p, ok := a.Platforms[name]
	if !ok {
		err := fmt.Errorf("platform %q is not configured on this worker", name)
		return nil, temporal.NewNonRetryableApplicationError(err.Error(), platform.ErrTypeInvalidSpec, err)
	}
	return p, nil
}

func (a *Activities) logger(ctx context.Context) *zap.Logger {
	log := a.Log
	if log == nil {
		log = zap.NewNop()
	}
	if activity.IsActivity(ctx) {
		info := activity.GetInfo(ctx)
		log = log.With(zap.String("workflowId", info.WorkflowExecution.ID),
			zap.String("runId", info.WorkflowExecution.RunID), zap.String("activity", info.ActivityType.Name))
	}
	return log
}

// classify marks errors that retrying cannot fix as non-retryable, with the
// named types workflows list in their retry policies.
func classify(err error) error {
	var nf *platform.ImageNotFoundError
	var tnf *platform.TargetNotFoundError
	switch {
	case errors.As(err, &nf):
		return temporal.NewNonRetryableApplicationError(err.Error(), platform.ErrTypeImageNotFound, err)
	case errors.As(err, &tnf):
		return temporal.NewNonRetryableApplicationError(err.Error(), platform.ErrTypeTargetNotFound, err)
	case errors.Is(err, platform.ErrForbidden):
		return temporal.NewNonRetryableApplicationError(err.Error(), platform.ErrTypeForbidden, err)
	case errors.Is(err, platform.ErrProgressDeadline):
		return temporal.NewNonRetryableApplicationError(err.Error(), platform.ErrTypeProgressStuck, err)
	}
	return err
}
