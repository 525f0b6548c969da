package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// clearTimeout bounds a clear: the worker looks, records and deletes.
const clearTimeout = time.Minute

// clearCmd clears the hold a failed rollback left on a target, through the
// worker (the starter has no platform credentials): a ClearHold workflow
// under the target's rollout ID, so it never runs beside a rollout of it.
func clearCmd(g *globals) *cobra.Command {
	var req api.ClearHoldRequest
	cmd := &cobra.Command{
		Use:   "clear TARGET|SPEC",
		Short: "Clear the hold a failed rollback (rollback_failed) left on a target",
		Long: `Clear the hold a failed rollback left on a target.

A rollout that ends rollback_failed holds its target: what runs may be mixed or broken, so
every later rollout of it, however it is started, is rejected until an operator has looked
and cleared the hold. The worker clears it and records who (--by, default user@host) and why
(--reason, required) in the audit trail. A target with no hold is left as it is.

TARGET is a target key (docker:SERVICE, k8s:NAMESPACE/DEPLOYMENT, k8s:CLUSTER/NAMESPACE/DEPLOYMENT, with or without "deploy:")
or the path of a spec file; give the spec when its Kubernetes cluster needs its own
kubeconfig or context. Refused while a rollout of the target is open.`,
		Example: `  starter clear docker:hello --reason "v1 restored by hand, checked" --by alice
  starter clear deploy:k8s:prod/payment --reason "scaled back to v41"
  starter clear deployments/examples/canary.yaml --reason "..."`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := api.CheckBy(req.By); err != nil {
				return &exitError{exitInvalid, fmt.Errorf("--%w", err)}
			}
			if err := api.CheckReason(req.Reason); err != nil {
				return &exitError{exitInvalid, fmt.Errorf("--%w", err)}
			}
			s, err := clearTarget(args[0])
			if err != nil {
				return err
			}
			req.Spec = s
			if req.By == "" {
				req.By = defaultIdentity()
			}
			c, err := g.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), clearTimeout)
			defer cancel()
			res, err := startClear(ctx, c, req)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if g.jsonOut {
				return writeJSON(out, res)
			}
			if res.Cleared == nil {
				fmt.Fprintf(out, "%s was not held: nothing to clear\n", res.Target)
				return nil
			}
			h := res.Cleared
			fmt.Fprintf(out, "hold on %s cleared by %s: %s\n  it was left by rollout %s (run %s) at %s: %s\n",
				res.Target, res.By, res.Reason, h.WorkflowID, h.RunID, h.At.UTC().Format(time.RFC3339), h.Reason)
			return nil
		},
	}
	cmd.Flags().StringVar(&req.Reason, "reason", "", "why the target may be rolled out again (kept in the audit trail)")
	cmd.Flags().StringVar(&req.By, "by", "", "who (default user@host)")
	_ = cmd.MarkFlagRequired("reason")
	return cmd
}

// clearTarget reads a target key or a spec file into the spec a clear
// needs: the platform and the target.
func clearTarget(arg string) (spec.Spec, error) {
	if _, err := os.Stat(arg); err == nil || strings.HasSuffix(arg, ".yaml") || strings.HasSuffix(arg, ".yml") || strings.HasSuffix(arg, ".json") {
		s, err := readParsed(arg, "spec", spec.Parse)
		if err != nil {
			return spec.Spec{}, err
		}
		if s.PlatformName() == "" {
			return spec.Spec{}, &exitError{exitInvalid, fmt.Errorf("%s: the spec names no platform", arg)}
		}
		return s, nil
	}
	key := strings.TrimPrefix(arg, "deploy:")
	bad := &exitError{exitInvalid, fmt.Errorf("%q is neither a spec file nor a target (docker:SERVICE, k8s:NAMESPACE/DEPLOYMENT, k8s:CLUSTER/NAMESPACE/DEPLOYMENT)", arg)}
	kind, name, ok := strings.Cut(key, ":")
	if !ok || name == "" {
		return spec.Spec{}, bad
	}
	switch kind {
	case spec.PlatformDocker:
		return spec.Spec{Service: name, Platform: spec.Platform{Docker: &spec.Docker{}}}, nil
	case "k8s", spec.PlatformKubernetes:
		// NAMESPACE/DEPLOYMENT, or CLUSTER/NAMESPACE/DEPLOYMENT for a
		// cluster the worker knows by name.
		parts := strings.Split(name, "/")
		cluster := ""
		if len(parts) == 3 {
			cluster, parts = parts[0], parts[1:]
		}
		if len(parts) != 2 || slices.Contains(parts, "") || (len(strings.Split(name, "/")) == 3 && cluster == "") {
			return spec.Spec{}, bad
		}
		return spec.Spec{Service: parts[1], Platform: spec.Platform{Kubernetes: &spec.Kubernetes{Cluster: cluster, Namespace: parts[0], Deployment: parts[1]}}}, nil
	}
	return spec.Spec{}, bad
}

// startClear runs ClearHold under the target's rollout ID and waits for it.
func startClear(ctx context.Context, c client.Client, req api.ClearHoldRequest) (api.ClearHoldResult, error) {
	var res api.ClearHoldResult
	id := req.Spec.WorkflowID()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                                       id,
		TaskQueue:                                api.TaskQueue,
		WorkflowIDConflictPolicy:                 enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		StaticSummary:                            "clear hold on " + req.Spec.TargetKey() + " by " + req.By,
	}, api.ClearHoldWorkflow, req)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		return res, fmt.Errorf("cannot clear %s: %s is open (a rollout or another clear); a hold is cleared between rollouts", req.Spec.TargetKey(), id)
	}
	if err != nil {
		return res, fmt.Errorf("start clear of %s: %w", req.Spec.TargetKey(), err)
	}
	if err := run.Get(ctx, &res); err != nil {
		return res, fmt.Errorf("clear %s (%s, run %s): %w", req.Spec.TargetKey(), id, run.GetRunID(), err)
	}
	return res, nil
}
