// Package control starts, finds, inspects and steers rollouts through a
// Temporal client. The starter CLI and tests use it; it holds the rules for
// starting: one open rollout per target, a repeated request joins it.
package control

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/user"
	"slices"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/health"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// MemoSpec is the memo field that holds the fingerprint of the normalized
// spec a rollout was started with (see Fingerprint), so that a start reusing
// its execution ID with other parameters is refused rather than joined.
const MemoSpec = "spec"

// Started names a started (or joined) rollout.
type Started struct {
	WorkflowID string `json:"workflowId"`
	RunID      string `json:"runId"`
	Workflow   string `json:"workflow"`
	// Joined is true when an identical request was already running.
	Joined bool `json:"joined"`
}

// BusyError says the target already has an open rollout for another request.
type BusyError struct {
	WorkflowID, RunID, RequestID string
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("target is busy: rollout %s (run %s, request %s) is still running; wait for it or abort it",
		e.WorkflowID, e.RunID, e.RequestID)
}

// ReusedError says a start reused the execution ID of an open rollout of the
// same target with a different spec: joining would deploy nothing new.
type ReusedError struct {
	ExecutionID, WorkflowID, RunID string
	// Differences names what differs, the image with both values
	// ("image a → b"), any other top-level field by name.
	Differences []string
}

func (e *ReusedError) Error() string {
	return fmt.Sprintf("execution ID %q is already in use by rollout %s (run %s) with a different spec (%s differs); "+
		"start the new spec with a new execution ID, after that rollout has finished or been aborted",
		e.ExecutionID, e.WorkflowID, e.RunID, strings.Join(e.Differences, "; "))
}

// Fingerprint is the identity of a normalized spec's parameters, kept in a
// rollout's memo (MemoSpec): a short hash of each top-level field of the
// spec with its defaults applied, and the image itself so that a refusal can
// name it. The execution ID is not part of it.
func Fingerprint(s spec.Spec) map[string]string {
	s = s.WithDefaults()
	s.ExecutionID = ""
	b, _ := json.Marshal(s)
	var fields map[string]json.RawMessage
	_ = json.Unmarshal(b, &fields)
	fp := make(map[string]string, len(fields))
	for k, v := range fields {
		var image string
		if k == "image" && json.Unmarshal(v, &image) == nil {
			fp[k] = image
			continue
		}
		sum := sha256.Sum256(v)
		fp[k] = hex.EncodeToString(sum[:8])
	}
	return fp
}

// differences names the fields whose fingerprints differ, in order.
func differences(was, now map[string]string) []string {
	var keys []string
	for k := range was {
		keys = append(keys, k)
	}
	for k := range now {
		if _, ok := was[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var out []string
	for _, k := range keys {
		switch {
		case was[k] == now[k]:
		case k == "image":
			out = append(out, fmt.Sprintf("image %s → %s", was[k], now[k]))
		default:
			out = append(out, k)
		}
	}
	return out
}

// StartOptions are what a start records beside the spec, in the memo.
type StartOptions struct {
	// By is who starts the rollout (api.MemoStartedBy); empty means the
	// process's user@host.
	By string
	// Undo, when set, says the rollout restores an earlier revision
	// (api.MemoUndo).
	Undo *api.Undo
}

// Start starts a rollout of s (validated, defaults applied). If the target
// already runs a rollout for the same request, Start returns that one; for
// a different request it returns a *BusyError, and for the same execution ID
// with a different spec a *ReusedError. The memo records the process's
// user@host as who started it.
func Start(ctx context.Context, c client.Client, s spec.Spec) (Started, error) {
	return StartWith(ctx, c, s, StartOptions{})
}

// StartWith is Start recording opts in the memo.
func StartWith(ctx context.Context, c client.Client, s spec.Spec, opts StartOptions) (Started, error) {
	if err := api.CheckBy(opts.By); err != nil {
		return Started{}, err
	}
	s = s.WithDefaults()
	if err := s.Validate(); err != nil {
		return Started{}, err
	}
	name, err := api.WorkflowFor(s.Strategy.Type)
	if err != nil {
		return Started{}, err
	}
	memo := map[string]any{api.MemoRequestID: s.RequestID(), api.MemoExecutionID: s.ExecutionID, MemoSpec: Fingerprint(s),
		api.MemoStartedBy: cmp.Or(opts.By, Identity())}
	if opts.Undo != nil {
		memo[api.MemoUndo] = *opts.Undo
	}
	return start(ctx, c, s, name, memo)
}

// Identity is the process's user@host: who starts a rollout when no one is
// named. The user is $USER, else the account the process runs as.
func Identity() string {
	host, _ := os.Hostname()
	name := os.Getenv("USER")
	if u, err := user.Current(); name == "" && err == nil {
		name = u.Username
	}
	return cmp.Or(name, "unknown") + "@" + host
}

func start(ctx context.Context, c client.Client, s spec.Spec, name string, memo map[string]any) (Started, error) {
	opts := client.StartWorkflowOptions{
		ID:                       s.WorkflowID(),
		TaskQueue:                api.TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		// Without this the SDK silently returns the running rollout even
		// when it serves a different request.
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		Memo:                                     memo,
		StaticSummary:                            fmt.Sprintf("%s %s → %s", s.Strategy.Type, s.Service, s.Image),
		StaticDetails:                            staticDetails(s),
	}
	if s.ExecutionID != "" {
		opts.TypedSearchAttributes = temporal.NewSearchAttributes(api.SearchExecutionID.ValueSet(s.ExecutionID))
	}
	run, err := c.ExecuteWorkflow(ctx, opts, name, s)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	switch {
	case err == nil:
		return Started{WorkflowID: run.GetID(), RunID: run.GetRunID(), Workflow: name}, nil
	case errors.As(err, &started):
		st, err := join(ctx, c, s, name)
		var busy *BusyError
		if !errors.As(err, &busy) || !awaitClosing(ctx, c, busy.WorkflowID, busy.RunID) {
			return st, err
		}
		// The run in the way had its outcome and has closed: start again.
		if run, err = c.ExecuteWorkflow(ctx, opts, name, s); err == nil {
			return Started{WorkflowID: run.GetID(), RunID: run.GetRunID(), Workflow: name}, nil
		}
		if errors.As(err, &started) {
			return join(ctx, c, s, name)
		}
		return Started{}, fmt.Errorf("start %s: %w", opts.ID, err)
	case s.ExecutionID != "" && strings.Contains(err.Error(), api.SearchExecutionID.GetName()):
		return Started{}, fmt.Errorf("start %s: the search attribute %s is not registered on this namespace (see README: temporal operator search-attribute create --name %s --type Keyword): %w",
			opts.ID, api.SearchExecutionID.GetName(), api.SearchExecutionID.GetName(), err)
	}
	return Started{}, fmt.Errorf("start %s: %w", opts.ID, err)
}

// closingWait bounds how long Start waits for a run whose outcome is
// decided to close: its cancelled watches, its notifications and its audit
// trail take seconds (each bounded, a database outage handed to a trail
// workflow), so a start right after an outcome is not refused as busy.
const closingWait = 90 * time.Second

// awaitClosing waits, at most closingWait, for run runID of workflowID to
// close when its outcome is decided, and reports whether it closed. A run
// still deciding is not waited for: it is busy.
func awaitClosing(ctx context.Context, c client.Client, workflowID, runID string) bool {
	if _, done := decided(ctx, c, workflowID); !done {
		return false
	}
	wctx, cancel := context.WithTimeout(ctx, closingWait)
	defer cancel()
	// The result is the outcome already known; only the close matters.
	_ = c.GetWorkflow(wctx, workflowID, runID).Get(wctx, nil)
	ex, err := Describe(ctx, c, workflowID, runID)
	return err == nil && !ex.Open()
}

func join(ctx context.Context, c client.Client, s spec.Spec, name string) (Started, error) {
	st, err := joinRun(ctx, c, s.WorkflowID(), name, s.RequestID(), Fingerprint(s))
	var reused *ReusedError
	if errors.As(err, &reused) {
		reused.ExecutionID = s.ExecutionID
	}
	return st, err
}

// joinRun returns the open run of workflowID when it serves the same
// request (its memo's request ID and its type match), else a *BusyError.
// With a fingerprint, a run that recorded another one (same request ID,
// other parameters: a reused execution ID) is a *ReusedError; a run
// started before fingerprints were recorded is joined on its request ID.
func joinRun(ctx context.Context, c client.Client, workflowID, name, requestID string, fp map[string]string) (Started, error) {
	desc, err := c.DescribeWorkflowExecution(ctx, workflowID, "")
	if err != nil {
		return Started{}, fmt.Errorf("describe running %s: %w", workflowID, err)
	}
	info := desc.GetWorkflowExecutionInfo()
	runID := info.GetExecution().GetRunId()
	var running string
	if f, ok := info.GetMemo().GetFields()[api.MemoRequestID]; ok {
		// An unreadable memo just means a different request.
		_ = dataConverter(c).FromPayload(f, &running)
	}
	if running != requestID || info.GetType().GetName() != name {
		return Started{}, &BusyError{WorkflowID: workflowID, RunID: runID, RequestID: running}
	}
	if f, ok := info.GetMemo().GetFields()[MemoSpec]; ok && fp != nil {
		var was map[string]string
		if err := dataConverter(c).FromPayload(f, &was); err != nil {
			return Started{}, fmt.Errorf("read the spec fingerprint of running %s: %w", workflowID, err)
		}
		if diff := differences(was, fp); len(diff) > 0 {
			return Started{}, &ReusedError{WorkflowID: workflowID, RunID: runID, Differences: diff}
		}
	}
	return Started{WorkflowID: workflowID, RunID: runID, Workflow: name, Joined: true}, nil
}

// Resolve turns a workflow ID or a caller's execution ID into a workflow ID;
// an execution ID of several open rollouts is an *AmbiguousError.
func Resolve(ctx context.Context, c client.Client, id string) (string, error) {
	if strings.HasPrefix(id, "deploy:") {
		return id, nil
	}
	wid, err := byExecutionID(ctx, c, id)
	switch {
	case err != nil:
		return "", err
	case wid == "":
		return "", fmt.Errorf("no rollout with workflow ID or execution ID %q (workflow IDs look like deploy:docker:SERVICE)", id)
	}
	return wid, nil
}

// Status queries a rollout's status.
func Status(ctx context.Context, c client.Client, workflowID string) (api.Status, error) {
	var st api.Status
	v, err := query(ctx, c, workflowID)
	if err != nil {
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			return st, fmt.Errorf("no rollout %q: %w", workflowID, err)
		}
		return st, fmt.Errorf("query %s: %w", workflowID, err)
	}
	return st, v.Get(&st)
}

// query asks a workflow for its status. A query waits for a worker to
// answer it; one that a busy worker did not answer in time (the server's
// deadline) is asked again, while ctx allows.
func query(ctx context.Context, c client.Client, workflowID string) (converter.EncodedValue, error) {
	for attempt := 1; ; attempt++ {
		v, err := c.QueryWorkflow(ctx, workflowID, "", api.QueryStatus)
		var dl *serviceerror.DeadlineExceeded
		if err == nil || attempt == 3 || ctx.Err() != nil ||
			!(errors.As(err, &dl) || errors.Is(err, context.DeadlineExceeded) || status.Code(err) == codes.DeadlineExceeded) {
			return v, err
		}
	}
}

// LiveRound returns the latest round the rollout's running health watcher
// heartbeated (it runs between the workflow's records, and while the
// rollout is paused), or nil when no watcher runs.
func LiveRound(ctx context.Context, c client.Client, workflowID string) (*health.Round, error) {
	d, err := c.DescribeWorkflowExecution(ctx, workflowID, "")
	if err != nil {
		return nil, fmt.Errorf("describe %s: %w", workflowID, err)
	}
	for _, pa := range d.GetPendingActivities() {
		if pa.GetActivityType().GetName() != "Watch" || pa.GetHeartbeatDetails() == nil {
			continue
		}
		var sum api.WatchSummary
		if err := dataConverter(c).FromPayloads(pa.GetHeartbeatDetails(), &sum); err == nil && sum.Latest != nil {
			return sum.Latest, nil
		}
	}
	return nil, nil
}

// Act sends a control action as an update and returns the new status. An
// illegal transition is rejected with the workflow's reason.
func Act(ctx context.Context, c client.Client, workflowID, action string, req api.ControlRequest) (api.Status, error) {
	return act[api.Status](ctx, c, "rollout", workflowID, action, req)
}

// act sends a control action as an update and returns the status it
// answers with; the update's validator rejects an illegal transition.
func act[S any](ctx context.Context, c client.Client, kind, workflowID, action string, req api.ControlRequest) (S, error) {
	var st S
	h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID:   workflowID,
		UpdateName:   action,
		Args:         []any{req},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err != nil {
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			return st, fmt.Errorf("%s %s: no open %s with that ID (finished or never started)", action, workflowID, kind)
		}
		return st, fmt.Errorf("%s %s: %w", action, workflowID, err)
	}
	if err := h.Get(ctx, &st); err != nil {
		return st, fmt.Errorf("%s %s: %w", action, workflowID, unwrap(err))
	}
	return st, nil
}

// Wait waits until the rollout's workflow has closed (its outcome decided
// and its audit trail written) and returns its result, calling progress
// with the status every poll when progress is not nil.
func Wait(ctx context.Context, c client.Client, workflowID, runID string, poll time.Duration, progress func(api.Status)) (api.Result, error) {
	return wait(ctx, c, workflowID, runID, poll, progress, false)
}

// WaitOutcome is Wait that returns as soon as the status query reports the
// outcome, without waiting for the audit trail to be written (which waits
// out a database outage).
func WaitOutcome(ctx context.Context, c client.Client, workflowID, runID string, poll time.Duration, progress func(api.Status)) (api.Result, error) {
	return wait(ctx, c, workflowID, runID, poll, progress, true)
}

func wait(ctx context.Context, c client.Client, workflowID, runID string, poll time.Duration, progress func(api.Status), early bool) (api.Result, error) {
	return waitRun(ctx, c, "rollout", workflowID, runID, poll, func() (bool, api.Status) {
		if progress == nil && !early {
			return false, api.Status{}
		}
		st, err := Status(ctx, c, workflowID)
		if err != nil || (runID != "" && st.RunID != runID) {
			return false, st
		}
		if progress != nil {
			progress(st)
		}
		return early && st.Phase == api.PhaseDone && st.Outcome != "", st
	})
}

// waitRun waits for a workflow run's result (what names it in errors), calling tick every poll; when
// tick says done, its value is returned without waiting for the run to close.
func waitRun[T any](ctx context.Context, c client.Client, what, workflowID, runID string, poll time.Duration, tick func() (bool, T)) (T, error) {
	run := c.GetWorkflow(ctx, workflowID, runID)
	done := make(chan error, 1)
	var res T
	go func() { done <- Result(ctx, run, &res) }()
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		select {
		case err := <-done:
			if err != nil {
				return res, fmt.Errorf("%s %s: %w", what, workflowID, err)
			}
			return res, nil
		case <-t.C:
			if ok, v := tick(); ok {
				return v, nil
			}
		}
	}
}

func unwrap(err error) error {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return errors.New(app.Message())
	}
	return err
}

// staticDetails describes a rollout for the Web UI: where, how and how it is
// checked.
func staticDetails(s spec.Spec) string {
	lines := []string{
		fmt.Sprintf("**%s** of `%s` to `%s` (%s)", s.Strategy.Type, s.Service, s.Image, s.TargetKey()),
	}
	switch s.Strategy.Type {
	case spec.Canary:
		lines = append(lines, fmt.Sprintf("steps %v%%, bake %s each", s.Strategy.Steps, s.Strategy.Bake.D()))
	case spec.BlueGreen:
		lines = append(lines, fmt.Sprintf("bake %s before the switch, %s after", s.Strategy.BakeBeforeSwitch.D(), s.Strategy.BakeAfterSwitch.D()))
	case spec.Rolling:
		lines = append(lines, fmt.Sprintf("batches of %d, bake %s each", s.Strategy.BatchSize, s.Strategy.Bake.D()))
	default:
		lines = append(lines, fmt.Sprintf("bake %s", s.Strategy.Bake.D()))
	}
	var checks []string
	for _, c := range s.Health.Checks {
		checks = append(checks, c.Name)
	}
	lines = append(lines, fmt.Sprintf("health every %s: %s", s.Health.Interval.D(), strings.Join(checks, ", ")))
	if s.Approval != nil {
		lines = append(lines, fmt.Sprintf("approval before %v%% (timeout %s, then %s)", s.Approval.Before, s.Approval.Timeout.D(), s.Approval.OnTimeout))
	}
	if s.Environment != "" {
		lines = append(lines, "environment "+s.Environment)
	}
	return strings.Join(lines, "\n\n")
}
