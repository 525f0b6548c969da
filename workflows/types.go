package workflows

import (
	"time"

	"github.com/stagecraft/stagecraft/activities"
	"github.com/stagecraft/stagecraft/internal/health"
	"github.com/stagecraft/stagecraft/internal/plan"
)

// TaskQueue is the task queue Stagecraft's workers poll.
const TaskQueue = "stagecraft"

// Workflow type names, one per strategy, so a list of rollouts says what kind
// each is.
const (
	CanaryWorkflow    = "CanaryDeployment"
	BlueGreenWorkflow = "BlueGreenDeployment"
	RollingWorkflow   = "RollingDeployment"
	RecreateWorkflow  = "RecreateDeployment"
)

// Control, query and memo names.
const (
	SignalPause   = "pause"
	SignalResume  = "resume"
	SignalAbort   = "abort"
	SignalPromote = "promote"
	// SignalApprove lets a stage that waits for approval start.
	SignalApprove = "approve"
	// The updates carry the same names as the signals and behave the same,
	// but validate the transition first and return the new status.
	UpdatePause   = SignalPause
	UpdateResume  = SignalResume
	UpdateAbort   = SignalAbort
	UpdatePromote = SignalPromote
	UpdateApprove = SignalApprove

	QueryStatus = "status"

	// MemoRequestID holds the request's identity (caller's execution ID or
	// spec hash), compared when the same target is started again.
	MemoRequestID = "requestId"
	// MemoExecutionID holds the caller's execution ID, if any.
	MemoExecutionID = "executionId"
)

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
	Reason      string                  `json:"reason"`
	StartedAt   time.Time               `json:"startedAt"`
	CompletedAt *time.Time              `json:"completedAt,omitempty"`
	Verified    bool                    `json:"verified"`
	Verify      *activities.WatchResult `json:"verify,omitempty"`
	Error       string                  `json:"error,omitempty"`
	// Drift says where the restored target runs other bytes than the
	// snapshot recorded (platform.ConvergeResult.Drift).
	Drift []string `json:"drift,omitempty"`
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
	Paused       bool  `json:"paused"`
	Promoted     bool  `json:"promoted,omitempty"`
	CurrentStage int   `json:"currentStage"`
	// BakeRemaining is the bake time left in the current stage; frozen while
	// paused.
	BakeRemaining time.Duration   `json:"bakeRemaining"`
	BakeEndsAt    *time.Time      `json:"bakeEndsAt,omitempty"`
	Stages        []StageRecord   `json:"stages"`
	Controls      []ControlRecord `json:"controls,omitempty"`
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
