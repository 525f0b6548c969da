package health

import (
	"strings"
	"testing"
	"time"

	"github.com/stagecraft/stagecraft/internal/spec"
)

func TestTracker(t *testing.T) {
	const (
		H = Healthy
		D = Degraded
		F = Failed
		N = NoData
	)
	policy := func(threshold, minSamples int, onNoData, onDegraded string) spec.Health {
		return spec.Health{FailureThreshold: threshold, MinSamples: minSamples, OnNoData: onNoData, OnDegraded: onDegraded}
	}
	def := policy(1, 1, spec.NoDataFail, spec.DegradedContinue)
	tests := []struct {
		name      string
		h         spec.Health
		rounds    []Verdict
		decisions string // one letter per round: c(ontinue) f(ail) p(ause)
		samples   int
		enough    bool
	}{
		{"defaults: one failure fails", def, []Verdict{H, F}, "cf", 1, true},
		{"defaults: no data fails", def, []Verdict{N}, "f", 0, false},
		{"defaults: degraded continues and counts", def, []Verdict{D, D}, "cc", 2, true},
		{"threshold 2: single failures pass", policy(2, 1, spec.NoDataFail, spec.DegradedContinue), []Verdict{H, F, H, F, H, F, H}, "ccccccc", 4, true},
		{"threshold 2: two in a row fail", policy(2, 1, spec.NoDataFail, spec.DegradedContinue), []Verdict{H, F, F}, "ccf", 1, true},
		{"threshold 3: no data counts toward the streak", policy(3, 1, spec.NoDataFail, spec.DegradedContinue), []Verdict{F, N, F}, "ccf", 0, false},
		{"minSamples 3: not enough after two", policy(1, 3, spec.NoDataFail, spec.DegradedContinue), []Verdict{H, H}, "cc", 2, false},
		{"minSamples 3: enough after three", policy(1, 3, spec.NoDataFail, spec.DegradedContinue), []Verdict{H, H, H}, "ccc", 3, true},
		{"hold: no data is neither", policy(1, 2, spec.NoDataHold, spec.DegradedContinue), []Verdict{N, N, H, N}, "cccc", 1, false},
		{"hold: streak stands across no data", policy(2, 1, spec.NoDataHold, spec.DegradedContinue), []Verdict{F, N, F}, "ccf", 0, false},
		{"pass: no data counts as a sample", policy(1, 2, spec.NoDataPass, spec.DegradedContinue), []Verdict{N, N}, "cc", 2, true},
		{"degraded pause", policy(1, 1, spec.NoDataFail, spec.DegradedPause), []Verdict{H, D, H}, "cpc", 3, true},
		{"degraded fail", policy(2, 1, spec.NoDataFail, spec.DegradedFail), []Verdict{D, H, D, D}, "cccf", 1, true},
		{"healthy resets the streak", policy(2, 1, spec.NoDataFail, spec.DegradedContinue), []Verdict{F, H, F, D, F}, "ccccc", 2, true},
	}
	letter := map[Decision]string{Continue: "c", Fail: "f", Pause: "p"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := NewTracker(tt.h, Tally{})
			var got strings.Builder
			for _, v := range tt.rounds {
				r := Round{Verdict: v}
				got.WriteString(letter[tr.Observe(&r)])
			}
			if got.String() != tt.decisions {
				t.Errorf("decisions = %s, want %s", got.String(), tt.decisions)
			}
			if tr.Tally.Samples != tt.samples || tr.Enough() != tt.enough {
				t.Errorf("samples = %d, enough = %v; want %d, %v", tr.Tally.Samples, tr.Enough(), tt.samples, tt.enough)
			}
			if tr.Tally.Rounds != len(tt.rounds) {
				t.Errorf("rounds = %d, want %d", tr.Tally.Rounds, len(tt.rounds))
			}
			c := tr.Tally.Counts
			if c.Healthy+c.Degraded+c.Failed+c.NoData != len(tt.rounds) {
				t.Errorf("counts %+v do not add up to %d rounds", c, len(tt.rounds))
			}
		})
	}
	t.Run("pass never counts a round that found no instance", func(t *testing.T) {
		tr := NewTracker(policy(1, 1, spec.NoDataPass, spec.DegradedContinue), Tally{})
		r := Round{Verdict: N, Unobserved: true}
		if d := tr.Observe(&r); d != Continue || tr.Tally.Samples != 0 || tr.Tally.NoData != 1 {
			t.Errorf("decision %s, tally %+v; want continue with no sample", d, tr.Tally)
		}
	})
	t.Run("a tally carried in a heartbeat goes on", func(t *testing.T) {
		tr := NewTracker(policy(2, 1, spec.NoDataFail, spec.DegradedContinue), Tally{Rounds: 5, Samples: 4, Streak: 1})
		r := Round{Verdict: F}
		if d := tr.Observe(&r); d != Fail {
			t.Errorf("decision = %s, want fail: the carried streak counts", d)
		}
	})
}

func TestBaseline(t *testing.T) {
	h := spec.Health{FailureThreshold: 1, MinSamples: 1, OnNoData: spec.NoDataFail, OnDegraded: spec.DegradedContinue,
		Baselines: []spec.Baseline{{Check: "api", Percentile: 90, Max: spec.Duration(100 * time.Millisecond), Window: 10}}}
	tr := NewTracker(h, Tally{})
	round := func(ms ...int) Round {
		r := Round{Verdict: Healthy}
		for _, m := range ms {
			r.Results = append(r.Results, Result{Check: "api", Verdict: Healthy, Code: 200, Latency: time.Duration(m) * time.Millisecond})
		}
		r.Results = append(r.Results, Result{Check: "other", Verdict: Healthy, Code: 200, Latency: time.Second})
		return r
	}
	steps := []struct {
		latencies []int
		verdict   Verdict
	}{
		{[]int{20, 30, 40, 50, 60, 70, 80, 90, 95}, Healthy},
		{[]int{300}, Healthy},                                    // p90 of 10 results is the 9th: 95ms
		{[]int{300}, Degraded},                                   // the window drops 20ms; its p90 is now 300ms
		{[]int{10, 10, 10, 10, 10, 10, 10, 10, 10, 10}, Healthy}, // the window slides
	}
	for i, s := range steps {
		r := round(s.latencies...)
		tr.Observe(&r)
		if r.Verdict != s.verdict {
			t.Fatalf("step %d: verdict = %s, want %s (%s)", i, r.Verdict, s.verdict, r.Problem())
		}
		if s.verdict == Degraded && !strings.Contains(r.Problem(), "p90 latency 300ms over baseline 100ms") {
			t.Errorf("step %d: problem = %q", i, r.Problem())
		}
	}
}

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var d []time.Duration
		for _, x := range v {
			d = append(d, time.Duration(x)*time.Millisecond)
		}
		return d
	}
	tests := []struct {
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{nil, 95, 0},
		{ms(5), 95, 5 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 50, 5 * time.Millisecond},
		{ms(10, 9, 8, 7, 6, 5, 4, 3, 2, 1), 95, 10 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 100, 10 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := Percentile(tt.in, tt.p); got != tt.want {
			t.Errorf("Percentile(%v, %g) = %v, want %v", tt.in, tt.p, got, tt.want)
		}
	}
}
