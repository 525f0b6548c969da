package health

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/stagecraft/stagecraft/internal/spec"
)

// maxBody bounds how much of a response body a check reads.
const maxBody = 64 << 10

func (c *Checker) http(ctx context.Context, name string, h *spec.HTTPCheck, addr string) Result {
	url := strings.ReplaceAll(h.URL, spec.AddressPlaceholder, addr)
	res := Result{Check: name, Target: url, Verdict: Failed}
	ctx, cancel := context.WithTimeout(ctx, h.Timeout.D())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	for k, v := range h.Headers {
		if strings.EqualFold(k, "Host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	start := time.Now()
	resp, err := c.client().Do(req)
	if err != nil {
		res.Error = err.Error()
		res.Latency = time.Since(start)
		return res
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	res.Latency = time.Since(start)
	res.Code = resp.StatusCode
	if err != nil {
		res.Error = "reading body: " + err.Error()
		res.Excerpt = excerpt(body)
		return res
	}
	if problem := matchBody(h, resp.StatusCode, body); problem != "" {
		res.Error = problem
		res.Excerpt = excerpt(body)
		return res
	}
	res.Verdict = Healthy
	if h.MaxLatency > 0 && res.Latency > h.MaxLatency.D() {
		res.Verdict = Degraded
		res.Error = fmt.Sprintf("latency %s over maxLatency %s", res.Latency.Round(time.Millisecond), h.MaxLatency.D())
	}
	return res
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
