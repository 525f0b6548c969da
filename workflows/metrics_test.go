package workflows

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/plan"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// recorder is a metrics handler that keeps what was emitted, keyed by name
// and the labels this package sets (the SDK's own tags are left out).
type recorder struct {
	mu       sync.Mutex
	counters map[string]int64
	timers   map[string][]time.Duration
}

type tagged struct {
	r    *recorder
	tags map[string]string
}

var _ client.MetricsHandler = tagged{}

func newRecorder() *recorder {
	return &recorder{counters: map[string]int64{}, timers: map[string][]time.Duration{}}
}

func (t tagged) key(name string) string {
	var kv []string
	for _, k := range slices.Sorted(maps.Keys(t.tags)) {
		switch k {
		case labelStrategy, labelPlatform, labelOutcome, labelStage, labelResult, labelCause:
			kv = append(kv, k+"="+t.tags[k])
		}
	}
	return name + "{" + strings.Join(kv, ",") + "}"
}

func (t tagged) WithTags(tags map[string]string) client.MetricsHandler {
	m := maps.Clone(t.tags)
	if m == nil {
		m = map[string]string{}
	}
	maps.Copy(m, tags)
	return tagged{t.r, m}
}

func (t tagged) Counter(name string) client.MetricsCounter {
	return counterFunc(func(d int64) {
		t.r.mu.Lock()
		defer t.r.mu.Unlock()
		t.r.counters[t.key(name)] += d
	})
}

func (t tagged) Gauge(string) client.MetricsGauge { return gaugeFunc(func(float64) {}) }

func (t tagged) Timer(name string) client.MetricsTimer {
	return timerFunc(func(d time.Duration) {
		t.r.mu.Lock()
		defer t.r.mu.Unlock()
		t.r.timers[t.key(name)] = append(t.r.timers[t.key(name)], d)
	})
}

type (
	counterFunc func(int64)
	gaugeFunc   func(float64)
	timerFunc   func(time.Duration)
)

func (f counterFunc) Inc(d int64)          { f(d) }
func (f gaugeFunc) Update(v float64)       { f(v) }
func (f timerFunc) Record(d time.Duration) { f(d) }
func (r *recorder) handler() tagged        { return tagged{r: r} }
func (r *recorder) counter(key string) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counters[key]
}
func (r *recorder) timer(key string) []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.timers[key])
}

// metered is a harness whose workflow metrics go to a recorder.
func metered(t *testing.T) (*harness, *recorder) {
	rec := newRecorder()
	suite := &testsuite.WorkflowTestSuite{}
	suite.SetMetricsHandler(rec.handler())
	return newHarnessOn(t, suite), rec
}

func TestMetricsOfASucceededRollout(t *testing.T) {
	h, m := metered(t)
	res := h.run(testSpec(spec.Canary))
	require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)

	require.EqualValues(t, 1, m.counter("stagecraft_rollouts_started{platform=docker,strategy=canary}"))
	require.EqualValues(t, 1, m.counter("stagecraft_rollouts_finished{outcome=succeeded,platform=docker,strategy=canary}"))
	require.Zero(t, m.counter("stagecraft_rollbacks{cause=health,platform=docker,strategy=canary}"))
	stages := m.timer("stagecraft_stage_duration{platform=docker,result=completed,stage=canary,strategy=canary}")
	require.Len(t, stages, 3, "one per stage")
	for _, d := range stages {
		require.Equal(t, 5*time.Minute, d, "converge (instant here) and the 5 min bake, on the workflow clock")
	}
	total := m.timer("stagecraft_rollout_duration{outcome=succeeded,platform=docker,strategy=canary}")
	require.Equal(t, []time.Duration{15 * time.Minute}, total)
}

func TestMetricsOfRollbacks(t *testing.T) {
	tests := []struct {
		name   string
		set    func(h *harness, s *spec.Spec)
		cause  string
		failed int // stage timers with result=failed
	}{
		{"health", func(h *harness, _ *spec.Spec) { h.failAt, h.failAfter = 1, time.Minute }, "health", 1},
		{"abort", func(h *harness, _ *spec.Spec) {
			h.env.RegisterDelayedCallback(func() { h.env.SignalWorkflow(api.SignalAbort, api.ControlRequest{Reason: "bad metrics"}) }, 90*time.Second)
		}, "abort", 1},
		{"cancel", func(h *harness, _ *spec.Spec) { h.env.RegisterDelayedCallback(h.env.CancelWorkflow, 7*time.Minute) }, "cancelled", 1},
		{"timeout", func(_ *harness, s *spec.Spec) { s.Timeout = spec.Duration(8 * time.Minute) }, "timeout", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, m := metered(t)
			s := testSpec(spec.Canary)
			tt.set(h, &s)
			res := h.run(s)
			require.Equal(t, api.OutcomeRolledBack, res.Outcome, res.Error)
			require.EqualValues(t, 1, m.counter("stagecraft_rollouts_started{platform=docker,strategy=canary}"))
			require.EqualValues(t, 1, m.counter("stagecraft_rollouts_finished{outcome=rolled_back,platform=docker,strategy=canary}"))
			require.EqualValues(t, 1, m.counter(fmt.Sprintf("stagecraft_rollbacks{cause=%s,platform=docker,strategy=canary}", tt.cause)))
			require.Len(t, m.timer("stagecraft_stage_duration{platform=docker,result=failed,stage=canary,strategy=canary}"), tt.failed)
		})
	}
}

func TestMetricsOfARejectedRollout(t *testing.T) {
	h, m := metered(t)
	s := testSpec(spec.Rolling)
	s.Platform.Docker = nil
	res := h.run(s)
	require.Equal(t, api.OutcomeRejected, res.Outcome)
	require.EqualValues(t, 1, m.counter("stagecraft_rollouts_started{platform=none,strategy=rolling}"))
	require.EqualValues(t, 1, m.counter("stagecraft_rollouts_finished{outcome=rejected,platform=none,strategy=rolling}"))
}

func TestRollbackCauseOfATimeout(t *testing.T) {
	r := &rollout{aborted: true}
	r.st.Controls = []api.ControlRecord{{Action: api.SignalPause, Via: "health"}, {Action: api.SignalAbort, Via: "timeout"}}
	require.Equal(t, causeTimeout, r.causeOf(errAborted{"requested by stagecraft: rollout timeout 1h passed"}))
	r.st.Controls = append(r.st.Controls, api.ControlRecord{Action: api.SignalAbort, Via: "update"})
	require.Equal(t, causeAbort, r.causeOf(errAborted{"requested"}))
}

// The cause travels with the failure as a typed value, however the
// failure reads and whatever wraps it.
func TestRollbackCauseTravelsWithTheFailure(t *testing.T) {
	r := &rollout{}
	require.Equal(t, causeApprovalTimeout, r.causeOf(causedBy(causeApprovalTimeout, errors.New("approval of canary 50% not given within 1h0m0s"))))
	require.Equal(t, causeHealth, r.causeOf(fmt.Errorf("stage 2: %w", causedBy(causeHealth, errors.New("container exited")))))
	require.Equal(t, causeError, r.causeOf(errors.New("health check failed: a reason that only reads like one")))
	require.Equal(t, causeCancelled, r.causeOf(temporal.NewCanceledError()))
	require.Equal(t, causeError, r.causeOf(errors.New("container exited")))
}

// A watch that could not run is labelled by why: its worker lost or its
// deadline passed (health), the workflow cancelled (cancelled), or an
// error it raised (error).
func TestWatchCause(t *testing.T) {
	require.Equal(t, causeHealth, watchCause(temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_HEARTBEAT, temporal.NewCanceledError())))
	require.Equal(t, causeCancelled, watchCause(temporal.NewCanceledError()))
	require.Equal(t, causeError, watchCause(temporal.NewNonRetryableApplicationError(`platform "docker" is not configured on this worker`, "InvalidSpec", nil)))
	require.Equal(t, causeHealth, watchCause(errors.New("activity error")))
}

// Every stage the planner emits has a named kind, so the stage label stays
// a handful of values.
func TestStageKindOfEveryPlannedStage(t *testing.T) {
	for _, strategy := range strategies {
		t.Run(strategy, func(t *testing.T) {
			s := testSpec(strategy)
			s.Strategy.Steps = []int{1, 7, 33, 50, 99, 100}
			if strategy != spec.Canary {
				s.Strategy.Steps = nil
			}
			p, err := plan.Build(s, 4, 4)
			require.NoError(t, err)
			for i, st := range p.Stages {
				require.NotEqual(t, plan.KindOther, p.KindOf(i), st.Name)
			}
		})
	}
}
