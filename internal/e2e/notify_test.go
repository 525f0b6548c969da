//go:build integration

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/control"
	"github.com/stagecraft/stagecraft/internal/itest"
	"github.com/stagecraft/stagecraft/internal/notify"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// receiver is a webhook and a Slack-style receiver on 127.0.0.1 that keep
// what they were sent.
type receiver struct {
	mu     sync.Mutex
	events []notify.Event
	keys   map[string]int
	slack  []string
}

func newReceiver(t *testing.T) (*receiver, string, string) {
	rc := &receiver{keys: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		rc.mu.Lock()
		defer rc.mu.Unlock()
		switch req.URL.Path {
		case "/hook":
			var ev notify.Event
			if err := json.NewDecoder(req.Body).Decode(&ev); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			rc.events = append(rc.events, ev)
			rc.keys[req.Header.Get("Idempotency-Key")]++
		case "/slack":
			var msg struct{ Text string }
			if err := json.NewDecoder(req.Body).Decode(&msg); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			rc.slack = append(rc.slack, msg.Text)
		}
	}))
	t.Cleanup(srv.Close)
	return rc, srv.URL + "/hook", srv.URL + "/slack"
}

func (rc *receiver) kinds() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []string
	for _, e := range rc.events {
		out = append(out, e.Kind)
	}
	return out
}

// TestRolloutNotificationsAndSearchAttributes: a canary that rolls back
// tells a webhook and a Slack receiver exactly once per event, and lists
// filtered on its search attributes find it.
func TestRolloutNotificationsAndSearchAttributes(t *testing.T) {
	itest.StartWorker(t, tc, dc)
	rc, hook, slack := newReceiver(t)
	service := itest.Name("e2e-notify")
	cleanup(t, service)
	v1 := installV1(t, service)
	s := demoSpec(service, "stagecraft-demo:v2-bad", spec.Canary, 3)
	s.Environment = "e2e"
	s.Notifications = []spec.Notification{{Name: "ops", Webhook: hook}, {Name: "chat", Slack: slack, Events: []string{spec.EventRolledBack}}}
	started, res := startAndWait(t, s)
	recordNamed(t, started.WorkflowID, started.RunID, "canary-notified-rolled_back")
	require.Equal(t, api.OutcomeRolledBack, res.Outcome, res.Error)
	require.Equal(t, imagesOf(v1), imagesOf(instances(t, service)))

	require.Equal(t, []string{spec.EventStarted, spec.EventFailed, spec.EventRolledBack}, rc.kinds(), "one message per event, none per check round")
	rc.mu.Lock()
	for k, n := range rc.keys {
		require.Equal(t, 1, n, k)
	}
	last := rc.events[len(rc.events)-1]
	require.Len(t, rc.slack, 1)
	text := rc.slack[0]
	rc.mu.Unlock()
	require.Equal(t, "e2e", last.Environment)
	require.Equal(t, "stagecraft-demo:v2-bad", last.ImageTo)
	require.Equal(t, res.Error, last.Reason)
	require.Contains(t, text, service)
	t.Logf("slack text: %s", text)

	// The search attributes say what it was and how it ended.
	query := fmt.Sprintf(`StagecraftService = %q AND StagecraftEnvironment = "e2e" AND StagecraftStrategy = "canary" AND `+
		`StagecraftPlatform = "docker" AND StagecraftImage = "stagecraft-demo:v2-bad" AND StagecraftStatus = "rolled_back"`, service)
	var found []string
	itest.Eventually(t, 30*time.Second, "the rollout listed by its search attributes", func() bool {
		resp, err := tc.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{Query: query})
		require.NoError(t, err)
		found = nil
		for _, e := range resp.GetExecutions() {
			found = append(found, e.GetExecution().GetRunId())
		}
		return len(found) > 0
	})
	require.Equal(t, []string{started.RunID}, found)
	resp, err := tc.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
		Query: fmt.Sprintf(`StagecraftService = %q AND StagecraftStatus = "succeeded"`, service)})
	require.NoError(t, err)
	require.Len(t, resp.GetExecutions(), 1, "the v1 install, not the rolled-back canary")
	require.NotEqual(t, started.RunID, resp.GetExecutions()[0].GetExecution().GetRunId())

	// starter list filters on them too.
	out, errOut, code := runCLI(t, "list", "--source", "temporal", "--service", service, "--environment", "e2e",
		"--status", "rolled_back", "--json")
	require.Equal(t, 0, code, errOut)
	var listed []control.Listed
	require.NoError(t, json.Unmarshal([]byte(out), &listed), out)
	require.Len(t, listed, 1)
	require.Equal(t, control.Listed{WorkflowID: started.WorkflowID, RunID: started.RunID, Workflow: api.CanaryWorkflow,
		Service: service, Environment: "e2e", Strategy: "canary", Platform: "docker", Status: "rolled_back",
		Image: "stagecraft-demo:v2-bad", StartedAt: listed[0].StartedAt, ClosedAt: listed[0].ClosedAt}, listed[0])
	require.NotNil(t, listed[0].ClosedAt)
	out, _, code = runCLI(t, "list", "--source", "temporal", "--service", service)
	require.Equal(t, 0, code)
	require.Equal(t, 3, strings.Count(out, "\n"), "a header, the v1 install and the canary:\n%s", out)
}

// TestApprovalGate: a canary's 100% stage waits for approve, on the real
// server; the approval and who gave it are in the status, and the
// approval_needed notification was sent once.
func TestApprovalGate(t *testing.T) {
	itest.StartWorker(t, tc, dc)
	rc, hook, _ := newReceiver(t)
	service := itest.Name("e2e-approve")
	cleanup(t, service)
	installV1(t, service)
	s := demoSpec(service, "stagecraft-demo:v2", spec.Canary, 2)
	s.Strategy.Steps = []int{50, 100}
	s.Approval = &spec.Approval{Before: []int{100}, Timeout: spec.Duration(2 * time.Minute)}
	s.Notifications = []spec.Notification{{Webhook: hook, Events: []string{spec.EventApprovalNeeded, spec.EventSucceeded}}}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	started, err := control.Start(ctx, tc, s)
	require.NoError(t, err)
	var st api.Status
	itest.Eventually(t, time.Minute, "the rollout waits for approval", func() bool {
		st, err = control.Status(ctx, tc, started.WorkflowID)
		return err == nil && st.Phase == api.PhaseAwaitingApproval
	})
	require.Equal(t, 1, st.CurrentStage)
	_, err = control.Act(ctx, tc, started.WorkflowID, api.UpdatePause, api.ControlRequest{By: "frank"})
	require.NoError(t, err, "pausing while waiting is allowed")
	_, err = control.Act(ctx, tc, started.WorkflowID, api.UpdateResume, api.ControlRequest{By: "frank"})
	require.NoError(t, err)
	after, err := control.Act(ctx, tc, started.WorkflowID, api.UpdateApprove, api.ControlRequest{By: "grace", Reason: "error budget ok"})
	require.NoError(t, err)
	require.Equal(t, "grace", after.Approvals[0].ApprovedBy)
	_, err = control.Act(ctx, tc, started.WorkflowID, api.UpdateApprove, api.ControlRequest{By: "grace"})
	require.ErrorContains(t, err, "is not waiting for approval")
	res, err := control.Wait(ctx, tc, started.WorkflowID, started.RunID, time.Second, nil)
	require.NoError(t, err)
	require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
	require.Equal(t, "error budget ok", res.Approvals[0].Reason)
	recordNamed(t, started.WorkflowID, started.RunID, "canary-approved-succeeded")
	require.Equal(t, []string{spec.EventApprovalNeeded, spec.EventSucceeded}, rc.kinds())
	for _, in := range instances(t, service) {
		require.Equal(t, "stagecraft-demo:v2", in.Image)
	}
	require.True(t, strings.HasPrefix(res.WorkflowID, "deploy:docker:"))
}
