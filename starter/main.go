// Command starter starts and steers Stagecraft rollouts.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"

	"github.com/stagecraft/stagecraft/internal/control"
	"github.com/stagecraft/stagecraft/internal/spec"
	"github.com/stagecraft/stagecraft/workflows"
)

// Exit codes: 0 succeeded, 1 error, 2 invalid input, 3 the rollout did not
// succeed (rolled back, rollback failed or rejected).
const (
	exitFailure    = 1
	exitInvalid    = 2
	exitNotSuccess = 3
)

type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

type globals struct {
	address, namespace, uiURL string
	databaseURL               string
	jsonOut                   bool
}

func main() {
	g := &globals{}
	root := &cobra.Command{
		Use:   "starter",
		Short: "Start and steer Stagecraft rollouts",
		Example: `  starter deploy -f deployments/examples/canary.yaml --wait
  starter status deploy:docker:hello
  starter pause deploy:docker:hello --reason "checking dashboards"
  starter abort deploy:docker:hello --reason "error rate up"`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.address, "address", envOr("TEMPORAL_ADDRESS", "127.0.0.1:7233"), "Temporal frontend host:port (env TEMPORAL_ADDRESS)")
	pf.StringVar(&g.namespace, "namespace", envOr("TEMPORAL_NAMESPACE", "default"), "Temporal namespace (env TEMPORAL_NAMESPACE)")
	pf.StringVar(&g.uiURL, "ui", envOr("TEMPORAL_UI", "http://127.0.0.1:8233"), "Temporal Web UI base URL, for links (env TEMPORAL_UI)")
	pf.BoolVar(&g.jsonOut, "json", false, "print JSON")
	pf.StringVar(&g.databaseURL, "database-url", os.Getenv("DATABASE_URL"), "PostgreSQL of the audit trail, for history and list (env DATABASE_URL)")

	root.AddCommand(deployCmd(g), validateCmd(g), statusCmd(g), historyCmd(g), listCmd(g), releaseCmd(g))
	for _, action := range []string{workflows.SignalPause, workflows.SignalResume, workflows.SignalAbort, workflows.SignalPromote} {
		root.AddCommand(controlCmd(g, action))
	}
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		var ee *exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		os.Exit(exitFailure)
	}
}

func (g *globals) dial() (client.Client, error) {
	c, err := client.Dial(client.Options{HostPort: g.address, Namespace: g.namespace, Logger: log.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))})
	if err != nil {
		return nil, fmt.Errorf("connect to Temporal at %s: %w", g.address, err)
	}
	return c, nil
}

func (g *globals) link(workflowID, runID string) string {
	return fmt.Sprintf("%s/namespaces/%s/workflows/%s/%s/history", strings.TrimRight(g.uiURL, "/"), g.namespace, workflowID, runID)
}

func readSpec(path string) (spec.Spec, error) {
	var data []byte
	var err error
	if path == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return spec.Spec{}, &exitError{exitInvalid, fmt.Errorf("read spec: %w", err)}
	}
	s, err := spec.Parse(data)
	if err != nil {
		return spec.Spec{}, &exitError{exitInvalid, fmt.Errorf("%s: %w", path, err)}
	}
	return s, nil
}

func deployCmd(g *globals) *cobra.Command {
	var file, executionID string
	var wait bool
	cmd := &cobra.Command{
		Use:   "deploy -f SPEC",
		Short: "Start a rollout from a spec (YAML or JSON)",
		Example: `  starter deploy -f deployments/examples/canary.yaml
  starter deploy -f spec.yaml --wait --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := readSpec(file)
			if err != nil {
				return err
			}
			if executionID != "" {
				s.ExecutionID = executionID
			}
			c, err := g.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			started, err := control.Start(ctx, c, s)
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
				fmt.Fprintf(out, "%s %s\n  workflowId: %s\n  runId:      %s\n  web UI:     %s\n", started.Workflow, verb,
					started.WorkflowID, started.RunID, g.link(started.WorkflowID, started.RunID))
				return nil
			}
			if !g.jsonOut {
				fmt.Fprintf(out, "%s %s → %s\n  workflowId: %s\n  web UI:     %s\n", started.Workflow, s.Service, s.Image,
					started.WorkflowID, g.link(started.WorkflowID, started.RunID))
			}
			var p progress
			res, err := control.WaitOutcome(ctx, c, started.WorkflowID, started.RunID, time.Second, func(st workflows.Status) {
				if !g.jsonOut {
					p.print(out, st)
				}
			})
			if err != nil {
				return err
			}
			if g.jsonOut {
				if err := writeJSON(out, res); err != nil {
					return err
				}
			} else {
				p.print(out, res)
				printResult(out, res)
			}
			if res.Outcome != workflows.OutcomeSucceeded {
				return &exitError{exitNotSuccess, fmt.Errorf("rollout %s: %s", res.Outcome, res.Error)}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "spec file (- for stdin)")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for the outcome, printing progress; exit 0 only on succeeded")
	cmd.Flags().StringVar(&executionID, "execution-id", "", "your own ID for this request, kept in the result and usable to find it")
	_ = cmd.MarkFlagRequired("file")
	return cmd
}

func validateCmd(g *globals) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:     "validate -f SPEC",
		Short:   "Check a spec or a release in full and print it with defaults applied (a release's stages derived); starts nothing",
		Example: `  starter validate -f deployments/examples/canary.yaml`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if data, err := readFile(file); err == nil && file != "-" && isRelease(data) {
				r, err := readRelease(file)
				if err != nil {
					return err
				}
				return writeJSON(cmd.OutOrStdout(), r)
			}
			s, err := readSpec(file)
			if err != nil {
				return err
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
		Use:     "status ID",
		Short:   "Show a rollout's plan, stages and control log (ID: workflow ID or execution ID)",
		Example: `  starter status deploy:docker:hello --json`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			ctx := cmd.Context()
			id, err := control.Resolve(ctx, c, args[0])
			if err != nil {
				return err
			}
			st, err := control.Status(ctx, c, id)
			if err != nil {
				return err
			}
			if g.jsonOut {
				return writeJSON(cmd.OutOrStdout(), st)
			}
			printStatus(cmd.OutOrStdout(), st)
			if st.Phase != workflows.PhaseDone {
				// Rounds between the workflow's records, live from the watcher.
				if live, err := control.LiveRound(ctx, c, id); err == nil && live != nil &&
					(st.LatestRound == nil || live.At.After(st.LatestRound.At)) {
					printRound(cmd.OutOrStdout(), "live round (running watcher)", live)
				}
			}
			return nil
		},
	}
}

func controlCmd(g *globals, action string) *cobra.Command {
	var req workflows.ControlRequest
	help := map[string]string{
		workflows.SignalPause:   "Pause a rollout: the bake clock stops and keeps the time left",
		workflows.SignalResume:  "Resume a paused rollout where its bake left off",
		workflows.SignalAbort:   "Abort a rollout: it rolls back to the snapshot at once",
		workflows.SignalPromote: "Promote a rollout: skip the remaining bakes and finish",
	}
	cmd := &cobra.Command{
		Use:     action + " ID",
		Short:   help[action],
		Example: fmt.Sprintf("  starter %s deploy:docker:hello --reason \"...\"\n  starter %s release:prod/shop --reason \"...\"", action, action),
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			id, err := control.Resolve(ctx, c, args[0])
			if err != nil {
				return err
			}
			if req.By == "" {
				req.By = defaultIdentity()
			}
			if control.IsRelease(id) {
				if action == workflows.SignalPromote {
					return fmt.Errorf("promote %s: a release has no bakes of its own to skip; promote its rollouts", id)
				}
				st, err := control.ActRelease(ctx, c, id, action, req)
				if err != nil {
					return err
				}
				if g.jsonOut {
					return writeJSON(cmd.OutOrStdout(), st)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s accepted: %s is %s\n", action, id, st.Phase)
				return nil
			}
			st, err := control.Act(ctx, c, id, action, req)
			if err != nil {
				return err
			}
			if g.jsonOut {
				return writeJSON(cmd.OutOrStdout(), st)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s accepted: %s is %s\n", action, id, st.Phase)
			return nil
		},
	}
	cmd.Flags().StringVar(&req.Reason, "reason", "", "why (kept in the rollout's control log)")
	cmd.Flags().StringVar(&req.By, "by", "", "who (default user@host)")
	return cmd
}

func defaultIdentity() string {
	host, _ := os.Hostname()
	user := os.Getenv("USER")
	if user == "" {
		user = "unknown"
	}
	return user + "@" + host
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
