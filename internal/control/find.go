package control

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/stagecraft/stagecraft/internal/api"
)

// IDForms says what the IDs of rollouts and releases look like, for
// messages about an ID that names nothing.
const IDForms = "rollout IDs look like deploy:docker:SERVICE or deploy:k8s:[CLUSTER/]NAMESPACE/DEPLOYMENT, " +
	"release IDs like release:ENVIRONMENT/NAME; the execution ID a rollout was started with works too"

// NotFoundError says that no rollout or release has the ID.
type NotFoundError struct {
	ID string
}

func (e *NotFoundError) Error() string {
	if IsRelease(e.ID) || strings.HasPrefix(e.ID, "deploy:") {
		return fmt.Sprintf("no %s %s: nothing with this ID has run (%s)", Kind(e.ID), e.ID, IDForms)
	}
	return fmt.Sprintf("no rollout %s: neither a workflow ID nor the execution ID of a rollout (%s)", e.ID, IDForms)
}

// AmbiguousError says that an execution ID names rollouts of several
// targets (one execution ID, say a CI build number, used for several
// services), so an action addressed by it would pick one at random.
type AmbiguousError struct {
	ID string
	// WorkflowIDs are the rollouts it names, sorted: the open ones when
	// Open, else every one.
	WorkflowIDs []string
	Open        bool
}

func (e *AmbiguousError) Error() string {
	what := "rollouts"
	if e.Open {
		what = "open rollouts"
	}
	return fmt.Sprintf("execution ID %q names %d %s: %s; address one by its workflow ID",
		e.ID, len(e.WorkflowIDs), what, strings.Join(e.WorkflowIDs, ", "))
}

// byExecutionID returns the workflow ID of the rollout started with
// execution ID id: its open rollout, or when none is open, the one that ran
// with it; "" when none did. Several open rollouts (or, none open, several
// closed ones of different targets) are an *AmbiguousError.
//
// It asks for distinct workflow IDs one query at a time, each excluding the
// ones found, so the answer does not depend on how many runs (a long
// continue-as-new chain) share the ID or on the server's page size.
func byExecutionID(ctx context.Context, c client.Client, id string) (string, error) {
	query := fmt.Sprintf("%s = %q", api.SearchExecutionID.GetName(), id)
	open, err := workflowIDs(ctx, c, query+" AND ExecutionStatus = 'Running'")
	if err != nil || len(open) > 1 {
		return "", ambiguous(id, open, true, err)
	}
	if len(open) == 1 {
		return open[0], nil
	}
	all, err := workflowIDs(ctx, c, query)
	if err != nil || len(all) > 1 {
		return "", ambiguous(id, all, false, err)
	}
	if len(all) == 1 {
		return all[0], nil
	}
	return "", nil
}

func ambiguous(id string, wids []string, open bool, err error) error {
	if err != nil {
		return err
	}
	return &AmbiguousError{ID: id, WorkflowIDs: wids, Open: open}
}

// maxAmbiguous bounds the workflow IDs an *AmbiguousError names.
const maxAmbiguous = 10

// executionPageSize is the page size of each query (0: the server's
// default); a test makes it 1.
var executionPageSize int32

// workflowIDs returns the distinct workflow IDs of executions matching
// query, sorted, at most maxAmbiguous of them. A query on a search
// attribute the server does not know yet finds nothing.
func workflowIDs(ctx context.Context, c client.Client, query string) ([]string, error) {
	var wids []string
	for len(wids) < maxAmbiguous {
		q := query
		for _, w := range wids {
			q += fmt.Sprintf(" AND WorkflowId != %q", w)
		}
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: q, PageSize: executionPageSize})
		var invalid *serviceerror.InvalidArgument
		switch {
		case errors.As(err, &invalid) && strings.Contains(err.Error(), api.SearchExecutionID.GetName()):
			return nil, nil // not registered: no rollout has one
		case err != nil:
			return nil, fmt.Errorf("finding the rollouts of execution ID (%s): %w", query, err)
		}
		found := false
		for _, ex := range resp.GetExecutions() {
			if wid := ex.GetExecution().GetWorkflowId(); !slices.Contains(wids, wid) {
				wids, found = append(wids, wid), true
			}
		}
		if !found {
			break
		}
	}
	slices.Sort(wids)
	return wids, nil
}

// FinishedError says that an action came after the rollout or release had
// closed: how it ended is all there is to know.
type FinishedError struct {
	Action, WorkflowID string
	// Outcome is how it ended; Ended says how its run closed when it ended
	// without an outcome (terminated, timed_out, failed, canceled).
	Outcome api.Outcome
	Ended   string
}

func (e *FinishedError) Error() string {
	how := "outcome " + string(e.Outcome)
	if e.Outcome == "" {
		how = e.Ended
	}
	kind := Kind(e.WorkflowID)
	return fmt.Sprintf("cannot %s: %s %s is finished (%s); no open %s to %s", e.Action, kind, e.WorkflowID, how, kind, e.Action)
}

// RefusedError is the workflow's refusal of an action (an illegal
// transition), with the workflow's own reason.
type RefusedError struct {
	Action, WorkflowID, Reason string
}

func (e *RefusedError) Error() string { return fmt.Sprintf("%s (%s)", e.Reason, e.WorkflowID) }

// Kind says "release" for a release's workflow ID and "rollout" otherwise.
func Kind(workflowID string) string {
	if IsRelease(workflowID) {
		return "release"
	}
	return "rollout"
}

// Execution is what the server says about the latest run of a rollout or
// a release.
type Execution struct {
	WorkflowID string
	RunID      string
	Type       string
	Status     enumspb.WorkflowExecutionStatus
	// Watch is the running health watcher's latest heartbeat (its round
	// counts and latest round), or nil when no watcher runs.
	Watch *api.WatchSummary
}

// Open reports whether the run is still running.
func (e Execution) Open() bool {
	return e.Status == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
}

// Ended names how a closed run ended: completed, failed, canceled,
// terminated, continued_as_new or timed_out.
func (e Execution) Ended() string {
	s := strings.TrimPrefix(e.Status.String(), "WORKFLOW_EXECUTION_STATUS_")
	return strings.ToLower(s)
}

// Describe describes a run of a rollout or release (runID "": the latest);
// an ID that never ran is a *NotFoundError.
func Describe(ctx context.Context, c client.Client, workflowID, runID string) (Execution, error) {
	d, err := c.DescribeWorkflowExecution(ctx, workflowID, runID)
	if err != nil {
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			return Execution{}, &NotFoundError{ID: workflowID}
		}
		return Execution{}, fmt.Errorf("describe %s: %w", workflowID, err)
	}
	info := d.GetWorkflowExecutionInfo()
	ex := Execution{WorkflowID: workflowID, RunID: info.GetExecution().GetRunId(),
		Type: info.GetType().GetName(), Status: info.GetStatus()}
	for _, pa := range d.GetPendingActivities() {
		if pa.GetActivityType().GetName() != "Watch" || pa.GetHeartbeatDetails() == nil {
			continue
		}
		var sum api.WatchSummary
		if err := dataConverter(c).FromPayloads(pa.GetHeartbeatDetails(), &sum); err == nil {
			ex.Watch = &sum
		}
	}
	return ex, nil
}

// Find finds a rollout or release by its workflow ID (deploy:…, release:…)
// or a rollout by the execution ID it was started with, and describes its
// latest run. An ID that names nothing is a *NotFoundError; an execution ID
// of several open rollouts is an *AmbiguousError.
func Find(ctx context.Context, c client.Client, id string) (Execution, error) {
	if strings.HasPrefix(id, "deploy:") || IsRelease(id) {
		return Describe(ctx, c, id, "")
	}
	wid, err := byExecutionID(ctx, c, id)
	switch {
	case err != nil:
		return Execution{}, err
	case wid == "":
		return Execution{}, &NotFoundError{ID: id}
	}
	return Describe(ctx, c, wid, "")
}

// Result waits for a run's result and decodes it into v: a rollout's
// api.Status or a release's api.ReleaseStatus, whether the run closed
// Completed (succeeded, or any outcome before failed-close-20261203) or
// Failed with its outcome (rolled_back, rollback_failed, rejected: the
// failure carries the result, api.ResultOf). Any other failure is
// returned.
func Result(ctx context.Context, run client.WorkflowRun, v any) error {
	err := run.Get(ctx, v)
	if err != nil && api.ResultOf(err, v) {
		return nil
	}
	return err
}

// Final returns the result of a closed run: a rollout's final
// api.Status or a release's final api.ReleaseStatus.
func Final[T any](ctx context.Context, c client.Client, ex Execution) (T, error) {
	var v T
	if err := Result(ctx, c.GetWorkflow(ctx, ex.WorkflowID, ex.RunID), &v); err != nil {
		return v, fmt.Errorf("%s %s ended %s: %w", Kind(ex.WorkflowID), ex.WorkflowID, ex.Ended(), unwrap(err))
	}
	return v, nil
}

// Steer sends a control action as an update to a rollout or a release and
// returns the status it answers with (api.Status for a rollout,
// api.ReleaseStatus for a release). Unlike Act, each way it can be
// refused is its own error: *NotFoundError (no such ID), *FinishedError
// (closed, with its outcome), *RefusedError (the workflow's reason why the
// action is illegal now).
func Steer[S any](ctx context.Context, c client.Client, workflowID, action string, req api.ControlRequest) (S, error) {
	var st S
	h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID:   workflowID,
		UpdateName:   action,
		Args:         []any{req},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err == nil {
		err = h.Get(ctx, &st)
	}
	if err == nil {
		return st, nil
	}
	var (
		nf      *serviceerror.NotFound
		app     *temporal.ApplicationError
		timeout *client.WorkflowUpdateServiceTimeoutOrCanceledError
	)
	switch {
	case errors.As(err, &nf):
		// The update API says NotFound for a closed run too.
		return st, closedOrMissing(ctx, c, workflowID, action)
	case errors.As(err, &app):
		// A run whose outcome is decided may still be open for a few
		// seconds (its cancelled watches, its notifications, its trail):
		// a control it refuses meets a finished run, and says so as one.
		if outcome, done := decided(ctx, c, workflowID); done {
			return st, &FinishedError{Action: action, WorkflowID: workflowID, Outcome: outcome}
		}
		reason := app.Message()
		if strings.HasPrefix(reason, "unknown update") {
			reason = fmt.Sprintf("cannot %s: this %s does not take %s (its worker predates it)", action, Kind(workflowID), action)
		}
		return st, &RefusedError{Action: action, WorkflowID: workflowID, Reason: reason}
	case errors.As(err, &timeout) || ctx.Err() != nil:
		return st, fmt.Errorf("cannot %s %s: no answer in time; is a worker polling task queue %q?", action, workflowID, api.TaskQueue)
	}
	return st, fmt.Errorf("%s %s: %w", action, workflowID, err)
}

// decided reports whether the open run of workflowID has its outcome (its
// status query says so), and which.
func decided(ctx context.Context, c client.Client, workflowID string) (api.Outcome, bool) {
	v, err := c.QueryWorkflow(ctx, workflowID, "", api.QueryStatus)
	if err != nil {
		return "", false
	}
	var st struct {
		Outcome api.Outcome `json:"outcome"`
	}
	if err := v.Get(&st); err != nil || st.Outcome == "" {
		return "", false
	}
	return st.Outcome, true
}

// closedOrMissing explains why an update found no open workflow.
func closedOrMissing(ctx context.Context, c client.Client, workflowID, action string) error {
	ex, err := Describe(ctx, c, workflowID, "")
	if err != nil {
		return err
	}
	if ex.Open() {
		return fmt.Errorf("cannot %s %s: the server found no run to update, yet one is open; try again", action, workflowID)
	}
	fin := &FinishedError{Action: action, WorkflowID: workflowID, Ended: ex.Ended()}
	if ex.Status == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED || ex.Status == enumspb.WORKFLOW_EXECUTION_STATUS_FAILED {
		var res struct {
			Outcome api.Outcome `json:"outcome"`
		}
		if err := Result(ctx, c.GetWorkflow(ctx, workflowID, ex.RunID), &res); err == nil {
			fin.Outcome = res.Outcome
		}
	}
	return fin
}
