package activities

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/stagecraft/stagecraft/internal/health"
	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// leasedPlatform is a platform whose target another owner holds.
type leasedPlatform struct {
	convergePlatform
	mine platform.Fence
}

func (p *leasedPlatform) CheckLease(_ context.Context, s spec.Spec, mine platform.Fence) error {
	p.mine = mine
	return &platform.FencedError{Target: s.TargetKey(), Mine: mine,
		Held: platform.Fence{Owner: "elsewhere/" + s.WorkflowID(), Step: 1, Until: time.Now().Add(time.Minute)}}
}

// TestPrepareRefusesATargetAnotherOwnerHolds: preparation asks the
// platform for the lease with the attempt's fence, and a target another
// namespace holds fails it non-retryable (type Fenced), before the
// snapshot, so the rollout is rejected having changed nothing.
func TestPrepareRefusesATargetAnotherOwnerHolds(t *testing.T) {
	p := &leasedPlatform{}
	a := &Activities{Platforms: map[string]Platform{spec.PlatformDocker: p}, Checker: &health.Checker{}}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	in := PrepareInput{Spec: spec.Spec{Service: "web", Image: "demo:v2", Platform: spec.Platform{Docker: &spec.Docker{Replicas: 1, Port: 8080}},
		Strategy: spec.Strategy{Type: spec.Recreate}}.WithDefaults()}
	_, err := env.ExecuteActivity(a.Prepare, in)
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || app.Type() != platform.ErrTypeFenced || !app.NonRetryable() {
		t.Fatalf("Prepare: %v; want a non-retryable %s error", err, platform.ErrTypeFenced)
	}
	if p.mine.Zero() || p.mine.Owner == "" {
		t.Fatalf("the lease was asked with fence %+v; want the attempt's", p.mine)
	}
	if p.req.Spec.Service != "" {
		t.Fatal("a converge ran")
	}
}
