package spec

import (
	"fmt"
	"strings"
	"testing"
)

func svc(name string, deps ...string) ReleaseService {
	return ReleaseService{Name: name, DependsOn: deps, Deploy: Spec{Service: name, Image: "stagecraft-demo:v2",
		Platform: Platform{Docker: &Docker{Replicas: 1, Port: 8080}}, Strategy: Strategy{Type: Recreate}}}
}

func TestWaves(t *testing.T) {
	tests := []struct {
		name     string
		services []ReleaseService
		want     string
		err      string
	}{
		{"chain", []ReleaseService{svc("web", "api"), svc("api", "db"), svc("db")}, "[[db] [api] [web]]", ""},
		{"independent services share a wave", []ReleaseService{svc("a"), svc("b"), svc("c")}, "[[a b c]]", ""},
		{"diamond", []ReleaseService{svc("db"), svc("cache"), svc("api", "db", "cache"), svc("worker", "db"), svc("web", "api")}, "[[db cache] [api worker] [web]]", ""},
		{"listing order kept within a wave", []ReleaseService{svc("z"), svc("y"), svc("x", "z")}, "[[z y] [x]]", ""},
		{"cycle named", []ReleaseService{svc("a", "c"), svc("b", "a"), svc("c", "b")}, "", "dependency cycle: a → c → b → a"},
		{"self cycle", []ReleaseService{svc("a", "a")}, "", "dependency cycle: a → a"},
		{"unknown dependency", []ReleaseService{svc("api", "db")}, "", `"api" depends on "db", which is not a service`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			waves, err := Release{Services: tt.services}.Waves()
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || fmt.Sprint(waves) != tt.want {
				t.Fatalf("waves = %v, %v; want %s", waves, err, tt.want)
			}
		})
	}
}

func TestReleaseValidate(t *testing.T) {
	base := func() Release {
		return Release{Name: "shop", Environment: "prod", Services: []ReleaseService{svc("db"), svc("api", "db"), svc("web", "api")}}
	}
	tests := []struct {
		name  string
		edit  func(r *Release)
		field string
		msg   string
	}{
		{"valid", func(r *Release) {}, "", ""},
		{"name", func(r *Release) { r.Name = "" }, "name", "required"},
		{"environment", func(r *Release) { r.Environment = "Prod" }, "environment", "lowercase"},
		{"mode", func(r *Release) { r.Mode = "all-at-once" }, "mode", "parallel, sequential"},
		{"no services", func(r *Release) { r.Services = nil }, "services", "at least one"},
		{"duplicate service", func(r *Release) { r.Services = append(r.Services, svc("db")) }, "services[3].name", "twice"},
		{"cycle", func(r *Release) { r.Services[0].DependsOn = []string{"web"} }, "services", "dependency cycle: db → web → api → db"},
		{"bad deploy spec", func(r *Release) { r.Services[1].Deploy.Image = "" }, "services[1].deploy.image", "required"},
		{"same target twice", func(r *Release) { r.Services[2].Deploy.Service = "api" }, "services[2].deploy", "targets docker:api"},
		{"stage before its dependency", func(r *Release) {
			r.Stages = []ReleaseStage{{Services: []string{"db", "api"}}, {Services: []string{"web"}}}
		}, "stages[0]", `"api" starts before "db"`},
		{"sequential stage in dependency order", func(r *Release) {
			r.Stages = []ReleaseStage{{Services: []string{"db", "api", "web"}, Mode: Sequential}}
		}, "", ""},
		{"latest forbidden", func(r *Release) { r.Policy.ForbidLatest = true; r.Services[1].Deploy.Image = "shop/api" }, "services[1].deploy.image", "policy.forbidLatest"},
		{"latest allowed by digest", func(r *Release) {
			r.Policy.ForbidLatest = true
			r.Services[1].Deploy.Image = "shop/api@sha256:" + strings.Repeat("a", 64)
		}, "", ""},
		{"required label", func(r *Release) { r.Policy.RequireLabels = []string{"team"} }, "services[0].deploy.platform.docker.labels", `label "team" is required`},
		{"integration per instance", func(r *Release) {
			r.Integration = &Integration{Checks: []Check{{Name: "e2e", HTTP: &HTTPCheck{URL: "http://{{.Address}}/"}}}}
		}, "integration.checks[0]", "fixed target"},
		{"readiness severity", func(r *Release) {
			r.Readiness = []Criterion{{Check: Check{Name: "slo", TCP: &TCPCheck{Address: "127.0.0.1:1"}}, Category: "performance", Severity: "fatal"}}
		}, "readiness[0].severity", "critical, warning"},
		{"readiness category", func(r *Release) {
			r.Readiness = []Criterion{{Check: Check{Name: "slo", TCP: &TCPCheck{Address: "127.0.0.1:1"}}, Category: "vibes"}}
		}, "readiness[0].category", "performance"},
		{"service in no stage", func(r *Release) { r.Stages = []ReleaseStage{{Services: []string{"db"}}} }, "stages", `"api" is in no stage`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := base()
			tt.edit(&r)
			err := r.WithDefaults().Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("unexpected: %v", err)
				}
				return
			}
			ve, ok := err.(*ValidationError)
			if !ok {
				t.Fatalf("err = %v, want a *ValidationError", err)
			}
			for _, p := range ve.Problems {
				if p.Field == tt.field && strings.Contains(p.Message, tt.msg) {
					return
				}
			}
			t.Fatalf("no problem %s: %q in %v", tt.field, tt.msg, ve.Problems)
		})
	}
}

func TestReleaseDefaults(t *testing.T) {
	r := Release{Name: "shop", Environment: "prod", Services: []ReleaseService{svc("web", "api"), svc("api")}}.WithDefaults()
	if got := fmt.Sprint(r.Stages); got != "[{wave 1 [api] parallel 3600000000000} {wave 2 [web] parallel 3600000000000}]" {
		t.Errorf("stages = %s", got)
	}
	if r.WorkflowID() != "release:prod/shop" || r.Services[0].Deploy.Timeout == 0 {
		t.Errorf("workflow ID %q, deploy defaults %v", r.WorkflowID(), r.Services[0].Deploy.Timeout)
	}
}

func TestReleaseConfigProfiles(t *testing.T) {
	r := Release{Name: "shop", Environment: "prod",
		Config: map[string]string{"LOG_LEVEL": "info", "REGION": "eu", "FEATURE_X": "off"},
		Profiles: map[string]Profile{
			"prod":    {Config: map[string]string{"LOG_LEVEL": "warn"}, Services: map[string]map[string]string{"api": {"FEATURE_X": "on"}}},
			"staging": {Config: map[string]string{"LOG_LEVEL": "debug"}},
		},
		Services: []ReleaseService{svc("db"), svc("api", "db")}}
	r.Services[1].Deploy.Platform.Docker.Env = map[string]string{"REGION": "us", "PORT": "8080"}
	got := r.WithDefaults()
	if err := got.Validate(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		service string
		want    string
	}{
		// base < service env < profile < profile's service entry
		{"db", "map[FEATURE_X:off LOG_LEVEL:warn REGION:eu]"},
		{"api", "map[FEATURE_X:on LOG_LEVEL:warn PORT:8080 REGION:us]"},
	}
	for _, tt := range tests {
		s, _ := got.Service(tt.service)
		if env := fmt.Sprint(s.Deploy.Platform.Docker.Env); env != tt.want {
			t.Errorf("%s env = %s, want %s", tt.service, env, tt.want)
		}
	}
	if r.Services[1].Deploy.Platform.Docker.Env["LOG_LEVEL"] != "" {
		t.Error("WithDefaults changed its receiver's env")
	}
	bad := r
	bad.Profiles = map[string]Profile{"prod": {Services: map[string]map[string]string{"cart": {"X": "1"}, "api": {"1X": "y"}}}}
	err := bad.WithDefaults().Validate()
	for _, want := range []string{`profiles.prod.services.cart: is not a service`, `profiles.prod.services.api.1X: is not an environment variable name`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want %q", err, want)
		}
	}
}

func TestReleaseConfigForKubernetes(t *testing.T) {
	r := Release{Name: "shop", Environment: "prod",
		Config:   map[string]string{"LOG_LEVEL": "info"},
		Profiles: map[string]Profile{"prod": {Services: map[string]map[string]string{"api": {"FEATURE_X": "on"}}}},
		Services: []ReleaseService{svc("db"), svc("api", "db")}}
	r.Services[1].Deploy.Platform = Platform{Kubernetes: &Kubernetes{Namespace: "prod", Deployment: "api"}}
	got := r.WithDefaults()
	if err := got.Validate(); err != nil {
		t.Fatal(err)
	}
	api, _ := got.Service("api")
	want := ConfigMapName("api", map[string]string{"LOG_LEVEL": "info", "FEATURE_X": "on"})
	if cm := api.Deploy.Platform.Kubernetes.ConfigMap; cm != want {
		t.Errorf("api's ConfigMap = %q, want %q", cm, want)
	}
	if !strings.HasPrefix(want, "api-config-") || len(want) != len("api-config-")+10 {
		t.Errorf("ConfigMapName = %q", want)
	}
	if again := got.WithDefaults(); again.Services[1].Deploy.Platform.Kubernetes.ConfigMap != want {
		t.Error("WithDefaults is not idempotent for a Kubernetes service's ConfigMap")
	}
	if r.Services[1].Deploy.Platform.Kubernetes.ConfigMap != "" {
		t.Error("WithDefaults changed its receiver")
	}
	// The name follows the content, not the order it was written in.
	if ConfigMapName("api", map[string]string{"A": "1", "B": "2"}) == ConfigMapName("api", map[string]string{"A": "1", "B": "3"}) {
		t.Error("different content, same name")
	}
	long := strings.Repeat("a", 63)
	if n := ConfigMapName(long, map[string]string{"A": "1"}); len(n) > 63 || !IsReleaseConfigMap(long, n) {
		t.Errorf("ConfigMapName(63 chars) = %q (%d)", n, len(n))
	}
	// A ConfigMap of the caller's own conflicts with the release's.
	bad := r
	bad.Services = []ReleaseService{svc("db"), svc("api", "db")}
	bad.Services[1].Deploy.Platform = Platform{Kubernetes: &Kubernetes{Namespace: "prod", Deployment: "api", ConfigMap: "mine"}}
	err := bad.WithDefaults().Validate()
	if err == nil || !strings.Contains(err.Error(), `services[1].deploy.platform.kubernetes.configMap: "mine": the release's configuration sets it`) {
		t.Errorf("error %v", err)
	}
	// Without release configuration, the caller's ConfigMap stays.
	own := Release{Name: "shop", Environment: "prod", Services: bad.Services}
	if err := own.WithDefaults().Validate(); err != nil {
		t.Error(err)
	}
}
