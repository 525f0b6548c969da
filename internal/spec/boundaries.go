package spec

import (
	"fmt"
	"net/textproto"
	"path/filepath"
	"slices"
	"strings"
)

// Docker network names a spec may not join: the engine's own networks,
// which are not isolated per application (host shares the worker host's
// stack and loopback, where Temporal and PostgreSQL listen in compose;
// bridge is every unlabelled container's), and container:* (another
// container's network stack).
var reservedNetworks = []string{"host", "none", "bridge", "default"}

// ReservedLabelPrefixes are label prefixes other tools on a Docker engine
// act on (a Traefik route, a Watchtower update, a Portainer or compose
// stack, image metadata) or Stagecraft itself uses; a spec may not set
// labels under them.
var ReservedLabelPrefixes = []string{
	"stagecraft.",
	"traefik.",
	"com.docker.",
	"com.centurylinklabs.watchtower.",
	"io.portainer.",
	"org.opencontainers.",
}

// signatureHeaders are set by the sender when it signs a delivery.
var signatureHeaders = []string{"X-Stagecraft-Signature", "X-Stagecraft-Timestamp"}

// validateBoundaries applies the RulesBoundaries rules to a rollout spec.
func (s Spec) validateBoundaries(add func(string, string, ...any)) {
	if d := s.Platform.Docker; d != nil {
		validateDockerBoundaries(add, "platform.docker", d)
	}
	checksBoundaries(add, "health.checks", s.Health.Checks)
	checksBoundaries(add, "health.dependencies", s.Health.Dependencies)
	notificationBoundaries(add, "notifications", s.Notifications)
}

// validateBoundaries applies the RulesBoundaries rules to a release's own
// fields (each service's spec applies its own).
func (r Release) validateBoundaries(add func(string, string, ...any)) {
	if r.Integration != nil {
		checksBoundaries(add, "integration.checks", r.Integration.Checks)
	}
	for i, c := range r.Readiness {
		checksBoundaries(add, fmt.Sprintf("readiness[%d]", i), []Check{c.Check})
	}
	notificationBoundaries(add, "notifications", r.Notifications)
}

// validateDockerBoundaries refuses the engine's shared networks and labels
// under the reserved prefixes, naming the field and the label.
func validateDockerBoundaries(add func(string, string, ...any), f string, d *Docker) {
	n := strings.ToLower(d.Network)
	switch {
	case slices.Contains(reservedNetworks, n):
		add(f+".network", "%q is one of the engine's shared networks (host, none, bridge, default); name a network of the application's own", d.Network)
	case strings.HasPrefix(n, "container:"):
		add(f+".network", "%q would share another container's network stack; name a network of the application's own", d.Network)
	}
	for _, k := range sortedKeys(d.Labels) {
		lk := strings.ToLower(k)
		for _, p := range ReservedLabelPrefixes {
			if strings.HasPrefix(lk, p) {
				add(f+".labels."+k, "the %s* label prefix is reserved: other tools on the engine act on it (or Stagecraft itself does)", p)
				break
			}
		}
	}
}

// checksBoundaries: a command's argv[0] must be a clean path, since the
// allowlist is matched on paths ("..", "." or "//" could spell an allowed
// path the kernel resolves elsewhere); a plain header value must not hold
// a line break or NUL.
func checksBoundaries(add func(string, string, ...any), prefix string, cs []Check) {
	for i, c := range cs {
		f := fmt.Sprintf("%s[%d]", prefix, i)
		if strings.HasPrefix(prefix, "readiness[") {
			f = prefix
		}
		if cmd := c.Command; cmd != nil && len(cmd.Argv) > 0 && filepath.IsAbs(cmd.Argv[0]) && filepath.Clean(cmd.Argv[0]) != cmd.Argv[0] {
			add(f+".command.argv[0]", "%q must be a clean absolute path (no \".\" or \"..\" elements, no repeated or trailing \"/\")", cmd.Argv[0])
		}
		if h := c.HTTP; h != nil {
			for _, k := range sortedKeys(h.Headers) {
				if v := h.Headers[k]; v.Ref == nil && strings.ContainsAny(v.Value, "\r\n\x00") {
					add(f+".http.headers."+k, "must not contain line breaks or NUL")
				}
			}
		}
	}
}

// notificationBoundaries: the signature headers are the sender's.
func notificationBoundaries(add func(string, string, ...any), field string, ns []Notification) {
	for i, n := range ns {
		for _, k := range sortedKeys(n.Headers) {
			if slices.Contains(signatureHeaders, textproto.CanonicalMIMEHeaderKey(k)) {
				add(fmt.Sprintf("%s[%d].headers.%s", field, i, k), "is set by stagecraft (it signs deliveries)")
			}
		}
	}
}
