package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/control"
	"github.com/stagecraft/stagecraft/internal/spec"
)

func undoCmd(g *globals) *cobra.Command {
	var to, strategy, by, reason string
	var wait bool
	cmd := &cobra.Command{
		Use:   "undo SERVICE [--to REVISION]",
		Short: "Roll a target back to an earlier succeeded revision's spec (default: the one before the current)",
		Long: `Start a rollout back to an earlier revision's spec: by default the succeeded revision before
the current one (the current is the newest that succeeded), or the one --to names (a revision
number as revisions prints it from the audit trail, or a run ID). When the current is itself an undo, "before" counts
from the revision it restored: undo twice goes back two good revisions, and never deploys again
the revision an undo took away; with no good revision left it is refused (name one with --to).
When a rollout after the current one may have left the target mid-way (its rollback failed, or
it was terminated, timed out or closed before its outcome), the target no longer runs the
current revision: undo then goes back to the current revision itself (the snapshot that rollout
did not restore), and names that rollout as what runs now. It runs with that revision's strategy unless
--strategy names another (run with that strategy's defaults), and is recorded as an undo of the
revision it restores in the rollout's memo (` + api.MemoUndo + `, with --by and --reason) and in the
audit trail (deployment_plans.undo_of).

Undo chooses from what the target runs once no rollout of it runs: while one is still deciding its
outcome, undo is refused at once, naming it (wait for it or abort it); one that has its outcome
and is closing (notifications, audit trail) is waited for, at most 90 s, and counted. How the
runs that decide the choice ended is taken from Temporal, so a trail that lags (or never saw a
run terminated) does not mislead it.

Refused, with the reason and nothing started, when the revision did not succeed, when no earlier
succeeded revision exists, or when the target is busy (another rollout runs). A rollout whose
preparation rejects it (on Docker: the revision's image is gone) changes nothing, and undo says
why, exit code 5. Without --wait, undo returns once the rollout is past its preparation; with
--wait it follows it like watch and exits with its outcome's code.

` + revisionsHelp,
		Example: `  starter undo deploy:docker:hello
  starter undo hello --to 3 --by alice --reason "v5 leaks memory"
  starter undo docker:hello --to 01a2b3c4-... --strategy recreate --wait`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strategy != "" {
				if _, err := api.WorkflowFor(strategy); err != nil {
					return &exitError{exitInvalid, fmt.Errorf("--strategy: %w", err)}
				}
			}
			if err := api.CheckBy(by); err != nil {
				return &exitError{exitInvalid, fmt.Errorf("--%w", err)}
			}
			if err := api.CheckReason(reason); err != nil {
				return &exitError{exitInvalid, fmt.Errorf("--%w", err)}
			}
			c, ctx, done, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			revs, err := g.revisions(ctx, c, args[0], maxRevisions)
			if err != nil {
				return err
			}
			latest, waited, err := awaitQuiet(ctx, c, g.dataConverter(), revs.WorkflowID)
			if busy := (*control.BusyError)(nil); errors.As(err, &busy) {
				// Named as deploy names it, with what undo would have chosen.
				if pick, _, cerr := chooseRevision(revs, to); cerr == nil {
					return fmt.Errorf("undo to revision %d (%s) refused: %w", pick.Number, pick.Image, err)
				}
			}
			if err != nil {
				return fmt.Errorf("undo refused: %w", err)
			}
			if waited {
				// A rollout just ended: what runs now is what it left.
				if revs, err = g.revisions(ctx, c, revs.WorkflowID, maxRevisions); err != nil {
					return err
				}
			}
			if revs, err = settle(ctx, c, revs, latest); err != nil {
				return fmt.Errorf("undo refused: %w", err)
			}
			pick, current, err := chooseRevision(revs, to)
			if err != nil {
				return fmt.Errorf("undo refused: %w", err)
			}
			s, err := g.revisionSpec(ctx, c, pick)
			if err != nil {
				return err
			}
			s = undoSpec(s, strategy)
			u := api.Undo{Revision: pick.Number, RunID: pick.RunID, Image: pick.Image, From: current.RunID, Reason: reason}
			started, err := control.StartWith(ctx, c, s, control.StartOptions{By: by, Undo: &u})
			if err != nil {
				return fmt.Errorf("undo to revision %d (%s) refused: %w", pick.Number, pick.Image, err)
			}
			out := cmd.OutOrStdout()
			now := current.Image
			if !current.succeeded() {
				now += ", left by a rollout that ended " + orNone(current.Outcome)
			}
			what := fmt.Sprintf("undo of %s to revision %d (%s, %s; current: revision %d, %s)", started.WorkflowID,
				pick.Number, pick.Image, s.Strategy.Type, current.Number, now)
			if wait {
				d := newDisplay(out, false)
				if g.jsonOut {
					d.mode = modeQuiet
				} else {
					fmt.Fprintf(out, "%s\n  web UI:     %s\n", what, g.link(started.WorkflowID, started.RunID))
				}
				res, err := followRollout(ctx, c, started.WorkflowID, started.RunID, time.Second, d)
				if err != nil {
					return err
				}
				if g.jsonOut {
					if err := writeJSON(out, res); err != nil {
						return err
					}
				}
				return undoOutcome(pick, res)
			}
			st, ended, err := awaitPrepared(ctx, c, started.WorkflowID, started.RunID)
			if err != nil {
				return err
			}
			if ended && st.Outcome != api.OutcomeSucceeded && !g.jsonOut {
				// Refused by its own preparation: nothing started to follow.
				return undoOutcome(pick, st)
			}
			if g.jsonOut {
				if err := writeJSON(out, struct {
					control.Started
					Undo  api.Undo   `json:"undo"`
					State api.Status `json:"status"`
				}{started, u, st}); err != nil {
					return err
				}
			} else {
				verb := "started"
				if started.Joined {
					verb = "already running (same request), joined"
				}
				fmt.Fprintf(out, "%s %s\n  workflowId: %s\n  runId:      %s\n  phase:      %s\n  web UI:     %s\n  follow:     starter watch %s\n",
					what, verb, started.WorkflowID, started.RunID, st.Phase, g.link(started.WorkflowID, started.RunID), started.WorkflowID)
			}
			if ended {
				return undoOutcome(pick, st)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "the revision to go back to: its number (as revisions prints it from the audit trail) or its run ID (default: the succeeded one before the current)")
	cmd.Flags().StringVar(&strategy, "strategy", "", "run the undo with this strategy (canary, blue-green, rolling, recreate) and its defaults (default: the revision's)")
	cmd.Flags().StringVar(&by, "by", "", "who asks (default: your user@host)")
	cmd.Flags().StringVar(&reason, "reason", "", "why, kept in the rollout's memo")
	cmd.Flags().BoolVar(&wait, "wait", false, "follow the rollout to its end (as watch does); exit with its outcome's code")
	return cmd
}

// maxRevisions bounds the revisions undo looks through.
const maxRevisions = 1000

// undoOutcome is nil for an undo that succeeded (or is on its way), else the
// outcome's error naming the revision.
func undoOutcome(pick revision, st api.Status) error {
	err := outcomeError("rollout", st.WorkflowID, st.Outcome, st.Error)
	var ee *exitError
	if errors.As(err, &ee) {
		what := "failed"
		if st.Outcome == api.OutcomeRejected {
			what = "refused"
		}
		return &exitError{ee.code, fmt.Errorf("undo to revision %d (%s) %s: %w", pick.Number, pick.Image, what, ee.err)}
	}
	return err
}

// chooseRevision picks the revision to go back to among revs (newest
// first): the one to names (a number or a run ID), else the succeeded one
// before the current (the newest that succeeded), or the current itself
// when a newer run may have left the target mid-way (leftMidway): that run
// is then returned as current. When the current is an
// undo, "before" counts from the revision it restored (and so on down a
// chain of undos): an undo of an undo goes back one more good revision and
// never re-deploys the revision the first undo took away. It is refused
// when that revision did not succeed or there is none.
func chooseRevision(revs revisions, to string) (pick, current revision, err error) {
	cur := -1
	for i, r := range revs.Revisions {
		if r.Current {
			cur = i
			break
		}
	}
	if cur < 0 {
		return pick, current, fmt.Errorf("no rollout of %s succeeded: there is no revision to go back to", revs.WorkflowID)
	}
	current = revs.Revisions[cur]
	if left := leftMidway(revs.Revisions[:cur]); left >= 0 {
		// The target runs what that run left, not the current revision:
		// going back starts by restoring the current revision.
		good := current
		current = revs.Revisions[left]
		if to == "" {
			return good, current, nil
		}
	} else if to == "" {
		at, err := restored(revs, cur)
		if err != nil {
			return pick, current, err
		}
		for _, r := range revs.Revisions[at+1:] {
			if r.succeeded() {
				return r, current, nil
			}
		}
		if at != cur {
			r := revs.Revisions[at]
			return pick, current, fmt.Errorf("no succeeded revision of %s before revision %d (%s): the current revision %d restored revision %d (%s), and undo does not deploy again what an undo took away (name one with --to)",
				revs.WorkflowID, r.Number, r.Image, current.Number, r.Number, r.Image)
		}
		return pick, current, fmt.Errorf("no succeeded revision of %s before the current one (revision %d, %s)",
			revs.WorkflowID, current.Number, current.Image)
	}
	n, numErr := strconv.Atoi(to)
	if numErr == nil && revs.Source != "store" {
		// Temporal's numbers move as its retention drops old runs: a number
		// read a while ago may name another revision now.
		now := "no revision has it now"
		if i := slices.IndexFunc(revs.Revisions, func(r revision) bool { return r.Number == n }); i >= 0 {
			now = fmt.Sprintf("revision %d is run %s now (%s); --to %s names it for good", n, revs.Revisions[i].RunID,
				orNone(revs.Revisions[i].Image), revs.Revisions[i].RunID)
		}
		return pick, current, fmt.Errorf("%w: --to %d: without the audit trail (--database-url), revision numbers come from Temporal's visibility and move as its retention drops old runs, so undo takes a run ID there (%s)",
			errNoRevision, n, now)
	}
	for _, r := range revs.Revisions {
		if r.RunID != to && (numErr != nil || r.Number != n) {
			continue
		}
		if !r.succeeded() {
			return pick, current, fmt.Errorf("revision %d of %s (%s, run %s) did not succeed (%s): undo goes back only to a revision that succeeded",
				r.Number, revs.WorkflowID, r.Image, r.RunID, orNone(r.Outcome))
		}
		return r, current, nil
	}
	if numErr == nil && len(revs.Revisions) > 0 {
		if oldest := revs.Revisions[len(revs.Revisions)-1]; n < oldest.Number {
			return pick, current, fmt.Errorf("%w: revision %d of %s is older than the %d revisions undo looks through (the oldest is revision %d); name it by its run ID",
				errNoRevision, n, revs.WorkflowID, len(revs.Revisions), oldest.Number)
		}
		return pick, current, fmt.Errorf("%w: revision %d of %s does not exist (see starter revisions %s)",
			errNoRevision, n, revs.WorkflowID, revs.WorkflowID)
	}
	return pick, current, fmt.Errorf("%w: %q is neither a revision number nor a run ID of %s (see starter revisions %s)",
		errNoRevision, to, revs.WorkflowID, revs.WorkflowID)
}

// leftMidway is the index of the newest of newer (revisions newer than the
// current, newest first) that may have left the target mid-way, or -1: a
// rollout whose rollback failed (its snapshot not restored) or that closed
// without a rollback (terminated, timed out, canceled, failed before its
// outcome). One that rolled back or was rejected left the target as it
// was; one still running is not counted here (undo refuses to race it).
func leftMidway(newer []revision) int {
	for i, r := range newer {
		switch {
		case r.Open:
		case r.Outcome == string(api.OutcomeRolledBack), r.Outcome == string(api.OutcomeRejected):
		default:
			return i
		}
	}
	return -1
}

// restored is the index in revs of the revision whose state the one at i
// stands for: itself, or for an undo the revision it restored (followed
// down a chain of undos). An undo whose revision is not listed is refused:
// what came before it is unknown.
func restored(revs revisions, i int) (int, error) {
	for seen := 0; revs.Revisions[i].UndoOf != "" && seen < len(revs.Revisions); seen++ {
		u := revs.Revisions[i]
		j := slices.IndexFunc(revs.Revisions, func(r revision) bool { return r.RunID == u.UndoOf })
		if j <= i {
			return i, fmt.Errorf("revision %d of %s (%s) is an undo to run %s, which is not among the %d revisions listed: what came before it is unknown; name the revision to go back to with --to",
				u.Number, revs.WorkflowID, u.Image, u.UndoOf, len(revs.Revisions))
		}
		i = j
	}
	return i, nil
}

// quietWait bounds how long undo waits for a rollout that has its outcome
// to close (its notifications and audit trail: seconds, each bounded), as
// deploy does (control's closingWait).
const quietWait = 90 * time.Second

// awaitQuiet makes sure no rollout of the target runs while undo chooses
// what to go back to: a run still deciding its outcome is refused (undo
// would choose from what that run has not finished changing, and race it
// to the target); one whose outcome is decided is waited for, at most
// quietWait, and waited then says so (the revisions read before are stale).
// It returns the target's latest run once closed (zero when Temporal has
// none any more).
func awaitQuiet(ctx context.Context, c client.Client, dc converter.DataConverter, wid string) (latest control.Execution, waited bool, err error) {
	ex, err := control.Describe(ctx, c, wid, "")
	var nf *control.NotFoundError
	switch {
	case errors.As(err, &nf):
		return control.Execution{}, false, nil
	case err != nil:
		return ex, false, err
	case !ex.Open():
		return ex, false, nil
	case !rolloutType(ex.Type):
		return ex, false, fmt.Errorf("%s runs %s (run %s): wait for it to end, then undo", wid, ex.Type, ex.RunID)
	}
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	st, qerr := control.Status(qctx, c, wid)
	cancel()
	if qerr != nil || st.RunID != ex.RunID || st.Outcome == "" {
		phase := "its phase unknown"
		if qerr == nil {
			phase = "phase " + string(st.Phase)
		}
		var request string
		if d, err := c.DescribeWorkflowExecution(ctx, wid, ex.RunID); err == nil {
			request, _ = runMemo(d.GetWorkflowExecutionInfo(), dc)
		}
		return ex, false, fmt.Errorf("%w (%s; undo chooses from what the target runs once it has ended: starter watch %s)",
			&control.BusyError{WorkflowID: wid, RunID: ex.RunID, RequestID: request}, phase, wid)
	}
	wctx, cancel := context.WithTimeout(ctx, quietWait)
	defer cancel()
	_ = c.GetWorkflow(wctx, wid, ex.RunID).Get(wctx, nil) // the outcome is known; only the close matters
	if ex, err = control.Describe(ctx, c, wid, ex.RunID); err != nil {
		return ex, true, err
	}
	if ex.Open() {
		return ex, true, fmt.Errorf("rollout %s (run %s) ended %s but has not closed within %s; try again once it has (starter status %s)",
			wid, ex.RunID, st.Outcome, quietWait, wid)
	}
	return ex, true, nil
}

// settle makes revs say how the runs that decide undo's choice ended, as
// Temporal says: the latest run (latest, closed) and every run newer than
// the newest that succeeded which the source still shows running. The
// audit trail lags a run's end by a moment, and never sees the end of a
// run that was terminated (its row stays as it was); visibility may lag
// too. A latest rollout the audit trail has not recorded yet is refused:
// undo would choose without it.
func settle(ctx context.Context, c client.Client, revs revisions, latest control.Execution) (revisions, error) {
	if latest.RunID != "" && rolloutType(latest.Type) &&
		!slices.ContainsFunc(revs.Revisions, func(r revision) bool { return r.RunID == latest.RunID }) {
		again := "try again in a moment"
		if revs.Source == "store" {
			again += ", or undo without --database-url (from Temporal's visibility)"
		}
		return revs, fmt.Errorf("the latest rollout of %s (run %s, ended %s) is not in %s yet: undo would choose without it; %s",
			revs.WorkflowID, latest.RunID, latest.Ended(), sourceName(revs.Source), again)
	}
	revs.Revisions = slices.Clone(revs.Revisions)
	for i := range revs.Revisions {
		r := &revs.Revisions[i]
		if r.Open || r.RunID == latest.RunID && !isOutcome(r.Outcome) {
			ex, err := control.Describe(ctx, c, r.WorkflowID, r.RunID)
			var nf *control.NotFoundError
			switch {
			case errors.As(err, &nf):
				// Gone from Temporal: the source's word is all there is.
			case err != nil:
				return revs, err
			case ex.Open():
				return revs, fmt.Errorf("rollout %s (run %s) is still running: wait for it or abort it, then undo", r.WorkflowID, r.RunID)
			default:
				r.Open, r.Outcome = false, ex.Ended()
				if st, err := control.Final[api.Status](ctx, c, ex); err == nil && st.Outcome != "" {
					r.Outcome = string(st.Outcome)
				}
			}
		}
		if r.succeeded() {
			break
		}
	}
	for i := range revs.Revisions {
		revs.Revisions[i].Current = false
	}
	markCurrent(revs.Revisions)
	return revs, nil
}

// undoSpec is the revision's spec made a new request: without the execution
// ID it ran with (a new rollout, not a join of that one), and with strategy
// when one is named (its defaults; a bake carried over where it applies).
func undoSpec(s spec.Spec, strategy string) spec.Spec {
	s.ExecutionID = ""
	if strategy != "" && strategy != s.Strategy.Type {
		bake := s.Strategy.Bake
		s.Strategy = spec.Strategy{Type: strategy}
		if strategy != spec.BlueGreen {
			s.Strategy.Bake = bake
		}
	}
	return s.WithDefaults()
}

// revisionSpec is the spec the revision ran: from the audit trail when it
// kept it, else from the run's start in Temporal's history.
func (g *globals) revisionSpec(ctx context.Context, c client.Client, r revision) (spec.Spec, error) {
	var s spec.Spec
	if len(r.spec) > 0 {
		if err := json.Unmarshal(r.spec, &s); err != nil {
			return s, fmt.Errorf("the spec revision %d ran, as the audit trail keeps it: %w", r.Number, err)
		}
		return s, nil
	}
	return historySpec(ctx, c, g.dataConverter(), r.WorkflowID, r.RunID)
}

// historySpec reads the spec a run started with from its history's first
// event.
func historySpec(ctx context.Context, c client.Client, dc converter.DataConverter, workflowID, runID string) (spec.Spec, error) {
	it := c.GetWorkflowHistory(ctx, workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	if !it.HasNext() {
		return spec.Spec{}, fmt.Errorf("the history of %s run %s is empty", workflowID, runID)
	}
	ev, err := it.Next()
	if err != nil {
		return spec.Spec{}, fmt.Errorf("the spec of %s run %s (its history's first event): %w", workflowID, runID, err)
	}
	attrs := ev.GetWorkflowExecutionStartedEventAttributes()
	var in api.RolloutInput
	if attrs == nil || dc.FromPayloads(attrs.GetInput(), &in) != nil {
		return spec.Spec{}, fmt.Errorf("the history of %s run %s does not start with a rollout's input", workflowID, runID)
	}
	return in.Spec, nil
}

// awaitPrepared waits until the run is past its preparation (it changes the
// target from then on) or has its outcome, and returns its status; ended
// says the outcome is decided (a preparation that rejected it: nothing was
// changed).
func awaitPrepared(ctx context.Context, c client.Client, workflowID, runID string) (st api.Status, ended bool, err error) {
	for {
		ex, err := control.Describe(ctx, c, workflowID, runID)
		if err != nil {
			return st, false, err
		}
		if !ex.Open() {
			st, err := control.Final[api.Status](ctx, c, ex)
			return st, true, err
		}
		if st, err = control.Status(ctx, c, workflowID); err == nil && st.RunID == runID {
			switch {
			case st.Outcome != "":
				return st, true, nil
			case st.Phase != api.PhasePending && st.Phase != api.PhaseSnapshot:
				return st, false, nil
			}
		}
		select {
		case <-ctx.Done():
			return st, false, fmt.Errorf("waiting for %s to pass its preparation: %w (follow it: starter watch %s)", workflowID, ctx.Err(), workflowID)
		case <-time.After(500 * time.Millisecond):
		}
	}
}
