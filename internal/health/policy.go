package health

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/stagecraft/stagecraft/internal/spec"
)

// Decision is what a tracker says after a round.
type Decision string

// Decisions.
const (
	// Continue: keep watching.
	Continue Decision = "continue"
	// Fail: failureThreshold failing rounds in a row; the stage fails.
	Fail Decision = "fail"
	// Pause: the round was degraded and the policy pauses the rollout.
	Pause Decision = "pause"
)

// Counts counts rounds by verdict.
type Counts struct {
	Healthy  int `json:"healthy"`
	Degraded int `json:"degraded"`
	Failed   int `json:"failed"`
	NoData   int `json:"noData"`
}

// Add returns the sum of two counts.
func (c Counts) Add(o Counts) Counts {
	return Counts{c.Healthy + o.Healthy, c.Degraded + o.Degraded, c.Failed + o.Failed, c.NoData + o.NoData}
}

// Tally is a tracker's state: small, so it travels in heartbeats.
type Tally struct {
	Counts
	Rounds int `json:"rounds"`
	// Samples counts rounds that count toward minSamples.
	Samples int `json:"samples"`
	// Streak counts failing rounds in a row.
	Streak int `json:"streak"`
	// Failing counts every round that counted toward a streak.
	Failing int `json:"failing"`
}

// Tracker applies a spec's health policy to rounds, one after another.
type Tracker struct {
	h     spec.Health
	Tally Tally
	// latencies holds each baseline's recent latencies.
	latencies map[string][]time.Duration
}

// NewTracker starts a tracker for h's policy from a tally (zero for a fresh
// watch, or one carried in a heartbeat).
func NewTracker(h spec.Health, t Tally) *Tracker {
	return &Tracker{h: h, Tally: t, latencies: map[string][]time.Duration{}}
}

// Enough reports whether minSamples rounds have counted.
func (t *Tracker) Enough() bool { return t.Tally.Samples >= t.h.MinSamples }

// Observe applies baselines to the round (adding a degraded result for each
// one exceeded), counts it, and decides.
func (t *Tracker) Observe(r *Round) Decision {
	t.baselines(r)
	t.Tally.Rounds++
	failing := false
	pause := false
	switch r.Verdict {
	case Healthy:
		t.Tally.Healthy++
		t.Tally.Samples++
	case Degraded:
		t.Tally.Degraded++
		switch t.h.OnDegraded {
		case spec.DegradedFail:
			failing = true
		case spec.DegradedPause:
			pause = true
			t.Tally.Samples++
		default:
			t.Tally.Samples++
		}
	case NoData:
		t.Tally.NoData++
		switch {
		case t.h.OnNoData == spec.NoDataHold || (t.h.OnNoData == spec.NoDataPass && r.Unobserved):
			// Neither a sample nor a failure; the streak stands. Not even
			// "pass" makes a round that found no instance a sample.
			return Continue
		case t.h.OnNoData == spec.NoDataPass:
			t.Tally.Samples++
		default:
			failing = true
		}
	default:
		t.Tally.Failed++
		failing = true
	}
	if !failing {
		t.Tally.Streak = 0
		if pause {
			return Pause
		}
		return Continue
	}
	t.Tally.Streak++
	t.Tally.Failing++
	if t.Tally.Streak >= t.h.FailureThreshold {
		return Fail
	}
	return Continue
}

func (t *Tracker) baselines(r *Round) {
	for _, b := range t.h.Baselines {
		window := t.latencies[b.Check]
		for _, res := range r.Results {
			if res.Check == b.Check && res.Code != 0 {
				window = append(window, res.Latency)
			}
		}
		if len(window) > b.Window {
			window = window[len(window)-b.Window:]
		}
		t.latencies[b.Check] = window
		if len(window) == 0 {
			continue
		}
		p := Percentile(window, b.Percentile)
		if p <= b.Max.D() {
			continue
		}
		r.Results = append(r.Results, Result{
			Check: "baseline:" + b.Check, Verdict: Degraded, Latency: p,
			Error: fmt.Sprintf("p%g latency %s over baseline %s (last %d results)", b.Percentile, p.Round(time.Millisecond), b.Max.D(), len(window)),
		})
		r.Verdict = Worse(r.Verdict, Degraded)
	}
}

// Percentile returns the nearest-rank p-th percentile of ds.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[min(max(rank, 1), len(s))-1]
}
