package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/stagecraft/stagecraft/internal/health"
	"github.com/stagecraft/stagecraft/workflows"
)

// progress prints a line whenever a stage or the phase changes.
type progress struct {
	last map[string]bool
}

func (p *progress) print(w io.Writer, st workflows.Status) {
	if p.last == nil {
		p.last = map[string]bool{}
	}
	emit := func(key, line string) {
		if !p.last[key] {
			p.last[key] = true
			fmt.Fprintf(w, "  %s  %s\n", time.Now().Format("15:04:05"), line)
		}
	}
	for _, s := range st.Stages {
		switch s.Status {
		case workflows.StageValidating:
			emit(fmt.Sprintf("%d-validating", s.Index), fmt.Sprintf("stage %d %-12s deployed %d new / %d total, baking %s", s.Index+1, s.Name, s.InstancesUpdated, s.InstancesTotal, s.Bake))
		case workflows.StageCompleted:
			emit(fmt.Sprintf("%d-done", s.Index), fmt.Sprintf("stage %d %-12s completed: %d check rounds passed", s.Index+1, s.Name, s.ChecksPassed))
		case workflows.StageFailed, workflows.StageRolledBack:
			if s.Error != "" {
				emit(fmt.Sprintf("%d-failed", s.Index), fmt.Sprintf("stage %d %-12s FAILED: %s", s.Index+1, s.Name, s.Error))
			}
		}
	}
	if st.Paused {
		why := ""
		if n := len(st.Controls); n > 0 && st.Controls[n-1].Action == workflows.SignalPause {
			c := st.Controls[n-1]
			why = fmt.Sprintf(" by %s via %s: %s", orNone(c.By), c.Via, c.Reason)
		}
		emit(fmt.Sprintf("paused-%d", len(st.Controls)), fmt.Sprintf("paused%s (bake time left %s)", why, st.BakeRemaining.Round(time.Second)))
	}
	switch st.Phase {
	case workflows.PhaseRollingBack, workflows.PhaseVerifying:
		emit(string(st.Phase), fmt.Sprintf("%s: %s", st.Phase, st.Rollback.Reason))
	}
}

func printResult(w io.Writer, res workflows.Result) {
	fmt.Fprintf(w, "outcome: %s", res.Outcome)
	if res.CompletedAt != nil {
		fmt.Fprintf(w, " after %s", res.CompletedAt.Sub(res.StartedAt).Round(time.Second))
	}
	fmt.Fprintln(w)
	if res.Error != "" {
		fmt.Fprintf(w, "reason:  %s\n", res.Error)
	}
}

func printStatus(w io.Writer, st workflows.Status) {
	fmt.Fprintf(w, "rollout   %s (run %s)\n", st.WorkflowID, st.RunID)
	fmt.Fprintf(w, "service   %s on %s, %s: %s → %s\n", st.Service, st.Platform, st.Strategy, orNone(st.ImageFrom), st.ImageTo)
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
	if len(st.Controls) > 0 {
		fmt.Fprintln(w, "controls:")
		for _, c := range st.Controls {
			state := "accepted"
			if !c.Accepted {
				state = "rejected: " + c.Error
			}
			fmt.Fprintf(w, "  %s %-8s via %-6s by %s %q %s\n", c.At.Format(time.RFC3339), c.Action, c.Via, c.By, c.Reason, state)
		}
	}
}

func orNone(s string) string {
	if s == "" {
		return "(nothing)"
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
