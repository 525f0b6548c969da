package health

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/stagecraft/stagecraft/internal/spec"
)

// maxOutput bounds how much of a command's combined output is captured.
const maxOutput = 64 << 10

// limitedBuffer keeps the first max bytes written to it and drops the rest.
type limitedBuffer struct {
	buf bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// Allowlist returns the executables command checks may run.
func (c *Checker) Allowlist() []string { return c.Commands }

// Allowed reports whether the allowlist permits an executable.
func (c *Checker) Allowed(path string) bool {
	_, ok := c.allowed(path)
	return ok
}

// allowed returns the allowlist entry path names: the one that is the same
// file once both are resolved (symlinks followed, as the kernel would), so
// /allowed/dir/link/../tool cannot pass for /allowed/dir/tool. A path
// that does not resolve matches nothing.
func (c *Checker) allowed(path string) (string, bool) {
	if !filepath.IsAbs(path) {
		return "", false
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", false
	}
	for _, a := range c.Commands {
		if ra, err := filepath.EvalSymlinks(a); err == nil && ra == real {
			return a, true
		}
	}
	return "", false
}

func (c *Checker) command(ctx context.Context, name string, cmd *spec.CommandCheck, addr string) Result {
	argv := make([]string, len(cmd.Argv))
	for i, a := range cmd.Argv {
		argv[i] = strings.ReplaceAll(a, spec.AddressPlaceholder, addr)
	}
	res := Result{Check: name, Target: strings.Join(argv, " "), Verdict: Failed}
	if len(argv) == 0 {
		res.Error = "command is not on this worker's allowlist"
		return res
	}
	entry, ok := c.allowed(argv[0])
	if !ok {
		res.Error = "command is not on this worker's allowlist"
		return res
	}
	ctx, cancel := context.WithTimeout(ctx, cmd.Timeout.D())
	defer cancel()
	// No shell and no PATH lookup, and what runs is the allowlist entry
	// itself (the worker's spelling), never the spec's.
	run := exec.CommandContext(ctx, entry, argv[1:]...)
	run.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C"}
	run.WaitDelay = time.Second // children holding the pipes do not hold the check
	out := &limitedBuffer{max: maxOutput}
	run.Stdout, run.Stderr = out, out
	start := time.Now()
	err := run.Run()
	res.Latency = time.Since(start)
	res.Excerpt = excerpt(out.buf.Bytes())
	var exit *exec.ExitError
	switch {
	case ctx.Err() == context.DeadlineExceeded:
		res.Error = fmt.Sprintf("timed out after %s", cmd.Timeout.D())
		return res
	case errors.As(err, &exit):
		code := exit.ExitCode()
		res.Exit = &code
	case err != nil:
		res.Error = err.Error()
		return res
	default:
		code := 0
		res.Exit = &code
	}
	switch {
	case *res.Exit != cmd.ExpectExit:
		res.Error = fmt.Sprintf("exit code %d, want %d", *res.Exit, cmd.ExpectExit)
	case cmd.OutputContains != "" && !bytes.Contains(out.buf.Bytes(), []byte(cmd.OutputContains)):
		res.Error = fmt.Sprintf("output does not contain %q", cmd.OutputContains)
	default:
		res.Verdict, res.Excerpt = Healthy, ""
	}
	return res
}
