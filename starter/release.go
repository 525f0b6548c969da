package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/control"
	"github.com/stagecraft/stagecraft/internal/spec"
)

func releaseCmd(g *globals) *cobra.Command {
	var file, by string
	var wait bool
	cmd := &cobra.Command{
		Use:   "release -f RELEASE",
		Short: "Start a multi-service release: services in dependency order, rolled back in reverse on failure",
		Example: `  starter release -f deployments/examples/release.yaml --wait
  starter release -f deployments/examples/release.yaml --by ci@pipeline-42
  starter validate -f deployments/examples/release.yaml   # the effective release, stages included`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := api.CheckBy(by); err != nil {
				return &exitError{exitInvalid, fmt.Errorf("--%w", err)}
			}
			r, err := readParsed(file, "release", spec.ParseRelease)
			if err != nil {
				return err
			}
			c, ctx, done, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			started, err := control.StartReleaseWith(ctx, c, r, control.StartOptions{By: by})
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if g.jsonOut && !wait {
				return writeJSON(w, started)
			}
			if !g.jsonOut {
				fmt.Fprintf(w, "Release %s to %s\n  workflowId: %s\n  web UI:     %s\n", r.Name, r.Environment, started.WorkflowID, g.link(started.WorkflowID, started.RunID))
			}
			if !wait {
				fmt.Fprintf(w, "  follow:     starter watch %s\n", started.WorkflowID)
				return nil
			}
			d := newDisplay(w, false)
			if g.jsonOut {
				d.mode = modeQuiet
			}
			res, err := followRelease(ctx, c, started.WorkflowID, started.RunID, time.Second, d)
			if err != nil {
				return err
			}
			if g.jsonOut {
				if err := writeJSON(w, res); err != nil {
					return err
				}
			} else {
				printRelease(w, res)
			}
			return outcomeError("release", res.WorkflowID, res.Outcome, res.Error)
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "release file (- for stdin)")
	cmd.Flags().BoolVar(&wait, "wait", false, "follow the release to its end (as watch does); exit with its outcome's code")
	cmd.Flags().StringVar(&by, "by", "", "who starts it, as the audit trail and status show it, on the release and each of its rollouts (default: your user@host)")
	_ = cmd.MarkFlagRequired("file")
	return cmd
}

func printRelease(w io.Writer, st api.ReleaseStatus) {
	fmt.Fprintf(w, "release %s (%s): %s", st.WorkflowID, st.Phase, st.Outcome)
	if st.CompletedAt != nil {
		fmt.Fprintf(w, " after %s", st.CompletedAt.Sub(st.StartedAt).Round(time.Second))
	}
	fmt.Fprintln(w)
	if st.Error != "" {
		fmt.Fprintf(w, "reason: %s\n", st.Error)
	}
	if st.StartedBy != "" {
		fmt.Fprintf(w, "started by: %s\n", printable(st.StartedBy))
	}
	for i, stage := range st.Stages {
		fmt.Fprintf(w, "  %s (%s): %s\n", stage.Name, stage.Mode, strings.Join(stage.Services, ", "))
		for _, s := range st.Services {
			if s.Stage != i {
				continue
			}
			fmt.Fprintf(w, "    %-16s %-26s %s", s.Name, s.State, s.WorkflowID)
			if len(s.DependsOn) > 0 {
				fmt.Fprintf(w, "  after %s", strings.Join(s.DependsOn, ", "))
			}
			if s.Error != "" {
				fmt.Fprintf(w, "  (%s)", s.Error)
			}
			fmt.Fprintln(w)
		}
	}
	if len(st.RollbackOrder) > 0 {
		fmt.Fprintf(w, "rolled back, in order: %s\n", strings.Join(st.RollbackOrder, ", "))
	}
}
