package spec

import (
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// FieldError is one problem with one field, named by its path in the spec.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (e FieldError) Error() string { return e.Field + ": " + e.Message }

// ValidationError lists every problem found in a spec.
type ValidationError struct {
	Problems []FieldError `json:"problems"`
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.Error()
	}
	return "invalid spec: " + strings.Join(parts, "; ")
}

var (
	serviceRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	envKeyRE  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	// imageRE is a permissive reference check: [registry/]name[:tag][@digest].
	imageRE = regexp.MustCompile(`^[a-z0-9]+([._/:-][a-z0-9]+)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$`)
	nameRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
	// dnsLabelRE is an RFC 1123 label, as Kubernetes names most objects.
	dnsLabelRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
)

// MaxReplicas bounds a target's instance count.
const MaxReplicas = 1000

// Rules is a set of validation rules, named for what it brought. Validate
// applies the current set. Workflow code, which validates the spec it
// runs, validates a run that started under an older set with that set
// (chosen by workflow.GetVersion), so a spec it accepted then is not
// refused on replay, which would change the run's commands.
type Rules int

const (
	// RulesUnbounded are the rules before upper bounds: a spec is checked
	// for shape and lower bounds only.
	RulesUnbounded Rules = iota
	// RulesBounded (December 2026) adds an upper bound to every duration,
	// count and length (limits.go), checks durations against the rollout's
	// timeout, and requires the approval gates' windows and the bakes to
	// fit in it.
	RulesBounded
	// RulesBoundaries (December 2026) adds the security boundaries of the
	// December review (boundaries.go): Docker specs may not join the
	// engine's shared networks (host, none, bridge, default, container:*)
	// nor set labels under prefixes other tools act on; a command's
	// argv[0] must be a clean path; the webhook signature headers are the
	// sender's; a check header holds no line break.
	RulesBoundaries
	// RulesStorable (December 2026) refuses a NUL character in any string
	// of the spec or release, key or value (storable.go): PostgreSQL cannot
	// store it, and the run's audit trail would never be written.
	RulesStorable
	// RulesCurrent is what Validate applies.
	RulesCurrent = RulesStorable
)

// Validate checks the whole spec (defaults applied) under the current
// rules and returns a *ValidationError naming every bad field, or nil.
func (s Spec) Validate() error { return s.ValidateUnder(RulesCurrent) }

// ValidateUnder is Validate under the given rules.
func (s Spec) ValidateUnder(rules Rules) error {
	var errs []FieldError
	add := func(field, format string, args ...any) {
		errs = append(errs, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	bounded := rules >= RulesBounded

	switch {
	case s.Service == "":
		add("service", "is required")
	case !serviceRE.MatchString(s.Service):
		add("service", "%q must be lowercase letters, digits and '-', at most 63 characters", s.Service)
	}
	switch {
	case s.Image == "":
		add("image", "is required")
	case bounded && len(s.Image) > MaxImageLength:
		add("image", "is %d bytes long, more than the %d allowed", len(s.Image), MaxImageLength)
	case !imageRE.MatchString(s.Image):
		add("image", "%q is not a valid image reference", s.Image)
	}
	if bounded {
		textAtMost(add, "executionId", s.ExecutionID, MaxExecutionIDLength, true)
		// Controls take an ID with these prefixes for a workflow ID: an
		// execution ID spelled like one could never be addressed as itself.
		for _, prefix := range []string{"deploy:", "release:"} {
			if strings.HasPrefix(s.ExecutionID, prefix) {
				add("executionId", "must not start with %q, which names a workflow ID", prefix)
			}
		}
	} else if len(s.ExecutionID) > MaxExecutionIDLength {
		add("executionId", "is longer than 200 characters")
	}
	if bounded {
		durationAtMost(add, "timeout", s.Timeout, MaxTimeout, "a rollout's timeout")
	} else if s.Timeout < 0 {
		add("timeout", "must not be negative")
	}
	if bounded && s.Environment != "" {
		switch {
		case len(s.Environment) > 63:
			add("environment", "is %d bytes long, more than the 63 allowed", len(s.Environment))
		case !serviceRE.MatchString(s.Environment):
			add("environment", "%q must be lowercase letters, digits and '-', at most 63 characters", s.Environment)
		}
	}

	switch {
	case s.Platform.Docker != nil && s.Platform.Kubernetes != nil:
		add("platform", "only one of platform.docker and platform.kubernetes may be set")
	case s.Platform.Docker != nil:
		d := s.Platform.Docker
		ValidateResources(add, "platform.docker.resources", d.Resources)
		if d.Replicas < 1 || d.Replicas > MaxReplicas {
			add("platform.docker.replicas", "must be between 1 and %d, got %d", MaxReplicas, d.Replicas)
		}
		if d.Port < 1 || d.Port > 65535 {
			add("platform.docker.port", "must be between 1 and 65535, got %d", d.Port)
		}
		for _, k := range sortedKeys(d.Env) {
			if !envKeyRE.MatchString(k) {
				add("platform.docker.env."+k, "is not a valid environment variable name")
			}
		}
		validateSecretEnv(add, "platform.docker", true, d.SecretEnv, d.Env)
		for _, k := range sortedKeys(d.Labels) {
			if strings.HasPrefix(k, "stagecraft.") {
				add("platform.docker.labels."+k, "the stagecraft.* label prefix is reserved")
			}
		}
		if !nameRE.MatchString(d.Network) {
			add("platform.docker.network", "%q is not a valid network name", d.Network)
		}
	case s.Platform.Kubernetes != nil:
		k := s.Platform.Kubernetes
		for _, f := range [][2]string{{"namespace", k.Namespace}, {"deployment", k.Deployment}} {
			field, v := f[0], f[1]
			if v == "" {
				add("platform.kubernetes."+field, "is required")
			} else if !dnsLabelRE.MatchString(v) {
				add("platform.kubernetes."+field, "%q is not a valid Kubernetes name", v)
			}
		}
		if k.ConfigMap != "" && !dnsLabelRE.MatchString(k.ConfigMap) {
			add("platform.kubernetes.configMap", "%q is not a valid Kubernetes name", k.ConfigMap)
		}
		validateSecretEnv(add, "platform.kubernetes", false, k.SecretEnv, nil)
		if k.Service != "" && !dnsLabelRE.MatchString(k.Service) {
			add("platform.kubernetes.service", "%q is not a valid Kubernetes name", k.Service)
		}
		if k.Replicas < 0 || k.Replicas > MaxReplicas {
			add("platform.kubernetes.replicas", "must be between 1 and %d (or unset to keep the current count), got %d", MaxReplicas, k.Replicas)
		}
		if k.ProgressDeadline < 0 {
			add("platform.kubernetes.progressDeadline", "must not be negative")
		}
		// checkVia is newer than the rules before RulesBoundaries: a
		// spec a run validated under them (a raw JSON client's unknown
		// field was dropped then, read now) is not refused on replay.
		if rules >= RulesBoundaries {
			switch k.CheckVia {
			case "", CheckViaPodIP, CheckViaPortForward:
			default:
				add("platform.kubernetes.checkVia", "must be %s or %s (or unset for the worker's setting), got %q", CheckViaPodIP, CheckViaPortForward, k.CheckVia)
			}
		}
		if k.Cluster != "" {
			// Older rules never saw the field: a spec validated under them
			// kept no cluster (a raw client's unknown field was dropped).
			switch {
			case rules < RulesBoundaries:
			case !dnsLabelRE.MatchString(k.Cluster):
				add("platform.kubernetes.cluster", "%q is not a valid cluster name (lowercase letters, digits and '-', at most 63)", k.Cluster)
			case k.Kubeconfig != "" || k.Context != "":
				add("platform.kubernetes.cluster", "a cluster is named: the worker knows its kubeconfig and context, so set neither")
			}
		}
		if s.Strategy.Type == BlueGreen && k.Service == "" {
			add("platform.kubernetes.service", "is required for blue-green: its selector is what switches traffic")
		}
	default:
		add("platform", "exactly one platform is required (platform.docker or platform.kubernetes)")
	}

	st := s.Strategy
	// Bake is checked per type: its default is per type, so a missing or
	// unknown type leaves it unset and reporting it would name a field the
	// caller never wrote.
	switch st.Type {
	case "":
		add("strategy.type", "is required (canary, blue-green, rolling or recreate)")
	case Canary:
		if len(st.Steps) == 0 {
			add("strategy.steps", "at least one step is required")
		}
		prev := 0
		for i, p := range st.Steps {
			if p <= prev || p > 100 {
				add(fmt.Sprintf("strategy.steps[%d]", i), "%d must be greater than the previous step and at most 100", p)
			}
			prev = p
		}
		if len(st.Steps) > 0 && st.Steps[len(st.Steps)-1] != 100 {
			add("strategy.steps", "the last step must be 100")
		}
		positive(add, "strategy.bake", st.Bake)
	case BlueGreen:
		positive(add, "strategy.bakeBeforeSwitch", st.BakeBeforeSwitch)
		positive(add, "strategy.bakeAfterSwitch", st.BakeAfterSwitch)
	case Rolling:
		if st.BatchSize < 1 {
			add("strategy.batchSize", "must be at least 1, got %d", st.BatchSize)
		}
		positive(add, "strategy.bake", st.Bake)
	case Recreate:
		positive(add, "strategy.bake", st.Bake)
	default:
		add("strategy.type", "%q is not one of canary, blue-green, rolling, recreate", st.Type)
	}
	if st.Type != Canary && len(st.Steps) > 0 {
		add("strategy.steps", "only applies to canary")
	}
	if st.KeepBlueFor < 0 {
		add("strategy.keepBlueFor", "must not be negative")
	}
	if st.Type != BlueGreen && st.KeepBlueFor != 0 {
		add("strategy.keepBlueFor", "only applies to blue-green")
	}
	if st.Type != Rolling && st.BatchSize != 0 {
		add("strategy.batchSize", "only applies to rolling")
	}

	s.Health.validate(add)
	validateApproval(add, s.Strategy, s.Approval)
	ValidateNotifications(add, "notifications", s.Notifications)
	if bounded {
		s.validateBounds(add)
	}
	if rules >= RulesBoundaries {
		s.validateBoundaries(add)
	}
	if rules >= RulesStorable {
		storable(add, "", s)
	}
	if len(errs) > 0 {
		return &ValidationError{Problems: errs}
	}
	return nil
}

// validateApproval checks the approval gates against the strategy's stages.
func validateApproval(add func(string, string, ...any), st Strategy, a *Approval) {
	if a == nil {
		return
	}
	if len(a.Before) == 0 {
		add("approval.before", "lists no stage; give the percentages whose stages need approval, e.g. [100]")
	}
	for i, p := range a.Before {
		f := fmt.Sprintf("approval.before[%d]", i)
		switch {
		case p < 0 || p > 100:
			add(f, "%d is not a percentage", p)
		case st.Type == Canary && !slices.Contains(st.Steps, p):
			add(f, "%d%% is not one of the canary's steps %v", p, st.Steps)
		case st.Type == BlueGreen && p != 0 && p != 100:
			add(f, "blue-green has two stages: 0 (green up) and 100 (switch), not %d", p)
		case st.Type == Recreate && p != 100:
			add(f, "recreate has one stage, 100, not %d", p)
		}
		if slices.Contains(a.Before[:i], p) {
			add(f, "%d is listed twice", p)
		}
	}
	if a.Timeout < 0 {
		add("approval.timeout", "must not be negative")
	}
	if a.OnTimeout != OnTimeoutAbort && a.OnTimeout != OnTimeoutProceed {
		add("approval.onTimeout", "%q is not one of abort, proceed", a.OnTimeout)
	}
}

// AddressPlaceholder in a check URL or address stands for each instance's
// published address (127.0.0.1:hostport).
const AddressPlaceholder = "{{.Address}}"

func validateURL(add func(string, string, ...any), field, raw string) {
	if raw == "" {
		add(field, "is required")
		return
	}
	u, err := url.Parse(strings.ReplaceAll(raw, AddressPlaceholder, "127.0.0.1:1"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		add(field, "%q must be an http(s) URL", raw)
	}
}

func positive(add func(string, string, ...any), field string, d Duration) {
	if d <= 0 {
		add(field, "must be a positive duration")
	}
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
