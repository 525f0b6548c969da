package health

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/stagecraft/stagecraft/internal/spec"
)

// prometheus runs an instant query. Every sample must satisfy the check's
// comparison; an empty result follows onEmpty; a NaN sample or an
// unreachable Prometheus is no data, and a query Prometheus refuses fails.
// An infinite sample fails when it misses the comparison and is no data
// when it meets it (it only does by a division by zero); either way the
// result has no Value, which must stay JSON-encodable.
func (c *Checker) prometheus(ctx context.Context, name string, p *spec.PrometheusCheck) Result {
	res := Result{Check: name, Target: RedactURL(p.URL), Verdict: Failed}
	cl, err := api.NewClient(api.Config{Address: p.URL, Client: c.httpClient(false)})
	if err != nil {
		res.Error = "the URL does not parse"
		return res
	}
	ctx, cancel := context.WithTimeout(ctx, p.Timeout.D())
	defer cancel()
	start := time.Now()
	val, warnings, _, err := promv1.NewAPI(cl).Query(ctx, p.Query, time.Now())
	res.Latency = time.Since(start)
	if err != nil {
		var perr *promv1.Error
		if errors.As(err, &perr) && (perr.Type == promv1.ErrBadData || perr.Type == promv1.ErrExec) {
			res.Error = "query refused: " + perr.Msg
			return res
		}
		res.Verdict, res.Error = NoData, "query: "+urlError(err, p.URL)
		return res
	}
	// Warnings are not kept: Prometheus is a fixed target, and what a
	// fixed target says never becomes evidence (egress finding 6).
	_ = warnings
	var samples []*model.Sample
	switch v := val.(type) {
	case model.Vector:
		samples = v
	case *model.Scalar:
		samples = []*model.Sample{{Value: v.Value}}
	default:
		res.Error = fmt.Sprintf("query returned a %s; want an instant vector or a scalar", val.Type())
		return res
	}
	if len(samples) == 0 {
		switch p.OnEmpty {
		case spec.EmptyPass:
			res.Verdict = Healthy
		case spec.EmptyFail:
			res.Error = "query returned no samples (onEmpty: fail)"
		default:
			res.Verdict, res.Error = NoData, "query returned no samples"
		}
		return res
	}
	res.Verdict = Healthy
	for _, s := range samples {
		f := float64(s.Value)
		switch {
		case math.IsNaN(f):
			if res.Verdict == Healthy {
				res.Verdict, res.Error = NoData, fmt.Sprintf("%s is NaN (no data in the window)", seriesName(s))
			}
		case math.IsInf(f, 0) && !p.Compare(f):
			// Past any threshold on the wrong side (a latency quantile in
			// the +Inf bucket): failed, with no Value (JSON has no Inf, and
			// the result travels in heartbeats and the audit trail).
			res.Verdict, res.Value = Failed, nil
			res.Error = fmt.Sprintf("%s = %g (not finite), want %s %g", seriesName(s), f, p.Op, p.Threshold)
			return res
		case math.IsInf(f, 0):
			// On the right side only by dividing by zero (an error ratio
			// with no requests): no evidence either way, like NaN.
			if res.Verdict == Healthy {
				res.Verdict, res.Error = NoData, fmt.Sprintf("%s is %g (not finite: no data in the window)", seriesName(s), f)
			}
		case !p.Compare(f):
			res.Verdict = Failed
			res.Value = &f
			res.Error = fmt.Sprintf("%s = %g, want %s %g", seriesName(s), f, p.Op, p.Threshold)
			return res
		case res.Value == nil:
			res.Value = &f
		}
	}
	return res
}

func seriesName(s *model.Sample) string {
	if len(s.Metric) == 0 {
		return "value"
	}
	return s.Metric.String()
}
