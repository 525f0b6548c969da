package spec

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// caBundle is a PEM bundle of n bytes, as an app passes one in its
// environment.
func caBundle(n int) string {
	const head, tail = "-----BEGIN CERTIFICATE-----\n", "\n-----END CERTIFICATE-----\n"
	return head + strings.Repeat("A", n-len(head)-len(tail)) + tail
}

// manyEnv is n environment variables, VAR_0..VAR_n-1.
func manyEnv(n int) map[string]string {
	m := make(map[string]string, n)
	for i := range n {
		m[fmt.Sprintf("VAR_%d", i)] = fmt.Sprint("value-", i)
	}
	return m
}

// TestOrdinaryLargeSpecsAccepted (review of afa389d): a CA bundle in an env
// var, a JSON blob in a label or header, an app with 150 env vars are
// ordinary, in a spec and in a release's config alike. Only values that
// become search attributes, memo fields or names keep tight limits.
func TestOrdinaryLargeSpecsAccepted(t *testing.T) {
	blob := `{"feature":"` + strings.Repeat("x", 6000) + `"}`
	tests := []struct {
		name string
		edit func(s *Spec)
	}{
		{"a 5,000-byte CA bundle env value", func(s *Spec) { s.Platform.Docker.Env = map[string]string{"TLS_CA_BUNDLE": caBundle(5000)} }},
		{"150 env vars", func(s *Spec) { s.Platform.Docker.Env = manyEnv(150) }},
		{"a 6 KB JSON label", func(s *Spec) { s.Platform.Docker.Labels = map[string]string{"config": blob} }},
		{"a 6 KB header", func(s *Spec) { s.Health.Checks[0].HTTP.Headers = PlainValues(map[string]string{"X-Config": blob}) }},
		{"a 6 KB command argument", func(s *Spec) { s.Platform.Docker.Command = []string{"serve", "--config=" + blob} }},
		{"a 64 KiB env value", func(s *Spec) { s.Platform.Docker.Env = map[string]string{"A": strings.Repeat("a", MaxValueLength)} }},
		{"1,000 env vars", func(s *Spec) { s.Platform.Docker.Env = manyEnv(MaxEntries) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := boundsSpec()
			tt.edit(&s)
			if _, err := Parse(mustJSONBytes(t, s)); err != nil {
				t.Fatalf("refused: %.300v", err)
			}
		})
	}
	t.Run("release config: a CA bundle and 150 entries", func(t *testing.T) {
		r := Release{Name: "shop", Environment: "prod", Services: []ReleaseService{svc("db"), svc("api", "db")}}
		r.Config = manyEnv(150)
		r.Config["TLS_CA_BUNDLE"] = caBundle(5000)
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseRelease(b); err != nil {
			t.Fatalf("refused: %.300v", err)
		}
	})
}

// TestEncodedSizeBounded: what the bounds on single values no longer
// catch, the bound on the whole encoded spec (an activity input many times
// over) and release (the release workflow's input, well below Temporal's
// 2 MiB payload limit) does, naming the size and the limit.
func TestEncodedSizeBounded(t *testing.T) {
	big := func(n int) map[string]string { // n values of 60,000 bytes
		m := map[string]string{}
		for i := range n {
			m[fmt.Sprintf("V%d", i)] = strings.Repeat("v", 60_000)
		}
		return m
	}
	t.Run("spec at the bound", func(t *testing.T) {
		s := boundsSpec()
		s.Platform.Docker.Env = big(4) // 240 KB
		wantProblem(t, s.WithDefaults().Validate(), "", "")
	})
	t.Run("spec past the bound", func(t *testing.T) {
		s := boundsSpec()
		s.Platform.Docker.Env = big(5) // 300 KB
		_, err := Parse(mustJSONBytes(t, s))
		wantProblem(t, err, "spec", fmt.Sprintf("more than the %d bytes (256 KiB) allowed", MaxSpecBytes))
	})
	t.Run("release past the bound", func(t *testing.T) {
		var svcs []ReleaseService
		for i := range 6 {
			s := svc(fmt.Sprint("s", i))
			s.Deploy.Platform.Docker.Env = big(3) // 180 KB each, 1.08 MB in all
			svcs = append(svcs, s)
		}
		r := Release{Name: "shop", Environment: "prod", Services: svcs}
		err := r.WithDefaults().Validate()
		wantProblem(t, err, "release", fmt.Sprintf("more than the %d bytes (1 MiB) allowed", MaxReleaseBytes))
		for _, p := range validationError(t, err).Problems {
			if strings.HasPrefix(p.Field, "services[") {
				t.Errorf("each service is within its bound, yet %s", p)
			}
		}
	})
	t.Run("release config copied into every service past the bound", func(t *testing.T) {
		var svcs []ReleaseService
		for i := range 6 {
			svcs = append(svcs, svc(fmt.Sprint("s", i)))
		}
		r := Release{Name: "shop", Environment: "prod", Services: svcs, Config: big(3)} // 180 KB, merged into 6 services
		wantProblem(t, r.WithDefaults().Validate(), "release", "more than the")
	})
	t.Run("a service's spec past its bound", func(t *testing.T) {
		r := Release{Name: "shop", Environment: "prod", Services: []ReleaseService{svc("db"), svc("api", "db")}}
		r.Services[1].Deploy.Platform.Docker.Env = big(5) // 300 KB
		wantProblem(t, r.WithDefaults().Validate(), "services[1].deploy", "(256 KiB) allowed")
	})
	t.Run("Kubernetes configuration past the bound", func(t *testing.T) {
		var svcs []ReleaseService
		for i := range 6 {
			name := fmt.Sprint("s", i)
			svcs = append(svcs, ReleaseService{Name: name, Deploy: Spec{Service: name, Image: "stagecraft-demo:v2",
				Platform: Platform{Kubernetes: &Kubernetes{Deployment: name}}, Strategy: Strategy{Type: Recreate}}})
		}
		// 180 KB of configuration, not in the specs (a ConfigMap), but
		// written for each of the 6 services by one activity.
		r := Release{Name: "shop", Environment: "prod", Services: svcs, Config: big(3)}
		err := r.WithDefaults().Validate()
		wantProblem(t, err, "config", "(1 MiB) allowed")
		if _, ok := problemFor(validationError(t, err), "release"); ok {
			t.Errorf("the release itself is within its bound, yet %v", err)
		}
	})
}
