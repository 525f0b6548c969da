package spec

import (
	"encoding/json"
	"fmt"
	"math"
	"time"
	"unicode"
	"unicode/utf8"
)

// Upper bounds on what a spec or a release may ask for, in one place.
//
// Durations: every duration the workflows turn into a timer or an activity
// timeout is bounded far below time.Duration's 292 years, so no sum or
// product they make of them (a timeout plus a grace, four progress
// deadlines, every gate's window and bake in turn) can overflow.
//
// Lengths: every value that becomes a Temporal search attribute (service,
// image, environment, execution ID: see workflows/search.go), a memo field
// or a name shown in lists is bounded well under the server's 2 KiB per
// value (frontend.searchAttributesSizeOfValueLimit). Everything else a
// spec carries (env, label, header and config values, command arguments,
// queries) is only given a generous bound, so a CA bundle or a JSON blob
// fits: what keeps a spec a small payload is the bound on the whole
// encoded spec (MaxSpecBytes), which goes into many activity inputs, and
// on the whole encoded release (MaxReleaseBytes), the release workflow's
// input, which carries its services' specs.
const (
	// MaxTimeout bounds a rollout's timeout, and with it an approval
	// window, a bake, blue's keep time and the rollback's verify window.
	MaxTimeout = 30 * 24 * time.Hour
	// MaxReleaseTimeout bounds a release's timeout and its stages'.
	MaxReleaseTimeout = 30 * 24 * time.Hour
	// MaxHealthInterval bounds the time between check rounds (and between
	// a release's integration attempts).
	MaxHealthInterval = time.Hour
	// MinHealthInterval is the shortest time between check rounds.
	MinHealthInterval = 100 * time.Millisecond
	// MaxCheckTimeout bounds one check's timeout, a latency limit and a
	// baseline's maximum.
	MaxCheckTimeout = 5 * time.Minute
	// MaxProgressDeadline bounds how long a Kubernetes stage waits for
	// its pods (a converge may wait four times that).
	MaxProgressDeadline = 6 * time.Hour
	// MaxRounds bounds health.failureThreshold and health.minSamples.
	MaxRounds = 1000

	// MaxImageLength bounds an image reference, in bytes.
	MaxImageLength = 512
	// MaxExecutionIDLength bounds a caller's execution ID, in bytes.
	MaxExecutionIDLength = 200
	// MaxNameLength bounds a name a spec gives (a check, a notification
	// target, a network), in bytes.
	MaxNameLength = 128
	// MaxURLLength bounds a check's or a notification's URL, in bytes.
	MaxURLLength = 2048
	// MaxPathLength bounds a file path (a kubeconfig, a secret's file)
	// and a kubeconfig context's name, in bytes (PATH_MAX).
	MaxPathLength = 4096
	// MaxValueLength bounds one value a spec carries: an environment,
	// label, header or config value, a command argument, a query, a body
	// condition, in bytes.
	MaxValueLength = 64 << 10
	// MaxEntries bounds each map and list a spec gives: env, secretEnv,
	// labels, command arguments, headers, JSON conditions, config.
	MaxEntries = 1000
	// MaxChecks bounds health.checks, health.dependencies, health.baselines,
	// a release's integration checks and readiness criteria.
	MaxChecks = 50
	// MaxNotifications bounds the notification targets of a spec or release.
	MaxNotifications = 20
	// MaxServices bounds a release's services.
	MaxServices = 100

	// MaxSpecBytes bounds a spec as it is encoded (JSON, defaults
	// applied): it is the input of the rollout and of many of its
	// activities, each recorded in the history.
	MaxSpecBytes = 256 << 10
	// MaxReleaseBytes bounds a release as it is encoded (JSON, defaults
	// applied, so with its services' specs and their configuration): it
	// is the release workflow's input, and the configuration it writes is
	// one activity's input. Half Temporal's 2 MiB payload limit.
	MaxReleaseBytes = 1 << 20
)

// SatAdd is a + b, held at math.MaxInt64 (or MinInt64) rather than
// wrapping around. Every sum or product of spec durations that becomes a
// timer or an activity timeout goes through SatAdd and SatMul: a wrapped,
// negative one is refused by Temporal ("A valid timeout may not be
// negative") after the target has already changed, and the workflow must
// hold whatever reaches it (a run under older rules, an unvalidated client).
func SatAdd(a, b time.Duration) time.Duration {
	s := a + b
	switch {
	case a > 0 && b > 0 && s < 0:
		return math.MaxInt64
	case a < 0 && b < 0 && s >= 0:
		return math.MinInt64
	}
	return s
}

// SatMul is d × n for n ≥ 0, held at math.MaxInt64 rather than wrapping
// around; a negative d counts as 0.
func SatMul(d time.Duration, n int) time.Duration {
	if d <= 0 || n <= 0 {
		return 0
	}
	if d > math.MaxInt64/time.Duration(n) {
		return math.MaxInt64
	}
	return d * time.Duration(n)
}

// durationAtMost reports, through add, a negative duration or one above max.
func durationAtMost(add func(string, string, ...any), field string, d Duration, max time.Duration, what string) {
	switch {
	case d < 0:
		add(field, "must not be negative")
	case d.D() > max:
		add(field, "%s is more than %s, the most %s may be", d.D(), humanDuration(max), what)
	}
}

// textAtMost reports, through add, a text longer than max bytes, or one
// holding a control character or invalid UTF-8 when printable is set. It
// never prints the text: it may be long, or a credential.
func textAtMost(add func(string, string, ...any), field, s string, max int, printable bool) {
	if len(s) > max {
		add(field, "is %d bytes long, more than the %d allowed", len(s), max)
		return
	}
	if printable && !isPrintable(s) {
		add(field, "must be printable UTF-8 text, without control characters")
	}
}

// encodedAtMost reports, through add, v encoded as JSON (as Temporal's
// data converter encodes a workflow's or an activity's input) in more
// than max bytes; field names it ("spec", "release").
func encodedAtMost(add func(string, string, ...any), field string, v any, max int, why string) {
	b, err := json.Marshal(v)
	if err != nil {
		return // a NaN or an infinity, which its own field reports
	}
	if len(b) > max {
		add(field, "encodes to %d bytes, more than the %d bytes (%s) allowed: %s", len(b), max, humanBytes(max), why)
	}
}

// humanBytes writes a whole number of KiB or MiB as such: "256 KiB".
func humanBytes(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// entriesAtMost reports, through add, a map or list of more than max entries.
func entriesAtMost(add func(string, string, ...any), field string, n, max int) {
	if n > max {
		add(field, "has %d entries, more than the %d allowed", n, max)
	}
}

func isPrintable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// humanDuration writes a duration of whole days as days too: "720h0m0s (30 days)".
func humanDuration(d time.Duration) string {
	if d >= 24*time.Hour && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%s (%d days)", d, d/(24*time.Hour))
	}
	return d.String()
}
