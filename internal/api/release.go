package api

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/stagecraft/stagecraft/internal/health"
	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// ServiceReady is what a rollout reports to its release.
type ServiceReady struct {
	WorkflowID string `json:"workflowId"`
	RunID      string `json:"runId"`
}

// Release phases and service states.
const (
	ReleaseValidating    = "validating"
	ReleasePrerequisites = "prerequisites"
	ReleaseActivating    = "activating"
	ReleaseIntegrating   = "integration_validation"
	ReleaseReadiness     = "production_readiness"
	ReleaseCommitting    = "committing"
	ReleaseRollingBack   = "rolling_back"
	ReleaseDone          = "done"

	ServicePending    = "pending"     // not started yet
	ServiceRunning    = "running"     // its rollout runs its stages
	ServiceReadyState = "ready"       // every stage passed; held for the release
	ServiceSucceeded  = "succeeded"   // committed and finalized
	ServiceFailed     = "failed"      // its rollout failed (and rolled itself back)
	ServiceRolledBack = "rolled_back" // rolled back by the release
	ServiceManual     = "needs_manual_intervention"
	ServiceNotStarted = "not_started" // the release stopped before it
)

// ServiceState is one service of a release as the status query shows it.
type ServiceState struct {
	Name       string   `json:"name"`
	DependsOn  []string `json:"dependsOn,omitempty"`
	Stage      int      `json:"stage"`
	Workflow   string   `json:"workflow"`
	WorkflowID string   `json:"workflowId"`
	RunID      string   `json:"runId,omitempty"`
	State      string   `json:"state"`
	Outcome    Outcome  `json:"outcome,omitempty"`
	Error      string   `json:"error,omitempty"`
}

// ReleaseStatus is a release's state; the final one is its result.
type ReleaseStatus struct {
	WorkflowID  string              `json:"workflowId"`
	RunID       string              `json:"runId,omitempty"`
	Name        string              `json:"name"`
	Environment string              `json:"environment"`
	Phase       string              `json:"phase"`
	Paused      bool                `json:"paused,omitempty"`
	Stage       int                 `json:"stage"`
	Stages      []spec.ReleaseStage `json:"stages"`
	Services    []ServiceState      `json:"services"`
	// StartedBy is who started the release (the starter's --by, else its
	// user@host: MemoStartedBy), when the client that started it said.
	StartedBy string `json:"startedBy,omitempty"`
	// Integration is the last round of the integration checks.
	Integration *health.Round `json:"integration,omitempty"`
	// Readiness is ready, ready_with_warnings or not_ready, with each
	// criterion's result.
	Readiness        string            `json:"readiness,omitempty"`
	ReadinessResults []ReadinessResult `json:"readinessResults,omitempty"`
	// Config is the configuration the release prepared, per service: the
	// ConfigMap it wrote, the ones the pods used before, and on rollback
	// whether it was removed. ConfigError says why restoring it failed.
	Config      []platform.ConfigResult `json:"config,omitempty"`
	ConfigError string                  `json:"configError,omitempty"`
	// RollbackOrder lists the services the release rolled back, in order.
	RollbackOrder []string        `json:"rollbackOrder,omitempty"`
	Controls      []ControlRecord `json:"controls,omitempty"`
	// ControlsOmitted: as a rollout's (Status).
	ControlsOmitted int        `json:"controlsOmitted,omitempty"`
	StartedAt       time.Time  `json:"startedAt"`
	CompletedAt     *time.Time `json:"completedAt,omitempty"`
	Outcome         Outcome    `json:"outcome,omitempty"`
	Error           string     `json:"error,omitempty"`
	Problems        []string   `json:"problems,omitempty"`
}

// Readiness verdicts.
const (
	Ready             = "ready"
	ReadyWithWarnings = "ready_with_warnings"
	NotReady          = "not_ready"
)

// ReadinessResult is one readiness criterion's result.
type ReadinessResult struct {
	Name     string         `json:"name"`
	Category string         `json:"category"`
	Severity string         `json:"severity"`
	Verdict  health.Verdict `json:"verdict"`
	Error    string         `json:"error,omitempty"`
}

// ReleaseInput is what the Release workflow takes: the release, as JSON
// the release's own object. Decoding it also notes the fields a caller
// may not set on a service's spec (deploy.release, deploy.resume: state
// only workflows set), which a spec no longer has, so the workflow
// refuses such a release, naming them, as it always did.
type ReleaseInput struct {
	spec.Release
	reserved []spec.FieldError
}

// Reserved lists the workflow-only fields the input set, as problems.
func (in ReleaseInput) Reserved() []spec.FieldError { return in.reserved }

// UnmarshalJSON decodes the release and notes its reserved fields.
func (in *ReleaseInput) UnmarshalJSON(b []byte) error {
	if err := json.Unmarshal(b, &in.Release); err != nil {
		return err
	}
	var probe struct {
		Services []struct {
			Deploy map[string]json.RawMessage `json:"deploy"`
		} `json:"services"`
	}
	in.reserved = nil
	if json.Unmarshal(b, &probe) != nil {
		return nil
	}
	for i, s := range probe.Services {
		f := fmt.Sprintf("services[%d].deploy", i)
		if _, ok := s.Deploy["resume"]; ok {
			in.reserved = append(in.reserved, spec.FieldError{Field: f + ".resume", Message: "is set by the rollout itself when it continues as new"})
		}
		if _, ok := s.Deploy["release"]; ok {
			in.reserved = append(in.reserved, spec.FieldError{Field: f + ".release", Message: "is set by the release itself"})
		}
	}
	return nil
}
