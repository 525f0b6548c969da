package itest

import (
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// BenchEnvInt reads a benchmark's sample count from the environment
// variable name, def when unset.
func BenchEnvInt(tb testing.TB, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		tb.Fatalf("%s: want a count, got %q", name, v)
	}
	return n
}

// Median is the middle sample (the mean of the two middle ones for an
// even count).
func Median(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// P99 is the nearest-rank 99th percentile.
func P99(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	return s[max(int(math.Ceil(0.99*float64(len(s))))-1, 0)]
}

// BenchReport reports a figure's median, p99 and sample count as
// b.ReportMetric's "<figure>.med.<unit>", "<figure>.p99.<unit>" and
// "<figure>.n" (what scripts/bench.sh's table reads), and logs the samples.
func BenchReport(b *testing.B, figure, unit string, v []float64) {
	b.Helper()
	b.ReportMetric(0, "ns/op") // the wall time of the whole benchmark says nothing
	if len(v) == 0 {
		b.Errorf("%s: no samples", figure)
		return
	}
	b.ReportMetric(Median(v), figure+".med."+unit)
	b.ReportMetric(P99(v), figure+".p99."+unit)
	b.ReportMetric(float64(len(v)), figure+".n")
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = strconv.FormatFloat(x, 'f', 3, 64)
	}
	b.Logf("%s (%s, n=%d): median %.3f, p99 %.3f; samples %s", figure, unit, len(v),
		Median(v), P99(v), strings.Join(parts, " "))
}
