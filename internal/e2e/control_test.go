//go:build integration

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"sigs.k8s.io/yaml"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/control"
	"github.com/stagecraft/stagecraft/internal/itest"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// runCLI runs the starter binary against the test dev server.
func runCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(starter, append([]string{"--address", server.FrontendHostPort()}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return out.String(), errb.String(), code
}

func writeSpec(t *testing.T, s spec.Spec) string {
	t.Helper()
	b, err := yaml.Marshal(s)
	require.NoError(t, err)
	f := filepath.Join(t.TempDir(), "spec.yaml")
	require.NoError(t, os.WriteFile(f, b, 0o644))
	return f
}

// startWorkerProcess runs the worker binary as a separate process.
func startWorkerProcess(t *testing.T) *exec.Cmd {
	t.Helper()
	// The Kubernetes specs of these tests name the test plane's kubeconfig.
	cmd := exec.Command(workerB, "--address", server.FrontendHostPort(), "--log-level", "warn", "--allow-kubeconfig-paths")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return cmd
}

func waitForStage(t *testing.T, workflowID string, stage int, status api.StageStatus) api.Status {
	t.Helper()
	var st api.Status
	itest.Eventually(t, 90*time.Second, fmt.Sprintf("stage %d %s", stage, status), func() bool {
		var err error
		st, err = control.Status(context.Background(), tc, workflowID)
		return err == nil && len(st.Stages) > stage && st.Stages[stage].Status == status
	})
	return st
}

// TestWorkerKilledMidBakeFinishesOnANewWorker runs a rollout on a worker
// process, SIGKILLs it in the middle of a bake, starts a new one, and checks
// the rollout ends right with no duplicate or orphaned container. This test
// uses its own task queue-less setup: the in-process workers of other tests
// are not running, because this test runs the workers itself.
func TestWorkerKilledMidBakeFinishesOnANewWorker(t *testing.T) {
	service := itest.Name("e2e-crash")
	cleanup(t, service)
	first := startWorkerProcess(t)
	installV1(t, service)

	s := demoSpec(service, "stagecraft-demo:v2", spec.Canary, 4)
	s.Strategy.Bake = spec.Duration(6 * time.Second)
	ctx := context.Background()
	started, err := control.Start(ctx, tc, s)
	require.NoError(t, err)
	waitForStage(t, started.WorkflowID, 1, api.StageValidating)

	require.NoError(t, first.Process.Signal(syscall.SIGKILL))
	_ = first.Wait()
	t.Log("worker killed mid-bake of stage 2")
	time.Sleep(2 * time.Second)
	startWorkerProcess(t)

	res, err := control.Wait(ctx, tc, started.WorkflowID, started.RunID, time.Second, nil)
	require.NoError(t, err)
	require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
	got := instances(t, service)
	require.Len(t, got, 4, "no duplicate and no orphan")
	recordNamed(t, started.WorkflowID, started.RunID, "canary-worker-killed")
	for _, in := range got {
		require.Equal(t, "stagecraft-demo:v2", in.Image)
		require.True(t, in.Running)
	}
}

func TestAbortFromTheCLIMidBakeRestoresV1(t *testing.T) {
	service := itest.Name("e2e-abort")
	cleanup(t, service)
	startWorkerProcess(t)
	v1 := installV1(t, service)

	s := demoSpec(service, "stagecraft-demo:v2", spec.Canary, 4)
	s.Strategy.Bake = spec.Duration(time.Minute)
	out, errOut, code := runCLI(t, "deploy", "-f", writeSpec(t, s), "--json")
	require.Equal(t, 0, code, errOut)
	var started control.Started
	require.NoError(t, json.Unmarshal([]byte(out), &started))
	require.NotEmpty(t, started.RunID)
	waitForStage(t, started.WorkflowID, 0, api.StageValidating)

	_, errOut, code = runCLI(t, "abort", started.WorkflowID, "--reason", "error rate up", "--by", "e2e")
	require.Equal(t, 0, code, errOut)
	res, err := control.Wait(context.Background(), tc, started.WorkflowID, started.RunID, time.Second, nil)
	require.NoError(t, err)
	require.Equal(t, api.OutcomeRolledBack, res.Outcome)
	require.Contains(t, res.Error, "error rate up")
	require.Less(t, res.CompletedAt.Sub(res.StartedAt), 40*time.Second, "the 1 minute bake was interrupted")
	recordNamed(t, started.WorkflowID, started.RunID, "canary-aborted")
	require.Equal(t, restorable(v1), restorable(instances(t, service)))

	// The rollout is closed: a further control is refused plainly.
	_, errOut, code = runCLI(t, "pause", started.WorkflowID)
	require.NotEqual(t, 0, code)
	require.Contains(t, errOut, "no open rollout")
}

func TestCLIDeployWaitJSONAndControls(t *testing.T) {
	service := itest.Name("e2e-cli")
	cleanup(t, service)
	startWorkerProcess(t)
	s := demoSpec(service, "stagecraft-demo:v1", spec.Recreate, 2)
	s.ExecutionID = "req-" + service
	out, errOut, code := runCLI(t, "deploy", "-f", writeSpec(t, s), "--wait", "--json")
	require.Equal(t, 0, code, errOut)
	var res api.Result
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	require.Equal(t, api.OutcomeSucceeded, res.Outcome)
	require.Equal(t, s.ExecutionID, res.ExecutionID)

	// Found by the caller's execution ID.
	out, errOut, code = runCLI(t, "status", s.ExecutionID, "--json")
	require.Equal(t, 0, code, errOut)
	var st api.Status
	require.NoError(t, json.Unmarshal([]byte(out), &st))
	require.Equal(t, s.WorkflowID(), st.WorkflowID)

	// An illegal transition is refused with the workflow's reason.
	s2 := demoSpec(service, "stagecraft-demo:v2", spec.Canary, 2)
	s2.Strategy.Bake = spec.Duration(time.Minute)
	out, errOut, code = runCLI(t, "deploy", "-f", writeSpec(t, s2), "--json")
	require.Equal(t, 0, code, errOut)
	waitForStage(t, s2.WorkflowID(), 0, api.StageValidating)
	_, errOut, code = runCLI(t, "resume", s2.WorkflowID())
	require.NotEqual(t, 0, code)
	require.Contains(t, errOut, "not paused")
	out, errOut, code = runCLI(t, "pause", s2.WorkflowID(), "--reason", "dashboards", "--json")
	require.Equal(t, 0, code, errOut)
	require.NoError(t, json.Unmarshal([]byte(out), &st))
	require.True(t, st.Paused)
	_, errOut, code = runCLI(t, "promote", s2.WorkflowID())
	require.Equal(t, 0, code, errOut)
	res2, err := control.Wait(context.Background(), tc, s2.WorkflowID(), "", time.Second, nil)
	require.NoError(t, err)
	require.Equal(t, api.OutcomeSucceeded, res2.Outcome, res2.Error)
	require.Len(t, res2.Controls, 2)
	require.Equal(t, "dashboards", res2.Controls[0].Reason)
	recordNamed(t, s2.WorkflowID(), res2.RunID, "canary-paused-promoted")
}

// TestCancelledWorkflowRollsBack cancels a rollout through Temporal itself
// (as `temporal workflow cancel` would): the compensation still restores v1.
func TestCancelledWorkflowRollsBack(t *testing.T) {
	service := itest.Name("e2e-cancel")
	cleanup(t, service)
	startWorkerProcess(t)
	v1 := installV1(t, service)
	ctx := context.Background()
	s := demoSpec(service, "stagecraft-demo:v2", spec.Rolling, 3)
	s.Strategy.Bake = spec.Duration(time.Minute)
	started, err := control.Start(ctx, tc, s)
	require.NoError(t, err)
	waitForStage(t, started.WorkflowID, 0, api.StageValidating)
	require.NoError(t, tc.CancelWorkflow(ctx, started.WorkflowID, started.RunID))
	res, err := control.Wait(ctx, tc, started.WorkflowID, started.RunID, time.Second, nil)
	require.NoError(t, err)
	require.Equal(t, api.OutcomeRolledBack, res.Outcome)
	require.Contains(t, res.Error, "cancelled")
	require.True(t, res.Rollback.Verified)
	require.Equal(t, restorable(v1), restorable(instances(t, service)))
	recordNamed(t, started.WorkflowID, started.RunID, "rolling-cancelled")
}

// TestAnyTemporalClientWithJSON drives a rollout with the stock temporal CLI
// only: start with the spec as JSON input, query status, signal abort with
// no payload.
func TestAnyTemporalClientWithJSON(t *testing.T) {
	service := itest.Name("e2e-json")
	cleanup(t, service)
	startWorkerProcess(t)
	s := demoSpec(service, "stagecraft-demo:v1", spec.Canary, 2)
	s.Strategy.Bake = spec.Duration(time.Minute)
	input, err := json.Marshal(s)
	require.NoError(t, err)
	temporal := func(args ...string) string {
		out, err := exec.Command(os.Getenv(itest.TemporalBinEnv), append(args, "--address", server.FrontendHostPort())...).CombinedOutput()
		require.NoError(t, err, string(out))
		return string(out)
	}
	temporal("workflow", "start", "--type", api.CanaryWorkflow, "--task-queue", api.TaskQueue,
		"--workflow-id", s.WorkflowID(), "--input", string(input))
	waitForStage(t, s.WorkflowID(), 0, api.StageValidating)
	out := temporal("workflow", "query", "--workflow-id", s.WorkflowID(), "--type", api.QueryStatus, "--output", "json")
	require.Contains(t, out, `"phase": "validating"`)
	temporal("workflow", "signal", "--workflow-id", s.WorkflowID(), "--name", api.SignalAbort)
	res, err := control.Wait(context.Background(), tc, s.WorkflowID(), "", time.Second, nil)
	require.NoError(t, err)
	require.Equal(t, api.OutcomeRolledBack, res.Outcome)
	require.Equal(t, "signal", res.Controls[0].Via)
	require.Empty(t, instances(t, service))
}

func TestOneRolloutPerTarget(t *testing.T) {
	service := itest.Name("e2e-busy")
	cleanup(t, service)
	startWorkerProcess(t)
	ctx := context.Background()
	s := demoSpec(service, "stagecraft-demo:v1", spec.Canary, 2)
	s.Strategy.Bake = spec.Duration(time.Minute)
	first, err := control.Start(ctx, tc, s)
	require.NoError(t, err)
	again, err := control.Start(ctx, tc, s)
	require.NoError(t, err)
	require.True(t, again.Joined)
	require.Equal(t, first.RunID, again.RunID, "the same request returns the running rollout")

	other := s
	other.Image = "stagecraft-demo:v2"
	_, err = control.Start(ctx, tc, other)
	var busy *control.BusyError
	require.ErrorAs(t, err, &busy)
	require.Contains(t, err.Error(), first.WorkflowID)

	waitForStage(t, first.WorkflowID, 0, api.StageValidating)
	require.NotEmpty(t, instances(t, service))
	_, err = control.Act(ctx, tc, first.WorkflowID, api.UpdateAbort, api.ControlRequest{By: "e2e"})
	require.NoError(t, err)
	res, err := control.Wait(ctx, tc, first.WorkflowID, first.RunID, time.Second, nil)
	require.NoError(t, err)
	require.Equal(t, api.OutcomeRolledBack, res.Outcome)
	require.True(t, res.FreshInstall)
	require.Empty(t, instances(t, service), "a fresh install rolled back leaves nothing")
}

func TestBadInputChangesNothing(t *testing.T) {
	startWorkerProcess(t)
	service := itest.Name("e2e-invalid")
	cleanup(t, service)
	good := demoSpec(service, "stagecraft-demo:v2", spec.Canary, 2)
	cases := []struct {
		name, field string
		mutate      func(*spec.Spec)
	}{
		{"no service", "service", func(s *spec.Spec) { s.Service = "" }},
		{"bad image", "image", func(s *spec.Spec) { s.Image = "Not An Image" }},
		{"no platform", "platform", func(s *spec.Spec) { s.Platform.Docker = nil }},
		{"zero port", "platform.docker.port", func(s *spec.Spec) { s.Platform.Docker.Port = 0 }},
		{"unknown strategy", "strategy.type", func(s *spec.Spec) { s.Strategy.Type = "yolo" }},
		{"steps not increasing", "strategy.steps[1]", func(s *spec.Spec) { s.Strategy.Steps = []int{50, 10, 100} }},
		{"bad check url", "health.checks[0].http.url", func(s *spec.Spec) { s.Health.Checks[0].HTTP.URL = "ftp://x" }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := good
			s.Platform.Docker = &spec.Docker{Replicas: 2, Port: 8080}
			s.Health.Checks = []spec.Check{{Name: "healthz", HTTP: &spec.HTTPCheck{URL: "http://{{.Address}}/healthz", ExpectStatus: spec.StatusSet{"200"}, Timeout: spec.Duration(time.Second)}}}
			c.mutate(&s)
			_, errOut, code := runCLI(t, "deploy", "-f", writeSpec(t, s))
			require.Equal(t, 2, code, errOut)
			require.Contains(t, errOut, c.field)
		})
	}
	// A workflow started directly with an invalid spec (bypassing the CLI)
	// is rejected by the workflow before any platform call.
	bad := good
	bad.Platform.Docker = &spec.Docker{Replicas: -1, Port: 8080}
	run, err := tc.ExecuteWorkflow(context.Background(), clientStart(bad.WorkflowID()), api.CanaryWorkflow, bad)
	require.NoError(t, err)
	var res api.Result
	require.NoError(t, control.Result(context.Background(), run, &res))
	require.Equal(t, api.OutcomeRejected, res.Outcome)
	require.Contains(t, res.Error, "platform.docker.replicas")
	require.Empty(t, instances(t, service))
	resp, err := tc.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
		Query: fmt.Sprintf("WorkflowId = %q", good.WorkflowID())})
	require.NoError(t, err)
	require.Len(t, resp.Executions, 1, "the CLI started nothing for invalid specs")
	require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_FAILED, resp.Executions[0].Status, "rejected closes Failed")

	// A missing image is rejected before any change.
	missing := demoSpec(service, "stagecraft-demo:does-not-exist", spec.Canary, 2)
	out, errOut, code := runCLI(t, "deploy", "-f", writeSpec(t, missing), "--wait", "--json")
	require.Equal(t, 5, code, errOut) // rejected
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	require.Equal(t, api.OutcomeRejected, res.Outcome)
	require.Contains(t, res.Error, "does-not-exist")
	require.Empty(t, instances(t, service))
}

// TestHistoryBudget measures the real dev server's history of a canary of
// the seed's shape (steps 5/25/50/100, three checks). Check rounds run inside
// one heartbeating watcher activity per stage, so the rollout's own events do
// not depend on bake length or interval: two runs with different timings
// must record the same events apart from workflow tasks and audit writes
// (whose batching follows timing, never round counts), and both stay within
// the budget, which stands for the seed default (4 × 5 min, 30 s checks).
func TestHistoryBudget(t *testing.T) {
	startWorkerProcess(t)
	var totals, core []int
	for _, timing := range []struct{ bake, interval time.Duration }{{2 * time.Second, 500 * time.Millisecond}, {3 * time.Second, 250 * time.Millisecond}} {
		service := itest.Name("e2e-budget")
		cleanup(t, service)
		installV1(t, service)
		s := demoSpec(service, "stagecraft-demo:v2", spec.Canary, 4)
		s.Strategy.Steps = []int{5, 25, 50, 100}
		s.Strategy.Bake = spec.Duration(timing.bake)
		s.Health.Interval = spec.Duration(timing.interval)
		s.Health.Checks = append(s.Health.Checks, spec.Check{Name: "root",
			HTTP: &spec.HTTPCheck{URL: "http://{{.Address}}/", ExpectStatus: spec.StatusSet{"200"}, Timeout: spec.Duration(time.Second)}})
		ctx := context.Background()
		started, err := control.Start(ctx, tc, s)
		require.NoError(t, err)
		res, err := control.Wait(ctx, tc, started.WorkflowID, started.RunID, time.Second, nil)
		require.NoError(t, err)
		require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
		h := fetchHistory(t, started.WorkflowID, started.RunID)
		n, audits, own := len(h.Events), 0, 0
		auditIDs := map[int64]bool{}
		for _, ev := range h.Events {
			switch ev.GetEventType() {
			case enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED, enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
				continue
			case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
				if ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName() == "Audit" {
					auditIDs[ev.GetEventId()] = true
					audits++
					continue
				}
			case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
				if auditIDs[ev.GetActivityTaskStartedEventAttributes().GetScheduledEventId()] {
					continue
				}
			case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
				if auditIDs[ev.GetActivityTaskCompletedEventAttributes().GetScheduledEventId()] {
					continue
				}
			}
			own++
		}
		rounds := 0
		for _, st := range res.Stages {
			rounds += st.ChecksPassed
		}
		t.Logf("canary 5/25/50/100, bake %s, interval %s: %d check rounds, %d history events (%d audit writes; %d events of the rollout's own commands)",
			timing.bake, timing.interval, rounds, n, audits, own)
		totals, core = append(totals, n), append(core, own)
		require.LessOrEqual(t, n, 300)
	}
	require.Equal(t, core[0], core[1], "the rollout's own events do not depend on bake or interval")
	t.Logf("seed-default canary history: %d and %d events (budget 300)", totals[0], totals[1])
}

func statusOf(workflowID string) (api.Status, error) {
	return control.Status(context.Background(), tc, workflowID)
}
