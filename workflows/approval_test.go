package workflows

import (
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	sdkapi "go.temporal.io/api/sdk/v1"
	"go.temporal.io/sdk/temporal"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// gated is a canary 25/50/100 with a 1 min bake whose 100% stage needs
// approval within an hour.
func gated(onTimeout string) spec.Spec {
	s := testSpec(spec.Canary)
	s.Strategy.Steps = []int{25, 50, 100}
	s.Strategy.Bake = spec.Duration(time.Minute)
	s.Approval = &spec.Approval{Before: []int{100}, Timeout: spec.Duration(time.Hour), OnTimeout: onTimeout}
	return s
}

func TestApprovalGateWaitsForApprove(t *testing.T) {
	h := newHarness(t)
	var waiting api.Status
	var errs []string
	approve := func(after time.Duration, by string) {
		h.env.RegisterDelayedCallback(func() {
			h.env.UpdateWorkflow(api.UpdateApprove, by+after.String(), &updateCallback{done: func(st api.Status, err error) {
				if err != nil {
					errs = append(errs, err.Error())
				}
			}}, api.ControlRequest{By: by, Reason: "dashboards look fine"})
		}, after)
	}
	approve(30*time.Second, "eve") // stage 1 is not gated: rejected
	h.env.RegisterDelayedCallback(func() {
		v, err := h.env.QueryWorkflow(api.QueryStatus)
		require.NoError(t, err)
		require.NoError(t, v.Get(&waiting))
	}, 10*time.Minute)
	approve(20*time.Minute, "carol")
	res := h.run(gated(spec.OnTimeoutAbort))
	require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
	require.Equal(t, []string{"cannot approve: rollout deploy:docker:hello is not waiting for approval"}, errs)

	// Two bakes (2 min), then the gate held 100% until the approve at 20 min.
	require.Equal(t, api.PhaseAwaitingApproval, waiting.Phase)
	require.Equal(t, 2, waiting.CurrentStage)
	require.Len(t, waiting.Approvals, 1)
	require.True(t, waiting.Approvals[0].Open())
	require.Equal(t, "canary 100%", waiting.Approvals[0].Name)
	require.Equal(t, time.Hour, waiting.Approvals[0].Deadline.Sub(waiting.Approvals[0].RequestedAt))
	require.Len(t, res.Approvals, 1)
	a := res.Approvals[0]
	require.Equal(t, "carol", a.ApprovedBy)
	require.Equal(t, "dashboards look fine", a.Reason)
	require.Equal(t, 18*time.Minute, a.ApprovedAt.Sub(a.RequestedAt))
	last := h.converges[len(h.converges)-2] // the 100% stage, before finalizing
	require.Equal(t, 20*time.Minute, last.At.Sub(h.converges[0].At))
	require.Equal(t, "approve", res.Controls[len(res.Controls)-1].Action)
}

func TestApprovalTimeout(t *testing.T) {
	t.Run("abort rolls back", func(t *testing.T) {
		h := newHarness(t)
		res := h.run(gated(spec.OnTimeoutAbort))
		require.Equal(t, api.OutcomeRolledBack, res.Outcome)
		require.Contains(t, res.Error, "approval of canary 100% not given within 1h0m0s")
		require.True(t, res.Approvals[0].TimedOut)
		require.Equal(t, restore, h.converges[len(h.converges)-1].Desired)
	})
	t.Run("proceed goes on", func(t *testing.T) {
		h := newHarness(t)
		res := h.run(gated(spec.OnTimeoutProceed))
		require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
		require.True(t, res.Approvals[0].TimedOut)
		require.Empty(t, res.Approvals[0].ApprovedBy)
	})
	t.Run("promote approves what is left", func(t *testing.T) {
		h := newHarness(t)
		h.env.RegisterDelayedCallback(func() { h.env.SignalWorkflow(api.SignalPromote, api.ControlRequest{By: "dave"}) }, 30*time.Second)
		res := h.run(gated(spec.OnTimeoutAbort))
		require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
		require.Empty(t, res.Approvals)
	})
}

func TestRolloutNotifiesOncePerEvent(t *testing.T) {
	hook := []spec.Notification{{Name: "ops", Webhook: "http://127.0.0.1:1/hook"}}
	tests := []struct {
		name  string
		setup func(*harness, *spec.Spec)
		want  []string
	}{
		{"succeeded", func(*harness, *spec.Spec) {}, []string{"started", "succeeded"}},
		{"rolled back", func(h *harness, _ *spec.Spec) { h.failAt, h.failAfter = 1, 10*time.Second },
			[]string{"started", "failed", "rolled_back"}},
		{"rollback failed", func(h *harness, _ *spec.Spec) { h.failAt, h.failAfter, h.verifyFails = 1, 10*time.Second, true },
			[]string{"started", "failed", "rollback_failed"}},
		{"rejected", func(h *harness, _ *spec.Spec) {
			h.prepareErr = temporal.NewNonRetryableApplicationError("image not found", "ImageNotFound", nil)
		}, []string{"rejected"}},
		{"paused twice, approval needed", func(h *harness, s *spec.Spec) {
			*s = gated(spec.OnTimeoutProceed)
			s.Notifications = hook
			for _, at := range []time.Duration{10 * time.Second, 2 * time.Minute} {
				h.env.RegisterDelayedCallback(func() { h.env.SignalWorkflow(api.SignalPause, api.ControlRequest{By: "alice"}) }, at)
				h.env.RegisterDelayedCallback(func() { h.env.SignalWorkflow(api.SignalResume, api.ControlRequest{By: "alice"}) }, at+time.Minute)
			}
		}, []string{"started", "paused", "paused", "approval_needed", "succeeded"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			s := testSpec(spec.Canary)
			s.Notifications = hook
			tt.setup(h, &s)
			res := h.run(s)
			var got, keys []string
			for _, e := range h.notified {
				got = append(got, e.Kind)
				keys = append(keys, e.Key)
				require.Equal(t, "rollout", e.Subject)
				require.Equal(t, s.Service, e.Name)
			}
			require.Equal(t, tt.want, got)
			require.Equal(t, string(res.Outcome), got[len(got)-1])
			seen := map[string]bool{}
			for _, k := range keys {
				require.False(t, seen[k], "key %s sent twice", k)
				seen[k] = true
			}
		})
	}
	t.Run("no targets, no activity", func(t *testing.T) {
		h := newHarness(t)
		res := h.run(testSpec(spec.Canary))
		require.Equal(t, api.OutcomeSucceeded, res.Outcome)
		require.Empty(t, h.notified)
	})
}

func TestSearchAttributesAndDetails(t *testing.T) {
	h := newHarness(t)
	var statuses []string
	var fixed map[string]bool
	h.env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		sa := args.Get(0).(temporal.SearchAttributes)
		if v, ok := sa.GetKeyword(api.SearchStatus); ok {
			statuses = append(statuses, v)
		}
		if v, ok := sa.GetKeyword(api.SearchService); ok {
			require.Equal(t, "hello", v)
			fixed = map[string]bool{}
			for _, k := range []temporal.SearchAttributeKeyKeyword{api.SearchStrategy, api.SearchPlatform, api.SearchImage, api.SearchEnvironment} {
				_, fixed[k.GetName()] = sa.GetKeyword(k)
			}
		}
	}).Return(nil)
	var details []string
	query := func(at time.Duration) {
		h.env.RegisterDelayedCallback(func() {
			v, err := h.env.QueryWorkflow("__temporal_workflow_metadata")
			require.NoError(t, err)
			var md sdkapi.WorkflowMetadata
			require.NoError(t, v.Get(&md))
			details = append(details, md.GetCurrentDetails())
		}, at)
	}
	query(30 * time.Second)
	h.env.RegisterDelayedCallback(func() { h.env.SignalWorkflow(api.SignalPause, api.ControlRequest{By: "alice"}) }, 90*time.Second)
	query(2 * time.Minute)
	h.env.RegisterDelayedCallback(func() { h.env.SignalWorkflow(api.SignalResume, api.ControlRequest{By: "alice"}) }, 3*time.Minute)
	s := testSpec(spec.Canary)
	s.Service, s.Environment = "hello", "prod"
	res := h.run(s)
	require.Equal(t, api.OutcomeSucceeded, res.Outcome)
	require.Equal(t, map[string]bool{"StagecraftStrategy": true, "StagecraftPlatform": true, "StagecraftImage": true, "StagecraftEnvironment": true}, fixed)
	require.Equal(t, "pending", statuses[0])
	require.Equal(t, "succeeded", statuses[len(statuses)-1])
	require.Contains(t, statuses, "validating")
	require.Contains(t, statuses, "paused")
	t.Logf("statuses: %v", statuses)
	t.Logf("details: %q", details)
	require.Len(t, details, 2)
	require.Regexp(t, `^canary 25% \(stage 1/3\): validating, bake ends \d\d:\d\d:\d\d UTC$`, details[0])
	require.Equal(t, "canary 25% (stage 1/3): paused, 3m30s of bake left", details[1])
}

// TestPromoteWhileGateOpenApprovesIt: a promote accepted while the 100%
// gate waits approves it, recorded as the promoter's approval, and the
// rollout goes on at once (it once waited for the approval timeout and
// rolled back: review finding 2).
func TestPromoteWhileGateOpenApprovesIt(t *testing.T) {
	h := newHarness(t)
	var promoted api.Status
	var promoteErr error
	h.env.RegisterDelayedCallback(func() {
		h.env.UpdateWorkflow(api.UpdatePromote, "p1", &updateCallback{done: func(st api.Status, err error) { promoted, promoteErr = st, err }},
			api.ControlRequest{By: "dave", Reason: "ship it"})
	}, 10*time.Minute)
	res := h.run(gated(spec.OnTimeoutAbort))
	require.NoError(t, promoteErr)
	require.True(t, promoted.Promoted)
	require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
	require.Len(t, res.Approvals, 1)
	a := res.Approvals[0]
	require.False(t, a.TimedOut)
	require.Equal(t, "dave", a.ApprovedBy)
	require.Equal(t, "ship it", a.Reason)
	require.Equal(t, api.SignalPromote, a.Via)
	require.NotNil(t, a.ApprovedAt)
	require.Equal(t, 8*time.Minute, a.ApprovedAt.Sub(a.RequestedAt))
	// The 100% stage converged at the promote, not after the hour.
	last := h.converges[len(h.converges)-2]
	require.Equal(t, 10*time.Minute, last.At.Sub(h.converges[0].At))
}

// TestPauseDuringGateHoldsApprovedStage: a pause taken while the gate
// waits holds the stage once it is approved: nothing converges until the
// resume (the 100% converge once ran at the approve, paused: review
// finding 11).
func TestPauseDuringGateHoldsApprovedStage(t *testing.T) {
	h := newHarness(t)
	var during api.Status
	h.env.RegisterDelayedCallback(func() { h.env.SignalWorkflow(api.SignalPause, api.ControlRequest{By: "alice"}) }, 5*time.Minute)
	h.env.RegisterDelayedCallback(func() { h.env.SignalWorkflow(api.SignalApprove, api.ControlRequest{By: "carol"}) }, 6*time.Minute)
	h.env.RegisterDelayedCallback(func() {
		v, err := h.env.QueryWorkflow(api.QueryStatus)
		require.NoError(t, err)
		require.NoError(t, v.Get(&during))
	}, 7*time.Minute)
	h.env.RegisterDelayedCallback(func() { h.env.SignalWorkflow(api.SignalResume, api.ControlRequest{By: "alice"}) }, 30*time.Minute)
	res := h.run(gated(spec.OnTimeoutAbort))
	require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
	require.True(t, during.Paused)
	require.Equal(t, api.StagePending, during.Stages[2].Status, "the approved stage waits for the resume")
	require.Len(t, h.converges, 4)
	require.Equal(t, 30*time.Minute, h.converges[2].At.Sub(h.converges[0].At), "100%% converged at the resume")
	require.Equal(t, "carol", res.Approvals[0].ApprovedBy)
}
