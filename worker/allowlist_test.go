package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The worker refuses to start with an allowlist entry that is not an
// absolute path to an executable file.
func TestCheckAllowlist(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(plain, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	sh, err := filepathEvalSh()
	if err != nil {
		t.Fatal(err)
	}
	if err := checkAllowlist([]string{sh}); err != nil {
		t.Errorf("%s refused: %v", sh, err)
	}
	for _, tc := range []struct{ path, want string }{
		{"curl", "must be an absolute path"},
		{"./bin/check", "must be an absolute path"},
		{filepath.Join(dir, "missing"), "no such file"},
		{dir, "not an executable file"},
		{plain, "not an executable file"},
	} {
		err := checkAllowlist([]string{sh, tc.path})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "--allow-command") {
			t.Errorf("%q: err = %v; want %q naming --allow-command", tc.path, err, tc.want)
		}
	}
}

func filepathEvalSh() (string, error) { return filepath.EvalSymlinks("/bin/sh") }
