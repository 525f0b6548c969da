package spec

import (
	"strings"
	"testing"
)

// TestNULRefusedWherePostgresCannotStoreIt: a NUL character anywhere in a
// spec or a release, a key or a value (an env value, a check's
// bodyContains, a command's argv, a label's key), is refused, naming the
// field: PostgreSQL's jsonb and text refuse it, so the run's audit trail
// would never be written. Under the rules a run started before, it is not.
func TestNULRefusedWherePostgresCannotStoreIt(t *testing.T) {
	base := func() Spec {
		return Spec{Service: "web", Image: "stagecraft-demo:v2",
			Platform: Platform{Docker: &Docker{Replicas: 1, Port: 8080}}, Strategy: Strategy{Type: Recreate}}.WithDefaults()
	}
	for _, tc := range []struct {
		field string
		edit  func(*Spec)
	}{
		{"platform.docker.env.GREETING", func(s *Spec) { s.Platform.Docker.Env = map[string]string{"GREETING": "hi\x00"} }},
		{`platform.docker.labels.team\u0000`, func(s *Spec) { s.Platform.Docker.Labels = map[string]string{"team\x00": "x"} }},
		{"health.checks[0].http.bodyContains", func(s *Spec) {
			s.Health.Checks = []Check{{Name: "ok", HTTP: &HTTPCheck{URL: "http://127.0.0.1:8080/healthz", BodyContains: "ok\x00"}}}
		}},
	} {
		s := base()
		tc.edit(&s)
		err := s.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.field+": must not hold a NUL character") {
			t.Errorf("%s: %v; want refused, naming the field", tc.field, err)
		}
		if err := s.ValidateUnder(RulesBoundaries); err != nil && strings.Contains(err.Error(), "NUL") {
			t.Errorf("%s: refused under the rules before: %v", tc.field, err)
		}
	}
	if err := base().Validate(); err != nil {
		t.Fatalf("base spec: %v", err)
	}

	r := Release{Name: "shop", Environment: "prod", Services: []ReleaseService{svc("db"), svc("api", "db")},
		Config: map[string]string{"MODE": "a\x00"}}
	r.Services[1].Deploy.Platform.Docker.Env = map[string]string{"X": "\x00"}
	err := r.WithDefaults().Validate()
	if err == nil || !strings.Contains(err.Error(), "config.MODE: must not hold a NUL") ||
		strings.Count(err.Error(), "services[1].deploy.platform.docker.env.X: must not hold a NUL") != 1 {
		t.Errorf("release: %v; want config.MODE and services[1]'s env each named once", err)
	}
}
