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

// promServer answers /api/v1/query like Prometheus, with a canned data
// section per query. The integration tests use a real Prometheus.
func promServer(t *testing.T, answers map[string]string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || r.URL.Path != "/api/v1/query" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		q := r.Form.Get("query")
		w.Header().Set("Content-Type", "application/json")
		data, ok := answers[q]
		if !ok {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"status":"error","errorType":"bad_data","error":"parse error: unexpected end of input"}`)
			return
		}
		fmt.Fprintf(w, `{"status":"success","data":%s}`, data)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func vector(values ...string) string {
	var samples []string
	for i, v := range values {
		samples = append(samples, fmt.Sprintf(`{"metric":{"instance":"i%d"},"value":[1700000000,%q]}`, i, v))
	}
	return `{"resultType":"vector","result":[` + strings.Join(samples, ",") + `]}`
}

func TestPrometheus(t *testing.T) {
	url := promServer(t, map[string]string{
		"low":           vector("0.01"),
		"high":          vector("0.01", "0.2"),
		"empty":         vector(),
		"nan":           vector("NaN"),
		"inf":           vector("+Inf"),
		"-inf":          vector("-Inf"),
		"ok,inf":        vector("0.01", "+Inf"),
		"nan,-inf,high": vector("NaN", "-Inf", "0.2"),
		"scalar":        `{"resultType":"scalar","result":[1700000000,"0.5"]}`,
		"matrix":        `{"resultType":"matrix","result":[]}`,
	})
	check := func(query, op string, threshold float64, onEmpty string) spec.Check {
		return spec.Check{Name: "errors", Prometheus: &spec.PrometheusCheck{URL: url, Query: query, Op: op,
			Threshold: threshold, OnEmpty: onEmpty, Timeout: spec.Duration(2 * time.Second)}}
	}
	tests := []struct {
		name    string
		check   spec.Check
		verdict Verdict
		value   float64 // checked when verdict is healthy or failed by a sample
		errHas  string
	}{
		{name: "under threshold", check: check("low", "<", 0.05, spec.EmptyNoData), verdict: Healthy, value: 0.01},
		{name: "one series over threshold fails", check: check("high", "<", 0.05, spec.EmptyNoData), verdict: Failed, value: 0.2, errHas: `{instance="i1"} = 0.2, want < 0.05`},
		{name: "ge comparison", check: check("high", ">=", 0.01, spec.EmptyNoData), verdict: Healthy, value: 0.01},
		{name: "scalar", check: check("scalar", "==", 0.5, spec.EmptyNoData), verdict: Healthy, value: 0.5},
		{name: "empty is no data by default", check: check("empty", "<", 0.05, spec.EmptyNoData), verdict: NoData, errHas: "no samples"},
		{name: "empty may fail", check: check("empty", "<", 0.05, spec.EmptyFail), verdict: Failed, errHas: "onEmpty: fail"},
		{name: "empty may pass", check: check("empty", "<", 0.05, spec.EmptyPass), verdict: Healthy},
		{name: "NaN is no data", check: check("nan", "<", 0.05, spec.EmptyNoData), verdict: NoData, errHas: "NaN"},
		{name: "+Inf past the threshold fails", check: check("inf", "<", 0.05, spec.EmptyNoData), verdict: Failed, errHas: `{instance="i0"} = +Inf (not finite), want < 0.05`},
		{name: "+Inf after a finite sample fails", check: check("ok,inf", "<", 0.05, spec.EmptyNoData), verdict: Failed, errHas: "+Inf (not finite)"},
		{name: "+Inf meeting the threshold is no data", check: check("inf", ">", 0.99, spec.EmptyNoData), verdict: NoData, errHas: "+Inf (not finite"},
		{name: "-Inf meeting the threshold is no data", check: check("-inf", "<", 0.05, spec.EmptyNoData), verdict: NoData, errHas: "-Inf (not finite"},
		{name: "-Inf past the threshold fails", check: check("-inf", ">=", 0, spec.EmptyNoData), verdict: Failed, errHas: "-Inf (not finite)"},
		{name: "a finite failing sample decides after non-finite ones", check: check("nan,-inf,high", "<", 0.05, spec.EmptyNoData), verdict: Failed, value: 0.2, errHas: "= 0.2, want < 0.05"},
		{name: "matrix is refused", check: check("matrix", "<", 0.05, spec.EmptyNoData), verdict: Failed, errHas: "instant vector"},
		{name: "bad query fails", check: check("sum(", "<", 0.05, spec.EmptyNoData), verdict: Failed, errHas: "query refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var c Checker
			res := c.Round(context.Background(), []spec.Check{tt.check}, nil, nil).Results[0]
			if res.Verdict != tt.verdict {
				t.Fatalf("verdict = %s, want %s (error %q)", res.Verdict, tt.verdict, res.Error)
			}
			if tt.value != 0 && (res.Value == nil || *res.Value != tt.value) {
				t.Errorf("value = %v, want %g", res.Value, tt.value)
			}
			if !strings.Contains(res.Error, tt.errHas) {
				t.Errorf("error = %q, want it to contain %q", res.Error, tt.errHas)
			}
			// Results travel in heartbeats, results and the audit trail,
			// all JSON: a non-finite Value would not encode.
			if _, err := json.Marshal(res); err != nil {
				t.Errorf("result does not encode: %v", err)
			}
		})
	}
	t.Run("unreachable Prometheus is no data, not healthy", func(t *testing.T) {
		var c Checker
		ch := check("low", "<", 0.05, spec.EmptyNoData)
		ch.Prometheus.URL = "http://" + closedAddr(t)
		res := c.Round(context.Background(), []spec.Check{ch}, nil, nil).Results[0]
		if res.Verdict != NoData {
			t.Fatalf("verdict = %s, want no-data (error %q)", res.Verdict, res.Error)
		}
	})
}
