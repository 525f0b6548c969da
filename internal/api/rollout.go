package api

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/stagecraft/stagecraft/internal/health"
	"github.com/stagecraft/stagecraft/internal/plan"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// RolloutInput is what a rollout workflow takes: the user's spec, and
// beside it the state a workflow sets for itself. Spec is embedded, so the
// JSON is the spec's own object with at most two more fields; a caller
// sends a plain spec, and any Temporal client may send its JSON.
type RolloutInput struct {
	spec.Spec
	// Release is set by a Release workflow on the rollouts it starts: the
	// release's workflow ID. Such a rollout, once its stages pass, reports
	// to the release and holds until the release commits or rolls it back.
	Release string `json:"release,omitempty"`
	// Resume is set by the rollout itself when it continues as new: the
	// state the next run takes over. Callers never set it.
	Resume json.RawMessage `json:"resume,omitempty"`
}

// RequestID identifies the request: the caller's execution ID, or else a
// hash of the input with its defaults applied (the state carried over a
// continue-as-new left out).
func (in RolloutInput) RequestID() string {
	if in.ExecutionID != "" {
		return in.ExecutionID
	}
	b, _ := json.Marshal(RolloutInput{Spec: in.WithDefaults(), Release: in.Release})
	sum := sha256.Sum256(b)
	return "spec-" + hex.EncodeToString(sum[:8])
}

// Outcome is how a rollout ended.
type Outcome string

// Outcomes.
const (
	OutcomeSucceeded      Outcome = "succeeded"
	OutcomeRolledBack     Outcome = "rolled_back"
	OutcomeRollbackFailed Outcome = "rollback_failed"
	OutcomeRejected       Outcome = "rejected"
)

// Phase is what a rollout is doing now.
type Phase string

// Phases.
const (
	PhasePending    Phase = "pending"
	PhaseSnapshot   Phase = "snapshot"
	PhaseDeploying  Phase = "deploying"
	PhaseValidating Phase = "validating"
	PhasePaused     Phase = "paused"
	// PhaseAwaitingApproval: the next stage waits for an operator's approve.
	PhaseAwaitingApproval Phase = "awaiting_approval"
	PhaseKeepingBlue      Phase = "keeping_blue"
	// PhaseAwaitingRelease: a release's rollout passed every stage and
	// waits for the release to commit or roll it back.
	PhaseAwaitingRelease Phase = "awaiting_release"
	PhaseFinalizing      Phase = "finalizing"
	PhaseRollingBack     Phase = "rolling_back"
	PhaseVerifying       Phase = "verifying_rollback"
	PhaseDone            Phase = "done"
)

// StageStatus follows the seed: PENDING → IN_PROGRESS → VALIDATING →
// COMPLETED, or FAILED → ROLLED_BACK.
type StageStatus string

// Stage statuses.
const (
	StagePending    StageStatus = "PENDING"
	StageInProgress StageStatus = "IN_PROGRESS"
	StageValidating StageStatus = "VALIDATING"
	StageCompleted  StageStatus = "COMPLETED"
	StageFailed     StageStatus = "FAILED"
	StageRolledBack StageStatus = "ROLLED_BACK"
)

// StageRecord is one stage's plan and what happened to it.
type StageRecord struct {
	plan.Stage
	Status       StageStatus `json:"status"`
	StartedAt    *time.Time  `json:"startedAt,omitempty"`
	CompletedAt  *time.Time  `json:"completedAt,omitempty"`
	ChecksPassed int         `json:"checksPassed"`
	ChecksFailed int         `json:"checksFailed"`
	// Rounds counts the stage's health rounds by verdict.
	Rounds           health.Counts `json:"rounds"`
	InstancesUpdated int           `json:"instancesUpdated"`
	InstancesTotal   int           `json:"instancesTotal"`
	Error            string        `json:"error,omitempty"`
}

// ControlRequest is the optional payload of a control signal or update.
type ControlRequest struct {
	Reason string `json:"reason,omitempty"`
	By     string `json:"by,omitempty"`
}

// ControlRecord is one control action as the workflow received it.
type ControlRecord struct {
	Action   string    `json:"action"`
	Via      string    `json:"via"` // signal | update | timeout | health
	Reason   string    `json:"reason,omitempty"`
	By       string    `json:"by,omitempty"`
	At       time.Time `json:"at"`
	Accepted bool      `json:"accepted"`
	Error    string    `json:"error,omitempty"`
}

// RollbackRecord says how the compensating rollback went.
type RollbackRecord struct {
	Reason      string        `json:"reason"`
	StartedAt   time.Time     `json:"startedAt"`
	CompletedAt *time.Time    `json:"completedAt,omitempty"`
	Verified    bool          `json:"verified"`
	Verify      *WatchSummary `json:"verify,omitempty"`
	Error       string        `json:"error,omitempty"`
	// Drift says where the restored target runs other bytes than the
	// snapshot recorded (platform.ConvergeResult.Drift).
	Drift []string `json:"drift,omitempty"`
	// Terminating names the new version's pods still terminating when the
	// target was restored (platform.ConvergeResult.Terminating): out of the
	// endpoints, so not serving, their grace period and preStop hooks
	// running on, never cut short.
	Terminating []string `json:"terminating,omitempty"`
}

// WatchSummary summarises the rounds of one watch: the rollback's
// verification in a result, and the live rounds of a running watcher (its
// heartbeat). It is the watch activity's result without the activity's own
// bookkeeping (the audit buffer and its retry marks), under the same JSON
// names.
type WatchSummary struct {
	// Healthy: the watch ended without the policy failing it.
	Healthy bool `json:"healthy"`
	// Paused: a degraded round ended it under onDegraded: pause.
	Paused bool `json:"paused,omitempty"`
	Rounds int  `json:"rounds"`
	// Passed counts rounds that counted as samples; Failed counts rounds
	// that counted toward the failure streak.
	Passed int          `json:"passed"`
	Failed int          `json:"failed"`
	Tally  health.Tally `json:"tally"`
	// LastFailure describes the latest round that was not healthy.
	LastFailure string        `json:"lastFailure,omitempty"`
	Latest      *health.Round `json:"latest,omitempty"`
	// Settled: a verify watch saw the restored version's first passing round.
	Settled     bool `json:"settled,omitempty"`
	SettleTries int  `json:"settleTries,omitempty"`
	// Lost counts rounds lost with the watcher's attempts (each counted as
	// a no-data round).
	Lost int `json:"lost,omitempty"`
	// Started is when the watch's first attempt began.
	Started time.Time `json:"started,omitzero"`
}

// Status is a rollout's state as the status query returns it; the final
// Status is the workflow's result.
type Status struct {
	WorkflowID  string `json:"workflowId"`
	RunID       string `json:"runId"`
	ExecutionID string `json:"executionId,omitempty"`
	RequestID   string `json:"requestId"`
	Service     string `json:"service"`
	Platform    string `json:"platform"`
	// Target names the platform target ("docker:hello", "k8s:prod/payment").
	Target    string `json:"target,omitempty"`
	Strategy  string `json:"strategy"`
	ImageFrom string `json:"imageFrom,omitempty"`
	ImageTo   string `json:"imageTo"`
	// FreshInstall is true when nothing ran before the rollout.
	FreshInstall bool  `json:"freshInstall"`
	Phase        Phase `json:"phase"`
	// StartedBy is who started the rollout (the memo's MemoStartedBy: the
	// starter's --by, else its user@host; for a release's rollout, that of
	// the release with its ID, or the release's ID); UndoOf, for an undo,
	// the run ID of the revision it restores. Both empty when the client
	// that started it said nothing.
	StartedBy string `json:"startedBy,omitempty"`
	UndoOf    string `json:"undoOf,omitempty"`
	// State is the rollout's own lifecycle state in its stages' names
	// (PENDING → IN_PROGRESS → VALIDATING → COMPLETED, or FAILED →
	// ROLLED_BACK), derived from Phase and Outcome whenever the status is
	// encoded or decoded (see PlanState).
	State        StageStatus `json:"state,omitempty"`
	Paused       bool        `json:"paused"`
	Promoted     bool        `json:"promoted,omitempty"`
	CurrentStage int         `json:"currentStage"`
	// BakeRemaining is the bake time left in the current stage; frozen while
	// paused.
	BakeRemaining time.Duration   `json:"bakeRemaining"`
	BakeEndsAt    *time.Time      `json:"bakeEndsAt,omitempty"`
	Stages        []StageRecord   `json:"stages"`
	Controls      []ControlRecord `json:"controls,omitempty"`
	// ControlsOmitted counts the oldest control records no longer in
	// Controls, which keeps the latest MaxControls; the audit trail has
	// them all.
	ControlsOmitted int `json:"controlsOmitted,omitempty"`
	// LatestRound is the latest health round a watch reported (bounded
	// evidence); live rounds are in the running watcher's heartbeat.
	LatestRound *health.Round   `json:"latestRound,omitempty"`
	Rollback    *RollbackRecord `json:"rollback,omitempty"`
	StartedAt   time.Time       `json:"startedAt"`
	CompletedAt *time.Time      `json:"completedAt,omitempty"`
	Outcome     Outcome         `json:"outcome,omitempty"`
	Error       string          `json:"error,omitempty"`
	// Problems lists every spec problem when the outcome is rejected.
	Problems []string `json:"problems,omitempty"`
	// Approvals lists the approval gates reached, the open one last.
	Approvals []ApprovalRecord `json:"approvals,omitempty"`
}

// ApprovalRecord is one approval gate: the stage that waits, until when,
// and who approved it and why (or that its timeout passed).
type ApprovalRecord struct {
	Stage       int       `json:"stage"`
	Name        string    `json:"name"`
	RequestedAt time.Time `json:"requestedAt"`
	Deadline    time.Time `json:"deadline"`
	// OnTimeout is abort or proceed.
	OnTimeout  string     `json:"onTimeout"`
	ApprovedBy string     `json:"approvedBy,omitempty"`
	Reason     string     `json:"reason,omitempty"`
	ApprovedAt *time.Time `json:"approvedAt,omitempty"`
	// Via is the action that approved the gate: approve, or promote
	// (which approves what is left).
	Via      string `json:"via,omitempty"`
	TimedOut bool   `json:"timedOut,omitempty"`
}

// Open reports whether the gate still waits.
func (a ApprovalRecord) Open() bool { return a.ApprovedAt == nil && !a.TimedOut }

// Result is a rollout's final status.
type Result = Status
