//go:build integration

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stagecraft/stagecraft/client"
	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/itest"
)

// The upstream surface: the stock `temporal` CLI as a stand-in for any
// Temporal client in any language (JSON in, JSON out), and the public Go
// client package, both against the real dev server and Docker engine.

// interopSpec is a short canary written as an upstream caller would: only
// what it needs, no defaults applied (the workflow applies them).
func interopSpec(service, image string, replicas int, bake time.Duration) client.Spec {
	return client.Spec{
		Service:  service,
		Image:    image,
		Platform: client.Platform{Docker: &client.Docker{Replicas: replicas, Port: 8080}},
		Strategy: client.Strategy{Type: client.Canary, Steps: []int{50, 100}, Bake: client.Duration(bake)},
		Health: client.Health{
			Interval: client.Duration(250 * time.Millisecond),
			Checks: []client.Check{{Name: "healthz", HTTP: &client.HTTPCheck{
				URL: "http://{{.Address}}/healthz", ExpectStatus: client.StatusSet{"200"}}}},
		},
	}
}

// temporalCLI runs the pinned temporal CLI against the test dev server
// and returns its stdout and stderr; err is set when it exits non-zero.
func temporalCLI(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	bin := os.Getenv(itest.TemporalBinEnv)
	if bin == "" {
		home, _ := os.UserHomeDir()
		bin = filepath.Join(home, ".cache", "stagecraft", "temporal-1.5.1", "temporal")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(args, "--address", server.FrontendHostPort(), "--color", "never")...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("run temporal %v: %v", args, err)
	}
	return out.String(), errb.String(), err
}

func mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := temporalCLI(t, args...)
	require.NoError(t, err, "temporal %v\nstdout: %s\nstderr: %s", args, out, errOut)
	return out
}

// cliStart starts a canary with the CLI, the spec as JSON input, and
// returns the run ID the CLI printed.
func cliStart(t *testing.T, s client.Spec, extra ...string) string {
	t.Helper()
	input, err := json.Marshal(s)
	require.NoError(t, err)
	out := mustCLI(t, append([]string{"workflow", "start", "--type", api.CanaryWorkflow, "--task-queue", api.TaskQueue,
		"--workflow-id", s.WorkflowID(), "--input", string(input), "--output", "json"}, extra...)...)
	var started struct {
		WorkflowID string `json:"workflowId"`
		RunID      string `json:"runId"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &started), out)
	require.Equal(t, s.WorkflowID(), started.WorkflowID)
	require.NotEmpty(t, started.RunID)
	return started.RunID
}

// cliStatus queries the status with the CLI and decodes its JSON.
func cliStatus(t *testing.T, workflowID string) client.Status {
	t.Helper()
	out := mustCLI(t, "workflow", "query", "--workflow-id", workflowID, "--type", api.QueryStatus, "--output", "json")
	var resp struct {
		QueryResult []client.Status `json:"queryResult"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &resp), out)
	require.Len(t, resp.QueryResult, 1, out)
	return resp.QueryResult[0]
}

// cliUpdate sends a control as an update with the CLI and decodes the
// status it answers with.
func cliUpdate(t *testing.T, workflowID, name, input string) client.Status {
	t.Helper()
	out := mustCLI(t, "workflow", "update", "execute", "--workflow-id", workflowID, "--name", name, "--input", input, "--output", "json")
	var resp struct {
		Name   string        `json:"name"`
		Result client.Status `json:"result"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &resp), out)
	require.Equal(t, name, resp.Name)
	return resp.Result
}

func TestTemporalCLIStartsACanaryFromJSON(t *testing.T) {
	itest.StartWorker(t, tc, dc)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	service := itest.Name("e2e-cli-json")
	cleanup(t, service)
	s := interopSpec(service, "stagecraft-demo:v1", 2, time.Second)

	runID := cliStart(t, s)
	res, err := client.New(tc).Wait(ctx, s.WorkflowID(), runID)
	require.NoError(t, err)
	require.Equal(t, client.OutcomeSucceeded, res.Outcome, res.Error)
	require.True(t, res.FreshInstall)
	got := instances(t, service)
	require.Len(t, got, 2)
	for _, in := range got {
		require.Equal(t, "stagecraft-demo:v1", in.Image, in.Name)
		require.True(t, in.Running, in.Name)
	}

	st := cliStatus(t, s.WorkflowID())
	require.Equal(t, client.PhaseDone, st.Phase)
	require.Equal(t, client.OutcomeSucceeded, st.Outcome)
	require.Equal(t, runID, st.RunID)
	require.Equal(t, client.Canary, st.Strategy)
	require.Len(t, st.Stages, 2)
	for _, stage := range st.Stages {
		require.Equal(t, client.StageCompleted, stage.Status, stage.Name)
	}
}

func TestTemporalCLISignalAbortRestoresV1(t *testing.T) {
	itest.StartWorker(t, tc, dc)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	service := itest.Name("e2e-cli-abort")
	cleanup(t, service)
	v1 := installV1(t, service)
	// A bake far longer than the test: only the abort can end it.
	s := interopSpec(service, "stagecraft-demo:v2", 3, 10*time.Minute)

	runID := cliStart(t, s)
	waitForStage(t, s.WorkflowID(), 0, api.StageValidating)
	mustCLI(t, "workflow", "signal", "--workflow-id", s.WorkflowID(), "--name", api.SignalAbort,
		"--input", `{"reason": "error rate up", "by": "e2e-cli"}`)

	res, err := client.New(tc).Wait(ctx, s.WorkflowID(), runID)
	require.NoError(t, err)
	require.Equal(t, client.OutcomeRolledBack, res.Outcome, res.Error)
	require.Contains(t, res.Error, "error rate up")
	require.NotNil(t, res.Rollback)
	require.True(t, res.Rollback.Verified)
	require.Len(t, res.Controls, 1)
	require.Equal(t, client.ControlRecord{Action: "abort", Via: "signal", Reason: "error rate up", By: "e2e-cli",
		At: res.Controls[0].At, Accepted: true}, res.Controls[0])
	require.Equal(t, restorable(v1), restorable(instances(t, service)), "exactly the v1 snapshot")
}

func TestTemporalCLIUpdatesAreValidated(t *testing.T) {
	itest.StartWorker(t, tc, dc)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	service := itest.Name("e2e-cli-update")
	cleanup(t, service)
	s := interopSpec(service, "stagecraft-demo:v1", 2, 10*time.Minute)
	s.ExecutionID = "req-" + service
	id := s.WorkflowID()

	// Started as docs/API.md says, the Go client knows the request again
	// and finds the rollout by its execution ID.
	runID := cliStart(t, s, "--memo", `requestId="`+s.ExecutionID+`"`, "--memo", `executionId="`+s.ExecutionID+`"`,
		"--search-attribute", `StagecraftExecutionId="`+s.ExecutionID+`"`)
	c := client.New(tc)
	again, err := c.Deploy(ctx, s)
	require.NoError(t, err)
	require.Equal(t, client.Rollout{WorkflowID: id, RunID: runID, Workflow: client.CanaryWorkflow, Existing: true}, again)
	itest.Eventually(t, 30*time.Second, "the execution ID to be searchable", func() bool {
		found, err := c.Resolve(ctx, s.ExecutionID)
		return err == nil && found == id
	})
	waitForStage(t, id, 0, api.StageValidating)
	st := cliUpdate(t, id, api.UpdatePause, `{"reason": "checking dashboards", "by": "e2e-cli"}`)
	require.True(t, st.Paused)
	require.Equal(t, client.PhasePaused, st.Phase)

	out, errOut, err := temporalCLI(t, "workflow", "update", "execute", "--workflow-id", id, "--name", api.UpdatePause)
	require.Error(t, err, "a second pause is refused\nstdout: %s", out)
	require.Contains(t, out+errOut, "cannot pause: rollout is already paused")

	st = cliUpdate(t, id, api.UpdateResume, `{"by": "e2e-cli"}`)
	require.False(t, st.Paused)
	cliUpdate(t, id, api.UpdatePromote, `{"reason": "skip the bake", "by": "e2e-cli"}`)

	res, err := c.Wait(ctx, id, runID)
	require.NoError(t, err)
	require.Equal(t, client.OutcomeSucceeded, res.Outcome, res.Error)
	require.Equal(t, s.ExecutionID, res.ExecutionID)
	// The refused pause never reached the history: the validator ran first.
	var log []string
	for _, c := range res.Controls {
		require.Equal(t, "update", c.Via)
		require.True(t, c.Accepted, c.Action)
		log = append(log, c.Action)
	}
	require.Equal(t, []string{"pause", "resume", "promote"}, log)
	require.Equal(t, "checking dashboards", res.Controls[0].Reason)
}

func TestClientDeployTwiceReturnsTheSameRollout(t *testing.T) {
	itest.StartWorker(t, tc, dc)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := client.New(tc)
	service := itest.Name("e2e-client")
	cleanup(t, service)
	s := interopSpec(service, "stagecraft-demo:v1", 2, 3*time.Second)
	id := s.WorkflowID()

	first, err := c.Deploy(ctx, s)
	require.NoError(t, err)
	require.False(t, first.Existing)
	require.Equal(t, client.Rollout{WorkflowID: "deploy:docker:" + service, RunID: first.RunID, Workflow: client.CanaryWorkflow}, first)
	again, err := c.Deploy(ctx, s)
	require.NoError(t, err)
	want := first
	want.Existing = true
	require.Equal(t, want, again, "the same request returns the running rollout")

	other := s
	other.Image = "stagecraft-demo:v2"
	_, err = c.Deploy(ctx, other)
	var busy *client.BusyError
	require.ErrorAs(t, err, &busy)
	require.Equal(t, id, busy.WorkflowID)
	require.Contains(t, err.Error(), id)

	st, err := c.Status(ctx, id)
	require.NoError(t, err)
	require.Equal(t, first.RunID, st.RunID)
	require.Equal(t, service, st.Service)
	require.Equal(t, "stagecraft-demo:v1", st.ImageTo)

	waitForStage(t, id, 0, api.StageValidating)
	req := client.ControlRequest{Reason: "checking dashboards", By: "e2e"}
	st, err = c.Pause(ctx, id, req)
	require.NoError(t, err)
	require.True(t, st.Paused)
	require.Equal(t, client.PhasePaused, st.Phase)
	_, err = c.Pause(ctx, id, req)
	var refused *client.RefusedError
	require.ErrorAs(t, err, &refused)
	require.Contains(t, refused.Reason, "already paused")
	st, err = c.Resume(ctx, id, client.ControlRequest{By: "e2e"})
	require.NoError(t, err)
	require.False(t, st.Paused)

	res, err := c.Wait(ctx, id, first.RunID)
	require.NoError(t, err)
	require.Equal(t, client.OutcomeSucceeded, res.Outcome, res.Error)
	require.Equal(t, first.RunID, res.RunID)
	require.Len(t, res.Stages, 2)
	for _, stage := range res.Stages {
		require.Equal(t, client.StageCompleted, stage.Status, stage.Name)
		require.Positive(t, stage.ChecksPassed, stage.Name)
	}

	st, err = c.Status(ctx, id)
	require.NoError(t, err)
	require.Equal(t, client.PhaseDone, st.Phase)
	_, err = c.Pause(ctx, id, req)
	var finished *client.FinishedError
	require.ErrorAs(t, err, &finished)
	require.Equal(t, client.OutcomeSucceeded, finished.Outcome)
}

func TestClientApprove(t *testing.T) {
	itest.StartWorker(t, tc, dc)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := client.New(tc)
	service := itest.Name("e2e-client-approve")
	cleanup(t, service)
	s := interopSpec(service, "stagecraft-demo:v1", 2, 2*time.Second)
	s.Approval = &client.Approval{Before: []int{100}}
	id := s.WorkflowID()

	r, err := c.Deploy(ctx, s)
	require.NoError(t, err)
	// Stage 0 (50%) is not gated: approving now is refused.
	_, err = c.Approve(ctx, id, client.ControlRequest{By: "e2e"})
	var refused *client.RefusedError
	require.ErrorAs(t, err, &refused)

	itest.Eventually(t, 90*time.Second, "the 100% stage to wait for approval", func() bool {
		st, err := c.Status(ctx, id)
		return err == nil && st.Phase == client.PhaseAwaitingApproval
	})
	st, err := c.Approve(ctx, id, client.ControlRequest{Reason: "numbers look fine", By: "e2e"})
	require.NoError(t, err)
	require.Len(t, st.Approvals, 1)
	require.Equal(t, "e2e", st.Approvals[0].ApprovedBy)

	res, err := c.Wait(ctx, id, r.RunID)
	require.NoError(t, err)
	require.Equal(t, client.OutcomeSucceeded, res.Outcome, res.Error)
	require.Len(t, res.Approvals, 1)
	a := res.Approvals[0]
	require.Equal(t, 1, a.Stage)
	require.Equal(t, "numbers look fine", a.Reason)
	require.NotNil(t, a.ApprovedAt)
	require.False(t, a.TimedOut)
}

// TestRawSignalsCannotSwellARollout: a Temporal client other than the
// starter signals a running rollout with reasons of 1.5 MB each, under
// the server's 2 MiB payload limit one by one. The rollout keeps each
// reason cut (boundsVersion), so its status still answers and its result
// still fits: it finishes as it would have. Before the bound, the state
// the result carries (3 MB of reasons) was past that limit and the run
// could not complete.
func TestRawSignalsCannotSwellARollout(t *testing.T) {
	itest.StartWorker(t, tc, dc)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	service := itest.Name("e2e-swell")
	cleanup(t, service)
	s := interopSpec(service, "stagecraft-demo:v1", 2, 5*time.Second)
	c := client.New(tc)
	started, err := c.Deploy(ctx, s)
	require.NoError(t, err)
	waitForStage(t, started.WorkflowID, 0, api.StageValidating)
	big := strings.Repeat("not a reason\n", 1_500_000/13)
	require.NoError(t, tc.SignalWorkflow(ctx, started.WorkflowID, "", api.SignalPause, api.ControlRequest{By: "raw", Reason: big}))
	require.NoError(t, tc.SignalWorkflow(ctx, started.WorkflowID, "", api.SignalResume, api.ControlRequest{By: "raw", Reason: big}))
	itest.Eventually(t, 30*time.Second, "both signals in the control log", func() bool {
		st, err := c.Status(ctx, started.WorkflowID)
		return err == nil && len(st.Controls) == 2
	})
	res, err := c.Wait(ctx, started.WorkflowID, started.RunID)
	require.NoError(t, err)
	require.Equal(t, client.OutcomeSucceeded, res.Outcome, res.Error)
	require.Len(t, res.Controls, 2)
	for _, rec := range res.Controls {
		require.True(t, rec.Accepted, "%s: %s", rec.Action, rec.Error)
		require.LessOrEqual(t, len(rec.Reason), api.MaxReason)
		require.True(t, strings.HasSuffix(rec.Reason, "…"))
	}
}
