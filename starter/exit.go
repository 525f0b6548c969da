package main

import (
	"fmt"

	"github.com/stagecraft/stagecraft/internal/api"
)

// Exit codes. Commands that follow a rollout or release to its end (watch,
// deploy --wait, release --wait) exit with its outcome's code.
const (
	exitOK             = 0
	exitFailure        = 1 // an error: unknown ID, refused action, no server...
	exitInvalid        = 2 // invalid input: a spec, a flag or an argument
	exitRolledBack     = 3
	exitRollbackFailed = 4
	exitRejected       = 5
)

// exitCodesHelp documents the exit codes in `starter --help`.
const exitCodesHelp = `Exit codes (watch, deploy --wait and release --wait exit with the outcome's):
  0  succeeded (or, for other commands, done)
  1  error: an unknown ID, a refused action, no Temporal server...
  2  invalid input: a spec, a flag or an argument
  3  rolled_back
  4  rollback_failed
  5  rejected (invalid spec, missing image or its registry out past the retries: nothing was changed)`

// exitError carries an exit code with the error that main prints.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

func (e *exitError) Unwrap() error { return e.err }

// outcomeCode maps an outcome to its exit code; an unknown or missing one is
// an error.
func outcomeCode(o api.Outcome) int {
	switch o {
	case api.OutcomeSucceeded:
		return exitOK
	case api.OutcomeRolledBack:
		return exitRolledBack
	case api.OutcomeRollbackFailed:
		return exitRollbackFailed
	case api.OutcomeRejected:
		return exitRejected
	}
	return exitFailure
}

// outcomeError is nil for a succeeded rollout or release (kind and id name
// it), and otherwise an error carrying the outcome's exit code.
func outcomeError(kind, id string, o api.Outcome, reason string) error {
	code := outcomeCode(o)
	if code == exitOK {
		return nil
	}
	if o == "" {
		o = "without an outcome"
	}
	msg := fmt.Sprintf("%s %s ended %s", kind, id, o)
	if reason != "" {
		msg += ": " + reason
	}
	return &exitError{code, fmt.Errorf("%s", msg)}
}
