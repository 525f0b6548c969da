package activities

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// prereqPlatform answers Snapshot per target key and Capacity with a fixed
// report; it records the extra count Capacity was asked for.
type prereqPlatform struct {
	fakePlatform
	snaps    map[string]platform.Snapshot
	snapErr  map[string]error
	report   platform.CapacityReport
	capErr   error
	askedFor int
}

func (p *prereqPlatform) Snapshot(_ context.Context, s spec.Spec) (platform.Snapshot, error) {
	return p.snaps[s.TargetKey()], p.snapErr[s.TargetKey()]
}

func (p *prereqPlatform) Capacity(_ context.Context, _ spec.Spec, extra int) (platform.CapacityReport, error) {
	p.askedFor = extra
	return p.report, p.capErr
}

// plainPlatform has no Capacity.
type plainPlatform struct{ fakePlatform }

func running(images ...string) platform.Snapshot {
	var s platform.Snapshot
	for i, img := range images {
		s.Instances = append(s.Instances, platform.Instance{Name: string(rune('a' + i)), Image: img})
	}
	return s
}

func TestRequirementProblems(t *testing.T) {
	docker := func(svc, version string) spec.Requirement {
		return spec.Requirement{Service: svc, Platform: &spec.Platform{Docker: &spec.Docker{}}, Version: version}
	}
	kube := func(ns, d, version string) spec.Requirement {
		return spec.Requirement{Service: d, Platform: &spec.Platform{Kubernetes: &spec.Kubernetes{Namespace: ns, Deployment: d}}, Version: version}
	}
	p := &prereqPlatform{
		snaps: map[string]platform.Snapshot{
			"docker:billing": running("billing:1.4.2", "billing:1.5.0"),
			"docker:old":     running("old:1.2.0"),
			"docker:mixed":   running("mixed:1.4.0", "mixed:1.3.9"),
			"docker:latest":  running("latest:latest"),
			"k8s:iam/auth":   {Kubernetes: &platform.KubernetesSnapshot{Replicas: 2, Image: "reg/auth:v2.1"}},
		},
		snapErr: map[string]error{
			"k8s:iam/gone":  &platform.TargetNotFoundError{What: `deployment "iam/gone"`},
			"k8s:iam/flaky": errors.New("connection refused"),
			"k8s:iam/rbac":  platform.ErrForbidden,
		},
	}
	a := &Activities{Platforms: map[string]Platform{"docker": p, "kubernetes": p}}
	tests := []struct {
		name string
		rs   []spec.Requirement
		want []string
		err  string
	}{
		{"satisfied", []spec.Requirement{docker("billing", ">= 1.4, < 2"), kube("iam", "auth", "^2")}, nil, ""},
		{"release service skipped", []spec.Requirement{{Service: "db", Version: ">= 9"}}, nil, ""},
		{"too old", []spec.Requirement{docker("old", ">= 1.4")},
			[]string{`service api: requirement on docker:old: old runs 1.2.0, which does not satisfy ">= 1.4"`}, ""},
		{"every running image counts", []spec.Requirement{docker("mixed", ">= 1.4")},
			[]string{"mixed runs 1.3.9"}, ""},
		{"version unknown", []spec.Requirement{docker("latest", ">= 1")},
			[]string{"requirement on docker:latest: latest runs latest:latest: version unknown"}, ""},
		{"not running", []spec.Requirement{docker("nobody", ">= 1")},
			[]string{"requirement on docker:nobody: nobody is not running"}, ""},
		{"target not found", []spec.Requirement{kube("iam", "gone", ">= 1")},
			[]string{`requirement on k8s:iam/gone: deployment "iam/gone" not found`}, ""},
		{"forbidden", []spec.Requirement{kube("iam", "rbac", ">= 1")}, []string{"requirement on k8s:iam/rbac: forbidden"}, ""},
		{"transient", []spec.Requirement{docker("old", ">= 1.4"), kube("iam", "flaky", ">= 1")}, nil, "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := a.requirementProblems(context.Background(), "api", tt.rs)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("problems %q, want %q", got, tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("problem %q, want %q", got[i], w)
				}
			}
		})
	}
	t.Run("platform not configured", func(t *testing.T) {
		a := &Activities{Platforms: map[string]Platform{"docker": p}}
		got, err := a.requirementProblems(context.Background(), "api", []spec.Requirement{kube("iam", "auth", "1")})
		if err != nil || len(got) != 1 || !strings.Contains(got[0], `platform "kubernetes" is not configured`) {
			t.Fatalf("problems %q, %v", got, err)
		}
	})
}

func TestCapacityProblems(t *testing.T) {
	web := spec.Spec{Service: "web", Image: "web:2", Strategy: spec.Strategy{Type: spec.BlueGreen},
		Platform: spec.Platform{Docker: &spec.Docker{Replicas: 3, Port: 80}}}.WithDefaults()
	short := platform.CapacityReport{Instances: 3, Fits: false,
		PerInstance: map[string]string{"memory": "1Gi"}, Need: map[string]string{"memory": "3Gi"},
		Free: map[string]string{"memory": "2Gi"}, Detail: "memory 3Gi needed, 2Gi free of 8Gi"}
	tests := []struct {
		name   string
		p      Platform
		spec   spec.Spec
		want   string
		extra  int
		errMsg string
	}{
		{name: "fits", p: &prereqPlatform{snaps: map[string]platform.Snapshot{"docker:web": running("web:1", "web:1", "web:1")},
			report: platform.CapacityReport{Fits: true}}, spec: web, extra: 3},
		{name: "does not fit", p: &prereqPlatform{snaps: map[string]platform.Snapshot{"docker:web": running("web:1", "web:1", "web:1")},
			report: short}, spec: web, extra: 3,
			want: "service web: capacity: the blue-green rollout of docker:web runs 3 instance(s) beyond the 3 running at its peak, " +
				"needing memory 3Gi (memory 1Gi each); free: memory 2Gi (memory 3Gi needed, 2Gi free of 8Gi)"},
		{name: "nothing extra: not asked", p: &prereqPlatform{snaps: map[string]platform.Snapshot{"docker:web": running("web:1", "web:1", "web:1")},
			report: short}, spec: func() spec.Spec { s := web; s.Strategy = spec.Strategy{Type: spec.Recreate}; return s.WithDefaults() }()},
		{name: "no capacity on the platform", p: &plainPlatform{}, spec: web},
		{name: "forbidden: skipped", p: &prereqPlatform{capErr: platform.ErrForbidden}, spec: web, extra: 3},
		{name: "target missing: Preflight reports it", p: &prereqPlatform{snapErr: map[string]error{"docker:web": &platform.TargetNotFoundError{What: "x"}}}, spec: web},
		{name: "transient", p: &prereqPlatform{capErr: errors.New("engine down")}, spec: web, extra: 3, errMsg: "engine down"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &Activities{Platforms: map[string]Platform{"docker": tt.p}}
			got, err := a.capacityProblems(context.Background(), "web", tt.spec)
			if tt.errMsg != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errMsg) {
					t.Fatalf("err = %v, want %q", err, tt.errMsg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == "" && len(got) > 0 || tt.want != "" && (len(got) != 1 || got[0] != tt.want) {
				t.Fatalf("problems %q, want %q", got, tt.want)
			}
			if pp, ok := tt.p.(*prereqPlatform); ok && pp.askedFor != tt.extra {
				t.Errorf("Capacity asked for %d extra, want %d", pp.askedFor, tt.extra)
			}
		})
	}
}

func TestPrerequisiteProblems(t *testing.T) {
	p := &prereqPlatform{
		snaps:  map[string]platform.Snapshot{"docker:billing": running("billing:1.0.0")},
		report: platform.CapacityReport{Fits: false, Detail: "memory short"},
	}
	a := &Activities{Platforms: map[string]Platform{"docker": p}}
	web := spec.Spec{Service: "web", Strategy: spec.Strategy{Type: spec.BlueGreen},
		Platform: spec.Platform{Docker: &spec.Docker{Replicas: 2}}}.WithDefaults()
	rs := []spec.Requirement{{Service: "billing", Platform: &spec.Platform{Docker: &spec.Docker{}}, Version: ">= 2"}}
	got, err := a.prerequisiteProblems(context.Background(), "web", web, rs)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !strings.Contains(got[0], "billing runs 1.0.0") || !strings.Contains(got[1], "memory short") {
		t.Fatalf("problems %q: want the requirement, then the capacity", got)
	}
}
