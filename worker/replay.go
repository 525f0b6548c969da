package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/workflowservice/v1"
	tclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.uber.org/zap"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/codec"
	"github.com/stagecraft/stagecraft/internal/conn"
	"github.com/stagecraft/stagecraft/internal/logging"
	"github.com/stagecraft/stagecraft/workflows"
)

// replayCmd replays workflow histories against this build's workflow code:
// the check to run before an upgraded worker takes over running rollouts
// (docs/UPGRADING.md). A history the new code would not follow (a change
// not behind workflow.GetVersion) fails it.
func replayCmd() *cobra.Command {
	var temporal conn.Temporal
	var query string
	var limit int
	var files []string
	cmd := &cobra.Command{
		Use:   "replay",
		Short: "Replay rollout and release histories against this build before upgrading workers",
		Long: `Replay fetches the histories of Stagecraft's workflows from Temporal (by default every
open rollout and release) or reads exported JSON histories (--file), and replays each against
this binary's workflow code. It exits 1 when any history would not replay: upgrading the
workers to this build would break those runs.`,
		Example: `  # every running rollout and release on the cluster
  worker replay --address temporal.internal:7233 --namespace deploys
  # also those that closed in the last week
  worker replay --query 'ExecutionStatus = "Running" OR CloseTime > "2026-11-25T00:00:00Z"'
  # histories exported with: temporal workflow show -w ID -o json > h.json
  worker replay --file h.json`,
		SilenceUsage: true,
		RunE: func(c *cobra.Command, _ []string) error {
			log := zap.NewNop()
			// Histories sealed by the codec replay with its keys.
			ropts := worker.WorkflowReplayerOptions{}
			if cd, err := temporal.Codec(); err != nil {
				return err
			} else if cd != nil {
				ropts.DataConverter = cd.DataConverter()
				ropts.FailureConverter = codec.FailureConverter(ropts.DataConverter)
			}
			workflows.SetDataConverter(ropts.DataConverter)
			r, err := worker.NewWorkflowReplayerWithOptions(ropts)
			if err != nil {
				return err
			}
			workflows.Register(r)
			var failed []string
			n := 0
			report := func(what string, err error) {
				n++
				if err != nil {
					failed = append(failed, what)
					fmt.Fprintf(c.OutOrStdout(), "FAIL %s: %v\n", what, err)
					return
				}
				fmt.Fprintf(c.OutOrStdout(), "ok   %s\n", what)
			}
			if len(files) > 0 {
				for _, f := range files {
					report(f, r.ReplayWorkflowHistoryFromJSONFile(logging.Temporal(log), f))
				}
			} else {
				opts, err := temporal.Options()
				if err != nil {
					return err
				}
				opts.Logger = logging.Temporal(log)
				tc, err := tclient.Dial(opts)
				if err != nil {
					return conn.DialError(opts, err)
				}
				defer tc.Close()
				ctx, cancel := context.WithTimeout(c.Context(), 10*time.Minute)
				defer cancel()
				err = eachWorkflow(ctx, tc, opts.Namespace, stagecraftTypes(query), limit, func(id, run string) {
					h, err := history(ctx, tc, id, run)
					if err == nil {
						err = r.ReplayWorkflowHistory(logging.Temporal(log), h)
					}
					report(id+" "+run, err)
				})
				if err != nil {
					return err
				}
			}
			fmt.Fprintf(c.OutOrStdout(), "replayed %d histories against this build: %d ok, %d failed\n", n, n-len(failed), len(failed))
			if len(failed) > 0 {
				return fmt.Errorf("%d of %d histories do not replay on this build: do not roll it out to the workers (see docs/UPGRADING.md)", len(failed), n)
			}
			return nil
		},
	}
	temporal.AddFlags(cmd.Flags())
	cmd.Flags().StringVar(&query, "query", `ExecutionStatus = "Running"`, "visibility query selecting the runs to replay (Stagecraft's workflow types are added)")
	cmd.Flags().IntVar(&limit, "limit", 1000, "replay at most this many runs")
	cmd.Flags().StringSliceVar(&files, "file", nil, "replay these JSON history files instead of fetching (repeatable)")
	return cmd
}

// stagecraftTypes narrows query to Stagecraft's workflow types.
func stagecraftTypes(query string) string {
	types := []string{api.CanaryWorkflow, api.BlueGreenWorkflow, api.RollingWorkflow,
		api.RecreateWorkflow, api.ReleaseWorkflow}
	q := fmt.Sprintf("WorkflowType IN ('%s')", strings.Join(types, "', '"))
	if strings.TrimSpace(query) != "" {
		q += " AND (" + query + ")"
	}
	return q
}

// eachWorkflow calls fn for up to limit runs matching query.
func eachWorkflow(ctx context.Context, tc tclient.Client, namespace, query string, limit int, fn func(id, run string)) error {
	var token []byte
	seen := 0
	for {
		resp, err := tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: namespace, Query: query, NextPageToken: token, PageSize: 100})
		if err != nil {
			return fmt.Errorf("list workflows (%s): %w", query, err)
		}
		for _, e := range resp.GetExecutions() {
			if seen >= limit {
				return nil
			}
			seen++
			fn(e.GetExecution().GetWorkflowId(), e.GetExecution().GetRunId())
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			return nil
		}
	}
}

// history fetches a run's whole history.
func history(ctx context.Context, tc tclient.Client, id, run string) (*historypb.History, error) {
	h := &historypb.History{}
	it := tc.GetWorkflowHistory(ctx, id, run, false, 0)
	for it.HasNext() {
		ev, err := it.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("fetch history: %w", err)
		}
		h.Events = append(h.Events, ev)
	}
	return h, nil
}
