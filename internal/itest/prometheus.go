package itest

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Prometheus starts a real Prometheus with scripts/prometheus.sh on a free
// 127.0.0.1 port, state in a test temp dir, scraping every Docker container
// labelled stagecraft.service through its published port (see the script for
// the target labels: service, version, role, container). It is stopped when
// the test ends. Returns its base URL, e.g. http://127.0.0.1:40123.
func Prometheus(t testing.TB) string {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatalf("prometheus: pick a port: %v", err)
	}
	// The dir is removed after the cleanup below has stopped Prometheus:
	// cleanups run last-registered first.
	dir := filepath.Join(t.TempDir(), "prometheus")
	script := filepath.Join(Root(), "scripts", "prometheus.sh")
	var stdout, stderr bytes.Buffer
	start := exec.Command("bash", script, "start", dir, strconv.Itoa(port))
	start.Stdout, start.Stderr = &stdout, &stderr
	if err := start.Run(); err != nil {
		t.Fatalf("scripts/prometheus.sh start: %v\n%s", err, stderr.Bytes())
	}
	t.Cleanup(func() {
		stop := exec.Command("bash", script, "stop", dir)
		if out, err := stop.CombinedOutput(); err != nil {
			t.Errorf("scripts/prometheus.sh stop: %v\n%s", err, out)
		}
	})
	url := strings.TrimSpace(stdout.String())
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("scripts/prometheus.sh start printed %q, want its URL\n%s", url, stderr.Bytes())
	}
	return url
}

// freePort returns a 127.0.0.1 TCP port nobody listened on a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Load is a small load generator: every `every` until ctx ends, it GETs
// http://TARGET/ once for each address targets returns (host:port), ignoring
// the answers and errors. It runs in the background; pass a bounded ctx. The
// test's cleanup waits for it to stop.
func Load(ctx context.Context, t testing.TB, targets func() []string, every time.Duration) {
	t.Helper()
	tr := &http.Transport{}
	hc := &http.Client{Transport: tr, Timeout: max(every, time.Second)}
	var wg sync.WaitGroup
	wg.Go(func() {
		defer tr.CloseIdleConnections()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			for _, target := range targets() {
				get(ctx, hc, "http://"+target+"/")
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	})
	t.Cleanup(wg.Wait)
}

func get(ctx context.Context, hc *http.Client, url string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return
	}
	resp, err := hc.Do(req)
	if err != nil {
		return
	}
	// Drained, so the connection is reused.
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
}
