package spec

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// collect returns an add func and the problems it gathered.
func collect() (func(string, string, ...any), *[]FieldError) {
	var errs []FieldError
	return func(field, format string, args ...any) {
		errs = append(errs, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}, &errs
}

func TestImageVersion(t *testing.T) {
	tests := []struct {
		image string
		want  string
		ok    bool
	}{
		{"repo/x:1.4.2", "1.4.2", true},
		{"x:v1.4", "v1.4", true},
		{"x:1", "1", true},
		{"registry.example.com:5000/team/x:2.0.1", "2.0.1", true},
		{"x:1.4.2-rc.1", "1.4.2-rc.1", true},
		{"x:1.4@sha256:" + strings.Repeat("a", 64), "1.4", true},
		{"x", "", false},
		{"registry.example.com:5000/team/x", "", false},
		{"x:latest", "", false},
		{"x@sha256:" + strings.Repeat("a", 64), "", false},
		{"x:stable", "", false},
		{"x:main-3f2a1b", "", false},
		{"x:", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.image, func(t *testing.T) {
			got, ok := ImageVersion(tt.image)
			if got != tt.want || ok != tt.ok {
				t.Errorf("ImageVersion(%q) = %q, %v; want %q, %v", tt.image, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestRequirementCheck(t *testing.T) {
	r := Requirement{Service: "db-migrator", Version: ">= 1.4, < 2"}
	tests := []struct {
		name    string
		r       Requirement
		image   string
		msg     string // "" means satisfied
		unknown bool
	}{
		{"inside", r, "repo/db-migrator:1.4.2", "", false},
		{"v prefix", r, "db-migrator:v1.9", "", false},
		{"lower bound", r, "db-migrator:1.4", "", false},
		{"too old", r, "repo/db-migrator:1.2.0", `db-migrator runs 1.2.0, which does not satisfy ">= 1.4, < 2" (1.2.0 is less than 1.4)`, false},
		{"too new", r, "db-migrator:2.0.0", `db-migrator runs 2.0.0, which does not satisfy ">= 1.4, < 2"`, false},
		{"prerelease not matched", r, "db-migrator:1.5.0-alpine", "prerelease", false},
		{"caret", Requirement{Service: "a", Version: "^1.2"}, "a:1.9.9", "", false},
		{"or", Requirement{Service: "a", Version: "1.x || >= 3"}, "a:3.1", "", false},
		{"untagged", r, "repo/db-migrator", "db-migrator runs repo/db-migrator: version unknown", true},
		{"latest", r, "db-migrator:latest", "version unknown", true},
		{"digest only", r, "db-migrator@sha256:" + strings.Repeat("b", 64), "version unknown", true},
		{"tag not a version", r, "db-migrator:stable", "version unknown", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.r.Check(tt.image)
			if tt.msg == "" {
				if err != nil {
					t.Fatalf("Check(%q) = %v, want nil", tt.image, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Check(%q) = %v, want %q", tt.image, err, tt.msg)
			}
			if got := errors.Is(err, ErrVersionUnknown); got != tt.unknown {
				t.Errorf("errors.Is(ErrVersionUnknown) = %v, want %v", got, tt.unknown)
			}
			var ue *UnsatisfiedError
			if got := errors.As(err, &ue); got == tt.unknown {
				t.Errorf("errors.As(*UnsatisfiedError) = %v, want %v", got, !tt.unknown)
			}
		})
	}
}

func TestValidateRequirements(t *testing.T) {
	inRelease := func(n string) bool { return n == "db" || n == "api" }
	kube := func(k Kubernetes) *Platform { return &Platform{Kubernetes: &k} }
	tests := []struct {
		name string
		rs   []Requirement
		want []string // "field: message fragment", in order
	}{
		{"release service", []Requirement{{Service: "db", Version: ">= 1.4"}}, nil},
		{"docker outside", []Requirement{{Service: "billing", Platform: &Platform{Docker: &Docker{}}, Version: "~2.1"}}, nil},
		{"kubernetes outside", []Requirement{{Service: "auth", Platform: kube(Kubernetes{Namespace: "iam", Deployment: "auth"}), Version: "1.x"}}, nil},
		{"not in release", []Requirement{{Service: "billing", Version: ">= 1"}},
			[]string{"reqs[0].service: \"billing\" is not a service of this release"}},
		{"no service", []Requirement{{Version: ">= 1"}}, []string{"reqs[0].service: is required"}},
		{"no version", []Requirement{{Service: "db"}}, []string{"reqs[0].version: is required"}},
		{"bad version", []Requirement{{Service: "db", Version: "newer than 1.4"}},
			[]string{"reqs[0].version: \"newer than 1.4\" is not a version constraint"}},
		{"empty platform", []Requirement{{Service: "billing", Platform: &Platform{}, Version: "1"}},
			[]string{"reqs[0].platform: exactly one platform is required"}},
		{"two platforms", []Requirement{{Service: "billing", Platform: &Platform{Docker: &Docker{}, Kubernetes: &Kubernetes{Deployment: "b"}}, Version: "1"}},
			[]string{"reqs[0].platform: only one"}},
		{"kubernetes without deployment", []Requirement{{Service: "auth", Platform: kube(Kubernetes{Namespace: "iam"}), Version: "1"}},
			[]string{"reqs[0].platform.kubernetes.deployment: is required"}},
		{"kubernetes bad names", []Requirement{{Service: "auth", Platform: kube(Kubernetes{Namespace: "IAM", Deployment: "auth_v2"}), Version: "1"}},
			[]string{"reqs[0].platform.kubernetes.deployment: \"auth_v2\"", "reqs[0].platform.kubernetes.namespace: \"IAM\""}},
		{"docker bad service name", []Requirement{{Service: "Billing", Platform: &Platform{Docker: &Docker{}}, Version: "1"}},
			[]string{"reqs[0].service: \"Billing\" must be lowercase"}},
		{"every problem, indexed", []Requirement{{Service: "db", Version: "1"}, {Service: "", Version: ""}},
			[]string{"reqs[1].version: is required", "reqs[1].service: is required"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			add, errs := collect()
			ValidateRequirements(add, "reqs", tt.rs, inRelease)
			if len(*errs) != len(tt.want) {
				t.Fatalf("problems %v, want %d: %v", *errs, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if got := (*errs)[i].Error(); !strings.Contains(got, w) {
					t.Errorf("problem %d = %q, want %q", i, got, w)
				}
			}
		})
	}
}

func TestValidateResources(t *testing.T) {
	tests := []struct {
		name string
		r    *Resources
		want []string
	}{
		{"none", nil, nil},
		{"empty", &Resources{}, nil},
		{"both", &Resources{CPU: "500m", Memory: "256Mi"}, nil},
		{"decimal cpu", &Resources{CPU: "1.5"}, nil},
		{"memory at the minimum", &Resources{Memory: "6Mi"}, nil},
		{"bad cpu", &Resources{CPU: "half"}, []string{"res.cpu: \"half\" is not a quantity"}},
		{"zero cpu", &Resources{CPU: "0"}, []string{"res.cpu: must be positive"}},
		{"negative memory", &Resources{Memory: "-1Gi"}, []string{"res.memory: must be positive"}},
		{"bad memory", &Resources{Memory: "lots"}, []string{"res.memory: \"lots\" is not a quantity"}},
		{"memory below the engine minimum", &Resources{Memory: "4Mi"}, []string{"res.memory: \"4Mi\" is below 6Mi"}},
		{"both bad", &Resources{CPU: "-1", Memory: "1x"}, []string{"res.cpu: must be positive", "res.memory: \"1x\""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			add, errs := collect()
			ValidateResources(add, "res", tt.r)
			if len(*errs) != len(tt.want) {
				t.Fatalf("problems %v, want %v", *errs, tt.want)
			}
			for i, w := range tt.want {
				if got := (*errs)[i].Error(); !strings.Contains(got, w) {
					t.Errorf("problem %d = %q, want %q", i, got, w)
				}
			}
		})
	}
}

func TestResourcesLimits(t *testing.T) {
	tests := []struct {
		r           *Resources
		cpu, memory int64
	}{
		{nil, 0, 0},
		{&Resources{}, 0, 0},
		{&Resources{CPU: "500m", Memory: "256Mi"}, 500_000_000, 256 << 20},
		{&Resources{CPU: "1.5", Memory: "1G"}, 1_500_000_000, 1_000_000_000},
		{&Resources{CPU: "2"}, 2_000_000_000, 0},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.r), func(t *testing.T) {
			cpu, mem, err := tt.r.Limits()
			if err != nil || cpu != tt.cpu || mem != tt.memory {
				t.Errorf("Limits() = %d, %d, %v; want %d, %d", cpu, mem, err, tt.cpu, tt.memory)
			}
		})
	}
	if _, _, err := (&Resources{CPU: "x"}).Limits(); err == nil {
		t.Error("Limits of an invalid cpu: want an error")
	}
}

func TestReleaseValidateRequires(t *testing.T) {
	r := Release{Name: "shop", Environment: "prod", Services: []ReleaseService{svc("db"), svc("api", "db"), svc("web", "api")}}
	r.Services[0].Deploy.Image = "repo/db:1.2.0"
	r.Services[1].Deploy.Image = "repo/api:latest"
	outside := &Platform{Docker: &Docker{}}
	tests := []struct {
		name string
		rs   []Requirement
		want []string
	}{
		{"satisfied", []Requirement{{Service: "db", Version: ">= 1.2, < 2"}}, nil},
		{"rolls out too old a version", []Requirement{{Service: "db", Version: ">= 1.4"}},
			[]string{`services[2].requires[0]: db runs 1.2.0, which does not satisfy ">= 1.4" (1.2.0 is less than 1.4)`}},
		{"version unknown", []Requirement{{Service: "api", Version: ">= 1"}},
			[]string{"services[2].requires[0]: api runs repo/api:latest: version unknown"}},
		{"outside the release: checked at preflight", []Requirement{{Service: "db", Platform: outside, Version: ">= 9"}}, nil},
		{"bad constraint reported once", []Requirement{{Service: "db", Version: "soon"}},
			[]string{`services[2].requires[0].version: "soon" is not a version constraint`}},
		{"unknown service", []Requirement{{Service: "cache", Version: "1"}},
			[]string{`services[2].requires[0].service: "cache" is not a service of this release`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			add, errs := collect()
			r.validateRequires(add, "services[2].requires", tt.rs)
			if len(*errs) != len(tt.want) {
				t.Fatalf("problems %v, want %v", *errs, tt.want)
			}
			for i, w := range tt.want {
				if got := (*errs)[i].Error(); !strings.Contains(got, w) {
					t.Errorf("problem %d = %q, want %q", i, got, w)
				}
			}
		})
	}
}
