package spec

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
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
	// Config is the base configuration: environment variables for every
	// Docker service. Profiles override it per environment; see Effective.
	Config map[string]string `json:"config,omitempty"`
	// Profiles holds per-environment overrides, applied when the release's
	// environment names one.
	Profiles map[string]Profile `json:"profiles,omitempty"`
	// Policy holds the security rules every service's spec must meet.
	Policy ReleasePolicy `json:"policy,omitempty"`
	// Integration checks run across services once every stage has passed.
	Integration *Integration `json:"integration,omitempty"`
	// Readiness criteria decide production readiness at the end.
	Readiness []Criterion `json:"readiness,omitempty"`
	// Notifications say where to tell about the release's events.
	Notifications []Notification `json:"notifications,omitempty"`
}

// Profile overrides configuration for one environment: for every service,
// and per service.
type Profile struct {
	Config   map[string]string            `json:"config,omitempty"`
	Services map[string]map[string]string `json:"services,omitempty"`
}

// ReleasePolicy holds security rules checked before anything starts.
type ReleasePolicy struct {
	// ForbidLatest refuses images without a tag or tagged :latest.
	ForbidLatest bool `json:"forbidLatest,omitempty"`
	// RequireLabels lists labels every Docker service must carry.
	RequireLabels []string `json:"requireLabels,omitempty"`
}

// Integration is a set of cross-service checks (fixed targets, no
// {{.Address}}), passed when one round of them is healthy within Attempts
// rounds, Interval apart.
type Integration struct {
	Checks   []Check  `json:"checks"`
	Attempts int      `json:"attempts,omitempty"`
	Interval Duration `json:"interval,omitempty"`
}

// Readiness categories and severities.
const (
	SeverityCritical = "critical"
	SeverityWarning  = "warning"
)

var readinessCategories = []string{"performance", "security", "operational", "monitoring", "documentation"}

// Criterion is a production-readiness criterion: a check with a category
// and a severity. A critical one failing makes the release not ready (it
// rolls back); a warning one makes it ready with warnings.
type Criterion struct {
	Check
	Category string `json:"category"`
	Severity string `json:"severity"`
}

// ReleaseService is one service of a release.
type ReleaseService struct {
	Name      string   `json:"name"`
	DependsOn []string `json:"dependsOn,omitempty"`
	// Requires lists version constraints on services this one needs.
	Requires []Requirement `json:"requires,omitempty"`
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
	if err := yaml.UnmarshalStrict(yamlReadable(data), &r); err != nil {
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

// RequestID identifies the request: a hash of the release with defaults
// applied, so starting the same release again joins the running one.
func (r Release) RequestID() string {
	b, _ := json.Marshal(r.WithDefaults())
	sum := sha256.Sum256(b)
	return "release-" + hex.EncodeToString(sum[:8])
}

// WithDefaults returns a copy with every unset field given its default, and
// the stages derived from the graph when none are given.
func (r Release) WithDefaults() Release {
	if r.Mode == "" {
		r.Mode = Parallel
	}
	orDefault(&r.ActivationTimeout, Duration(DefaultActivationTimeout))
	orDefault(&r.Timeout, Duration(DefaultReleaseTimeout))
	if r.Integration != nil {
		in := *r.Integration
		if in.Attempts == 0 {
			in.Attempts = 3
		}
		orDefault(&in.Interval, Duration(5*time.Second))
		in.Checks = checksWithDefaults(in.Checks, Duration(DefaultCheckTimeout))
		r.Integration = &in
	}
	if len(r.Readiness) > 0 {
		crit := make([]Criterion, len(r.Readiness))
		for i, c := range r.Readiness {
			c.Check = checksWithDefaults([]Check{c.Check}, Duration(DefaultCheckTimeout))[0]
			if c.Severity == "" {
				c.Severity = SeverityCritical
			}
			crit[i] = c
		}
		r.Readiness = crit
	}
	svcs := make([]ReleaseService, len(r.Services))
	for i, s := range r.Services {
		s.Deploy = r.configure(s).WithDefaults()
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

// configure returns a service's rollout spec with the release's
// configuration applied. A Docker service gets it merged into its
// environment, in this order, later winning: the release's config, the
// service's own env, the environment's profile config, the profile's entry
// for the service. A Kubernetes service gets the ConfigMap its preparation
// writes (ConfigMapName), which the new version's pods take their
// environment from.
func (r Release) configure(s ReleaseService) Spec {
	d := s.Deploy
	config := r.ServiceConfig(s.Name)
	if len(config) == 0 {
		return d
	}
	switch {
	case d.Platform.Docker != nil:
		dc := *d.Platform.Docker
		env := maps.Clone(config)
		for k := range dc.SecretEnv {
			delete(env, k) // the service's secret wins over shared config
		}
		for k, v := range dc.Env {
			if _, ok := env[k]; !ok || !r.profileSets(s.Name, k) {
				env[k] = v
			}
		}
		dc.Env = env
		d.Platform.Docker = &dc
	case d.Platform.Kubernetes != nil:
		k := *d.Platform.Kubernetes
		if k.ConfigMap == "" || strings.HasPrefix(k.ConfigMap, configMapPrefix(k.Deployment)) {
			k.ConfigMap = ConfigMapName(k.Deployment, config)
		}
		d.Platform.Kubernetes = &k
	}
	return d
}

// ServiceConfig is the release's configuration for one service, before a
// Docker service's own env: the base config, then the environment's
// profile config, then the profile's entry for the service, later winning.
// Nil when there is none.
func (r Release) ServiceConfig(name string) map[string]string {
	p := r.Profiles[r.Environment]
	var out map[string]string
	for _, l := range []map[string]string{r.Config, p.Config, p.Services[name]} {
		for k, v := range l {
			if out == nil {
				out = map[string]string{}
			}
			out[k] = v
		}
	}
	return out
}

// profileSets reports whether the environment's profile sets key for the
// service, which then wins over the service's own env.
func (r Release) profileSets(name, key string) bool {
	p := r.Profiles[r.Environment]
	_, a := p.Config[key]
	_, b := p.Services[name][key]
	return a || b
}

// ConfigMapName names the ConfigMap holding a Kubernetes service's release
// configuration: the Deployment's name, "-config-" and a hash of the
// content, so a change of configuration is a new, immutable ConfigMap and
// a rollback returns to the old one untouched.
func ConfigMapName(deployment string, config map[string]string) string {
	h := sha256.New()
	for _, k := range sortedKeys(config) {
		fmt.Fprintf(h, "%s=%s\n", k, config[k])
	}
	return configMapPrefix(deployment) + hex.EncodeToString(h.Sum(nil))[:10]
}

// configMapPrefix is how every release ConfigMap of a Deployment begins,
// within the 63 characters of a name.
func configMapPrefix(deployment string) string {
	if len(deployment) > 45 {
		deployment = strings.TrimRight(deployment[:45], "-")
	}
	return deployment + "-config-"
}

// IsReleaseConfigMap reports whether name is one of the ConfigMaps a
// release writes for deployment.
func IsReleaseConfigMap(deployment, name string) bool {
	return strings.HasPrefix(name, configMapPrefix(deployment))
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
// rollout spec included, under the current rules, and returns a
// *ValidationError naming every bad field, or nil.
func (r Release) Validate() error { return r.ValidateUnder(RulesCurrent) }

// ValidateUnder is Validate under the given rules (see Rules).
func (r Release) ValidateUnder(rules Rules) error {
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
		if err := s.Deploy.ValidateUnder(rules); err != nil {
			if ve, ok := err.(*ValidationError); ok {
				for _, p := range ve.Problems {
					if p.Field == "spec" { // the whole spec
						add(f+".deploy", "%s", p.Message)
						continue
					}
					add(f+".deploy."+p.Field, "%s", p.Message)
				}
			}
		}
		if r.Policy.ForbidLatest && usesLatest(s.Deploy.Image) {
			add(f+".deploy.image", "%q is untagged or :latest, which policy.forbidLatest forbids", s.Deploy.Image)
		}
		for _, l := range r.Policy.RequireLabels {
			if d := s.Deploy.Platform.Docker; d != nil && d.Labels[l] == "" {
				add(f+".deploy.platform.docker.labels", "label %q is required by policy.requireLabels", l)
			}
		}
		r.validateRequires(add, f+".requires", s.Requires)
		if s.Deploy.Service != "" && s.Deploy.PlatformName() != "" {
			key := s.Deploy.TargetKey()
			if other, ok := targets[key]; ok {
				add(f+".deploy", "targets %s, as %q does", key, other)
			}
			targets[key] = s.Name
		}
	}
	validateReleaseChecks(add, r)
	validateConfig(add, r)
	ValidateNotifications(add, "notifications", r.Notifications)
	if rules >= RulesBounded {
		r.validateBounds(add)
	}
	if rules >= RulesBoundaries {
		r.validateBoundaries(add)
	}
	if rules >= RulesStorable {
		// Each service's spec has reported its own already.
		storable(func(field, format string, args ...any) {
			if !slices.ContainsFunc(errs, func(e FieldError) bool { return e.Field == field }) {
				add(field, format, args...)
			}
		}, "", r)
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
	for _, n := range slices.Sorted(maps.Keys(stageOf)) { // in order: Validate is deterministic
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

// usesLatest reports whether an image reference has no tag (and no digest)
// or the tag latest.
func usesLatest(image string) bool {
	if strings.Contains(image, "@") {
		return false
	}
	name := image[strings.LastIndex(image, "/")+1:]
	i := strings.LastIndex(name, ":")
	return i < 0 || name[i+1:] == "latest"
}

// validateReleaseChecks checks the integration checks and readiness
// criteria: valid checks, unique names, fixed targets.
func validateReleaseChecks(add func(string, string, ...any), r Release) {
	seen := map[string]string{}
	check := func(f string, c Check) {
		validateCheck(add, f, c, seen)
		if c.PerInstance() {
			add(f, "must name a fixed target: %s applies only to a service's own checks", AddressPlaceholder)
		}
	}
	if in := r.Integration; in != nil {
		if len(in.Checks) == 0 {
			add("integration.checks", "at least one check is required")
		}
		for i, c := range in.Checks {
			check(fmt.Sprintf("integration.checks[%d]", i), c)
		}
		if in.Attempts < 1 || in.Attempts > 100 {
			add("integration.attempts", "must be 1-100, got %d", in.Attempts)
		}
		positive(add, "integration.interval", in.Interval)
	}
	for i, c := range r.Readiness {
		f := fmt.Sprintf("readiness[%d]", i)
		check(f, c.Check)
		oneOf(add, f+".category", c.Category, readinessCategories...)
		oneOf(add, f+".severity", c.Severity, SeverityCritical, SeverityWarning)
	}
}

// ReleaseChecks lists the integration checks and readiness criteria'
// checks, for the worker's command allowlist.
func (r Release) ReleaseChecks() Health {
	var h Health
	if r.Integration != nil {
		h.Checks = append(h.Checks, r.Integration.Checks...)
	}
	for _, c := range r.Readiness {
		h.Checks = append(h.Checks, c.Check)
	}
	return h
}

// validateConfig checks configuration names and where it can apply.
func validateConfig(add func(string, string, ...any), r Release) {
	names := func(field string, m map[string]string) {
		for _, k := range sortedKeys(m) {
			if !envKeyRE.MatchString(k) {
				add(field+"."+k, "is not an environment variable name")
			}
		}
	}
	names("config", r.Config)
	for _, env := range slices.Sorted(maps.Keys(r.Profiles)) {
		p := r.Profiles[env]
		names("profiles."+env+".config", p.Config)
		for _, svc := range slices.Sorted(maps.Keys(p.Services)) {
			if _, ok := r.Service(svc); !ok {
				add("profiles."+env+".services."+svc, "is not a service of this release")
			}
			names("profiles."+env+".services."+svc, p.Services[svc])
		}
	}
	for i, s := range r.Services {
		k := s.Deploy.Platform.Kubernetes
		if config := r.ServiceConfig(s.Name); k != nil && len(config) > 0 && k.ConfigMap != ConfigMapName(k.Deployment, config) {
			add(fmt.Sprintf("services[%d].deploy.platform.kubernetes.configMap", i), "%q: the release's configuration sets it (to %s)", k.ConfigMap, ConfigMapName(k.Deployment, config))
		}
	}
}
