package platform

import (
	"errors"
	"fmt"
	"time"
)

// ErrTypeHeld is the error type of a rollout refused because its target is
// held: an earlier rollout's rollback failed and nobody has cleared it.
const ErrTypeHeld = "TargetHeld"

// Hold marks a target whose rollback failed: it may run mixed or broken
// versions, so a new rollout would snapshot that state as its baseline and
// "restore" it on failure. Every platform keeps it as an object of its own
// beside the target (never anything that runs), so it outlives the rollout
// that wrote it, the worker and any container churn, until an operator
// clears it.
type Hold struct {
	// Target is the target's key (docker:hello, k8s:prod/payment).
	Target string `json:"target"`
	// WorkflowID and RunID name the rollout whose rollback failed.
	WorkflowID string `json:"workflowId"`
	RunID      string `json:"runId"`
	// At is when the rollout ended.
	At time.Time `json:"at"`
	// Reason is the rollout's error: why it rolled back and why that failed.
	Reason string `json:"reason"`
}

// ErrHeld is wrapped by HeldError.
var ErrHeld = errors.New("target held")

// HeldError says a target is held by a failed rollback.
type HeldError struct{ Hold Hold }

func (e *HeldError) Error() string {
	h := e.Hold
	return fmt.Sprintf("target %s is held: rollout %s (run %s) ended rollback_failed at %s (%s); "+
		"what runs may be mixed or broken, so no rollout takes it as its baseline until an operator "+
		"has looked and cleared it: starter clear %s --reason \"...\"",
		h.Target, h.WorkflowID, h.RunID, h.At.UTC().Format(time.RFC3339), h.Reason, h.Target)
}

func (e *HeldError) Unwrap() error { return ErrHeld }

// Labels and annotations of a hold marker, on either platform.
const (
	LabelHold         = "stagecraft.hold"
	LabelHoldWorkflow = "stagecraft.hold.workflow"
	LabelHoldRun      = "stagecraft.hold.run"
	LabelHoldAt       = "stagecraft.hold.at"
	LabelHoldReason   = "stagecraft.hold.reason"
)

// Metadata returns h as marker labels or annotations.
func (h Hold) Metadata() map[string]string {
	return map[string]string{
		LabelHold:         h.Target,
		LabelHoldWorkflow: h.WorkflowID,
		LabelHoldRun:      h.RunID,
		LabelHoldAt:       h.At.UTC().Format(time.RFC3339Nano),
		LabelHoldReason:   h.Reason,
	}
}

// HoldFrom reads a hold from a marker's labels or annotations.
func HoldFrom(m map[string]string) Hold {
	at, _ := time.Parse(time.RFC3339Nano, m[LabelHoldAt])
	return Hold{Target: m[LabelHold], WorkflowID: m[LabelHoldWorkflow], RunID: m[LabelHoldRun], At: at, Reason: m[LabelHoldReason]}
}
