package workflows

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// rulesChild reports the rules a release passed it, -1 for none.
func rulesChild(ctx workflow.Context) (int, error) {
	if r, ok := parentRules(ctx, ""); ok {
		return int(r), nil
	}
	return -1, nil
}

// TestReleaseRulesReachItsRolloutsOnlyAsChildren: a release under the
// bounds passes its rollouts nothing (they ask for themselves), and a memo
// set by a starter that is not a release is ignored, so nobody can lower
// the bounds that way. (That a release from before the bounds passes its
// rules to its rollouts needs the real server, which hands a child its
// memo: TestReleaseRulesReachItsRolloutsOnTheRealServer.)
func TestReleaseRulesReachItsRolloutsOnlyAsChildren(t *testing.T) {
	require.Nil(t, (&release{rules: spec.RulesCurrent}).childMemo())
	require.Equal(t, map[string]any{memoSpecRules: spec.RulesBounded}, (&release{rules: spec.RulesBounded}).childMemo())
	require.Equal(t, map[string]any{memoSpecRules: spec.RulesUnbounded}, (&release{rules: spec.RulesUnbounded}).childMemo())

	env := (&testsuite.WorkflowTestSuite{}).NewTestWorkflowEnvironment()
	env.RegisterWorkflow(rulesChild)
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: "raw", Memo: map[string]any{memoSpecRules: spec.RulesUnbounded}})
	env.ExecuteWorkflow(rulesChild)
	var got int
	require.NoError(t, env.GetWorkflowResult(&got))
	require.Equal(t, -1, got, "a memo from a starter that is not a release is ignored")
}

// TestWorkflowHoldsAnySpecToTheBoundaries: a spec that never went through
// the starter (a raw Temporal client, JSON input) is validated by the
// workflow under the security boundaries: a shared Docker network and
// another tool's labels are refused before anything is looked at.
func TestWorkflowHoldsAnySpecToTheBoundaries(t *testing.T) {
	h := newHarness(t)
	s := testSpec(spec.Canary)
	s.Platform.Docker.Network = "host"
	s.Platform.Docker.Labels = map[string]string{"traefik.http.routers.shop.rule": "Host(`shop`)"}
	res := h.run(s)
	require.Equal(t, api.OutcomeRejected, res.Outcome, res.Error)
	require.Contains(t, res.Error, "platform.docker.network")
	require.Contains(t, res.Error, "traefik.http.routers.shop.rule")
	require.Empty(t, h.converges, "nothing changed")
	require.Zero(t, h.prepares, "nothing looked at")
}

// TestWorkflowRefusesWhatTheAuditCannotStore: a spec holding a NUL
// character (which PostgreSQL's jsonb and text refuse, so its audit trail
// would never be written) sent by a raw client is refused by the workflow,
// naming the field, before anything is looked at; and a memo's startedBy
// with a NUL is made storable before the trail writes it.
func TestWorkflowRefusesWhatTheAuditCannotStore(t *testing.T) {
	h := newHarness(t)
	s := testSpec(spec.Canary)
	s.Platform.Docker.Env = map[string]string{"GREETING": "hi\x00"}
	res := h.run(s)
	require.Equal(t, api.OutcomeRejected, res.Outcome, res.Error)
	require.Contains(t, res.Error, "platform.docker.env.GREETING: must not hold a NUL character")
	require.Empty(t, h.converges, "nothing changed")
	require.Zero(t, h.prepares, "nothing looked at")

	require.Equal(t, "ops@host", storableText("ops\x00@host"))
	require.Equal(t, "a\uFFFDb", storableText("a\xffb"))
	require.Len(t, storableText(string(make([]byte, 0))+strings.Repeat("é", 150)), 200)
}
