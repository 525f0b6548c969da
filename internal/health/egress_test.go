package health

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stagecraft/stagecraft/internal/egress"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// checkerWith is a Checker whose fixed targets dial within policy p (nil:
// the open default).
func checkerWith(p *egress.Policy) *Checker { return &Checker{Egress: p} }

// policy parses allow entries, with names resolved by names.
func policy(t *testing.T, names func(host string) []netip.Addr, allow ...string) *egress.Policy {
	t.Helper()
	p, err := egress.Parse(allow)
	if err != nil {
		t.Fatal(err)
	}
	if names != nil {
		p.Resolver = resolverFunc(names)
	}
	return p
}

type resolverFunc func(host string) []netip.Addr

func (f resolverFunc) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a := f(host); len(a) > 0 {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// counted starts a server on ip (a loopback address) that counts its hits
// and answers body, or redirects to redirect when set.
func counted(t *testing.T, ip, body, redirect string) (string, *atomic.Int32) {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Skipf("cannot listen on %s: %v", ip, err)
	}
	var hits atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if redirect != "" {
			http.Redirect(w, r, redirect, http.StatusFound)
			return
		}
		_, _ = w.Write([]byte(body))
	}))
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return l.Addr().String(), &hits
}

// TestEgressMetadataRefusedBeforeConnect: a fixed target in the cloud
// metadata range is refused by the policy, in its open default, before any
// connection; with headers a metadata service wants (finding 6).
func TestEgressMetadataRefusedBeforeConnect(t *testing.T) {
	for _, target := range []string{
		"http://169.254.169.254/computeMetadata/v1/token",
		"http://[fd00:ec2::254]/latest/meta-data/",
		"http://100.100.100.200/latest/meta-data/",
		"http://[fe80::1]/",
	} {
		t.Run(target, func(t *testing.T) {
			c := checkerWith(nil)
			start := time.Now()
			r := c.Round(context.Background(), []spec.Check{httpCheck("meta", target, func(h *spec.HTTPCheck) {
				h.Headers = spec.PlainValues(map[string]string{"Metadata-Flavor": "Google"})
			})}, nil, nil)
			res := r.Results[0]
			if res.Verdict != Failed || !strings.Contains(res.Error, "egress policy") || time.Since(start) > time.Second {
				t.Fatalf("check to %s: %+v after %s; want failed by the egress policy at once", target, res, time.Since(start))
			}
		})
	}
	t.Run("tcp", func(t *testing.T) {
		r := checkerWith(nil).Round(context.Background(), []spec.Check{tcpCheck("meta", "169.254.169.254:80")}, nil, nil)
		if res := r.Results[0]; res.Verdict != Failed || !strings.Contains(res.Error, "egress policy") {
			t.Fatalf("tcp check to the metadata address: %+v; want failed by the egress policy", res)
		}
	})
}

// TestEgressRedirectNotFollowedUnlessAsked: a fixed check answered by a
// redirect gets the redirect (and fails on its status) without visiting
// it; with followRedirects each hop dials within the policy, so a hop to a
// denied address is refused before it connects.
func TestEgressRedirectNotFollowedUnlessAsked(t *testing.T) {
	denied, deniedHits := counted(t, "127.0.0.2", "secret-of-the-internal-service", "")
	allowed, _ := counted(t, "127.0.0.1", "", "http://"+denied+"/internal")
	p := policy(t, nil, "127.0.0.1")

	r := checkerWith(p).Round(context.Background(), []spec.Check{httpCheck("hop", "http://"+allowed+"/", nil)}, nil, nil)
	if res := r.Results[0]; res.Verdict != Failed || res.Code != http.StatusFound || deniedHits.Load() != 0 {
		t.Fatalf("redirect without followRedirects: %+v, %d hits on the redirect's target; want status 302 and none", res, deniedHits.Load())
	}
	r = checkerWith(p).Round(context.Background(), []spec.Check{httpCheck("hop", "http://"+allowed+"/", func(h *spec.HTTPCheck) {
		h.FollowRedirects = true
	})}, nil, nil)
	if res := r.Results[0]; res.Verdict != Failed || !strings.Contains(res.Error, "egress policy") || deniedHits.Load() != 0 {
		t.Fatalf("redirect to a denied address with followRedirects: %+v, %d hits; want refused by the egress policy, none", res, deniedHits.Load())
	}
	// To the metadata address, in the open default.
	meta, _ := counted(t, "127.0.0.1", "", "http://169.254.169.254/latest/meta-data/")
	r = checkerWith(nil).Round(context.Background(), []spec.Check{httpCheck("hop", "http://"+meta+"/", func(h *spec.HTTPCheck) {
		h.FollowRedirects = true
	})}, nil, nil)
	if res := r.Results[0]; !strings.Contains(res.Error, "egress policy") {
		t.Fatalf("redirect to the metadata address: %+v; want refused by the egress policy", res)
	}
}

// TestEgressNameResolvingToDeniedAddress: the address checked is the
// address dialed, after resolution: a name resolving to the metadata
// address is refused, and an allowed name that rebinds to a denied
// address on its next lookup is refused then, without a connection.
func TestEgressNameResolvingToDeniedAddress(t *testing.T) {
	denied, deniedHits := counted(t, "127.0.0.2", "internal", "")
	ok, _ := counted(t, "127.0.0.1", "ok", "")
	_, port, _ := net.SplitHostPort(denied)
	_, okPort, _ := net.SplitHostPort(ok)
	if port != okPort {
		// Same port on both addresses, so only the resolution differs.
		l, err := net.Listen("tcp", "127.0.0.1:"+port)
		if err != nil {
			t.Skipf("port %s busy on 127.0.0.1: %v", port, err)
		}
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) }))
		srv.Listener = l
		srv.Start()
		t.Cleanup(srv.Close)
	}
	var mu sync.Mutex
	lookups := 0
	names := func(host string) []netip.Addr {
		mu.Lock()
		defer mu.Unlock()
		switch host {
		case "metadata.test":
			return []netip.Addr{netip.MustParseAddr("169.254.169.254")}
		case "rebind.test":
			lookups++
			if lookups == 1 {
				return []netip.Addr{netip.MustParseAddr("127.0.0.1")}
			}
			return []netip.Addr{netip.MustParseAddr("127.0.0.2")}
		}
		return nil
	}
	open := policy(t, names)
	r := checkerWith(open).Round(context.Background(), []spec.Check{httpCheck("meta", "http://metadata.test/", nil)}, nil, nil)
	if res := r.Results[0]; !strings.Contains(res.Error, "egress policy") {
		t.Fatalf("name resolving to the metadata address: %+v; want refused by the egress policy", res)
	}

	strict := policy(t, names, "rebind.test", "127.0.0.1")
	check := []spec.Check{httpCheck("rebind", "http://rebind.test:"+port+"/", nil)}
	if res := checkerWith(strict).Round(context.Background(), check, nil, nil).Results[0]; res.Verdict != Healthy {
		t.Fatalf("first lookup (127.0.0.1, allowed): %+v; want healthy", res)
	}
	res := checkerWith(strict).Round(context.Background(), check, nil, nil).Results[0]
	if !strings.Contains(res.Error, "egress policy") || deniedHits.Load() != 0 {
		t.Fatalf("second lookup (127.0.0.2, not allowed): %+v, %d hits; want refused by the egress policy, none", res, deniedHits.Load())
	}
}

// TestEgressAllowlist: with allow entries, a fixed target off the list is
// refused, one on it reached; the instance address is the platform's and
// reached whatever the list says.
func TestEgressAllowlist(t *testing.T) {
	inst := server(t, 200, "ok", 0)
	strict := policy(t, nil, "10.0.0.0/8")
	r := checkerWith(strict).Round(context.Background(), []spec.Check{
		httpCheck("fixed", "http://"+inst+"/", nil),
		tcpCheck("fixed-tcp", inst),
		httpCheck("instance", "http://{{.Address}}/", nil),
		tcpCheck("instance-tcp", spec.AddressPlaceholder),
	}, nil, []string{inst})
	for _, res := range r.Results {
		fixed := strings.HasPrefix(res.Check, "fixed")
		if fixed && !strings.Contains(res.Error, "egress policy") {
			t.Errorf("%s off the allowlist: %+v; want refused by the egress policy", res.Check, res)
		}
		if !fixed && res.Verdict != Healthy {
			t.Errorf("%s on the instance: %+v; want healthy", res.Check, res)
		}
	}
	// A URL that only mentions the placeholder is not an instance check.
	other := server(t, 200, "ok", 0)
	r = checkerWith(strict).Round(context.Background(), []spec.Check{
		httpCheck("sneaky", "http://"+other+"/?{{.Address}}", nil),
	}, nil, []string{inst})
	if res := r.Results[0]; !strings.Contains(res.Error, "egress policy") {
		t.Errorf("URL with the placeholder in its query: %+v; want refused by the egress policy", res)
	}
}

// TestNoExcerptFromFixedTargets: a fixed target's body never becomes
// evidence (the SSRF read-back of finding 6); an instance's does, bounded
// and with credentials masked.
func TestNoExcerptFromFixedTargets(t *testing.T) {
	token := `{"access_token":"ya29.SECRET-TOKEN-0123456789","expires_in":3599}`
	srv := server(t, 200, token, 0)
	never := func(h *spec.HTTPCheck) { h.BodyContains = "never-there" }
	r := checkerWith(nil).Round(context.Background(), []spec.Check{
		httpCheck("fixed", "http://"+srv+"/computeMetadata/v1/token", never),
	}, nil, nil)
	if res := r.Results[0]; res.Verdict != Failed || res.Excerpt != "" {
		t.Fatalf("fixed target: %+v; want failed with no excerpt", res)
	}
	r = checkerWith(nil).Round(context.Background(), []spec.Check{
		httpCheck("instance", "http://{{.Address}}/token", never),
	}, nil, []string{srv})
	res := r.Results[0]
	if res.Verdict != Failed || !strings.Contains(res.Excerpt, "expires_in") || strings.Contains(res.Excerpt, "SECRET") {
		t.Fatalf("instance: excerpt %q; want the body with the token masked", res.Excerpt)
	}
}

// TestTargetHasNoUserinfo: credentials in a check's URL are in no recorded
// target, problem or error (finding 14).
func TestTargetHasNoUserinfo(t *testing.T) {
	ok := server(t, 503, "down", 0)
	r := checkerWith(nil).Round(context.Background(), []spec.Check{
		httpCheck("basic", "http://ops:hunter2@{{.Address}}/healthz", nil),
		httpCheck("refused", "http://ops:hunter2@"+closedAddr(t)+"/healthz", nil),
		{Name: "prom", Prometheus: &spec.PrometheusCheck{URL: "http://ops:hunter2@" + closedAddr(t), Query: "up", Op: "==", Threshold: 1, Timeout: spec.Duration(time.Second)}},
	}, nil, []string{ok})
	for _, res := range r.Results {
		if strings.Contains(res.Target, "hunter2") || strings.Contains(res.Target, "ops") || strings.Contains(res.Error, "hunter2") || strings.Contains(res.Error, "ops@") || strings.Contains(res.Error, "ops:") {
			t.Errorf("%s: target %q, error %q; want no userinfo", res.Check, res.Target, res.Error)
		}
	}
	if p := r.Problem(); strings.Contains(p, "hunter2") {
		t.Errorf("problem %q holds the password", p)
	}
	if got, want := r.Results[0].Target, "http://"+ok+"/healthz"; got != want {
		t.Errorf("target = %q, want %q", got, want)
	}
}
