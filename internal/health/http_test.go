package health

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stagecraft/stagecraft/internal/spec"
)

func TestHTTPConditions(t *testing.T) {
	// One server answering like a service's status endpoint; it echoes the
	// X-Probe header and the Host it was asked for.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/created":
			w.WriteHeader(http.StatusCreated)
			return
		case "/slow":
			time.Sleep(150 * time.Millisecond)
		case "/text":
			fmt.Fprint(w, "not json at all")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"status": "ok", "version": "v2", "replicas": 3, "ready": true,
			"probe": r.Header.Get("X-Probe"), "host": r.Host,
			"checks": []map[string]any{{"name": "db", "status": "up"}},
		})
	}))
	t.Cleanup(srv.Close)
	base := srv.URL

	tests := []struct {
		name    string
		path    string
		edit    func(*spec.HTTPCheck)
		verdict Verdict
		errHas  string
	}{
		{name: "status class 2xx", path: "/created", edit: func(h *spec.HTTPCheck) { h.ExpectStatus = spec.StatusSet{"2xx"} }, verdict: Healthy},
		{name: "status list", path: "/created", edit: func(h *spec.HTTPCheck) { h.ExpectStatus = spec.StatusSet{"200", "201"} }, verdict: Healthy},
		{name: "status not in list", path: "/created", edit: func(h *spec.HTTPCheck) { h.ExpectStatus = spec.StatusSet{"200", "204"} }, verdict: Failed, errHas: "status 201, want 200,204"},
		{name: "body contains", edit: func(h *spec.HTTPCheck) { h.BodyContains = `"version":"v2"` }, verdict: Healthy},
		{name: "body lacks", edit: func(h *spec.HTTPCheck) { h.BodyContains = `"version":"v3"` }, verdict: Failed, errHas: "does not contain"},
		{name: "body regex", edit: func(h *spec.HTTPCheck) { h.BodyRegex = `"version":"v[0-9]+"` }, verdict: Healthy},
		{name: "body regex misses", edit: func(h *spec.HTTPCheck) { h.BodyRegex = `"version":"v9"` }, verdict: Failed, errHas: "does not match"},
		{name: "json string", edit: func(h *spec.HTTPCheck) { h.JSON = []spec.JSONMatch{{Path: "status", Equals: "ok"}} }, verdict: Healthy},
		{name: "json number and bool", edit: func(h *spec.HTTPCheck) {
			h.JSON = []spec.JSONMatch{{Path: "replicas", Equals: 3.0}, {Path: "ready", Equals: true}}
		}, verdict: Healthy},
		{name: "json array path", edit: func(h *spec.HTTPCheck) { h.JSON = []spec.JSONMatch{{Path: "checks.0.status", Equals: "up"}} }, verdict: Healthy},
		{name: "json differs", edit: func(h *spec.HTTPCheck) { h.JSON = []spec.JSONMatch{{Path: "version", Equals: "v1"}} }, verdict: Failed, errHas: `JSON field "version" is "v2", want "v1"`},
		{name: "json missing", edit: func(h *spec.HTTPCheck) { h.JSON = []spec.JSONMatch{{Path: "checks.3.status", Equals: "up"}} }, verdict: Failed, errHas: "is missing"},
		{name: "json on a text body", path: "/text", edit: func(h *spec.HTTPCheck) { h.JSON = []spec.JSONMatch{{Path: "status", Equals: "ok"}} }, verdict: Failed, errHas: "not JSON"},
		{name: "headers sent", edit: func(h *spec.HTTPCheck) {
			h.Headers = spec.PlainValues(map[string]string{"X-Probe": "stagecraft", "Host": "payments.internal"})
			h.JSON = []spec.JSONMatch{{Path: "probe", Equals: "stagecraft"}, {Path: "host", Equals: "payments.internal"}}
		}, verdict: Healthy},
		{name: "slower than maxLatency is degraded", path: "/slow", edit: func(h *spec.HTTPCheck) { h.MaxLatency = spec.Duration(50 * time.Millisecond) }, verdict: Degraded, errHas: "over maxLatency 50ms"},
		{name: "within maxLatency", edit: func(h *spec.HTTPCheck) { h.MaxLatency = spec.Duration(5 * time.Second) }, verdict: Healthy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var c Checker
			r := c.Round(context.Background(), []spec.Check{httpCheck("c", base+tt.path, tt.edit)}, nil, nil)
			res := r.Results[0]
			if res.Verdict != tt.verdict || r.Verdict != tt.verdict {
				t.Fatalf("verdict = %s (round %s), want %s; error %q", res.Verdict, r.Verdict, tt.verdict, res.Error)
			}
			if !strings.Contains(res.Error, tt.errHas) {
				t.Errorf("error = %q, want it to contain %q", res.Error, tt.errHas)
			}
			if tt.verdict == Healthy && res.Error != "" {
				t.Errorf("healthy with error %q", res.Error)
			}
		})
	}
}

func TestDependencies(t *testing.T) {
	up := server(t, 200, "ok", 0)
	down := closedAddr(t)
	tests := []struct {
		name    string
		deps    []spec.Check
		verdict Verdict
	}{
		{"dependency up", []spec.Check{tcpCheck("db", up)}, Healthy},
		{"dependency down degrades, never fails", []spec.Check{tcpCheck("db", down)}, Degraded},
		{"one of two down", []spec.Check{tcpCheck("db", up), httpCheck("cache", "http://"+down+"/", nil)}, Degraded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Checker
			r := c.Round(context.Background(), []spec.Check{httpCheck("self", "http://"+up+"/", nil)}, tt.deps, nil)
			if r.Verdict != tt.verdict {
				t.Fatalf("round verdict = %s, want %s: %+v", r.Verdict, tt.verdict, r.Results)
			}
			if tt.verdict == Degraded && !strings.Contains(r.Problem(), "dependency failed") {
				t.Errorf("Problem = %q, want it to say the dependency failed", r.Problem())
			}
		})
	}
	t.Run("a failing check still fails the round beside a degraded dependency", func(t *testing.T) {
		var c Checker
		r := c.Round(context.Background(), []spec.Check{tcpCheck("self", down)}, []spec.Check{tcpCheck("db", down)}, nil)
		if r.Verdict != Failed {
			t.Fatalf("verdict = %s, want failed", r.Verdict)
		}
	})
}

func TestBounded(t *testing.T) {
	r := Round{Verdict: Failed}
	for i := range 40 {
		v := Healthy
		if i == 37 {
			v = Failed
		}
		r.Results = append(r.Results, Result{Check: fmt.Sprint(i), Verdict: v})
	}
	b := r.Bounded(8)
	if len(b.Results) != 8 || b.Results[0].Check != "37" {
		t.Fatalf("Bounded(8) = %d results, first %q; want 8 with the failure first", len(b.Results), b.Results[0].Check)
	}
	if len(r.Results) != 40 {
		t.Errorf("Bounded changed its receiver")
	}
}

func TestUnobserved(t *testing.T) {
	up := server(t, 200, "ok", 0)
	var c Checker
	tests := []struct {
		name  string
		check spec.Check
		addrs []string
		want  bool
	}{
		{"per-instance check without instances", httpCheck("h", "http://{{.Address}}/", nil), nil, true},
		{"per-instance check with instances", httpCheck("h", "http://{{.Address}}/", nil), []string{up}, false},
		{"fixed check without instances", httpCheck("h", "http://"+up+"/", nil), nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := c.Round(context.Background(), []spec.Check{tt.check}, nil, tt.addrs).Unobserved; got != tt.want {
				t.Errorf("Unobserved = %v, want %v", got, tt.want)
			}
		})
	}
}
