// Package client starts and steers Stagecraft rollouts and releases from an
// upstream Go service, over a Temporal client.
//
// A rollout is a Temporal workflow on task queue "stagecraft" whose ID
// names its target ("deploy:docker:hello", "deploy:k8s:prod/payment"), so a
// target has at most one open rollout. Deploy starts one; repeating the
// same request (same ExecutionID, or the same spec) returns the running
// rollout with Existing set, and a different request for a busy target
// fails with a *BusyError naming the rollout in the way. Status and Wait
// report typed results; Pause, Resume, Abort, Promote and Approve are
// Temporal updates that validate the transition first and return the new
// status. A refused control is a *RefusedError with the workflow's reason
// (resume when not paused), a *FinishedError once the rollout has ended
// (with its outcome), or a *NotFoundError for an ID that never ran.
//
// The request and status types are aliases of Stagecraft's own, so what
// is built here is exactly what the workflows receive. Callers in other
// languages send the same JSON: see deployments/schema/spec.schema.json
// and release.schema.json, and docs/API.md.
package client

//go:generate go run ./internal/schemagen -root ..

import (
	"context"
	"fmt"
	"time"

	temporalclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/control"
)

// Client starts and steers rollouts and releases.
type Client struct {
	tc temporalclient.Client
	// owned: Dial opened tc, so Close closes it.
	owned bool
}

// New returns a Client over an existing Temporal client, which stays the
// caller's to close.
func New(tc temporalclient.Client) *Client { return &Client{tc: tc} }

// Dial connects to Temporal (opts.HostPort, default localhost:7233; the
// namespace Stagecraft's workers poll) and returns a Client; Close it when
// done.
func Dial(opts temporalclient.Options) (*Client, error) {
	tc, err := temporalclient.Dial(opts)
	if err != nil {
		return nil, fmt.Errorf("dial temporal at %q: %w", opts.HostPort, err)
	}
	return &Client{tc: control.WithDataConverter(tc, opts.DataConverter), owned: true}, nil
}

// NewWithDataConverter wraps tc, a client dialled with dc as its
// DataConverter (the codec's, from Codec): what this package reads beside
// the client's own calls (memos, heartbeat details) is decoded with dc too.
func NewWithDataConverter(tc temporalclient.Client, dc converter.DataConverter) *Client {
	return &Client{tc: control.WithDataConverter(tc, dc)}
}

// Close closes the Temporal client if Dial opened it.
func (c *Client) Close() {
	if c.owned {
		c.tc.Close()
	}
}

// Rollout names a started rollout or release.
type Rollout struct {
	WorkflowID string `json:"workflowId"`
	RunID      string `json:"runId"`
	// Workflow is the workflow type, e.g. CanaryDeployment.
	Workflow string `json:"workflow"`
	// Existing is true when the same request was already running: this is
	// that rollout, and nothing new was started.
	Existing bool `json:"existing"`
}

// Deploy starts a rollout of s. The spec gets its defaults and is
// validated in full first: a *ValidationError lists every problem and
// nothing is started. If the target runs a rollout of the same request
// (same ExecutionID, or else the same spec with defaults applied), Deploy
// returns it with Existing set; for a different request it returns a
// *BusyError naming the running rollout.
func (c *Client) Deploy(ctx context.Context, s Spec) (Rollout, error) {
	return c.DeployWith(ctx, s, StartOptions{})
}

// StartOptions are what a caller may add to a Deploy or Release.
type StartOptions struct {
	// By names who starts it, as the memo's startedBy: the status, the
	// audit trail and notifications name them. At most 200 bytes, with no
	// control or invisible character (else nothing is started). Empty
	// names this process's user@host.
	By string
}

// DeployWith is Deploy recording opts (who starts it).
func (c *Client) DeployWith(ctx context.Context, s Spec, opts StartOptions) (Rollout, error) {
	st, err := control.StartWith(ctx, c.tc, s, control.StartOptions{By: opts.By})
	if err != nil {
		return Rollout{}, err
	}
	return Rollout{WorkflowID: st.WorkflowID, RunID: st.RunID, Workflow: st.Workflow, Existing: st.Joined}, nil
}

// Plan says what a rollout of s would do if it started now, changing
// nothing: the snapshot it would take (what a rollback restores), each
// stage's desired state, gates, bakes and the least time it takes, and
// each prerequisite's verdict, read from the live target by a worker
// under its own credentials and policies.
func (c *Client) Plan(ctx context.Context, s Spec) (Preview, error) {
	return control.Preview(ctx, c.tc, s)
}

// PlanRelease says what a release would do if it started now, changing
// nothing: each service's Plan, wave by wave.
func (c *Client) PlanRelease(ctx context.Context, r Release) (ReleasePreview, error) {
	return control.PreviewRelease(ctx, c.tc, r)
}

// Release starts a release of several services, validated in full first.
// One release of a name runs per environment at a time.
func (c *Client) Release(ctx context.Context, r Release) (Rollout, error) {
	return c.ReleaseWith(ctx, r, StartOptions{})
}

// ReleaseWith is Release recording opts (who starts it; its rollouts'
// trails name them with the release).
func (c *Client) ReleaseWith(ctx context.Context, r Release, opts StartOptions) (Rollout, error) {
	st, err := control.StartReleaseWith(ctx, c.tc, r, control.StartOptions{By: opts.By})
	if err != nil {
		return Rollout{}, err
	}
	return Rollout{WorkflowID: st.WorkflowID, RunID: st.RunID, Workflow: st.Workflow, Existing: st.Joined}, nil
}

// Resolve turns a workflow ID or a caller's ExecutionID into the
// rollout's workflow ID. Finding by ExecutionID needs the
// StagecraftExecutionId search attribute registered on the namespace.
func (c *Client) Resolve(ctx context.Context, id string) (string, error) {
	return control.Resolve(ctx, c.tc, id)
}

// Status returns a rollout's current status (its latest run): plan, every
// stage, the control log and, once it has ended, its outcome.
func (c *Client) Status(ctx context.Context, workflowID string) (Status, error) {
	if err := rolloutID(workflowID); err != nil {
		return Status{}, err
	}
	return control.Status(ctx, c.tc, workflowID)
}

// ReleaseStatus returns a release's current status.
func (c *Client) ReleaseStatus(ctx context.Context, workflowID string) (ReleaseStatus, error) {
	if err := releaseID(workflowID); err != nil {
		return ReleaseStatus{}, err
	}
	return control.ReleaseStatus(ctx, c.tc, workflowID)
}

// Wait blocks until the rollout's workflow has closed (its outcome decided
// and its audit trail written) or ctx ends, and returns its result. An
// empty runID waits for the latest run. A rolled-back rollout is a result,
// not an error: read Result.Outcome.
func (c *Client) Wait(ctx context.Context, workflowID, runID string) (Result, error) {
	if err := rolloutID(workflowID); err != nil {
		return Result{}, err
	}
	return control.Wait(ctx, c.tc, workflowID, runID, time.Second, nil)
}

// WaitRelease blocks until the release has ended or ctx ends and returns
// its final status.
func (c *Client) WaitRelease(ctx context.Context, workflowID, runID string) (ReleaseStatus, error) {
	if err := releaseID(workflowID); err != nil {
		return ReleaseStatus{}, err
	}
	return control.WaitRelease(ctx, c.tc, workflowID, runID, time.Second, nil)
}

// Pause stops the bake clock, keeping the time left; the next stage waits.
func (c *Client) Pause(ctx context.Context, workflowID string, req ControlRequest) (Status, error) {
	return c.act(ctx, workflowID, api.UpdatePause, req)
}

// Resume starts a new bake timer for exactly the time left.
func (c *Client) Resume(ctx context.Context, workflowID string, req ControlRequest) (Status, error) {
	return c.act(ctx, workflowID, api.UpdateResume, req)
}

// Abort interrupts the rollout at once and rolls it back to the snapshot.
// The returned status is taken as the abort is accepted; Wait for the
// rollback's result.
func (c *Client) Abort(ctx context.Context, workflowID string, req ControlRequest) (Status, error) {
	return c.act(ctx, workflowID, api.UpdateAbort, req)
}

// Promote skips the remaining bakes and completes the rollout.
func (c *Client) Promote(ctx context.Context, workflowID string, req ControlRequest) (Status, error) {
	return c.act(ctx, workflowID, api.UpdatePromote, req)
}

// Approve lets the stage waiting at an approval gate start; req says who
// approved and why, kept in the status's approvals and control log.
func (c *Client) Approve(ctx context.Context, workflowID string, req ControlRequest) (Status, error) {
	return c.act(ctx, workflowID, api.UpdateApprove, req)
}

// PauseRelease pauses a release and its running rollouts.
func (c *Client) PauseRelease(ctx context.Context, workflowID string, req ControlRequest) (ReleaseStatus, error) {
	return c.actRelease(ctx, workflowID, api.UpdatePause, req)
}

// ResumeRelease resumes a paused release and its rollouts.
func (c *Client) ResumeRelease(ctx context.Context, workflowID string, req ControlRequest) (ReleaseStatus, error) {
	return c.actRelease(ctx, workflowID, api.UpdateResume, req)
}

// AbortRelease rolls a release back: the services already through roll
// back in reverse dependency order.
func (c *Client) AbortRelease(ctx context.Context, workflowID string, req ControlRequest) (ReleaseStatus, error) {
	return c.actRelease(ctx, workflowID, api.UpdateAbort, req)
}

func (c *Client) act(ctx context.Context, workflowID, action string, req ControlRequest) (Status, error) {
	if err := rolloutID(workflowID); err != nil {
		return Status{}, err
	}
	return control.Steer[Status](ctx, c.tc, workflowID, action, req)
}

func (c *Client) actRelease(ctx context.Context, workflowID, action string, req ControlRequest) (ReleaseStatus, error) {
	if err := releaseID(workflowID); err != nil {
		return ReleaseStatus{}, err
	}
	return control.Steer[ReleaseStatus](ctx, c.tc, workflowID, action, req)
}

// A rollout and a release answer the same query and updates with
// different types; decoding one as the other would give a silently empty
// status, so the ID's kind is checked first.

func rolloutID(workflowID string) error {
	if control.IsRelease(workflowID) {
		return fmt.Errorf("%s is a release: use the Release methods (ReleaseStatus, WaitRelease, PauseRelease, ...)", workflowID)
	}
	return nil
}

func releaseID(workflowID string) error {
	if !control.IsRelease(workflowID) {
		return fmt.Errorf("%s is not a release (release workflow IDs look like release:ENV/NAME)", workflowID)
	}
	return nil
}
