package spec

import (
	"encoding/json"
	"fmt"
	"math"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Health policies: what a round that gave no data, or a degraded one, does.
const (
	NoDataFail = "fail" // a no-data round counts as a failed round (default)
	NoDataHold = "hold" // it counts neither way: the stage waits for data
	NoDataPass = "pass" // it counts as a passing sample (explicit opt-in)

	DegradedContinue = "continue" // a degraded round passes, with its evidence (default)
	DegradedPause    = "pause"    // the rollout pauses itself and keeps checking
	DegradedFail     = "fail"     // a degraded round counts as a failed round

	EmptyNoData = "no-data" // an empty Prometheus result is no data (default)
	EmptyFail   = "fail"
	EmptyPass   = "pass"
)

// Health defaults.
const (
	DefaultFailureThreshold = 1
	DefaultMinSamples       = 1
	DefaultPercentile       = 95
	DefaultBaselineWindow   = 20
	// MaxOutputExcerpt bounds the evidence kept from a body or a command's output.
	MaxOutputExcerpt = 256
)

// Health configures validation: the checks every round runs and the policy
// that turns rounds into a stage's verdict.
type Health struct {
	// Interval between check rounds.
	Interval Duration `json:"interval,omitempty"`
	// Timeout is the default per-check timeout.
	Timeout Duration `json:"timeout,omitempty"`
	// FailureThreshold is how many failed rounds in a row fail a stage.
	FailureThreshold int `json:"failureThreshold,omitempty"`
	// MinSamples is how many passing rounds a stage needs before it may
	// pass; a stage whose bake ends short of them keeps watching.
	MinSamples int `json:"minSamples,omitempty"`
	// OnNoData is fail, hold or pass; see NoData*.
	OnNoData string `json:"onNoData,omitempty"`
	// OnDegraded is continue, pause or fail; see Degraded*.
	OnDegraded string `json:"onDegraded,omitempty"`
	// VerifyWindow is how long a rollback's restored version is watched,
	// once it first answers healthy, before the rollback counts as
	// verified. Zero means: until MinSamples rounds passed.
	VerifyWindow Duration `json:"verifyWindow,omitempty"`
	// Checks run every round; a failing one fails the round.
	Checks []Check `json:"checks,omitempty"`
	// Dependencies are checks on what the service depends on: a failing
	// one makes the round degraded, not failed.
	Dependencies []Check `json:"dependencies,omitempty"`
	// Baselines compare a check's latency percentile with a baseline: over
	// it, the round is degraded.
	Baselines []Baseline `json:"baselines,omitempty"`
}

// Check is one health check; exactly one kind is set.
type Check struct {
	Name       string           `json:"name"`
	HTTP       *HTTPCheck       `json:"http,omitempty"`
	TCP        *TCPCheck        `json:"tcp,omitempty"`
	Command    *CommandCheck    `json:"command,omitempty"`
	Prometheus *PrometheusCheck `json:"prometheus,omitempty"`
	// SkipVerify leaves the check out of rollback verification, for checks
	// only the new version can pass (a query on its own version label).
	SkipVerify bool `json:"skipVerify,omitempty"`
}

// Kind names the check's kind.
func (c Check) Kind() string {
	switch {
	case c.HTTP != nil:
		return "http"
	case c.TCP != nil:
		return "tcp"
	case c.Command != nil:
		return "command"
	case c.Prometheus != nil:
		return "prometheus"
	}
	return ""
}

// PerInstance says whether the check runs once per instance address.
func (c Check) PerInstance() bool {
	switch {
	case c.HTTP != nil:
		return strings.Contains(c.HTTP.URL, AddressPlaceholder)
	case c.TCP != nil:
		return strings.Contains(c.TCP.Address, AddressPlaceholder)
	case c.Command != nil:
		for _, a := range c.Command.Argv {
			if strings.Contains(a, AddressPlaceholder) {
				return true
			}
		}
	}
	return false
}

// HTTPCheck passes when a GET answers with an expected status, and the body
// matches every condition given. Slower than MaxLatency, it is degraded.
type HTTPCheck struct {
	// URL may contain {{.Address}}: the check then runs against every instance
	// being validated.
	URL string `json:"url"`
	// Headers are request headers; a value is a string or a reference the
	// worker resolves when the check runs ({fromEnv: VAR}, {fromFile:
	// /path}), so credentials need not be in the spec.
	Headers map[string]SecretValue `json:"headers,omitempty"`
	// ExpectStatus is a status, a class ("2xx") or a list of them.
	ExpectStatus StatusSet   `json:"expectStatus,omitempty"`
	BodyContains string      `json:"bodyContains,omitempty"`
	BodyRegex    string      `json:"bodyRegex,omitempty"`
	JSON         []JSONMatch `json:"json,omitempty"`
	MaxLatency   Duration    `json:"maxLatency,omitempty"`
	Timeout      Duration    `json:"timeout,omitempty"`
	// FollowRedirects follows up to 10 redirects, each hop dialed within
	// the worker's egress policy; without it a redirect is the answer
	// (its status is matched against expectStatus).
	FollowRedirects bool `json:"followRedirects,omitempty"`
}

// JSONMatch requires the JSON body's field at Path (dotted, with array
// indexes: "checks.0.status") to equal Equals.
type JSONMatch struct {
	Path   string `json:"path"`
	Equals any    `json:"equals"`
}

// TCPCheck passes when a TCP connection opens within the timeout.
type TCPCheck struct {
	// Address is host:port or {{.Address}}.
	Address string   `json:"address"`
	Timeout Duration `json:"timeout,omitempty"`
}

// CommandCheck runs an executable on the worker host (no shell) and passes
// on the expected exit code and output. Workers run only executables on
// their allowlist.
type CommandCheck struct {
	// Argv[0] is an absolute path; any argument may hold {{.Address}}.
	Argv           []string `json:"argv"`
	ExpectExit     int      `json:"expectExit,omitempty"`
	OutputContains string   `json:"outputContains,omitempty"`
	Timeout        Duration `json:"timeout,omitempty"`
}

// PrometheusCheck runs an instant PromQL query and passes when every sample
// satisfies "value Op Threshold" (for example an error rate "<" 0.05).
type PrometheusCheck struct {
	// URL is the Prometheus server's base URL.
	URL       string  `json:"url"`
	Query     string  `json:"query"`
	Op        string  `json:"op"`
	Threshold float64 `json:"threshold"`
	// OnEmpty says what an empty result is: no-data (default), fail or pass.
	OnEmpty string   `json:"onEmpty,omitempty"`
	Timeout Duration `json:"timeout,omitempty"`
}

// Compare reports whether v Op threshold holds.
func (p PrometheusCheck) Compare(v float64) bool {
	switch p.Op {
	case "<":
		return v < p.Threshold
	case "<=":
		return v <= p.Threshold
	case ">":
		return v > p.Threshold
	case ">=":
		return v >= p.Threshold
	case "==":
		return v == p.Threshold
	case "!=":
		return v != p.Threshold
	}
	return false
}

var promOps = []string{"<", "<=", ">", ">=", "==", "!="}

// Baseline degrades a round when the Percentile of the named HTTP check's
// latencies over the last Window results exceeds Max.
type Baseline struct {
	Check      string   `json:"check"`
	Percentile float64  `json:"percentile,omitempty"`
	Max        Duration `json:"max"`
	Window     int      `json:"window,omitempty"`
}

// StatusSet is a set of HTTP statuses: exact codes and classes ("2xx").
// It is written as one value or a list: 200, "2xx", [200, 204].
type StatusSet []string

// Contains reports whether code is in the set.
func (s StatusSet) Contains(code int) bool {
	c := strconv.Itoa(code)
	for _, e := range s {
		if e == c || (len(e) == 3 && strings.HasSuffix(e, "xx") && e[0] == c[0]) {
			return true
		}
	}
	return false
}

// String lists the set.
func (s StatusSet) String() string { return strings.Join(s, ",") }

// UnmarshalJSON accepts a number, a string or a list of them.
func (s *StatusSet) UnmarshalJSON(b []byte) error {
	var list []json.RawMessage
	if err := json.Unmarshal(b, &list); err != nil {
		list = []json.RawMessage{b}
	}
	out := StatusSet{}
	for _, raw := range list {
		var n json.Number
		var str string
		switch {
		case json.Unmarshal(raw, &n) == nil:
			out = append(out, n.String())
		case json.Unmarshal(raw, &str) == nil:
			out = append(out, strings.ToLower(str))
		default:
			return fmt.Errorf("expectStatus: %s is not a status or a class like \"2xx\"", raw)
		}
	}
	*s = out
	return nil
}

// MarshalJSON writes exact codes as numbers and classes as strings.
func (s StatusSet) MarshalJSON() ([]byte, error) {
	out := make([]any, len(s))
	for i, e := range s {
		if n, err := strconv.Atoi(e); err == nil {
			out[i] = n
		} else {
			out[i] = e
		}
	}
	return json.Marshal(out)
}

var statusRE = regexp.MustCompile(`^([1-5][0-9][0-9]|[1-5]xx)$`)

func (h Health) withDefaults() Health {
	if h.Interval == 0 {
		h.Interval = Duration(DefaultHealthInterval)
	}
	if h.Timeout == 0 {
		h.Timeout = Duration(DefaultCheckTimeout)
	}
	if h.FailureThreshold == 0 {
		h.FailureThreshold = DefaultFailureThreshold
	}
	if h.MinSamples == 0 {
		h.MinSamples = DefaultMinSamples
	}
	if h.OnNoData == "" {
		h.OnNoData = NoDataFail
	}
	if h.OnDegraded == "" {
		h.OnDegraded = DegradedContinue
	}
	h.Checks = checksWithDefaults(h.Checks, h.Timeout)
	h.Dependencies = checksWithDefaults(h.Dependencies, h.Timeout)
	if len(h.Baselines) > 0 {
		bs := make([]Baseline, len(h.Baselines))
		for i, b := range h.Baselines {
			if b.Percentile == 0 {
				b.Percentile = DefaultPercentile
			}
			if b.Window == 0 {
				b.Window = DefaultBaselineWindow
			}
			bs[i] = b
		}
		h.Baselines = bs
	}
	return h
}

func checksWithDefaults(in []Check, timeout Duration) []Check {
	if len(in) == 0 {
		return in
	}
	out := make([]Check, len(in))
	for i, c := range in {
		switch {
		case c.HTTP != nil:
			h := *c.HTTP
			if len(h.ExpectStatus) == 0 {
				h.ExpectStatus = StatusSet{strconv.Itoa(DefaultHTTPExpectStatus)}
			}
			orDefault(&h.Timeout, timeout)
			c.HTTP = &h
		case c.TCP != nil:
			t := *c.TCP
			orDefault(&t.Timeout, timeout)
			c.TCP = &t
		case c.Command != nil:
			cmd := *c.Command
			orDefault(&cmd.Timeout, timeout)
			c.Command = &cmd
		case c.Prometheus != nil:
			p := *c.Prometheus
			orDefault(&p.Timeout, timeout)
			if p.OnEmpty == "" {
				p.OnEmpty = EmptyNoData
			}
			c.Prometheus = &p
		}
		out[i] = c
	}
	return out
}

// orDefault sets an unset duration.
func orDefault(d *Duration, def Duration) {
	if *d == 0 {
		*d = def
	}
}

func (h Health) validate(add func(field, format string, args ...any)) {
	if h.Interval < Duration(100*time.Millisecond) {
		add("health.interval", "must be at least 100ms")
	}
	positive(add, "health.timeout", h.Timeout)
	if h.FailureThreshold < 1 {
		add("health.failureThreshold", "must be at least 1, got %d", h.FailureThreshold)
	}
	if h.MinSamples < 1 {
		add("health.minSamples", "must be at least 1, got %d", h.MinSamples)
	}
	oneOf(add, "health.onNoData", h.OnNoData, NoDataFail, NoDataHold, NoDataPass)
	oneOf(add, "health.onDegraded", h.OnDegraded, DegradedContinue, DegradedPause, DegradedFail)
	if h.VerifyWindow < 0 {
		add("health.verifyWindow", "must not be negative")
	}
	seen := map[string]string{}
	for i, c := range h.Checks {
		validateCheck(add, fmt.Sprintf("health.checks[%d]", i), c, seen)
	}
	for i, c := range h.Dependencies {
		validateCheck(add, fmt.Sprintf("health.dependencies[%d]", i), c, seen)
	}
	for i, b := range h.Baselines {
		f := fmt.Sprintf("health.baselines[%d]", i)
		switch {
		case b.Check == "":
			add(f+".check", "is required")
		case seen[b.Check] != "http":
			add(f+".check", "%q must name an http check", b.Check)
		}
		if !(b.Percentile > 0 && b.Percentile <= 100) { // NaN too
			add(f+".percentile", "must be in (0, 100], got %g", b.Percentile)
		}
		positive(add, f+".max", b.Max)
		if b.Window < 1 || b.Window > 1000 {
			add(f+".window", "must be 1-1000 results, got %d", b.Window)
		}
	}
}

func validateCheck(add func(string, string, ...any), f string, c Check, seen map[string]string) {
	switch {
	case c.Name == "":
		add(f+".name", "is required")
	case seen[c.Name] != "":
		add(f+".name", "%q is used twice", c.Name)
	default:
		seen[c.Name] = c.Kind()
		if seen[c.Name] == "" {
			seen[c.Name] = "?"
		}
	}
	kinds := 0
	for _, set := range []bool{c.HTTP != nil, c.TCP != nil, c.Command != nil, c.Prometheus != nil} {
		if set {
			kinds++
		}
	}
	switch {
	case kinds == 0:
		add(f, "one of http, tcp, command or prometheus is required")
		return
	case kinds > 1:
		add(f, "only one of http, tcp, command or prometheus may be set")
		return
	}
	switch {
	case c.HTTP != nil:
		h := c.HTTP
		validateURL(add, f+".http.url", h.URL)
		if len(h.ExpectStatus) == 0 {
			add(f+".http.expectStatus", "must list at least one status")
		}
		for _, st := range h.ExpectStatus {
			if !statusRE.MatchString(st) {
				add(f+".http.expectStatus", "%q is not an HTTP status (100-599) or class (\"2xx\")", st)
			}
		}
		if h.BodyRegex != "" {
			if _, err := regexp.Compile(h.BodyRegex); err != nil {
				add(f+".http.bodyRegex", "does not compile: %v", err)
			}
		}
		for j, m := range h.JSON {
			if m.Path == "" {
				add(fmt.Sprintf("%s.http.json[%d].path", f, j), "is required")
			}
		}
		for _, k := range sortedKeys(h.Headers) { // in order: Validate is deterministic
			if k == "" || strings.ContainsAny(k, " :\r\n") {
				add(f+".http.headers", "%q is not a header name", k)
			}
		}
		validateHeaderRefs(add, f+".http.headers", h.Headers)
		if h.MaxLatency < 0 {
			add(f+".http.maxLatency", "must not be negative")
		}
		positive(add, f+".http.timeout", h.Timeout)
	case c.TCP != nil:
		if c.TCP.Address != AddressPlaceholder {
			if _, _, err := net.SplitHostPort(c.TCP.Address); err != nil {
				add(f+".tcp.address", "%q must be host:port or %s", c.TCP.Address, AddressPlaceholder)
			}
		}
		positive(add, f+".tcp.timeout", c.TCP.Timeout)
	case c.Command != nil:
		cmd := c.Command
		switch {
		case len(cmd.Argv) == 0:
			add(f+".command.argv", "is required")
		case !filepath.IsAbs(cmd.Argv[0]):
			add(f+".command.argv[0]", "%q must be an absolute path (commands run without a shell or PATH lookup)", cmd.Argv[0])
		}
		if cmd.ExpectExit < 0 || cmd.ExpectExit > 255 {
			add(f+".command.expectExit", "must be 0-255, got %d", cmd.ExpectExit)
		}
		positive(add, f+".command.timeout", cmd.Timeout)
	case c.Prometheus != nil:
		p := c.Prometheus
		validateURL(add, f+".prometheus.url", p.URL)
		if strings.TrimSpace(p.Query) == "" {
			add(f+".prometheus.query", "is required")
		}
		if math.IsNaN(p.Threshold) || math.IsInf(p.Threshold, 0) { // JSON cannot carry them
			add(f+".prometheus.threshold", "must be a finite number, got %g", p.Threshold)
		}
		oneOf(add, f+".prometheus.op", p.Op, promOps...)
		oneOf(add, f+".prometheus.onEmpty", p.OnEmpty, EmptyNoData, EmptyFail, EmptyPass)
		positive(add, f+".prometheus.timeout", p.Timeout)
	}
}

func oneOf(add func(string, string, ...any), field, v string, allowed ...string) {
	for _, a := range allowed {
		if v == a {
			return
		}
	}
	add(field, "%q is not one of %s", v, strings.Join(allowed, ", "))
}

// CommandNotAllowed lists, as field errors, every command check whose
// executable is not on the allowlist (absolute paths). An empty allowlist
// allows none.
func (h Health) CommandNotAllowed(allow []string) error {
	ok := map[string]bool{}
	for _, a := range allow {
		ok[filepath.Clean(a)] = true
	}
	var errs []FieldError
	check := func(prefix string, cs []Check) {
		for i, c := range cs {
			if c.Command == nil || len(c.Command.Argv) == 0 || ok[filepath.Clean(c.Command.Argv[0])] {
				continue
			}
			msg := fmt.Sprintf("%q is not on this worker's command allowlist", c.Command.Argv[0])
			if len(allow) == 0 {
				msg += " (command checks are off: start the worker with --allow-command)"
			} else {
				msg += " (" + strings.Join(allow, ", ") + ")"
			}
			errs = append(errs, FieldError{Field: fmt.Sprintf("health.%s[%d].command.argv[0]", prefix, i), Message: msg})
		}
	}
	check("checks", h.Checks)
	check("dependencies", h.Dependencies)
	if len(errs) > 0 {
		return &ValidationError{Problems: errs}
	}
	return nil
}
