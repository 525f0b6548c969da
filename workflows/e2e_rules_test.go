//go:build integration

package workflows_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	tclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/stagecraft/stagecraft/internal/codec"
	"github.com/stagecraft/stagecraft/internal/itest"
	"github.com/stagecraft/stagecraft/internal/spec"
	"github.com/stagecraft/stagecraft/workflows"
)

// TestReleaseRulesReachItsRolloutsOnTheRealServer: a release validated
// under the rules from before the bounds (started before
// specBoundsVersion) has its rollouts follow those rules, so a service it
// accepted is not refused by the bounds mid-release; a release under the
// bounds passes nothing. The server hands the child the memo the release
// set (the time-skipped environment does not).
func TestReleaseRulesReachItsRolloutsOnTheRealServer(t *testing.T) {
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
		workflows.SetDataConverter(dc)
		defer workflows.SetDataConverter(nil)
		releaseRules(t, sealed)
	})
}

func releaseRules(t *testing.T, tc tclient.Client) {
	queue := itest.Name("rules")
	w := worker.New(tc, queue, worker.Options{})
	w.RegisterWorkflow(workflows.RulesParent)
	w.RegisterWorkflow(workflows.RulesChild)
	require.NoError(t, w.Start())
	defer w.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, tc2 := range []struct {
		rules spec.Rules
		want  int
	}{{spec.RulesUnbounded, int(spec.RulesUnbounded)}, {spec.RulesBounded, int(spec.RulesBounded)}, {spec.RulesCurrent, -1}} {
		run, err := tc.ExecuteWorkflow(ctx, tclient.StartWorkflowOptions{ID: "release:" + itest.Name("rules-parent"), TaskQueue: queue}, workflows.RulesParent, tc2.rules, queue)
		require.NoError(t, err)
		var got int
		require.NoError(t, run.Get(ctx, &got))
		require.Equal(t, tc2.want, got, "release under rules %d", tc2.rules)
	}
	// A parent that is not a release lowers nothing: any workflow may
	// start a rollout as its child.
	for _, rules := range []spec.Rules{spec.RulesUnbounded, spec.RulesBounded} {
		run, err := tc.ExecuteWorkflow(ctx, tclient.StartWorkflowOptions{ID: itest.Name("not-a-release"), TaskQueue: queue}, workflows.RulesParent, rules, queue)
		require.NoError(t, err)
		var got int
		require.NoError(t, run.Get(ctx, &got))
		require.Equal(t, -1, got, "a parent that is not a release passed rules %d", rules)
	}
}
