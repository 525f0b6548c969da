//go:build faults

package faults

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/control"
	"github.com/stagecraft/stagecraft/internal/itest"
	"github.com/stagecraft/stagecraft/internal/spec"
	"github.com/stagecraft/stagecraft/internal/store"
)

// The platform and dependency faults: the audit store's PostgreSQL goes
// away, dockerd restarts, the kube-apiserver misbehaves, an image is
// missing, and a rollback itself fails. Each is a real rollout on a worker
// process, checked for its outcome, the end state, no orphans and, where it
// applies, the audit trail and the notifications.

// TestPostgresOutageMidRollout stops the audit store's PostgreSQL for 30 s
// (60 s in the full form) while two Docker rollouts run on a worker
// process: a canary of v2 whose bakes span the outage, and a rolling
// rollout of v2-bad that fails and rolls back during it. Neither fails
// because of the database, the canary moves on while it is down, and
// afterwards every run's trail (the installs' too) is complete and unique.
func TestPostgresOutageMidRollout(t *testing.T) {
	t.Parallel()
	outage, bake := 30*time.Second, 12*time.Second
	if full() {
		outage, bake = 60*time.Second, 25*time.Second
	}
	began := time.Now()
	ctx := context.Background()
	r := newPlatRig(t)
	pg := itest.StartPostgres(t)
	r.worker(t, "--database-url", pg.DSN)
	good, bad := itest.Name("pf-pg"), itest.Name("pf-pgbad")
	platRemoveService(t, good)
	platRemoveService(t, bad)
	installGood, _ := r.installV1(t, good, platV1)
	installBad, v1Bad := r.installV1(t, bad, platV1)

	canary := itest.DemoSpec(good, platV2, spec.Canary, 3)
	canary.Strategy.Bake = spec.Duration(bake)
	rolling := itest.DemoSpec(bad, platBad, spec.Rolling, 3)
	rolling.Strategy.Bake = spec.Duration(6 * time.Second)
	c := r.start(t, canary)
	r.waitStage(t, c.WorkflowID, 0, api.StageValidating)
	b := r.start(t, rolling)
	time.Sleep(2 * time.Second)
	pg.Stop(t)
	down := time.Now()
	time.Sleep(outage)
	mid, err := control.Status(ctx, r.c, c.WorkflowID)
	require.NoError(t, err)
	midBad, err := control.Status(ctx, r.c, b.WorkflowID)
	require.NoError(t, err)
	pg.Start(t)
	downFor := time.Since(down)
	require.GreaterOrEqual(t, mid.CurrentStage, 1, "the canary moved on while the database was down")

	resC := r.wait(t, c, 4*time.Minute)
	resB := r.wait(t, b, 4*time.Minute)
	require.Equal(t, api.OutcomeSucceeded, resC.Outcome, resC.Error)
	require.Equal(t, api.OutcomeRolledBack, resB.Outcome, resB.Error)
	require.Contains(t, resB.Error, "status 500", "rolled back for its health, not the database")
	orphans := platRequireServing(t, good, platV2, "v2", 3)
	after := platBoxes(t, bad)
	require.Equal(t, platRestorable(v1Bad), platRestorable(after), "v1 restored exactly")
	orphans += len(after) - len(v1Bad)

	st, err := store.Open(ctx, pg.DSN)
	require.NoError(t, err)
	defer st.Close()
	var rows []string
	for _, run := range []platRun{installGood, installBad, {c, resC}, {b, resB}} {
		n := r.checkTrail(t, st, run.started, run.res)
		rows = append(rows, fmt.Sprintf("%s %s: %d events, %d stages, %d rounds, %d checks",
			run.res.Service, run.res.Outcome, n.Events, n.Stages, n.Rounds, n.Checks))
	}
	t.Logf("PostgreSQL down %s (canary at stage %d, rolling %q when it came back); canary %s, rolling %s; orphans %d; trails complete and unique:\n  %s; total %s",
		downFor.Round(time.Second), mid.CurrentStage+1, midBad.Phase, resC.Outcome, resB.Outcome, orphans,
		strings.Join(rows, "\n  "), time.Since(began).Round(time.Second))
}

// dockerdPID is the PID of the dockerd scripts/docker.sh started, read from
// its pidfile; the test fails (never skips) when there is none, since it
// must not restart an engine someone else runs.
func dockerdPID(t *testing.T) int {
	t.Helper()
	pidfile := filepath.Join(itest.Root(), ".data", "dockerd.pid")
	raw, err := os.ReadFile(pidfile)
	if err != nil {
		t.Fatalf("this test restarts dockerd, and only the one scripts/docker.sh started: %s is missing (%v). "+
			"Start the engine with `bash scripts/docker.sh` (make test does) instead of by hand", pidfile, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	require.NoError(t, err, "%s holds %q", pidfile, raw)
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil || strings.TrimSpace(string(comm)) != "dockerd" {
		t.Fatalf("%s names pid %d, which is not a running dockerd (%q, %v)", pidfile, pid, comm, err)
	}
	return pid
}

// restartDockerd stops the engine with `scripts/docker.sh stop` (by its
// PID), keeps it down a moment, and starts it again with scripts/docker.sh.
func restartDockerd(t *testing.T) (stopped, total time.Duration) {
	t.Helper()
	old := dockerdPID(t)
	script := filepath.Join(itest.Root(), "scripts", "docker.sh")
	// Whatever happens, the engine is started again for the tests after.
	t.Cleanup(func() { _ = exec.Command("bash", script).Run() })
	began := time.Now()
	out, err := exec.Command("bash", script, "stop").CombinedOutput()
	require.NoError(t, err, "%s", out)
	stopped = time.Since(began)
	_, err = dc.Ping(context.Background(), client.PingOptions{})
	require.Error(t, err, "the engine is down")
	time.Sleep(2 * time.Second)
	out, err = exec.Command("bash", script).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.NotEqual(t, old, dockerdPID(t), "a new dockerd")
	return stopped, time.Since(began)
}

// TestDockerdRestartMidStage restarts dockerd while a Docker rollout's
// stage converges or validates. Its containers (restart policy
// unless-stopped) come back with the engine; the rollout must end right:
// succeeded with every container on v2, or rolled back to exactly the
// snapshot, with no orphan. Not parallel: nothing else may use the engine
// while it restarts.
func TestDockerdRestartMidStage(t *testing.T) {
	dockerdPID(t)
	r := newPlatRig(t)
	r.worker(t)
	type restartCase struct {
		name, strategy string
		stage          int
		when           []api.StageStatus
	}
	cases := []restartCase{
		{"canary, stage 2 converging or validating", spec.Canary, 1, []api.StageStatus{api.StageInProgress, api.StageValidating}},
	}
	if full() {
		cases = append(cases,
			restartCase{"blue-green, green validating before the switch", spec.BlueGreen, 0, []api.StageStatus{api.StageValidating}},
			restartCase{"rolling, batch 1 converging", spec.Rolling, 0, []api.StageStatus{api.StageInProgress}})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			began := time.Now()
			service := itest.Name("pf-dockerd")
			platRemoveService(t, service)
			_, v1 := r.installV1(t, service, platV1)
			s := itest.DemoSpec(service, platV2, c.strategy, 3)
			s.Strategy.Bake = spec.Duration(6 * time.Second)
			if c.strategy == spec.BlueGreen {
				s.Strategy.Bake = 0
				s.Strategy.BakeBeforeSwitch = spec.Duration(6 * time.Second)
			}
			started := r.start(t, s)
			seen := r.waitStage(t, started.WorkflowID, c.stage, c.when...).Stages[c.stage].Status
			stopped, restart := restartDockerd(t)
			res := r.wait(t, started, 5*time.Minute)
			var orphans int
			switch res.Outcome {
			case api.OutcomeSucceeded:
				orphans = platRequireServing(t, service, platV2, "v2", 3)
			case api.OutcomeRolledBack:
				require.True(t, res.Rollback.Verified)
				after := platBoxes(t, service)
				require.Equal(t, platRestorable(v1), platRestorable(after), "exactly the snapshot")
				orphans = len(after) - len(v1) + platRequireServing(t, service, platV1, "v1", 3)
			default:
				t.Fatalf("outcome %s: %s", res.Outcome, res.Error)
			}
			outcome := string(res.Outcome)
			if res.Error != "" {
				outcome += " (" + res.Error + ")"
			}
			t.Logf("dockerd restarted at stage %d %s (stop took %s, down to up %s); outcome %s; orphans %d; total %s",
				c.stage+1, seen, stopped.Round(100*time.Millisecond), restart.Round(100*time.Millisecond),
				outcome, orphans, time.Since(began).Round(time.Second))
		})
	}
}

// TestKubeAPIServerFaults runs Kubernetes rollouts through a proxy that
// answers deployment writes with 409, throttles with 429, fails with 500
// (before and after a write is applied) and adds latency: a canary (every
// strategy in the full form) still succeeds, one whose new version fails
// its checks still rolls back to exactly what was there, and nothing is
// left behind.
func TestKubeAPIServerFaults(t *testing.T) {
	t.Parallel()
	r := newPlatRig(t)
	r.worker(t)
	cs := itest.KubeClient(t, kubeconfig)
	type kubeCase struct {
		strategy string
		bad      bool
	}
	cases := []kubeCase{{spec.Canary, false}, {spec.Canary, true}}
	if full() {
		cases = append(cases, kubeCase{spec.BlueGreen, false}, kubeCase{spec.Rolling, false},
			kubeCase{spec.Recreate, false}, kubeCase{spec.Rolling, true})
	}
	for _, c := range cases {
		name := c.strategy + "/succeeds"
		if c.bad {
			name = c.strategy + "/rolls-back"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			ns := itest.KubeWeb(t, cs, "faults", "demo:v1", 4, nil)
			before, err := cs.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
			require.NoError(t, err)
			beforeSvc, err := cs.CoreV1().Services(ns).Get(ctx, "web", metav1.GetOptions{})
			require.NoError(t, err)
			// The bad version fails once 2 of its pods are ready: the
			// canary's 50% stage, the second batch of 2 when rolling.
			failAt := 2
			if c.strategy == spec.Rolling {
				failAt = 3
			}
			health := itest.KubeHealth(t, cs, ns, "demo:v2-bad", func(readyBad int, _ bool) bool { return readyBad >= failAt })
			image, want, end := "demo:v2", api.OutcomeSucceeded, "demo:v2"
			if c.bad {
				image, want, end = "demo:v2-bad", api.OutcomeRolledBack, "demo:v1"
			}
			proxy, config := newFaultProxy(t)
			s := itest.KubeSpec(ns, config, c.strategy, image, health)
			proxy.on.Store(true)
			began := time.Now()
			_, res := r.run(t, s)
			took := time.Since(began)
			proxy.on.Store(false)
			faults, summary := proxy.report()
			require.Equal(t, want, res.Outcome, res.Error)
			require.Positive(t, faults, "faults were injected: %s", summary)
			leftovers := platKubeLeftovers(t, cs, ns, end)
			if c.bad {
				require.Contains(t, res.Error, "status 500")
				require.True(t, res.Rollback.Verified)
				after, err := cs.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
				require.NoError(t, err)
				afterSvc, err := cs.CoreV1().Services(ns).Get(ctx, "web", metav1.GetOptions{})
				require.NoError(t, err)
				require.Equal(t, before.Spec.Template, after.Spec.Template, "pod template restored exactly")
				require.Equal(t, before.Spec.Replicas, after.Spec.Replicas)
				require.Equal(t, before.Labels, after.Labels)
				require.Equal(t, beforeSvc.Spec, afterSvc.Spec, "Service restored exactly")
			}
			t.Logf("%s %s through the fault proxy: %d faults injected (%s); outcome %s in %s; leftover objects %d",
				c.strategy, image, faults, summary, res.Outcome, took.Round(100*time.Millisecond), leftovers)
		})
	}
}

// TestMissingImageRejectedBeforeAnyChange: a rollout of an image the engine
// neither has nor can pull is rejected, for every strategy, with an error
// naming the image, before anything changes: the running containers are
// the same ones (same IDs, never restarted), and a fresh install creates
// nothing. The rejected notification is sent once. (Kubernetes cannot know
// an image is missing before its pods try to pull it, and KWOK's pods never
// pull: Docker only.)
func TestMissingImageRejectedBeforeAnyChange(t *testing.T) {
	t.Parallel()
	const missing = "stagecraft-demo:does-not-exist"
	began := time.Now()
	r := newPlatRig(t)
	r.worker(t)
	hooks := newPlatHooks(t)
	service, fresh := itest.Name("pf-noimg"), itest.Name("pf-noimg-fresh")
	platRemoveService(t, service)
	platRemoveService(t, fresh)
	_, v1 := r.installV1(t, service, platV1)
	var lines []string
	var example string
	for _, target := range []string{service, fresh} {
		for _, strategy := range []string{spec.Canary, spec.BlueGreen, spec.Rolling, spec.Recreate} {
			s := itest.DemoSpec(target, missing, strategy, 3)
			s.Notifications = []spec.Notification{{Name: "ops", Webhook: hooks.url}}
			t0 := time.Now()
			started, res := r.run(t, s)
			require.Equal(t, api.OutcomeRejected, res.Outcome, res.Error)
			require.Contains(t, res.Error, missing)
			example = res.Error
			for _, st := range res.Stages {
				require.Equal(t, api.StagePending, st.Status, "no stage started")
			}
			require.Nil(t, res.Rollback)
			require.Equal(t, []string{spec.EventRejected}, platKinds(hooks.of(t, started)))
			if target == service {
				require.Equal(t, v1, platBoxes(t, service), "untouched: the same containers, never restarted")
			} else {
				require.Empty(t, platBoxes(t, fresh), "a fresh install creates nothing")
			}
			lines = append(lines, fmt.Sprintf("%s %s: %s in %s", map[bool]string{true: "running", false: "fresh"}[target == service],
				strategy, res.Outcome, time.Since(t0).Round(100*time.Millisecond)))
		}
	}
	t.Logf("missing image %s: %s; error %q; orphans 0; total %s", missing, strings.Join(lines, ", "),
		example, time.Since(began).Round(time.Second))
}

// TestRollbackThatFailsIsReported: the new version fails its checks, the
// rollout rolls back, and the rollback itself fails, in two realistic ways:
// the old version's image is gone when the restore needs it (a recreate
// removed its containers, then the tag was deleted), and a dependency the
// new version broke stays broken after the restore, so verification fails.
// Either way the outcome is rollback_failed, the target is in the state the
// result says, and a rollback_failed notification reaches the webhook once.
func TestRollbackThatFailsIsReported(t *testing.T) {
	t.Parallel()
	r := newPlatRig(t)
	r.worker(t)
	hooks := newPlatHooks(t)
	ctx := context.Background()

	t.Run("restore image removed", func(t *testing.T) {
		t.Parallel()
		began := time.Now()
		// v1 as bytes of this test's own (a commit with a label of its
		// own), so removing them touches no one else: the restore recreates
		// by image ID, so removing a mere tag of v1 would not stop it.
		private := fmt.Sprintf("stagecraft-faults/demo:v1-%d", time.Now().UnixNano())
		base, err := dc.ContainerCreate(ctx, client.ContainerCreateOptions{Image: platV1, Name: itest.Name("pf-rbimg-base")})
		require.NoError(t, err)
		committed, err := dc.ContainerCommit(ctx, base.ID, client.ContainerCommitOptions{Reference: private, Changes: []string{"LABEL stagecraft.test.private=" + private}})
		require.NoError(t, err)
		_, err = dc.ContainerRemove(ctx, base.ID, client.ContainerRemoveOptions{Force: true})
		require.NoError(t, err)
		t.Cleanup(func() {
			_, _ = dc.ImageRemove(context.Background(), committed.ID, client.ImageRemoveOptions{Force: true})
		})
		service := itest.Name("pf-rbimg")
		platRemoveService(t, service)
		r.installV1(t, service, private)

		s := itest.DemoSpec(service, platBad, spec.Recreate, 3)
		s.Strategy.Bake = spec.Duration(10 * time.Second)
		// v2-bad fails 8 s after it starts: time to take v1's bytes away
		// once the recreate has removed its containers, before the rollback.
		s.Platform.Docker.Env["FAIL_AFTER"] = "8"
		s.Notifications = []spec.Notification{{Name: "ops", Webhook: hooks.url}}
		started := r.start(t, s)
		r.waitStage(t, started.WorkflowID, 0, api.StageValidating)
		_, err = dc.ImageRemove(ctx, private, client.ImageRemoveOptions{Force: true})
		require.NoError(t, err)
		_, err = dc.ImageInspect(ctx, committed.ID)
		require.Error(t, err, "v1's bytes are gone from the engine")
		res := r.wait(t, started, 4*time.Minute)
		require.Equal(t, api.OutcomeRollbackFailed, res.Outcome, res.Error)
		require.Contains(t, res.Error, "status 500", "the stage failed its checks")
		require.Contains(t, res.Rollback.Error, "restore snapshot")
		require.Contains(t, res.Rollback.Error, private, "the error names the missing image")
		require.False(t, res.Rollback.Verified)
		// The restore refused before changing anything: v2-bad still runs,
		// exactly 3 of it, nothing of v1 half-made.
		after := platBoxes(t, service)
		require.Len(t, after, 3)
		for _, b := range after {
			require.Equal(t, platBad, b.Image, b.Name)
			require.True(t, b.Running, b.Name)
		}
		evs := hooks.of(t, started)
		require.Equal(t, []string{spec.EventStarted, spec.EventFailed, spec.EventRollbackFailed}, platKinds(evs))
		require.Equal(t, res.Error, evs[2].Reason)
		t.Logf("restore image removed: outcome %s (%s); notifications %v; containers after: 3 v2-bad, orphans %d; total %s",
			res.Outcome, res.Error, platKinds(evs), len(after)-3, time.Since(began).Round(time.Second))
	})

	t.Run("dependency stays broken", func(t *testing.T) {
		t.Parallel()
		began := time.Now()
		var broken atomic.Bool
		var calls atomic.Int64
		dep := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			calls.Add(1)
			if broken.Load() {
				http.Error(w, `{"error":"orders: schema v2 unreadable"}`, http.StatusInternalServerError)
				return
			}
			fmt.Fprint(w, `{"status":"ok"}`)
		}))
		t.Cleanup(dep.Close)
		service := itest.Name("pf-rbdep")
		platRemoveService(t, service)
		_, v1 := r.installV1(t, service, platV1)

		s := itest.DemoSpec(service, platV2, spec.Canary, 3)
		s.Strategy.Bake = spec.Duration(5 * time.Second)
		s.Health.Checks = append(s.Health.Checks, spec.Check{Name: "orders", HTTP: &spec.HTTPCheck{URL: dep.URL + "/orders"}})
		s.Notifications = []spec.Notification{{Name: "ops", Webhook: hooks.url}}
		s = s.WithDefaults()
		started := r.start(t, s)
		r.waitStage(t, started.WorkflowID, 1, api.StageValidating)
		broken.Store(true)
		res := r.wait(t, started, 4*time.Minute)
		require.Equal(t, api.OutcomeRollbackFailed, res.Outcome, res.Error)
		require.Contains(t, res.Error, `check "orders"`)
		require.Contains(t, res.Rollback.Error, "verify restored service")
		require.False(t, res.Rollback.Verified)
		// The restore itself worked: v1 is back exactly; only the
		// dependency is still failing.
		after := platBoxes(t, service)
		require.Equal(t, platRestorable(v1), platRestorable(after))
		orphans := len(after) - len(v1) + platRequireServing(t, service, platV1, "v1", 3)
		evs := hooks.of(t, started)
		require.Equal(t, []string{spec.EventStarted, spec.EventFailed, spec.EventRollbackFailed}, platKinds(evs))
		require.Equal(t, res.Error, evs[2].Reason)
		t.Logf("dependency stays broken: outcome %s (%s); %d dependency calls; notifications %v; v1 restored, orphans %d; total %s",
			res.Outcome, res.Error, calls.Load(), platKinds(evs), orphans, time.Since(began).Round(time.Second))
	})
}
