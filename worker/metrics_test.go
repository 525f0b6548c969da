package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// scrape polls the handler until every wanted line is in the scrape (the
// scope reports on its interval), and returns the scrape.
func scrape(t *testing.T, h http.Handler, want ...string) string {
	t.Helper()
	var body string
	deadline := time.Now().Add(5 * time.Second)
	for {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		require.Equal(t, http.StatusOK, rec.Code)
		body = rec.Body.String()
		missing := ""
		for _, w := range want {
			if !strings.Contains(body, w) {
				missing = w
				break
			}
		}
		if missing == "" {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("scrape has no %q:\n%s", missing, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestMetricsHandlerExportsPrometheusNames(t *testing.T) {
	m := newMetrics(zap.NewNop(), 10*time.Millisecond)
	defer m.closer.Close()

	tagged := m.handler.WithTags(map[string]string{"strategy": "canary", "platform": "docker"})
	tagged.Counter("stagecraft_rollouts_started").Inc(2)
	tagged.WithTags(map[string]string{"outcome": "rolled_back"}).Counter("stagecraft_rollouts_finished").Inc(1)
	tagged.WithTags(map[string]string{"stage": "canary", "result": "completed"}).
		Timer("stagecraft_stage_duration").Record(90 * time.Second)
	m.handler.Gauge("temporal_worker_task_slots_available").Update(3)

	body := scrape(t, m.http,
		`stagecraft_rollouts_started_total{platform="docker",strategy="canary"} 2`,
		`stagecraft_rollouts_finished_total{outcome="rolled_back",platform="docker",strategy="canary"} 1`,
		// 90 s falls in the 120 s bucket, not the 60 s one.
		`stagecraft_stage_duration_seconds_bucket{platform="docker",result="completed",stage="canary",strategy="canary",le="60"} 0`,
		`stagecraft_stage_duration_seconds_bucket{platform="docker",result="completed",stage="canary",strategy="canary",le="120"} 1`,
		`stagecraft_stage_duration_seconds_sum{platform="docker",result="completed",stage="canary",strategy="canary"} 90`,
		`temporal_worker_task_slots_available 3`,
		// The process's own collectors are in the same registry.
		`go_goroutines `,
	)
	require.NotContains(t, body, "stagecraft_rollouts_started{", "counters carry _total")
}

// A name first used with one label set and then another cannot be
// exported twice: the reporter must log it, not panic the worker.
func TestMetricsHandlerSurvivesAConflictingLabelSet(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	m := newMetrics(zap.New(core), 10*time.Millisecond)
	defer m.closer.Close()

	m.handler.WithTags(map[string]string{"a": "1"}).Counter("stagecraft_conflict").Inc(1)
	scrape(t, m.http, `stagecraft_conflict_total{a="1"} 1`)
	require.NotPanics(t, func() {
		m.handler.WithTags(map[string]string{"b": "2"}).Counter("stagecraft_conflict").Inc(1)
		m.handler.Counter("stagecraft_other").Inc(1)
		scrape(t, m.http, `stagecraft_other_total 1`)
	})
	require.Equal(t, 1, logs.FilterMessage("metric not exported").Len())
}

func TestServeMetrics(t *testing.T) {
	h, stop, err := serveMetrics("", zap.NewNop())
	require.NoError(t, err)
	require.Nil(t, h, "off: the SDK's no-op handler")
	stop()

	_, _, err = serveMetrics("127.0.0.1:-1", zap.NewNop())
	require.ErrorContains(t, err, "--metrics-address 127.0.0.1:-1")
}

func TestServeMetricsOverHTTP(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	h, stop, err := serveMetrics("127.0.0.1:0", zap.New(core))
	require.NoError(t, err)
	defer stop()
	entries := logs.FilterMessage("metrics endpoint on").All()
	require.Len(t, entries, 1)
	url := entries[0].ContextMap()["url"].(string)
	require.True(t, strings.HasPrefix(url, "http://127.0.0.1:"), url)

	h.Counter("stagecraft_rollouts_started").Inc(1)
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get(url)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		if strings.Contains(string(b), "stagecraft_rollouts_started_total 1") {
			return
		}
		require.True(t, time.Now().Before(deadline), "no stagecraft_rollouts_started_total 1 in:\n%s", b)
		time.Sleep(100 * time.Millisecond)
	}
}
