package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
)

// SecretRef says where a secret environment value comes from, never the
// value itself: only the reference travels in specs, workflow history,
// snapshots and the audit trail. Exactly one source is set.
type SecretRef struct {
	// FromEnv names an environment variable of the worker process (Docker):
	// the worker reads it when it creates a container.
	FromEnv string `json:"fromEnv,omitempty"`
	// FromFile is an absolute path of a file on the worker (Docker): its
	// content, less one trailing newline, is the value.
	FromFile string `json:"fromFile,omitempty"`
	// SecretKeyRef names a key of a Secret in the Deployment's namespace
	// (Kubernetes): the pod template refers to it and the value never
	// leaves the cluster.
	SecretKeyRef *SecretKeyRef `json:"secretKeyRef,omitempty"`
}

// SecretKeyRef is a key in a Kubernetes Secret.
type SecretKeyRef struct {
	// Name of the Secret.
	Name string `json:"name"`
	// Key within the Secret.
	Key string `json:"key"`
}

// String describes the reference (never a value), e.g. `environment
// variable "DB_PASSWORD"`.
func (r SecretRef) String() string {
	switch {
	case r.FromEnv != "":
		return fmt.Sprintf("environment variable %q", r.FromEnv)
	case r.FromFile != "":
		return fmt.Sprintf("file %q", r.FromFile)
	case r.SecretKeyRef != nil:
		return fmt.Sprintf("key %q of secret %q", r.SecretKeyRef.Key, r.SecretKeyRef.Name)
	}
	return "no source"
}

var (
	// dnsSubdomainRE is an RFC 1123 subdomain, as Kubernetes names Secrets.
	dnsSubdomainRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	// secretKeyRE is what a Secret's data key may be.
	secretKeyRE = regexp.MustCompile(`^[-._a-zA-Z0-9]+$`)
)

// validateSecretEnv checks a platform's secretEnv: names, exactly one
// source each, sources the platform supports, and no name also in plain
// env. base is the platform's field path ("platform.docker").
func validateSecretEnv(add func(string, string, ...any), base string, docker bool, refs map[string]SecretRef, env map[string]string) {
	for _, name := range sortedKeys(refs) {
		ref := refs[name]
		f := base + ".secretEnv." + name
		if !envKeyRE.MatchString(name) {
			add(f, "is not a valid environment variable name")
		}
		if _, ok := env[name]; ok {
			add(f, "is also set in %s.env; give it in one place", base)
		}
		var sources []string
		if ref.FromEnv != "" {
			sources = append(sources, "fromEnv")
		}
		if ref.FromFile != "" {
			sources = append(sources, "fromFile")
		}
		if ref.SecretKeyRef != nil {
			sources = append(sources, "secretKeyRef")
		}
		switch {
		case len(sources) == 0 && docker:
			add(f, "needs exactly one source: fromEnv (a variable of the worker) or fromFile (a file on the worker)")
		case len(sources) == 0:
			add(f, "needs a source: secretKeyRef (a key of a Secret in the namespace)")
		case len(sources) > 1:
			add(f, "sets %s; give exactly one source", strings.Join(sources, " and "))
		}
		if ref.FromEnv != "" {
			if !docker {
				add(f+".fromEnv", "only applies to docker: on kubernetes the value would be written into the pod template and the workflow history; use secretKeyRef")
			} else if !envKeyRE.MatchString(ref.FromEnv) {
				add(f+".fromEnv", "%q is not a valid environment variable name", ref.FromEnv)
			}
		}
		if ref.FromFile != "" {
			switch {
			case !docker:
				add(f+".fromFile", "only applies to docker: on kubernetes the value would be written into the pod template and the workflow history; use secretKeyRef")
			case !filepath.IsAbs(ref.FromFile) || filepath.Clean(ref.FromFile) != ref.FromFile:
				add(f+".fromFile", "%q must be a clean absolute path on the worker", ref.FromFile)
			}
		}
		if k := ref.SecretKeyRef; k != nil {
			if docker {
				add(f+".secretKeyRef", "only applies to kubernetes; on docker use fromEnv or fromFile")
				continue
			}
			switch {
			case k.Name == "":
				add(f+".secretKeyRef.name", "is required")
			case len(k.Name) > 253 || !dnsSubdomainRE.MatchString(k.Name):
				add(f+".secretKeyRef.name", "%q is not a valid Kubernetes Secret name", k.Name)
			}
			switch {
			case k.Key == "":
				add(f+".secretKeyRef.key", "is required")
			case len(k.Key) > 253 || !secretKeyRE.MatchString(k.Key):
				add(f+".secretKeyRef.key", "%q is not a valid Secret key (letters, digits, '-', '_', '.')", k.Key)
			}
		}
	}
}

// SecretValue is a value that may be a secret: in the spec either a plain
// string (kept as written, in history too) or a reference the worker
// resolves when it uses the value ({fromEnv: VAR} or {fromFile: /path}),
// so only the reference travels in specs, histories, snapshots and the
// audit trail. Check headers and notification headers are SecretValues.
type SecretValue struct {
	// Value is the plain value, when Ref is nil.
	Value string
	// Ref is the reference (fromEnv or fromFile); secretKeyRef does not
	// apply: the worker itself uses the value.
	Ref *SecretRef
}

// Plain is a plain SecretValue.
func Plain(v string) SecretValue { return SecretValue{Value: v} }

// PlainValues maps plain strings to plain SecretValues.
func PlainValues(m map[string]string) map[string]SecretValue {
	if m == nil {
		return nil
	}
	out := make(map[string]SecretValue, len(m))
	for k, v := range m {
		out[k] = Plain(v)
	}
	return out
}

// MarshalJSON writes a plain value as a string and a reference as its
// object, so specs with plain strings read and write as before.
func (v SecretValue) MarshalJSON() ([]byte, error) {
	if v.Ref != nil {
		return json.Marshal(v.Ref)
	}
	return json.Marshal(v.Value)
}

// UnmarshalJSON reads a string or a reference object (unknown fields
// refused, as the spec's decoding refuses them elsewhere).
func (v *SecretValue) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '{' {
		var ref SecretRef
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&ref); err != nil {
			return fmt.Errorf("a secret reference is {fromEnv: NAME} or {fromFile: /path}: %w", err)
		}
		*v = SecretValue{Ref: &ref}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New("want a string or a secret reference {fromEnv: NAME} / {fromFile: /path}")
	}
	*v = SecretValue{Value: s}
	return nil
}

// validateWorkerRef checks a reference the worker resolves itself (a
// header, a notification URL): exactly one of fromEnv and fromFile.
func validateWorkerRef(add func(string, string, ...any), f string, ref SecretRef) {
	n := 0
	if ref.FromEnv != "" {
		n++
		if !envKeyRE.MatchString(ref.FromEnv) {
			add(f+".fromEnv", "%q is not a valid environment variable name", ref.FromEnv)
		}
	}
	if ref.FromFile != "" {
		n++
		if !filepath.IsAbs(ref.FromFile) || filepath.Clean(ref.FromFile) != ref.FromFile {
			add(f+".fromFile", "%q must be a clean absolute path on the worker", ref.FromFile)
		}
	}
	if ref.SecretKeyRef != nil {
		add(f+".secretKeyRef", "does not apply here: the worker uses this value itself; use fromEnv or fromFile")
	}
	if n != 1 {
		add(f, "needs exactly one source: fromEnv (a variable of the worker) or fromFile (a file on the worker)")
	}
}

// validateHeaderRefs checks headers' references. (Plain values are
// checked where they always were: notifications here, checks under
// RulesBoundaries.)
func validateHeaderRefs(add func(string, string, ...any), f string, h map[string]SecretValue) {
	for _, k := range sortedKeys(h) {
		if ref := h[k].Ref; ref != nil {
			validateWorkerRef(add, f+"."+k, *ref)
		}
	}
}

// boundSecretMap reports a map of SecretValues above its limits.
func boundSecretMap(add func(string, string, ...any), field string, m map[string]SecretValue) {
	entriesAtMost(add, field, len(m), MaxEntries)
	for _, k := range sortedKeys(m) {
		if !keyAtMost(add, field, k) {
			continue
		}
		v := m[k]
		if v.Ref != nil {
			textAtMost(add, field+"."+k+".fromEnv", v.Ref.FromEnv, MaxNameLength, false)
			textAtMost(add, field+"."+k+".fromFile", v.Ref.FromFile, MaxURLLength, false)
			continue
		}
		textAtMost(add, field+"."+k, v.Value, MaxValueLength, false)
	}
}
