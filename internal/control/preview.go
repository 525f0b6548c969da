package control

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"go.temporal.io/sdk/client"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// Preview plans a rollout of s without changing anything: a
// PreviewRollout workflow reads the live target through a worker (its
// credentials and policies, not the caller's) and returns the snapshot it
// would take, the stages, gates and bakes, and each prerequisite's verdict.
// An invalid spec is a *spec.ValidationError, as Start's. It also says
// whether the target's own rollout is running now (then a start would
// join it or be refused as busy).
func Preview(ctx context.Context, c client.Client, s spec.Spec) (api.Preview, error) {
	s = s.WithDefaults()
	if err := s.Validate(); err != nil {
		return api.Preview{}, err
	}
	pv, err := plan[api.Preview](ctx, c, s.TargetKey(), fmt.Sprintf("plan of %s %s → %s (changes nothing)", s.Strategy.Type, s.Service, s.Image),
		api.PreviewWorkflow, api.RolloutInput{Spec: s})
	if err != nil {
		return pv, err
	}
	if ex, err := Describe(ctx, c, s.WorkflowID(), ""); err == nil && ex.Open() {
		pv.Checks = append(pv.Checks, api.PreviewCheck{Name: "target", Verdict: api.CheckWarning,
			Message: fmt.Sprintf("a rollout of %s is running (%s run %s): a start now joins it if it is the same request, or is refused as busy", s.TargetKey(), ex.WorkflowID, ex.RunID)})
	} else {
		pv.Checks = append(pv.Checks, api.PreviewCheck{Name: "target", Verdict: api.CheckOK, Message: "no rollout of " + s.TargetKey() + " is running"})
	}
	return pv, nil
}

// PreviewRelease plans a release without changing anything: every
// service's rollout planned as Preview plans one, laid out in the
// release's waves. An invalid release is a *spec.ValidationError.
func PreviewRelease(ctx context.Context, c client.Client, r spec.Release) (api.ReleasePreview, error) {
	r = r.WithDefaults()
	if err := r.Validate(); err != nil {
		return api.ReleasePreview{}, err
	}
	return plan[api.ReleasePreview](ctx, c, r.WorkflowID(), fmt.Sprintf("plan of release %s to %s (changes nothing)", r.Name, r.Environment),
		api.PreviewReleaseWorkflow, r)
}

// plan runs a plan workflow of what for target, under an ID of its own
// ("plan:<target>:<nonce>", never the target's), and returns its result.
func plan[T any](ctx context.Context, c client.Client, target, summary, workflow string, input any) (T, error) {
	var pv T
	nonce := make([]byte, 6)
	_, _ = rand.Read(nonce)
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "plan:" + target + ":" + hex.EncodeToString(nonce),
		TaskQueue: api.TaskQueue, StaticSummary: summary}, workflow, input)
	if err != nil {
		return pv, fmt.Errorf("plan %s: %w", target, err)
	}
	if err := Result(ctx, run, &pv); err != nil {
		return pv, fmt.Errorf("plan %s: %w", target, unwrap(err))
	}
	return pv, nil
}
