// Command demo-app is the tiny HTTP service Stagecraft's demo and tests roll
// out. GET /healthz reports its version; it can be told to start failing or
// slowing down after a number of seconds, by environment or by its build, and
// to fail a fraction of its other requests. GET /metrics serves Prometheus
// metrics: demo_http_requests_total and demo_http_request_duration_seconds,
// both labelled path ("/" or "/healthz"), code and version.
//
//	VERSION       reported version (set at build time by -ldflags, or env)
//	PORT          listen port (default 8080)
//	GREETING      greeting returned by /
//	FAIL_AFTER    seconds after start when /healthz starts answering 500
//	SLOW_AFTER    seconds after start when every answer but /metrics is delayed by SLOW_BY
//	SLOW_BY       delay once slow (default 2s)
//	HANG_AFTER    seconds after start when every request, /healthz and /metrics
//	              included, is accepted and never answered (a hung process: the
//	              port still takes connections); the client gives up, not the app
//	ERROR_RATE    fraction (0 to 1, default 0) of requests to / answered with 500,
//	              spread evenly: 0.5 fails every 2nd request, 1 fails all;
//	              /healthz is not affected
//
// `demo-app probe` is the probe mode, for exec readiness and liveness probes
// in pods (no curl in a FROM scratch image): it GETs
// http://127.0.0.1:$PORT/healthz of the app running beside it in the same
// container and exits 0 on a 200, 1 otherwise (also on no answer within
// PROBE_TIMEOUT, default 2s), printing what it saw.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"math"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Set by -ldflags "-X main.version=v2 -X main.failAfter=5 -X main.hangAfter=5".
var (
	version   = "dev"
	failAfter = ""
	hangAfter = ""
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "probe" {
		os.Exit(probe())
	}
	if v := os.Getenv("VERSION"); v != "" {
		version = v
	}
	if v := os.Getenv("FAIL_AFTER"); v != "" {
		failAfter = v
	}
	if v := os.Getenv("HANG_AFTER"); v != "" {
		hangAfter = v
	}
	port := getenv("PORT", "8080")
	greeting := getenv("GREETING", "hello")
	start := time.Now()
	failAt := afterSeconds(start, failAfter)
	slowAt := afterSeconds(start, os.Getenv("SLOW_AFTER"))
	hangAt := afterSeconds(start, hangAfter)
	slowBy, err := time.ParseDuration(getenv("SLOW_BY", "2s"))
	if err != nil {
		log.Fatalf("SLOW_BY: %v", err)
	}
	errorRate, err := strconv.ParseFloat(getenv("ERROR_RATE", "0"), 64)
	if err != nil || !(errorRate >= 0 && errorRate <= 1) {
		log.Fatalf("ERROR_RATE: want a number from 0 to 1, got %q", os.Getenv("ERROR_RATE"))
	}
	failing := &failer{rate: errorRate}
	m := newMetrics(version)

	mux := http.NewServeMux()
	slow := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if !slowAt.IsZero() && time.Now().After(slowAt) {
				time.Sleep(slowBy)
			}
			h(w, r)
		}
	}
	mux.Handle("/healthz", m.instrument("/healthz", slow(func(w http.ResponseWriter, r *http.Request) {
		status, code := "ok", http.StatusOK
		if !failAt.IsZero() && time.Now().After(failAt) {
			status, code = "failing", http.StatusInternalServerError
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(map[string]string{"status": status, "version": version})
	})))
	mux.Handle("/", m.instrument("/", slow(func(w http.ResponseWriter, r *http.Request) {
		host, _ := os.Hostname()
		if failing.next() {
			http.Error(w, fmt.Sprintf("injected error from %s (%s)", version, host), http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "%s from %s (%s)\n", greeting, version, host)
	})))
	mux.Handle("/metrics", m.handler)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv := &http.Server{Addr: ":" + port, Handler: hang(hangAt, ctx.Done(), mux), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	if !hangAt.IsZero() {
		log.Printf("demo-app %s stops answering at %s", version, hangAt.Format(time.RFC3339Nano))
	}
	log.Printf("demo-app %s listening on :%s", version, port)
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
}

// probe asks the app's own /healthz on 127.0.0.1 and returns the exit code:
// 0 for a 200, 1 for anything else.
func probe() int {
	timeout, err := time.ParseDuration(getenv("PROBE_TIMEOUT", "2s"))
	if err != nil {
		fmt.Fprintf(os.Stderr, "PROBE_TIMEOUT: %v\n", err)
		return 1
	}
	url := "http://127.0.0.1:" + getenv("PORT", "8080") + "/healthz"
	resp, err := (&http.Client{Timeout: timeout}).Get(url)
	if err != nil {
		fmt.Fprintf(os.Stderr, "probe %s: %v\n", url, err)
		return 1
	}
	defer func() { _ = resp.Body.Close() }()
	body := make([]byte, 512)
	n, _ := io.ReadFull(resp.Body, body)
	fmt.Printf("probe %s: %s %s\n", url, resp.Status, strings.TrimSpace(string(body[:n])))
	if resp.StatusCode != http.StatusOK {
		return 1
	}
	return 0
}

// hang holds every request that arrives after at without an answer, until
// the client gives up or the app is stopped: what a deadlocked or wedged
// process looks like from outside, since its listener still accepts.
func hang(at time.Time, stopping <-chan struct{}, h http.Handler) http.Handler {
	if at.IsZero() {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if time.Now().After(at) {
			select {
			case <-r.Context().Done():
			case <-stopping:
			}
			return
		}
		h.ServeHTTP(w, r)
	})
}

func getenv(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func afterSeconds(start time.Time, s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil {
		log.Fatalf("invalid seconds %q: %v", s, err)
	}
	return start.Add(time.Duration(n * float64(time.Second)))
}

// failer fails a fixed fraction of calls, spread evenly and deterministically:
// call n fails when floor(n*rate) steps past floor((n-1)*rate).
type failer struct {
	rate float64
	n    atomic.Uint64
}

func (f *failer) next() bool {
	if f.rate <= 0 {
		return false
	}
	n := float64(f.n.Add(1))
	return math.Floor(n*f.rate) > math.Floor((n-1)*f.rate)
}

// metrics are the app's own Prometheus metrics, on a registry of their own so
// /metrics shows only them and the Go runtime's.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	handler  http.Handler
}

func newMetrics(version string) *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "demo_http_requests_total",
			Help:        "HTTP requests answered, by path and status code.",
			ConstLabels: prometheus.Labels{"version": version},
		}, []string{"path", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:        "demo_http_request_duration_seconds",
			Help:        "Time taken to answer HTTP requests, by path and status code.",
			ConstLabels: prometheus.Labels{"version": version},
			Buckets:     []float64{.001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"path", "code"}),
	}
	reg.MustRegister(m.requests, m.duration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	return m
}

// instrument counts and times the requests h answers under path (the route,
// not the request's URL, so the label's values stay few).
func (m *metrics) instrument(path string, h http.HandlerFunc) http.Handler {
	l := prometheus.Labels{"path": path}
	return promhttp.InstrumentHandlerDuration(m.duration.MustCurryWith(l),
		promhttp.InstrumentHandlerCounter(m.requests.MustCurryWith(l), h))
}
