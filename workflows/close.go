package workflows

import (
	"fmt"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/stagecraft/stagecraft/internal/api"
)

// failedCloseVersion: a rollout or release that ends rolled_back,
// rollback_failed or rejected closes as Failed, an application error of
// the outcome's type (api.ErrorType) carrying the result as its details.
// Runs recorded before it close Completed whatever their outcome.
const failedCloseVersion = "failed-close-20261203"

// closeAs is how a run with outcome o closes: Completed with res when it
// succeeded; Failed, with line as the failure's message and res as its
// details, when it did not.
func closeAs[T any](ctx workflow.Context, o api.Outcome, res T, line string) (T, error) {
	typ := api.ErrorType(o)
	if typ == "" || workflow.GetVersion(ctx, failedCloseVersion, workflow.DefaultVersion, 1) < 1 {
		return res, nil
	}
	return res, temporal.NewNonRetryableApplicationError(line, typ, nil, res)
}

// summary says in one line what happened to a finished rollout: its
// outcome, the stage it stopped at and why (the rollback's cause).
func (r *rollout) summary() string {
	st := &r.st
	if st.Outcome == api.OutcomeSucceeded {
		return fmt.Sprintf("succeeded: %s on %d stage(s)", st.ImageTo, len(st.Stages))
	}
	line := string(st.Outcome)
	if st.Rollback != nil && len(st.Stages) > 0 && st.CurrentStage < len(st.Stages) {
		line += fmt.Sprintf(" at %s (stage %d/%d)", st.Stages[st.CurrentStage].Name, st.CurrentStage+1, len(st.Stages))
	}
	if r.cause != "" {
		line += ", cause " + string(r.cause)
	}
	if st.Error != "" {
		line += ": " + st.Error
	}
	return line
}
