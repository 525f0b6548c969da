package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/health"
)

func printResult(w io.Writer, res api.Result) {
	fmt.Fprintf(w, "outcome: %s", res.Outcome)
	if res.CompletedAt != nil {
		fmt.Fprintf(w, " after %s", res.CompletedAt.Sub(res.StartedAt).Round(time.Second))
	}
	fmt.Fprintln(w)
	if res.Error != "" {
		fmt.Fprintf(w, "reason:  %s\n", res.Error)
	}
}

// printStatus prints a rollout's status once; now dates the approval gates.
func printStatus(w io.Writer, st api.Status, now time.Time) {
	fmt.Fprintf(w, "rollout   %s (run %s)\n", st.WorkflowID, st.RunID)
	fmt.Fprintf(w, "service   %s on %s, %s: %s → %s\n", st.Service, st.Platform, st.Strategy, orNone(st.ImageFrom), st.ImageTo)
	if st.StartedBy != "" || st.UndoOf != "" {
		fmt.Fprintf(w, "started   by %s", orNone(printable(st.StartedBy)))
		if st.UndoOf != "" {
			fmt.Fprintf(w, ", an undo: restores the revision of run %s", printable(st.UndoOf))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "phase     %s", st.Phase)
	if st.Paused {
		fmt.Fprintf(w, " (paused, %s of bake left)", st.BakeRemaining.Round(time.Second))
	} else if st.BakeEndsAt != nil {
		fmt.Fprintf(w, " (bake ends %s)", st.BakeEndsAt.Format(time.RFC3339))
	}
	fmt.Fprintln(w)
	if st.Outcome != "" {
		printResult(w, st)
	}
	fmt.Fprintln(w, "stages:")
	for _, s := range st.Stages {
		r := s.Rounds
		fmt.Fprintf(w, "  %d. %-12s %-11s new %d/%d  rounds %d passed %d failed (%d healthy, %d degraded, %d failed, %d no-data)", s.Index+1, s.Name, s.Status,
			s.InstancesUpdated, s.InstancesTotal, s.ChecksPassed, s.ChecksFailed, r.Healthy, r.Degraded, r.Failed, r.NoData)
		if s.Error != "" {
			fmt.Fprintf(w, "  error: %s", s.Error)
		}
		fmt.Fprintln(w)
	}
	if st.LatestRound != nil {
		printRound(w, "latest round", st.LatestRound)
	}
	if len(st.Approvals) > 0 {
		fmt.Fprintln(w, "approvals:")
		for _, a := range st.Approvals {
			fmt.Fprintf(w, "  %d. %-12s ", a.Stage+1, a.Name)
			switch {
			case a.ApprovedAt != nil:
				fmt.Fprintf(w, "approved %s by %s %q\n", a.ApprovedAt.Format(time.RFC3339), orNone(a.ApprovedBy), a.Reason)
			case a.TimedOut:
				fmt.Fprintf(w, "timed out at %s, then %s\n", a.Deadline.Format(time.RFC3339), a.OnTimeout)
			default:
				fmt.Fprintf(w, "%s (starter approve %s --reason ...)\n", gateText(&a, now), st.WorkflowID)
			}
		}
	}
	if len(st.Controls) > 0 {
		fmt.Fprintln(w, "controls:")
		if st.ControlsOmitted > 0 {
			fmt.Fprintf(w, "  (%d earlier not kept here; starter history has them)\n", st.ControlsOmitted)
		}
		for _, c := range st.Controls {
			state := "accepted"
			if !c.Accepted {
				state = "rejected: " + c.Error
			}
			fmt.Fprintf(w, "  %s %-8s via %-6s by %s %q %s\n", c.At.Format(time.RFC3339), c.Action, c.Via, printable(c.By), c.Reason, state)
		}
	}
}

func orNone(s string) string {
	if s == "" {
		return "(nothing)"
	}
	return printable(s)
}

// printable is s, quoted when it holds a control character or one the
// safeWriter would escape (a bidirectional control, a separator): a name
// or a reason from a raw client (a signal is not validated) cannot forge
// or garble the lines around it, and a table cell is measured as printed.
func printable(s string) string {
	if strings.ContainsFunc(s, func(r rune) bool { return unicode.IsControl(r) || unsafeRune(r) }) {
		return strconv.Quote(s)
	}
	return s
}

// printRound prints a round's verdict and each result's evidence.
func printRound(w io.Writer, title string, r *health.Round) {
	fmt.Fprintf(w, "%s: %s at %s\n", title, r.Verdict, r.At.Format(time.RFC3339))
	for _, res := range r.Results {
		fmt.Fprintf(w, "  %-9s %-16s %-28s %6s", res.Verdict, res.Check, res.Target, res.Latency.Round(time.Millisecond))
		switch {
		case res.Code != 0:
			fmt.Fprintf(w, "  status %d", res.Code)
		case res.Exit != nil:
			fmt.Fprintf(w, "  exit %d", *res.Exit)
		case res.Value != nil:
			fmt.Fprintf(w, "  value %g", *res.Value)
		}
		if res.Error != "" {
			fmt.Fprintf(w, "  %s", res.Error)
		}
		if res.Excerpt != "" {
			fmt.Fprintf(w, "  | %s", strings.ReplaceAll(res.Excerpt, "\n", " "))
		}
		fmt.Fprintln(w)
	}
}
