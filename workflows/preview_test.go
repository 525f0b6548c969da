package workflows

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"

	"github.com/stagecraft/stagecraft/activities"
	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// A plan's stages are the stages a rollout of the same spec, from the same
// snapshot, then runs: for every strategy.
func TestPreviewStagesAreTheRolloutsStages(t *testing.T) {
	for _, strategy := range strategies {
		t.Run(strategy, func(t *testing.T) {
			s := testSpec(strategy)
			s.Approval = &spec.Approval{Before: []int{100}, Timeout: spec.Duration(time.Hour)}
			s.Timeout = 0
			h := newHarness(t)
			h.env.OnActivity(acts.Preview, mock.Anything, mock.Anything).Return(
				func(_ context.Context, in activities.PreviewInput) (activities.PreviewResult, error) {
					snap := h.snapshot
					return activities.PreviewResult{Snapshot: &snap, Checks: []activities.PreviewCheck{{Name: "image", Verdict: "ok"}}}, nil
				})
			h.env.OnActivity(acts.Describe, mock.Anything, mock.Anything).Return(
				func(_ context.Context, in activities.DescribeInput) ([][]string, error) {
					out := make([][]string, len(in.Desired))
					for i, d := range in.Desired {
						out[i] = []string{fmt.Sprintf("new %d old %d", d.New, d.Old)}
					}
					return out, nil
				})
			h.id = "plan:" + s.TargetKey() + ":t"
			h.execute(api.PreviewWorkflow, api.RolloutInput{Spec: s})
			var pv api.Preview
			require.False(t, closedResult(t, h.env, &pv))
			require.True(t, pv.Ready, "%+v", pv.Checks)
			require.Equal(t, h.snapshot.Count(), pv.Snapshot.Count)

			r := newHarness(t)
			r.env.RegisterDelayedCallback(func() { r.env.SignalWorkflow(api.SignalApprove, api.ControlRequest{By: "t"}) }, time.Hour)
			res := r.run(s)
			require.Len(t, pv.Stages, len(res.Stages))
			gates := 0
			var bakes time.Duration
			for i, st := range pv.Stages {
				require.Equal(t, res.Stages[i].Stage, st.Stage, st.Name)
				require.Equal(t, []string{fmt.Sprintf("new %d old %d", st.New, st.Old)}, st.Changes, st.Name)
				if st.Gate {
					gates++
				}
				bakes += st.Bake
			}
			require.Equal(t, 1, gates, "the 100% stage waits for approval")
			require.Equal(t, []string{fmt.Sprintf("new 0 old %d", h.snapshot.Count())}, pv.RollbackChanges)
			require.Equal(t, bakes+s.WithDefaults().Strategy.KeepBlueFor.D(), pv.MinDuration)
		})
	}
}

// A spec the rollout would reject is not planned: the plan says why, and
// reads nothing.
func TestPreviewOfAnInvalidSpec(t *testing.T) {
	h := newHarness(t)
	s := testSpec(spec.Canary)
	s.Health.Checks = nil
	s.Image = ""
	h.id = "plan:x"
	h.execute(api.PreviewWorkflow, api.RolloutInput{Spec: s})
	var pv api.Preview
	require.False(t, closedResult(t, h.env, &pv))
	require.False(t, pv.Ready)
	require.Equal(t, "spec", pv.Checks[0].Name)
	require.Equal(t, api.CheckFailed, pv.Checks[0].Verdict)
	require.Contains(t, pv.Checks[0].Message, "image")
	require.Empty(t, pv.Stages)
}

// A release's plan is every service's rollout plan, in the release's waves.
func TestPreviewReleaseWaveByWave(t *testing.T) {
	h := newHarness(t)
	h.env.OnActivity(acts.Preview, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.PreviewInput) (activities.PreviewResult, error) {
			snap := h.snapshot
			return activities.PreviewResult{Snapshot: &snap, Checks: []activities.PreviewCheck{{Name: "image", Verdict: "ok"}}}, nil
		})
	h.env.OnActivity(acts.Preflight, mock.Anything, mock.Anything).Return(activities.PreflightResult{}, nil)
	h.env.OnActivity(acts.Describe, mock.Anything, mock.Anything).Return([][]string(nil), nil)
	r := threeTier()
	h.id = "plan:" + r.WithDefaults().WorkflowID() + ":t"
	h.execute(api.PreviewReleaseWorkflow, r)
	var pv api.ReleasePreview
	require.False(t, closedResult(t, h.env, &pv))
	require.True(t, pv.Ready, "%+v", pv)
	var order []string
	for _, w := range pv.Waves {
		for _, s := range w.Services {
			order = append(order, s.Name)
			require.NotEmpty(t, s.Preview.Stages, s.Name)
		}
	}
	require.Equal(t, []string{"db-migrator", "api", "web"}, order)

	h = newHarness(t)
	r.Services[0].DependsOn = []string{"web"}
	h.id = "plan:x"
	h.execute(api.PreviewReleaseWorkflow, r)
	pv = api.ReleasePreview{}
	require.False(t, closedResult(t, h.env, &pv))
	require.False(t, pv.Ready)
	require.Contains(t, strings.Join(pv.Problems, "; "), "dependency cycle")
	require.Empty(t, pv.Waves)
}
