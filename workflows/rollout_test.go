package workflows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/stagecraft/stagecraft/activities"
	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/audit"
	"github.com/stagecraft/stagecraft/internal/health"
	"github.com/stagecraft/stagecraft/internal/notify"
	"github.com/stagecraft/stagecraft/internal/plan"
	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// harness runs one rollout in the time-skipping test environment with the
// activities mocked at the workflow's seam, recording what was asked of them.
type harness struct {
	t   *testing.T
	env *testsuite.TestWorkflowEnvironment

	mu        sync.Mutex
	converges []convergeCall
	watches   []activities.WatchInput
	pending   activities.WatchInput
	// failAt makes the watch of stage failAt (0-based, counted by converge
	// calls before the watch) fail after failAfter.
	failAt    int
	failAfter time.Duration
	// convergeErr fails the converge of stage convergeFailAt.
	convergeFailAt int
	snapshot       platform.Snapshot
	prepareErr     error
	verifyFails    bool
	// script, when set, answers bake and observe watches: the nth watch
	// (from 0) returns res after `after` of workflow time; ok false falls
	// back to the default behaviour.
	script  func(in activities.WatchInput, n int) (res activities.WatchResult, after time.Duration, ok bool)
	scripts int
	// started lists every watch started, finished or not.
	started []activities.WatchInput
	// batches holds the audit batches written; auditFails fails that many
	// audit writes first (a database outage).
	batches    []audit.Batch
	auditFails int
	auditCalls int
	// failService makes every bake watch of that service fail after failAfter.
	failService string
	// preflight is what the release's Preflight finds; verdicts maps a
	// probed check's name to its verdict (healthy when absent).
	preflight []string
	verdicts  map[string]health.Verdict
	probes    int
	// probeAfter is how long a probe takes on the workflow clock.
	probeAfter time.Duration
	// configs logs the release's configuration calls, with the converges,
	// in order ("prepare", "restore", "converge <service> [restore]");
	// prepareConfigErr fails the preparation; notified holds the
	// notifications sent.
	configs          []string
	prepared         []activities.ConfigItem
	prepareConfigErr error
	inUse            []string
	notified         []notify.Event
	notifyErr        error
	// lostWatches fails that many bake watch attempts first, with the
	// retryable error a watch whose worker or heartbeats were lost gets.
	lostWatches int
	// onConverge, when set, runs on every converge (mu held).
	onConverge func(n int)
	// restoreDrift is what a restoring converge reports as drift.
	restoreDrift []string
	// restoreTerminating is what a restoring converge reports as still
	// terminating.
	restoreTerminating []string
	specs              map[string]spec.Spec
	prepares           int
	// id, when set, is the workflow ID the test starts under; by default
	// the target's own (what the starter uses).
	id string
}

type convergeCall struct {
	Service string
	Desired plan.Desired
	At      time.Time
}

func newHarness(t *testing.T) *harness { return newHarnessOn(t, &testsuite.WorkflowTestSuite{}) }

// newHarnessOn is newHarness on a suite set up by the test (a metrics handler).
func newHarnessOn(t *testing.T, suite *testsuite.WorkflowTestSuite) *harness {
	h := &harness{t: t, env: suite.NewTestWorkflowEnvironment(), failAt: -1, convergeFailAt: -1,
		snapshot: snapshotOf(4, "stagecraft-demo:v1")}
	Register(h.env)
	h.env.RegisterActivity(acts)
	h.env.SetTestTimeout(30 * time.Second)

	h.env.OnActivity(acts.Prepare, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, in activities.PrepareInput) (activities.PrepareResult, error) {
			h.mu.Lock()
			h.prepares++
			h.mu.Unlock()
			if h.prepareErr != nil {
				return activities.PrepareResult{}, h.prepareErr
			}
			return activities.PrepareResult{Snapshot: h.snapshot}, nil
		}).Maybe()
	h.env.OnActivity(acts.Converge, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, in activities.ConvergeInput) (platform.ConvergeResult, error) {
			h.mu.Lock()
			defer h.mu.Unlock()
			n := len(h.converges)
			h.converges = append(h.converges, convergeCall{Service: in.Request.Spec.Service, Desired: in.Request.Desired, At: h.env.Now()})
			if h.onConverge != nil {
				h.onConverge(n + 1)
			}
			if in.Request.Desired == restore {
				h.configs = append(h.configs, "converge "+in.Request.Spec.Service+" restore")
			} else {
				h.configs = append(h.configs, "converge "+in.Request.Spec.Service)
			}
			if h.specs == nil {
				h.specs = map[string]spec.Spec{}
			}
			h.specs[in.Request.Spec.Service] = in.Request.Spec
			if n == h.convergeFailAt {
				return platform.ConvergeResult{}, temporal.NewNonRetryableApplicationError("container exited", "ContainerExited", nil)
			}
			d := in.Request.Desired
			res := platform.ConvergeResult{NewCount: d.New, OldCount: d.Old, Total: d.New + d.Old}
			if d == restore {
				res.Drift = h.restoreDrift
				res.Terminating = h.restoreTerminating
			}
			return res, nil
		}).Maybe()
	h.env.OnActivity(acts.Preflight, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, in activities.PreflightInput) (activities.PreflightResult, error) {
			return activities.PreflightResult{Problems: h.preflight}, nil
		}).Maybe()
	h.env.OnActivity(acts.Probe, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, in activities.ProbeInput) (health.Round, error) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.probes++
			round := health.Round{Verdict: health.Healthy}
			for _, c := range in.Checks {
				v := h.verdicts[c.Name]
				if v == "" {
					v = health.Healthy
				}
				res := health.Result{Check: c.Name, Verdict: v}
				if v != health.Healthy {
					res.Error = "probe " + string(v)
				}
				round.Results = append(round.Results, res)
				round.Verdict = health.Worse(round.Verdict, v)
			}
			return round, nil
		}).AfterFn(func() time.Duration {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.probeAfter
	}).Maybe()
	config := func(what string) func(ctx context.Context, in activities.ConfigInput) ([]platform.ConfigResult, error) {
		return func(ctx context.Context, in activities.ConfigInput) ([]platform.ConfigResult, error) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.configs = append(h.configs, what)
			var out []platform.ConfigResult
			for _, it := range in.Items {
				k := it.Spec.Platform.Kubernetes
				r := platform.ConfigResult{Service: it.Name, Name: k.ConfigMap, Keys: len(it.Data), Created: true, Previous: []string{k.Deployment + "-config-0000000000"}}
				if what == "restore" {
					r = platform.ConfigResult{Service: it.Name, Name: k.ConfigMap, Removed: !slices.Contains(h.inUse, it.Name)}
					if !r.Removed {
						r.InUse = []string{k.Deployment}
					}
				}
				out = append(out, r)
			}
			if what == "prepare" {
				h.prepared = in.Items
				if h.prepareConfigErr != nil {
					return nil, h.prepareConfigErr
				}
			}
			return out, nil
		}
	}
	h.env.OnActivity(acts.PrepareConfig, mock.Anything, mock.Anything).Return(config("prepare")).Maybe()
	h.env.OnActivity(acts.RestoreConfig, mock.Anything, mock.Anything).Return(config("restore")).Maybe()
	h.env.OnActivity(acts.Notify, mock.Anything, mock.Anything).Return(func(ctx context.Context, in activities.NotifyInput) (activities.NotifyResult, error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.notified = append(h.notified, in.Event)
		if h.notifyErr != nil {
			return activities.NotifyResult{}, h.notifyErr
		}
		return activities.NotifyResult{Delivered: []string{"hook"}}, nil
	}).Maybe()
	h.env.OnActivity(acts.Audit, mock.Anything, mock.Anything).Return(func(ctx context.Context, b audit.Batch) error {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.auditCalls++
		if h.auditCalls <= h.auditFails {
			return errors.New("connect: connection refused")
		}
		h.batches = append(h.batches, b)
		return nil
	}).Maybe()
	// A bake watch returns healthy after its rounds on the workflow clock, or
	// fails early in the stage chosen by failAt. A verify watch passes.
	h.env.OnActivity(acts.Watch, mock.Anything, mock.MatchedBy(func(in activities.WatchInput) bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.pending = in
		return true
	})).AfterFn(func() time.Duration {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.started = append(h.started, h.pending)
		if h.script != nil && h.pending.Mode != activities.WatchVerify {
			if _, after, ok := h.script(h.pending, h.scripts); ok {
				return after
			}
		}
		switch {
		case h.failing():
			return h.failAfter
		case h.pending.Mode == activities.WatchObserve:
			return 1000 * time.Hour // until cancelled, like the real watcher
		}
		return time.Duration(watchRounds(h.pending)) * h.pending.Spec.Health.Interval.D()
	}).Return(func(ctx context.Context, in activities.WatchInput) (activities.WatchResult, error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.watches = append(h.watches, in)
		if h.lostWatches > 0 && in.Mode == activities.WatchRounds {
			h.lostWatches--
			return activities.WatchResult{}, temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_HEARTBEAT, nil)
		}
		if h.script != nil && in.Mode != activities.WatchVerify {
			n := h.scripts
			h.scripts++
			if res, _, ok := h.script(in, n); ok {
				return res, nil
			}
		}
		switch {
		case in.Mode == activities.WatchVerify && h.verifyFails:
			return activities.WatchResult{Rounds: 5, Failed: 5, LastFailure: "still failing"}, nil
		case in.Mode == activities.WatchVerify:
			return activities.WatchResult{Healthy: true, Rounds: 1, Passed: 1}, nil
		case h.failAt >= 0 && len(h.converges)-1 == h.failAt,
			h.failService != "" && in.Spec.Service == h.failService && in.Mode == activities.WatchRounds:
			return activities.WatchResult{Rounds: 2, Passed: 1, Failed: 1, LastFailure: `check "healthz": status 500`}, nil
		}
		n := watchRounds(in)
		return activities.WatchResult{Healthy: true, Rounds: n, Passed: n,
			Tally: health.Tally{Counts: health.Counts{Healthy: n}, Rounds: n, Samples: n}}, nil
	}).Maybe()
	return h
}

// watchRounds is how many rounds a healthy watch runs: its rounds, and on
// until it has its samples, at least one.
func watchRounds(in activities.WatchInput) int { return max(in.Rounds, in.MinSamples, 1) }

// failing reports whether the current stage's watch should fail (mu held).
func (h *harness) failing() bool {
	return (h.failAt >= 0 && len(h.converges)-1 == h.failAt) ||
		(h.failService != "" && h.pending.Spec.Service == h.failService && h.pending.Mode == activities.WatchRounds)
}

func (h *harness) run(s spec.Spec) api.Result {
	h.t.Helper()
	name, err := api.WorkflowFor(s.Strategy.Type)
	require.NoError(h.t, err)
	h.execute(name, s)
	require.True(h.t, h.env.IsWorkflowCompleted())
	var res api.Result
	failed := closedResult(h.t, h.env, &res)
	require.Equal(h.t, res.Outcome != api.OutcomeSucceeded, failed, "closes Failed exactly when it did not succeed")
	return res
}

// closedResult reads a finished run's result whichever way it closed,
// and reports whether it closed Failed (its outcome's error, the result in
// its details).
func closedResult(t testing.TB, env *testsuite.TestWorkflowEnvironment, v any) (failed bool) {
	t.Helper()
	if err := env.GetWorkflowError(); err != nil {
		require.True(t, api.ResultOf(err, v), "a run closed Failed carries its result: %v", err)
		return true
	}
	require.NoError(t, env.GetWorkflowResult(v))
	return false
}

// execute starts the workflow under the ID the starter would give it (the
// target's or the release's), or h.id.
func (h *harness) execute(name string, in any) {
	id := h.id
	if id == "" {
		switch in := in.(type) {
		case spec.Spec:
			id = in.WorkflowID()
		case api.RolloutInput:
			id = in.WorkflowID()
		case spec.Release:
			id = in.WithDefaults().WorkflowID()
		}
	}
	h.env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: id, TaskQueue: api.TaskQueue})
	h.env.ExecuteWorkflow(name, in)
}

func (h *harness) desired() []plan.Desired {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]plan.Desired, len(h.converges))
	for i, c := range h.converges {
		out[i] = c.Desired
	}
	return out
}

func snapshotOf(n int, image string) platform.Snapshot {
	s := platform.Snapshot{Service: "hello"}
	for i := range n {
		s.Instances = append(s.Instances, platform.Instance{Name: fmt.Sprintf("hello-%d", i), Image: image})
	}
	return s
}

func testSpec(strategy string) spec.Spec {
	s := spec.Spec{
		Service:  "hello",
		Image:    "stagecraft-demo:v2",
		Platform: spec.Platform{Docker: &spec.Docker{Replicas: 4, Port: 8080}},
		Strategy: spec.Strategy{Type: strategy},
		Health: spec.Health{Interval: spec.Duration(30 * time.Second), Checks: []spec.Check{
			{Name: "healthz", HTTP: &spec.HTTPCheck{URL: "http://{{.Address}}/healthz"}},
		}},
	}
	switch strategy {
	case spec.Canary:
		s.Strategy.Steps = []int{25, 50, 100}
		s.Strategy.Bake = spec.Duration(5 * time.Minute)
	case spec.Rolling:
		s.Strategy.BatchSize = 2
		s.Strategy.Bake = spec.Duration(2 * time.Minute)
	}
	return s.WithDefaults()
}

var restore = plan.Desired{New: 0, Old: 4, Traffic: plan.TrafficOld, Order: plan.Surge}

// expected desired states per strategy for 4 replacing 4, then the final.
var expected = map[string][]plan.Desired{
	spec.Canary: {
		{New: 1, Old: 3, Traffic: plan.TrafficShared, Order: plan.Surge},
		{New: 2, Old: 2, Traffic: plan.TrafficShared, Order: plan.Surge},
		{New: 4, Old: 0, Traffic: plan.TrafficShared, Order: plan.Surge},
	},
	spec.BlueGreen: {
		{New: 4, Old: 4, Traffic: plan.TrafficOld, Order: plan.Surge},
		{New: 4, Old: 4, Traffic: plan.TrafficNew, Order: plan.Surge},
	},
	spec.Rolling: {
		{New: 2, Old: 2, Traffic: plan.TrafficShared, Order: plan.Surge},
		{New: 4, Old: 0, Traffic: plan.TrafficShared, Order: plan.Surge},
	},
	spec.Recreate: {
		{New: 4, Old: 0, Traffic: plan.TrafficNew, Order: plan.StopFirst},
	},
}

var strategies = []string{spec.Canary, spec.BlueGreen, spec.Rolling, spec.Recreate}

func TestEveryStrategySucceeds(t *testing.T) {
	for _, strategy := range strategies {
		t.Run(strategy, func(t *testing.T) {
			h := newHarness(t)
			res := h.run(testSpec(strategy))
			require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
			final := plan.Desired{New: 4, Traffic: plan.TrafficNew, Order: plan.Surge}
			if strategy == spec.Recreate {
				final.Order = plan.StopFirst
			}
			require.Equal(t, append(append([]plan.Desired(nil), expected[strategy]...), final), h.desired())
			require.Len(t, res.Stages, len(expected[strategy]))
			for _, st := range res.Stages {
				require.Equal(t, api.StageCompleted, st.Status, st.Name)
				require.NotNil(t, st.StartedAt)
				require.NotNil(t, st.CompletedAt)
				require.Positive(t, st.ChecksPassed, st.Name)
				require.Zero(t, st.ChecksFailed)
				require.Equal(t, st.New, st.InstancesUpdated)
			}
			require.Equal(t, "stagecraft-demo:v1", res.ImageFrom)
			require.Equal(t, "stagecraft-demo:v2", res.ImageTo)
			require.Nil(t, res.Rollback)
		})
	}
}

func TestFailureAtEveryStageRollsBack(t *testing.T) {
	for _, strategy := range strategies {
		for stage := range expected[strategy] {
			t.Run(fmt.Sprintf("%s/watch-fails-stage-%d", strategy, stage), func(t *testing.T) {
				h := newHarness(t)
				h.failAt, h.failAfter = stage, 45*time.Second
				res := h.run(testSpec(strategy))
				require.Equal(t, api.OutcomeRolledBack, res.Outcome)
				require.Contains(t, res.Error, "status 500")
				// Stages up to the failing one, then the restore; nothing after.
				want := append(append([]plan.Desired(nil), expected[strategy][:stage+1]...), restore)
				require.Equal(t, want, h.desired())
				for i, st := range res.Stages {
					if i <= stage {
						require.Equal(t, api.StageRolledBack, st.Status, st.Name)
					} else {
						require.Equal(t, api.StagePending, st.Status, st.Name)
					}
				}
				require.Contains(t, res.Stages[stage].Error, "status 500")
				require.Equal(t, 1, res.Stages[stage].ChecksFailed)
				require.True(t, res.Rollback.Verified)
				last := h.watches[len(h.watches)-1]
				require.Equal(t, activities.WatchVerify, last.Mode)
				require.Equal(t, platform.WhichOld, last.Which)
			})
			t.Run(fmt.Sprintf("%s/converge-fails-stage-%d", strategy, stage), func(t *testing.T) {
				h := newHarness(t)
				h.convergeFailAt = stage
				res := h.run(testSpec(strategy))
				require.Equal(t, api.OutcomeRolledBack, res.Outcome)
				require.Contains(t, res.Error, "container exited")
				want := append(append([]plan.Desired(nil), expected[strategy][:stage+1]...), restore)
				require.Equal(t, want, h.desired())
				require.Equal(t, api.StageRolledBack, res.Stages[stage].Status)
			})
		}
	}
}

// TestBakeWatchOutlivesLostHeartbeats: a bake's watch whose attempts keep
// losing their worker or heartbeats is retried for as long as it takes,
// past the 5 attempts that once rolled back 244 of 2,000 rollouts baking on
// one loaded worker: a lost heartbeat is no verdict on the new version.
func TestBakeWatchOutlivesLostHeartbeats(t *testing.T) {
	h := newHarness(t)
	h.lostWatches = 8
	res := h.run(testSpec(spec.Canary))
	require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
	require.Nil(t, res.Rollback)
	require.Zero(t, h.lostWatches)
	// The 3 stages' watches, 8 of their attempts lost.
	require.Len(t, h.watches, 3+8)
}

// TestLostWatchIsNotACancellation: a watch that times out after an attempt
// the worker reported as cancelled (it cancels an activity whose heartbeat
// the server refused) is not the workflow being cancelled.
func TestLostWatchIsNotACancellation(t *testing.T) {
	r := &rollout{}
	lost := fmt.Errorf("health watch: %w", temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_HEARTBEAT, temporal.NewCanceledError()))
	require.NotEqual(t, "workflow cancelled", r.stopReason(lost))
	require.Contains(t, r.stopReason(lost), "Heartbeat")
	require.Equal(t, "workflow cancelled", r.stopReason(temporal.NewCanceledError()))
}

func TestRollbackVerificationFailureIsReported(t *testing.T) {
	h := newHarness(t)
	h.failAt, h.failAfter, h.verifyFails = 1, time.Minute, true
	res := h.run(testSpec(spec.Canary))
	require.Equal(t, api.OutcomeRollbackFailed, res.Outcome)
	require.Contains(t, res.Error, "still failing")
	require.False(t, res.Rollback.Verified)
}

func TestPauseKeepsRemainingBake(t *testing.T) {
	h := newHarness(t)
	s := testSpec(spec.Canary)
	var start time.Time
	h.env.RegisterDelayedCallback(func() {
		start = h.env.Now()
		h.env.SignalWorkflow(api.SignalPause, api.ControlRequest{Reason: "look at dashboards", By: "alice"})
	}, 2*time.Minute)
	h.env.RegisterDelayedCallback(func() {
		h.env.SignalWorkflow(api.SignalResume, api.ControlRequest{By: "alice"})
	}, 12*time.Minute)
	res := h.run(s)
	require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
	calls := h.converges
	// Stage 0 baked 2 min, paused 10 min, then the remaining 3 min.
	require.Equal(t, 15*time.Minute, calls[1].At.Sub(calls[0].At), "second stage starts after 2m + 10m paused + 3m")
	require.Equal(t, 5*time.Minute, calls[2].At.Sub(calls[1].At))
	require.False(t, start.IsZero())
	require.Len(t, res.Controls, 2)
	require.Equal(t, "alice", res.Controls[0].By)
	require.Equal(t, "look at dashboards", res.Controls[0].Reason)
	require.True(t, res.Controls[0].Accepted)
}

func TestPauseBetweenStagesHoldsNextStage(t *testing.T) {
	h := newHarness(t)
	// Paused during stage 0's bake for longer than its remaining time: stage
	// 1 must not start until resumed.
	h.env.RegisterDelayedCallback(func() { h.env.SignalWorkflow(api.SignalPause, nil) }, 4*time.Minute)
	h.env.RegisterDelayedCallback(func() { h.env.SignalWorkflow(api.SignalResume, nil) }, time.Hour)
	res := h.run(testSpec(spec.Canary))
	require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
	require.Equal(t, time.Hour+time.Minute, h.converges[1].At.Sub(h.converges[0].At))
}

func TestAbortMidBakeRollsBackAtOnce(t *testing.T) {
	for _, strategy := range strategies {
		t.Run(strategy, func(t *testing.T) {
			h := newHarness(t)
			var abortAt time.Time
			h.env.RegisterDelayedCallback(func() {
				abortAt = h.env.Now()
				h.env.SignalWorkflow(api.SignalAbort, api.ControlRequest{Reason: "bad metrics", By: "bob"})
			}, 90*time.Second)
			res := h.run(testSpec(strategy))
			require.Equal(t, api.OutcomeRolledBack, res.Outcome)
			require.Contains(t, res.Error, "bad metrics")
			last := h.converges[len(h.converges)-1]
			require.Equal(t, restore, last.Desired)
			require.Equal(t, abortAt, last.At, "rollback starts at the abort, not at the next timer")
			require.Equal(t, api.StageRolledBack, res.Stages[0].Status)
			require.Contains(t, res.Stages[0].Error, "bad metrics")
		})
	}
}

func TestPromoteSkipsRemainingBakes(t *testing.T) {
	h := newHarness(t)
	h.env.RegisterDelayedCallback(func() { h.env.SignalWorkflow(api.SignalPromote, api.ControlRequest{By: "carol"}) }, time.Minute)
	res := h.run(testSpec(spec.Canary))
	require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
	require.True(t, res.Promoted)
	for _, c := range h.converges[1:] {
		require.Equal(t, h.converges[0].At.Add(time.Minute), c.At, "no bake after promote")
	}
	for _, st := range res.Stages {
		require.Equal(t, api.StageCompleted, st.Status)
	}
}

func TestCancelRollsBack(t *testing.T) {
	h := newHarness(t)
	h.env.RegisterDelayedCallback(func() { h.env.CancelWorkflow() }, 7*time.Minute)
	res := h.run(testSpec(spec.Canary))
	require.Equal(t, api.OutcomeRolledBack, res.Outcome)
	require.Contains(t, res.Error, "cancelled")
	require.Equal(t, restore, h.desired()[len(h.converges)-1])
	require.True(t, res.Rollback.Verified)
}

func TestCancelWhilePausedRollsBack(t *testing.T) {
	h := newHarness(t)
	h.env.RegisterDelayedCallback(func() { h.env.SignalWorkflow(api.SignalPause, nil) }, time.Minute)
	h.env.RegisterDelayedCallback(func() { h.env.CancelWorkflow() }, 3*time.Hour)
	s := testSpec(spec.Canary)
	s.Timeout = spec.Duration(24 * time.Hour)
	res := h.run(s)
	require.Equal(t, api.OutcomeRolledBack, res.Outcome)
	require.Contains(t, res.Error, "cancelled")
	require.Equal(t, restore, h.desired()[len(h.converges)-1])
}

func TestKeepBlueForThenRemoveBlue(t *testing.T) {
	h := newHarness(t)
	s := testSpec(spec.BlueGreen)
	s.Strategy.KeepBlueFor = spec.Duration(10 * time.Minute)
	res := h.run(s)
	require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
	final := h.converges[len(h.converges)-1]
	require.Equal(t, plan.Desired{New: 4, Traffic: plan.TrafficNew, Order: plan.Surge}, final.Desired)
	require.Equal(t, 3*time.Minute+10*time.Minute, final.At.Sub(h.converges[1].At), "post-switch bake, then blue kept 10 min")
}

func TestAbortWhileKeepingBlueSwitchesBack(t *testing.T) {
	h := newHarness(t)
	s := testSpec(spec.BlueGreen)
	s.Strategy.KeepBlueFor = spec.Duration(time.Hour)
	h.env.RegisterDelayedCallback(func() { h.env.SignalWorkflow(api.SignalAbort, api.ControlRequest{Reason: "errors after switch"}) }, 30*time.Minute)
	res := h.run(s)
	require.Equal(t, api.OutcomeRolledBack, res.Outcome)
	require.Equal(t, restore, h.desired()[len(h.converges)-1])
	require.Len(t, h.converges, 3, "green up, switch, switch back")
}

func TestRolloutTimeoutRollsBack(t *testing.T) {
	h := newHarness(t)
	s := testSpec(spec.Canary)
	s.Timeout = spec.Duration(8 * time.Minute)
	res := h.run(s)
	require.Equal(t, api.OutcomeRolledBack, res.Outcome)
	require.Contains(t, res.Error, "rollout timeout")
	require.Equal(t, 8*time.Minute, h.converges[len(h.converges)-1].At.Sub(h.converges[0].At))
}

func TestInvalidSpecIsRejectedWithoutActivities(t *testing.T) {
	h := newHarness(t)
	s := testSpec(spec.Canary)
	s.Platform.Docker.Port = 0
	s.Strategy.Steps = []int{50, 20}
	res := h.run(s)
	require.Equal(t, api.OutcomeRejected, res.Outcome)
	require.Contains(t, res.Error, "platform.docker.port")
	require.Contains(t, res.Error, "strategy.steps[1]")
	require.Empty(t, h.converges)
	h.env.AssertNotCalled(t, "Prepare", mock.Anything, mock.Anything)
}

func TestStrategyMismatchIsRejected(t *testing.T) {
	h := newHarness(t)
	h.execute(api.RollingWorkflow, testSpec(spec.Canary))
	var res api.Result
	require.True(t, closedResult(t, h.env, &res))
	require.Equal(t, api.OutcomeRejected, res.Outcome)
	require.Contains(t, res.Error, "strategy.type")
}

func TestMissingImageIsRejectedBeforeAnyChange(t *testing.T) {
	h := newHarness(t)
	h.prepareErr = temporal.NewNonRetryableApplicationError(`image "stagecraft-demo:nope" not found`, platform.ErrTypeImageNotFound, nil)
	res := h.run(testSpec(spec.Canary))
	require.Equal(t, api.OutcomeRejected, res.Outcome)
	require.Contains(t, res.Error, "not found")
	require.Empty(t, h.converges)
}

// TestRegistryOutageIsRetried: an image's registry being unavailable is
// not a missing image (activities.classify leaves it retryable), so
// Prepare is tried again and the rollout goes on once the registry
// answers; an outage that outlasts Prepare's attempts fails the rollout,
// before any change, with the registry named.
func TestRegistryOutageIsRetried(t *testing.T) {
	outage := &platform.RegistryUnavailableError{Image: "127.0.0.1:5000/demo:v2", Err: errors.New("connection refused")}

	t.Run("short", func(t *testing.T) {
		h := newHarness(t)
		h.prepareErr = outage
		h.env.RegisterDelayedCallback(func() {
			h.mu.Lock()
			h.prepareErr = nil
			h.mu.Unlock()
		}, 5*time.Second)
		res := h.run(testSpec(spec.Canary))
		require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
		require.Greater(t, h.prepares, 1)
	})
	t.Run("longer than any retry", func(t *testing.T) {
		h := newHarness(t)
		h.prepareErr = outage
		res := h.run(testSpec(spec.Canary))
		require.NotEqual(t, api.OutcomeSucceeded, res.Outcome)
		require.Contains(t, res.Error, "registry could not be asked")
		require.Greater(t, h.prepares, 1)
		require.Empty(t, h.converges)
	})
}

func TestFreshInstallRollbackRemovesEverything(t *testing.T) {
	h := newHarness(t)
	h.snapshot = platform.Snapshot{Service: "hello"}
	h.failAt, h.failAfter = 0, 30*time.Second
	res := h.run(testSpec(spec.Canary))
	require.True(t, res.FreshInstall)
	require.Equal(t, api.OutcomeRolledBack, res.Outcome)
	require.Equal(t, plan.Desired{New: 0, Old: 0, Traffic: plan.TrafficOld, Order: plan.Surge}, h.desired()[1])
}

func TestUpdatesValidateTransitions(t *testing.T) {
	h := newHarness(t)
	type outcome struct {
		status api.Status
		err    error
	}
	results := map[string]outcome{}
	call := func(name string, after time.Duration) {
		h.env.RegisterDelayedCallback(func() {
			h.env.UpdateWorkflow(name, name+"-"+after.String(), &updateCallback{done: func(v api.Status, err error) {
				results[name+"@"+after.String()] = outcome{v, err}
			}}, api.ControlRequest{By: "dave", Reason: "testing"})
		}, after)
	}
	call(api.UpdateResume, time.Minute)  // not paused: rejected
	call(api.UpdatePause, 2*time.Minute) // accepted
	call(api.UpdatePause, 3*time.Minute) // already paused: rejected
	call(api.UpdateResume, 4*time.Minute)
	res := h.run(testSpec(spec.Canary))
	require.Equal(t, api.OutcomeSucceeded, res.Outcome)

	require.ErrorContains(t, results["resume@1m0s"].err, "not paused")
	require.NoError(t, results["pause@2m0s"].err)
	require.True(t, results["pause@2m0s"].status.Paused)
	require.Equal(t, api.PhasePaused, results["pause@2m0s"].status.Phase)
	require.ErrorContains(t, results["pause@3m0s"].err, "already paused")
	require.NoError(t, results["resume@4m0s"].err)
	// Rejected updates never reach the handler, so only the two accepted
	// ones are in the control log.
	require.Len(t, res.Controls, 2)
	require.Equal(t, "update", res.Controls[0].Via)
}

func TestStatusQueryDuringBake(t *testing.T) {
	h := newHarness(t)
	var st api.Status
	h.env.RegisterDelayedCallback(func() {
		v, err := h.env.QueryWorkflow(api.QueryStatus)
		require.NoError(t, err)
		require.NoError(t, v.Get(&st))
	}, 6*time.Minute)
	h.run(testSpec(spec.Canary))
	require.Equal(t, api.PhaseValidating, st.Phase)
	require.Equal(t, 1, st.CurrentStage)
	require.Equal(t, api.StageCompleted, st.Stages[0].Status)
	require.Equal(t, api.StageValidating, st.Stages[1].Status)
	require.NotNil(t, st.BakeEndsAt)
}

// TestSeedDefaultCanary runs the seed's defaults: 5/25/50/100 with 5 min
// bakes and 30 s checks, over 20 instances.
func TestSeedDefaultCanary(t *testing.T) {
	h := newHarness(t)
	h.snapshot = snapshotOf(20, "stagecraft-demo:v1")
	s := spec.Spec{Service: "hello", Image: "stagecraft-demo:v2",
		Platform: spec.Platform{Docker: &spec.Docker{Replicas: 20, Port: 8080}},
		Strategy: spec.Strategy{Type: spec.Canary},
		Health: spec.Health{Checks: []spec.Check{
			{Name: "healthz", HTTP: &spec.HTTPCheck{URL: "http://{{.Address}}/healthz"}},
			{Name: "tcp", TCP: &spec.TCPCheck{Address: "{{.Address}}"}},
			{Name: "root", HTTP: &spec.HTTPCheck{URL: "http://{{.Address}}/"}},
		}}}.WithDefaults()
	res := h.run(s)
	require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
	var news []int
	for _, st := range res.Stages {
		news = append(news, st.New)
		require.Equal(t, 10, st.ChecksPassed, "5 min / 30 s rounds")
	}
	require.Equal(t, []int{1, 5, 10, 20}, news)
	require.Equal(t, 20*time.Minute, res.CompletedAt.Sub(res.StartedAt))
	t.Logf("seed-default canary: %d converges, %d watch activities (history events are measured on the real dev server)", len(h.converges), len(h.watches))
}

type updateCallback struct {
	done func(api.Status, error)
}

func (c *updateCallback) Accept()          {}
func (c *updateCallback) Reject(err error) { c.done(api.Status{}, err) }
func (c *updateCallback) Complete(success interface{}, err error) {
	if err != nil {
		c.done(api.Status{}, err)
		return
	}
	c.done(success.(api.Status), nil)
}

func degradedRound() *health.Round {
	return &health.Round{Verdict: health.Degraded, Results: []health.Result{{Check: "healthz", Verdict: health.Degraded,
		Error: "latency 300ms over maxLatency 100ms"}}}
}

func TestPolicyPausesOnDegradedUntilResumed(t *testing.T) {
	h := newHarness(t)
	s := testSpec(spec.Canary)
	s.Health.OnDegraded = spec.DegradedPause
	// The first watch reports a degraded round a minute in.
	h.script = func(in activities.WatchInput, n int) (activities.WatchResult, time.Duration, bool) {
		if n != 0 {
			return activities.WatchResult{}, 0, false
		}
		return activities.WatchResult{Healthy: true, Paused: true, Rounds: 2, Passed: 2,
			Tally:       health.Tally{Counts: health.Counts{Healthy: 1, Degraded: 1}, Rounds: 2, Samples: 2},
			LastFailure: `degraded: check "healthz": latency 300ms over maxLatency 100ms`, Latest: degradedRound()}, time.Minute, true
	}
	var paused api.Status
	h.env.RegisterDelayedCallback(func() {
		v, err := h.env.QueryWorkflow(api.QueryStatus)
		require.NoError(t, err)
		require.NoError(t, v.Get(&paused))
	}, 10*time.Minute)
	h.env.RegisterDelayedCallback(func() {
		h.env.SignalWorkflow(api.SignalResume, api.ControlRequest{By: "oncall", Reason: "latency accepted"})
	}, 30*time.Minute)
	res := h.run(s)
	require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)

	require.Equal(t, api.PhasePaused, paused.Phase)
	require.True(t, paused.Paused)
	require.Equal(t, health.Degraded, paused.LatestRound.Verdict)
	require.Equal(t, 4*time.Minute, paused.BakeRemaining, "the bake froze with 4 of 5 minutes left")

	require.Len(t, res.Controls, 2)
	require.Equal(t, api.ControlRecord{Action: api.SignalPause, Via: "health", By: "stagecraft", Accepted: true,
		Reason: `health degraded (onDegraded: pause): degraded: check "healthz": latency 300ms over maxLatency 100ms`,
		At:     res.Controls[0].At}, res.Controls[0])
	require.Equal(t, api.SignalResume, res.Controls[1].Action)
	// 1 min baked, paused until minute 30, then the 4 minutes left.
	require.Equal(t, 34*time.Minute, h.converges[1].At.Sub(h.converges[0].At))
	var modes []string
	for _, w := range h.started {
		modes = append(modes, fmt.Sprintf("%s/%v", w.Mode, w.AcceptDegraded))
	}
	// While paused an observe watch keeps checking; after the resume every
	// watch accepts degraded rounds.
	require.Equal(t, []string{"rounds/false", "observe/false", "rounds/true", "rounds/true", "rounds/true"}, modes)
	require.Equal(t, health.Counts{Healthy: 1 + 8, Degraded: 1}, res.Stages[0].Rounds, "2 rounds before the pause, 8 after the resume")
}

func TestFailureWhilePausedRollsBack(t *testing.T) {
	h := newHarness(t)
	// The operator pauses at 2 min; the bake's watch ends healthy at 5 min;
	// the observe watch that keeps checking sees a failure 3 min later.
	h.script = func(in activities.WatchInput, n int) (activities.WatchResult, time.Duration, bool) {
		if in.Mode != activities.WatchObserve {
			return activities.WatchResult{}, 0, false
		}
		return activities.WatchResult{Rounds: 6, Passed: 5, Failed: 1, LastFailure: `check "healthz" on 127.0.0.1:1: status 500, want 200`,
			Tally: health.Tally{Counts: health.Counts{Healthy: 5, Failed: 1}, Rounds: 6, Samples: 5, Streak: 1, Failing: 1}}, 3 * time.Minute, true
	}
	h.env.RegisterDelayedCallback(func() { h.env.SignalWorkflow(api.SignalPause, api.ControlRequest{By: "alice"}) }, 2*time.Minute)
	res := h.run(testSpec(spec.Canary))
	require.Equal(t, api.OutcomeRolledBack, res.Outcome)
	require.Contains(t, res.Error, "status 500")
	last := h.converges[len(h.converges)-1]
	require.Equal(t, restore, last.Desired)
	require.Equal(t, 8*time.Minute, last.At.Sub(h.converges[0].At), "rolled back when the paused watch failed")
	require.Equal(t, health.Counts{Healthy: 15, Failed: 1}, res.Stages[0].Rounds, "10 bake rounds and the observe watch's 6")
}

func TestMinSamplesWatchesPastTheBake(t *testing.T) {
	t.Run("bake shorter than minSamples rounds", func(t *testing.T) {
		h := newHarness(t)
		s := testSpec(spec.Canary)
		s.Strategy.Bake = spec.Duration(time.Minute)
		s.Health.MinSamples = 5
		res := h.run(s)
		require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
		require.Equal(t, 5*30*time.Second, h.converges[1].At.Sub(h.converges[0].At), "5 rounds of 30 s, not the 1 min bake")
		for i, st := range res.Stages {
			require.GreaterOrEqual(t, st.ChecksPassed, 5, "stage %d", i)
		}
	})
	t.Run("bake shorter than one interval still checks", func(t *testing.T) {
		h := newHarness(t)
		s := testSpec(spec.Recreate)
		s.Strategy.Bake = spec.Duration(10 * time.Second)
		res := h.run(s)
		require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
		require.Equal(t, 1, res.Stages[0].ChecksPassed)
		require.Equal(t, 30*time.Second, h.converges[1].At.Sub(h.converges[0].At), "one round, after one interval")
	})
}

// TestRolloutUnderAnotherWorkflowIDIsRejected: a rollout started under any
// workflow ID but its target's (a raw client, another SDK, a typo) is
// rejected before anything is looked at or changed, naming both IDs; it
// once ran to succeeded beside whatever the target's own rollout did
// (review finding 4). A release likewise.
func TestRolloutUnderAnotherWorkflowIDIsRejected(t *testing.T) {
	t.Run("rollout", func(t *testing.T) {
		h := newHarness(t)
		h.id = "my-own-id-for-hello"
		s := testSpec(spec.Canary)
		s.Notifications = []spec.Notification{{Name: "ops", Webhook: "https://hooks.example.invalid/stagecraft"}}
		res := h.run(s)
		require.Equal(t, api.OutcomeRejected, res.Outcome, res.Error)
		require.Zero(t, h.auditCalls, "nothing recorded in the target's trail")
		require.Empty(t, h.notified, "the spec's receivers are not called for a run that is not the target's")
		require.Contains(t, res.Error, `"my-own-id-for-hello"`)
		require.Contains(t, res.Error, `"deploy:docker:hello"`)
		require.Equal(t, []string{res.Error}, res.Problems)
		require.Zero(t, h.prepares, "nothing looked at")
		require.Empty(t, h.converges, "nothing changed")
		require.Empty(t, h.started)
	})
	t.Run("release", func(t *testing.T) {
		h := newHarness(t)
		h.id = "shop-prod"
		rs := threeTier()
		rs.Notifications = []spec.Notification{{Name: "ops", Webhook: "https://hooks.example.invalid/stagecraft"}}
		res := h.runRelease(rs)
		require.Zero(t, h.auditCalls, "nothing recorded in the release's trail")
		require.Empty(t, h.notified, "the release's receivers are not called for a run that is not its own")
		require.Equal(t, api.OutcomeRejected, res.Outcome, res.Error)
		require.Contains(t, res.Error, `"shop-prod"`)
		require.Contains(t, res.Error, `"release:prod/shop"`)
		require.Zero(t, h.probes)
		require.Empty(t, h.configs, "nothing prepared, no rollout started")
		for _, s := range res.Services {
			require.Equal(t, api.ServiceNotStarted, s.State, s.Name)
		}
	})
	t.Run("the target's own ID runs", func(t *testing.T) {
		h := newHarness(t)
		h.id = "deploy:docker:hello"
		res := h.run(testSpec(spec.Canary))
		require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
	})
}

// TestTimeoutArithmeticSaturates: a spec's durations reach Temporal only
// through saturating sums and products, never as an overflowed negative
// timeout. A run started before the spec's upper bounds
// (spec-bounds-20261203) validates its spec without them and accepts a
// timeout of 2562047h47m, just under time.Duration's limit: its watch's
// start-to-close timeout (timeout + 10 min) once wrapped negative, every
// watch failed at once and the rollout ended rollback_failed after the
// first stage had changed the target (review finding 13). It now runs.
func TestTimeoutArithmeticSaturates(t *testing.T) {
	s := testSpec(spec.Canary)
	require.NoError(t, (&s.Timeout).UnmarshalJSON([]byte(`"2562047h47m"`)))
	require.NoError(t, s.ValidateUnder(spec.RulesUnbounded))
	require.Error(t, s.Validate(), "the bounded rules refuse it")

	h := newHarness(t)
	h.env.OnGetVersion(specBoundsVersion, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
	res := h.run(s)
	require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
	require.Len(t, h.converges, 4)

	// Four progress deadlines plus their grace, on Kubernetes, likewise.
	k := testSpec(spec.Canary)
	k.Platform = spec.Platform{Kubernetes: &spec.Kubernetes{Deployment: "hello", ProgressDeadline: spec.Duration(math.MaxInt64 / 2)}}
	require.Equal(t, time.Duration(math.MaxInt64), platform.ConvergeBudget(k))
	k.Platform.Kubernetes.ProgressDeadline = spec.Duration(10 * time.Minute)
	require.Equal(t, 44*time.Minute, platform.ConvergeBudget(k))
}

// TestRollbackSaysWhereTheRestoreDrifted: a restore that could not bring
// back the same bytes everywhere (a tag moved on a platform that pulls by
// name) is rolled_back, and its outcome and rollback record say so.
func TestRollbackSaysWhereTheRestoreDrifted(t *testing.T) {
	h := newHarness(t)
	h.failAt = 1
	h.restoreDrift = []string{"web: restored pods run sha256:bbb, the snapshot ran sha256:aaa (demo:v1)"}
	res := h.run(testSpec(spec.Canary))
	require.Equal(t, api.OutcomeRolledBack, res.Outcome)
	require.Contains(t, res.Error, "restored, but web: restored pods run sha256:bbb")
	require.NotNil(t, res.Rollback)
	require.Equal(t, h.restoreDrift, res.Rollback.Drift)
}

// TestRollbackSaysWhatIsStillTerminating: a restore that returned while
// pods of the new version still terminate (out of the endpoints, their
// grace period running) is rolled_back and verified, and its outcome and
// rollback record say those pods apart.
func TestRollbackSaysWhatIsStillTerminating(t *testing.T) {
	h := newHarness(t)
	h.failAt = 1
	h.restoreTerminating = []string{"pod/web-canary-5f8b567d7f-abcde"}
	res := h.run(testSpec(spec.Canary))
	require.Equal(t, api.OutcomeRolledBack, res.Outcome)
	require.Contains(t, res.Error, "restored, 1 pod(s) of the new version still terminating (no longer ready, so out of the ready endpoints; grace period honoured)")
	require.NotNil(t, res.Rollback)
	require.True(t, res.Rollback.Verified)
	require.Equal(t, h.restoreTerminating, res.Rollback.Terminating)
}

// A control request from any Temporal client, not only the starter, has
// its by checked in the workflow: an update naming who acts with a control
// character or past api.MaxBy bytes is refused, changing nothing; a signal
// (which cannot be refused) is applied, its by kept quoted and escaped
// (api.ShownBy) in the control log and the abort's reason.
func TestControlsCheckWhoActs(t *testing.T) {
	h := newHarness(t)
	updates := map[string]error{}
	h.env.RegisterDelayedCallback(func() {
		for name, by := range map[string]string{"newline": "mallory\nAccepted: abort by alice", "long": strings.Repeat("m", api.MaxBy+1)} {
			h.env.UpdateWorkflow(api.UpdatePause, name, &updateCallback{done: func(_ api.Status, err error) { updates[name] = err }},
				api.ControlRequest{By: by, Reason: "testing"})
		}
	}, time.Minute)
	h.env.RegisterDelayedCallback(func() {
		h.env.SignalWorkflow(api.SignalAbort, api.ControlRequest{By: "eve\u202egnp.exe", Reason: "errors up"})
	}, 2*time.Minute)
	res := h.run(testSpec(spec.Canary))
	require.ErrorContains(t, updates["newline"], "a control character")
	require.ErrorContains(t, updates["long"], fmt.Sprintf("%d bytes, more than %d", api.MaxBy+1, api.MaxBy))
	require.Equal(t, api.OutcomeRolledBack, res.Outcome, "the signalled abort is applied")
	require.Len(t, res.Controls, 1, "refused updates never reach the history")
	c := res.Controls[0]
	require.True(t, c.Accepted, "%+v", c)
	require.Equal(t, "signal", c.Via)
	require.Equal(t, `"eve\u202egnp.exe"`, c.By)
	require.Contains(t, res.Error, `requested by "eve\u202egnp.exe": errors up`)
	require.NotContains(t, res.Error, "\u202e")
}

// The control log any Temporal client writes to stays bounded
// (boundsVersion): an update whose reason api.CheckReason refuses is
// refused; a signal's reason is kept cut (api.KeptReason), so one near
// Temporal's 2 MiB payload limit does not ride in every status, update
// result, continue-as-new input and the result; a flood of signals leaves
// the latest api.MaxControls records, the older ones counted, and the
// audit trail still has every one.
func TestControlLogBounded(t *testing.T) {
	h := newHarness(t)
	var refused error
	const flood = 2*api.MaxControls + 11
	huge := strings.Repeat("why\n", 1<<19-64) // just under 2 MiB, as a signal may carry
	h.env.RegisterDelayedCallback(func() {
		h.env.UpdateWorkflow(api.UpdatePause, "long", &updateCallback{done: func(_ api.Status, err error) { refused = err }},
			api.ControlRequest{By: "alice", Reason: strings.Repeat("r", api.MaxReason+1)})
	}, time.Minute)
	h.env.RegisterDelayedCallback(func() {
		floodControls(flood, h.env.SignalWorkflow, "mallory", func(i int) string { return fmt.Sprintf("flood %d %s", i, strings.Repeat("x", api.MaxReason)) })
	}, 2*time.Minute)
	h.env.RegisterDelayedCallback(func() {
		h.env.SignalWorkflow(api.SignalAbort, api.ControlRequest{By: "mallory", Reason: huge})
	}, 3*time.Minute)
	res := h.run(testSpec(spec.Canary))
	require.ErrorContains(t, refused, fmt.Sprintf("reason: %d bytes, more than %d", api.MaxReason+1, api.MaxReason))
	require.Equal(t, api.OutcomeRolledBack, res.Outcome, "the signalled abort is applied")
	require.Len(t, res.Controls, api.MaxControls)
	require.Equal(t, flood+1-api.MaxControls, res.ControlsOmitted)
	last := res.Controls[len(res.Controls)-1]
	require.Equal(t, api.SignalAbort, last.Action)
	require.True(t, last.Accepted)
	require.LessOrEqual(t, len(last.Reason), api.MaxReason)
	require.True(t, strings.HasSuffix(last.Reason, "…"), "a cut reason says so")
	require.Contains(t, res.Controls[0].Reason, fmt.Sprintf("flood %d ", flood-api.MaxControls+1), "the latest are kept")
	for _, c := range res.Controls {
		require.LessOrEqual(t, len(c.Reason), api.MaxReason)
	}
	require.Less(t, len(res.Error), 2*api.MaxReason, "the abort's reason is cut where it is kept")
	b, err := json.Marshal(res)
	require.NoError(t, err)
	require.Less(t, len(b), 256<<10, "the result stays far below the 2 MiB payload limit")

	events, _, _ := trail(t, h.batches)
	var controls []audit.Event
	for _, e := range events {
		if e.Kind == audit.KindControl {
			controls = append(controls, e)
		}
	}
	require.Len(t, controls, flood+1, "the audit trail has every control, the dropped ones too")
	for i, e := range controls[:flood] {
		require.True(t, strings.HasPrefix(e.Reason, fmt.Sprintf("flood %d ", i)), "control %d: %.20q", i, e.Reason)
	}
}

// floodControls sends n control requests by by, alternating pause and
// resume, the i-th with reason(i), through send (SignalWorkflow, or
// SignalWorkflowSkippingWorkflowTask for a burst in one task).
func floodControls(n int, send func(string, interface{}), by string, reason func(i int) string) {
	for i := range n {
		action := api.SignalPause
		if i%2 == 1 {
			action = api.SignalResume
		}
		send(action, api.ControlRequest{By: by, Reason: reason(i)})
	}
}

// controlEvents are the control events of the audit batches written for
// workflowID (any, when empty), in order.
func controlEvents(batches []audit.Batch, workflowID string) []audit.Event {
	var out []audit.Event
	for _, b := range batches {
		if workflowID != "" && b.WorkflowID != workflowID {
			continue
		}
		for _, e := range b.Events {
			if e.Kind == audit.KindControl {
				out = append(out, e)
			}
		}
	}
	return out
}

// A burst of signals the server delivers in one workflow task gives the
// audit collector no turn between them: the control log keeps the latest
// api.MaxControls records only after the trail has collected the others,
// so the trail still has every one.
func TestControlBurstInOneTaskKeepsTheTrail(t *testing.T) {
	h := newHarness(t)
	const flood = 2*api.MaxControls + 11
	h.env.RegisterDelayedCallback(func() {
		floodControls(flood, h.env.SignalWorkflowSkippingWorkflowTask, "m", func(i int) string { return fmt.Sprintf("flood %d", i) })
		h.env.SignalWorkflow(api.SignalAbort, api.ControlRequest{By: "m", Reason: "stop"})
	}, 2*time.Minute)
	res := h.run(testSpec(spec.Canary))
	require.Equal(t, api.OutcomeRolledBack, res.Outcome)
	require.Equal(t, flood+1-api.MaxControls, res.ControlsOmitted)
	events := controlEvents(h.batches, "")
	require.Len(t, events, flood+1)
	seen := map[string]bool{}
	for _, e := range events {
		seen[e.Reason] = true
	}
	for i := range flood {
		require.True(t, seen[fmt.Sprintf("flood %d", i)], "flood %d is not in the trail", i)
	}
}

// A flood of pauses is applied and kept, but notified at most
// maxPauseNotices times a run: a dead receiver does not leave the trail
// workflow an input that grows with the flood.
func TestPauseNoticesBounded(t *testing.T) {
	h := newHarness(t)
	h.notifyErr = errors.New("connect: connection refused")
	s := testSpec(spec.Canary)
	s.Notifications = []spec.Notification{{Name: "hook", Webhook: "http://127.0.0.1:1/hook"}}
	var notices int
	h.env.SetOnChildWorkflowStartedListener(func(info *workflow.Info, _ workflow.Context, args converter.EncodedValues) {
		if info.WorkflowType.Name == AuditTrailWorkflow {
			var in TrailInput
			require.NoError(t, args.Get(&in))
			notices = len(in.Notices)
		}
	})
	const pairs = 40
	h.env.RegisterDelayedCallback(func() {
		for i := range pairs {
			h.env.SignalWorkflow(api.SignalPause, api.ControlRequest{By: "m", Reason: fmt.Sprint("pause ", i)})
			h.env.SignalWorkflow(api.SignalResume, api.ControlRequest{By: "m"})
		}
	}, 14*time.Minute)
	res := h.run(s)
	pauses := map[string]bool{}
	for _, ev := range h.notified {
		if ev.Kind == spec.EventPaused {
			pauses[ev.Key] = true
		}
	}
	require.Len(t, pauses, maxPauseNotices, "paused notifications sent (each retried)")
	require.LessOrEqual(t, notices, maxPauseNotices+3, "notices handed to the trail workflow")
	accepted := 0
	for _, c := range res.Controls {
		if c.Action == api.SignalPause && c.Accepted {
			accepted++
		}
	}
	require.Equal(t, pairs, accepted, "every pause is applied and kept")
}

// The rollback's cause is the abort's as accepted, however many records
// the control log has dropped since.
func TestCauseOutlivesTheControlLog(t *testing.T) {
	r := &rollout{boundsV: 1, aborted: true, abortVia: "timeout"}
	r.keepControl(nil, api.ControlRecord{Action: api.SignalAbort, Via: "timeout", Accepted: true})
	for range api.MaxControls {
		r.keepControl(nil, api.ControlRecord{Action: api.SignalPause, Via: "signal", Error: "already aborting"})
	}
	require.Equal(t, causeTimeout, r.causeOf(errAborted{"requested by stagecraft: rollout timeout 1h passed"}))
	r.abortVia = "signal"
	require.Equal(t, causeAbort, r.causeOf(errAborted{"requested by alice"}))
}

// Who started a rollout, as the memo any client sets names them, is kept
// as a control request's by is: quoted and escaped (api.ShownBy).
func TestStartedByShownEscaped(t *testing.T) {
	h := newHarness(t)
	h.env.SetMemoOnStart(map[string]any{api.MemoStartedBy: "mallory\nstartedBy: alice"})
	res := h.run(testSpec(spec.Canary))
	require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
	require.Equal(t, `"mallory\nstartedBy: alice"`, res.StartedBy)
}
