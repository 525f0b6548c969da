//go:build integration

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"
	tclient "go.temporal.io/sdk/client"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/audit"
	"github.com/stagecraft/stagecraft/internal/control"
	"github.com/stagecraft/stagecraft/internal/itest"
	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
	"github.com/stagecraft/stagecraft/internal/store"
)

// undoEnv is a real Temporal dev server, a real worker on the real Docker
// engine, and a real PostgreSQL holding the audit trail the starter reads.
// The worker writes no trail: the test records each run's plan row itself,
// as the trail would have it at that moment, so the trail's lag behind
// Temporal is the test's to choose.
type undoEnv struct {
	tc      tclient.Client
	address string
	dsn     string
	st      *store.Store
	service string
}

func newUndoEnv(t *testing.T) *undoEnv {
	t.Helper()
	ctx := context.Background()
	srv, err := itest.DevServer(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Stop() })
	dc, err := itest.Docker()
	require.NoError(t, err)
	itest.StartWorker(t, srv.Client(), dc)
	pg := itest.StartPostgres(t)
	_, err = store.Migrate(ctx, pg.DSN)
	require.NoError(t, err)
	st, err := store.Open(ctx, pg.DSN)
	require.NoError(t, err)
	t.Cleanup(st.Close)
	e := &undoEnv{tc: srv.Client(), address: srv.FrontendHostPort(), dsn: pg.DSN, st: st, service: itest.Name("undo")}
	t.Cleanup(func() {
		list, err := dc.ContainerList(ctx, client.ContainerListOptions{All: true,
			Filters: make(client.Filters).Add("label", platform.LabelService+"="+e.service)})
		if err == nil {
			for _, c := range list.Items {
				_, _ = dc.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true})
			}
		}
		itest.RemoveMarkers(ctx, dc, e.service)
	})
	return e
}

func (e *undoEnv) target() string { return "deploy:docker:" + e.service }

// spec is a one-replica recreate of the demo image with a greeting that
// makes each request its own.
func (e *undoEnv) spec(image, greeting string) spec.Spec {
	s := itest.DemoSpec(e.service, image, spec.Recreate, 1)
	s.Strategy.Bake = spec.Duration(time.Second)
	s.Platform.Docker.Env = map[string]string{"GREETING": greeting}
	return s.WithDefaults()
}

// start starts a rollout of s.
func (e *undoEnv) start(t *testing.T, s spec.Spec) control.Started {
	t.Helper()
	started, err := control.Start(context.Background(), e.tc, s)
	require.NoError(t, err)
	return started
}

// deploy runs a rollout of s to its end and records it as the trail would.
func (e *undoEnv) deploy(t *testing.T, s spec.Spec) control.Started {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	started := e.start(t, s)
	res, err := control.Wait(ctx, e.tc, started.WorkflowID, started.RunID, 200*time.Millisecond, nil)
	require.NoError(t, err)
	require.Equal(t, api.OutcomeSucceeded, res.Outcome, "rollout of %s: %s", s.Image, res.Error)
	e.record(t, started, s, string(res.Outcome), true)
	return started
}

// record writes the run's plan row: status as given, ended or not.
func (e *undoEnv) record(t *testing.T, started control.Started, s spec.Spec, status string, ended bool) {
	t.Helper()
	raw, err := json.Marshal(s)
	require.NoError(t, err)
	now := time.Now().UTC()
	p := &audit.Plan{WorkflowID: started.WorkflowID, RunID: started.RunID, Service: s.Service, Platform: "docker",
		Strategy: s.Strategy.Type, Target: s.TargetKey(), ImageTo: s.Image, Status: status,
		Success: status == string(api.OutcomeSucceeded), CreatedAt: now, StartedAt: &now, Spec: raw}
	if ended {
		p.CompletedAt = &now
	}
	require.NoError(t, e.st.Write(context.Background(), audit.Batch{WorkflowID: started.WorkflowID, RunID: started.RunID, Plan: p}))
}

// starter runs the starter in-process against the environment.
func (e *undoEnv) starter(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(append([]string{"--address", e.address, "--database-url", e.dsn}, args...), &out, &errOut)
	return out.String(), errOut.String(), code
}

// An undo started while a rollout finishes chooses from what that rollout
// left, not from the trail as it stood before its end: v1, v2, then v3
// succeeds but is held open by a notification that does not answer, and
// the trail still has v3 running. Undo waits for v3 to close and goes back
// to v2, the revision before what runs; not to v1 (the one before v2).
func TestUndoWaitsForARolloutThatIsFinishing(t *testing.T) {
	e := newUndoEnv(t)
	e.deploy(t, e.spec("stagecraft-demo:v1", "one"))
	e.deploy(t, e.spec("stagecraft-demo:v2", "two"))

	release := make(chan struct{})
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); hook.Close() })
	v3 := e.spec("stagecraft-demo:v1", "three")
	v3.Notifications = []spec.Notification{{Name: "slow", Webhook: hook.URL, Events: []string{"succeeded"}}}
	started := e.start(t, v3)
	e.record(t, started, v3, string(api.PhaseValidating), false)
	itest.Eventually(t, 2*time.Minute, "v3 has its outcome and is still open", func() bool {
		st, err := control.Status(context.Background(), e.tc, started.WorkflowID)
		ex, derr := control.Describe(context.Background(), e.tc, started.WorkflowID, started.RunID)
		return err == nil && st.Outcome == api.OutcomeSucceeded && derr == nil && ex.Open()
	})

	out, errOut, code := e.starter(t, "undo", e.target(), "--by", "test")
	require.Equal(t, 0, code, "undo: %s\n%s", out, errOut)
	require.Contains(t, out, "to revision 2 (stagecraft-demo:v2", "undo goes back from v3, which succeeded: %s", out)
	require.Contains(t, out, "current: revision 3")
}

// While a rollout is still deciding, undo refuses at once, naming it; a
// rollout terminated mid-way (its trail row left as it was) is what runs
// now: undo restores the newest succeeded revision and names that run.
func TestUndoRefusesARunningRolloutAndSettlesATerminatedOne(t *testing.T) {
	e := newUndoEnv(t)
	e.deploy(t, e.spec("stagecraft-demo:v1", "one"))
	e.deploy(t, e.spec("stagecraft-demo:v2", "two"))

	v3 := e.spec("stagecraft-demo:v1", "three")
	v3.Strategy.Bake = spec.Duration(10 * time.Minute)
	started := e.start(t, v3)
	e.record(t, started, v3, string(api.PhaseDeploying), false)
	itest.Eventually(t, 2*time.Minute, "v3 bakes", func() bool {
		st, err := control.Status(context.Background(), e.tc, started.WorkflowID)
		return err == nil && st.Phase == api.PhaseValidating
	})
	out, errOut, code := e.starter(t, "undo", e.target())
	require.NotEqual(t, 0, code, "undo while v3 runs: %s", out)
	require.Contains(t, errOut, "undo to revision 1 (stagecraft-demo:v1) refused: target is busy: rollout "+e.target()+" (run "+started.RunID+", request "+v3.RequestID()+") is still running")
	require.Contains(t, errOut, "(phase validating; undo chooses from what the target runs once it has ended")

	require.NoError(t, e.tc.TerminateWorkflow(context.Background(), started.WorkflowID, started.RunID, "test: left mid-way"))
	out, errOut, code = e.starter(t, "undo", e.target(), "--by", "test")
	require.Equal(t, 0, code, "undo after v3 was terminated: %s\n%s", out, errOut)
	require.Contains(t, out, "to revision 2 (stagecraft-demo:v2", "undo restores v2, which v3 left mid-way: %s", out)
	require.True(t, strings.Contains(out, "current: revision 3, stagecraft-demo:v1, left by a rollout that ended terminated"), out)
}
