package api

import (
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"

	"github.com/stagecraft/stagecraft/internal/spec"
)

// TaskQueue is the task queue Stagecraft's workers poll.
const TaskQueue = "stagecraft"

// Workflow type names, one per strategy, so a list of rollouts says what kind
// each is, and the release's.
const (
	CanaryWorkflow    = "CanaryDeployment"
	BlueGreenWorkflow = "BlueGreenDeployment"
	RollingWorkflow   = "RollingDeployment"
	RecreateWorkflow  = "RecreateDeployment"
	ReleaseWorkflow   = "Release"
)

// WorkflowFor returns the workflow type name that runs a strategy.
func WorkflowFor(strategy string) (string, error) {
	switch strategy {
	case spec.Canary:
		return CanaryWorkflow, nil
	case spec.BlueGreen:
		return BlueGreenWorkflow, nil
	case spec.Rolling:
		return RollingWorkflow, nil
	case spec.Recreate:
		return RecreateWorkflow, nil
	}
	return "", fmt.Errorf("strategy.type: %q is not one of canary, blue-green, rolling, recreate", strategy)
}

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

// Signals between a release and its rollouts.
const (
	// SignalServiceReady: a release's rollout passed every stage.
	SignalServiceReady = "service-ready"
	// SignalCommit: the release succeeded; the rollout finalizes.
	SignalCommit = "commit"
)

// Search attributes every rollout and release keeps current, so lists (the
// Web UI's, `starter list`) can filter on them. All are keywords.
var (
	SearchService     = temporal.NewSearchAttributeKeyKeyword("StagecraftService")
	SearchEnvironment = temporal.NewSearchAttributeKeyKeyword("StagecraftEnvironment")
	SearchStrategy    = temporal.NewSearchAttributeKeyKeyword("StagecraftStrategy")
	SearchPlatform    = temporal.NewSearchAttributeKeyKeyword("StagecraftPlatform")
	SearchStatus      = temporal.NewSearchAttributeKeyKeyword("StagecraftStatus")
	SearchImage       = temporal.NewSearchAttributeKeyKeyword("StagecraftImage")
	// SearchExecutionID is set by the client at start: the caller's ID.
	SearchExecutionID = temporal.NewSearchAttributeKeyKeyword("StagecraftExecutionId")
)

// SearchAttributes names every search attribute Stagecraft uses, with its
// type, for registering them on a namespace.
func SearchAttributes() map[string]enumspb.IndexedValueType {
	out := map[string]enumspb.IndexedValueType{}
	for _, k := range []temporal.SearchAttributeKeyKeyword{SearchService, SearchEnvironment, SearchStrategy,
		SearchPlatform, SearchStatus, SearchImage, SearchExecutionID} {
		out[k.GetName()] = enumspb.INDEXED_VALUE_TYPE_KEYWORD
	}
	return out
}
