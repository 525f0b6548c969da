package workflows

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/stagecraft/stagecraft/activities"
	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// TestRollbackFailedHoldsTarget: a rollout whose rollback fails marks its
// target held (activities.Hold) with its workflow ID, run, time and reason,
// and its outcome says how to clear it; a rolled-back rollout holds nothing.
func TestRollbackFailedHoldsTarget(t *testing.T) {
	h := newHarness(t)
	h.failAt, h.failAfter, h.verifyFails = 1, time.Minute, true
	var holds []activities.HoldInput
	h.env.OnActivity(acts.Hold, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, in activities.HoldInput) error {
			holds = append(holds, in)
			return nil
		}).Maybe()
	s := testSpec(spec.Canary)
	res := h.run(s)
	require.Equal(t, api.OutcomeRollbackFailed, res.Outcome)
	require.Len(t, holds, 1, "a rollback_failed rollout holds its target")
	hold := holds[0].Hold
	require.Equal(t, s.TargetKey(), hold.Target)
	require.Equal(t, s.WorkflowID(), hold.WorkflowID)
	require.Equal(t, res.RunID, hold.RunID)
	require.False(t, hold.At.IsZero())
	require.Contains(t, hold.Reason, "still failing")
	require.Contains(t, res.Error, "target held until cleared (starter clear "+s.TargetKey()+")")

	h2 := newHarness(t)
	h2.failAt, h2.failAfter = 1, time.Minute
	h2.env.OnActivity(acts.Hold, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, in activities.HoldInput) error {
			t.Errorf("a rolled-back rollout held its target: %+v", in)
			return nil
		}).Maybe()
	require.Equal(t, api.OutcomeRolledBack, h2.run(testSpec(spec.Canary)).Outcome)
}

// TestHeldTargetIsRejected: a rollout whose Prepare finds its target held
// ends rejected, naming the failed rollout and how to clear it, and changes
// nothing.
func TestHeldTargetIsRejected(t *testing.T) {
	h := newHarness(t)
	s := testSpec(spec.Canary)
	herr := &platform.HeldError{Hold: platform.Hold{Target: s.TargetKey(), WorkflowID: s.WorkflowID(), RunID: "run-1",
		At: time.Date(2026, 12, 3, 6, 0, 0, 0, time.UTC), Reason: "stage 1 failed; rollback failed: restore snapshot: image gone"}}
	h.prepareErr = temporal.NewNonRetryableApplicationError(herr.Error(), platform.ErrTypeHeld, herr)
	res := h.run(s)
	require.Equal(t, api.OutcomeRejected, res.Outcome)
	require.Contains(t, res.Error, "is held: rollout "+s.WorkflowID()+" (run run-1) ended rollback_failed")
	require.Contains(t, res.Error, "starter clear "+s.TargetKey())
	require.Empty(t, h.converges, "nothing converged")
	require.Equal(t, 1, h.prepares, "refused at once, not retried")
}

// TestClearHold: ClearHold runs ClearHold under the target's ID and
// returns the hold it cleared; under any other ID, or without a reason, it
// is refused before anything is cleared.
func TestClearHold(t *testing.T) {
	s := testSpec(spec.Canary)
	held := &platform.Hold{Target: s.TargetKey(), WorkflowID: s.WorkflowID(), RunID: "run-1", Reason: "rollback failed"}
	run := func(t *testing.T, id string, req api.ClearHoldRequest) (api.ClearHoldResult, []activities.ClearInput, error) {
		env := (&testsuite.WorkflowTestSuite{}).NewTestWorkflowEnvironment()
		Register(env)
		env.RegisterActivity(acts)
		var calls []activities.ClearInput
		env.OnActivity(acts.ClearHold, mock.Anything, mock.Anything).Return(
			func(ctx context.Context, in activities.ClearInput) (activities.ClearResult, error) {
				calls = append(calls, in)
				return activities.ClearResult{Cleared: held}, nil
			}).Maybe()
		env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: id, TaskQueue: api.TaskQueue})
		env.ExecuteWorkflow(api.ClearHoldWorkflow, req)
		require.True(t, env.IsWorkflowCompleted())
		var res api.ClearHoldResult
		err := env.GetWorkflowError()
		if err == nil {
			require.NoError(t, env.GetWorkflowResult(&res))
		}
		// Refused or not, its status says it is done, and why not.
		v, qerr := env.QueryWorkflow(api.QueryStatus)
		require.NoError(t, qerr)
		var st api.Status
		require.NoError(t, v.Get(&st))
		require.Equal(t, api.PhaseDone, st.Phase, "%+v", st)
		require.NotNil(t, st.CompletedAt)
		if err != nil {
			require.NotEmpty(t, st.Error)
			require.Contains(t, err.Error(), st.Error)
		}
		return res, calls, err
	}
	res, calls, err := run(t, s.WorkflowID(), api.ClearHoldRequest{Spec: s, Reason: "restored by hand", By: "alice"})
	require.NoError(t, err)
	require.Equal(t, held, res.Cleared)
	require.Len(t, calls, 1)
	require.Equal(t, "alice", calls[0].By)
	require.Equal(t, "restored by hand", calls[0].Reason)

	_, calls, err = run(t, "clear-it", api.ClearHoldRequest{Spec: s, Reason: "x", By: "alice"})
	require.ErrorContains(t, err, "must run as \""+s.WorkflowID()+"\"")
	require.Empty(t, calls)

	_, calls, err = run(t, s.WorkflowID(), api.ClearHoldRequest{Spec: s, By: "alice"})
	require.ErrorContains(t, err, "a reason is required")
	require.Empty(t, calls)

	// Who clears it is kept as a control request's by is (byVersion),
	// whoever started the workflow: quoted and escaped.
	res, calls, err = run(t, s.WorkflowID(), api.ClearHoldRequest{Spec: s, Reason: "x", By: "mallory\ncleared by alice"})
	require.NoError(t, err)
	require.Len(t, calls, 1)
	require.Equal(t, `"mallory\ncleared by alice"`, calls[0].By)
	require.Equal(t, calls[0].By, res.By)

	// Why is kept as a control request's reason is (boundsVersion): cut.
	res, calls, err = run(t, s.WorkflowID(), api.ClearHoldRequest{Spec: s, Reason: strings.Repeat("why\n", 1<<19-64), By: "alice"})
	require.NoError(t, err)
	require.Len(t, calls, 1)
	require.LessOrEqual(t, len(calls[0].Reason), api.MaxReason)
	require.True(t, strings.HasSuffix(calls[0].Reason, "…"))
	require.Equal(t, calls[0].Reason, res.Reason)
	require.GreaterOrEqual(t, len(calls[0].Reason), api.MaxReason-len("…")-3, "cut near the bound, not to nothing")

	// A reason that is nothing once kept is no reason.
	for _, blank := range []string{"\x00\x00", " \n\t"} {
		_, calls, err = run(t, s.WorkflowID(), api.ClearHoldRequest{Spec: s, Reason: blank, By: "alice"})
		require.ErrorContains(t, err, "a reason is required", "%q", blank)
		require.Empty(t, calls)
	}
}
