package secrets

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/stagecraft/stagecraft/internal/spec"
)

// Scope is what a worker's operator lets specs reference: environment
// variables by prefix (--secret-env-prefix) and files under directories
// (--secret-dir). Whoever writes a spec does not hold the worker's
// credentials, so everything else is refused, and some things always are:
// the worker's own settings (its Temporal, database, Docker and Kubernetes
// connections, its codec and signing keys, cloud credentials), /proc,
// /sys, /dev and service-account tokens, and files the worker names as
// its own (DenyFiles), even inside an allowed directory.
type Scope struct {
	EnvPrefixes []string
	Dirs        []string
	// DenyFiles are files the worker itself reads (TLS keys, the codec's
	// and the signing keys).
	DenyFiles []string
}

// ErrOutOfScope is wrapped by the errors of references a Scope refuses.
var ErrOutOfScope = errors.New("outside what this worker lets specs reference")

// deniedEnv are variables and prefixes (ending in _ or *) of the worker's
// own settings, never readable by a spec.
var deniedEnv = []string{
	"TEMPORAL_*", "DATABASE_URL", "PG*", "DOCKER_*", "KUBECONFIG", "KUBERNETES_*",
	"STAGECRAFT_CODEC_*", "STAGECRAFT_WEBHOOK_*", "STAGECRAFT_SECRET_*", "STAGECRAFT_EGRESS_*",
	"STAGECRAFT_ALLOW_*", "STAGECRAFT_METRICS_*",
	"AWS_*", "GOOGLE_*", "GCLOUD_*", "AZURE_*", "VAULT_*", "SSH_AUTH_SOCK",
}

// deniedDirs are never readable by a spec, whatever Dirs says.
var deniedDirs = []string{"/proc", "/sys", "/dev", "/var/run/secrets/kubernetes.io", "/run/secrets/kubernetes.io"}

func envDenied(name string) bool {
	for _, d := range deniedEnv {
		if p, ok := strings.CutSuffix(d, "*"); ok {
			if strings.HasPrefix(name, p) {
				return true
			}
		} else if name == d {
			return true
		}
	}
	return false
}

// under reports whether path is dir or inside it (both clean and absolute).
func under(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, strings.TrimSuffix(dir, "/")+"/")
}

// real is path with its symbolic links resolved where it exists, else as
// written (clean): what reading it would actually open.
func real(path string) string {
	if r, err := filepath.EvalSymlinks(path); err == nil {
		return r
	}
	return filepath.Clean(path)
}

// sameFile reports whether a and b are one file (a hard link is another
// name for it).
func sameFile(a, b string) bool {
	sa, err := os.Stat(a)
	if err != nil {
		return false
	}
	sb, err := os.Stat(b)
	return err == nil && os.SameFile(sa, sb)
}

// Check says why ref is refused, or nil when the scope lets a spec use it.
func (s Scope) Check(ref spec.SecretRef) error {
	switch {
	case ref.FromEnv != "":
		name := ref.FromEnv
		if envDenied(name) {
			return fmt.Errorf("%s: %w: it is one of the worker's own settings, never readable by a spec", ref, ErrOutOfScope)
		}
		if len(s.EnvPrefixes) == 0 {
			return fmt.Errorf("%s: %w: this worker lets specs read no environment variable (its operator allows prefixes with --secret-env-prefix)", ref, ErrOutOfScope)
		}
		for _, p := range s.EnvPrefixes {
			if strings.HasPrefix(name, p) {
				return nil
			}
		}
		return fmt.Errorf("%s: %w: allowed prefixes are %s (--secret-env-prefix)", ref, ErrOutOfScope, strings.Join(s.EnvPrefixes, ", "))
	case ref.FromFile != "":
		if !filepath.IsAbs(ref.FromFile) || filepath.Clean(ref.FromFile) != ref.FromFile {
			return fmt.Errorf("%s: %w: the path must be absolute and clean", ref, ErrOutOfScope)
		}
		path := real(ref.FromFile)
		for _, d := range deniedDirs {
			if under(ref.FromFile, d) || under(path, d) {
				return fmt.Errorf("%s: %w: %s is never readable by a spec", ref, ErrOutOfScope, d)
			}
		}
		for _, f := range s.DenyFiles {
			if f != "" && (path == real(f) || ref.FromFile == filepath.Clean(f) || sameFile(path, f)) {
				return fmt.Errorf("%s: %w: it is one of the worker's own keys", ref, ErrOutOfScope)
			}
		}
		if len(s.Dirs) == 0 {
			return fmt.Errorf("%s: %w: this worker lets specs read no file (its operator allows directories with --secret-dir)", ref, ErrOutOfScope)
		}
		for _, d := range s.Dirs {
			if under(path, real(d)) {
				return nil
			}
		}
		return fmt.Errorf("%s: %w: allowed directories are %s (--secret-dir; symbolic links resolved)", ref, ErrOutOfScope, strings.Join(s.Dirs, ", "))
	}
	return nil
}

// Resolver reads references the scope allows, and refuses the others.
// A file is read through its resolved path, the one Check judged.
func (s Scope) Resolver() Resolver {
	return func(ref spec.SecretRef) (string, error) {
		if err := s.Check(ref); err != nil {
			return "", err
		}
		if ref.FromFile != "" {
			ref.FromFile = real(ref.FromFile)
		}
		return Local(ref)
	}
}

// ValidateScope checks the operator's settings: prefixes are non-empty
// and not the worker's own, directories are absolute and exist.
func ValidateScope(s Scope) error {
	var errs []error
	for _, p := range s.EnvPrefixes {
		if p == "" || envDenied(p) {
			errs = append(errs, fmt.Errorf("--secret-env-prefix %q: would let specs read the worker's own settings", p))
		}
	}
	for _, d := range s.Dirs {
		st, err := os.Stat(d)
		switch {
		case !filepath.IsAbs(d):
			errs = append(errs, fmt.Errorf("--secret-dir %q: not an absolute path", d))
		case err != nil || !st.IsDir():
			errs = append(errs, fmt.Errorf("--secret-dir %q: not a directory", d))
		case slices.ContainsFunc(deniedDirs, func(x string) bool { return under(real(d), x) || under(x, real(d)) }):
			errs = append(errs, fmt.Errorf("--secret-dir %q: holds or is inside what no spec may read (/proc, /sys, /dev, service-account tokens)", d))
		case real(d) == "/":
			errs = append(errs, fmt.Errorf("--secret-dir %q: the whole file system", d))
		}
	}
	return errors.Join(errs...)
}
