package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/uber-go/tally/v4"
	tallyprom "github.com/uber-go/tally/v4/prometheus"
	tclient "go.temporal.io/sdk/client"
	sdktally "go.temporal.io/sdk/contrib/tally"
	"go.uber.org/zap"
)

// durationBuckets (seconds) cover both the SDK's latencies (milliseconds)
// and Stagecraft's stages and rollouts (seconds to an hour).
var durationBuckets = []float64{
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
	1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600,
}

// metrics is the worker's metrics: a tally scope reporting into its own
// Prometheus registry. Its handler goes into client.Options, so the SDK's
// metrics and those workflows and activities emit (stagecraft_*) land in
// the same registry.
type metrics struct {
	handler tclient.MetricsHandler
	http    http.Handler
	closer  io.Closer
}

// newMetrics builds the registry and the handler; values reach the
// registry every interval.
func newMetrics(log *zap.Logger, interval time.Duration) *metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var seen sync.Map
	reporter := tallyprom.NewReporter(tallyprom.Options{
		Registerer:              reg,
		DefaultTimerType:        tallyprom.HistogramTimerType,
		DefaultHistogramBuckets: durationBuckets,
		// A name used with two label sets cannot be registered twice; the
		// reporter's default is to panic. Say so once and go on without it.
		OnRegisterError: func(err error) {
			if _, dup := seen.LoadOrStore(err.Error(), true); !dup {
				log.Warn("metric not exported", zap.Error(err))
			}
		},
	})
	scope, closer := tally.NewRootScope(tally.ScopeOptions{
		CachedReporter:  reporter,
		Separator:       tallyprom.DefaultSeparator,
		SanitizeOptions: &sdktally.PrometheusSanitizeOptions,
	}, interval)
	return &metrics{
		// Counters get "_total" and timers "_seconds", as Prometheus names them.
		handler: sdktally.NewMetricsHandler(sdktally.NewPrometheusNamingScope(scope)),
		http:    reporter.HTTPHandler(),
		closer:  closer,
	}
}

// serveMetrics serves /metrics on addr and returns the handler for the
// Temporal client and a function that stops serving. With addr empty it
// serves nothing and returns a nil handler (the SDK's no-op).
func serveMetrics(addr string, log *zap.Logger) (tclient.MetricsHandler, func(), error) {
	if addr == "" {
		return nil, func() {}, nil
	}
	// Listen now, so a bad or busy address stops the worker at start.
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("--metrics-address %s: %w", addr, err)
	}
	m := newMetrics(log, time.Second)
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.http)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics endpoint stopped", zap.Error(err))
		}
	}()
	log.Info("metrics endpoint on", zap.String("url", "http://"+l.Addr().String()+"/metrics"))
	return m.handler, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		_ = m.closer.Close()
	}, nil
}
