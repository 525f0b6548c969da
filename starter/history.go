package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/audit"
	"github.com/stagecraft/stagecraft/internal/control"
	"github.com/stagecraft/stagecraft/internal/store"
)

// openStore connects to the audit store named by --database-url.
func (g *globals) openStore(ctx context.Context) (*store.Store, error) {
	if g.databaseURL == "" {
		return nil, errors.New("the audit trail lives in PostgreSQL: set DATABASE_URL or --database-url")
	}
	return store.Open(ctx, g.databaseURL)
}

func historyCmd(g *globals) *cobra.Command {
	var runID string
	cmd := &cobra.Command{
		Use:   "history ID",
		Short: "Show a rollout's audit trail from PostgreSQL: plan, stages, rounds and every transition and control action (ID: workflow ID or execution ID)",
		Example: `  starter history deploy:docker:hello
  starter history deploy:docker:hello --run 01a2... --json`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := g.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			tr, err := st.Trail(cmd.Context(), args[0], runID)
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("no audit trail for %q (is the worker writing to this database?)", args[0])
			}
			if err != nil {
				return err
			}
			if g.jsonOut {
				return writeJSON(cmd.OutOrStdout(), tr)
			}
			printTrail(cmd.OutOrStdout(), tr)
			return nil
		},
	}
	cmd.Flags().StringVar(&runID, "run", "", "a run ID (default: the latest run)")
	return cmd
}

func listCmd(g *globals) *cobra.Command {
	var f control.ListFilter
	source := "auto"
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List recent rollouts and releases, filtered on their search attributes (Temporal) or from the audit trail (PostgreSQL)",
		Long: `List recent rollouts and releases, newest first.

With --source temporal (the default without a database) the list comes from Temporal's
visibility and filters on the search attributes every rollout keeps current; with
--source store (the default when DATABASE_URL is set) from the audit trail in PostgreSQL,
which filters on service and status.`,
		Example: `  starter list --service hello --status rolled_back
  starter list --source temporal --environment prod --strategy canary --json
  starter list --source temporal --query 'StartTime > "2026-11-01T00:00:00Z"'`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if source == "auto" {
				source = "temporal"
				if g.databaseURL != "" {
					source = "store"
				}
			}
			switch source {
			case "temporal":
				return listTemporal(cmd, g, f)
			case "store":
				if f.Environment != "" || f.Strategy != "" || f.Platform != "" || f.Image != "" || f.Query != "" {
					return &exitError{code: exitInvalid, err: errors.New("--environment, --strategy, --platform, --image and --query filter Temporal's list: use --source temporal")}
				}
				return listStore(cmd, g, store.Filter{Service: f.Service, Status: f.Status, Limit: f.Limit})
			}
			return &exitError{code: exitInvalid, err: fmt.Errorf("--source %q: want auto, temporal or store", source)}
		},
	}
	cmd.Flags().StringVar(&source, "source", source, "auto (store when DATABASE_URL is set, else temporal), temporal or store")
	cmd.Flags().StringVar(&f.Service, "service", "", "only this service (a release: its name)")
	cmd.Flags().StringVar(&f.Status, "status", "", "only this status (succeeded, rolled_back, rollback_failed, rejected, or a phase)")
	cmd.Flags().StringVar(&f.Environment, "environment", "", "only this environment (temporal)")
	cmd.Flags().StringVar(&f.Strategy, "strategy", "", "only this strategy: canary, blue-green, rolling, recreate, release (temporal)")
	cmd.Flags().StringVar(&f.Platform, "platform", "", "only this platform: docker, kubernetes, release (temporal)")
	cmd.Flags().StringVar(&f.Image, "image", "", "only rollouts to this image (temporal)")
	cmd.Flags().StringVar(&f.Query, "query", "", "a visibility query ANDed with the filters (temporal)")
	cmd.Flags().IntVar(&f.Limit, "limit", 50, "at most this many")
	return cmd
}

func listTemporal(cmd *cobra.Command, g *globals, f control.ListFilter) error {
	c, err := g.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	rows, err := control.List(cmd.Context(), c, f)
	if err != nil {
		return err
	}
	if g.jsonOut {
		return writeJSON(cmd.OutOrStdout(), rows)
	}
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "%-20s  %-16s  %-8s  %-10s  %-18s  %-28s  %s\n", "STARTED", "SERVICE", "ENV", "STRATEGY", "STATUS", "IMAGE", "WORKFLOW ID / RUN ID")
	for _, r := range rows {
		fmt.Fprintf(w, "%-20s  %-16s  %-8s  %-10s  %-18s  %-28s  %s / %s\n", r.StartedAt.Format(time.DateTime), r.Service, orDash(r.Environment),
			r.Strategy, r.Status, orDash(r.Image), r.WorkflowID, r.RunID)
	}
	if len(rows) == 0 {
		fmt.Fprintln(w, "(none match "+f.VisibilityQuery()+")")
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func listStore(cmd *cobra.Command, g *globals, f store.Filter) error {
	st, err := g.openStore(cmd.Context())
	if err != nil {
		return err
	}
	defer st.Close()
	rows, err := st.List(cmd.Context(), f)
	if err != nil {
		return err
	}
	if g.jsonOut {
		return writeJSON(cmd.OutOrStdout(), rows)
	}
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "%-20s  %-16s  %-10s  %-16s  %-28s  %s\n", "STARTED", "SERVICE", "STRATEGY", "STATUS", "IMAGE", "WORKFLOW ID / RUN ID")
	for _, r := range rows {
		fmt.Fprintf(w, "%-20s  %-16s  %-10s  %-16s  %-28s  %s / %s\n", r.CreatedAt.Format(time.DateTime), r.Service, r.Strategy,
			r.Status, r.ImageTo, r.WorkflowID, r.RunID)
	}
	if len(rows) == 0 {
		fmt.Fprintln(w, "(no rollouts recorded)")
	}
	return nil
}

func printTrail(w io.Writer, tr audit.Trail) {
	p := tr.Plan
	fmt.Fprintf(w, "rollout   %s (run %s)\n", p.WorkflowID, p.RunID)
	if p.ExecutionID != "" {
		fmt.Fprintf(w, "execution %s\n", p.ExecutionID)
	}
	fmt.Fprintf(w, "service   %s on %s (%s), %s: %s → %s\n", p.Service, p.Platform, p.Target, p.Strategy, orNone(p.ImageFrom), p.ImageTo)
	fmt.Fprintf(w, "status    %s", p.Status)
	if p.CompletedAt != nil {
		fmt.Fprintf(w, " after %s", p.CompletedAt.Sub(p.CreatedAt).Round(time.Second))
	}
	fmt.Fprintln(w)
	if p.Error != "" {
		fmt.Fprintf(w, "reason    %s\n", p.Error)
	}
	fmt.Fprintln(w, "stages:")
	for _, s := range tr.Stages {
		r := s.Rounds
		fmt.Fprintf(w, "  %d. %-12s %-11s new %d/%d  rounds %d healthy, %d degraded, %d failed, %d no-data", s.Index+1, s.Name, s.Status,
			s.InstancesUpdated, s.InstancesTotal, r.Healthy, r.Degraded, r.Failed, r.NoData)
		if s.Error != "" {
			fmt.Fprintf(w, "  error: %s", s.Error)
		}
		fmt.Fprintln(w)
	}
	r := tr.Rounds
	fmt.Fprintf(w, "check rounds recorded: %d healthy, %d degraded, %d failed, %d no-data (%d check results)\n",
		r.Healthy, r.Degraded, r.Failed, r.NoData, tr.Checks)
	fmt.Fprintln(w, "events:")
	for _, e := range tr.Events {
		fmt.Fprintf(w, "  %3d %s  %s\n", e.Seq, e.At.Format(time.RFC3339), describeEvent(e))
	}
}

func describeEvent(e audit.Event) string {
	switch e.Kind {
	case audit.KindStage:
		s := fmt.Sprintf("stage %d %s: %s → %s", *e.Stage+1, e.Action, orNone(e.From), e.To)
		if e.Error != "" {
			s += " (" + e.Error + ")"
		}
		return s
	case audit.KindControl:
		s := fmt.Sprintf("%s via %s by %s", e.Action, e.Via, orNone(e.By))
		if e.Reason != "" {
			s += fmt.Sprintf(" %q", e.Reason)
		}
		if !e.Accepted {
			s += " REJECTED: " + e.Error
		}
		return s
	case audit.KindDropped:
		return "not kept: " + e.Reason
	case api.KindHandoff:
		return "the rest of the trail handed to workflow " + e.To + ": " + e.Reason
	case audit.KindOutcome:
		s := "outcome " + e.To
		if e.Reason != "" {
			s += ": " + e.Reason
		}
		return s
	}
	return fmt.Sprintf("phase %s → %s", orNone(e.From), e.To)
}
