// Package health runs a spec's health checks against instances: one round is
// every check against every address it applies to.
package health

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/stagecraft/stagecraft/internal/spec"
)

// maxExcerpt bounds the evidence kept from a response body.
const maxExcerpt = 256

// Result is one check against one address.
type Result struct {
	Check   string        `json:"check"`
	Target  string        `json:"target"`
	OK      bool          `json:"ok"`
	Latency time.Duration `json:"latency"`
	Code    int           `json:"code,omitempty"`
	Error   string        `json:"error,omitempty"`
}

// Round is the outcome of one round of checks.
type Round struct {
	At      time.Time `json:"at"`
	OK      bool      `json:"ok"`
	Results []Result  `json:"results"`
}

// FirstFailure describes the first failed result, or "".
func (r Round) FirstFailure() string {
	for _, res := range r.Results {
		if !res.OK {
			return fmt.Sprintf("check %q on %s: %s", res.Check, res.Target, res.Error)
		}
	}
	return ""
}

// Checker runs check rounds. The zero value is ready to use.
type Checker struct {
	// Client is used for HTTP checks; nil means a client without keep-alives,
	// so every round opens a fresh connection like a new caller would.
	Client *http.Client
}

// Round runs every check against every address in parallel. A check whose URL
// or address holds {{.Address}} runs once per address; with no addresses it
// fails, because no data is never healthy.
func (c *Checker) Round(ctx context.Context, checks []spec.Check, addresses []string) Round {
	type job struct {
		check spec.Check
		addr  string
	}
	var jobs []job
	for _, ch := range checks {
		if usesAddress(ch) {
			if len(addresses) == 0 {
				jobs = append(jobs, job{check: ch})
			}
			for _, a := range addresses {
				jobs = append(jobs, job{check: ch, addr: a})
			}
		} else {
			jobs = append(jobs, job{check: ch})
		}
	}
	results := make([]Result, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = c.run(ctx, j.check, j.addr)
		}()
	}
	wg.Wait()
	round := Round{At: time.Now(), OK: true, Results: results}
	for _, r := range results {
		round.OK = round.OK && r.OK
	}
	return round
}

func usesAddress(ch spec.Check) bool {
	return (ch.HTTP != nil && strings.Contains(ch.HTTP.URL, spec.AddressPlaceholder)) ||
		(ch.TCP != nil && strings.Contains(ch.TCP.Address, spec.AddressPlaceholder))
}

func (c *Checker) run(ctx context.Context, ch spec.Check, addr string) Result {
	start := time.Now()
	var res Result
	switch {
	case usesAddress(ch) && addr == "":
		res = Result{Check: ch.Name, Target: spec.AddressPlaceholder, Error: "no instances to check"}
	case ch.HTTP != nil:
		res = c.http(ctx, ch.Name, ch.HTTP, addr)
	case ch.TCP != nil:
		res = tcp(ctx, ch.Name, ch.TCP, addr)
	default:
		res = Result{Check: ch.Name, Error: "check has no kind"}
	}
	res.Latency = time.Since(start)
	return res
}

func (c *Checker) http(ctx context.Context, name string, h *spec.HTTPCheck, addr string) Result {
	url := strings.ReplaceAll(h.URL, spec.AddressPlaceholder, addr)
	res := Result{Check: name, Target: url}
	ctx, cancel := context.WithTimeout(ctx, h.Timeout.D())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	client := c.Client
	if client == nil {
		client = &http.Client{Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}
	}
	resp, err := client.Do(req)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	res.Code = resp.StatusCode
	switch {
	case resp.StatusCode != h.ExpectStatus:
		res.Error = fmt.Sprintf("status %d, want %d: %s", resp.StatusCode, h.ExpectStatus, excerpt(body))
	case h.BodyContains != "" && !strings.Contains(string(body), h.BodyContains):
		res.Error = fmt.Sprintf("body does not contain %q: %s", h.BodyContains, excerpt(body))
	default:
		res.OK = true
	}
	return res
}

func tcp(ctx context.Context, name string, t *spec.TCPCheck, addr string) Result {
	target := strings.ReplaceAll(t.Address, spec.AddressPlaceholder, addr)
	res := Result{Check: name, Target: target}
	d := net.Dialer{Timeout: t.Timeout.D()}
	conn, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	_ = conn.Close()
	res.OK = true
	return res
}

func excerpt(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > maxExcerpt {
		// Cut on a rune boundary so the evidence stays valid UTF-8.
		n := maxExcerpt
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s = s[:n] + "…"
	}
	return s
}
