package api

import (
	"encoding/json"
	"testing"
)

// Every phase and outcome a rollout or release reports maps to the
// lifecycle name its stages use.
func TestPlanState(t *testing.T) {
	phases := map[Phase]StageStatus{
		PhasePending:          StagePending,
		PhaseSnapshot:         StageInProgress,
		PhaseDeploying:        StageInProgress,
		PhaseValidating:       StageValidating,
		PhasePaused:           StageInProgress,
		PhaseAwaitingApproval: StageInProgress,
		PhaseKeepingBlue:      StageValidating,
		PhaseAwaitingRelease:  StageValidating,
		PhaseFinalizing:       StageInProgress,
		PhaseRollingBack:      StageFailed,
		PhaseVerifying:        StageFailed,
		PhaseDone:             StageInProgress,
		ReleasePrerequisites:  StageInProgress,
		ReleaseActivating:     StageInProgress,
		ReleaseIntegrating:    StageValidating,
		ReleaseReadiness:      StageValidating,
		ReleaseCommitting:     StageInProgress,
	}
	outcomes := map[Outcome]StageStatus{
		OutcomeSucceeded:      StageCompleted,
		OutcomeRolledBack:     StageRolledBack,
		OutcomeRollbackFailed: StageFailed,
		OutcomeRejected:       StageFailed,
	}
	for phase, want := range phases {
		t.Run(string(phase), func(t *testing.T) {
			if got := PlanState(phase, ""); got != want {
				t.Errorf("PlanState(%q, no outcome) = %s, want %s", phase, got, want)
			}
			// An outcome decides, whatever the phase.
			for o, want := range outcomes {
				if got := PlanState(phase, o); got != want {
					t.Errorf("PlanState(%q, %q) = %s, want %s", phase, o, got, want)
				}
			}
		})
	}
}

// A paused rollout keeps its current stage's state.
func TestStatusPlanStatePaused(t *testing.T) {
	for _, tc := range []struct {
		stage StageStatus
		want  StageStatus
	}{{StageValidating, StageValidating}, {StageInProgress, StageInProgress}} {
		st := Status{Phase: PhasePaused, Stages: []StageRecord{{Status: StageCompleted}, {Status: tc.stage}}, CurrentStage: 1}
		if got := st.PlanState(); got != tc.want {
			t.Errorf("paused in a %s stage: state %s, want %s", tc.stage, got, tc.want)
		}
	}
}

// The state travels with every encoded status, and a status encoded before
// it existed gets it when decoded.
func TestStatusJSONCarriesState(t *testing.T) {
	b, err := json.Marshal(Status{Phase: PhaseDone, Outcome: OutcomeRolledBack})
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(b, &fields); err != nil {
		t.Fatal(err)
	}
	if fields["state"] != "ROLLED_BACK" {
		t.Errorf("encoded status has state %v, want ROLLED_BACK: %s", fields["state"], b)
	}
	var st Status
	if err := json.Unmarshal([]byte(`{"phase":"validating","runId":"r1"}`), &st); err != nil {
		t.Fatal(err)
	}
	if st.State != StageValidating || st.RunID != "r1" {
		t.Errorf("decoded an old status as %+v, want state VALIDATING and run r1", st)
	}
}
