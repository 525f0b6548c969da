package control

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/spec"
)

func TestErrorsSayWhatHappened(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
		want string
	}{
		{"unknown rollout ID", &NotFoundError{ID: "deploy:docker:nope"},
			"no rollout deploy:docker:nope: nothing with this ID has run (rollout IDs look like deploy:docker:SERVICE or deploy:k8s:[CLUSTER/]NAMESPACE/DEPLOYMENT, release IDs like release:ENVIRONMENT/NAME; the execution ID a rollout was started with works too)"},
		{"unknown release ID", &NotFoundError{ID: "release:prod/nope"},
			"no release release:prod/nope: nothing with this ID has run (" + IDForms + ")"},
		{"unknown execution ID", &NotFoundError{ID: "req-42"},
			"no rollout req-42: neither a workflow ID nor the execution ID of a rollout (" + IDForms + ")"},
		{"finished with an outcome", &FinishedError{Action: "pause", WorkflowID: "deploy:docker:hello", Outcome: api.OutcomeRolledBack, Ended: "completed"},
			"cannot pause: rollout deploy:docker:hello is finished (outcome rolled_back); no open rollout to pause"},
		{"ended without one", &FinishedError{Action: "abort", WorkflowID: "release:prod/shop", Ended: "terminated"},
			"cannot abort: release release:prod/shop is finished (terminated); no open release to abort"},
		{"refused", &RefusedError{Action: "pause", WorkflowID: "deploy:docker:hello", Reason: "cannot pause: rollout is already paused"},
			"cannot pause: rollout is already paused (deploy:docker:hello)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, tt.err.Error())
		})
	}
}

func TestKind(t *testing.T) {
	require.Equal(t, "release", Kind("release:prod/shop"))
	require.Equal(t, "rollout", Kind("deploy:docker:hello"))
}

// A start names who starts it in printable characters: a bad --by is
// refused before the server is asked (no client is needed to refuse it).
func TestStartsRefuseABadBy(t *testing.T) {
	_, err := StartReleaseWith(context.Background(), nil, spec.Release{}, StartOptions{By: "ops\x1b[2J"})
	require.ErrorContains(t, err, "a control character at byte 3")
	for _, by := range []string{"alice‮ecila", "ops⁦x⁩", "a b", "c1"} {
		require.ErrorContains(t, api.CheckBy(by), "a control character", "%q", by)
	}
	require.NoError(t, api.CheckBy("Zoë Øster (ops) 漢字"))
	_, err = StartWith(context.Background(), nil, spec.Spec{}, StartOptions{By: strings.Repeat("a", api.MaxBy+1)})
	require.ErrorContains(t, err, "more than 200")
}
