//go:build faults

package faults

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/itest"
	"github.com/stagecraft/stagecraft/internal/plan"
	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/platform/docker"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// TestZombieConvergeIsFenced freezes a converge on the real dev server
// after it has read its target (its surplus list computed), with its side
// heartbeat suppressed too: a worker cut off from Temporal (or paused) but
// still reaching Docker. The server times the attempt out (30 s heartbeat
// timeout) and retries it; the retry converges the canary of a bad
// version, the stage fails and the rollback restores v1, recreating by name
// the v1 container the stage had removed. Then the frozen attempt resumes.
// Its fence is older than the retry's and the rollback's, so the platform
// refuses its first change: the target stays exactly as the rollback left
// it (same container IDs and images), and the worker logs it fenced.
// Before the fence, the zombie created its canary again and removed, by
// name, the container the rollback had recreated: the rollout reported
// rolled_back and the target then ran a bad canary and one v1 short.
func TestZombieConvergeIsFenced(t *testing.T) {
	t.Parallel()
	began := time.Now()
	r := newPlatRig(t)
	service := itest.Name("pf-zombie")
	platRemoveService(t, service)
	t.Cleanup(func() { removeFences(service) })

	v1 := installUnfenced(t, service)

	release := filepath.Join(t.TempDir(), "release")
	w := startWorker(t, r.srv.FrontendHostPort(), []string{"STAGECRAFT_FAILPOINT=Converge:1:freeze=" + release})
	started := r.start(t, itest.DemoSpec(service, platBad, spec.Canary, 3))
	itest.Eventually(t, time.Minute, "the first converge freezes after reading the target", func() bool {
		return strings.Contains(w.Log(), "failpoint: frozen after reading the target")
	})
	frozenAt := time.Now()

	res := r.wait(t, started, 150*time.Second)
	require.Equal(t, api.OutcomeRolledBack, res.Outcome, res.Error)
	require.True(t, res.Rollback.Verified, res.Rollback.Error)
	events := history(t, r.c, started.WorkflowID, started.RunID)
	require.False(t, retriedAt(events, time.Time{}).IsZero(), "the frozen converge's attempt timed out and was retried")
	rolledBack := platBoxes(t, service)
	require.Equal(t, platRestorable(v1), platRestorable(rolledBack), "the rollback restored v1")
	recreated := 0
	for i := range v1 {
		if v1[i].ID != rolledBack[i].ID {
			recreated++
		}
	}
	require.Positive(t, recreated, "the stage removed a v1 container and the rollback recreated it by name")
	require.NotContains(t, w.Log(), "failpoint: frozen activity resumed", "still frozen after the rollback")

	// The zombie resumes with its surplus list from before the stage.
	require.NoError(t, os.WriteFile(release, nil, 0o600))
	itest.Eventually(t, time.Minute, "the frozen converge returns", func() bool {
		return strings.Contains(w.Log(), "failpoint: frozen activity returned")
	})
	require.Equal(t, rolledBack, platBoxes(t, service), "the zombie changed the target after the rollback")
	logs := w.Log()
	require.Contains(t, logs, "converge fenced", "the worker says the zombie was fenced")
	t.Logf("frozen converge: attempt retried after the heartbeat timeout, rolled_back %s after the freeze; "+
		"the zombie resumed and was fenced, target unchanged (%d containers, %d recreated by the rollback); total %s",
		res.CompletedAt.Sub(frozenAt).Round(time.Second), len(rolledBack), recreated, time.Since(began).Round(time.Second))
}

// TestConvergeStopsWhenItsAttemptIsGone: on the real dev server, a
// converge stalled after reading its target, its side heartbeat muted past
// the heartbeat timeout, is timed out and retried by the server; its first
// beat after that goes through the worker's client, finds the attempt gone
// (NotFound) and cancels the converge's context, so the stalled attempt
// ends by itself within a beat and changes nothing, and the worker says
// why. The retry completes the rollout. (The SDK's own heartbeat also
// cancels on NotFound; what it misses is a server it cannot reach at all,
// which TestConvergeStopsWhenTheServerIsUnreachable in activities covers.)
func TestConvergeStopsWhenItsAttemptIsGone(t *testing.T) {
	t.Parallel()
	r := newPlatRig(t)
	service := itest.Name("pf-gone")
	platRemoveService(t, service)
	t.Cleanup(func() { removeFences(service) })
	installUnfenced(t, service)

	// keepAliveTimeout (30 s) and the beat interval (a quarter of it).
	const heartbeatTimeout, beat = 30 * time.Second, 30 * time.Second / 4
	const mute = heartbeatTimeout + 10*time.Second
	w := startWorker(t, r.srv.FrontendHostPort(), []string{"STAGECRAFT_FAILPOINT=Converge:1:stall=" + mute.String()})
	started := r.start(t, itest.DemoSpec(service, platV2, spec.Canary, 3))
	itest.Eventually(t, time.Minute, "the first converge stalls after reading the target", func() bool {
		return strings.Contains(w.Log(), "failpoint: frozen after reading the target")
	})
	stalledAt := time.Now()
	itest.Eventually(t, mute+2*beat+10*time.Second, "the stalled converge ends by itself", func() bool {
		return strings.Contains(w.Log(), "failpoint: frozen activity returned")
	})
	took := time.Since(stalledAt)
	require.Contains(t, w.Log(), "converge stopped: the Temporal server has given up on its attempt")
	require.Contains(t, w.Log(), "no longer knows it")

	res := r.wait(t, started, 2*time.Minute)
	require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
	for _, b := range platBoxes(t, service) {
		require.Equal(t, platV2, b.Image, "%s: the rollout's result, untouched", b.Name)
	}
	t.Logf("stalled converge: side heartbeat muted %s, stopped by itself %s after it stalled (bound: mute + one beat of %s)",
		mute, took.Round(100*time.Millisecond), beat)
}

// installUnfenced puts 3 containers of v1 in place with the platform
// directly (no fence, no worker), so the worker's first Converge is the
// rollout's first stage, and returns them.
func installUnfenced(t *testing.T, service string) []platBox {
	t.Helper()
	install := itest.DemoSpec(service, platV1, spec.Recreate, 3)
	_, err := docker.New(dc, zap.NewNop()).Converge(context.Background(), platform.ConvergeRequest{
		Spec: install, Rollout: "install", Desired: plan.Desired{New: 3, Traffic: plan.TrafficNew, Order: plan.Surge}})
	require.NoError(t, err, "install v1")
	v1 := platBoxes(t, service)
	require.Len(t, v1, 3)
	return v1
}

// removeFences removes the service's fence volumes (the markers its
// converges left beside it).
func removeFences(service string) {
	ctx := context.Background()
	res, err := dc.VolumeList(ctx, client.VolumeListOptions{Filters: make(client.Filters).
		Add("label", platform.LabelService+"="+service).Add("label", platform.LabelRole+"=fence")})
	if err != nil {
		return
	}
	for _, v := range res.Items {
		_, _ = dc.VolumeRemove(ctx, v.Name, client.VolumeRemoveOptions{Force: true})
	}
}
