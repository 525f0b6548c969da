package spec

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// Release stage modes.
const (
	Parallel   = "parallel"
	Sequential = "sequential"
)

// Release defaults.
const (
	DefaultActivationTimeout = time.Hour
	DefaultReleaseTimeout    = 6 * time.Hour
)

// Release is a multi-service release: services with their dependencies,
// each with its own rollout spec, activated in dependency order.
type Release struct {
	// Name identifies the release; with the environment it names the
	// release's workflow.
	Name        string `json:"name"`
	Environment string `json:"environment"`
	// Services to roll out, each with its dependencies.
	Services []ReleaseService `json:"services"`
	// Stages gives the activation order explicitly; without it, stages are
	// derived from the dependency graph as waves.
	Stages []ReleaseStage `json:"stages,omitempty"`
	// Mode is how derived waves run: parallel (default) or sequential.
	Mode string `json:"mode,omitempty"`
	// ActivationTimeout bounds each derived wave (default 1h).
	ActivationTimeout Duration `json:"activationTimeout,omitempty"`
	// Timeout bounds the whole release (default 6h).
	Timeout Duration `json:"timeout,omitempty"`
}

// ReleaseService is one service of a release.
type ReleaseService struct {
	Name      string   `json:"name"`
	DependsOn []string `json:"dependsOn,omitempty"`
	// Deploy is the service's rollout spec (any strategy, any platform).
	Deploy Spec `json:"deploy"`
}

// ReleaseStage is one activation stage: services started together
// (parallel) or one after another (sequential), within a timeout.
type ReleaseStage struct {
	Name     string   `json:"name,omitempty"`
	Services []string `json:"services"`
	Mode     string   `json:"mode,omitempty"`
	Timeout  Duration `json:"timeout,omitempty"`
}

// ParseRelease reads a release (YAML or JSON), applies defaults and
// validates it in full.
func ParseRelease(data []byte) (Release, error) {
	var r Release
	if err := yaml.UnmarshalStrict(data, &r); err != nil {
		return Release{}, &ValidationError{Problems: []FieldError{{Field: "release", Message: err.Error()}}}
	}
	r = r.WithDefaults()
	if err := r.Validate(); err != nil {
		return Release{}, err
	}
	return r, nil
}

// WorkflowID names the release's workflow.
func (r Release) WorkflowID() string {
	return "release:" + r.Environment + "/" + r.Name
}

// WithDefaults returns a copy with every unset field given its default, and
// the stages derived from the graph when none are given.
func (r Release) WithDefaults() Release {
	if r.Mode == "" {
		r.Mode = Parallel
	}
	orDefault(&r.ActivationTimeout, Duration(DefaultActivationTimeout))
	orDefault(&r.Timeout, Duration(DefaultReleaseTimeout))
	svcs := make([]ReleaseService, len(r.Services))
	for i, s := range r.Services {
		s.Deploy = s.Deploy.WithDefaults()
		svcs[i] = s
	}
	r.Services = svcs
	if len(r.Stages) == 0 {
		if waves, err := r.Waves(); err == nil {
			for i, w := range waves {
				r.Stages = append(r.Stages, ReleaseStage{Name: fmt.Sprintf("wave %d", i+1), Services: w, Mode: r.Mode, Timeout: r.ActivationTimeout})
			}
		}
	} else {
		stages := make([]ReleaseStage, len(r.Stages))
		for i, st := range r.Stages {
			if st.Name == "" {
				st.Name = fmt.Sprintf("stage %d", i+1)
			}
			if st.Mode == "" {
				st.Mode = r.Mode
			}
			orDefault(&st.Timeout, r.ActivationTimeout)
			stages[i] = st
		}
		r.Stages = stages
	}
	return r
}

// Waves orders the services by dependency: wave 1 holds those that depend
// on nothing, each later wave those whose dependencies are all in earlier
// waves; within a wave, in the order the services are listed. A cycle or an
// unknown dependency is an error naming it.
func (r Release) Waves() ([][]string, error) {
	if err := r.graphError(); err != nil {
		return nil, err
	}
	placed := map[string]bool{}
	var waves [][]string
	for len(placed) < len(r.Services) {
		var wave []string
		for _, s := range r.Services {
			if placed[s.Name] || slices.Contains(wave, s.Name) {
				continue
			}
			ready := true
			for _, d := range s.DependsOn {
				ready = ready && placed[d]
			}
			if ready {
				wave = append(wave, s.Name)
			}
		}
		if len(wave) == 0 {
			break // only duplicates are left, which Validate reports
		}
		for _, n := range wave {
			placed[n] = true
		}
		waves = append(waves, wave)
	}
	return waves, nil
}

// graphError reports an unknown dependency or a cycle, naming it.
func (r Release) graphError() error {
	deps := map[string][]string{}
	for _, s := range r.Services {
		deps[s.Name] = s.DependsOn
	}
	for _, s := range r.Services {
		for _, d := range s.DependsOn {
			if _, ok := deps[d]; !ok {
				return fmt.Errorf("%q depends on %q, which is not a service of this release", s.Name, d)
			}
		}
	}
	const (
		unseen = iota
		onPath
		done
	)
	state := map[string]int{}
	var path []string
	var visit func(n string) []string
	visit = func(n string) []string {
		state[n] = onPath
		path = append(path, n)
		for _, d := range deps[n] {
			switch state[d] {
			case onPath:
				i := slices.Index(path, d)
				return append(slices.Clone(path[i:]), d)
			case unseen:
				if c := visit(d); c != nil {
					return c
				}
			}
		}
		path = path[:len(path)-1]
		state[n] = done
		return nil
	}
	for _, s := range r.Services {
		if state[s.Name] == unseen {
			if c := visit(s.Name); c != nil {
				return fmt.Errorf("dependency cycle: %s", strings.Join(c, " → "))
			}
		}
	}
	return nil
}

// Validate checks the whole release (defaults applied), every service's
// rollout spec included, and returns a *ValidationError naming every bad
// field, or nil.
func (r Release) Validate() error {
	var errs []FieldError
	add := func(field, format string, args ...any) {
		errs = append(errs, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	switch {
	case r.Name == "":
		add("name", "is required")
	case !serviceRE.MatchString(r.Name):
		add("name", "%q must be lowercase letters, digits and '-', at most 63 characters", r.Name)
	}
	switch {
	case r.Environment == "":
		add("environment", "is required")
	case !serviceRE.MatchString(r.Environment):
		add("environment", "%q must be lowercase letters, digits and '-', at most 63 characters", r.Environment)
	}
	oneOf(add, "mode", r.Mode, Parallel, Sequential)
	positive(add, "activationTimeout", r.ActivationTimeout)
	positive(add, "timeout", r.Timeout)
	if len(r.Services) == 0 {
		add("services", "at least one service is required")
	}
	names := map[string]int{}
	targets := map[string]string{}
	for i, s := range r.Services {
		f := fmt.Sprintf("services[%d]", i)
		switch {
		case s.Name == "":
			add(f+".name", "is required")
		case names[s.Name] > 0:
			add(f+".name", "%q is used twice", s.Name)
		}
		names[s.Name]++
		for j, d := range s.DependsOn {
			if d == s.Name {
				add(fmt.Sprintf("%s.dependsOn[%d]", f, j), "%q depends on itself", d)
			}
		}
		if err := s.Deploy.Validate(); err != nil {
			if ve, ok := err.(*ValidationError); ok {
				for _, p := range ve.Problems {
					add(f+".deploy."+p.Field, "%s", p.Message)
				}
			}
		}
		if s.Deploy.Release != "" {
			add(f+".deploy.release", "is set by the release itself")
		}
		if s.Deploy.Service != "" && s.Deploy.PlatformName() != "" {
			key := s.Deploy.TargetKey()
			if other, ok := targets[key]; ok {
				add(f+".deploy", "targets %s, as %q does", key, other)
			}
			targets[key] = s.Name
		}
	}
	if err := r.graphError(); err != nil {
		add("services", "%v", err)
	} else if len(r.Stages) > 0 {
		validateStages(add, r)
	}
	if len(errs) > 0 {
		return &ValidationError{Problems: errs}
	}
	return nil
}

// validateStages checks explicit stages: every service exactly once, and
// after everything it depends on.
func validateStages(add func(string, string, ...any), r Release) {
	stageOf := map[string]int{}
	for i, st := range r.Stages {
		f := fmt.Sprintf("stages[%d]", i)
		oneOf(add, f+".mode", st.Mode, Parallel, Sequential)
		positive(add, f+".timeout", st.Timeout)
		if len(st.Services) == 0 {
			add(f+".services", "at least one service is required")
		}
		for j, n := range st.Services {
			if _, dup := stageOf[n]; dup {
				add(fmt.Sprintf("%s.services[%d]", f, j), "%q is in more than one stage", n)
			}
			stageOf[n] = i
		}
	}
	for _, s := range r.Services {
		i, ok := stageOf[s.Name]
		if !ok {
			add("stages", "service %q is in no stage", s.Name)
			continue
		}
		for _, d := range s.DependsOn {
			if j, ok := stageOf[d]; ok && j >= i && !(j == i && r.Stages[i].Mode == Sequential && before(r.Stages[i].Services, d, s.Name)) {
				add(fmt.Sprintf("stages[%d]", i), "%q starts before %q, which it depends on, has succeeded", s.Name, d)
			}
		}
	}
	for n := range stageOf {
		if !slices.ContainsFunc(r.Services, func(s ReleaseService) bool { return s.Name == n }) {
			add("stages", "%q is not a service of this release", n)
		}
	}
}

func before(list []string, a, b string) bool {
	return slices.Index(list, a) < slices.Index(list, b)
}

// Service returns the named service.
func (r Release) Service(name string) (ReleaseService, bool) {
	for _, s := range r.Services {
		if s.Name == name {
			return s, true
		}
	}
	return ReleaseService{}, false
}
