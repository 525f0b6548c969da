package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/control"
	"github.com/stagecraft/stagecraft/internal/spec"
	"github.com/stagecraft/stagecraft/internal/store"
)

// revision is one past rollout of a target, as revisions prints it and
// undo picks from.
type revision struct {
	// Number is its place among the target's rollouts, oldest 1: in the
	// order the audit trail recorded them (for good), or among the runs
	// Temporal's visibility keeps (it moves with retention); RunID names
	// it for good in either.
	Number     int    `json:"revision"`
	WorkflowID string `json:"workflowId"`
	RunID      string `json:"runId"`
	Image      string `json:"image"`
	ImageFrom  string `json:"imageFrom,omitempty"`
	Strategy   string `json:"strategy"`
	// Outcome is the rollout's outcome once it has one, else its phase
	// (or how Temporal closed a run that ended without one: terminated,
	// timed_out, canceled).
	Outcome string `json:"outcome"`
	// State is its lifecycle state in its stages' names, when known.
	State       string     `json:"state,omitempty"`
	StartedBy   string     `json:"startedBy,omitempty"`
	StartedAt   time.Time  `json:"startedAt"`
	CompletedAt *time.Time `json:"completedAt,omitempty"`
	// Duration is how long it ran, in seconds, once it ended.
	Duration float64 `json:"durationSeconds,omitempty"`
	// UndoOf is the run ID of the revision it restored, when it was an undo.
	UndoOf string `json:"undoOf,omitempty"`
	// Current marks the newest succeeded revision: what the target runs.
	Current bool `json:"current,omitempty"`
	// Open: the run is still running.
	Open bool `json:"open,omitempty"`

	// spec is the spec it ran, when the source keeps it (the audit
	// trail); undo reads it from Temporal's history otherwise.
	spec json.RawMessage
}

// succeeded reports whether the revision's rollout succeeded.
func (r revision) succeeded() bool { return r.Outcome == string(api.OutcomeSucceeded) }

// revisions is a target's past rollouts, newest first, and where they came
// from (store or temporal).
type revisions struct {
	WorkflowID string     `json:"workflowId"`
	Source     string     `json:"source"`
	Revisions  []revision `json:"revisions"`
}

const revisionsHelp = `SERVICE names the target as status does (a workflow ID deploy:docker:hello, or an
execution ID), or as a target key (docker:hello, k8s:prod/payment) or a service name
(hello: the one target it was rolled out to; refused, listing them, when there are several).

With a database (--database-url / DATABASE_URL) revisions come from the audit trail and are
numbered in the order it recorded them, oldest 1: a number names the same revision for good, and
undo --to takes it or a run ID. Without one they come from Temporal's visibility (the runs its
retention still keeps), with outcomes from the rollouts' search attributes, numbered by their
place among those runs: such a number moves as retention drops old runs, so there undo --to
takes the run ID only. A clear-hold is no revision.`

func revisionsCmd(g *globals) *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:   "revisions SERVICE",
		Short: "List a target's past rollouts, newest first: image, strategy, outcome, who started it, when, how long",
		Long: `List a target's past rollouts, newest first: revision number, image, strategy, outcome,
who started it, when and how long it ran; the current revision (the newest that succeeded)
is marked *, and an undo names the revision it restored.

` + revisionsHelp,
		Example: `  starter revisions deploy:docker:hello
  starter revisions hello --json
  starter revisions docker:hello --database-url postgres://reader@127.0.0.1/stagecraft`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
			defer cancel()
			// Temporal lists the revisions without a database, and finds an
			// execution ID's target with one (a service name or a target
			// key is found in the audit trail alone).
			var c client.Client
			if g.databaseURL == "" || targetID(args[0]) == "" {
				var err error
				c, err = g.dial()
				switch {
				case err == nil:
					defer c.Close()
				case g.databaseURL == "":
					return err
				}
			}
			revs, err := g.revisions(ctx, c, args[0], limit)
			if err != nil {
				return err
			}
			if g.jsonOut {
				return writeJSON(cmd.OutOrStdout(), revs)
			}
			printRevisions(cmd.OutOrStdout(), revs)
			return nil
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 20, "show at most this many, newest first")
	return cmd
}

// validName reports whether arg could be a service name (and so is looked
// up as one before as an execution ID).
func validName(arg string) bool {
	return arg != "" && !strings.ContainsAny(arg, "/: ")
}

// targetID turns a workflow ID or a target key into the target's workflow
// ID, or returns "" for anything else.
func targetID(arg string) string {
	switch {
	case strings.HasPrefix(arg, "deploy:"):
		return arg
	case strings.HasPrefix(arg, spec.PlatformDocker+":"), strings.HasPrefix(arg, "k8s:"):
		return "deploy:" + arg
	}
	return ""
}

// revisions lists the past rollouts of the target arg names, newest first,
// at most limit: from the audit trail when a database is configured, else
// from Temporal's visibility (c).
func (g *globals) revisions(ctx context.Context, c client.Client, arg string, limit int) (revisions, error) {
	if g.databaseURL != "" {
		st, err := g.openStore(ctx)
		if err != nil {
			return revisions{}, err
		}
		defer st.Close()
		wid, err := resolveTarget(ctx, arg, func(service string) ([]string, error) { return st.Targets(ctx, service) }, c)
		if err != nil {
			return revisions{}, err
		}
		rows, err := st.Revisions(ctx, wid, limit)
		if err != nil {
			return revisions{}, err
		}
		if len(rows) == 0 {
			return revisions{}, fmt.Errorf("no rollouts of %s in the audit trail (is the worker writing to this database?)", wid)
		}
		out := revisions{WorkflowID: wid, Source: "store"}
		for _, r := range rows {
			out.Revisions = append(out.Revisions, fromStore(r))
		}
		markCurrent(out.Revisions)
		return out, nil
	}
	wid, err := resolveTarget(ctx, arg, func(service string) ([]string, error) { return visibleTargets(ctx, c, service) }, c)
	if err != nil {
		return revisions{}, err
	}
	all, err := visibleRevisions(ctx, c, g.dataConverter(), wid)
	if err != nil {
		return revisions{}, err
	}
	if len(all) == 0 {
		return revisions{}, &control.NotFoundError{ID: wid}
	}
	markCurrent(all)
	if limit > 0 && len(all) > limit {
		all = all[:limit]
	}
	return revisions{WorkflowID: wid, Source: "temporal", Revisions: all}, nil
}

// resolveTarget finds the target's workflow ID: a workflow ID or target key
// as it is; a service name through targets (one target, else refused
// listing them); anything else as an execution ID (c, when dialled).
func resolveTarget(ctx context.Context, arg string, targets func(service string) ([]string, error), c client.Client) (string, error) {
	if wid := targetID(arg); wid != "" {
		return wid, nil
	}
	if validName(arg) {
		wids, err := targets(arg)
		if err != nil {
			return "", err
		}
		switch {
		case len(wids) == 1:
			return wids[0], nil
		case len(wids) > 1:
			return "", fmt.Errorf("service %q was rolled out to %d targets: %s; name one", arg, len(wids), strings.Join(wids, ", "))
		}
	}
	if c == nil {
		return "", fmt.Errorf("no rollouts of service %q in the audit trail (%s)", arg, control.IDForms)
	}
	return control.Resolve(ctx, c, arg)
}

// fromStore is a revision from its audit plan row.
func fromStore(r store.Revision) revision {
	p := r.Plan
	rev := revision{Number: r.Number, WorkflowID: p.WorkflowID, RunID: p.RunID, Image: p.ImageTo, ImageFrom: p.ImageFrom,
		Strategy: p.Strategy, Outcome: p.Status, State: p.State, StartedBy: p.StartedBy, UndoOf: p.UndoOf,
		CompletedAt: p.CompletedAt, spec: p.Spec, Open: p.CompletedAt == nil}
	rev.StartedAt = p.CreatedAt
	if p.StartedAt != nil {
		rev.StartedAt = *p.StartedAt
	}
	if p.CompletedAt != nil {
		rev.Duration = p.CompletedAt.Sub(rev.StartedAt).Seconds()
	}
	return rev
}

// markCurrent marks the newest succeeded revision (revs newest first).
func markCurrent(revs []revision) {
	for i := range revs {
		if revs[i].succeeded() {
			revs[i].Current = true
			return
		}
	}
}

// dataConverter is the one the starter dials with (the codec's, when
// configured), for memos it decodes itself.
func (g *globals) dataConverter() converter.DataConverter {
	if opts, err := g.temporal.Options(); err == nil && opts.DataConverter != nil {
		return opts.DataConverter
	}
	return converter.GetDefaultDataConverter()
}

// visibleTargets are the workflow IDs of the rollouts of service that
// Temporal's visibility keeps.
func visibleTargets(ctx context.Context, c client.Client, service string) ([]string, error) {
	query := fmt.Sprintf("%s = %q AND WorkflowId STARTS_WITH \"deploy:\"", api.SearchService.GetName(), service)
	var wids []string
	var token []byte
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query, NextPageToken: token})
		if err != nil {
			return nil, fmt.Errorf("list the rollouts of service %s (%s): %w", service, query, err)
		}
		for _, e := range resp.GetExecutions() {
			if wid := e.GetExecution().GetWorkflowId(); !slices.Contains(wids, wid) {
				wids = append(wids, wid)
			}
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			break
		}
	}
	slices.Sort(wids)
	return wids, nil
}

// visibleRevisions lists every run of the target's workflow ID that
// Temporal's visibility keeps, open and closed, newest first, numbered
// oldest 1. A run that continued as new is left out: its rollout goes on in
// the next run.
func visibleRevisions(ctx context.Context, c client.Client, dc converter.DataConverter, wid string) ([]revision, error) {
	query := fmt.Sprintf("WorkflowId = %q", wid)
	var execs []*workflowpb.WorkflowExecutionInfo
	var token []byte
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query, NextPageToken: token})
		if err != nil {
			return nil, fmt.Errorf("list the runs of %s: %w", wid, err)
		}
		for _, e := range resp.GetExecutions() {
			if e.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW {
				execs = append(execs, e)
			}
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			break
		}
	}
	return numberRuns(execs, dc), nil
}

// numberRuns makes the rollouts among execs revisions, newest first,
// numbered oldest 1 by start time. Other runs under the target's workflow
// ID (ClearHold) are no revisions and take no number.
func numberRuns(execs []*workflowpb.WorkflowExecutionInfo, dc converter.DataConverter) []revision {
	execs = slices.DeleteFunc(slices.Clone(execs), func(e *workflowpb.WorkflowExecutionInfo) bool {
		return !rolloutType(e.GetType().GetName())
	})
	// Oldest first, to number them.
	slices.SortStableFunc(execs, func(a, b *workflowpb.WorkflowExecutionInfo) int {
		return a.GetStartTime().AsTime().Compare(b.GetStartTime().AsTime())
	})
	out := make([]revision, 0, len(execs))
	for i, e := range execs {
		out = append(out, visibleRevision(i+1, e, dc))
	}
	slices.Reverse(out)
	return out
}

// rolloutType reports whether a workflow type runs a rollout.
func rolloutType(name string) bool {
	switch name {
	case api.CanaryWorkflow, api.BlueGreenWorkflow, api.RollingWorkflow, api.RecreateWorkflow:
		return true
	}
	return false
}

// visibleRevision is a revision from a run as visibility lists it: image,
// strategy and outcome from its search attributes, who started it and what
// it undid from its memo.
func visibleRevision(n int, e *workflowpb.WorkflowExecutionInfo, dc converter.DataConverter) revision {
	r := revision{Number: n, WorkflowID: e.GetExecution().GetWorkflowId(), RunID: e.GetExecution().GetRunId(),
		StartedAt: e.GetStartTime().AsTime(), Open: e.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING}
	attrs := e.GetSearchAttributes().GetIndexedFields()
	for name, dst := range map[string]*string{api.SearchImage.GetName(): &r.Image,
		api.SearchStrategy.GetName(): &r.Strategy, api.SearchStatus.GetName(): &r.Outcome} {
		if p, ok := attrs[name]; ok {
			// Search attributes are never sealed.
			_ = converter.GetDefaultDataConverter().FromPayload(p, dst)
		}
	}
	memo := e.GetMemo().GetFields()
	decode := func(p *commonpb.Payload, v any) { _ = dc.FromPayload(p, v) }
	if p, ok := memo[api.MemoStartedBy]; ok {
		decode(p, &r.StartedBy)
	}
	if parent := e.GetParentExecution().GetWorkflowId(); r.StartedBy == "" && parent != "" {
		r.StartedBy = parent // a release's rollout
	}
	if p, ok := memo[api.MemoUndo]; ok {
		var u api.Undo
		decode(p, &u)
		r.UndoOf = u.RunID
	}
	if e.GetCloseTime() != nil {
		t := e.GetCloseTime().AsTime()
		r.CompletedAt = &t
		r.Duration = t.Sub(r.StartedAt).Seconds()
	}
	// A run that closed without its outcome: how it closed.
	switch e.GetStatus() {
	case enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED, enumspb.WORKFLOW_EXECUTION_STATUS_TIMED_OUT,
		enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED:
		if !isOutcome(r.Outcome) {
			r.Outcome = strings.ToLower(strings.TrimPrefix(e.GetStatus().String(), "WORKFLOW_EXECUTION_STATUS_"))
		}
	}
	if isOutcome(r.Outcome) || r.Open {
		r.State = string(api.PlanState(api.Phase(r.Outcome), api.Outcome(r.Outcome)))
	}
	return r
}

// isOutcome reports whether s is a rollout's outcome.
func isOutcome(s string) bool {
	switch api.Outcome(s) {
	case api.OutcomeSucceeded, api.OutcomeRolledBack, api.OutcomeRollbackFailed, api.OutcomeRejected:
		return true
	}
	return false
}

// printRevisions prints revisions as a table, newest first.
func printRevisions(w io.Writer, revs revisions) {
	fmt.Fprintf(w, "revisions of %s (from %s), newest first; * is current\n", revs.WorkflowID, sourceName(revs.Source))
	if revs.Source != "store" {
		fmt.Fprintln(w, "numbers are places among the runs Temporal's retention keeps and move as it drops old ones: undo --to takes the RUN ID")
	}
	// A run after the current that may have left the target mid-way: what
	// runs is not the current revision, and undo restores it.
	left := -1
	if cur := slices.IndexFunc(revs.Revisions, func(r revision) bool { return r.Current }); cur > 0 {
		left = leftMidway(revs.Revisions[:cur])
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "REV\tIMAGE\tSTRATEGY\tOUTCOME\tSTARTED BY\tSTARTED\tDURATION\tRUN ID\tNOTE")
	for i, r := range revs.Revisions {
		n := strconv.Itoa(r.Number)
		if r.Current {
			n += "*"
		}
		d := "running"
		if r.CompletedAt != nil {
			d = (time.Duration(r.Duration * float64(time.Second))).Round(time.Second).String()
		} else if !r.Open {
			d = "-"
		}
		var note []string
		if r.UndoOf != "" {
			note = append(note, "undo to "+revisionName(revs.Revisions, r.UndoOf))
		}
		if i == left {
			cur := slices.IndexFunc(revs.Revisions, func(r revision) bool { return r.Current })
			note = append(note, fmt.Sprintf("may have left the target mid-way: undo restores revision %d", revs.Revisions[cur].Number))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n, orNone(r.Image), orNone(r.Strategy), orNone(r.Outcome),
			orNone(r.StartedBy), r.StartedAt.UTC().Format(time.RFC3339), d, r.RunID, strings.Join(note, "; "))
	}
	_ = tw.Flush()
}

// revisionName names the revision of run runID: "revision N (run …)", or
// the run ID alone when it is not in the list.
func revisionName(revs []revision, runID string) string {
	for _, r := range revs {
		if r.RunID == runID {
			return fmt.Sprintf("revision %d", r.Number)
		}
	}
	return "run " + runID
}

func sourceName(source string) string {
	if source == "store" {
		return "the audit trail"
	}
	return "Temporal's visibility"
}

// errNoRevision says a --to names no revision of the target.
var errNoRevision = errors.New("no such revision")
