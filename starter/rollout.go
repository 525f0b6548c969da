package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/control"
	"github.com/stagecraft/stagecraft/internal/spec"
)

func deployCmd(g *globals) *cobra.Command {
	var file, executionID, by string
	var wait bool
	cmd := &cobra.Command{
		Use:   "deploy -f SPEC",
		Short: "Start a rollout from a spec (YAML or JSON)",
		Long: `Start a rollout from a spec (YAML or JSON). Starting the same request again joins the
running rollout; another request for a busy target is refused with the running one's name, and
so is the same --execution-id with a different spec (naming what differs).
With --wait, follow it like watch does and exit with its outcome's code.`,
		Example: `  starter deploy -f deployments/examples/canary.yaml
  starter deploy -f spec.yaml --wait --json --by ci@pipeline-42
  starter validate -f spec.yaml | starter deploy -f - --execution-id req-42`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := api.CheckBy(by); err != nil {
				return &exitError{exitInvalid, fmt.Errorf("--%w", err)}
			}
			s, err := readParsed(file, "spec", spec.Parse)
			if err != nil {
				return err
			}
			if executionID != "" {
				s.ExecutionID = executionID
			}
			c, ctx, done, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			started, err := control.StartWith(ctx, c, s, control.StartOptions{By: by})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if !wait {
				if g.jsonOut {
					return writeJSON(out, started)
				}
				verb := "started"
				if started.Joined {
					verb = "already running (same request), joined"
				}
				fmt.Fprintf(out, "%s %s\n  workflowId: %s\n  runId:      %s\n  web UI:     %s\n  follow:     starter watch %s\n", started.Workflow, verb,
					started.WorkflowID, started.RunID, g.link(started.WorkflowID, started.RunID), started.WorkflowID)
				return nil
			}
			d := newDisplay(out, false)
			if g.jsonOut {
				d.mode = modeQuiet
			} else {
				fmt.Fprintf(out, "%s %s → %s\n  workflowId: %s\n  web UI:     %s\n", started.Workflow, s.Service, s.Image,
					started.WorkflowID, g.link(started.WorkflowID, started.RunID))
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
			return outcomeError("rollout", res.WorkflowID, res.Outcome, res.Error)
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "spec file (- for stdin)")
	cmd.Flags().BoolVar(&wait, "wait", false, "follow the rollout to its end (as watch does); exit with its outcome's code")
	cmd.Flags().StringVar(&by, "by", "", "who starts it, as the audit trail and history show it (default: your user@host)")
	cmd.Flags().StringVar(&executionID, "execution-id", "", "your own ID for this request, kept in the result and usable to find it")
	_ = cmd.MarkFlagRequired("file")
	return cmd
}

// noArgs is cobra.NoArgs whose refusal is invalid input (exit 2).
func noArgs(cmd *cobra.Command, args []string) error { return exactArgs(0)(cmd, args) }

func validateCmd(g *globals) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "validate -f SPEC",
		Short: "Check a spec or a release in full and print it with defaults applied (a release's stages derived); starts nothing",
		Long: `Check a spec or a release in full and print it, as JSON, with every default applied
(a release's stages derived); starts nothing. Every problem is listed with its field path,
and the exit code is 2.`,
		Example: `  starter validate -f deployments/examples/canary.yaml
  starter validate -f deployments/examples/release.yaml`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, r, err := readEither(file)
			switch {
			case err != nil:
				return err
			case r != nil:
				return writeJSON(cmd.OutOrStdout(), r)
			}
			return writeJSON(cmd.OutOrStdout(), s)
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "spec file (- for stdin)")
	_ = cmd.MarkFlagRequired("file")
	return cmd
}

func statusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status ID",
		Short: "Show a rollout's plan, stages, evidence and control log, or a release's services",
		Long: `Show a rollout's plan, stages, latest evidence, control log and approval gates (or a
release's services and their states), once. To follow it live, use watch.

` + idsHelp,
		Example: `  starter status deploy:docker:hello
  starter status my-execution-id --json
  starter status release:prod/shop`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			ex, err := control.Find(ctx, c, args[0])
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if control.IsRelease(ex.WorkflowID) {
				v, _, err := lookRelease(ctx, c, ex.WorkflowID, ex.RunID)
				if err != nil {
					return err
				}
				if v.warn != "" {
					return errors.New(v.warn)
				}
				if g.jsonOut {
					return writeJSON(out, v.st)
				}
				printRelease(out, v.st)
				return nil
			}
			var st api.Status
			if ex.Open() {
				st, err = control.Status(ctx, c, ex.WorkflowID)
			} else {
				st, err = control.Final[api.Status](ctx, c, ex)
			}
			if err != nil {
				return err
			}
			if g.jsonOut {
				return writeJSON(out, st)
			}
			printStatus(out, st, time.Now())
			if st.Phase != api.PhaseDone {
				// Rounds between the workflow's records, live from the watcher.
				if live, err := control.LiveRound(ctx, c, ex.WorkflowID); err == nil && live != nil &&
					(st.LatestRound == nil || live.At.After(st.LatestRound.At)) {
					printRound(out, "live round (running watcher)", live)
				}
			}
			return nil
		},
	}
}
