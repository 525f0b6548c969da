package platform

import (
	"errors"
	"fmt"
	"time"
)

// ErrTypeFenced is the error type of a converge attempt refused because a
// later attempt, stage or rollback has written its target since it started,
// or another owner holds the target's lease.
const ErrTypeFenced = "Fenced"

// Fence orders the writes of converge attempts on one target. Every attempt
// that may change a target carries one; the platform stores the highest it
// has seen beside the target (a marker object of its own, like a Hold) and
// refuses any destructive call whose fence is older, so an attempt that
// timed out on the Temporal server but still reaches the platform (a
// zombie) cannot undo what a later attempt, stage or rollback did.
type Fence struct {
	// Owner names the rollout that holds the target: the Temporal namespace
	// and the target's canonical workflow ID ("default/deploy:docker:hello").
	// Runs of one rollout chain (continue-as-new) share it.
	Owner string `json:"owner"`
	// Step orders attempts of one owner: the attempt's start time on the
	// Temporal server in Unix nanoseconds. A retry, a later stage and the
	// rollback all start later, so each has a larger Step than the one
	// before it.
	Step int64 `json:"step"`
	// Until is when the attempt's lease ends (its start-to-close deadline):
	// past it the attempt can no longer write, so another owner may take the
	// target.
	Until time.Time `json:"until"`
}

// Zero reports whether f is unset (tests and callers that do not fence).
func (f Fence) Zero() bool { return f.Owner == "" && f.Step == 0 }

// Admits reports whether an attempt carrying f may write a target whose
// stored fence is held, at now: the same owner at the same or a later step,
// or another owner once held's lease has ended.
func (f Fence) Admits(held Fence, now time.Time) bool {
	switch {
	case held.Zero() || f.Zero():
		return true
	case f.Owner == held.Owner:
		return f.Step >= held.Step
	default:
		return !now.Before(held.Until)
	}
}

// ErrFenced is wrapped by FencedError.
var ErrFenced = errors.New("fenced")

// FencedError says a converge attempt may not write its target: a later
// attempt of its rollout has, or another rollout holds the target.
type FencedError struct {
	Target string
	Mine   Fence
	Held   Fence
}

func (e *FencedError) Error() string {
	if e.Mine.Owner != e.Held.Owner {
		return fmt.Sprintf("target %s is held by %s until %s: %s may not change it",
			e.Target, e.Held.Owner, e.Held.Until.UTC().Format(time.RFC3339), e.Mine.Owner)
	}
	return fmt.Sprintf("target %s was written by a later converge attempt of %s (step %d after %d): this attempt timed out and may not change it",
		e.Target, e.Mine.Owner, e.Held.Step, e.Mine.Step)
}

func (e *FencedError) Unwrap() error { return ErrFenced }
