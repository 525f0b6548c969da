package docker

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/secrets"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// labelSecretEnvPrefix begins the label that marks an environment variable
// set from a secret reference: stagecraft.secretenv.<NAME> holds the
// reference ("fromEnv:VAR" or "fromFile:/path"), never the value, so a
// snapshot records the reference in its place.
const labelSecretEnvPrefix = "stagecraft.secretenv."

// Reference kinds as a label writes them.
const (
	refFromEnv  = "fromEnv:"
	refFromFile = "fromFile:"
)

// secretLabels are the labels naming where each secret variable came from.
func secretLabels(refs map[string]spec.SecretRef) map[string]string {
	out := make(map[string]string, len(refs))
	for name, ref := range refs {
		switch {
		case ref.FromEnv != "":
			out[labelSecretEnvPrefix+name] = refFromEnv + ref.FromEnv
		case ref.FromFile != "":
			out[labelSecretEnvPrefix+name] = refFromFile + ref.FromFile
		}
	}
	return out
}

// parseSecretLabel is the inverse of secretLabels for one label's value.
func parseSecretLabel(v string) (spec.SecretRef, bool) {
	switch {
	case strings.HasPrefix(v, refFromEnv) && len(v) > len(refFromEnv):
		return spec.SecretRef{FromEnv: strings.TrimPrefix(v, refFromEnv)}, true
	case strings.HasPrefix(v, refFromFile) && len(v) > len(refFromFile):
		return spec.SecretRef{FromFile: strings.TrimPrefix(v, refFromFile)}, true
	}
	return spec.SecretRef{}, false
}

// splitSecretEnv is what a snapshot may record of a container's environment
// without holding a secret: each variable its labels mark as set from a
// reference keeps its place as its bare name, and its reference is returned
// by name.
func splitSecretEnv(env []string, labels map[string]string) ([]string, map[string]spec.SecretRef) {
	var out []string
	var refs map[string]spec.SecretRef
	for _, e := range env {
		name, _, _ := strings.Cut(e, "=")
		if v, ok := labels[labelSecretEnvPrefix+name]; ok {
			if ref, ok := parseSecretLabel(v); ok {
				if refs == nil {
					refs = map[string]spec.SecretRef{}
				}
				refs[name] = ref
				out = append(out, name)
				continue
			}
		}
		out = append(out, e)
	}
	return out, refs
}

// secretValues are the values of the variables of env that labels mark as
// set from a reference: what to cut out of anything the container says,
// whichever attempt resolved them.
func secretValues(env []string, labels map[string]string) []string {
	var out []string
	for _, e := range env {
		name, v, _ := strings.Cut(e, "=")
		if _, ok := labels[labelSecretEnvPrefix+name]; ok && v != "" {
			out = append(out, v)
		}
	}
	return out
}

// joinSecretEnv is the inverse of splitSecretEnv: each bare name in env
// with a resolved value becomes NAME=value where it stands, so the
// environment comes back in its order; a value without a place follows.
func joinSecretEnv(env []string, values map[string]string) []string {
	if len(values) == 0 {
		return slices.Clone(env)
	}
	out := make([]string, 0, len(env)+len(values))
	placed := map[string]bool{}
	for _, e := range env {
		if v, ok := values[e]; ok && !placed[e] {
			out = append(out, e+"="+v)
			placed[e] = true
			continue
		}
		out = append(out, e)
	}
	for _, name := range slices.Sorted(maps.Keys(values)) {
		if !placed[name] {
			out = append(out, name+"="+values[name])
		}
	}
	return out
}

// SecretUnresolvedError says a secret reference could not be resolved on
// the worker. It names the field and the variable or file, never a value.
// It is a TargetNotFoundError too, so activities fail it without retries:
// another attempt on the same worker would not find it either.
type SecretUnresolvedError struct {
	// Field is what asked for it: "platform.docker.secretEnv.NAME", or a
	// snapshot container's variable.
	Field  string
	Ref    spec.SecretRef
	Reason string
}

func (e *SecretUnresolvedError) Error() string {
	return fmt.Sprintf("%s: %s not found on the worker: %s", e.Field, e.Ref, e.Reason)
}

// Unwrap makes the error a TargetNotFoundError.
func (e *SecretUnresolvedError) Unwrap() error {
	return &platform.TargetNotFoundError{What: fmt.Sprintf("%s: %s not found on the worker", e.Field, e.Ref)}
}

// resolve reads one reference's value from the worker's environment or
// file system. A file's content loses one trailing newline, as files
// written by echo or editors end with one.
//
// With a resolver (the worker's secrets.Scope), the reference must be in
// the worker's scope and is read through it; a refusal says why.
func resolve(r secrets.Resolver, field string, ref spec.SecretRef) (string, error) {
	if r != nil {
		v, err := r(ref)
		if err != nil {
			return "", &SecretUnresolvedError{Field: field, Ref: ref, Reason: err.Error()}
		}
		return v, nil
	}
	switch {
	case ref.FromEnv != "":
		v, ok := os.LookupEnv(ref.FromEnv)
		if !ok {
			return "", &SecretUnresolvedError{Field: field, Ref: ref, Reason: "the variable is not set in the worker's environment"}
		}
		return v, nil
	case ref.FromFile != "":
		b, err := os.ReadFile(ref.FromFile)
		if err != nil {
			reason := "cannot read it"
			var pe *os.PathError
			if errors.As(err, &pe) {
				reason = "cannot read it: " + pe.Err.Error()
			}
			return "", &SecretUnresolvedError{Field: field, Ref: ref, Reason: reason}
		}
		v := strings.TrimSuffix(string(b), "\n")
		return strings.TrimSuffix(v, "\r"), nil
	}
	return "", &SecretUnresolvedError{Field: field, Ref: ref, Reason: "the reference has no fromEnv or fromFile (a secretKeyRef is Kubernetes only)"}
}

// resolveAll resolves refs into a name to value map; field names the
// variable in errors.
func resolveAll(r secrets.Resolver, refs map[string]spec.SecretRef, field func(name string) string) (map[string]string, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(refs))
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(refs)) {
		v, err := resolve(r, field(name), refs[name])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out[name] = v
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// specField names a spec secret variable in errors.
func specField(name string) string { return "platform.docker.secretEnv." + name }

// snapshotField names a snapshot container's secret variable in errors.
func snapshotField(container string) func(string) string {
	return func(name string) string {
		return fmt.Sprintf("container %q (snapshot) env %s", container, name)
	}
}

// redacted is an error whose message had secret values cut out. It keeps
// no chain: a wrapped error's own text would still hold them, and an
// activity's error is recorded with its causes.
type redacted struct{ msg string }

func (e *redacted) Error() string { return e.msg }

// redact returns err with every secret value in its message replaced, or
// err itself when its message holds none.
func redact(err error, values []string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	out := msg
	// Longest first, so a value inside another is not left half cut.
	values = slices.SortedFunc(slices.Values(values), func(a, b string) int { return len(b) - len(a) })
	for _, v := range values {
		if v != "" {
			out = strings.ReplaceAll(out, v, "[secret]")
		}
	}
	if out == msg {
		return err
	}
	return &redacted{msg: out}
}
