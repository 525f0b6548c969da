//go:build integration

package workflows

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	tclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/stagecraft/stagecraft/internal/codec"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// rulesParent starts rulesChild as a release with those rules would.
func rulesParent(ctx workflow.Context, rules spec.Rules, queue string) (int, error) {
	rel := &release{rules: rules}
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: workflow.GetInfo(ctx).WorkflowExecution.ID + "-child",
		TaskQueue: queue, Memo: rel.childMemo()})
	var got int
	err := workflow.ExecuteChildWorkflow(cctx, rulesChild).Get(ctx, &got)
	return got, err
}

// unique returns a workflow ID or task queue name unique to this run.
func unique(prefix string) string { return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()) }

// TestReleaseRulesReachItsRolloutsOnTheRealServer: a release validated
// under the rules from before the bounds (started before
// specBoundsVersion) has its rollouts follow those rules, so a service it
// accepted is not refused by the bounds mid-release; a release under the
// bounds passes nothing. The server hands the child the memo the release
// set (the time-skipped environment does not).
func TestReleaseRulesReachItsRolloutsOnTheRealServer(t *testing.T) {
	tc := devServer(t)
	t.Run("default converter", func(t *testing.T) { releaseRules(t, tc) })
	// With the payload codec on, the memo is sealed: the rollout reads it
	// with the worker's converter (SetDataConverter), not the default.
	t.Run("codec", func(t *testing.T) {
		c, err := codec.New([]codec.Key{{ID: "k1", Secret: make([]byte, codec.KeySize)}})
		require.NoError(t, err)
		dc := c.DataConverter()
		sealed, err := tclient.NewClientFromExisting(tc, tclient.Options{DataConverter: dc, FailureConverter: codec.FailureConverter(dc)})
		require.NoError(t, err)
		defer sealed.Close()
		SetDataConverter(dc)
		defer SetDataConverter(nil)
		releaseRules(t, sealed)
	})
}

func releaseRules(t *testing.T, tc tclient.Client) {
	queue := unique("rules")
	w := worker.New(tc, queue, worker.Options{})
	w.RegisterWorkflow(rulesParent)
	w.RegisterWorkflow(rulesChild)
	require.NoError(t, w.Start())
	defer w.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, tc2 := range []struct {
		rules spec.Rules
		want  int
	}{{spec.RulesUnbounded, int(spec.RulesUnbounded)}, {spec.RulesBounded, int(spec.RulesBounded)}, {spec.RulesCurrent, -1}} {
		run, err := tc.ExecuteWorkflow(ctx, tclient.StartWorkflowOptions{ID: "release:" + unique("rules-parent"), TaskQueue: queue}, rulesParent, tc2.rules, queue)
		require.NoError(t, err)
		var got int
		require.NoError(t, run.Get(ctx, &got))
		require.Equal(t, tc2.want, got, "release under rules %d", tc2.rules)
	}
	// A parent that is not a release lowers nothing: any workflow may
	// start a rollout as its child.
	for _, rules := range []spec.Rules{spec.RulesUnbounded, spec.RulesBounded} {
		run, err := tc.ExecuteWorkflow(ctx, tclient.StartWorkflowOptions{ID: unique("not-a-release"), TaskQueue: queue}, rulesParent, rules, queue)
		require.NoError(t, err)
		var got int
		require.NoError(t, run.Get(ctx, &got))
		require.Equal(t, -1, got, "a parent that is not a release passed rules %d", rules)
	}
}
