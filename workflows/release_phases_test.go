package workflows

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/audit"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// configured is the three-tier release with api and web on Kubernetes and
// configuration for every service, overridden for prod.
func configured() spec.Release {
	r := threeTier()
	for i := 1; i < 3; i++ {
		s := &r.Services[i].Deploy
		s.Platform = spec.Platform{Kubernetes: &spec.Kubernetes{Namespace: "prod", Deployment: s.Service}}
	}
	r.Config = map[string]string{"LOG_LEVEL": "info", "FEATURE_X": "off"}
	r.Profiles = map[string]spec.Profile{"prod": {Config: map[string]string{"LOG_LEVEL": "warn"},
		Services: map[string]map[string]string{"web": {"FEATURE_X": "on"}}}}
	return r
}

func TestReleasePreparesConfigurationBeforeActivating(t *testing.T) {
	h := newHarness(t)
	res := h.runRelease(configured())
	require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
	require.Equal(t, "prepare", h.configs[0], "configuration is written before any service changes")
	require.NotContains(t, h.configs, "restore")
	require.Len(t, h.prepared, 2, "the Kubernetes services; db-migrator's configuration is its containers' environment")
	require.Equal(t, map[string]string{"LOG_LEVEL": "warn", "FEATURE_X": "off"}, h.prepared[0].Data)
	require.Equal(t, map[string]string{"LOG_LEVEL": "warn", "FEATURE_X": "on"}, h.prepared[1].Data)
	api := h.specs["api"].Platform.Kubernetes.ConfigMap
	require.Equal(t, spec.ConfigMapName("api", h.prepared[0].Data), api, "api's rollout takes its environment from the prepared ConfigMap")
	require.Equal(t, "warn", h.specs["db-migrator"].Platform.Docker.Env["LOG_LEVEL"])
	require.Len(t, res.Config, 2)
	require.Equal(t, api, res.Config[0].Name)
	require.Equal(t, []string{"api-config-0000000000"}, res.Config[0].Previous, "the status keeps what the pods used before")
}

func TestReleasePreparationFailureChangesNothing(t *testing.T) {
	h := newHarness(t)
	h.prepareConfigErr = temporal.NewNonRetryableApplicationError("configmap prod/api-config-x exists with other data", "ConfigConflict", nil)
	res := h.runRelease(configured())
	require.Equal(t, api.OutcomeRolledBack, res.Outcome)
	require.Contains(t, res.Error, "preparation: configmap prod/api-config-x exists with other data")
	require.Equal(t, []string{"prepare", "restore"}, h.configs, "no service started; what was written is removed")
	require.Equal(t, "db-migrator=not_started api=not_started web=not_started", states(res))
}

func TestReleaseRollbackRestoresConfigurationAfterTheServices(t *testing.T) {
	h := newHarness(t)
	h.failService, h.failAfter = "web", time.Minute
	res := h.runRelease(configured())
	require.Equal(t, api.OutcomeRolledBack, res.Outcome, res.Error)
	require.Equal(t, []string{"api", "db-migrator"}, res.RollbackOrder)
	n := len(h.configs)
	require.Equal(t, []string{"converge web restore", "converge api restore", "converge db-migrator restore", "restore"}, h.configs[n-4:],
		"services roll back in reverse dependency order, then their configuration")
	for _, c := range res.Config {
		require.True(t, c.Removed, c.Service)
	}

	t.Run("a ConfigMap still in use needs manual intervention", func(t *testing.T) {
		h := newHarness(t)
		h.failService, h.failAfter = "web", time.Minute
		h.inUse = []string{"api"}
		res := h.runRelease(configured())
		require.Equal(t, api.OutcomeRollbackFailed, res.Outcome)
		require.Equal(t, "db-migrator=rolled_back api=needs_manual_intervention web=failed", states(res))
		require.Contains(t, res.Services[1].Error, "is still used by [api]")
	})
}

func TestReleaseNotifiesOncePerEvent(t *testing.T) {
	hook := []spec.Notification{{Name: "hook", Webhook: "http://127.0.0.1:1/hook"}}
	tests := []struct {
		name   string
		setup  func(*harness, *spec.Release)
		events []string
	}{
		{"succeeded", func(*harness, *spec.Release) {}, []string{"started", "succeeded"}},
		{"rolled back", func(h *harness, _ *spec.Release) { h.failService, h.failAfter = "api", time.Minute }, []string{"started", "rolled_back"}},
		{"rejected", func(h *harness, _ *spec.Release) { h.preflight = []string{"service api: image not found"} }, []string{"rejected"}},
		{"paused, then succeeded", func(h *harness, _ *spec.Release) {
			h.env.RegisterDelayedCallback(func() { h.env.SignalWorkflow(api.SignalPause, api.ControlRequest{By: "alice"}) }, time.Minute)
			h.env.RegisterDelayedCallback(func() { h.env.SignalWorkflow(api.SignalResume, api.ControlRequest{By: "alice"}) }, 5*time.Minute)
		}, []string{"started", "paused", "succeeded"}},
		{"only what the target asks for", func(_ *harness, r *spec.Release) {
			r.Notifications[0].Events = []string{spec.EventSucceeded}
		}, []string{"succeeded"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			r := threeTier()
			r.Notifications = append([]spec.Notification(nil), hook...)
			tt.setup(h, &r)
			res := h.runRelease(r)
			var got []string
			for _, e := range h.notified {
				got = append(got, e.Kind)
				require.Equal(t, "release", e.Subject)
				require.Equal(t, res.WorkflowID, e.WorkflowID)
				require.Equal(t, res.WorkflowID+"/"+res.RunID+"/"+e.Kind, e.Key)
				require.Len(t, e.Services, 3)
			}
			require.Equal(t, tt.events, got)
			last := h.notified[len(h.notified)-1]
			require.Equal(t, string(res.Outcome), last.Kind)
			require.Equal(t, res.Error, last.Reason)
		})
	}

	t.Run("a failed delivery does not fail the release", func(t *testing.T) {
		h := newHarness(t)
		h.notifyErr = errors.New("connect: connection refused")
		r := threeTier()
		r.Notifications = hook
		res := h.runRelease(r)
		require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
		// started: 8 attempts, given up; succeeded: 3 attempts in the
		// release's AuditCloseWait, then 8 by its trail workflow.
		require.Len(t, h.notified, 19, "each of the two events tried 8 times, then given up")
	})
}

func TestReleaseAuditTrail(t *testing.T) {
	h := newHarness(t)
	h.failService, h.failAfter = "web", time.Minute
	res := h.runRelease(threeTier())
	require.Equal(t, api.OutcomeRolledBack, res.Outcome)
	var plan *audit.Plan
	var events []audit.Event
	stages := map[int]audit.Stage{}
	for _, b := range h.batches {
		if b.WorkflowID != res.WorkflowID {
			continue
		}
		require.Equal(t, res.RunID, b.RunID)
		if b.Plan != nil {
			plan = b.Plan
		}
		events = append(events, b.Events...)
		for _, s := range b.Stages {
			stages[s.Index] = s
		}
	}
	require.NotNil(t, plan)
	require.Equal(t, "release", plan.Strategy)
	require.Equal(t, "rolled_back", plan.Status)
	require.True(t, plan.RolledBack)
	require.Equal(t, 3, plan.Stages)
	var lines []string
	for i, e := range events {
		require.Equal(t, int64(i+1), e.Seq)
		switch e.Kind {
		case audit.KindService:
			lines = append(lines, e.Action+" "+e.From+"→"+e.To)
		case audit.KindPhase, audit.KindOutcome:
			lines = append(lines, e.Kind+" "+e.To)
		}
	}
	trail := strings.Join(lines, "\n")
	for _, want := range []string{
		"db-migrator →pending", "phase activating", "db-migrator pending→running", "db-migrator running→ready",
		"web running→failed", "phase rolling_back", "api ready→rolled_back", "db-migrator ready→rolled_back", "outcome rolled_back",
	} {
		require.Contains(t, trail, want)
	}
	require.Less(t, strings.Index(trail, "api ready→rolled_back"), strings.Index(trail, "db-migrator ready→rolled_back"))
	require.Equal(t, "rolled_back", stages[0].Status)
	require.Equal(t, "failed", stages[2].Status)
}

func TestReleaseControlUpdates(t *testing.T) {
	h := newHarness(t)
	var rejected []string
	var accepted []api.ReleaseStatus
	update := func(action, by string, after time.Duration) {
		h.env.RegisterDelayedCallback(func() {
			h.env.UpdateWorkflow(action, action+after.String(), &releaseUpdate{done: func(st api.ReleaseStatus, err error) {
				if err != nil {
					rejected = append(rejected, action+": "+err.Error())
					return
				}
				accepted = append(accepted, st)
			}}, api.ControlRequest{By: by})
		}, after)
	}
	update(api.SignalResume, "alice", 30*time.Second)
	update(api.SignalPause, "alice", time.Minute)
	update(api.SignalPause, "bob", 2*time.Minute)
	update(api.SignalResume, "alice", 10*time.Minute)
	res := h.runRelease(threeTier())
	require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
	require.Equal(t, []string{
		"resume: cannot resume: release release:prod/shop is not paused",
		"pause: cannot pause: release release:prod/shop is already paused",
	}, rejected)
	require.Len(t, accepted, 2)
	require.True(t, accepted[0].Paused)
	require.Len(t, res.Controls, 2, "rejected updates never reach the history")
	require.Equal(t, "update", res.Controls[0].Via)
	started, _ := h.byService()
	require.Equal(t, 11*time.Minute, started["api"].Sub(started["db-migrator"]), "db-migrator's bake froze for the 9 min pause")
}

type releaseUpdate struct {
	done func(api.ReleaseStatus, error)
}

func (c *releaseUpdate) Accept()          {}
func (c *releaseUpdate) Reject(err error) { c.done(api.ReleaseStatus{}, err) }
func (c *releaseUpdate) Complete(v interface{}, err error) {
	if err != nil {
		c.done(api.ReleaseStatus{}, err)
		return
	}
	c.done(v.(api.ReleaseStatus), nil)
}

// Who started a release (the memo the starter sets) is in its status and
// its plan row; a release started without one names nobody. (The test
// environment gives a child no memo: that its rollouts name them with the
// release is TestReleaseChildMemo here and TestReleaseAuditedAndNotified
// on the real dev server.)
func TestReleaseRecordsWhoStartedIt(t *testing.T) {
	for _, by := range []string{"alice@laptop", ""} {
		t.Run("by="+by, func(t *testing.T) {
			h := newHarness(t)
			if by != "" {
				h.env.SetMemoOnStart(map[string]any{api.MemoStartedBy: by})
			}
			res := h.runRelease(threeTier())
			require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
			require.Equal(t, by, res.StartedBy, "the release's status")
			var plan *audit.Plan
			for _, b := range h.batches {
				if b.Plan != nil && b.WorkflowID == res.WorkflowID {
					plan = b.Plan
				}
			}
			require.NotNil(t, plan)
			require.Equal(t, by, plan.StartedBy, "the release's plan row")
		})
	}
}

// A release's rollouts are started, in their memo, by who started the
// release, through it; with nobody named, the memo says nothing of it (the
// rollout's trail then names the release, as startedBy does).
func TestReleaseChildMemo(t *testing.T) {
	rel := &release{rules: spec.RulesCurrent, st: api.ReleaseStatus{WorkflowID: "release:prod/shop"}}
	require.Nil(t, rel.childMemo())
	rel.st.StartedBy = "alice@laptop"
	require.Equal(t, map[string]any{api.MemoStartedBy: "alice@laptop (release:prod/shop)"}, rel.childMemo())
	rel.rules = spec.RulesCurrent - 1
	require.Equal(t, map[string]any{api.MemoStartedBy: "alice@laptop (release:prod/shop)", memoSpecRules: spec.RulesCurrent - 1}, rel.childMemo())
}

// A release checks who acts as a rollout does (TestControlsCheckWhoActs):
// an update naming them with a control character is refused; a signal is
// applied, its by kept quoted and escaped in the control log and in what
// the release passes on.
func TestReleaseControlsCheckWhoActs(t *testing.T) {
	h := newHarness(t)
	var refused error
	h.env.RegisterDelayedCallback(func() {
		h.env.UpdateWorkflow(api.SignalPause, "newline", &releaseUpdate{done: func(_ api.ReleaseStatus, err error) { refused = err }},
			api.ControlRequest{By: "mallory\nforged"})
	}, 30*time.Second)
	h.env.RegisterDelayedCallback(func() {
		h.env.SignalWorkflow(api.SignalAbort, api.ControlRequest{By: "eve\x1b[2J", Reason: "errors up"})
	}, time.Minute)
	res := h.runRelease(threeTier())
	require.ErrorContains(t, refused, "a control character")
	require.Equal(t, api.OutcomeRolledBack, res.Outcome, "the signalled abort is applied")
	require.Len(t, res.Controls, 1)
	require.True(t, res.Controls[0].Accepted)
	require.Equal(t, `"eve\x1b[2J"`, res.Controls[0].By)
	require.NotContains(t, res.Error, "\x1b")
}

// A release's control log is bounded as a rollout's is
// (TestControlLogBounded): a reason too long for an update is refused, a
// signal's is kept cut, a flood leaves the latest api.MaxControls records,
// and the reason the release passes on to its rollouts is the cut one.
func TestReleaseControlLogBounded(t *testing.T) {
	h := newHarness(t)
	var refused error
	const flood = api.MaxControls + 7
	h.env.RegisterDelayedCallback(func() {
		h.env.UpdateWorkflow(api.SignalPause, "long", &releaseUpdate{done: func(_ api.ReleaseStatus, err error) { refused = err }},
			api.ControlRequest{By: "alice", Reason: strings.Repeat("r", api.MaxReason+1)})
	}, 30*time.Second)
	h.env.RegisterDelayedCallback(func() {
		floodControls(flood, h.env.SignalWorkflow, "mallory", func(i int) string { return fmt.Sprintf("flood %d %s", i, strings.Repeat("x", 4*api.MaxReason)) })
		h.env.SignalWorkflow(api.SignalAbort, api.ControlRequest{By: "mallory", Reason: strings.Repeat("why\n", 1<<19-64)})
	}, time.Minute)
	res := h.runRelease(threeTier())
	require.ErrorContains(t, refused, fmt.Sprintf("reason: %d bytes, more than %d", api.MaxReason+1, api.MaxReason))
	require.Equal(t, api.OutcomeRolledBack, res.Outcome, "the signalled abort is applied")
	require.Len(t, res.Controls, api.MaxControls)
	require.Equal(t, flood+1-api.MaxControls, res.ControlsOmitted)
	for _, c := range res.Controls {
		require.LessOrEqual(t, len(c.Reason), api.MaxReason)
	}
	require.Equal(t, api.SignalAbort, res.Controls[len(res.Controls)-1].Action)
	require.Less(t, len(res.Error), 2*api.MaxReason, "the abort's reason is cut where it is kept")
	b, err := json.Marshal(res)
	require.NoError(t, err)
	require.Less(t, len(b), 256<<10, "the result stays far below the 2 MiB payload limit")
}

// A release keeps its trail through a burst in one task as a rollout does
// (TestControlBurstInOneTaskKeepsTheTrail), and judges a signal as its
// update's validator would: a pause of a paused release is recorded
// refused, not passed on to its rollouts again.
func TestReleaseControlBurstInOneTask(t *testing.T) {
	h := newHarness(t)
	const flood = api.MaxControls + 7
	h.env.RegisterDelayedCallback(func() {
		floodControls(flood, h.env.SignalWorkflowSkippingWorkflowTask, "m", func(i int) string { return fmt.Sprintf("flood %d", i) })
		h.env.SignalWorkflowSkippingWorkflowTask(api.SignalPause, api.ControlRequest{By: "m", Reason: "again"})
		h.env.SignalWorkflow(api.SignalPause, api.ControlRequest{By: "m", Reason: "and again"})
		h.env.SignalWorkflow(api.SignalAbort, api.ControlRequest{By: "m", Reason: "stop"})
	}, time.Minute)
	res := h.runRelease(threeTier())
	require.Equal(t, api.OutcomeRolledBack, res.Outcome)
	require.Equal(t, flood+3-api.MaxControls, res.ControlsOmitted)
	events := controlEvents(h.batches, res.WorkflowID)
	require.Len(t, events, flood+3)
	var again []audit.Event
	for _, e := range events {
		if e.Reason == "again" || e.Reason == "and again" {
			again = append(again, e)
		}
	}
	require.Len(t, again, 2)
	require.False(t, again[0].Accepted && again[1].Accepted, "a pause of a paused release is refused")
}
