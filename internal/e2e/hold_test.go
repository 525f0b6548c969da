//go:build integration

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/control"
	"github.com/stagecraft/stagecraft/internal/itest"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// TestCLIRollbackFailedHoldsTarget, end to end with the starter and a
// worker process on the real engines: a recreate whose dependency breaks
// mid-rollout and stays broken after the restore ends rollback_failed and
// holds its target; the next
// deploy, by the starter or straight through a Temporal client, is
// rejected before any change, naming the failed rollout and `starter
// clear`; `starter clear` clears it (who and why); then a deploy proceeds.
func TestCLIRollbackFailedHoldsTarget(t *testing.T) {
	startWorkerProcess(t)
	ctx := context.Background()
	service := itest.Name("e2e-hold")
	cleanup(t, service)
	t.Cleanup(func() {
		_, _ = dc.VolumeRemove(context.Background(), "stagecraft-hold-"+service, client.VolumeRemoveOptions{Force: true})
	})
	// A dependency the checks call, which the test breaks mid-rollout and
	// which stays broken after the restore: verification fails.
	var broken atomic.Bool
	dep := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if broken.Load() {
			http.Error(w, `{"error":"orders: schema v2 unreadable"}`, http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, `{"status":"ok"}`)
	}))
	t.Cleanup(dep.Close)
	orders := spec.Check{Name: "orders", HTTP: &spec.HTTPCheck{URL: dep.URL + "/orders"}}
	installV1(t, service)

	bad := demoSpec(service, "stagecraft-demo:v2", spec.Recreate, 3)
	bad.Strategy.Bake = spec.Duration(5 * time.Second)
	bad.Health.Checks = append(bad.Health.Checks, orders)
	id := bad.WorkflowID()
	out, errOut, code := cli(t, "deploy", "-f", writeSpec(t, bad), "--json")
	require.Equal(t, 0, code, errOut)
	var started control.Started
	require.NoError(t, json.Unmarshal([]byte(out), &started))
	itest.Eventually(t, 2*time.Minute, "stage 0 validating", func() bool {
		st, err := statusOf(id)
		return err == nil && len(st.Stages) > 0 && st.Stages[0].Status == api.StageValidating
	})
	broken.Store(true)
	out, errOut, code = cli(t, "watch", id, "--poll", "250ms")
	t.Logf("starter watch %s:\n%s%s", id, out, errOut)
	require.Equal(t, 4, code, "rollback_failed: "+errOut)
	require.Contains(t, errOut, "target held until cleared (starter clear docker:"+service+")")
	vol, err := dc.VolumeInspect(ctx, "stagecraft-hold-"+service, client.VolumeInspectOptions{})
	require.NoError(t, err, "the hold is a volume beside the service")
	require.Equal(t, started.RunID, vol.Volume.Labels["stagecraft.hold.run"])
	recordNamed(t, started.WorkflowID, started.RunID, "recreate-rollback_failed-held")
	after := instances(t, service)
	require.Len(t, after, 3)

	// The next deploy, whoever starts it, is rejected before any change.
	good := demoSpec(service, "stagecraft-demo:v1", spec.Recreate, 3)
	good.Strategy.Bake = spec.Duration(time.Second)
	out, errOut, code = cli(t, "deploy", "-f", writeSpec(t, good), "--wait")
	t.Logf("deploy while held:\n%s%s", out, errOut)
	require.Equal(t, 5, code, errOut)
	require.Contains(t, out, "outcome: rejected")
	require.Contains(t, out+errOut, "docker:"+service+" is held: rollout "+id+" (run "+started.RunID+") ended rollback_failed")
	require.Contains(t, out+errOut, "starter clear docker:"+service)
	// A raw client under the target's ID (what the temporal CLI does) too.
	raw, err := tc.ExecuteWorkflow(ctx, clientStart(id), api.RecreateWorkflow, good)
	require.NoError(t, err)
	var res api.Result
	require.NoError(t, control.Result(ctx, raw, &res))
	require.Equal(t, api.OutcomeRejected, res.Outcome)
	require.Contains(t, res.Error, "is held")
	require.Equal(t, restorable(after), restorable(instances(t, service)), "nothing changed while held")

	// Clearing needs a reason; then it clears and says which hold.
	_, errOut, code = cli(t, "clear", "docker:"+service)
	require.Equal(t, 2, code, errOut)
	out, errOut, code = cli(t, "clear", "deploy:docker:"+service, "--reason", "orders schema fixed, v1 checked by hand", "--by", "alice")
	t.Logf("starter clear:\n%s%s", out, errOut)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "hold on docker:"+service+" cleared by alice: orders schema fixed, v1 checked by hand")
	require.Contains(t, out, "it was left by rollout "+id+" (run "+started.RunID+")")
	_, err = dc.VolumeInspect(ctx, "stagecraft-hold-"+service, client.VolumeInspectOptions{})
	require.True(t, cerrdefs.IsNotFound(err), "hold volume after clear: %v", err)
	desc, err := tc.DescribeWorkflowExecution(ctx, id, "")
	require.NoError(t, err)
	recordNamed(t, id, desc.GetWorkflowExecutionInfo().GetExecution().GetRunId(), "clear-hold")
	out, _, code = cli(t, "clear", "docker:"+service, "--reason", "again")
	require.Equal(t, 0, code)
	require.Contains(t, out, "was not held: nothing to clear")

	// The deploy proceeds.
	out, errOut, code = cli(t, "deploy", "-f", writeSpec(t, good), "--wait")
	require.Equal(t, 0, code, out+errOut)
	for _, in := range instances(t, service) {
		require.Equal(t, "stagecraft-demo:v1", in.Image)
	}
}
