package api_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestCallersUseTheContract holds the one door: the packages callers use
// (the public client, the starter CLI, the control package behind both)
// reach rollouts and releases through this contract, never through the
// engine's packages, and the contract itself imports no engine package.
func TestCallersUseTheContract(t *testing.T) {
	const mod = "github.com/stagecraft/stagecraft/"
	engine := []string{mod + "workflows", mod + "activities", "go.temporal.io/sdk/workflow", "go.temporal.io/sdk/activity"}
	for _, pkg := range []string{"client", "starter", "internal/control", "internal/api"} {
		out, err := exec.Command("go", "list", "-deps", mod+pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		deps := strings.Fields(string(out))
		if len(deps) < 2 {
			t.Fatalf("go list -deps %s listed %d packages", pkg, len(deps))
		}
		for _, d := range deps {
			for _, e := range engine {
				if d == e && (pkg == "internal/api" || !strings.HasPrefix(e, "go.temporal.io/")) {
					t.Errorf("%s imports %s (through its dependencies)", pkg, e)
				}
			}
		}
	}
}
