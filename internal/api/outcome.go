package api

import (
	"errors"

	"go.temporal.io/sdk/temporal"
)

// A rollout or release that does not succeed closes as Failed in Temporal
// (runs started before failed-close-20261203 close Completed), so every
// list, dashboard and `ExecutionStatus="Failed"` query shows it as the
// failure it is. The failure is an application error whose type names the
// outcome and whose details carry the full result (Status or
// ReleaseStatus), exactly what a Completed run returns: Result reads it
// from either.
const (
	ErrTypeRolledBack     = "StagecraftRolledBack"
	ErrTypeRollbackFailed = "StagecraftRollbackFailed"
	ErrTypeRejected       = "StagecraftRejected"
)

// ErrorType is the failure type a run with outcome o closes with, or ""
// when it closes Completed (succeeded, or no outcome yet).
func ErrorType(o Outcome) string {
	switch o {
	case OutcomeRolledBack:
		return ErrTypeRolledBack
	case OutcomeRollbackFailed:
		return ErrTypeRollbackFailed
	case OutcomeRejected:
		return ErrTypeRejected
	}
	return ""
}

// ResultOf decodes into v the result a failed run carries (err is what
// getting the run's result returned), and reports whether err was such a
// close: a rollout or release that ended rolled_back, rollback_failed or
// rejected. Any other error (a run that was terminated, timed out,
// cancelled, or failed for another reason) is not.
func ResultOf(err error, v any) bool {
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || !app.HasDetails() {
		return false
	}
	switch app.Type() {
	case ErrTypeRolledBack, ErrTypeRollbackFailed, ErrTypeRejected:
		return app.Details(v) == nil
	}
	return false
}
