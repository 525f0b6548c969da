package health

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stagecraft/stagecraft/internal/egress"
	"github.com/stagecraft/stagecraft/internal/secrets"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// maxBody bounds how much of a response body a check reads.
const maxBody = 64 << 10

func (c *Checker) http(ctx context.Context, name string, h *spec.HTTPCheck, addr string) Result {
	raw := strings.ReplaceAll(h.URL, spec.AddressPlaceholder, addr)
	res := Result{Check: name, Target: RedactURL(raw), Verdict: Failed}
	u, err := url.Parse(raw)
	if err != nil {
		res.Error = "the URL does not parse" // err would print it, credentials included
		return res
	}
	// An instance check is one whose URL's host is the instance address
	// the platform gave: only that address skips the egress policy, and
	// only its answers may leave evidence (a body excerpt).
	instance := addr != "" && u.Host == addr
	if instance {
		ctx = egress.WithInstance(ctx, addr)
	}
	ctx, cancel := context.WithTimeout(ctx, h.Timeout.D())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		res.Error = "cannot build the request"
		return res
	}
	// References are resolved here, in the activity: their values go
	// into the request only, never into the result.
	for _, k := range slices.Sorted(maps.Keys(h.Headers)) {
		v, err := secrets.Value(c.Secrets, h.Headers[k])
		if err != nil {
			res.Error = fmt.Sprintf("header %s: %v", k, err)
			return res
		}
		if strings.EqualFold(k, "Host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	start := time.Now()
	resp, err := c.httpClient(h.FollowRedirects).Do(req)
	if err != nil {
		res.Error = urlError(err, raw)
		res.Latency = time.Since(start)
		return res
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	res.Latency = time.Since(start)
	res.Code = resp.StatusCode
	// Evidence only from the instance itself, never from a fixed target or
	// wherever a redirect led: a spec must not read the worker's network.
	keep := func() string {
		if instance && resp.Request != nil && resp.Request.URL.Host == addr {
			return excerpt(body)
		}
		return ""
	}
	if err != nil {
		res.Error = "reading body: " + err.Error()
		res.Excerpt = keep()
		return res
	}
	if problem := matchBody(h, resp.StatusCode, body); problem != "" {
		res.Error = problem
		res.Excerpt = keep()
		return res
	}
	res.Verdict = Healthy
	if h.MaxLatency > 0 && res.Latency > h.MaxLatency.D() {
		res.Verdict = Degraded
		res.Error = fmt.Sprintf("latency %s over maxLatency %s", res.Latency.Round(time.Millisecond), h.MaxLatency.D())
	}
	return res
}

// maxRedirects bounds the hops a check with followRedirects takes.
const maxRedirects = 10

// httpClient is the checker's client for one check: c.Client if set (its
// transport is then the caller's, egress policy included), else one
// dialing through the egress policy. Redirects are followed only when the
// check says so; each hop dials through the same policy.
func (c *Checker) httpClient(follow bool) *http.Client {
	var cl http.Client
	if c.Client != nil {
		cl = *c.Client
	} else {
		cl = http.Client{Transport: egress.Transport(c.Egress, false)}
	}
	cl.CheckRedirect = func(_ *http.Request, via []*http.Request) error {
		if !follow {
			return http.ErrUseLastResponse
		}
		if len(via) >= maxRedirects {
			return fmt.Errorf("stopped after %d redirects", maxRedirects)
		}
		return nil
	}
	return &cl
}

// urlError describes a client error for raw without raw's credentials
// (the client masks a password, not the user; a wrapped error may hold
// either).
func urlError(err error, raw string) string {
	var ue *url.Error
	msg := err.Error()
	if errors.As(err, &ue) {
		msg = fmt.Sprintf("%s %q: %v", ue.Op, RedactURL(ue.URL), ue.Err)
	}
	if u, perr := url.Parse(raw); perr == nil && u.User != nil {
		user := u.User.Username()
		pass, _ := u.User.Password()
		for _, s := range []string{u.User.String() + "@", user + ":***@", user + "@", pass} {
			if len(s) >= 4 {
				msg = strings.ReplaceAll(msg, s, "")
			}
		}
	}
	return msg
}

// RedactURL returns raw without its userinfo (user:password@), as every
// recorded target is kept: results, round problems, stage errors and the
// audit trail. A raw that does not parse is kept only up to its scheme.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		if i := strings.Index(raw, "://"); i >= 0 {
			return raw[:i+3] + "…"
		}
		return "…"
	}
	if u.User == nil {
		return raw
	}
	u.User = nil
	return u.String()
}

// matchBody returns what is wrong with a response, or "".
func matchBody(h *spec.HTTPCheck, code int, body []byte) string {
	if !h.ExpectStatus.Contains(code) {
		return fmt.Sprintf("status %d, want %s", code, h.ExpectStatus)
	}
	if h.BodyContains != "" && !bytes.Contains(body, []byte(h.BodyContains)) {
		return fmt.Sprintf("body does not contain %q", h.BodyContains)
	}
	if h.BodyRegex != "" {
		re, err := regexp.Compile(h.BodyRegex)
		if err != nil {
			return fmt.Sprintf("bodyRegex: %v", err)
		}
		if !re.Match(body) {
			return fmt.Sprintf("body does not match %q", h.BodyRegex)
		}
	}
	if len(h.JSON) == 0 {
		return ""
	}
	var doc any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return "body is not JSON: " + err.Error()
	}
	for _, m := range h.JSON {
		got, ok := lookup(doc, m.Path)
		if !ok {
			return fmt.Sprintf("JSON field %q is missing", m.Path)
		}
		if !jsonEqual(got, m.Equals) {
			return fmt.Sprintf("JSON field %q is %s, want %s", m.Path, jsonText(got), jsonText(m.Equals))
		}
	}
	return ""
}

// lookup follows a dotted path through objects and arrays.
func lookup(doc any, path string) (any, bool) {
	cur := doc
	for _, part := range strings.Split(path, ".") {
		switch v := cur.(type) {
		case map[string]any:
			next, ok := v[part]
			if !ok {
				return nil, false
			}
			cur = next
		case []any:
			i, err := strconv.Atoi(part)
			if err != nil || i < 0 || i >= len(v) {
				return nil, false
			}
			cur = v[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

// jsonEqual compares a decoded value with an expected one by their JSON
// forms, numbers by value, so 1 equals 1.0.
func jsonEqual(got, want any) bool {
	if gn, ok := got.(json.Number); ok {
		g, err := gn.Float64()
		if err != nil {
			return false
		}
		switch w := want.(type) {
		case float64:
			return g == w
		case int:
			return g == float64(w)
		case json.Number:
			wf, err := w.Float64()
			return err == nil && g == wf
		}
		return false
	}
	return jsonText(got) == jsonText(want)
}

func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
