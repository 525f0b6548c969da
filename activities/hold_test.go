package activities

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/stagecraft/stagecraft/internal/health"
	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// heldPlatform keeps a hold like the real platforms and counts what
// Prepare asked of it.
type heldPlatform struct {
	fakePlatform
	hold      *platform.Hold
	snapshots int
	images    int
}

func (p *heldPlatform) CheckImage(context.Context, string) error { p.images++; return nil }

func (p *heldPlatform) Snapshot(context.Context, spec.Spec) (platform.Snapshot, error) {
	p.snapshots++
	return platform.Snapshot{}, nil
}

func (p *heldPlatform) Hold(_ context.Context, _ spec.Spec, h platform.Hold) error {
	if p.hold == nil {
		p.hold = &h
	}
	return nil
}

func (p *heldPlatform) HeldBy(context.Context, spec.Spec) (*platform.Hold, error) { return p.hold, nil }

func (p *heldPlatform) ClearHold(context.Context, spec.Spec) (*platform.Hold, error) {
	h := p.hold
	p.hold = nil
	return h, nil
}

type noChecks struct{}

func (noChecks) Round(context.Context, []spec.Check, []spec.Check, []string) health.Round {
	return health.Round{}
}
func (noChecks) Allowlist() []string { return nil }

func holdSpec() spec.Spec {
	return spec.Spec{
		Service:  "hello",
		Image:    "stagecraft-demo:v2",
		Platform: spec.Platform{Docker: &spec.Docker{Replicas: 2, Port: 8080}},
		Strategy: spec.Strategy{Type: spec.Recreate},
		Health: spec.Health{Interval: spec.Duration(time.Second), Checks: []spec.Check{
			{Name: "healthz", HTTP: &spec.HTTPCheck{URL: "http://{{.Address}}/healthz"}},
		}},
	}.WithDefaults()
}

// TestPrepareRefusesHeldTarget: once a failed rollback held the target,
// Prepare refuses it before looking at anything else, non-retryable, with
// an error naming the failed rollout, its reason and how to clear it; once
// cleared, Prepare snapshots it again.
func TestPrepareRefusesHeldTarget(t *testing.T) {
	ctx := context.Background()
	p := &heldPlatform{}
	a := &Activities{Platforms: map[string]Platform{spec.PlatformDocker: p}, Checker: noChecks{}}
	s := holdSpec()
	_, err := a.Prepare(ctx, PrepareInput{Spec: s})
	require.NoError(t, err)
	require.Equal(t, 1, p.snapshots)

	require.NoError(t, a.Hold(ctx, HoldInput{Spec: s, Hold: platform.Hold{WorkflowID: s.WorkflowID(), RunID: "run-1",
		At: time.Date(2026, 12, 3, 6, 0, 0, 0, time.UTC), Reason: "stage 1 failed; rollback failed: restore snapshot: image gone"}}))
	_, err = a.Prepare(ctx, PrepareInput{Spec: s})
	var app *temporal.ApplicationError
	require.True(t, errors.As(err, &app), "%v", err)
	require.Equal(t, platform.ErrTypeHeld, app.Type())
	require.True(t, app.NonRetryable())
	for _, want := range []string{"docker:hello is held", "rollout deploy:docker:hello (run run-1) ended rollback_failed",
		"rollback failed: restore snapshot: image gone", "starter clear docker:hello"} {
		require.Contains(t, err.Error(), want)
	}
	require.Equal(t, 1, p.snapshots, "a held target is not snapshotted")
	require.Equal(t, 1, p.images, "refused before anything else is looked at")

	res, err := a.ClearHold(ctx, ClearInput{Spec: s, Reason: "restored by hand", By: "alice"})
	require.NoError(t, err)
	require.NotNil(t, res.Cleared)
	require.Equal(t, "run-1", res.Cleared.RunID)
	_, err = a.Prepare(ctx, PrepareInput{Spec: s})
	require.NoError(t, err)
	require.Equal(t, 2, p.snapshots)
}

// TestPreflightFindsHeldService: a release whose service's target is held
// is refused in preflight, before any wave changes anything, naming the
// service, the failed rollout and how to clear it.
func TestPreflightFindsHeldService(t *testing.T) {
	p := &heldPlatform{}
	a := &Activities{Platforms: map[string]Platform{spec.PlatformDocker: p}, Checker: noChecks{}}
	env := (&testsuite.WorkflowTestSuite{}).NewTestActivityEnvironment()
	env.RegisterActivity(a)
	s := holdSpec()
	preflight := func() PreflightResult {
		v, err := env.ExecuteActivity(a.Preflight, PreflightInput{Specs: []spec.Spec{s}, Names: []string{"hello"}})
		require.NoError(t, err)
		var res PreflightResult
		require.NoError(t, v.Get(&res))
		return res
	}
	require.Empty(t, preflight().Problems)

	require.NoError(t, a.Hold(context.Background(), HoldInput{Spec: s, Hold: platform.Hold{WorkflowID: s.WorkflowID(), RunID: "run-1", Reason: "rollback failed"}}))
	problems := preflight().Problems
	require.Len(t, problems, 1)
	for _, want := range []string{"service hello: ", "docker:hello is held", "starter clear docker:hello"} {
		require.Contains(t, problems[0], want)
	}
}
