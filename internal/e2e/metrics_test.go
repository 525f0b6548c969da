//go:build integration

package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/itest"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// TestMetricsOfAWorkerProcess runs rollouts on the built worker started
// with --metrics-address, then scrapes its /metrics: Stagecraft's counters,
// a stage duration and health verdicts, and the SDK's own metrics. No
// in-process worker runs here, so every rollout runs on that process.
func TestMetricsOfAWorkerProcess(t *testing.T) {
	addr := metricsWorker(t)
	service := itest.Name("e2e-metrics")
	cleanup(t, service)
	installV1(t, service) // recreate, succeeded

	res := deploy(t, demoSpec(service, "stagecraft-demo:v2", spec.Canary, 3))
	require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)

	// v2-bad fails /healthz 3 s after it starts: the first stage's bake sees it.
	bad := demoSpec(service, "stagecraft-demo:v2-bad", spec.Canary, 3)
	bad.Strategy.Bake = spec.Duration(6 * time.Second)
	res = deploy(t, bad)
	require.Equal(t, api.OutcomeRolledBack, res.Outcome, res.Error)
	require.True(t, res.Rollback.Verified)

	canary := []string{`strategy="canary"`, `platform="docker"`}
	with := func(more ...string) []string { return append(append([]string(nil), canary...), more...) }
	want := []struct {
		name   string
		labels []string
		ok     func(float64) bool
		says   string
	}{
		{"stagecraft_rollouts_started_total", canary, metricEq(2), "= 2"},
		{"stagecraft_rollouts_finished_total", with(`outcome="succeeded"`), metricEq(1), "= 1"},
		{"stagecraft_rollouts_finished_total", with(`outcome="rolled_back"`), metricEq(1), "= 1"},
		{"stagecraft_rollouts_started_total", []string{`strategy="recreate"`, `platform="docker"`}, metricEq(1), "= 1"},
		{"stagecraft_rollbacks_total", with(`cause="health"`), metricEq(1), "= 1"},
		// The good rollout's three stages, and the bad one's first.
		{"stagecraft_stage_duration_seconds_count", with(`stage="canary"`, `result="completed"`), metricEq(3), "= 3"},
		{"stagecraft_stage_duration_seconds_count", with(`stage="canary"`, `result="failed"`), metricEq(1), "= 1"},
		// Each of 3 stages bakes 2 s.
		{"stagecraft_stage_duration_seconds_sum", with(`stage="canary"`, `result="completed"`), metricGt(6), "> 6"},
		{"stagecraft_rollout_duration_seconds_count", with(`outcome="succeeded"`), metricEq(1), "= 1"},
		{"stagecraft_health_rounds_total", with(`verdict="healthy"`, `mode="rounds"`), metricGt(0), "> 0"},
		{"stagecraft_health_rounds_total", with(`verdict="failed"`, `mode="rounds"`), metricGt(0), "> 0"},
		{"stagecraft_health_rounds_total", with(`verdict="healthy"`, `mode="verify"`), metricGt(0), "> 0"},
		// The SDK's own, through its tally integration: the success
		// completed, the rollback failed (failed-close-20261203).
		{"temporal_workflow_completed_total", []string{`workflow_type="CanaryDeployment"`}, metricEq(1), "= 1"},
		{"temporal_workflow_failed_total", []string{`workflow_type="CanaryDeployment"`}, metricEq(1), "= 1"},
		{"temporal_activity_execution_latency_seconds_count", []string{`activity_type="Watch"`}, metricGt(0), "> 0"},
		{"temporal_worker_start_total", nil, metricGt(0), "> 0"},
	}
	var body, missing string
	itest.Eventually(t, 20*time.Second, "the metrics in /metrics", func() bool {
		body, missing = scrapeMetrics(t, addr), ""
		for _, w := range want {
			if v, found := metricSample(body, w.name, w.labels...); !found || !w.ok(v) {
				missing = fmt.Sprintf("%s%v %s (found %v: %v)", w.name, w.labels, w.says, found, v)
				t.Log("waiting for", missing)
				return false
			}
		}
		return true
	})
	var excerpt []string
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "stagecraft_") && !strings.Contains(line, "_bucket{") {
			excerpt = append(excerpt, line)
		}
	}
	t.Logf("stagecraft_ series scraped from http://%s/metrics:\n%s", addr, strings.Join(excerpt, "\n"))
}

// metricsWorker starts the worker binary serving /metrics on a free
// 127.0.0.1 port, stops it with SIGINT when the test ends, and returns the
// address once the endpoint answers.
func metricsWorker(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())

	cmd := exec.Command(workerB, "--address", server.FrontendHostPort(), "--log-level", "warn", "--metrics-address", addr)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	itest.Eventually(t, 30*time.Second, "the worker's /metrics", func() bool {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return addr
}

func scrapeMetrics(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

// metricSample sums the samples of name whose labels include every one given
// (`key="value"`), in the Prometheus text format.
func metricSample(body, name string, labels ...string) (float64, bool) {
	var sum float64
	found := false
	for _, line := range strings.Split(body, "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest != "" && rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		series, value, ok := strings.Cut(rest, " ")
		if i := strings.LastIndex(rest, "} "); i >= 0 {
			series, value, ok = rest[:i+1], rest[i+2:], true
		}
		if !ok {
			continue
		}
		all := true
		for _, l := range labels {
			if !strings.Contains(series, l) {
				all = false
				break
			}
		}
		if !all {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		sum, found = sum+v, true
	}
	return sum, found
}

func metricEq(want float64) func(float64) bool { return func(v float64) bool { return v == want } }
func metricGt(min float64) func(float64) bool  { return func(v float64) bool { return v > min } }
