//go:build integration

package main

import (
	"bytes"
	"context"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"

	"github.com/stagecraft/stagecraft/internal/control"
	"github.com/stagecraft/stagecraft/internal/itest"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// TestSIGTERMLetsARunningConvergeFinish runs the worker binary (its
// defaults, as the manifests run it) on a real dev server and Docker
// engine, sends it SIGTERM while a Converge starting a dozen containers
// runs, and checks that the converge completed (its one attempt, after the
// signal) before the worker exited, rather than being cancelled and left
// for another worker to retry after its heartbeat timeout.
func TestSIGTERMLetsARunningConvergeFinish(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	server, err := itest.DevServer(ctx)
	require.NoError(t, err)
	defer func() { _ = server.Stop() }()
	tc := server.Client()
	dc, err := itest.Docker()
	require.NoError(t, err)
	bin, err := itest.Build(t.TempDir(), "worker")
	require.NoError(t, err)

	s := itest.DemoSpec(itest.Name("sigterm"), "stagecraft-demo:v1", spec.Recreate, 12)
	itest.RemoveService(t, dc, s.Service)

	var logs bytes.Buffer
	w := exec.Command(bin, "--address", server.FrontendHostPort(), "--log-level", "info")
	w.Stdout, w.Stderr = &logs, &logs
	require.NoError(t, w.Start())
	exited := make(chan error, 1)
	go func() { exited <- w.Wait() }()
	t.Cleanup(func() {
		if w.ProcessState == nil {
			_ = w.Process.Kill()
		}
	})

	started, err := control.Start(ctx, tc, s)
	require.NoError(t, err)
	defer func() { _ = tc.TerminateWorkflow(context.Background(), started.WorkflowID, "", "test cleanup") }()
	itest.Eventually(t, time.Minute, "the Converge to run on the worker", func() bool {
		d, err := tc.DescribeWorkflowExecution(ctx, started.WorkflowID, "")
		if err != nil {
			return false
		}
		for _, pa := range d.GetPendingActivities() {
			if pa.GetActivityType().GetName() == "Converge" && pa.GetState() == enumspb.PENDING_ACTIVITY_STATE_STARTED {
				return true
			}
		}
		return false
	})
	sigterm := time.Now()
	require.NoError(t, w.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-exited:
		require.NoError(t, err, "the worker exits cleanly on SIGTERM\n%s", logs.String())
	case <-time.After(70 * time.Second):
		t.Fatalf("the worker did not exit within 70s of SIGTERM\n%s", logs.String())
	}
	t.Logf("worker exited %s after SIGTERM", time.Since(sigterm).Round(time.Millisecond))

	// With no worker left, the history shows what the stopped one reported,
	// though not always at once: in a CI run the worker had logged the
	// converge's completion, yet the history read right after its exit
	// showed neither that completion nor a pending attempt. The likeliest
	// reading is a workflow task the stopping worker polled and never
	// answered, which holds new events in the server's buffer until its
	// timeout (10 s); so the history is read again for up to 40 s.
	var completedAt time.Time
	var scheduled int64
	var ended []string
	deadline := time.Now().Add(40 * time.Second)
	for completedAt.IsZero() && len(ended) == 0 && time.Now().Before(deadline) {
		time.Sleep(250 * time.Millisecond)
		it := tc.GetWorkflowHistory(ctx, started.WorkflowID, started.RunID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			e, err := it.Next()
			require.NoError(t, err)
			if a := e.GetActivityTaskScheduledEventAttributes(); a != nil && a.GetActivityType().GetName() == "Converge" && scheduled == 0 {
				scheduled = e.GetEventId()
			}
			if scheduled == 0 {
				continue
			}
			if a := e.GetActivityTaskCompletedEventAttributes(); a != nil && a.GetScheduledEventId() == scheduled {
				completedAt = e.GetEventTime().AsTime()
			}
			if a := e.GetActivityTaskFailedEventAttributes(); a != nil && a.GetScheduledEventId() == scheduled {
				ended = append(ended, "failed: "+a.GetFailure().GetMessage())
			}
			if a := e.GetActivityTaskTimedOutEventAttributes(); a != nil && a.GetScheduledEventId() == scheduled {
				ended = append(ended, "timed out: "+a.GetFailure().GetMessage())
			}
		}
	}
	require.NotZero(t, scheduled, "a Converge was scheduled")
	if completedAt.IsZero() {
		d, err := tc.DescribeWorkflowExecution(ctx, started.WorkflowID, "")
		require.NoError(t, err)
		for _, pa := range d.GetPendingActivities() {
			t.Logf("pending %s: attempt %d, last failure: %s", pa.GetActivityType().GetName(), pa.GetAttempt(), pa.GetLastFailure().GetMessage())
		}
		t.Fatalf("the Converge running at SIGTERM did not complete before the worker exited %v\n%s", ended, logs.String())
	}
	require.True(t, completedAt.After(sigterm), "the Converge completed after SIGTERM (at %s, SIGTERM at %s): the signal came mid-converge", completedAt, sigterm)
}
