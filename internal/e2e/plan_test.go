//go:build integration

package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/itest"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// planCLI runs `starter plan --json` on s and decodes the plan; it returns
// the exit code too.
func planCLI(t *testing.T, s spec.Spec) (api.Preview, int, string) {
	t.Helper()
	b, err := json.Marshal(s)
	require.NoError(t, err)
	f := filepath.Join(t.TempDir(), "spec.json")
	require.NoError(t, os.WriteFile(f, b, 0o600))
	out, errOut, code := cli(t, "plan", "-f", f, "--json")
	var pv api.Preview
	require.NoError(t, json.Unmarshal([]byte(out), &pv), "stdout:\n%s\nstderr:\n%s", out, errOut)
	return pv, code, errOut
}

// requireSameStages holds that the rollout ran exactly the planned stages.
func requireSameStages(t *testing.T, pv api.Preview, res api.Result) {
	t.Helper()
	require.Len(t, res.Stages, len(pv.Stages))
	for i, st := range pv.Stages {
		require.Equal(t, st.Stage, res.Stages[i].Stage, st.Name)
	}
}

// TestPlanIsWhatTheRolloutRuns: `starter plan` reads the live target
// through the worker and changes nothing; the rollout then started runs
// exactly the stages it showed. On Docker and Kubernetes.
func TestPlanIsWhatTheRolloutRuns(t *testing.T) {
	itest.StartWorker(t, tc, dc)
	t.Run("docker", func(t *testing.T) {
		service := itest.Name("e2e-plan")
		cleanup(t, service)
		v1 := installV1(t, service)
		s := demoSpec(service, "stagecraft-demo:v2", spec.Canary, 4)
		s.Strategy.Bake = spec.Duration(time.Second)
		pv, code, errOut := planCLI(t, s)
		require.Equal(t, 0, code, errOut)
		require.True(t, pv.Ready, "%+v", pv.Checks)
		require.Equal(t, api.PreviewSnapshot{Count: 3, Images: []string{"stagecraft-demo:v1"}}, pv.Snapshot)
		require.Equal(t, restorable(v1), restorable(instances(t, service)), "the plan changed nothing")
		res := deploy(t, s)
		require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
		requireSameStages(t, pv, res)

		// A missing image: the plan says the rollout would be rejected.
		bad := demoSpec(service, "registry.invalid/stagecraft-demo:gone", spec.Canary, 4)
		pv, code, errOut = planCLI(t, bad)
		require.Equal(t, exitRejectedCode, code, errOut)
		require.False(t, pv.Ready)
		require.Contains(t, errOut, "image:")
	})
	t.Run("release", func(t *testing.T) {
		a, b := itest.Name("e2e-plan-a"), itest.Name("e2e-plan-b")
		cleanup(t, a)
		cleanup(t, b)
		installV1(t, a)
		da := demoSpec(a, "stagecraft-demo:v2", spec.Canary, 4)
		db := demoSpec(b, "stagecraft-demo:v2", spec.Recreate, 2)
		r := spec.Release{Name: itest.Name("plan"), Environment: "e2e", Services: []spec.ReleaseService{
			{Name: "b", DependsOn: []string{"a"}, Deploy: db}, {Name: "a", Deploy: da}}}
		raw, err := json.Marshal(r)
		require.NoError(t, err)
		f := filepath.Join(t.TempDir(), "release.json")
		require.NoError(t, os.WriteFile(f, raw, 0o600))
		out, errOut, code := cli(t, "plan", "-f", f, "--json")
		require.Equal(t, 0, code, errOut)
		var pv api.ReleasePreview
		require.NoError(t, json.Unmarshal([]byte(out), &pv), out)
		require.True(t, pv.Ready, out)
		require.Len(t, pv.Waves, 2, "a, then b")
		require.Equal(t, "a", pv.Waves[0].Services[0].Name)
		require.Equal(t, 3, pv.Waves[0].Services[0].Preview.Snapshot.Count)
		require.Equal(t, "b", pv.Waves[1].Services[0].Name)
		require.True(t, pv.Waves[1].Services[0].Preview.Snapshot.FreshInstall)
		require.Empty(t, instances(t, b), "the plan started nothing")
	})
	t.Run("kubernetes", func(t *testing.T) {
		cs := kubeClient(t, kubeconfig)
		ns := kubeTarget(t, cs)
		s := kubeSpec(ns, kubeconfig, spec.BlueGreen, healthServer(t, cs, ns))
		pv, code, errOut := planCLI(t, s)
		require.Equal(t, 0, code, errOut)
		require.True(t, pv.Ready, "%+v", pv.Checks)
		require.Equal(t, 4, pv.Snapshot.Count)
		require.Equal(t, map[string]string{"web": "demo:v1 x4 ready 4"}, deployments(t, cs, ns), "the plan changed nothing")
		require.Contains(t, strings.Join(pv.Stages[0].Changes, "\n"), "Deployment "+ns+"/web-green with 4 replica(s) of demo:v2", "green up, in the platform's words")
		require.Contains(t, strings.Join(pv.Stages[1].Changes, "\n"), "Service "+ns+"/web selector switched to green")
		require.Contains(t, strings.Join(pv.RollbackChanges, "\n"), "Deployment "+ns+"/web back to its snapshot: demo:v1, 4 replica(s)")
		res := deploy(t, s)
		require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
		requireSameStages(t, pv, res)
	})
}

// exitRejectedCode is starter's exit code for a rollout rejected before any
// change (starter/exit.go).
const exitRejectedCode = 5
