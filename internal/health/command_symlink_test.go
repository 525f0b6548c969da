package health

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stagecraft/stagecraft/internal/spec"
)

// script writes an executable shell script at path that prints what and
// its own $0.
func script(t *testing.T, path, what string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("#!/bin/sh\necho \""+what+" $0\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestCommandRunsTheAllowlistEntry: the checker matches what the kernel
// would run, symlinks resolved, and runs the allowlist entry itself: a
// spelling that lexically cleans to an allowed path but goes through a
// symlinked directory to another executable never runs it (review
// finding 18).
func TestCommandRunsTheAllowlistEntry(t *testing.T) {
	dir := t.TempDir()
	allowed := filepath.Join(dir, "allowed", "tool")
	script(t, allowed, "ALLOWED")
	script(t, filepath.Join(dir, "elsewhere", "tool"), "OTHER")
	if err := os.MkdirAll(filepath.Join(dir, "elsewhere", "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	// allowed/link -> elsewhere/sub, so allowed/link/../tool is
	// elsewhere/tool to the kernel and allowed/tool to filepath.Clean.
	if err := os.Symlink(filepath.Join(dir, "elsewhere", "sub"), filepath.Join(dir, "allowed", "link")); err != nil {
		t.Fatal(err)
	}
	// alias -> allowed/tool: the same executable under another name.
	alias := filepath.Join(dir, "alias")
	if err := os.Symlink(allowed, alias); err != nil {
		t.Fatal(err)
	}
	c := Checker{Commands: []string{allowed}}

	sneaky := filepath.Join(dir, "allowed", "link") + "/../tool"
	res := c.Round(context.Background(), []spec.Check{commandCheck("sneaky", sneaky)}, nil, nil).Results[0]
	if strings.Contains(res.Excerpt, "OTHER") || res.Verdict == Healthy || !strings.Contains(res.Error, "not on this worker's allowlist") {
		t.Fatalf("%s: %+v; want refused, and elsewhere/tool never run", sneaky, res)
	}

	check := commandCheck("alias", alias)
	check.Command.OutputContains = "never"
	res = c.Round(context.Background(), []spec.Check{check}, nil, nil).Results[0]
	if want := "ALLOWED " + allowed; res.Excerpt != want {
		t.Fatalf("alias of the allowed tool: excerpt %q (%s); want %q: the entry itself runs, as the worker spells it", res.Excerpt, res.Error, want)
	}
}
