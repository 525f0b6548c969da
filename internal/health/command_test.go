package health

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stagecraft/stagecraft/internal/spec"
)

func commandCheck(name string, argv ...string) spec.Check {
	return spec.Check{Name: name, Command: &spec.CommandCheck{Argv: argv, Timeout: spec.Duration(2 * time.Second)}}
}

func TestCommand(t *testing.T) {
	allow := []string{"/bin/echo", "/bin/false", "/bin/sleep", "/usr/bin/printf", "/usr/bin/yes"}
	tests := []struct {
		name    string
		check   spec.Check
		addrs   []string
		verdict Verdict
		exit    int // -1: no exit code
		errHas  string
		excerpt string
		target  string
	}{
		{name: "exit 0 passes", check: commandCheck("echo", "/bin/echo", "ready"), verdict: Healthy, exit: 0},
		{name: "output contains", check: func() spec.Check {
			c := commandCheck("echo", "/bin/echo", "status=ready")
			c.Command.OutputContains = "status=ready"
			return c
		}(), verdict: Healthy, exit: 0},
		{name: "output lacks", check: func() spec.Check {
			c := commandCheck("echo", "/bin/echo", "status=starting")
			c.Command.OutputContains = "status=ready"
			return c
		}(), verdict: Failed, exit: 0, errHas: `output does not contain "status=ready"`, excerpt: "status=starting"},
		{name: "non-zero exit fails", check: commandCheck("false", "/bin/false"), verdict: Failed, exit: 1, errHas: "exit code 1, want 0"},
		{name: "expected non-zero exit passes", check: func() spec.Check {
			c := commandCheck("false", "/bin/false")
			c.Command.ExpectExit = 1
			return c
		}(), verdict: Healthy, exit: 1},
		{name: "no shell: metacharacters are plain arguments", check: commandCheck("echo", "/bin/echo", "$(id)", ";", "|"), verdict: Healthy, exit: 0},
		{name: "address expands per instance", check: commandCheck("echo", "/bin/echo", "{{.Address}}"), addrs: []string{"127.0.0.1:8080"}, verdict: Healthy, exit: 0, target: "/bin/echo 127.0.0.1:8080"},
		{name: "timeout kills it", check: func() spec.Check {
			c := commandCheck("sleep", "/bin/sleep", "30")
			c.Command.Timeout = spec.Duration(200 * time.Millisecond)
			return c
		}(), verdict: Failed, exit: -1, errHas: "timed out after 200ms"},
		{name: "output is bounded", check: func() spec.Check {
			c := commandCheck("yes", "/usr/bin/yes", "0123456789")
			c.Command.Timeout = spec.Duration(300 * time.Millisecond)
			return c
		}(), verdict: Failed, exit: -1, errHas: "timed out", excerpt: "0123456789"},
		{name: "outside the allowlist never runs", check: commandCheck("cat", "/bin/cat", "/etc/hostname"), verdict: Failed, exit: -1, errHas: "not on this worker's allowlist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := Checker{Commands: allow}
			start := time.Now()
			r := c.Round(context.Background(), []spec.Check{tt.check}, nil, tt.addrs)
			if time.Since(start) > 5*time.Second {
				t.Errorf("round took %s: the timeout did not stop the command", time.Since(start))
			}
			res := r.Results[0]
			if res.Verdict != tt.verdict {
				t.Fatalf("verdict = %s, want %s (error %q, excerpt %q)", res.Verdict, tt.verdict, res.Error, res.Excerpt)
			}
			switch {
			case tt.exit < 0 && res.Exit != nil:
				t.Errorf("exit = %d, want none", *res.Exit)
			case tt.exit >= 0 && (res.Exit == nil || *res.Exit != tt.exit):
				t.Errorf("exit = %v, want %d", res.Exit, tt.exit)
			}
			if !strings.Contains(res.Error, tt.errHas) {
				t.Errorf("error = %q, want it to contain %q", res.Error, tt.errHas)
			}
			if !strings.Contains(res.Excerpt, tt.excerpt) || len(res.Excerpt) > spec.MaxOutputExcerpt+len("…") {
				t.Errorf("excerpt = %q (%d bytes), want it to contain %q and be bounded", res.Excerpt, len(res.Excerpt), tt.excerpt)
			}
			if tt.target != "" && res.Target != tt.target {
				t.Errorf("target = %q, want %q", res.Target, tt.target)
			}
		})
	}
}

func TestCommandAllowlist(t *testing.T) {
	h := spec.Health{
		Checks:       []spec.Check{commandCheck("ok", "/bin/echo"), commandCheck("bad", "/bin/rm", "-rf", "/tmp/x")},
		Dependencies: []spec.Check{commandCheck("dep", "/usr/bin/../bin/printf", "x")},
	}
	tests := []struct {
		name   string
		allow  []string
		fields []string
	}{
		{"no allowlist: commands are off", nil, []string{"health.checks[0].command.argv[0]", "health.checks[1].command.argv[0]", "health.dependencies[0].command.argv[0]"}},
		{"partly allowed", []string{"/bin/echo", "/usr/bin/printf"}, []string{"health.checks[1].command.argv[0]"}},
		{"all allowed", []string{"/bin/echo", "/bin/rm", "/usr/bin/printf"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := h.CommandNotAllowed(tt.allow)
			var got []string
			if ve, ok := err.(*spec.ValidationError); ok {
				for _, p := range ve.Problems {
					got = append(got, p.Field)
					if !strings.Contains(p.Message, "allowlist") {
						t.Errorf("%s: message %q does not mention the allowlist", p.Field, p.Message)
					}
				}
			} else if err != nil {
				t.Fatalf("error %T %v, want *spec.ValidationError", err, err)
			}
			if strings.Join(got, " ") != strings.Join(tt.fields, " ") {
				t.Errorf("fields = %v, want %v", got, tt.fields)
			}
		})
	}
}
