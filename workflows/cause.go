package workflows

import (
	"errors"

	"go.temporal.io/sdk/temporal"

	"github.com/stagecraft/stagecraft/internal/api"
)

// cause is what made a rollout roll back: a bounded value, the metrics'
// cause label (MetricRollbacks). It travels with the failure as a typed
// value (causedBy), never read back out of the reason's text.
type cause string

// Rollback causes.
const (
	causeHealth          cause = "health"           // a health verdict or the health watch failed
	causeApprovalTimeout cause = "approval_timeout" // nobody approved a gate in time (onTimeout: abort)
	causeAbort           cause = "abort"            // an operator aborted
	causeTimeout         cause = "timeout"          // the rollout's timeout aborted it
	causeCancelled       cause = "cancelled"        // the workflow was cancelled
	causeError           cause = "error"            // anything else: a platform call that failed for good
)

// causedError is a stage's failure with its cause; its text is the
// failure's own, so records and results read as before.
type causedError struct {
	cause cause
	err   error
}

func (e causedError) Error() string { return e.err.Error() }
func (e causedError) Unwrap() error { return e.err }

// causedBy marks err as caused by c.
func causedBy(c cause, err error) error { return causedError{cause: c, err: err} }

// causeOf says what caused failure. An abort wins whatever the failure
// reads (an abort cancels what runs): the last abort control says whether
// an operator or the rollout timeout asked for it.
func (r *rollout) causeOf(failure error) cause {
	var (
		caused  causedError
		timeout *temporal.TimeoutError
	)
	switch {
	case r.aborted && r.abortVia == "timeout":
		return causeTimeout
	case r.aborted && r.abortVia != "":
		return causeAbort
	case r.aborted:
		for i := len(r.st.Controls) - 1; i >= 0; i-- {
			if c := r.st.Controls[i]; c.Action == api.SignalAbort && c.Via == "timeout" {
				return causeTimeout
			} else if c.Action == api.SignalAbort {
				break
			}
		}
		return causeAbort
	case errors.As(failure, &caused):
		return caused.cause
	case errors.As(failure, &timeout):
		// A timeout's cause may be a cancellation the worker reported
		// after a lost heartbeat: the workflow was not cancelled.
		return causeError
	case temporal.IsCanceledError(failure):
		return causeCancelled
	}
	return causeError
}
