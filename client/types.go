package client

import (
	enumspb "go.temporal.io/api/enums/v1"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/control"
	"github.com/stagecraft/stagecraft/internal/health"
	"github.com/stagecraft/stagecraft/internal/plan"
	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// The request types live in an internal package, which other modules
// cannot import; these aliases are the same types under public names, so a
// value built here is the value the workflows receive.

// A rollout request.
type (
	// Spec is one rollout request: a service, the image to roll out, where
	// it runs, how to roll it out and how to tell whether it is healthy.
	Spec = spec.Spec
	// Platform holds exactly one platform's target.
	Platform = spec.Platform
	// Docker is a service made of containers on one Docker engine.
	Docker = spec.Docker
	// Kubernetes is an existing Deployment (and its Service).
	Kubernetes = spec.Kubernetes
	// Resources limits each container's CPU and memory.
	Resources = spec.Resources
	// Strategy says how the new version replaces the old.
	Strategy = spec.Strategy
	// Health configures the checks that validate every stage and the
	// rollback, and the policy that turns rounds into verdicts.
	Health = spec.Health
	// Check is one health check; exactly one kind is set.
	Check = spec.Check
	// HTTPCheck requests a URL and judges the answer.
	HTTPCheck = spec.HTTPCheck
	// JSONMatch compares a value in an HTTP check's JSON body.
	JSONMatch = spec.JSONMatch
	// StatusSet is a set of HTTP statuses and classes ("2xx").
	StatusSet = spec.StatusSet
	// TCPCheck connects to an address.
	TCPCheck = spec.TCPCheck
	// CommandCheck runs a command on the worker (allow-listed there).
	CommandCheck = spec.CommandCheck
	// PrometheusCheck compares a PromQL query's value with a threshold.
	PrometheusCheck = spec.PrometheusCheck
	// Baseline degrades a round when an HTTP check's latency percentile
	// exceeds a maximum.
	Baseline = spec.Baseline
	// Duration is a time.Duration written in JSON as a Go duration string
	// ("20s", "5m").
	Duration = spec.Duration
	// Approval gates stages behind an operator's approve.
	Approval = spec.Approval
	// Notification is one place told about a rollout's or release's events.
	Notification = spec.Notification
)

// A release of several services.
type (
	// Release is a multi-service release.
	Release = spec.Release
	// ReleaseService is one service of a release, with its rollout spec.
	ReleaseService = spec.ReleaseService
	// ReleaseStage is an explicit activation stage of a release.
	ReleaseStage = spec.ReleaseStage
	// ReleasePolicy holds the rules every service's spec must meet.
	ReleasePolicy = spec.ReleasePolicy
	// Profile overrides a release's configuration for one environment.
	Profile = spec.Profile
	// Integration is a set of cross-service checks.
	Integration = spec.Integration
	// Criterion is a production-readiness criterion.
	Criterion = spec.Criterion
	// Requirement is a version constraint on another service.
	Requirement = spec.Requirement
)

// Errors a caller may test for with errors.As.
type (
	// ValidationError lists every problem found in a spec or release, each
	// named by its field path; nothing was started.
	ValidationError = spec.ValidationError
	// FieldError is one problem with one field.
	FieldError = spec.FieldError
	// BusyError says the target already has an open rollout for another
	// request; it names that rollout.
	BusyError = control.BusyError
	// RefusedError is a workflow's refusal of a control that is illegal
	// now (resume when not paused, approve with no approval gate open),
	// with its reason.
	RefusedError = control.RefusedError
	// FinishedError says a control came after the rollout or release had
	// ended; it carries the outcome.
	FinishedError = control.FinishedError
	// NotFoundError says no rollout or release with the ID has run.
	NotFoundError = control.NotFoundError
)

// What a rollout reports.
type (
	// Status is a rollout's state as the status query returns it.
	Status = api.Status
	// Result is a rollout's final status.
	Result = api.Result
	// Phase is what a rollout is doing now.
	Phase = api.Phase
	// Outcome is how a rollout or release ended.
	Outcome = api.Outcome
	// StageRecord is one stage's plan and what happened to it.
	StageRecord = api.StageRecord
	// Stage is a stage's plan: its desired state and bake.
	Stage = plan.Stage
	// StageStatus is a stage's state.
	StageStatus = api.StageStatus
	// ControlRequest is the optional payload of a control: who and why.
	ControlRequest = api.ControlRequest
	// ControlRecord is one control action as the workflow received it.
	ControlRecord = api.ControlRecord
	// RollbackRecord says how the compensating rollback went.
	RollbackRecord = api.RollbackRecord
	// ApprovalRecord is one approval gate.
	ApprovalRecord = api.ApprovalRecord
	// Round is one round of health checks with its results.
	Round = health.Round
	// CheckResult is one check against one target.
	CheckResult = health.Result
	// Verdict is what a check result or a round says about the service.
	Verdict = health.Verdict
	// RoundCounts counts rounds by verdict.
	RoundCounts = health.Counts
	// WatchSummary summarises the rounds of one watch (the rollback's
	// verification, a running watcher's live rounds).
	WatchSummary = api.WatchSummary
)

// What a plan says (Client.Plan).
type (
	// Preview is what a rollout would do if it started now.
	Preview = api.Preview
	// PreviewStage is one planned stage and whether it waits for approval.
	PreviewStage = api.PreviewStage
	// PreviewSnapshot is the target as it runs now.
	PreviewSnapshot = api.PreviewSnapshot
	// PreviewCheck is one prerequisite and its verdict (ok, warning, failed).
	PreviewCheck = api.PreviewCheck
	// ReleasePreview is what a release would do, wave by wave.
	ReleasePreview = api.ReleasePreview
	// PreviewWave is one stage of a release's plan.
	PreviewWave = api.PreviewWave
	// ServicePreview is one service's planned rollout in a release.
	ServicePreview = api.ServicePreview
)

// What a release reports.
type (
	// ReleaseStatus is a release's state; the final one is its result.
	ReleaseStatus = api.ReleaseStatus
	// ServiceState is one service of a release.
	ServiceState = api.ServiceState
	// ReadinessResult is one readiness criterion's result.
	ReadinessResult = api.ReadinessResult
	// ConfigResult is the configuration a release prepared for a service.
	ConfigResult = platform.ConfigResult
)

// Strategy types.
const (
	Canary    = spec.Canary
	BlueGreen = spec.BlueGreen
	Rolling   = spec.Rolling
	Recreate  = spec.Recreate
)

// Outcomes.
const (
	OutcomeSucceeded      = api.OutcomeSucceeded
	OutcomeRolledBack     = api.OutcomeRolledBack
	OutcomeRollbackFailed = api.OutcomeRollbackFailed
	OutcomeRejected       = api.OutcomeRejected
)

// Phases of a rollout.
const (
	PhasePending          = api.PhasePending
	PhaseSnapshot         = api.PhaseSnapshot
	PhaseDeploying        = api.PhaseDeploying
	PhaseValidating       = api.PhaseValidating
	PhasePaused           = api.PhasePaused
	PhaseAwaitingApproval = api.PhaseAwaitingApproval
	PhaseKeepingBlue      = api.PhaseKeepingBlue
	PhaseAwaitingRelease  = api.PhaseAwaitingRelease
	PhaseFinalizing       = api.PhaseFinalizing
	PhaseRollingBack      = api.PhaseRollingBack
	PhaseVerifying        = api.PhaseVerifying
	PhaseDone             = api.PhaseDone
)

// Stage statuses.
const (
	StagePending    = api.StagePending
	StageInProgress = api.StageInProgress
	StageValidating = api.StageValidating
	StageCompleted  = api.StageCompleted
	StageFailed     = api.StageFailed
	StageRolledBack = api.StageRolledBack
)

// Verdicts, from best to worst.
const (
	Healthy  = health.Healthy
	Degraded = health.Degraded
	NoData   = health.NoData
	Failed   = health.Failed
)

// Health policies: what a round with no data, or a degraded one, does.
const (
	NoDataFail       = spec.NoDataFail
	NoDataHold       = spec.NoDataHold
	NoDataPass       = spec.NoDataPass
	DegradedContinue = spec.DegradedContinue
	DegradedPause    = spec.DegradedPause
	DegradedFail     = spec.DegradedFail
)

// Approval timeouts: what happens when nobody approves in time.
const (
	OnTimeoutAbort   = spec.OnTimeoutAbort
	OnTimeoutProceed = spec.OnTimeoutProceed
)

// Release stage modes.
const (
	Parallel   = spec.Parallel
	Sequential = spec.Sequential
)

// Names other Temporal clients use: the task queue, the workflow types,
// the controls (each a signal and an update) and the status query.
const (
	TaskQueue = api.TaskQueue

	CanaryWorkflow    = api.CanaryWorkflow
	BlueGreenWorkflow = api.BlueGreenWorkflow
	RollingWorkflow   = api.RollingWorkflow
	RecreateWorkflow  = api.RecreateWorkflow
	ReleaseWorkflow   = api.ReleaseWorkflow

	ActionPause   = api.UpdatePause
	ActionResume  = api.UpdateResume
	ActionAbort   = api.UpdateAbort
	ActionPromote = api.UpdatePromote
	ActionApprove = api.UpdateApprove

	QueryStatus = api.QueryStatus

	// ClearHoldWorkflow clears the hold a failed rollback left on a target.
	ClearHoldWorkflow = api.ClearHoldWorkflow
)

// What other Temporal clients send.
type (
	// RolloutInput is what a rollout workflow takes: a Spec, and beside it
	// state only workflows set. Its JSON is the spec's own object.
	RolloutInput = api.RolloutInput
	// ClearHoldRequest asks ClearHoldWorkflow to clear a target's hold.
	ClearHoldRequest = api.ClearHoldRequest
	// ClearHoldResult says which hold was cleared.
	ClearHoldResult = api.ClearHoldResult
)

// WorkflowFor returns the workflow type name that runs a strategy.
func WorkflowFor(strategy string) (string, error) { return api.WorkflowFor(strategy) }

// SearchAttributes names every search attribute Stagecraft keeps, with its
// type, for registering them on a namespace.
func SearchAttributes() map[string]enumspb.IndexedValueType { return api.SearchAttributes() }

// ParseSpec reads a spec from YAML or JSON, rejecting unknown fields,
// applies the defaults and validates it; a *ValidationError lists every
// problem.
func ParseSpec(data []byte) (Spec, error) { return spec.Parse(data) }

// ParseRelease reads a release from YAML or JSON, applies the defaults and
// validates it in full.
func ParseRelease(data []byte) (Release, error) { return spec.ParseRelease(data) }
