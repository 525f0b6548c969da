package api

import "encoding/json"

// A rollout's own state uses its stages' lifecycle names beside the richer
// phase and outcome, so a query written against stage states
// (`WHERE state = 'ROLLED_BACK'`) works for plans too. The mapping:
//
//	pending                                              PENDING
//	snapshot, deploying, awaiting_approval, finalizing   IN_PROGRESS
//	paused                                               the current stage's: VALIDATING when it validates, else IN_PROGRESS
//	validating, keeping_blue, awaiting_release           VALIDATING
//	rolling_back, verifying_rollback                     FAILED (rolling back)
//	outcome succeeded                                    COMPLETED
//	outcome rolled_back                                  ROLLED_BACK
//	outcome rollback_failed, rejected                    FAILED
//
// A release's phases map the same way (validating, integration_validation
// and production_readiness VALIDATING; rolling_back FAILED; the others
// IN_PROGRESS), and so does its outcome.

// PlanState is the lifecycle state of a rollout (or release) in phase with
// outcome (empty while it runs). An outcome decides it; a phase it does not
// know is IN_PROGRESS.
func PlanState(phase Phase, outcome Outcome) StageStatus {
	switch outcome {
	case OutcomeSucceeded:
		return StageCompleted
	case OutcomeRolledBack:
		return StageRolledBack
	case OutcomeRollbackFailed, OutcomeRejected:
		return StageFailed
	}
	switch phase {
	case PhasePending, "":
		return StagePending
	case PhaseValidating, PhaseKeepingBlue, PhaseAwaitingRelease, ReleaseIntegrating, ReleaseReadiness:
		return StageValidating
	case PhaseRollingBack, PhaseVerifying:
		return StageFailed
	}
	return StageInProgress
}

// PlanState is the status's lifecycle state (see PlanState): a paused
// rollout keeps its current stage's VALIDATING.
func (s Status) PlanState() StageStatus {
	if s.Phase == PhasePaused && s.Outcome == "" {
		if s.CurrentStage >= 0 && s.CurrentStage < len(s.Stages) && s.Stages[s.CurrentStage].Status == StageValidating {
			return StageValidating
		}
		return StageInProgress
	}
	return PlanState(s.Phase, s.Outcome)
}

// statusJSON is Status without its methods, for encoding.
type statusJSON Status

// MarshalJSON encodes the status with State derived from its phase and
// outcome, so every status the workflow hands out (query, update, result,
// continue-as-new) carries it without each place setting it.
func (s Status) MarshalJSON() ([]byte, error) {
	s.State = s.PlanState()
	return json.Marshal(statusJSON(s))
}

// UnmarshalJSON decodes a status; one recorded before State existed gets
// it derived.
func (s *Status) UnmarshalJSON(b []byte) error {
	var v statusJSON
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*s = Status(v)
	if s.State == "" {
		s.State = s.PlanState()
	}
	return nil
}

// Memo fields a start records for the rollout's history and undo.
const (
	// MemoStartedBy holds who started the rollout or release (the caller's
	// --by, or its user@host; a release passes "WHO (release:ENV/NAME)" to
	// its rollouts); the workflow keeps it in its status and audit plan row.
	MemoStartedBy = "startedBy"
	// MemoUndo holds an Undo when the rollout is an undo.
	MemoUndo = "undo"
)

// Undo says that a rollout restores an earlier revision of its target: the
// revision whose spec it runs, and the run that was current when the undo
// was asked for.
type Undo struct {
	// Revision is the restored revision's number as `starter revisions`
	// numbered it (its place among the target's runs, oldest 1); RunID
	// names it for good.
	Revision int    `json:"revision,omitempty"`
	RunID    string `json:"runId"`
	Image    string `json:"image,omitempty"`
	// From is the run ID of the revision that was current.
	From string `json:"from,omitempty"`
	// Reason is the caller's reason for the undo.
	Reason string `json:"reason,omitempty"`
}
