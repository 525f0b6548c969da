package spec

import (
	"fmt"
	"time"
)

// validateBounds reports every duration, count and length of s above its
// limit (limits.go), and every duration that cannot fit in the rollout's
// timeout. Durations are compared as they run: with defaults applied, so a
// spec is judged the same with or without them.
func (s Spec) validateBounds(add func(string, string, ...any)) {
	eff := s.WithDefaults()
	timeout := eff.Timeout.D()
	// withinTimeout reports d (a value of s, after defaults) above the
	// rollout's timeout, which would cut it short every time.
	withinTimeout := func(field string, d Duration, why string) {
		if timeout > 0 && d.D() > timeout {
			add(field, "%s is longer than timeout %s: %s", d.D(), timeout, why)
		}
	}

	st, est := s.Strategy, eff.Strategy
	for _, b := range []struct {
		field   string
		d, effD Duration
	}{
		{"strategy.bake", st.Bake, est.Bake},
		{"strategy.bakeBeforeSwitch", st.BakeBeforeSwitch, est.BakeBeforeSwitch},
		{"strategy.bakeAfterSwitch", st.BakeAfterSwitch, est.BakeAfterSwitch},
	} {
		if b.d.D() > MaxTimeout {
			durationAtMost(add, b.field, b.d, MaxTimeout, "a bake")
			continue
		}
		if b.effD > 0 {
			withinTimeout(b.field, b.effD, "the stage could never finish its bake")
		}
	}
	if st.KeepBlueFor.D() > MaxTimeout {
		durationAtMost(add, "strategy.keepBlueFor", st.KeepBlueFor, MaxTimeout, "keepBlueFor")
	} else if st.KeepBlueFor > 0 {
		withinTimeout("strategy.keepBlueFor", st.KeepBlueFor, "the timeout would end every wait with a switch back to blue")
	}
	if st.BatchSize > MaxReplicas {
		add("strategy.batchSize", "must be at most %d, got %d", MaxReplicas, st.BatchSize)
	}

	if d := s.Platform.Docker; d != nil {
		const f = "platform.docker"
		boundMap(add, f+".env", d.Env)
		entriesAtMost(add, f+".secretEnv", len(d.SecretEnv), MaxEntries)
		for _, k := range sortedKeys(d.SecretEnv) {
			if keyAtMost(add, f+".secretEnv", k) {
				textAtMost(add, f+".secretEnv."+k+".fromEnv", d.SecretEnv[k].FromEnv, MaxNameLength, false)
				textAtMost(add, f+".secretEnv."+k+".fromFile", d.SecretEnv[k].FromFile, MaxPathLength, false)
			}
		}
		entriesAtMost(add, f+".command", len(d.Command), MaxEntries)
		for i, a := range d.Command {
			textAtMost(add, fmt.Sprintf("%s.command[%d]", f, i), a, MaxValueLength, false)
		}
		boundMap(add, f+".labels", d.Labels)
		textAtMost(add, f+".network", d.Network, MaxNameLength, false)
	}
	if k := s.Platform.Kubernetes; k != nil {
		const f = "platform.kubernetes"
		textAtMost(add, f+".container", k.Container, MaxNameLength, true)
		textAtMost(add, f+".kubeconfig", k.Kubeconfig, MaxPathLength, true)
		textAtMost(add, f+".context", k.Context, MaxPathLength, true)
		if k.ProgressDeadline > 0 {
			durationAtMost(add, f+".progressDeadline", k.ProgressDeadline, MaxProgressDeadline, "a progress deadline")
		}
		entriesAtMost(add, f+".secretEnv", len(k.SecretEnv), MaxEntries)
		for _, name := range sortedKeys(k.SecretEnv) {
			keyAtMost(add, f+".secretEnv", name)
		}
	}

	s.Health.validateBounds(add, eff.Health, timeout)

	if a := s.Approval; a != nil {
		switch {
		case a.Timeout.D() > MaxTimeout:
			durationAtMost(add, "approval.timeout", a.Timeout, MaxTimeout, "an approval window")
		case a.Timeout >= 0:
			ea := eff.Approval
			if gates, need := eff.ApprovalNeeds(); gates > 0 && need > timeout {
				add("approval.timeout", "%s for each of %d gate(s), with the bakes, needs %s, more than timeout %s: "+
					"the rollout's timeout would end a gate's wait before its window, and onTimeout %q would never apply; "+
					"raise timeout (or leave it unset: it then fits the gates) or lower approval.timeout",
					ea.Timeout.D(), gates, need, timeout, ea.OnTimeout)
			}
		}
	}
	boundNotifications(add, "notifications", s.Notifications)
	encodedAtMost(add, "spec", s, MaxSpecBytes, "the spec is the input of the rollout and of its activities")
}

// validateBounds reports every duration, count and length of h above its
// limit; eff is h with defaults applied, timeout the rollout's.
func (h Health) validateBounds(add func(string, string, ...any), eff Health, timeout time.Duration) {
	switch {
	case h.Interval.D() > MaxHealthInterval:
		durationAtMost(add, "health.interval", h.Interval, MaxHealthInterval, "the interval between rounds")
	case timeout > 0 && eff.Interval.D() > timeout:
		add("health.interval", "%s is longer than timeout %s: no round would run before the rollout times out", eff.Interval.D(), timeout)
	case timeout > 0 && eff.Interval > 0 && eff.MinSamples > 0 && eff.MinSamples <= MaxRounds &&
		SatMul(eff.Interval.D(), eff.MinSamples) > timeout:
		add("health.minSamples", "%d rounds %s apart take %s, longer than timeout %s: no stage could pass",
			eff.MinSamples, eff.Interval.D(), SatMul(eff.Interval.D(), eff.MinSamples), timeout)
	}
	if h.Timeout > 0 {
		durationAtMost(add, "health.timeout", h.Timeout, MaxCheckTimeout, "a check's timeout")
	}
	if h.FailureThreshold > MaxRounds {
		add("health.failureThreshold", "must be at most %d, got %d", MaxRounds, h.FailureThreshold)
	}
	if h.MinSamples > MaxRounds {
		add("health.minSamples", "must be at most %d, got %d", MaxRounds, h.MinSamples)
	}
	if h.VerifyWindow.D() > MaxTimeout {
		durationAtMost(add, "health.verifyWindow", h.VerifyWindow, MaxTimeout, "a verify window")
	} else if timeout > 0 && h.VerifyWindow.D() > timeout {
		add("health.verifyWindow", "%s is longer than timeout %s: a rollback's verification may not outlast the rollout's budget", h.VerifyWindow.D(), timeout)
	}
	entriesAtMost(add, "health.checks", len(h.Checks), MaxChecks)
	for i, c := range h.Checks {
		boundCheck(add, fmt.Sprintf("health.checks[%d]", i), c)
	}
	entriesAtMost(add, "health.dependencies", len(h.Dependencies), MaxChecks)
	for i, c := range h.Dependencies {
		boundCheck(add, fmt.Sprintf("health.dependencies[%d]", i), c)
	}
	entriesAtMost(add, "health.baselines", len(h.Baselines), MaxChecks)
	for i, b := range h.Baselines {
		if b.Max > 0 {
			durationAtMost(add, fmt.Sprintf("health.baselines[%d].max", i), b.Max, MaxCheckTimeout, "a latency limit")
		}
	}
}

// boundCheck reports every duration, count and length of one check above
// its limit; f names it ("health.checks[0]").
func boundCheck(add func(string, string, ...any), f string, c Check) {
	textAtMost(add, f+".name", c.Name, MaxNameLength, false)
	timeout := func(field string, d Duration) {
		if d > 0 {
			durationAtMost(add, field, d, MaxCheckTimeout, "a check's timeout")
		}
	}
	switch {
	case c.HTTP != nil:
		h := c.HTTP
		textAtMost(add, f+".http.url", h.URL, MaxURLLength, false)
		boundSecretMap(add, f+".http.headers", h.Headers)
		entriesAtMost(add, f+".http.expectStatus", len(h.ExpectStatus), MaxEntries)
		textAtMost(add, f+".http.bodyContains", h.BodyContains, MaxValueLength, false)
		textAtMost(add, f+".http.bodyRegex", h.BodyRegex, MaxValueLength, false)
		entriesAtMost(add, f+".http.json", len(h.JSON), MaxEntries)
		for j, m := range h.JSON {
			textAtMost(add, fmt.Sprintf("%s.http.json[%d].path", f, j), m.Path, MaxValueLength, false)
		}
		if h.MaxLatency > 0 {
			durationAtMost(add, f+".http.maxLatency", h.MaxLatency, MaxCheckTimeout, "a latency limit")
		}
		timeout(f+".http.timeout", h.Timeout)
	case c.TCP != nil:
		textAtMost(add, f+".tcp.address", c.TCP.Address, MaxURLLength, false)
		timeout(f+".tcp.timeout", c.TCP.Timeout)
	case c.Command != nil:
		cmd := c.Command
		entriesAtMost(add, f+".command.argv", len(cmd.Argv), MaxEntries)
		for j, a := range cmd.Argv {
			textAtMost(add, fmt.Sprintf("%s.command.argv[%d]", f, j), a, MaxValueLength, false)
		}
		textAtMost(add, f+".command.outputContains", cmd.OutputContains, MaxValueLength, false)
		timeout(f+".command.timeout", cmd.Timeout)
	case c.Prometheus != nil:
		p := c.Prometheus
		textAtMost(add, f+".prometheus.url", p.URL, MaxURLLength, false)
		textAtMost(add, f+".prometheus.query", p.Query, MaxValueLength, false)
		timeout(f+".prometheus.timeout", p.Timeout)
	}
}

// boundNotifications reports every count and length of ns above its limit;
// field names the list. A target's URL may be a credential: it is never
// printed.
func boundNotifications(add func(string, string, ...any), field string, ns []Notification) {
	entriesAtMost(add, field, len(ns), MaxNotifications)
	for i, n := range ns {
		f := fmt.Sprintf("%s[%d]", field, i)
		textAtMost(add, f+".name", n.Name, MaxNameLength, true)
		textAtMost(add, f+".webhook", n.Webhook, MaxURLLength, false)
		textAtMost(add, f+".slack", n.Slack, MaxURLLength, false)
		for _, r := range []struct {
			field string
			ref   *SecretRef
		}{{".webhookFrom", n.WebhookFrom}, {".slackFrom", n.SlackFrom}} {
			if r.ref != nil {
				textAtMost(add, f+r.field+".fromEnv", r.ref.FromEnv, MaxNameLength, false)
				textAtMost(add, f+r.field+".fromFile", r.ref.FromFile, MaxURLLength, false)
			}
		}
		boundSecretMap(add, f+".headers", n.Headers)
	}
}

// validateBounds reports every duration, count and length of r above its
// limit, its services' specs apart (their own Validate reports those).
func (r Release) validateBounds(add func(string, string, ...any)) {
	if r.Timeout > 0 {
		durationAtMost(add, "timeout", r.Timeout, MaxReleaseTimeout, "a release's timeout")
	}
	switch {
	case r.ActivationTimeout.D() > MaxReleaseTimeout:
		durationAtMost(add, "activationTimeout", r.ActivationTimeout, MaxReleaseTimeout, "an activation timeout")
	case r.Timeout > 0 && r.ActivationTimeout > r.Timeout:
		add("activationTimeout", "%s is longer than timeout %s", r.ActivationTimeout.D(), r.Timeout.D())
	}
	entriesAtMost(add, "services", len(r.Services), MaxServices)
	for i, s := range r.Services {
		f := fmt.Sprintf("services[%d]", i)
		entriesAtMost(add, f+".dependsOn", len(s.DependsOn), MaxServices)
		entriesAtMost(add, f+".requires", len(s.Requires), MaxEntries)
		for j, q := range s.Requires {
			textAtMost(add, fmt.Sprintf("%s.requires[%d].version", f, j), q.Version, MaxNameLength, false)
		}
	}
	entriesAtMost(add, "stages", len(r.Stages), MaxServices)
	for i, st := range r.Stages {
		f := fmt.Sprintf("stages[%d]", i)
		textAtMost(add, f+".name", st.Name, MaxNameLength, true)
		if st.Timeout > 0 {
			durationAtMost(add, f+".timeout", st.Timeout, MaxReleaseTimeout, "a stage's timeout")
		}
	}
	boundMap(add, "config", r.Config)
	entriesAtMost(add, "profiles", len(r.Profiles), MaxEntries)
	for _, env := range sortedKeys(r.Profiles) {
		if !keyAtMost(add, "profiles", env) {
			continue
		}
		p := r.Profiles[env]
		boundMap(add, "profiles."+env+".config", p.Config)
		entriesAtMost(add, "profiles."+env+".services", len(p.Services), MaxServices)
		for _, svc := range sortedKeys(p.Services) {
			if keyAtMost(add, "profiles."+env+".services", svc) {
				boundMap(add, "profiles."+env+".services."+svc, p.Services[svc])
			}
		}
	}
	entriesAtMost(add, "policy.requireLabels", len(r.Policy.RequireLabels), MaxEntries)
	if in := r.Integration; in != nil {
		entriesAtMost(add, "integration.checks", len(in.Checks), MaxChecks)
		for i, c := range in.Checks {
			boundCheck(add, fmt.Sprintf("integration.checks[%d]", i), c)
		}
		if in.Interval > 0 {
			durationAtMost(add, "integration.interval", in.Interval, MaxHealthInterval, "the interval between attempts")
		}
	}
	entriesAtMost(add, "readiness", len(r.Readiness), MaxChecks)
	for i, c := range r.Readiness {
		boundCheck(add, fmt.Sprintf("readiness[%d]", i), c.Check)
	}
	boundNotifications(add, "notifications", r.Notifications)
	encodedAtMost(add, "release", r, MaxReleaseBytes,
		"the release, with its services' specs and their configuration, is the release workflow's input (Temporal refuses one over 2 MiB)")
	// The configuration of Kubernetes services is written by one activity,
	// whose input carries each service's spec and configuration.
	type configItem struct {
		Spec Spec
		Data map[string]string
	}
	var items []configItem
	for _, s := range r.Services {
		if k := s.Deploy.Platform.Kubernetes; k != nil {
			if data := r.ServiceConfig(s.Name); len(data) > 0 {
				items = append(items, configItem{s.Deploy, data})
			}
		}
	}
	if len(items) > 0 {
		encodedAtMost(add, "config", items, MaxReleaseBytes,
			"each Kubernetes service's spec with its configuration, as the activity that writes the configuration takes them all")
	}
}

// boundMap reports a map of names to texts (env, labels, headers, config)
// with too many entries, a name too long (naming the map, not the name) or
// a value too long; field names the map.
func boundMap(add func(string, string, ...any), field string, m map[string]string) {
	entriesAtMost(add, field, len(m), MaxEntries)
	for _, k := range sortedKeys(m) {
		if keyAtMost(add, field, k) {
			textAtMost(add, field+"."+k, m[k], MaxValueLength, false)
		}
	}
}

// keyAtMost reports a map key longer than MaxNameLength, naming the map
// (field) rather than the key, and says whether the key is within it.
func keyAtMost(add func(string, string, ...any), field, k string) bool {
	if len(k) > MaxNameLength {
		add(field, "has a name %d bytes long, more than the %d allowed", len(k), MaxNameLength)
		return false
	}
	return true
}
