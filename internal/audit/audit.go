// Package audit defines a rollout's audit trail as records: the plan, its
// stages, every transition and control action, and every health round. The
// workflow and the watcher hand them to the store (internal/store) in
// batches; every record carries the key that makes writing it idempotent.
package audit

import (
	"encoding/json"
	"time"

	"github.com/stagecraft/stagecraft/internal/health"
)

// Plan is one rollout run: what it deploys and how it ended. Keyed by
// workflow ID and run ID; a later write of the same run updates it.
type Plan struct {
	WorkflowID  string `json:"workflowId"`
	RunID       string `json:"runId"`
	ExecutionID string `json:"executionId,omitempty"`
	RequestID   string `json:"requestId"`
	Service     string `json:"service"`
	Platform    string `json:"platform"`
	Strategy    string `json:"strategy"`
	// Target is the platform target ("docker:hello", "k8s:prod/payment").
	Target    string `json:"target"`
	ImageFrom string `json:"imageFrom,omitempty"`
	ImageTo   string `json:"imageTo"`
	// Status is the phase while running, then the outcome.
	Status      string     `json:"status"`
	Success     bool       `json:"success"`
	RolledBack  bool       `json:"rolledBack"`
	Error       string     `json:"error,omitempty"`
	Stages      int        `json:"stages"`
	CreatedAt   time.Time  `json:"createdAt"`
	StartedAt   *time.Time `json:"startedAt,omitempty"`
	CompletedAt *time.Time `json:"completedAt,omitempty"`
	// State is the run's lifecycle state in its stages' names (PENDING,
	// IN_PROGRESS, VALIDATING, COMPLETED, FAILED, ROLLED_BACK; see
	// api.PlanState). The store derives it from Status when a writer leaves
	// it empty.
	State string `json:"state,omitempty"`
	// Spec is the spec the run ran, as JSON, normalized by the workflow
	// (defaults applied, secret references unresolved). A writer may send
	// it once: a write without it keeps the one stored.
	Spec json.RawMessage `json:"spec,omitempty"`
	// StartedBy is who started the run (api.MemoStartedBy): for a release's
	// rollout, who started the release with its ID, or the release's ID
	// alone; a write without it keeps the one stored.
	StartedBy string `json:"startedBy,omitempty"`
	// UndoOf is the run ID of the earlier revision this run restores (an
	// undo, api.MemoUndo), else empty; a write without it keeps the one
	// stored.
	UndoOf string `json:"undoOf,omitempty"`
}

// Stage is one stage's plan and state. Keyed by run and index; a later
// write updates it.
type Stage struct {
	Index            int           `json:"index"`
	Name             string        `json:"name"`
	Strategy         string        `json:"strategy"`
	Percent          int           `json:"percent"`
	TargetNew        int           `json:"targetNew"`
	TargetTotal      int           `json:"targetTotal"`
	Status           string        `json:"status"`
	ChecksPassed     int           `json:"checksPassed"`
	ChecksFailed     int           `json:"checksFailed"`
	Rounds           health.Counts `json:"rounds"`
	InstancesUpdated int           `json:"instancesUpdated"`
	InstancesTotal   int           `json:"instancesTotal"`
	Error            string        `json:"error,omitempty"`
	StartedAt        *time.Time    `json:"startedAt,omitempty"`
	CompletedAt      *time.Time    `json:"completedAt,omitempty"`
}

// Event kinds.
const (
	KindPhase   = "phase"   // the rollout's phase changed
	KindStage   = "stage"   // a stage's status changed
	KindControl = "control" // a control action, accepted or rejected
	KindOutcome = "outcome" // the rollout ended
	KindService = "service" // a release's service changed state (Action names it)
	// KindDropped: health rounds of a stage (Action names it) were not
	// kept while the store was down; To holds how many, Reason says so in
	// words. The trail says rounds are missing rather than silently
	// lacking them.
	KindDropped = "rounds_dropped"
)

// Event is one transition or control action. Keyed by run and Seq, which
// counts from 1 in the order the workflow saw them: written once.
type Event struct {
	Seq    int64     `json:"seq"`
	At     time.Time `json:"at"`
	Kind   string    `json:"kind"`
	Stage  *int      `json:"stage,omitempty"`
	Action string    `json:"action,omitempty"`
	From   string    `json:"from,omitempty"`
	To     string    `json:"to,omitempty"`
	Via    string    `json:"via,omitempty"`
	By     string    `json:"by,omitempty"`
	Reason string    `json:"reason,omitempty"`
	// Accepted is false for a rejected control action.
	Accepted bool   `json:"accepted"`
	Error    string `json:"error,omitempty"`
}

// Round is one health round with its (bounded) evidence. Keyed by run, the
// watcher's activity ID and Seq: written once.
type Round struct {
	ActivityID string          `json:"activityId"`
	Seq        int             `json:"seq"`
	Stage      string          `json:"stage"`
	Which      string          `json:"which"`
	At         time.Time       `json:"at"`
	Verdict    health.Verdict  `json:"verdict"`
	Results    []health.Result `json:"results"`
	// Dropped counts rounds of the same watch just before this one that
	// could not be kept while the store was down (their buffer is bounded
	// by bytes); the workflow records them as a KindDropped event. A round
	// with a count and no Results is only that note: its own rows were
	// written already.
	Dropped int `json:"dropped,omitempty"`
}

// Note reports whether the round is only a note of dropped rounds, with no
// evidence of its own to write.
func (r Round) Note() bool { return len(r.Results) == 0 && r.Dropped > 0 }

// Batch is one write of a run's records, in the order they happened.
type Batch struct {
	WorkflowID string  `json:"workflowId"`
	RunID      string  `json:"runId"`
	Plan       *Plan   `json:"plan,omitempty"`
	Stages     []Stage `json:"stages,omitempty"`
	Events     []Event `json:"events,omitempty"`
	Rounds     []Round `json:"rounds,omitempty"`
}

// Empty reports whether the batch holds nothing to write.
func (b Batch) Empty() bool {
	return b.Plan == nil && len(b.Stages) == 0 && len(b.Events) == 0 && len(b.Rounds) == 0
}

// Summary is one row of a rollout list.
type Summary struct {
	Plan
	Events int `json:"events"`
}

// Trail is a rollout's whole audit trail as the store holds it.
type Trail struct {
	Plan   Plan    `json:"plan"`
	Stages []Stage `json:"stages"`
	Events []Event `json:"events"`
	// Rounds counts the recorded rounds by verdict; RoundsByStage per stage name.
	Rounds        health.Counts            `json:"rounds"`
	RoundsByStage map[string]health.Counts `json:"roundsByStage"`
	// Checks counts recorded check results.
	Checks int `json:"checks"`
}
