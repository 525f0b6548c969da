package api

import (
	"time"

	"github.com/stagecraft/stagecraft/internal/plan"
)

// PreviewWorkflow is the workflow type that plans a rollout without
// changing anything (`starter plan`, client.Plan): it reads the live target
// through the worker's activities, under the worker's credentials and
// policies, and returns a Preview. It runs under its own ID
// ("plan:<target>:<nonce>"), so it never holds the target.
const PreviewWorkflow = "PreviewRollout"

// Preview is what a rollout of a spec would do if it started now.
type Preview struct {
	// Workflow and WorkflowID are the rollout's type and ID.
	Workflow   string `json:"workflow"`
	WorkflowID string `json:"workflowId"`
	Target     string `json:"target"`
	Strategy   string `json:"strategy"`
	Image      string `json:"image"`
	// Snapshot is what runs now: what the rollout would snapshot, and
	// what a rollback would restore.
	Snapshot PreviewSnapshot `json:"snapshot"`
	// Stages are the planned stages, each a desired state, in order; Final
	// is what the target converges to after the last one.
	Stages []PreviewStage `json:"stages,omitempty"`
	Final  *plan.Desired  `json:"final,omitempty"`
	// FinalChanges and RollbackChanges say in words what the final state
	// and a rollback to the snapshot would write on the platform.
	FinalChanges    []string `json:"finalChanges,omitempty"`
	RollbackChanges []string `json:"rollbackChanges,omitempty"`
	// MinDuration is the least the rollout takes: the sum of its bakes
	// (approval gates and minSamples may add to it).
	MinDuration time.Duration `json:"minDuration"`
	// Gates counts the stages that wait for an operator's approval.
	Gates int `json:"gates,omitempty"`
	// Checks are the prerequisites, each with its verdict; a failed one
	// means the rollout would be rejected before any change.
	Checks []PreviewCheck `json:"checks"`
	// Ready: no check failed; the rollout would start.
	Ready bool `json:"ready"`
}

// PreviewSnapshot is the target as it runs now.
type PreviewSnapshot struct {
	Count  int      `json:"count"`
	Images []string `json:"images,omitempty"`
	// FreshInstall: nothing runs; a rollback removes everything.
	FreshInstall bool `json:"freshInstall"`
}

// PreviewStage is one planned stage and whether it waits for approval.
type PreviewStage struct {
	plan.Stage
	Kind plan.Kind `json:"kind"`
	Gate bool      `json:"gate,omitempty"`
	// Changes say in words what the stage's converge writes on the
	// platform: objects created, scaled, updated or deleted, traffic moved.
	Changes []string `json:"changes,omitempty"`
}

// Verdicts of a preview's checks.
const (
	CheckOK      = "ok"
	CheckWarning = "warning"
	CheckFailed  = "failed"
)

// PreviewCheck is one prerequisite of a rollout and what was found.
type PreviewCheck struct {
	Name    string `json:"name"`
	Verdict string `json:"verdict"`
	Message string `json:"message,omitempty"`
}

// PreviewReleaseWorkflow plans a release without changing anything: each
// service's rollout is planned as PreviewWorkflow plans one, wave by wave.
const PreviewReleaseWorkflow = "PreviewRelease"

// ReleasePreview is what a release would do if it started now: its waves
// (the release's stages, in order), each service's plan within them.
type ReleasePreview struct {
	WorkflowID  string `json:"workflowId"`
	Name        string `json:"name"`
	Environment string `json:"environment"`
	// Problems are the release's own validation problems; when there are
	// any, nothing was read and no wave is planned.
	Problems []string `json:"problems,omitempty"`
	// Prerequisites are what the release's own preflight found (each
	// service's platform, image, requirements on versions running outside
	// the release, capacity): any of them rejects the release.
	Prerequisites []string      `json:"prerequisites,omitempty"`
	Waves         []PreviewWave `json:"waves,omitempty"`
	// Ready: no problem, and every service's rollout would start.
	Ready bool `json:"ready"`
}

// PreviewWave is one stage of a release: its services, started together
// (parallel) or one by one (sequential).
type PreviewWave struct {
	Name     string           `json:"name,omitempty"`
	Mode     string           `json:"mode"`
	Services []ServicePreview `json:"services"`
}

// ServicePreview is one service's planned rollout in a release.
type ServicePreview struct {
	Name      string   `json:"name"`
	DependsOn []string `json:"dependsOn,omitempty"`
	Preview   Preview  `json:"preview"`
}
