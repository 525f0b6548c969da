// Package health runs a spec's health checks against instances and turns
// rounds of results into verdicts. One round is every check against every
// address it applies to; each result, and the round, is healthy, degraded,
// failed or no-data. A Tracker applies the spec's policy to rounds.
package health

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/stagecraft/stagecraft/internal/egress"
	"github.com/stagecraft/stagecraft/internal/secrets"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// Verdict is what a result or a round says about the service.
type Verdict string

// Verdicts, from best to worst.
const (
	Healthy  Verdict = "healthy"
	Degraded Verdict = "degraded"
	NoData   Verdict = "no-data"
	Failed   Verdict = "failed"
)

func (v Verdict) rank() int {
	switch v {
	case Healthy:
		return 0
	case Degraded:
		return 1
	case NoData:
		return 2
	}
	return 3
}

// Worse returns the worse of two verdicts.
func Worse(a, b Verdict) Verdict {
	if b.rank() > a.rank() {
		return b
	}
	return a
}

// Result is one check against one target.
type Result struct {
	Check   string        `json:"check"`
	Target  string        `json:"target,omitempty"`
	Verdict Verdict       `json:"verdict"`
	Latency time.Duration `json:"latency"`
	// Code is the HTTP status, for HTTP checks.
	Code int `json:"code,omitempty"`
	// Exit is the exit code, for command checks.
	Exit *int `json:"exit,omitempty"`
	// Value is the sample that decided a Prometheus check.
	Value *float64 `json:"value,omitempty"`
	// Error says why the result is not healthy.
	Error string `json:"error,omitempty"`
	// Excerpt is a bounded piece of the body or output.
	Excerpt string `json:"excerpt,omitempty"`
}

// Round is the outcome of one round of checks.
type Round struct {
	At      time.Time `json:"at"`
	Verdict Verdict   `json:"verdict"`
	Results []Result  `json:"results"`
	// Unobserved: the instances to check could not be found (none run, or
	// listing them failed). Such a round never counts as a sample, even
	// under onNoData: pass.
	Unobserved bool `json:"unobserved,omitempty"`
}

// Problem describes the round's worst result, or "" when it is healthy; a
// result with no data or a degraded one says so first.
func (r Round) Problem() string {
	var worst *Result
	for i := range r.Results {
		if r.Results[i].Verdict != Healthy && (worst == nil || r.Results[i].Verdict.rank() > worst.Verdict.rank()) {
			worst = &r.Results[i]
		}
	}
	if worst == nil {
		return ""
	}
	s := fmt.Sprintf("check %q", worst.Check)
	if worst.Verdict != Failed {
		s = string(worst.Verdict) + ": " + s
	}
	if worst.Target != "" {
		s += " on " + worst.Target
	}
	return s + ": " + worst.Error
}

// Bounded returns the round with at most n results, the worst first, so
// evidence kept in workflow history stays small.
func (r Round) Bounded(n int) Round {
	res := append([]Result(nil), r.Results...)
	sort.SliceStable(res, func(i, j int) bool { return res[i].Verdict.rank() > res[j].Verdict.rank() })
	if len(res) > n {
		res = res[:n]
	}
	r.Results = res
	return r
}

// Checker runs check rounds. The zero value runs HTTP and TCP checks and
// Prometheus queries, and refuses every command.
type Checker struct {
	// Client is used for HTTP checks and Prometheus queries; nil means a
	// client without keep-alives, so every round opens a fresh connection
	// like a new caller would, dialing through Egress. A Client given here
	// dials as its transport does: Egress does not apply to it.
	Client *http.Client
	// Egress is the policy for every destination but the instances
	// ({{.Address}}): fixed-target HTTP and TCP checks and Prometheus
	// servers. nil is egress's open mode: all but link-local and metadata.
	Egress *egress.Policy
	// Secrets resolves header references ({fromEnv}, {fromFile}) when a
	// check runs; nil means secrets.Local.
	Secrets secrets.Resolver
	// Commands lists the executables (absolute paths) command checks may run.
	Commands []string
}

type job struct {
	check spec.Check
	addr  string
	dep   bool
}

// Round runs every check against every address, and every dependency check,
// in parallel. A check holding {{.Address}} runs once per address; with no
// addresses it has no data. A dependency that is not healthy makes its
// result degraded.
func (c *Checker) Round(ctx context.Context, checks, dependencies []spec.Check, addresses []string) Round {
	var jobs []job
	add := func(ch spec.Check, dep bool) {
		if !ch.PerInstance() {
			jobs = append(jobs, job{check: ch, dep: dep})
			return
		}
		if len(addresses) == 0 {
			jobs = append(jobs, job{check: ch, dep: dep, addr: ""})
		}
		for _, a := range addresses {
			jobs = append(jobs, job{check: ch, addr: a, dep: dep})
		}
	}
	for _, ch := range checks {
		add(ch, false)
	}
	for _, ch := range dependencies {
		add(ch, true)
	}
	results := make([]Result, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = c.run(ctx, j)
		}()
	}
	wg.Wait()
	round := Round{At: time.Now(), Verdict: Healthy, Results: results}
	for i, r := range results {
		round.Verdict = Worse(round.Verdict, r.Verdict)
		if jobs[i].check.PerInstance() && jobs[i].addr == "" {
			round.Unobserved = true
		}
	}
	return round
}

func (c *Checker) run(ctx context.Context, j job) Result {
	start := time.Now()
	var res Result
	ch := j.check
	switch {
	case ch.PerInstance() && j.addr == "":
		res = Result{Check: ch.Name, Target: spec.AddressPlaceholder, Verdict: NoData, Error: "no instances to check"}
	case ch.HTTP != nil:
		res = c.http(ctx, ch.Name, ch.HTTP, j.addr)
	case ch.TCP != nil:
		res = c.tcp(ctx, ch.Name, ch.TCP, j.addr)
	case ch.Command != nil:
		res = c.command(ctx, ch.Name, ch.Command, j.addr)
	case ch.Prometheus != nil:
		res = c.prometheus(ctx, ch.Name, ch.Prometheus)
	default:
		res = Result{Check: ch.Name, Verdict: Failed, Error: "check has no kind"}
	}
	if res.Latency == 0 {
		res.Latency = time.Since(start)
	}
	if j.dep && res.Verdict != Healthy {
		res.Error = fmt.Sprintf("dependency %s: %s", res.Verdict, res.Error)
		res.Verdict = Degraded
	}
	return res
}

func (c *Checker) tcp(ctx context.Context, name string, t *spec.TCPCheck, addr string) Result {
	target := strings.ReplaceAll(t.Address, spec.AddressPlaceholder, addr)
	res := Result{Check: name, Target: target, Verdict: Failed}
	if addr != "" && t.Address == spec.AddressPlaceholder {
		ctx = egress.WithInstance(ctx, addr)
	}
	d := egress.Dialer{Policy: c.Egress, Timeout: t.Timeout.D()}
	ctx, cancel := context.WithTimeout(ctx, t.Timeout.D())
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	_ = conn.Close()
	res.Verdict = Healthy
	return res
}

// secretRE finds values that look like credentials: a value after a key
// naming one (JSON, form or header style), a bearer or basic token, and
// userinfo in a URL.
var secretRE = regexp.MustCompile(`(?i)((?:access_?token|refresh_?token|id_?token|token|secret|password|passwd|pwd|api_?key|apikey|authorization|credentials?|session|cookie|private_?key)["']?\s*[:=]\s*["']?)([^"'\s,;&}]+)|\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+|(://[^/\s:@]+:)[^/\s@]+@`)

// redact masks what secretRE finds with ***.
func redact(s string) string {
	return secretRE.ReplaceAllStringFunc(s, func(m string) string {
		sub := secretRE.FindStringSubmatch(m)
		switch {
		case sub[1] != "":
			return sub[1] + "***"
		case sub[3] != "":
			return sub[3] + " ***"
		default:
			return sub[4] + "***@"
		}
	})
}

// excerpt bounds evidence to spec.MaxOutputExcerpt bytes of valid UTF-8,
// with what looks like a credential masked.
func excerpt(b []byte) string {
	s := redact(strings.TrimSpace(string(b)))
	if len(s) > spec.MaxOutputExcerpt {
		n := spec.MaxOutputExcerpt
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s = s[:n] + "…"
	}
	return strings.ToValidUTF8(s, "�")
}
