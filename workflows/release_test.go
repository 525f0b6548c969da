package workflows

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/health"
	"github.com/stagecraft/stagecraft/internal/spec"
)

func releaseService(name string, deps ...string) spec.ReleaseService {
	s := testSpec(spec.Recreate)
	s.Service = name
	s.Strategy.Bake = spec.Duration(2 * time.Minute)
	return spec.ReleaseService{Name: name, DependsOn: deps, Deploy: s}
}

func threeTier() spec.Release {
	return spec.Release{Name: "shop", Environment: "prod", Services: []spec.ReleaseService{
		releaseService("db-migrator"), releaseService("api", "db-migrator"), releaseService("web", "api")}}
}

func (h *harness) runRelease(r spec.Release) api.ReleaseStatus {
	h.t.Helper()
	h.execute(api.ReleaseWorkflow, r)
	require.True(h.t, h.env.IsWorkflowCompleted())
	var res api.ReleaseStatus
	failed := closedResult(h.t, h.env, &res)
	require.Equal(h.t, res.Outcome != api.OutcomeSucceeded, failed, "closes Failed exactly when it did not succeed")
	return res
}

// firsts returns, per service, when its first converge happened, and the
// services whose last converge restored the snapshot, in order.
func (h *harness) byService() (started map[string]time.Time, restored []string) {
	started = map[string]time.Time{}
	for _, c := range h.converges {
		if _, ok := started[c.Service]; !ok {
			started[c.Service] = c.At
		}
		if c.Desired == restore {
			restored = append(restored, c.Service)
		}
	}
	return started, restored
}

func states(st api.ReleaseStatus) string {
	var out []string
	for _, s := range st.Services {
		out = append(out, s.Name+"="+s.State)
	}
	return strings.Join(out, " ")
}

func TestReleaseSucceedsInDependencyOrder(t *testing.T) {
	h := newHarness(t)
	res := h.runRelease(threeTier())
	require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
	require.Equal(t, "db-migrator=succeeded api=succeeded web=succeeded", states(res))
	started, restored := h.byService()
	require.Empty(t, restored)
	// Each waits for its dependency's bake (2 min) to pass.
	require.Equal(t, 2*time.Minute, started["api"].Sub(started["db-migrator"]))
	require.Equal(t, 2*time.Minute, started["web"].Sub(started["api"]))
	// Finalization (each rollout's last converge) happens only after the
	// last service passed: the release commits all at once.
	finals := map[string]time.Time{}
	for _, c := range h.converges {
		finals[c.Service] = c.At
	}
	require.Equal(t, finals["web"], finals["db-migrator"])
	require.Equal(t, started["web"].Add(2*time.Minute), finals["db-migrator"])
	for _, s := range res.Services {
		require.NotEmpty(t, s.RunID)
		require.Equal(t, "deploy:docker:"+s.Name, s.WorkflowID)
	}
}

func TestReleaseFailureRollsBackInReverseDependencyOrder(t *testing.T) {
	release := func() spec.Release {
		return spec.Release{Name: "shop", Environment: "prod", Services: []spec.ReleaseService{
			releaseService("db"), releaseService("cache"),
			releaseService("api", "db", "cache"), releaseService("worker", "db"),
			releaseService("web", "api")}}
	}
	tests := []struct {
		fail       string
		rollback   []string // by the release, in order
		states     string
		notStarted []string
	}{
		{"db", []string{"cache"}, "db=failed cache=rolled_back api=not_started worker=not_started web=not_started", []string{"api", "worker", "web"}},
		{"worker", []string{"api", "cache", "db"}, "db=rolled_back cache=rolled_back api=rolled_back worker=failed web=not_started", []string{"web"}},
		{"web", []string{"worker", "api", "cache", "db"}, "db=rolled_back cache=rolled_back api=rolled_back worker=rolled_back web=failed", nil},
	}
	for _, tt := range tests {
		t.Run("failing "+tt.fail, func(t *testing.T) {
			h := newHarness(t)
			h.failService, h.failAfter = tt.fail, time.Minute
			res := h.runRelease(release())
			require.Equal(t, api.OutcomeRolledBack, res.Outcome, res.Error)
			require.Contains(t, res.Error, "service "+tt.fail+": health check failed")
			require.Equal(t, tt.states, states(res))
			require.Equal(t, tt.rollback, res.RollbackOrder)
			started, restored := h.byService()
			// The failing service rolled itself back first; then the release,
			// dependents before their dependencies.
			require.Equal(t, append([]string{tt.fail}, tt.rollback...), restored)
			for _, n := range tt.notStarted {
				_, ok := started[n]
				require.False(t, ok, "%s never started", n)
			}
		})
	}
}

func TestReleaseParallelAndSequentialStages(t *testing.T) {
	for _, mode := range []string{spec.Parallel, spec.Sequential} {
		t.Run(mode, func(t *testing.T) {
			h := newHarness(t)
			r := spec.Release{Name: "shop", Environment: "prod", Mode: mode, Services: []spec.ReleaseService{
				releaseService("a"), releaseService("b"), releaseService("c", "a", "b")}}
			res := h.runRelease(r)
			require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
			started, _ := h.byService()
			gap := started["b"].Sub(started["a"])
			if mode == spec.Parallel {
				require.Zero(t, gap, "a and b start together")
			} else {
				require.Equal(t, 2*time.Minute, gap, "b starts when a has passed")
			}
			require.Equal(t, started["b"].Add(2*time.Minute), started["c"])
		})
	}
}

func TestReleaseCycleIsRejectedWithNothingStarted(t *testing.T) {
	h := newHarness(t)
	r := threeTier()
	r.Services[0].DependsOn = []string{"web"}
	res := h.runRelease(r)
	require.Equal(t, api.OutcomeRejected, res.Outcome)
	require.Contains(t, res.Error, "dependency cycle: db-migrator → web → api → db-migrator")
	require.Empty(t, h.converges)
	require.Equal(t, "db-migrator=not_started api=not_started web=not_started", states(res))
}

func TestReleaseActivationTimeoutRollsBack(t *testing.T) {
	h := newHarness(t)
	r := threeTier()
	r.Stages = []spec.ReleaseStage{{Services: []string{"db-migrator"}}, {Services: []string{"api"}, Timeout: spec.Duration(time.Minute)}, {Services: []string{"web"}}}
	res := h.runRelease(r)
	require.Equal(t, api.OutcomeRolledBack, res.Outcome)
	require.Contains(t, res.Error, "did not pass within its activation timeout 1m0s")
	require.Equal(t, "db-migrator=rolled_back api=failed web=not_started", states(res))
	_, restored := h.byService()
	require.Equal(t, []string{"api", "db-migrator"}, restored, "the running api is cancelled (it rolls back), then db-migrator")
}

func TestReleasePauseAndAbortReachTheRollouts(t *testing.T) {
	t.Run("pause and resume", func(t *testing.T) {
		h := newHarness(t)
		h.env.RegisterDelayedCallback(func() { h.env.SignalWorkflow(api.SignalPause, api.ControlRequest{By: "alice"}) }, time.Minute)
		h.env.RegisterDelayedCallback(func() { h.env.SignalWorkflow(api.SignalResume, api.ControlRequest{By: "alice"}) }, 31*time.Minute)
		res := h.runRelease(threeTier())
		require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
		started, _ := h.byService()
		require.Equal(t, 32*time.Minute, started["api"].Sub(started["db-migrator"]), "db-migrator's bake froze for the 30 min pause")
		require.Len(t, res.Controls, 2)
	})
	t.Run("abort", func(t *testing.T) {
		h := newHarness(t)
		h.env.RegisterDelayedCallback(func() { h.env.SignalWorkflow(api.SignalAbort, api.ControlRequest{By: "bob", Reason: "bad day"}) }, 3*time.Minute)
		res := h.runRelease(threeTier())
		require.Equal(t, api.OutcomeRolledBack, res.Outcome)
		require.Contains(t, res.Error, "aborted: requested by bob: bad day")
		require.Equal(t, "db-migrator=rolled_back api=failed web=not_started", states(res))
		_, restored := h.byService()
		require.Equal(t, []string{"api", "db-migrator"}, restored)
	})
}

func TestReleasePrerequisitesRejectWithEveryProblem(t *testing.T) {
	h := newHarness(t)
	h.preflight = []string{"service api: image stagecraft-demo:v9 not found", "service web: target k8s:prod/web: not found"}
	res := h.runRelease(threeTier())
	require.Equal(t, api.OutcomeRejected, res.Outcome)
	require.Equal(t, h.preflight, res.Problems)
	require.Contains(t, res.Error, "image stagecraft-demo:v9 not found; service web")
	require.Empty(t, h.converges, "nothing changed")
}

func TestReleaseIntegrationAndReadiness(t *testing.T) {
	withChecks := func() spec.Release {
		r := threeTier()
		r.Integration = &spec.Integration{Checks: []spec.Check{{Name: "checkout-flow", HTTP: &spec.HTTPCheck{URL: "http://127.0.0.1:1/checkout"}}}}
		r.Readiness = []spec.Criterion{
			{Check: spec.Check{Name: "p99-latency", TCP: &spec.TCPCheck{Address: "127.0.0.1:2"}}, Category: "performance", Severity: spec.SeverityCritical},
			{Check: spec.Check{Name: "runbook", TCP: &spec.TCPCheck{Address: "127.0.0.1:3"}}, Category: "documentation", Severity: spec.SeverityWarning},
		}
		return r
	}
	tests := []struct {
		name      string
		verdicts  map[string]health.Verdict
		outcome   api.Outcome
		readiness string
		errHas    string
	}{
		{"all ready", nil, api.OutcomeSucceeded, api.Ready, ""},
		{"a warning", map[string]health.Verdict{"runbook": health.Failed}, api.OutcomeSucceeded, api.ReadyWithWarnings, ""},
		{"a degraded critical is a warning", map[string]health.Verdict{"p99-latency": health.Degraded}, api.OutcomeSucceeded, api.ReadyWithWarnings, ""},
		{"a critical failure rolls back", map[string]health.Verdict{"p99-latency": health.Failed}, api.OutcomeRolledBack, api.NotReady, "production readiness: not_ready: p99-latency (performance)"},
		{"integration failure rolls back", map[string]health.Verdict{"checkout-flow": health.Failed}, api.OutcomeRolledBack, "", `integration validation: check "checkout-flow"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.verdicts = tt.verdicts
			res := h.runRelease(withChecks())
			require.Equal(t, tt.outcome, res.Outcome, res.Error)
			require.Equal(t, tt.readiness, res.Readiness)
			require.Contains(t, res.Error, tt.errHas)
			if tt.outcome == api.OutcomeRolledBack {
				require.Equal(t, []string{"web", "api", "db-migrator"}, res.RollbackOrder)
				require.Equal(t, "db-migrator=rolled_back api=rolled_back web=rolled_back", states(res))
			}
		})
	}
}

// An abort that reaches a committing release can no longer stop it: it is
// refused with that reason (an update is rejected; a signal is logged as not
// accepted) rather than reported accepted while the release commits anyway.
func TestReleaseAbortWhileCommittingIsRefusedWithItsReason(t *testing.T) {
	const finalize = 4 // three stage converges, then the first finalize
	t.Run("signal", func(t *testing.T) {
		h := newHarness(t)
		h.onConverge = func(n int) {
			if n == finalize {
				h.env.SignalWorkflow(api.SignalAbort, api.ControlRequest{By: "bob", Reason: "too late"})
			}
		}
		res := h.runRelease(threeTier())
		require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
		require.Len(t, res.Controls, 1)
		c := res.Controls[0]
		require.Equal(t, api.SignalAbort, c.Action)
		require.False(t, c.Accepted, "an abort the release cannot act on is not accepted")
		require.Equal(t, "the release is committing; its services are finalizing", c.Error)
	})
	t.Run("update", func(t *testing.T) {
		h := newHarness(t)
		var updateErr error
		answered := false
		h.onConverge = func(n int) {
			if n == finalize {
				h.env.UpdateWorkflow(api.SignalAbort, "abort-at-commit", &releaseUpdate{done: func(_ api.ReleaseStatus, err error) {
					answered, updateErr = true, err
				}}, api.ControlRequest{By: "bob", Reason: "too late"})
			}
		}
		res := h.runRelease(threeTier())
		require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
		require.True(t, answered)
		require.EqualError(t, updateErr, "cannot abort: release release:prod/shop: the release is committing; its services are finalizing")
		require.Empty(t, res.Controls, "a rejected update leaves no control record")
	})
}

// A held service that fails after passing its stages, while the release
// still validates (here an operator aborts its rollout directly), stops the
// commit: the release rolls the others back instead of committing them.
func TestReleaseHeldServiceFailingBeforeCommitRollsBack(t *testing.T) {
	h := newHarness(t)
	h.probeAfter = 10 * time.Minute
	r := threeTier()
	r.Integration = &spec.Integration{Checks: []spec.Check{{Name: "checkout-flow", HTTP: &spec.HTTPCheck{URL: "http://127.0.0.1:1/checkout"}}}}
	// web passes at 6 min; the integration checks run until 16 min.
	h.env.RegisterDelayedCallback(func() {
		h.env.SignalWorkflowByID("deploy:docker:db-migrator", api.SignalAbort, api.ControlRequest{By: "carol", Reason: "hotfix"})
	}, 8*time.Minute)
	res := h.runRelease(r)
	require.Equal(t, api.OutcomeRolledBack, res.Outcome, res.Error)
	require.Contains(t, res.Error, "service db-migrator: aborted: requested by carol: hotfix")
	require.Equal(t, "db-migrator=failed api=rolled_back web=rolled_back", states(res))
	require.Equal(t, []string{"web", "api"}, res.RollbackOrder)
	_, restored := h.byService()
	require.Equal(t, []string{"db-migrator", "web", "api"}, restored, "nothing was finalized")
}

// A release sent by any Temporal client may not set, on a service's spec,
// the state only workflows set (release, resume): refused before anything
// starts, naming each, as when those were fields of the spec.
func TestReleaseRefusesWorkflowOnlyFieldsFromAnyClient(t *testing.T) {
	h := newHarness(t)
	r := threeTier()
	b, err := json.Marshal(r)
	require.NoError(t, err)
	var raw map[string]any
	require.NoError(t, json.Unmarshal(b, &raw))
	svcs := raw["services"].([]any)
	svcs[0].(map[string]any)["deploy"].(map[string]any)["release"] = "release:prod/other"
	svcs[1].(map[string]any)["deploy"].(map[string]any)["resume"] = map[string]any{"next": 1}
	b, err = json.Marshal(raw)
	require.NoError(t, err)
	h.id = r.WithDefaults().WorkflowID()
	h.execute(api.ReleaseWorkflow, json.RawMessage(b))
	var res api.ReleaseStatus
	require.True(t, closedResult(t, h.env, &res))
	require.Equal(t, api.OutcomeRejected, res.Outcome)
	require.Contains(t, res.Problems, "services[0].deploy.release: is set by the release itself")
	require.Contains(t, res.Problems, "services[1].deploy.resume: is set by the rollout itself when it continues as new")
	require.Empty(t, h.converges)
	require.Equal(t, "db-migrator=not_started api=not_started web=not_started", states(res))
}
