package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/control"
)

// controlTimeout bounds a control action: the update waits for a worker.
const controlTimeout = 30 * time.Second

var controlHelp = map[string]struct{ short, long string }{
	api.UpdatePause: {"Pause a rollout or release: the bake clock stops and keeps the time left",
		"The health watcher keeps checking while paused: a failure still rolls back. A release passes the pause on to its running rollouts."},
	api.UpdateResume: {"Resume a paused rollout or release where its bake left off",
		"A new bake timer runs for exactly the time that was left."},
	api.UpdateAbort: {"Abort a rollout or release: it rolls back to the snapshot at once",
		"The bake is interrupted at once; the rollback is verified with the same checks. The outcome is rolled_back (or rollback_failed)."},
	api.UpdatePromote: {"Promote a rollout: skip the remaining bakes and finish",
		"The stages left are still converged, without waiting out their bakes."},
	api.UpdateApprove: {"Approve the stage a rollout waits on (phase awaiting_approval)",
		"A stage named in the spec's approval.before waits, up to approval.timeout, for this; watch and status show the open gate, its deadline and what happens at the deadline."},
}

// controlCmd is pause, resume, abort, promote or approve: an update whose
// validator refuses an illegal transition with its reason.
func controlCmd(g *globals, action string) *cobra.Command {
	var req api.ControlRequest
	help := controlHelp[action]
	example := fmt.Sprintf("  starter %s deploy:docker:hello --reason \"...\"\n  starter %s release:prod/shop --reason \"...\" --by alice", action, action)
	if action == api.UpdatePromote || action == api.UpdateApprove {
		example = fmt.Sprintf("  starter %s deploy:docker:hello --reason \"...\"\n  starter %s deploy:k8s:prod/payment --reason \"...\" --by alice --json", action, action)
	}
	cmd := &cobra.Command{
		Use:   action + " ID",
		Short: help.short,
		Long: help.short + ".\n" + help.long + `

The reason and who (--by, default user@host) land in the control log and the audit trail.
An action that is illegal now (resume when not paused, anything on a finished rollout) is
refused with the reason, and nothing changes; the exit code is then 1.

` + idsHelp,
		Example: example,
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := api.CheckBy(req.By); err != nil {
				return &exitError{exitInvalid, fmt.Errorf("--%w", err)}
			}
			if err := api.CheckReason(req.Reason); err != nil {
				return &exitError{exitInvalid, fmt.Errorf("--%w", err)}
			}
			c, err := g.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), controlTimeout)
			defer cancel()
			ex, err := control.Find(ctx, c, args[0])
			if err != nil {
				return err
			}
			id := ex.WorkflowID
			if req.By == "" {
				req.By = defaultIdentity()
			}
			out := cmd.OutOrStdout()
			if control.IsRelease(id) {
				switch action {
				case api.UpdatePromote:
					return fmt.Errorf("cannot promote %s: a release has no bakes of its own to skip; promote its rollouts", id)
				case api.UpdateApprove:
					return fmt.Errorf("cannot approve %s: a release has no approval gates of its own; approve its rollouts", id)
				}
				st, err := control.Steer[api.ReleaseStatus](ctx, c, id, action, req)
				if err != nil {
					return err
				}
				if g.jsonOut {
					return writeJSON(out, st)
				}
				phase := st.Phase
				if st.Paused {
					phase += " (paused)"
				}
				fmt.Fprintf(out, "%s accepted: %s is %s\n", action, id, phase)
				return nil
			}
			st, err := control.Steer[api.Status](ctx, c, id, action, req)
			if err != nil {
				return err
			}
			if g.jsonOut {
				return writeJSON(out, st)
			}
			printAccepted(out, action, st, time.Now())
			return nil
		},
	}
	cmd.Flags().StringVar(&req.Reason, "reason", "", "why (kept in the control log and the audit trail)")
	cmd.Flags().StringVar(&req.By, "by", "", "who (default user@host)")
	if action == api.UpdateApprove {
		_ = cmd.MarkFlagRequired("reason")
	}
	return cmd
}

// printAccepted says what an accepted action left the rollout doing.
func printAccepted(w io.Writer, action string, st api.Status, now time.Time) {
	fmt.Fprintf(w, "%s accepted: %s is %s", action, st.WorkflowID, st.Phase)
	switch {
	case st.Paused:
		if left, ok := bakeLeft(st, now); ok {
			fmt.Fprintf(w, ", bake time left %s (frozen)", short(left))
		}
	case action == api.UpdateApprove:
		for i := len(st.Approvals) - 1; i >= 0; i-- {
			if a := st.Approvals[i]; a.ApprovedAt != nil {
				fmt.Fprintf(w, ", %s approved by %s", a.Name, orNone(a.ApprovedBy))
				break
			}
		}
	}
	fmt.Fprintf(w, "\n  follow: starter watch %s\n", st.WorkflowID)
}
