package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/control"
	"github.com/stagecraft/stagecraft/internal/spec"
)

func planCmd(g *globals) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "plan -f SPEC",
		Short: "Say what a rollout of a spec would do now, changing nothing",
		Long: `Say what a rollout of a spec would do if it started now, changing nothing: a worker reads
the live target (with its own credentials and policies, not yours) and reports the snapshot the
rollout would take, which is what a rollback restores; each stage's desired state (new and old
instances or replicas, who serves traffic), approval gates and bakes, and the least time it takes;
and each prerequisite's verdict (spec, image present, hold, capacity at the peak, a rollout running).
The stages are the ones a rollout started now would run. Exits 0 when the rollout would start and
5 when it would be rejected.`,
		Example: `  starter plan -f deployments/examples/canary.yaml
  starter plan -f spec.yaml --json | jq '.stages[] | {name, new, old}'
  starter validate -f spec.yaml | starter plan -f -`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := readParsed(file, "spec", spec.Parse)
			if err != nil {
				return err
			}
			c, ctx, done, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			pv, err := control.Preview(ctx, c, s)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if g.jsonOut {
				if err := writeJSON(w, pv); err != nil {
					return err
				}
			} else {
				printPreview(w, pv)
			}
			if !pv.Ready {
				return &exitError{exitRejected, errors.New("the rollout would be rejected before any change: " + failedChecks(pv))}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", `the spec, YAML or JSON ("-" reads standard input)`)
	_ = cmd.MarkFlagRequired("file")
	return cmd
}

// printPreview writes a plan for a reader.
func printPreview(w io.Writer, pv api.Preview) {
	fmt.Fprintf(w, "Plan of %s %s → %s (%s, %s); nothing was changed\n", pv.Strategy, pv.Target, pv.Image, pv.Workflow, pv.WorkflowID)
	switch {
	case pv.Snapshot.FreshInstall:
		fmt.Fprintln(w, "Now:       nothing runs (a fresh install; a rollback removes what it started)")
	case pv.Snapshot.Count > 0:
		fmt.Fprintf(w, "Now:       %d instance(s) of %s; a rollback restores exactly these\n", pv.Snapshot.Count, strings.Join(pv.Snapshot.Images, ", "))
	}
	if len(pv.Stages) > 0 {
		fmt.Fprintln(w, "Stages:")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  #\tstage\tnew\told\ttraffic\tbake\t")
		for i, st := range pv.Stages {
			gate := ""
			if st.Gate {
				gate = "waits for approval"
			}
			fmt.Fprintf(tw, "  %d\t%s\t%d\t%d\t%s\t%s\t%s\n", i+1, st.Name, st.New, st.Old, st.Traffic, st.Bake, gate)
		}
		_ = tw.Flush()
	}
	if pv.Final != nil {
		fmt.Fprintf(w, "Then:      %d new, %d old, traffic to %s\n", pv.Final.New, pv.Final.Old, pv.Final.Traffic)
	}
	if len(pv.Stages) > 0 {
		least := fmt.Sprintf("At least:  %s of bakes", pv.MinDuration.Round(time.Second))
		if pv.Gates > 0 {
			least += fmt.Sprintf(", plus %d approval gate(s)", pv.Gates)
		}
		fmt.Fprintln(w, least)
	}
	fmt.Fprintln(w, "Checks:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range pv.Checks {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", c.Verdict, c.Name, c.Message)
	}
	_ = tw.Flush()
	if pv.Ready {
		fmt.Fprintln(w, "Ready: a rollout started now would run these stages.")
	} else {
		fmt.Fprintln(w, "Not ready: a rollout started now would be rejected before any change.")
	}
}

// failedChecks names the checks that failed, with their messages.
func failedChecks(pv api.Preview) string {
	var out []string
	for _, c := range pv.Checks {
		if c.Verdict == api.CheckFailed {
			out = append(out, c.Name+": "+c.Message)
		}
	}
	return strings.Join(out, "; ")
}
