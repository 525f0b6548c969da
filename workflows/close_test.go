package workflows

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// A rollout that rolls back closes as Failed: an application error of the
// outcome's type, whose message says in one line what happened (outcome,
// stage, cause) and whose details carry the whole result.
func TestRolledBackRolloutClosesFailed(t *testing.T) {
	h := newHarness(t)
	h.failAt, h.failAfter = 1, 45*time.Second
	res := h.run(testSpec(spec.Canary))
	require.Equal(t, api.OutcomeRolledBack, res.Outcome)
	var app *temporal.ApplicationError
	require.ErrorAs(t, h.env.GetWorkflowError(), &app)
	require.Equal(t, api.ErrTypeRolledBack, app.Type())
	require.True(t, app.NonRetryable())
	want := fmt.Sprintf("rolled_back at %s (stage 2/%d), cause health: %s", res.Stages[1].Name, len(res.Stages), res.Error)
	require.Equal(t, want, app.Message())
	var carried api.Result
	require.True(t, api.ResultOf(h.env.GetWorkflowError(), &carried))
	require.Equal(t, res, carried)
}

// Each outcome has its own type; a success closes Completed.
func TestEveryOutcomeClosesByItsKind(t *testing.T) {
	h := newHarness(t)
	res := h.run(testSpec(spec.Rolling))
	require.Equal(t, api.OutcomeSucceeded, res.Outcome)
	require.NoError(t, h.env.GetWorkflowError())

	h = newHarness(t)
	bad := testSpec(spec.Rolling)
	bad.Image = ""
	res = h.run(bad)
	require.Equal(t, api.OutcomeRejected, res.Outcome)
	var app *temporal.ApplicationError
	require.ErrorAs(t, h.env.GetWorkflowError(), &app)
	require.Equal(t, api.ErrTypeRejected, app.Type())
	require.Equal(t, "rejected: "+res.Error, app.Message())

	h = newHarness(t)
	h.failAt, h.failAfter, h.verifyFails = 0, 10*time.Second, true
	res = h.run(testSpec(spec.Rolling))
	require.Equal(t, api.OutcomeRollbackFailed, res.Outcome)
	require.ErrorAs(t, h.env.GetWorkflowError(), &app)
	require.Equal(t, api.ErrTypeRollbackFailed, app.Type())
}

// Runs recorded before failedCloseVersion close Completed whatever their
// outcome, as they did.
func TestRunsBeforeTheFailedCloseCloseCompleted(t *testing.T) {
	h := newHarness(t)
	h.env.OnGetVersion(failedCloseVersion, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
	h.failAt, h.failAfter = 0, 10*time.Second
	h.execute(api.RollingWorkflow, testSpec(spec.Rolling))
	require.NoError(t, h.env.GetWorkflowError())
	var res api.Result
	require.NoError(t, h.env.GetWorkflowResult(&res))
	require.Equal(t, api.OutcomeRolledBack, res.Outcome)
}

// ResultOf reads only Stagecraft's outcome failures.
func TestResultOfOtherFailures(t *testing.T) {
	var res api.Result
	require.False(t, api.ResultOf(errors.New("terminated"), &res))
	require.False(t, api.ResultOf(temporal.NewApplicationError("boom", "Other", api.Result{Outcome: api.OutcomeRolledBack}), &res))
	require.True(t, api.ResultOf(temporal.NewApplicationError("x", api.ErrTypeRolledBack, api.Result{Outcome: api.OutcomeRolledBack}), &res))
	require.Equal(t, api.OutcomeRolledBack, res.Outcome)
}
