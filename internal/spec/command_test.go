package spec

import (
	"strings"
	"testing"
)

// TestCommandPathMustBeClean: argv[0] is matched against the worker's
// allowlist as a path, so a spelling with "..", "." or "//" is refused
// before the worker ever sees it (review finding 18).
func TestCommandPathMustBeClean(t *testing.T) {
	const base = `
service: hello
image: stagecraft-demo:v2
platform:
  docker: {port: 8080}
strategy: {type: rolling}
health:
  checks:
    - name: probe
      command:
        argv: [ARGV0, "{{.Address}}"]
`
	for _, argv0 := range []string{"/usr/local/bin/probe", "/allowed/dir/link/../tool", "/usr/./bin/probe", "/usr//bin/probe", "/usr/bin/probe/"} {
		_, err := Parse([]byte(strings.Replace(base, "ARGV0", argv0, 1)))
		clean := argv0 == "/usr/local/bin/probe"
		if clean && err != nil {
			t.Errorf("%s refused: %v", argv0, err)
		}
		if !clean && (err == nil || !strings.Contains(err.Error(), "health.checks[0].command.argv[0]: ") || !strings.Contains(err.Error(), "clean absolute path")) {
			t.Errorf("%s: %v; want refused as not a clean path", argv0, err)
		}
	}
}
