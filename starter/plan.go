package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/control"
	"github.com/stagecraft/stagecraft/internal/spec"
)

func planCmd(g *globals) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "plan -f SPEC|RELEASE",
		Short: "Say what a rollout (or release) would do now, changing nothing",
		Long: `Say what a rollout of a spec would do if it started now, changing nothing: a worker reads
the live target (with its own credentials and policies, not yours) and reports the snapshot the
rollout would take, which is what a rollback restores; each stage's desired state (new and old
instances or replicas, who serves traffic), approval gates and bakes, and the least time it takes;
and each prerequisite's verdict (spec, image present, hold, capacity at the peak, a rollout running).
A rollout of the target already running is judged as deploy would: another request would be
refused as busy (the plan is not ready), the same request would join it, and one that has its
outcome and is closing would be waited for, then started.
The stages are the ones a rollout started now would run. A release file is planned service by
service, wave by wave. Exits 0 when the rollout (every one of the release's) would start and 5
when it would be rejected.`,
		Example: `  starter plan -f deployments/examples/canary.yaml
  starter plan -f spec.yaml --json | jq '.stages[] | {name, new, old}'
  starter validate -f spec.yaml | starter plan -f -
  starter plan -f deployments/examples/release-mixed.yaml`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, r, err := readEither(file)
			if err != nil {
				return err
			}
			c, ctx, done, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			w := cmd.OutOrStdout()
			if r != nil {
				pv, err := control.PreviewRelease(ctx, c, *r)
				if err != nil {
					return err
				}
				return showPlan(w, g, pv, printReleasePreview, pv.Ready, "release", releaseNotReady(pv))
			}
			pv, err := control.Preview(ctx, c, *s)
			if err != nil {
				return err
			}
			if chk, ok := g.startVerdict(ctx, c, *s); ok {
				pv = withTargetCheck(pv, chk)
			}
			return showPlan(w, g, pv, printPreview, pv.Ready, "rollout", failedChecks(pv))
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", `the spec, YAML or JSON ("-" reads standard input)`)
	_ = cmd.MarkFlagRequired("file")
	return cmd
}

// showPlan prints a plan (as JSON with --json) and says, as the exit
// code, whether what it plans would start.
func showPlan[T any](w io.Writer, g *globals, pv T, print func(io.Writer, T), ready bool, what, why string) error {
	if g.jsonOut {
		if err := writeJSON(w, pv); err != nil {
			return err
		}
	} else {
		print(w, pv)
	}
	if !ready {
		return &exitError{exitRejected, fmt.Errorf("the %s would be rejected before any change: %s", what, why)}
	}
	return nil
}

// printReleasePreview writes a release's plan, wave by wave.
func printReleasePreview(w io.Writer, pv api.ReleasePreview) {
	fmt.Fprintf(w, "Plan of release %s to %s (%s); nothing was changed\n", pv.Name, pv.Environment, pv.WorkflowID)
	for _, p := range pv.Problems {
		fmt.Fprintf(w, "  problem: %s\n", p)
	}
	for _, p := range pv.Prerequisites {
		fmt.Fprintf(w, "  prerequisite: %s\n", p)
	}
	for i, wave := range pv.Waves {
		fmt.Fprintf(w, "\nWave %d (%s): %s\n", i+1, wave.Mode, wave.Name)
		for _, svc := range wave.Services {
			fmt.Fprintf(w, "\n[%s]", svc.Name)
			if len(svc.DependsOn) > 0 {
				fmt.Fprintf(w, " after %s", strings.Join(svc.DependsOn, ", "))
			}
			fmt.Fprintln(w)
			printPreview(w, svc.Preview)
		}
	}
}

// releaseNotReady says why a release's plan is not ready.
func releaseNotReady(pv api.ReleasePreview) string {
	why := append(append([]string(nil), pv.Problems...), pv.Prerequisites...)
	for _, wave := range pv.Waves {
		for _, svc := range wave.Services {
			if !svc.Preview.Ready {
				why = append(why, svc.Name+": "+failedChecks(svc.Preview))
			}
		}
	}
	return strings.Join(why, "; ")
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
		for i, st := range pv.Stages {
			for _, c := range st.Changes {
				fmt.Fprintf(w, "  %d: %s\n", i+1, c)
			}
		}
	}
	if pv.Final != nil {
		fmt.Fprintf(w, "Then:      %d new, %d old, traffic to %s\n", pv.Final.New, pv.Final.Old, pv.Final.Traffic)
		for _, c := range pv.FinalChanges {
			fmt.Fprintf(w, "           %s\n", c)
		}
	}
	if len(pv.RollbackChanges) > 0 {
		fmt.Fprintln(w, "Rollback:  at any stage, back to the snapshot:")
		for _, c := range pv.RollbackChanges {
			fmt.Fprintf(w, "           %s\n", c)
		}
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

// startVerdict says what a start of s now would do with the target's
// running rollout, as deploy (control.Start) decides it: join it when it
// runs the same request (its memo's request ID and workflow type; the same
// execution ID with other parameters is refused as reused), wait for it to
// close when its outcome is decided, else refuse it as busy. ok is false
// when Temporal could not say (the worker's own "target" check stays).
func (g *globals) startVerdict(ctx context.Context, c client.Client, s spec.Spec) (chk api.PreviewCheck, ok bool) {
	s = s.WithDefaults()
	wid := s.WorkflowID()
	chk.Name = "target"
	d, err := c.DescribeWorkflowExecution(ctx, wid, "")
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf):
		chk.Verdict, chk.Message = api.CheckOK, "no rollout of "+s.TargetKey()+" is running"
		return chk, true
	case err != nil:
		return chk, false
	}
	info := d.GetWorkflowExecutionInfo()
	runID := info.GetExecution().GetRunId()
	if info.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		chk.Verdict, chk.Message = api.CheckOK, "no rollout of "+s.TargetKey()+" is running"
		return chk, true
	}
	request, fp := runMemo(info, g.dataConverter())
	name, _ := api.WorkflowFor(s.Strategy.Type)
	if request == s.RequestID() && info.GetType().GetName() == name {
		if fp != nil && !maps.Equal(fp, control.Fingerprint(s)) {
			chk.Verdict = api.CheckFailed
			chk.Message = fmt.Sprintf("a start now would be refused: execution ID %q is already in use by rollout %s (run %s) with a different spec",
				s.ExecutionID, wid, runID)
			return chk, true
		}
		chk.Verdict = api.CheckWarning
		chk.Message = fmt.Sprintf("a start now would join rollout %s (run %s), which runs this same request, and start nothing new", wid, runID)
		return chk, true
	}
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	st, qerr := control.Status(qctx, c, wid)
	cancel()
	if qerr == nil && st.RunID == runID && st.Outcome != "" {
		chk.Verdict = api.CheckWarning
		chk.Message = fmt.Sprintf("rollout %s (run %s) has its outcome (%s) and is closing: a start now waits for it to close (at most 90 s), then runs these stages",
			wid, runID, st.Outcome)
		return chk, true
	}
	chk.Verdict = api.CheckFailed
	chk.Message = "a start now would be refused: " + (&control.BusyError{WorkflowID: wid, RunID: runID, RequestID: request}).Error()
	return chk, true
}

// withTargetCheck puts chk in place of the plan's "target" check (or adds
// it); a failed one makes the plan not ready.
func withTargetCheck(pv api.Preview, chk api.PreviewCheck) api.Preview {
	pv.Checks = slices.Clone(pv.Checks)
	if i := slices.IndexFunc(pv.Checks, func(c api.PreviewCheck) bool { return c.Name == chk.Name }); i >= 0 {
		pv.Checks[i] = chk
	} else {
		pv.Checks = append(pv.Checks, chk)
	}
	if chk.Verdict == api.CheckFailed {
		pv.Ready = false
	}
	return pv
}

// runMemo reads the request ID and the spec fingerprint a rollout's memo
// records (control.StartWith); what cannot be read is empty.
func runMemo(info *workflowpb.WorkflowExecutionInfo, dc converter.DataConverter) (request string, fp map[string]string) {
	memo := info.GetMemo().GetFields()
	if p, ok := memo[api.MemoRequestID]; ok {
		_ = dc.FromPayload(p, &request)
	}
	if p, ok := memo[control.MemoSpec]; ok {
		_ = dc.FromPayload(p, &fp)
	}
	return request, fp
}
