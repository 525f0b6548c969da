// Package secrets resolves the secret references a spec gives for values
// the worker uses itself (check headers, notification URLs and headers):
// the value is read in the activity that uses it and goes nowhere else,
// not into a result, an error, history or the audit trail.
package secrets

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/stagecraft/stagecraft/internal/spec"
)

// Resolver reads a reference's value on the worker.
type Resolver func(spec.SecretRef) (string, error)

// Local reads fromEnv from the worker's environment and fromFile from its
// file system; a file's content loses one trailing newline. Errors name
// the reference, never a value.
func Local(ref spec.SecretRef) (string, error) {
	switch {
	case ref.FromEnv != "":
		v, ok := os.LookupEnv(ref.FromEnv)
		if !ok {
			return "", fmt.Errorf("%s is not set on the worker", ref)
		}
		return v, nil
	case ref.FromFile != "":
		b, err := os.ReadFile(ref.FromFile)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return "", fmt.Errorf("%s cannot be read on the worker: %v", ref, err)
		}
		v := strings.TrimSuffix(string(b), "\n")
		return strings.TrimSuffix(v, "\r"), nil
	}
	return "", fmt.Errorf("the reference has no fromEnv or fromFile")
}

// Value returns v's plain value, or its reference resolved by r (nil:
// Local).
func Value(r Resolver, v spec.SecretValue) (string, error) {
	if v.Ref == nil {
		return v.Value, nil
	}
	if r == nil {
		r = Local
	}
	s, err := r(*v.Ref)
	if err == nil && strings.ContainsAny(s, "\r\n\x00") {
		return "", fmt.Errorf("%s holds a line break or NUL", v.Ref)
	}
	return s, err
}
