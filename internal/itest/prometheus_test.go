//go:build integration

package itest_test

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/stagecraft/stagecraft/internal/itest"
	"github.com/stagecraft/stagecraft/internal/platform"
)

// TestPrometheusScrapesDemoApp proves the chain health checks that query
// Prometheus rely on: a demo container carrying the stagecraft.* labels and a
// port published on 127.0.0.1 is discovered through the Docker engine,
// scraped through that port, labelled with its service, and its injected
// error rate (ERROR_RATE=0.5) shows up in a PromQL ratio.
func TestPrometheusScrapesDemoApp(t *testing.T) {
	const image = "stagecraft-demo:v1"
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	dc := dockerWith(ctx, t, image)
	promURL := itest.Prometheus(t)

	svc := itest.Name("itest-prom")
	name := svc + "-0"
	port := network.MustParsePort("8080/tcp")
	created, err := dc.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: name,
		Config: &container.Config{
			Image: image,
			Env:   []string{"ERROR_RATE=0.5"},
			Labels: map[string]string{
				platform.LabelService: svc,
				platform.LabelVersion: image,
				platform.LabelRole:    platform.RoleStable,
			},
			ExposedPorts: network.PortSet{port: {}},
		},
		HostConfig: &container.HostConfig{
			PortBindings: network.PortMap{port: {{HostIP: netip.MustParseAddr("127.0.0.1")}}},
		},
	})
	if err != nil {
		t.Fatalf("create container: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := dc.ContainerRemove(ctx, created.ID, client.ContainerRemoveOptions{Force: true}); err != nil {
			t.Errorf("remove container %s: %v", name, err)
		}
	})
	if _, err := dc.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatalf("start container: %v", err)
	}
	in, err := dc.ContainerInspect(ctx, created.ID, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatalf("inspect container: %v", err)
	}
	bindings := in.Container.NetworkSettings.Ports[port]
	if len(bindings) == 0 || bindings[0].HostPort == "" {
		t.Fatalf("container %s has no published port: %v", name, in.Container.NetworkSettings.Ports)
	}
	addr := "127.0.0.1:" + bindings[0].HostPort

	// Stopped by the deferred cancel, before the cleanup that waits for it.
	loadCtx, stopLoad := context.WithTimeout(ctx, 90*time.Second)
	defer stopLoad()
	itest.Load(loadCtx, t, func() []string { return []string{addr} }, 20*time.Millisecond)

	pc, err := promapi.NewClient(promapi.Config{Address: promURL})
	if err != nil {
		t.Fatalf("prometheus client: %v", err)
	}
	prom := promv1.NewAPI(pc)
	ratio := fmt.Sprintf(`sum(rate(demo_http_requests_total{service=%[1]q,code=~"5.."}[5s])) / sum(rate(demo_http_requests_total{service=%[1]q}[5s]))`, svc)
	var last string
	deadline := time.Now().Add(60 * time.Second)
	for {
		v, err := query(ctx, prom, ratio)
		switch {
		case err != nil:
			last = err.Error()
		case len(v) != 1:
			last = fmt.Sprintf("%d series", len(v))
		default:
			last = v[0].Value.String()
		}
		if err == nil && len(v) == 1 && math.Abs(float64(v[0].Value)-0.5) < 0.05 {
			t.Logf("error ratio of %s: %s", svc, v[0].Value)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after 60s waiting for %s to be about 0.5; last: %s", ratio, last)
		}
		time.Sleep(500 * time.Millisecond)
	}

	// Exactly one target for the container, scraped through its published
	// port (never a bridge IP), carrying the container's labels.
	up, err := query(ctx, prom, fmt.Sprintf(`up{service=%q}`, svc))
	if err != nil {
		t.Fatalf("query up: %v", err)
	}
	if len(up) != 1 {
		t.Fatalf("up{service=%q} has %d series, want 1: %v", svc, len(up), up)
	}
	want := model.Metric{"__name__": "up", "job": "stagecraft-docker", "instance": model.LabelValue(addr),
		"service": model.LabelValue(svc), "version": image, "role": platform.RoleStable, "container": model.LabelValue(name)}
	if !up[0].Metric.Equal(want) || up[0].Value != 1 {
		t.Errorf("up = %v %v, want %v 1", up[0].Metric, up[0].Value, want)
	}

	// ERROR_RATE leaves /healthz alone.
	for range 4 {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			t.Fatalf("GET /healthz: %v", err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /healthz = %d, want 200 whatever ERROR_RATE says", resp.StatusCode)
		}
	}
}

// query runs an instant PromQL query that must return a vector.
func query(ctx context.Context, prom promv1.API, q string) (model.Vector, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	v, _, _, err := prom.Query(ctx, q, time.Now())
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", q, err)
	}
	vec, ok := v.(model.Vector)
	if !ok {
		return nil, fmt.Errorf("query %s: got a %s, want a vector", q, v.Type())
	}
	return vec, nil
}
