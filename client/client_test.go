package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	temporalclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/mocks"
	"go.temporal.io/sdk/temporal"

	"github.com/stagecraft/stagecraft/client"
	"github.com/stagecraft/stagecraft/internal/api"
)

// These tests mock the Temporal client at its interface to check what the
// client sends and how it reads the answers; the integration tests in
// internal/e2e/interop_test.go run it against a real dev server.

func demo() client.Spec {
	return client.Spec{
		Service:  "hello",
		Image:    "stagecraft-demo:v2",
		Platform: client.Platform{Docker: &client.Docker{Replicas: 2, Port: 8080}},
		Strategy: client.Strategy{Type: client.Canary, Steps: []int{50, 100}, Bake: client.Duration(time.Second)},
		Health: client.Health{Checks: []client.Check{
			{Name: "healthz", HTTP: &client.HTTPCheck{URL: "http://{{.Address}}/healthz"}},
		}},
	}
}

// running describes the open rollout of s under the given request ID.
func running(t *testing.T, workflowType, requestID string) *workflowservice.DescribeWorkflowExecutionResponse {
	t.Helper()
	memo, err := converter.GetDefaultDataConverter().ToPayload(requestID)
	require.NoError(t, err)
	return &workflowservice.DescribeWorkflowExecutionResponse{WorkflowExecutionInfo: &workflowpb.WorkflowExecutionInfo{
		Execution: &commonpb.WorkflowExecution{WorkflowId: "deploy:docker:hello", RunId: "run-1"},
		Type:      &commonpb.WorkflowType{Name: workflowType},
		Memo:      &commonpb.Memo{Fields: map[string]*commonpb.Payload{api.MemoRequestID: memo}},
	}}
}

func TestDeployStartsOneRolloutPerTarget(t *testing.T) {
	ctx := context.Background()
	s := demo()
	alreadyStarted := serviceerror.NewWorkflowExecutionAlreadyStarted("already started", "", "run-1")

	t.Run("new", func(t *testing.T) {
		tc := mocks.NewClient(t)
		run := &mocks.WorkflowRun{}
		run.On("GetID").Return("deploy:docker:hello")
		run.On("GetRunID").Return("run-1")
		tc.On("ExecuteWorkflow", mock.Anything, mock.MatchedBy(func(o temporalclient.StartWorkflowOptions) bool {
			return o.ID == "deploy:docker:hello" && o.TaskQueue == client.TaskQueue &&
				o.Memo[api.MemoRequestID] == s.RequestID()
		}), client.CanaryWorkflow, mock.AnythingOfType("spec.Spec")).Return(run, nil)

		r, err := client.New(tc).Deploy(ctx, s)
		require.NoError(t, err)
		require.Equal(t, client.Rollout{WorkflowID: "deploy:docker:hello", RunID: "run-1", Workflow: client.CanaryWorkflow}, r)
	})

	t.Run("same request again returns the running rollout", func(t *testing.T) {
		tc := mocks.NewClient(t)
		tc.On("ExecuteWorkflow", mock.Anything, mock.Anything, mock.Anything, mock.Anything).Return(nil, alreadyStarted)
		tc.On("DescribeWorkflowExecution", mock.Anything, "deploy:docker:hello", "").
			Return(running(t, client.CanaryWorkflow, s.RequestID()), nil)

		r, err := client.New(tc).Deploy(ctx, s)
		require.NoError(t, err)
		require.Equal(t, client.Rollout{WorkflowID: "deploy:docker:hello", RunID: "run-1", Workflow: client.CanaryWorkflow, Existing: true}, r)
	})

	t.Run("another request for a busy target is refused with its name", func(t *testing.T) {
		tc := mocks.NewClient(t)
		tc.On("ExecuteWorkflow", mock.Anything, mock.Anything, mock.Anything, mock.Anything).Return(nil, alreadyStarted)
		tc.On("QueryWorkflow", mock.Anything, mock.Anything, mock.Anything, mock.Anything).Return(nil, errors.New("still deciding")).Maybe() // a run in the way with no outcome yet
		tc.On("DescribeWorkflowExecution", mock.Anything, "deploy:docker:hello", "").
			Return(running(t, client.CanaryWorkflow, "spec-0123456789abcdef"), nil)

		_, err := client.New(tc).Deploy(ctx, s)
		var busy *client.BusyError
		require.ErrorAs(t, err, &busy)
		require.Equal(t, "deploy:docker:hello", busy.WorkflowID)
		require.Contains(t, err.Error(), "deploy:docker:hello")
		require.Contains(t, err.Error(), "run-1")
	})

	t.Run("invalid spec starts nothing", func(t *testing.T) {
		tc := mocks.NewClient(t) // no expectations: any call fails the test
		bad := demo()
		bad.Service = "Not_A_Name"
		bad.Platform.Docker.Port = 0
		_, err := client.New(tc).Deploy(ctx, bad)
		var invalid *client.ValidationError
		require.ErrorAs(t, err, &invalid)
		var fields []string
		for _, p := range invalid.Problems {
			fields = append(fields, p.Field)
		}
		require.Equal(t, []string{"service", "platform.docker.port"}, fields)
	})
}

// An upstream service names who starts a rollout or release, as the
// starter's --by does; a name that would forge a line starts nothing.
func TestStartNamesWhoStartsIt(t *testing.T) {
	ctx := context.Background()
	run := &mocks.WorkflowRun{}
	run.On("GetID").Return("deploy:docker:hello")
	run.On("GetRunID").Return("run-1")
	startedBy := func(by string) any {
		return mock.MatchedBy(func(o temporalclient.StartWorkflowOptions) bool { return o.Memo[api.MemoStartedBy] == by })
	}
	tc := mocks.NewClient(t)
	tc.On("ExecuteWorkflow", mock.Anything, startedBy("deploy-bot"), client.CanaryWorkflow, mock.Anything).Return(run, nil).Once()
	_, err := client.New(tc).DeployWith(ctx, demo(), client.StartOptions{By: "deploy-bot"})
	require.NoError(t, err)

	rel := client.Release{Name: "shop", Environment: "prod", Services: []client.ReleaseService{{Name: "api", Deploy: demo()}}}
	tc.On("ExecuteWorkflow", mock.Anything, startedBy("release-bot"), client.ReleaseWorkflow, mock.Anything).Return(run, nil).Once()
	_, err = client.New(tc).ReleaseWith(ctx, rel, client.StartOptions{By: "release-bot"})
	require.NoError(t, err)

	bad := mocks.NewClient(t) // no expectations: any call fails the test
	_, err = client.New(bad).DeployWith(ctx, demo(), client.StartOptions{By: "bot\nstartedBy: alice"})
	require.ErrorContains(t, err, "a control character")
	_, err = client.New(bad).ReleaseWith(ctx, rel, client.StartOptions{By: strings.Repeat("b", 201)})
	require.ErrorContains(t, err, "201 bytes, more than 200")
}

func TestControlsAreUpdatesReturningTheStatus(t *testing.T) {
	ctx := context.Background()
	req := client.ControlRequest{Reason: "looks good", By: "alice"}
	for _, tt := range []struct {
		action string
		call   func(*client.Client) (client.Status, error)
	}{
		{"pause", func(c *client.Client) (client.Status, error) { return c.Pause(ctx, "deploy:docker:hello", req) }},
		{"resume", func(c *client.Client) (client.Status, error) { return c.Resume(ctx, "deploy:docker:hello", req) }},
		{"abort", func(c *client.Client) (client.Status, error) { return c.Abort(ctx, "deploy:docker:hello", req) }},
		{"promote", func(c *client.Client) (client.Status, error) { return c.Promote(ctx, "deploy:docker:hello", req) }},
		{"approve", func(c *client.Client) (client.Status, error) { return c.Approve(ctx, "deploy:docker:hello", req) }},
	} {
		t.Run(tt.action, func(t *testing.T) {
			tc := mocks.NewClient(t)
			h := mocks.NewWorkflowUpdateHandle(t)
			h.On("Get", mock.Anything, mock.Anything).Run(func(args mock.Arguments) {
				*args.Get(1).(*client.Status) = client.Status{WorkflowID: "deploy:docker:hello", Phase: client.PhaseValidating}
			}).Return(nil)
			tc.On("UpdateWorkflow", mock.Anything, temporalclient.UpdateWorkflowOptions{
				WorkflowID:   "deploy:docker:hello",
				UpdateName:   tt.action,
				Args:         []any{req},
				WaitForStage: temporalclient.WorkflowUpdateStageCompleted,
			}).Return(h, nil)

			st, err := tt.call(client.New(tc))
			require.NoError(t, err)
			require.Equal(t, client.PhaseValidating, st.Phase)
		})
	}
}

func TestARefusedControlSaysWhy(t *testing.T) {
	tc := mocks.NewClient(t)
	h := mocks.NewWorkflowUpdateHandle(t)
	h.On("Get", mock.Anything, mock.Anything).
		Return(temporal.NewApplicationError("cannot resume: rollout is not paused", ""))
	tc.On("UpdateWorkflow", mock.Anything, mock.Anything).Return(h, nil)
	tc.On("QueryWorkflow", mock.Anything, mock.Anything, mock.Anything, mock.Anything).Return(nil, errors.New("still deciding")).Maybe() // the rollout has no outcome: the refusal is its own

	_, err := client.New(tc).Resume(context.Background(), "deploy:docker:hello", client.ControlRequest{})
	var refused *client.RefusedError
	require.ErrorAs(t, err, &refused)
	require.Equal(t, "cannot resume: rollout is not paused", refused.Reason)
	require.Equal(t, "deploy:docker:hello", refused.WorkflowID)
}

func TestRolloutAndReleaseIDsAreNotMixedUp(t *testing.T) {
	ctx := context.Background()
	c := client.New(mocks.NewClient(t)) // no call reaches Temporal
	_, err := c.Pause(ctx, "release:prod/spring", client.ControlRequest{})
	require.ErrorContains(t, err, "is a release")
	_, err = c.Status(ctx, "release:prod/spring")
	require.ErrorContains(t, err, "is a release")
	_, err = c.ReleaseStatus(ctx, "deploy:docker:hello")
	require.ErrorContains(t, err, "is not a release")
	_, err = c.AbortRelease(ctx, "deploy:docker:hello", client.ControlRequest{})
	require.ErrorContains(t, err, "is not a release")
}

// TestSpecJSONIsTheWorkflowInput checks the JSON a non-Go caller writes
// decodes into the same spec the Go client sends: durations as strings,
// statuses as numbers or classes.
func TestSpecJSONIsTheWorkflowInput(t *testing.T) {
	in := `{"service":"hello","image":"stagecraft-demo:v2",
	  "platform":{"docker":{"replicas":2,"port":8080}},
	  "strategy":{"type":"canary","steps":[50,100],"bake":"1s"},
	  "health":{"checks":[{"name":"healthz","http":{"url":"http://{{.Address}}/healthz"}}]}}`
	var got client.Spec
	require.NoError(t, json.Unmarshal([]byte(in), &got))
	require.Equal(t, demo().WithDefaults(), got.WithDefaults())

	parsed, err := client.ParseSpec([]byte(in))
	require.NoError(t, err)
	require.Equal(t, "deploy:docker:hello", parsed.WorkflowID())

	b, err := json.Marshal(parsed)
	require.NoError(t, err)
	require.Contains(t, string(b), `"bake":"1s"`)
	require.Contains(t, string(b), `"expectStatus":[200]`)
}

func TestReleaseStartedTwiceJoins(t *testing.T) {
	ctx := context.Background()
	svc := client.ReleaseService{Name: "api", Deploy: demo()}
	r := client.Release{Name: "shop", Environment: "prod", Services: []client.ReleaseService{svc}}
	alreadyStarted := serviceerror.NewWorkflowExecutionAlreadyStarted("already started", "", "run-1")
	describe := func(requestID string) *workflowservice.DescribeWorkflowExecutionResponse {
		d := running(t, client.ReleaseWorkflow, requestID)
		d.WorkflowExecutionInfo.Execution.WorkflowId = "release:prod/shop"
		return d
	}

	t.Run("the same release joins the running one", func(t *testing.T) {
		tc := mocks.NewClient(t)
		tc.On("ExecuteWorkflow", mock.Anything, mock.MatchedBy(func(o temporalclient.StartWorkflowOptions) bool {
			return o.ID == "release:prod/shop" && o.Memo[api.MemoRequestID] == r.RequestID()
		}), client.ReleaseWorkflow, mock.Anything).Return(nil, alreadyStarted)
		tc.On("DescribeWorkflowExecution", mock.Anything, "release:prod/shop", "").Return(describe(r.RequestID()), nil)
		got, err := client.New(tc).Release(ctx, r)
		require.NoError(t, err)
		require.Equal(t, client.Rollout{WorkflowID: "release:prod/shop", RunID: "run-1", Workflow: client.ReleaseWorkflow, Existing: true}, got)
	})
	t.Run("another release of the same name is refused", func(t *testing.T) {
		tc := mocks.NewClient(t)
		tc.On("ExecuteWorkflow", mock.Anything, mock.Anything, mock.Anything, mock.Anything).Return(nil, alreadyStarted)
		tc.On("QueryWorkflow", mock.Anything, mock.Anything, mock.Anything, mock.Anything).Return(nil, errors.New("still deciding")).Maybe() // a run in the way with no outcome yet
		tc.On("DescribeWorkflowExecution", mock.Anything, "release:prod/shop", "").Return(describe("release-0123456789abcdef"), nil)
		_, err := client.New(tc).Release(ctx, r)
		var busy *client.BusyError
		require.ErrorAs(t, err, &busy)
		require.Equal(t, "release:prod/shop", busy.WorkflowID)
	})
	require.NotEqual(t, r.RequestID(), client.Release{Name: "shop", Environment: "staging", Services: r.Services}.RequestID())
}

func TestCodecSealsWithTheConfiguredKeys(t *testing.T) {
	t.Setenv("STAGECRAFT_CODEC_KEY_FILE", "")
	t.Setenv("STAGECRAFT_CODEC_KEYS", "")
	dc, fc, err := client.Codec("")
	require.NoError(t, err)
	require.Nil(t, dc)
	require.Nil(t, fc)

	t.Setenv("STAGECRAFT_CODEC_KEYS", "k1=AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=")
	dc, fc, err = client.Codec("")
	require.NoError(t, err)
	require.NotNil(t, fc)
	p, err := dc.ToPayload("secret value")
	require.NoError(t, err)
	require.Equal(t, "binary/encrypted", string(p.Metadata["encoding"]))
	require.NotContains(t, string(p.Data), "secret value")
	var back string
	require.NoError(t, dc.FromPayload(p, &back))
	require.Equal(t, "secret value", back)
}
