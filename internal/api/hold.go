package api

import (
	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// ClearHoldWorkflow is the workflow that clears a target's hold. It runs
// under the target's rollout workflow ID, so it never runs beside a rollout
// of that target.
const ClearHoldWorkflow = "ClearHold"

// ClearHoldRequest asks to clear a target's hold: who and why, recorded in
// the audit trail.
type ClearHoldRequest struct {
	// Spec names the target; only its platform and target fields matter.
	Spec   spec.Spec `json:"spec"`
	Reason string    `json:"reason"`
	By     string    `json:"by"`
}

// ClearHoldResult says which hold was cleared; Cleared is nil when the
// target had none.
type ClearHoldResult struct {
	Target  string         `json:"target"`
	Cleared *platform.Hold `json:"cleared,omitempty"`
	By      string         `json:"by"`
	Reason  string         `json:"reason"`
}

// KindHandoff is the audit event that says the rest of the trail was
// handed to another workflow: To names it, Reason says why and how much.
const KindHandoff = "trail_handed_off"
