package health

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
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
	path = filepath.Clean(path)
	return slices.ContainsFunc(c.Commands, func(a string) bool { return filepath.Clean(a) == path })
}

func (c *Checker) command(ctx context.Context, name string, cmd *spec.CommandCheck, addr string) Result {
	argv := make([]string, len(cmd.Argv))
	for i, a := range cmd.Argv {
		argv[i] = strings.ReplaceAll(a, spec.AddressPlaceholder, addr)
	}
	res := Result{Check: name, Target: strings.Join(argv, " "), Verdict: Failed}
	if len(argv) == 0 || !c.Allowed(argv[0]) {
		res.Error = "command is not on this worker's allowlist"
		return res
	}
	ctx, cancel := context.WithTimeout(ctx, cmd.Timeout.D())
	defer cancel()
	// No shell and no PATH lookup: argv[0] is the allowlisted absolute path.
	run := exec.CommandContext(ctx, argv[0], argv[1:]...)
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
