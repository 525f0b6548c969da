package health

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stagecraft/stagecraft/internal/spec"
)

// server starts an httptest server (on 127.0.0.1) answering with status and
// body after delay, and returns its host:port.
func server(t *testing.T, status int, body string, delay time.Duration) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// closedAddr is a 127.0.0.1 address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// listener is a 127.0.0.1 TCP listener that accepts and closes connections.
func listener(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	return l.Addr().String()
}

func httpCheck(name, url string, edit func(*spec.HTTPCheck)) spec.Check {
	h := &spec.HTTPCheck{URL: url, ExpectStatus: spec.StatusSet{"200"}, Timeout: spec.Duration(2 * time.Second)}
	if edit != nil {
		edit(h)
	}
	return spec.Check{Name: name, HTTP: h}
}

func tcpCheck(name, addr string) spec.Check {
	return spec.Check{Name: name, TCP: &spec.TCPCheck{Address: addr, Timeout: spec.Duration(2 * time.Second)}}
}

// want is the expected outcome of one result.
type want struct {
	check   string
	target  string   // exact, or "" to skip
	ok      bool     // healthy
	verdict Verdict  // when not ok: "" means failed
	code    int      // 0 to skip
	errHas  []string // substrings of Error when !ok
	excerpt string   // substring of Excerpt, "" to skip
}

func TestRound(t *testing.T) {
	ok := server(t, 200, "all good", 0)
	okToo := server(t, 200, "fine too", 0)
	broken := server(t, 503, "database unreachable", 0)
	huge := server(t, 500, strings.Repeat("x", 10_000), 0)
	huge8 := server(t, 500, strings.Repeat("é", 5_000), 0)
	slow := server(t, 200, "late", 2*time.Second)
	noContent := server(t, 204, "", 0)
	tcpUp := listener(t)
	tcpDown := closedAddr(t)

	tests := []struct {
		name      string
		checks    []spec.Check
		addresses []string
		want      []want
		wantOK    bool
		verdict   Verdict // the round's, when not OK: "" means failed
		failOn    string  // check named by Problem, "" when OK
	}{
		{
			name:   "expected status passes",
			checks: []spec.Check{httpCheck("healthz", "http://"+ok+"/healthz", nil)},
			want:   []want{{check: "healthz", target: "http://" + ok + "/healthz", ok: true, code: 200}},
			wantOK: true,
		},
		{
			name:   "non-200 expected status passes",
			checks: []spec.Check{httpCheck("nc", "http://"+noContent+"/", func(h *spec.HTTPCheck) { h.ExpectStatus = spec.StatusSet{"204"} })},
			want:   []want{{check: "nc", ok: true, code: 204}},
			wantOK: true,
		},
		{
			name: "wrong status fails with status and body",
			// Excerpts come only from instances (review finding 6).
			checks:    []spec.Check{httpCheck("healthz", "http://{{.Address}}/healthz", nil)},
			addresses: []string{broken},
			want: []want{{check: "healthz", ok: false, code: 503,
				errHas: []string{"status 503, want 200"}, excerpt: "database unreachable"}},
			failOn: "healthz",
		},
		{
			name:      "wrong status excerpt is bounded",
			checks:    []spec.Check{httpCheck("big", "http://{{.Address}}/", nil)},
			addresses: []string{huge},
			want:      []want{{check: "big", ok: false, code: 500, errHas: []string{"status 500"}, excerpt: "…"}},
			failOn:    "big",
		},
		{
			name:      "multibyte excerpt is bounded",
			checks:    []spec.Check{httpCheck("big8", "http://{{.Address}}/", nil)},
			addresses: []string{huge8},
			want:      []want{{check: "big8", ok: false, code: 500, errHas: []string{"status 500"}, excerpt: "é…"}},
			failOn:    "big8",
		},
		{
			name: "body contains passes",
			checks: []spec.Check{httpCheck("body", "http://"+ok+"/", func(h *spec.HTTPCheck) {
				h.BodyContains = "good"
			})},
			want:   []want{{check: "body", ok: true, code: 200}},
			wantOK: true,
		},
		{
			name: "body contains fails",
			checks: []spec.Check{httpCheck("body", "http://{{.Address}}/", func(h *spec.HTTPCheck) {
				h.BodyContains = "ready"
			})},
			addresses: []string{ok},
			want:      []want{{check: "body", ok: false, code: 200, errHas: []string{`body does not contain "ready"`}, excerpt: "all good"}},
			failOn:    "body",
		},
		{
			name: "timeout fails",
			checks: []spec.Check{httpCheck("slow", "http://"+slow+"/", func(h *spec.HTTPCheck) {
				h.Timeout = spec.Duration(100 * time.Millisecond)
			})},
			want:   []want{{check: "slow", ok: false, errHas: []string{"deadline exceeded"}}},
			failOn: "slow",
		},
		{
			name:   "connection refused fails",
			checks: []spec.Check{httpCheck("down", "http://"+tcpDown+"/", nil)},
			want:   []want{{check: "down", ok: false, errHas: []string{"refused"}}},
			failOn: "down",
		},
		{
			name:      "address expands per instance",
			checks:    []spec.Check{httpCheck("healthz", "http://{{.Address}}/healthz", nil)},
			addresses: []string{ok, okToo},
			want: []want{
				{check: "healthz", target: "http://" + ok + "/healthz", ok: true, code: 200},
				{check: "healthz", target: "http://" + okToo + "/healthz", ok: true, code: 200},
			},
			wantOK: true,
		},
		{
			name:      "one bad instance fails the round",
			checks:    []spec.Check{httpCheck("healthz", "http://{{.Address}}/healthz", nil)},
			addresses: []string{ok, broken},
			want: []want{
				{check: "healthz", target: "http://" + ok + "/healthz", ok: true, code: 200},
				{check: "healthz", target: "http://" + broken + "/healthz", ok: false, code: 503},
			},
			failOn: "healthz",
		},
		{
			name:   "address without instances has no data",
			checks: []spec.Check{httpCheck("healthz", "http://{{.Address}}/healthz", nil)},
			want: []want{{check: "healthz", target: spec.AddressPlaceholder, ok: false, verdict: NoData,
				errHas: []string{"no instances"}}},
			verdict: NoData,
			failOn:  "healthz",
		},
		{
			name:    "tcp address without instances has no data",
			checks:  []spec.Check{tcpCheck("port", spec.AddressPlaceholder)},
			want:    []want{{check: "port", ok: false, verdict: NoData, errHas: []string{"no instances"}}},
			verdict: NoData,
			failOn:  "port",
		},
		{
			name:      "fixed check runs once whatever the addresses",
			checks:    []spec.Check{httpCheck("upstream", "http://"+ok+"/", nil)},
			addresses: []string{tcpDown, tcpDown, tcpDown},
			want:      []want{{check: "upstream", target: "http://" + ok + "/", ok: true}},
			wantOK:    true,
		},
		{
			name:   "tcp passes against a listener",
			checks: []spec.Check{tcpCheck("port", tcpUp)},
			want:   []want{{check: "port", target: tcpUp, ok: true}},
			wantOK: true,
		},
		{
			name:      "tcp address expands",
			checks:    []spec.Check{tcpCheck("port", spec.AddressPlaceholder)},
			addresses: []string{tcpUp},
			want:      []want{{check: "port", target: tcpUp, ok: true}},
			wantOK:    true,
		},
		{
			name:   "tcp fails against a closed port",
			checks: []spec.Check{tcpCheck("port", tcpDown)},
			want:   []want{{check: "port", target: tcpDown, ok: false, errHas: []string{"refused"}}},
			failOn: "port",
		},
		{
			name:   "check without kind fails",
			checks: []spec.Check{{Name: "empty"}},
			want:   []want{{check: "empty", ok: false, errHas: []string{"no kind"}}},
			failOn: "empty",
		},
		{
			name: "round is the AND of all results",
			checks: []spec.Check{
				httpCheck("a", "http://"+ok+"/", nil),
				tcpCheck("b", tcpUp),
				tcpCheck("c", tcpDown),
				httpCheck("d", "http://"+broken+"/", nil),
			},
			want: []want{
				{check: "a", ok: true},
				{check: "b", ok: true},
				{check: "c", ok: false},
				{check: "d", ok: false},
			},
			failOn: "c",
		},
		{
			name: "all pass",
			checks: []spec.Check{
				httpCheck("a", "http://{{.Address}}/", nil),
				tcpCheck("b", spec.AddressPlaceholder),
			},
			addresses: []string{ok, okToo},
			want: []want{
				{check: "a", target: "http://" + ok + "/", ok: true},
				{check: "a", target: "http://" + okToo + "/", ok: true},
				{check: "b", target: ok, ok: true},
				{check: "b", target: okToo, ok: true},
			},
			wantOK: true,
		},
		{
			name:   "no checks",
			wantOK: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var c Checker
			before := time.Now()
			r := c.Round(context.Background(), tt.checks, nil, tt.addresses)
			if r.At.Before(before) {
				t.Errorf("At = %v, before the round started", r.At)
			}
			if len(r.Results) != len(tt.want) {
				t.Fatalf("got %d results, want %d: %+v", len(r.Results), len(tt.want), r.Results)
			}
			for i, w := range tt.want {
				res := r.Results[i]
				if res.Check != w.check {
					t.Errorf("result %d Check = %q, want %q", i, res.Check, w.check)
				}
				if w.target != "" && res.Target != w.target {
					t.Errorf("result %d Target = %q, want %q", i, res.Target, w.target)
				}
				wantVerdict := Healthy
				if !w.ok {
					wantVerdict = cmp.Or(w.verdict, Failed)
				}
				if res.Verdict != wantVerdict {
					t.Errorf("result %d Verdict = %v, want %v (error %q)", i, res.Verdict, wantVerdict, res.Error)
				}
				if w.excerpt != "" && !strings.Contains(res.Excerpt, w.excerpt) {
					t.Errorf("result %d Excerpt = %q, want it to contain %q", i, res.Excerpt, w.excerpt)
				}
				if len(res.Excerpt) > spec.MaxOutputExcerpt+len("…") {
					t.Errorf("result %d Excerpt is %d bytes, want it bounded", i, len(res.Excerpt))
				}
				if w.code != 0 && res.Code != w.code {
					t.Errorf("result %d Code = %d, want %d", i, res.Code, w.code)
				}
				if w.ok && res.Error != "" {
					t.Errorf("result %d passed with Error %q", i, res.Error)
				}
				if !w.ok && res.Error == "" {
					t.Errorf("result %d failed without an Error", i)
				}
				for _, s := range w.errHas {
					if !strings.Contains(res.Error, s) {
						t.Errorf("result %d Error = %q, want it to contain %q", i, res.Error, s)
					}
				}
				if len(res.Error) > spec.MaxOutputExcerpt+100 {
					t.Errorf("result %d Error is %d bytes, want it bounded", i, len(res.Error))
				}
				if !utf8.ValidString(res.Error) {
					t.Errorf("result %d Error is not valid UTF-8: %q", i, res.Error)
				}
				if res.Latency < 0 {
					t.Errorf("result %d Latency = %v", i, res.Latency)
				}
			}
			wantVerdict := Healthy
			if !tt.wantOK {
				wantVerdict = cmp.Or(tt.verdict, Failed)
			}
			if r.Verdict != wantVerdict {
				t.Errorf("Round.Verdict = %v, want %v", r.Verdict, wantVerdict)
			}
			ff := r.Problem()
			switch {
			case tt.failOn == "" && ff != "":
				t.Errorf("Problem = %q, want empty", ff)
			case tt.failOn != "" && !strings.Contains(ff, fmt.Sprintf("check %q", tt.failOn)):
				t.Errorf("Problem = %q, want it to name check %q", ff, tt.failOn)
			}
		})
	}
}

func TestRoundCancelled(t *testing.T) {
	slow := server(t, 200, "late", 5*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var c Checker
	r := c.Round(ctx, []spec.Check{
		httpCheck("slow", "http://"+slow+"/", nil),
		tcpCheck("port", listener(t)),
	}, nil, nil)
	if r.Verdict == Healthy {
		t.Fatalf("Round under a cancelled context passed: %+v", r.Results)
	}
	for _, res := range r.Results {
		t.Run(res.Check, func(t *testing.T) {
			if res.Verdict == Healthy || !strings.Contains(res.Error, "canceled") {
				t.Errorf("result = %+v, want failed with context canceled", res)
			}
		})
	}
}

func TestRoundCustomClient(t *testing.T) {
	ok := server(t, 200, "ok", 0)
	var calls int
	client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		calls++
		return http.DefaultTransport.RoundTrip(r)
	})}
	c := Checker{Client: client}
	r := c.Round(context.Background(), []spec.Check{httpCheck("healthz", "http://"+ok+"/", nil)}, nil, nil)
	if r.Verdict != Healthy || calls != 1 {
		t.Errorf("Round with a custom client: Verdict = %v, calls = %d; want healthy, 1", r.Verdict, calls)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestExcerpt(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "short", in: "  hello \n", want: "hello"},
		{name: "empty", in: "", want: ""},
		{name: "exactly the limit", in: strings.Repeat("a", spec.MaxOutputExcerpt), want: strings.Repeat("a", spec.MaxOutputExcerpt)},
		{name: "over the limit", in: strings.Repeat("a", spec.MaxOutputExcerpt+1), want: strings.Repeat("a", spec.MaxOutputExcerpt) + "…"},
		// "é" is two bytes: the cut must not split it.
		{name: "multibyte at the cut", in: "a" + strings.Repeat("é", spec.MaxOutputExcerpt), want: "a" + strings.Repeat("é", (spec.MaxOutputExcerpt-1)/2) + "…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := excerpt([]byte(tt.in))
			if got != tt.want {
				t.Errorf("excerpt = %q (%d bytes), want %q (%d bytes)", got, len(got), tt.want, len(tt.want))
			}
			if !utf8.ValidString(got) {
				t.Errorf("excerpt %q is not valid UTF-8", got)
			}
		})
	}
}
