package api

import (
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
	StartedAt     time.Time       `json:"startedAt"`
	CompletedAt   *time.Time      `json:"completedAt,omitempty"`
	Outcome       Outcome         `json:"outcome,omitempty"`
	Error         string          `json:"error,omitempty"`
	Problems      []string        `json:"problems,omitempty"`
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
