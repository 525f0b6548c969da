package secrets

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stagecraft/stagecraft/internal/spec"
)

// TestScopeRefusesWhatTheOperatorDidNotAllow: the references the review
// used to read the worker's own credentials are refused, whatever the
// allowlist, and only what the operator allowed resolves.
func TestScopeRefusesWhatTheOperatorDidNotAllow(t *testing.T) {
	dir := t.TempDir()
	allowed := filepath.Join(dir, "allowed")
	other := filepath.Join(dir, "other")
	for _, d := range []string{allowed, other} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, v string) {
		if err := os.WriteFile(p, []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(allowed, "db"), "s3cret")
	write(filepath.Join(other, "key"), "worker-key")
	write(filepath.Join(allowed, "codec.keys"), "k1=...")
	// A hard link inside the allowed directory to a key the worker reads.
	if err := os.Link(filepath.Join(allowed, "codec.keys"), filepath.Join(allowed, "hardlink")); err != nil {
		t.Fatal(err)
	}
	// A link inside the allowed directory to a file outside it.
	if err := os.Symlink(filepath.Join(other, "key"), filepath.Join(allowed, "link")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("APP_DB_PASSWORD", "s3cret")
	t.Setenv("TEMPORAL_API_KEY", "tmprl-key")
	t.Setenv("DATABASE_URL", "postgres://u:p@db/x")
	t.Setenv("OTHER_TOKEN", "nope")

	s := Scope{EnvPrefixes: []string{"APP_", "TEMPORAL_"}, Dirs: []string{allowed}, DenyFiles: []string{filepath.Join(allowed, "codec.keys")}}
	r := s.Resolver()
	for _, ok := range []spec.SecretRef{{FromEnv: "APP_DB_PASSWORD"}, {FromFile: filepath.Join(allowed, "db")}} {
		if v, err := r(ok); err != nil || v != "s3cret" {
			t.Errorf("%s: %q, %v; want it resolved", ok, v, err)
		}
	}
	for ref, why := range map[spec.SecretRef]string{
		{FromEnv: "TEMPORAL_API_KEY"}:                                     "the worker's own settings",
		{FromEnv: "DATABASE_URL"}:                                         "the worker's own settings",
		{FromEnv: "OTHER_TOKEN"}:                                          "allowed prefixes are APP_, TEMPORAL_",
		{FromFile: "/proc/self/environ"}:                                  "/proc is never readable",
		{FromFile: "/var/run/secrets/kubernetes.io/serviceaccount/token"}: "never readable",
		{FromFile: filepath.Join(other, "key")}:                           "allowed directories are",
		{FromFile: filepath.Join(allowed, "link")}:                        "allowed directories are",
		{FromFile: allowed + "/../other/key"}:                             "absolute and clean",
		{FromFile: filepath.Join(allowed, "hardlink")}:                    "the worker's own keys",
		{FromFile: filepath.Join(allowed, "codec.keys")}:                  "the worker's own keys",
	} {
		v, err := r(ref)
		if err == nil || !errors.Is(err, ErrOutOfScope) || !strings.Contains(err.Error(), why) {
			t.Errorf("%s: %q, %v; want refused: %s", ref, v, err, why)
		}
		if v != "" || (err != nil && (strings.Contains(err.Error(), "tmprl-key") || strings.Contains(err.Error(), "worker-key"))) {
			t.Errorf("%s: a value leaked: %q %v", ref, v, err)
		}
	}
	// With no allowlist, nothing resolves.
	if _, err := (Scope{}).Resolver()(spec.SecretRef{FromEnv: "APP_DB_PASSWORD"}); err == nil || !strings.Contains(err.Error(), "--secret-env-prefix") {
		t.Errorf("no allowlist: %v", err)
	}
	if _, err := (Scope{}).Resolver()(spec.SecretRef{FromFile: filepath.Join(allowed, "db")}); err == nil || !strings.Contains(err.Error(), "--secret-dir") {
		t.Errorf("no allowlist: %v", err)
	}
}

func TestValidateScope(t *testing.T) {
	dir := t.TempDir()
	if err := ValidateScope(Scope{EnvPrefixes: []string{"APP_"}, Dirs: []string{dir}}); err != nil {
		t.Fatal(err)
	}
	err := ValidateScope(Scope{EnvPrefixes: []string{"", "TEMPORAL_", "AWS_X"}, Dirs: []string{"relative", "/", "/proc", filepath.Join(dir, "missing")}})
	for _, want := range []string{`prefix ""`, `prefix "TEMPORAL_"`, `prefix "AWS_X"`, `"relative": not an absolute`, `"/": holds or is inside`, `"/proc": holds or is inside`, "missing\": not a directory"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in %v", want, err)
		}
	}
}
