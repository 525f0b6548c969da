//go:build integration

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/control"
	"github.com/stagecraft/stagecraft/internal/health"
	"github.com/stagecraft/stagecraft/internal/itest"
	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// allowed is the command allowlist the health tests' worker runs with.
var allowed = []string{"/usr/bin/printf"}

// sloServer is an upstream check target on 127.0.0.1 whose nth answer
// (counting from 0) is 503 when fail(n) says so, else 200.
func sloServer(t *testing.T, fail func(n int64) bool) (url string, requests *atomic.Int64) {
	t.Helper()
	requests = new(atomic.Int64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fail(requests.Add(1) - 1) {
			http.Error(w, "slo burned", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "ok")
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/slo", requests
}

// runNamed starts a rollout, waits for its end and replays (and, when
// recording, saves) its history under name.
func runNamed(t *testing.T, s spec.Spec, name string) api.Result {
	t.Helper()
	started, res := startAndWait(t, s)
	recordNamed(t, started.WorkflowID, started.RunID, name)
	return res
}

func imagesOf(in []instance) []string {
	var out []string
	for _, i := range in {
		if i.Running {
			out = append(out, i.Image)
		}
	}
	return out
}

// TestFailureThreshold: with failureThreshold 2, a canary whose upstream
// check fails every other round succeeds; two failures in a row roll it
// back. A command check from the worker's allowlist runs in every round.
func TestFailureThreshold(t *testing.T) {
	itest.StartWorkerWith(t, tc, dc, itest.WorkerConfig{Commands: allowed})
	tests := []struct {
		name    string
		fail    func(n int64) bool
		outcome api.Outcome
	}{
		{"single failures pass", func(n int64) bool { return n%2 == 1 }, api.OutcomeSucceeded},
		{"two in a row roll back", func(n int64) bool { return n == 5 || n == 6 }, api.OutcomeRolledBack},
		// Stage 2 fails on rounds 5 and 6; the restored v1 passes round 7,
		// then relapses inside the 3 s verification window.
		{"relapse in the verification window", func(n int64) bool { return n == 5 || n == 6 || n >= 9 }, api.OutcomeRollbackFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			service := itest.Name("e2e-flaky")
			cleanup(t, service)
			v1 := installV1(t, service)
			url, requests := sloServer(t, tt.fail)
			s := demoSpec(service, "stagecraft-demo:v2", spec.Canary, 3)
			s.Health.FailureThreshold = 2
			s.Health.VerifyWindow = spec.Duration(3 * time.Second)
			s.Health.Checks = append(s.Health.Checks,
				spec.Check{Name: "upstream-slo", HTTP: &spec.HTTPCheck{URL: url}},
				spec.Check{Name: "printf", Command: &spec.CommandCheck{Argv: []string{"/usr/bin/printf", "ready %s", "{{.Address}}"}, OutputContains: "ready 127.0.0.1:"}})
			s = s.WithDefaults()
			res := runNamed(t, s, "canary-threshold-"+string(tt.outcome))
			require.Equal(t, tt.outcome, res.Outcome, res.Error)

			var rounds health.Counts
			failed := 0
			for _, st := range res.Stages {
				rounds = rounds.Add(st.Rounds)
				failed += st.ChecksFailed
			}
			t.Logf("%s: %d requests to the upstream check; rounds %+v; outcome %s %s", tt.name, requests.Load(), rounds, res.Outcome, res.Error)
			require.NotNil(t, res.LatestRound, "the status carries the latest round's evidence")
			if tt.outcome == api.OutcomeSucceeded {
				require.Positive(t, rounds.Failed, "the flaky check failed some rounds")
				require.Equal(t, rounds.Failed, failed)
				require.Positive(t, rounds.Healthy)
				for _, in := range instances(t, service) {
					require.Equal(t, "stagecraft-demo:v2", in.Image)
				}
				return
			}
			require.Contains(t, res.Error, `check "upstream-slo"`)
			require.Contains(t, res.Error, "status 503")
			require.NotNil(t, res.Rollback)
			require.Equal(t, imagesOf(v1), imagesOf(instances(t, service)), "v1 restored")
			if tt.outcome == api.OutcomeRollbackFailed {
				require.False(t, res.Rollback.Verified)
				require.Contains(t, res.Rollback.Error, "verify restored service")
				require.True(t, res.Rollback.Verify.Settled, "v1 answered healthy first")
				require.Equal(t, 2, res.Rollback.Verify.Tally.Streak)
				return
			}
			require.True(t, res.Rollback.Verified)
			require.GreaterOrEqual(t, res.Rollback.Verify.Tally.Rounds, 6, "watched for the whole 3 s window")
		})
	}
}

// TestPrometheusErrorRateRollsBack: a real Prometheus scrapes the demo
// containers (Docker service discovery, published ports on 127.0.0.1) while
// a bounded load generator calls them; v2 answers half its requests with
// 500, the error-rate query crosses its threshold, and the canary rolls
// back to v1.
func TestPrometheusErrorRateRollsBack(t *testing.T) {
	prom := itest.Prometheus(t)
	itest.StartWorker(t, tc, dc)
	service := itest.Name("e2e-prom")
	cleanup(t, service)
	v1 := installV1(t, service)

	ctx, stop := context.WithTimeout(context.Background(), 2*time.Minute)
	defer stop()
	itest.Load(ctx, t, func() []string { return publishedAddrs(ctx, service) }, 100*time.Millisecond)

	s := demoSpec(service, "stagecraft-demo:v2", spec.Canary, 3)
	s.Platform.Docker.Env["ERROR_RATE"] = "0.5"
	s.Strategy.Bake = spec.Duration(30 * time.Second)
	s.Health.Interval = spec.Duration(time.Second)
	// Until Prometheus has scraped the new container twice there is no
	// rate: hold, never pass.
	s.Health.OnNoData = spec.NoDataHold
	sel := fmt.Sprintf(`service=%q,version="stagecraft-demo:v2",path="/"`, service)
	s.Health.Checks = append(s.Health.Checks, spec.Check{Name: "error-rate", SkipVerify: true, Prometheus: &spec.PrometheusCheck{
		URL:       prom,
		Query:     fmt.Sprintf(`(sum(rate(demo_http_requests_total{%s,code=~"5.."}[5s])) or vector(0)) / sum(rate(demo_http_requests_total{%s}[5s]))`, sel, sel),
		Op:        "<",
		Threshold: 0.1,
	}})
	// Bounded: a rollout that never gets data rolls back at its timeout.
	s.Timeout = spec.Duration(2 * time.Minute)
	s = s.WithDefaults()
	start := time.Now()
	res := runNamed(t, s, "canary-prometheus-rolled_back")
	t.Logf("outcome %s after %s: %s", res.Outcome, time.Since(start).Round(time.Second), res.Error)
	require.Equal(t, api.OutcomeRolledBack, res.Outcome, res.Error)
	require.Contains(t, res.Error, `check "error-rate"`)
	require.Contains(t, res.Error, "want < 0.1")
	require.Equal(t, api.StageRolledBack, res.Stages[0].Status)
	require.Contains(t, res.Stages[0].Error, "error-rate", "the first canary stage failed on the query")
	require.True(t, res.Rollback.Verified, "v1 verified without the v2-only query")
	require.Equal(t, imagesOf(v1), imagesOf(instances(t, service)), "v1 restored")
}

// TestCommandOutsideAllowlistIsRejected: a spec whose command check names an
// executable the worker does not allow is rejected before anything changes.
func TestCommandOutsideAllowlistIsRejected(t *testing.T) {
	itest.StartWorkerWith(t, tc, dc, itest.WorkerConfig{Commands: allowed})
	service := itest.Name("e2e-cmd")
	cleanup(t, service)
	v1 := installV1(t, service)

	s := demoSpec(service, "stagecraft-demo:v2", spec.Canary, 3)
	s.Health.Checks = append(s.Health.Checks, spec.Check{Name: "sneaky", Command: &spec.CommandCheck{Argv: []string{"/bin/rm", "-rf", "/tmp/stagecraft-nope"}}})
	s = s.WithDefaults()
	require.NoError(t, s.Validate(), "the spec itself is valid: only this worker refuses it")
	res := runNamed(t, s, "canary-command-rejected")
	require.Equal(t, api.OutcomeRejected, res.Outcome)
	require.Contains(t, res.Error, "health.checks[2].command.argv[0]")
	require.Contains(t, res.Error, `"/bin/rm" is not on this worker's command allowlist`)
	require.Empty(t, res.Stages, "nothing was planned")
	require.Equal(t, v1, instances(t, service), "the running containers are untouched")
	require.False(t, strings.Contains(res.Error, "rolled back"))
}

// TestDegradedPausesUntilResumed: v2 answers within its status but slower
// than the check's maxLatency, so rounds are degraded; under onDegraded:
// pause the rollout pauses itself, keeps checking while paused, and an
// operator's resume accepts the degradation for the rest of the rollout. minSamples 4
// with a 1 s bake makes every stage watch past its bake.
func TestDegradedPausesUntilResumed(t *testing.T) {
	itest.StartWorker(t, tc, dc)
	service := itest.Name("e2e-degraded")
	cleanup(t, service)
	installV1(t, service)

	s := demoSpec(service, "stagecraft-demo:v2", spec.Canary, 3)
	s.Platform.Docker.Env["SLOW_AFTER"] = "0"
	s.Platform.Docker.Env["SLOW_BY"] = "300ms"
	s.Strategy.Bake = spec.Duration(time.Second)
	s.Health.MinSamples = 4
	s.Health.OnDegraded = spec.DegradedPause
	s.Health.Checks[0].HTTP.MaxLatency = spec.Duration(100 * time.Millisecond)
	s = s.WithDefaults()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	started, err := control.Start(ctx, tc, s)
	require.NoError(t, err)

	var st api.Status
	itest.Eventually(t, time.Minute, "the policy pauses the rollout", func() bool {
		st, err = control.Status(ctx, tc, started.WorkflowID)
		return err == nil && st.Paused
	})
	require.Equal(t, api.PhasePaused, st.Phase)
	last := st.Controls[len(st.Controls)-1]
	require.Equal(t, "health", last.Via)
	require.Equal(t, api.SignalPause, last.Action)
	require.Contains(t, last.Reason, "over maxLatency 100ms")
	require.NotNil(t, st.LatestRound)
	require.Equal(t, health.Degraded, st.LatestRound.Verdict)
	stage := st.CurrentStage

	// Paused, the stage holds (the watcher keeps checking meanwhile).
	time.Sleep(3 * time.Second)
	st, err = control.Status(ctx, tc, started.WorkflowID)
	require.NoError(t, err)
	require.True(t, st.Paused)
	require.Equal(t, stage, st.CurrentStage)
	require.Equal(t, api.StageValidating, st.Stages[stage].Status)
	// The watcher keeps checking while paused; its rounds are live in its
	// heartbeat, and the CLI shows them with the recorded evidence. The SDK
	// sends heartbeat details at most every 0.8 x the heartbeat timeout
	// (4 s), so the first live round may show that much after the pause.
	var live *health.Round
	itest.Eventually(t, 30*time.Second, "a watcher runs while paused and heartbeats its round", func() bool {
		live, err = control.LiveRound(ctx, tc, started.WorkflowID)
		return err == nil && live != nil
	})
	require.True(t, live.At.After(st.LatestRound.At), "live round %s after the recorded one %s", live.At, st.LatestRound.At)
	out, _, code := runCLI(t, "status", started.WorkflowID)
	require.Equal(t, 0, code)
	for _, want := range []string{"phase     paused", "via health by stagecraft \"health degraded (onDegraded: pause)", "latest round: degraded", "live round (running watcher): degraded", "over maxLatency 100ms"} {
		require.Contains(t, out, want)
	}

	_, err = control.Act(ctx, tc, started.WorkflowID, api.UpdateResume, api.ControlRequest{By: "oncall", Reason: "latency accepted"})
	require.NoError(t, err)
	res, err := control.Wait(ctx, tc, started.WorkflowID, started.RunID, time.Second, nil)
	require.NoError(t, err)
	recordNamed(t, started.WorkflowID, started.RunID, "canary-degraded-paused-succeeded")
	require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
	pauses := 0
	for _, c := range res.Controls {
		if c.Action == api.SignalPause && c.Accepted {
			pauses++
		}
	}
	require.Equal(t, 1, pauses, "resumed, degraded rounds continue for the rest of the rollout: %+v", res.Controls)
	for i, rec := range res.Stages {
		require.GreaterOrEqual(t, rec.ChecksPassed, 4, "stage %d counted minSamples", i)
		require.GreaterOrEqual(t, rec.CompletedAt.Sub(*rec.StartedAt), 2*time.Second, "stage %d watched past its 1 s bake", i)
	}
}

// publishedAddrs lists the 127.0.0.1 addresses of a service's running
// containers from one list call, tolerating containers that come and go
// (the load generator calls it while the rollout replaces them).
func publishedAddrs(ctx context.Context, service string) []string {
	list, err := dc.ContainerList(ctx, client.ContainerListOptions{
		Filters: make(client.Filters).Add("label", platform.LabelService+"="+service)})
	if err != nil {
		return nil
	}
	var addrs []string
	for _, c := range list.Items {
		for _, p := range c.Ports {
			if p.PublicPort != 0 {
				addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", p.PublicPort))
			}
		}
	}
	return addrs
}
