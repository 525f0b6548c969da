package activities

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

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
