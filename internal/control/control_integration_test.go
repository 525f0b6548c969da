//go:build integration

package control_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	tclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"
	"sigs.k8s.io/yaml"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/control"
	"github.com/stagecraft/stagecraft/internal/itest"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// These tests start rollouts on a real dev server with no worker polling:
// each stays open (running, its first task not taken), which is all that
// finding and joining look at, and nothing is deployed.
var (
	server  *testsuite.DevServer
	tc      tclient.Client
	starter string
)

func TestMain(m *testing.M) {
	os.Exit(func() int {
		var err error
		if server, err = itest.DevServer(context.Background()); err != nil {
			fmt.Fprintln(os.Stderr, "dev server:", err)
			return 1
		}
		defer server.Stop()
		tc = server.Client()
		dir, _ := os.MkdirTemp("", "stagecraft-control")
		defer os.RemoveAll(dir)
		if starter, err = itest.Build(dir, "starter"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return m.Run()
	}())
}

// cli runs the starter binary against the dev server.
func cli(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(starter, append([]string{"--address", server.FrontendHostPort()}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return out.String(), errb.String(), code
}

func demo(service, image, executionID string) spec.Spec {
	s := itest.DemoSpec(service, image, spec.Canary, 2)
	s.ExecutionID = executionID
	return s
}

func open(t *testing.T, workflowID string) bool {
	t.Helper()
	ex, err := control.Describe(context.Background(), tc, workflowID, "")
	require.NoError(t, err)
	return ex.Open()
}

func terminate(t *testing.T, workflowID string) {
	t.Helper()
	require.NoError(t, tc.TerminateWorkflow(context.Background(), workflowID, "", "test cleanup"))
}

// An execution ID used for two services (a CI build number) names two open
// rollouts: a control addressed by it is refused with both workflow IDs,
// and neither is touched. Once one has closed, the ID names the open one.
func TestControlByExecutionIDOfSeveralOpenRolloutsIsRefused(t *testing.T) {
	ctx := context.Background()
	build := itest.Name("build")
	a, b := demo(itest.Name("cart"), "stagecraft-demo:v2", build), demo(itest.Name("shop"), "stagecraft-demo:v2", build)
	for _, s := range []spec.Spec{a, b} {
		started, err := control.Start(ctx, tc, s)
		require.NoError(t, err)
		require.False(t, started.Joined)
	}
	itest.Eventually(t, 30*time.Second, "both rollouts to be searchable by the execution ID", func() bool {
		resp, err := tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: fmt.Sprintf("%s = %q", api.SearchExecutionID.GetName(), build)})
		return err == nil && len(resp.GetExecutions()) == 2
	})
	_, err := control.Find(ctx, tc, build)
	want := fmt.Sprintf("execution ID %q names 2 open rollouts: ", build)
	require.ErrorContains(t, err, want)
	require.ErrorContains(t, err, a.WorkflowID())
	require.ErrorContains(t, err, b.WorkflowID())
	var amb *control.AmbiguousError
	require.ErrorAs(t, err, &amb)
	_, err = control.Resolve(ctx, tc, build)
	require.ErrorAs(t, err, &amb)

	_, stderr, code := cli(t, "abort", build, "--reason", "which one?")
	t.Logf("starter abort %s: exit %d: %s", build, code, stderr)
	require.NotZero(t, code, stderr)
	require.Contains(t, stderr, want)
	require.Contains(t, stderr, a.WorkflowID())
	require.Contains(t, stderr, b.WorkflowID())
	require.True(t, open(t, a.WorkflowID()), "nothing was aborted")
	require.True(t, open(t, b.WorkflowID()), "nothing was aborted")

	terminate(t, a.WorkflowID())
	itest.Eventually(t, 30*time.Second, "the execution ID to name the open rollout", func() bool {
		ex, err := control.Find(ctx, tc, build)
		return err == nil && ex.WorkflowID == b.WorkflowID()
	})
	terminate(t, b.WorkflowID())
}

// An execution ID names its open rollout however many closed runs share it
// and whatever the server's page size: with pages of one, a closed rollout
// started later (listed first) does not hide the open one, and a third
// target's closed rollout still makes a closed-only ID ambiguous.
func TestExecutionIDFindsTheOpenRolloutBehindClosedOnes(t *testing.T) {
	defer control.SetExecutionPageSize(1)()
	ctx := context.Background()
	build := itest.Name("build")
	live, done := demo(itest.Name("cart"), "stagecraft-demo:v2", build), demo(itest.Name("shop"), "stagecraft-demo:v2", build)
	for _, s := range []spec.Spec{live, done} {
		_, err := control.Start(ctx, tc, s)
		require.NoError(t, err)
	}
	terminate(t, done.WorkflowID())
	itest.Eventually(t, 30*time.Second, "both rollouts to be searchable by the execution ID", func() bool {
		resp, err := tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: fmt.Sprintf("%s = %q AND ExecutionStatus = 'Running'", api.SearchExecutionID.GetName(), build)})
		all, err2 := tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: fmt.Sprintf("%s = %q", api.SearchExecutionID.GetName(), build)})
		return err == nil && err2 == nil && len(resp.GetExecutions()) == 1 && len(all.GetExecutions()) == 2
	})
	ex, err := control.Find(ctx, tc, build)
	require.NoError(t, err)
	require.Equal(t, live.WorkflowID(), ex.WorkflowID)

	terminate(t, live.WorkflowID())
	itest.Eventually(t, 30*time.Second, "no rollout of the execution ID to be open", func() bool {
		resp, err := tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: fmt.Sprintf("%s = %q AND ExecutionStatus = 'Running'", api.SearchExecutionID.GetName(), build)})
		return err == nil && len(resp.GetExecutions()) == 0
	})
	_, err = control.Find(ctx, tc, build)
	var amb *control.AmbiguousError
	require.ErrorAs(t, err, &amb)
	require.ElementsMatch(t, []string{live.WorkflowID(), done.WorkflowID()}, amb.WorkflowIDs)
	require.False(t, amb.Open)

	_, err = control.Find(ctx, tc, itest.Name("never-used"))
	var nf *control.NotFoundError
	require.ErrorAs(t, err, &nf)
}

// Starting again with the execution ID of an open rollout joins it only for
// the same spec; with another image (or other parameters) the start is
// refused, naming what differs, instead of "joined" with nothing deployed.
func TestReusedExecutionIDWithAnotherSpecIsRefused(t *testing.T) {
	ctx := context.Background()
	id := itest.Name("req")
	first := demo(itest.Name("hello"), "stagecraft-demo:v1", id)
	started, err := control.Start(ctx, tc, first)
	require.NoError(t, err)
	defer terminate(t, first.WorkflowID())

	again, err := control.Start(ctx, tc, first)
	require.NoError(t, err)
	require.True(t, again.Joined, "the same request joins")
	require.Equal(t, started.RunID, again.RunID)

	newImage := first
	newImage.Image = "stagecraft-demo:v2"
	_, err = control.Start(ctx, tc, newImage)
	require.ErrorContains(t, err, fmt.Sprintf("execution ID %q is already in use by rollout %s (run %s) with a different spec (image stagecraft-demo:v1 → stagecraft-demo:v2 differs)",
		id, first.WorkflowID(), started.RunID))
	var reused *control.ReusedError
	require.ErrorAs(t, err, &reused)

	slower := first
	slower.Strategy.Bake = spec.Duration(time.Minute)
	_, err = control.Start(ctx, tc, slower)
	require.ErrorContains(t, err, "with a different spec (strategy differs)")

	f := filepath.Join(t.TempDir(), "spec.yaml")
	y, err := yaml.Marshal(newImage)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(f, y, 0o644))
	stdout, stderr, code := cli(t, "deploy", "-f", f, "--execution-id", id)
	t.Logf("starter deploy --execution-id %s: exit %d: %s%s", id, code, stdout, stderr)
	require.NotZero(t, code, stdout)
	require.NotContains(t, stdout, "joined")
	require.Contains(t, stderr, "image stagecraft-demo:v1 → stagecraft-demo:v2 differs")
}

// A rollout started before starts recorded the spec's fingerprint (its memo
// holds the request ID only) is still joined on its request ID.
func TestRolloutWithoutFingerprintIsJoinedOnItsRequestID(t *testing.T) {
	ctx := context.Background()
	s := demo(itest.Name("legacy"), "stagecraft-demo:v1", itest.Name("req"))
	name, err := api.WorkflowFor(s.Strategy.Type)
	require.NoError(t, err)
	run, err := tc.ExecuteWorkflow(ctx, tclient.StartWorkflowOptions{
		ID: s.WorkflowID(), TaskQueue: api.TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		Memo:                     map[string]any{api.MemoRequestID: s.RequestID(), api.MemoExecutionID: s.ExecutionID},
	}, name, s)
	require.NoError(t, err)
	defer terminate(t, s.WorkflowID())

	s.Image = "stagecraft-demo:v2"
	joined, err := control.Start(ctx, tc, s)
	require.NoError(t, err)
	require.True(t, joined.Joined)
	require.Equal(t, run.GetRunID(), joined.RunID)
}
