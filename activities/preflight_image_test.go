package activities

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// lookingPlatform is a platform that holds images: it counts pulls
// (CheckImage) and looks (FindImage).
type lookingPlatform struct {
	heldPlatform
	pulls, looks int
}

func (p *lookingPlatform) CheckImage(context.Context, string) error { p.pulls++; return nil }

func (p *lookingPlatform) FindImage(context.Context, string) (bool, error) {
	p.looks++
	return false, nil
}

// TestPreflightPullsUnlessAPlan: a release's own preflight has its
// services' images pulled, so an image the engine cannot run is a problem
// before the first service changes; a plan's (LookOnly) only looks.
func TestPreflightPullsUnlessAPlan(t *testing.T) {
	for _, lookOnly := range []bool{false, true} {
		p := &lookingPlatform{}
		a := &Activities{Platforms: map[string]Platform{spec.PlatformDocker: p}, Checker: noChecks{}}
		var env testsuite.WorkflowTestSuite
		ae := env.NewTestActivityEnvironment()
		ae.RegisterActivity(a.Preflight)
		_, err := ae.ExecuteActivity(a.Preflight, PreflightInput{Specs: []spec.Spec{holdSpec()}, Names: []string{"hello"}, LookOnly: lookOnly})
		require.NoError(t, err)
		if lookOnly {
			require.Equal(t, [2]int{0, 1}, [2]int{p.pulls, p.looks}, "a plan's preflight: pulls, looks")
		} else {
			require.Equal(t, [2]int{1, 0}, [2]int{p.pulls, p.looks}, "a release's preflight: pulls, looks")
		}
	}
}

// answeringPlatform looks for an image and finds what err says; a pull
// (CheckImage) gets imageErr.
type answeringPlatform struct {
	heldPlatform
	err, imageErr error
}

func (p *answeringPlatform) FindImage(context.Context, string) (bool, error) { return false, p.err }

func (p *answeringPlatform) CheckImage(context.Context, string) error { return p.imageErr }

// TestPreviewImageVerdicts: a plan calls an image its registry says it
// does not have a failure (a rollout is refused before any change), but a
// registry that could not be asked only a warning: a rollout started now
// retries the pull, so the plan does not say it would be refused.
func TestPreviewImageVerdicts(t *testing.T) {
	for _, tt := range []struct {
		err     error
		verdict string
		says    string
	}{
		{&platform.ImageNotFoundError{Image: "registry.invalid/web:v2", Reason: "manifest unknown"}, checkFailed, "not found (manifest unknown)"},
		{&platform.RegistryUnavailableError{Image: "127.0.0.1:5000/web:v2", Err: errors.New("connection refused")}, checkWarning, "retries the pull"},
		{nil, checkWarning, "its registry has it"},
	} {
		p := &answeringPlatform{err: tt.err}
		a := &Activities{Platforms: map[string]Platform{spec.PlatformDocker: p}, Checker: noChecks{}}
		var env testsuite.WorkflowTestSuite
		ae := env.NewTestActivityEnvironment()
		ae.RegisterActivity(a.Preview)
		v, err := ae.ExecuteActivity(a.Preview, PreviewInput{Spec: holdSpec()})
		require.NoError(t, err)
		var res PreviewResult
		require.NoError(t, v.Get(&res))
		var image *PreviewCheck
		for i := range res.Checks {
			if res.Checks[i].Name == "image" {
				image = &res.Checks[i]
			}
		}
		require.NotNil(t, image, "%+v", res.Checks)
		require.Equal(t, tt.verdict, image.Verdict, image.Message)
		require.Contains(t, image.Message, tt.says)
	}
}

// TestReleasePlanWarnsOfARegistryOutage: a release's plan (LookOnly) does
// not fail, nor call the service refused, when its registry could not be
// asked (the service's own plan warns of it); a release's own preflight
// returns the error, which is retried.
func TestReleasePlanWarnsOfARegistryOutage(t *testing.T) {
	outage := &platform.RegistryUnavailableError{Image: "127.0.0.1:5000/web:v2", Err: errors.New("connection refused")}
	for _, lookOnly := range []bool{true, false} {
		p := &answeringPlatform{err: outage}
		p.imageErr = outage
		a := &Activities{Platforms: map[string]Platform{spec.PlatformDocker: p}, Checker: noChecks{}}
		var env testsuite.WorkflowTestSuite
		ae := env.NewTestActivityEnvironment()
		ae.RegisterActivity(a.Preflight)
		v, err := ae.ExecuteActivity(a.Preflight, PreflightInput{Specs: []spec.Spec{holdSpec()}, Names: []string{"hello"}, LookOnly: lookOnly})
		if !lookOnly {
			require.ErrorContains(t, err, "could not be asked", "a release's own preflight retries it")
			continue
		}
		require.NoError(t, err)
		var res PreflightResult
		require.NoError(t, v.Get(&res))
		require.Empty(t, res.Problems)
	}
}
