//go:build integration

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/control"
	"github.com/stagecraft/stagecraft/internal/itest"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// listedRevisions is `starter revisions --json`.
type listedRevisions struct {
	WorkflowID string `json:"workflowId"`
	Source     string `json:"source"`
	Revisions  []struct {
		Number    int        `json:"revision"`
		RunID     string     `json:"runId"`
		Image     string     `json:"image"`
		Strategy  string     `json:"strategy"`
		Outcome   string     `json:"outcome"`
		State     string     `json:"state"`
		StartedBy string     `json:"startedBy"`
		StartedAt time.Time  `json:"startedAt"`
		Completed *time.Time `json:"completedAt"`
		Duration  float64    `json:"durationSeconds"`
		UndoOf    string     `json:"undoOf"`
		Current   bool       `json:"current"`
	} `json:"revisions"`
}

// undoCLI runs the starter binary with only the database the test names
// (none when dsn is ""), whatever the environment holds.
func undoCLI(t *testing.T, dsn string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	all := []string{"--address", server.FrontendHostPort()}
	if dsn != "" {
		all = append(all, "--database-url", dsn)
	}
	cmd := exec.CommandContext(ctx, starter, append(all, args...)...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DATABASE_URL=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if len(args) > 0 && args[0] == "undo" {
		t.Logf("starter %s:\n%s%s", strings.Join(args, " "), out.String(), errb.String())
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), errb.String(), 0
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		return out.String(), errb.String(), ee.ExitCode()
	}
	t.Fatalf("starter %v: %v\nstdout:\n%s\nstderr:\n%s", args, err, out.String(), errb.String())
	return "", "", -1
}

// revisionsOf lists the target's revisions with the CLI, waiting until it
// shows n of them.
func revisionsOf(t *testing.T, dsn, target string, n int) listedRevisions {
	t.Helper()
	var revs listedRevisions
	var last string
	defer func() {
		if t.Failed() {
			t.Logf("starter revisions %s --json, last:\n%s", target, last)
		}
	}()
	itest.Eventually(t, 30*time.Second, fmt.Sprintf("revisions lists %d, the newest ended", n), func() bool {
		out, errOut, code := undoCLI(t, dsn, "revisions", target, "--json")
		last = out + errOut
		revs = listedRevisions{}
		return code == 0 && json.Unmarshal([]byte(out), &revs) == nil && len(revs.Revisions) == n &&
			revs.Revisions[0].Completed != nil
	})
	t.Logf("revisions of %s:\n%s", target, last)
	return revs
}

// deployCLI rolls s out with `starter deploy -f FILE --wait` and requires
// it to succeed.
func deployCLI(t *testing.T, dsn string, s spec.Spec) {
	t.Helper()
	b, err := json.Marshal(s)
	require.NoError(t, err)
	file := filepath.Join(t.TempDir(), "spec.json")
	require.NoError(t, os.WriteFile(file, b, 0o644))
	out, errOut, code := undoCLI(t, dsn, "deploy", "-f", file, "--wait")
	require.Equal(t, 0, code, "deploy %s: %s\n%s", s.Image, out, errOut)
}

// tagImage gives a demo image a name of the test's own, removed at the end.
func tagImage(t *testing.T, source, target string) {
	t.Helper()
	_, err := dc.ImageTag(context.Background(), client.ImageTagOptions{Source: source, Target: target})
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = dc.ImageRemove(context.Background(), target, client.ImageRemoveOptions{}) })
}

// imagesRunning are the images of the service's running containers.
func imagesRunning(t *testing.T, service string) []string {
	t.Helper()
	var out []string
	for _, i := range instances(t, service) {
		if i.Running {
			out = append(out, i.Image)
		}
	}
	return out
}

func requireAll(t *testing.T, images []string, want string) {
	t.Helper()
	require.NotEmpty(t, images)
	for _, im := range images {
		require.Equal(t, want, im, "running images %v", images)
	}
}

// TestRevisionsAndUndoOnDocker: v1, v2 and v3 rolled out on Docker with the
// audit trail in PostgreSQL; revisions lists them newest first with image,
// strategy, outcome, who and when; undo goes back to v2 by default and to
// v1 with --to, each recorded as an undo; an undo to a revision whose image
// is gone is refused naming the image, changing nothing; and an undo while
// a rollout runs is refused as busy.
func TestRevisionsAndUndoOnDocker(t *testing.T) {
	pg, st := auditStore(t)
	itest.StartWorkerWith(t, tc, dc, itest.WorkerConfig{Store: st})
	service := itest.Name("e2e-undo")
	cleanup(t, service)
	image := func(tag string) string { return service + ":" + tag }
	tagImage(t, "stagecraft-demo:v1", image("v1"))
	tagImage(t, "stagecraft-demo:v2", image("v2"))
	tagImage(t, "stagecraft-demo:v2", image("v3"))
	tagImage(t, "stagecraft-demo:v1", image("gone"))
	fast := func(tag, strategy string) spec.Spec {
		s := demoSpec(service, image(tag), strategy, 2)
		s.Strategy.Bake = spec.Duration(time.Second)
		return s
	}
	target := "deploy:docker:" + service
	deployCLI(t, pg.DSN, fast("v1", spec.Recreate))
	deployCLI(t, pg.DSN, fast("v2", spec.Rolling))
	deployCLI(t, pg.DSN, fast("v3", spec.Canary))

	revs := revisionsOf(t, pg.DSN, service, 3)
	require.Equal(t, "store", revs.Source)
	require.Equal(t, target, revs.WorkflowID)
	for i, want := range []struct {
		n               int
		image, strategy string
	}{{3, image("v3"), spec.Canary}, {2, image("v2"), spec.Rolling}, {1, image("v1"), spec.Recreate}} {
		r := revs.Revisions[i]
		require.Equal(t, want.n, r.Number, "newest first")
		require.Equal(t, want.image, r.Image)
		require.Equal(t, want.strategy, r.Strategy)
		require.Equal(t, "succeeded", r.Outcome)
		require.Equal(t, "COMPLETED", r.State)
		require.Equal(t, control.Identity(), r.StartedBy, "who started it")
		require.False(t, r.StartedAt.IsZero())
		require.Positive(t, r.Duration)
		require.Equal(t, i == 0, r.Current)
	}
	out, _, code := undoCLI(t, pg.DSN, "revisions", service)
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "revisions of "+target+" (from the audit trail), newest first; * is current")
	require.Regexp(t, `(?m)^3\*\s+`+image("v3")+`\s+canary\s+succeeded\s+`, out)
	v3run, v2run, v1run := revs.Revisions[0].RunID, revs.Revisions[1].RunID, revs.Revisions[2].RunID

	// Default: the succeeded revision before the current one, with its
	// strategy, recorded as an undo of it.
	out, errOut, code := undoCLI(t, pg.DSN, "undo", service, "--by", "alice", "--reason", "v3 is slow", "--wait")
	require.Equal(t, 0, code, "undo: %s\n%s", out, errOut)
	require.Contains(t, out, "undo of "+target+" to revision 2 ("+image("v2")+", rolling; current: revision 3, "+image("v3")+")")
	requireAll(t, imagesRunning(t, service), image("v2"))
	revs = revisionsOf(t, pg.DSN, target, 4)
	r := revs.Revisions[0]
	require.Equal(t, 4, r.Number)
	require.Equal(t, image("v2"), r.Image)
	require.Equal(t, spec.Rolling, r.Strategy)
	require.Equal(t, "succeeded", r.Outcome)
	require.Equal(t, "alice", r.StartedBy)
	require.Equal(t, v2run, r.UndoOf, "the trail records the undo of revision 2")
	d, err := tc.DescribeWorkflowExecution(context.Background(), target, r.RunID)
	require.NoError(t, err)
	var memo api.Undo
	require.NoError(t, converter.GetDefaultDataConverter().FromPayload(d.GetWorkflowExecutionInfo().GetMemo().GetFields()[api.MemoUndo], &memo))
	require.Equal(t, api.Undo{Revision: 2, RunID: v2run, Image: image("v2"), From: v3run, Reason: "v3 is slow"}, memo,
		"the memo records the undo")

	// --to a revision number, with another strategy.
	out, errOut, code = undoCLI(t, pg.DSN, "undo", target, "--to", "1", "--strategy", spec.Recreate, "--wait")
	require.Equal(t, 0, code, "undo --to 1: %s\n%s", out, errOut)
	requireAll(t, imagesRunning(t, service), image("v1"))
	revs = revisionsOf(t, pg.DSN, target, 5)
	require.Equal(t, image("v1"), revs.Revisions[0].Image)
	require.Equal(t, spec.Recreate, revs.Revisions[0].Strategy)
	require.Equal(t, v1run, revs.Revisions[0].UndoOf)

	// A revision that did not succeed, and one that is not there.
	deployCLI(t, pg.DSN, fast("gone", spec.Recreate))
	deployCLI(t, pg.DSN, fast("v3", spec.Recreate))
	revisionsOf(t, pg.DSN, target, 7)

	// The image of revision 6 is gone: the rollout's own preparation
	// rejects the undo before any change, and undo says so.
	_, err = dc.ImageRemove(context.Background(), image("gone"), client.ImageRemoveOptions{})
	require.NoError(t, err)
	before := instances(t, service)
	out, errOut, code = undoCLI(t, pg.DSN, "undo", service, "--to", "6")
	require.Equal(t, 5, code, "an undo to a missing image ends rejected: %s\n%s", out, errOut)
	require.Contains(t, errOut, "undo to revision 6 ("+image("gone")+") refused: rollout "+target+" ended rejected")
	require.Contains(t, errOut, image("gone"), "the reason names the image")
	require.Equal(t, restorable(before), restorable(instances(t, service)), "nothing changed")
	revs = revisionsOf(t, pg.DSN, target, 8)
	require.Equal(t, "rejected", revs.Revisions[0].Outcome)
	require.Equal(t, "FAILED", revs.Revisions[0].State)
	out, errOut, code = undoCLI(t, pg.DSN, "undo", service, "--to", "8")
	require.Equal(t, 1, code, out)
	require.Contains(t, errOut, "undo refused: revision 8 of "+target+" ("+image("gone")+", run "+revs.Revisions[0].RunID+") did not succeed (rejected)")

	// Busy: a rollout runs.
	slow := fast("v2", spec.Canary)
	slow.Strategy.Bake = spec.Duration(time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	started, err := control.Start(ctx, tc, slow)
	require.NoError(t, err)
	waitForStage(t, started.WorkflowID, 0, api.StageValidating)
	out, errOut, code = undoCLI(t, pg.DSN, "undo", service, "--to", "2")
	require.Equal(t, 1, code, out)
	require.Contains(t, errOut, "undo to revision 2 ("+image("v2")+") refused: target is busy: rollout "+target+" (run "+started.RunID)
	_, err = control.Act(ctx, tc, started.WorkflowID, api.UpdateAbort, api.ControlRequest{By: "test", Reason: "done"})
	require.NoError(t, err)
	res, err := control.Wait(ctx, tc, started.WorkflowID, started.RunID, time.Second, nil)
	require.NoError(t, err)
	require.Equal(t, api.OutcomeRolledBack, res.Outcome)
	require.Equal(t, api.StageRolledBack, res.State, "the result's state")
	// Plans and stages answer the same query.
	var plans, stages int
	conn, err := pgx.Connect(ctx, pg.DSN)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM deployment_plans WHERE state = 'ROLLED_BACK' AND run_id = $1`, started.RunID).Scan(&plans))
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM deployment_stages WHERE status = 'ROLLED_BACK' AND run_id = $1`, started.RunID).Scan(&stages))
	require.Equal(t, 1, plans)
	require.Positive(t, stages)
}

// TestRevisionsFromVisibilityAndUndo: without a database, revisions comes
// from Temporal's visibility (search attributes and memo), and undo reads
// the revision's spec from its history.
func TestRevisionsFromVisibilityAndUndo(t *testing.T) {
	itest.StartWorker(t, tc, dc)
	service := itest.Name("e2e-undo-vis")
	cleanup(t, service)
	image := func(tag string) string { return service + ":" + tag }
	tagImage(t, "stagecraft-demo:v1", image("v1"))
	tagImage(t, "stagecraft-demo:v2", image("v2"))
	target := "deploy:docker:" + service
	s1 := demoSpec(service, image("v1"), spec.Recreate, 2)
	s1.Strategy.Bake = spec.Duration(time.Second)
	s2 := demoSpec(service, image("v2"), spec.Rolling, 2)
	s2.Strategy.Bake = spec.Duration(time.Second)
	deployCLI(t, "", s1)
	deployCLI(t, "", s2)

	revs := revisionsOf(t, "", target, 2)
	require.Equal(t, "temporal", revs.Source)
	for i, want := range []struct {
		n               int
		image, strategy string
	}{{2, image("v2"), spec.Rolling}, {1, image("v1"), spec.Recreate}} {
		r := revs.Revisions[i]
		require.Equal(t, want.n, r.Number, "newest first")
		require.Equal(t, want.image, r.Image)
		require.Equal(t, want.strategy, r.Strategy)
		require.Equal(t, "succeeded", r.Outcome)
		require.Equal(t, control.Identity(), r.StartedBy)
		require.Positive(t, r.Duration)
	}
	out, errOut, code := undoCLI(t, "", "undo", service, "--by", "bob", "--wait")
	require.Equal(t, 0, code, "undo: %s\n%s", out, errOut)
	requireAll(t, imagesRunning(t, service), image("v1"))
	revs = revisionsOf(t, "", target, 3)
	require.Equal(t, image("v1"), revs.Revisions[0].Image)
	require.Equal(t, spec.Recreate, revs.Revisions[0].Strategy)
	require.Equal(t, "bob", revs.Revisions[0].StartedBy)
	require.Equal(t, revs.Revisions[2].RunID, revs.Revisions[0].UndoOf)
}
