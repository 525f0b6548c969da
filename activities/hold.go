package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"

	"github.com/stagecraft/stagecraft/internal/audit"
	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// Holder is a platform that keeps a hold on a target whose rollback
// failed (platform.Hold). Both platforms are Holders; Prepare refuses a
// held target whoever started the rollout.
type Holder interface {
	// Hold marks the target held; marking it again keeps the first hold.
	Hold(ctx context.Context, s spec.Spec, h platform.Hold) error
	// HeldBy returns the target's hold, nil when it has none.
	HeldBy(ctx context.Context, s spec.Spec) (*platform.Hold, error)
	// ClearHold removes the target's hold and returns it, nil when none.
	ClearHold(ctx context.Context, s spec.Spec) (*platform.Hold, error)
}

// HoldInput marks a target held after its rollout's rollback failed.
type HoldInput struct {
	Spec spec.Spec     `json:"spec"`
	Hold platform.Hold `json:"hold"`
}

// Hold marks the target held, so the next rollout refuses it until an
// operator clears it (ClearHold).
func (a *Activities) Hold(ctx context.Context, in HoldInput) error {
	_, stop := keepAlive(ctx)
	defer stop()
	h, err := a.holder(in.Spec)
	if err != nil {
		return err
	}
	if in.Hold.Target == "" {
		in.Hold.Target = in.Spec.TargetKey()
	}
	if err := h.Hold(ctx, in.Spec, in.Hold); err != nil {
		return classify(fmt.Errorf("hold %s: %w", in.Spec.TargetKey(), err))
	}
	a.logger(ctx).Warn("target held after a failed rollback", zap.String("target", in.Spec.TargetKey()), zap.String("reason", in.Hold.Reason))
	return nil
}

// checkHold refuses a held target with a non-retryable platform.ErrTypeHeld
// error naming the failed rollout and how to clear it.
func (a *Activities) checkHold(ctx context.Context, s spec.Spec) error {
	p, err := a.platform(s)
	if err != nil {
		return err
	}
	h, ok := p.(Holder)
	if !ok {
		return nil
	}
	held, err := h.HeldBy(ctx, s)
	if err != nil {
		return classify(fmt.Errorf("look for a hold on %s: %w", s.TargetKey(), err))
	}
	if held == nil {
		return nil
	}
	if held.Target == "" {
		held.Target = s.TargetKey()
	}
	herr := &platform.HeldError{Hold: *held}
	return temporal.NewNonRetryableApplicationError(herr.Error(), platform.ErrTypeHeld, herr)
}

// Leaser is a platform that keeps a lease on its targets (platform.Fence):
// CheckLease refuses, with an error wrapping platform.ErrFenced, an owner
// that may not converge the target now.
type Leaser interface {
	CheckLease(ctx context.Context, s spec.Spec, mine platform.Fence) error
}

// checkLease refuses, before any change, a rollout whose target another
// owner (another namespace, another Temporal cluster) holds: its stages
// would be fenced, and so would its rollback.
func (a *Activities) checkLease(ctx context.Context, s spec.Spec) error {
	p, err := a.platform(s)
	if err != nil {
		return err
	}
	l, ok := p.(Leaser)
	if !ok {
		return nil
	}
	if err := l.CheckLease(ctx, s, attemptFence(ctx)); err != nil {
		return classify(fmt.Errorf("the lease on %s: %w", s.TargetKey(), err))
	}
	return nil
}

// ClearInput asks to clear a target's hold: who and why, for the audit trail.
type ClearInput struct {
	Spec   spec.Spec `json:"spec"`
	Reason string    `json:"reason"`
	By     string    `json:"by"`
	// At is when the clear was asked for (the workflow's time).
	At time.Time `json:"at"`
}

// ClearResult is the hold cleared, nil when the target had none.
type ClearResult struct {
	Cleared *platform.Hold `json:"cleared,omitempty"`
}

// ClearHold removes the target's hold and records who cleared it and why in
// the audit trail, under the clearing workflow's ID and run. The record is
// written before the hold is removed, so a hold never goes unrecorded; a
// retry that finds the hold gone (an earlier attempt removed it) keeps the
// record that attempt wrote.
func (a *Activities) ClearHold(ctx context.Context, in ClearInput) (ClearResult, error) {
	_, stop := keepAlive(ctx)
	defer stop()
	h, err := a.holder(in.Spec)
	if err != nil {
		return ClearResult{}, err
	}
	held, err := h.HeldBy(ctx, in.Spec)
	if err != nil {
		return ClearResult{}, classify(fmt.Errorf("look for a hold on %s: %w", in.Spec.TargetKey(), err))
	}
	if a.Store != nil && activity.IsActivity(ctx) {
		info := activity.GetInfo(ctx)
		if held != nil || info.Attempt <= 1 {
			if err := a.Store.Write(ctx, clearBatch(info.WorkflowExecution.ID, info.WorkflowExecution.RunID, in, held)); err != nil {
				return ClearResult{}, fmt.Errorf("record the clear of %s in the audit trail: %w", in.Spec.TargetKey(), err)
			}
		}
	}
	if held == nil {
		a.logger(ctx).Info("no hold to clear", zap.String("target", in.Spec.TargetKey()), zap.String("by", in.By))
		return ClearResult{}, nil
	}
	cleared, err := h.ClearHold(ctx, in.Spec)
	if err != nil {
		return ClearResult{}, classify(fmt.Errorf("clear hold on %s: %w", in.Spec.TargetKey(), err))
	}
	if cleared == nil {
		cleared = held // removed between the look and the clear
	}
	a.logger(ctx).Info("hold cleared", zap.String("target", in.Spec.TargetKey()), zap.String("by", in.By),
		zap.String("reason", in.Reason), zap.String("rollout", cleared.WorkflowID))
	return ClearResult{Cleared: cleared}, nil
}

// ActionClearHold is the control action a clear is recorded as.
const ActionClearHold = "clear-hold"

// clearBatch is the audit record of a clear: a plan row for the clearing
// run and one control event saying who cleared which hold and why.
func clearBatch(workflowID, runID string, in ClearInput, cleared *platform.Hold) audit.Batch {
	at := in.At
	ev := audit.Event{Seq: 1, At: at, Kind: audit.KindControl, Action: ActionClearHold, Via: "workflow",
		By: in.By, Reason: in.Reason, Accepted: true}
	status := "hold_cleared"
	if cleared != nil {
		ev.From = cleared.WorkflowID + "/" + cleared.RunID
	} else {
		status = "not_held"
		ev.Error = "the target had no hold"
	}
	return audit.Batch{
		WorkflowID: workflowID, RunID: runID,
		Plan: &audit.Plan{WorkflowID: workflowID, RunID: runID, Service: in.Spec.Service, Platform: in.Spec.PlatformName(),
			Strategy: ActionClearHold, Target: in.Spec.TargetKey(), Status: status, Success: true,
			CreatedAt: at, StartedAt: &at, CompletedAt: &at},
		Events: []audit.Event{ev},
	}
}

// holder returns the spec's platform as a Holder.
func (a *Activities) holder(s spec.Spec) (Holder, error) {
	if a == nil { // registered for its names only (workflow tests)
		err := errors.New("no platforms configured")
		return nil, temporal.NewNonRetryableApplicationError(err.Error(), platform.ErrTypeInvalidSpec, err)
	}
	p, err := a.platform(s)
	if err != nil {
		return nil, err
	}
	h, ok := p.(Holder)
	if !ok {
		err := errors.New("platform " + s.PlatformName() + " keeps no holds")
		return nil, temporal.NewNonRetryableApplicationError(err.Error(), platform.ErrTypeInvalidSpec, err)
	}
	return h, nil
}
