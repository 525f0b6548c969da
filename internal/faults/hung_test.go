//go:build faults

package faults

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/itest"
	"github.com/stagecraft/stagecraft/internal/spec"
	"github.com/stagecraft/stagecraft/internal/store"
)

const (
	// platHung accepts connections and never answers, hungAfter after it
	// starts (scripts/build-demo.sh).
	platHung  = "stagecraft-demo:v2-hang"
	hungAfter = 5 * time.Second
	// roundGrace is what activities lets a round run past its slowest
	// check's timeout before cutting it off.
	roundGrace = 2 * time.Second
)

// TestHungVersionRollsBack rolls out, as a canary with the default check
// timeouts (10 s, twice the watcher's 5 s heartbeat timeout), a version that
// passes its first rounds and then hangs: it accepts connections and never
// answers. The first round after the hang waits out its check timeout while
// the watcher keeps heartbeating, fails, and the stage rolls back; the
// failing round is in the audit trail (PostgreSQL). Before, each such round
// cost the watcher its attempt, the round was never counted, and a retried
// watcher past the bake's deadline passed the stage: the rollout ended
// succeeded with a hung service.
//
// Bound (docs/HEALTH.md): the stage fails within interval + check timeout +
// roundGrace of the hang (0.5 + 10 + 2 = 12.5 s here); the rollback then
// restores and verifies v1 (a few seconds on Docker). The test prints both.
func TestHungVersionRollsBack(t *testing.T) {
	t.Parallel()
	began := time.Now()
	r := newPlatRig(t)
	pg := itest.StartPostgres(t)
	r.worker(t, "--database-url", pg.DSN)
	service := itest.Name("pf-hung")
	platRemoveService(t, service)
	install, v1 := r.installV1(t, service, platV1)

	s := itest.DemoSpec(service, platHung, spec.Canary, 3)
	s.Strategy.Bake = spec.Duration(20 * time.Second)
	checkTimeout := s.Health.Checks[0].HTTP.Timeout.D()
	require.Equal(t, spec.DefaultCheckTimeout, checkTimeout, "the default check timeout")
	bound := s.Health.Interval.D() + checkTimeout + roundGrace

	started := r.start(t, s)
	// The hang starts hungAfter after the new container does.
	var hangAt time.Time
	itest.Eventually(t, time.Minute, "the hanging version's container runs", func() bool {
		for _, b := range platBoxes(t, service) {
			if b.Image == platHung && b.Running {
				at, err := time.Parse(time.RFC3339Nano, b.StartedAt)
				require.NoError(t, err, "container %s started at %q", b.Name, b.StartedAt)
				hangAt = at.Add(hungAfter)
				return true
			}
		}
		return false
	})
	res := r.wait(t, started, 3*time.Minute)
	require.Equal(t, api.OutcomeRolledBack, res.Outcome, res.Error)
	require.Contains(t, res.Error, "health check failed", "rolled back for a failed round")
	require.Contains(t, res.Error, `check "healthz"`)
	require.NotContains(t, res.Error, "lost", "a failed round, not lost attempts")
	require.Equal(t, api.StagePending, res.Stages[1].Status, "the hung version never got past its first stage")
	require.True(t, res.Rollback.Verified, res.Rollback.Error)
	require.Equal(t, platRestorable(v1), platRestorable(platBoxes(t, service)), "v1 restored exactly")

	st, err := store.Open(context.Background(), pg.DSN)
	require.NoError(t, err)
	defer st.Close()
	r.checkTrail(t, st, install.started, install.res)
	n := r.checkTrail(t, st, started, res)
	tr, err := st.Trail(context.Background(), started.WorkflowID, started.RunID)
	require.NoError(t, err)
	first := tr.RoundsByStage[res.Stages[0].Name]
	require.Positive(t, first.Healthy, "rounds passed before the hang: %+v", first)
	require.Positive(t, first.Failed, "the failing round is in the audit trail: %+v", first)

	detected := res.Rollback.StartedAt.Sub(hangAt)
	done := res.CompletedAt.Sub(hangAt)
	t.Logf("hung version (check timeout %s, interval %s): stage failed %s after the hang (bound %s), rolled_back %s after it (rollback %s); "+
		"stage rounds %+v; trail %d rounds, %d checks; total %s",
		checkTimeout, s.Health.Interval.D(), detected.Round(100*time.Millisecond), bound, done.Round(100*time.Millisecond),
		res.CompletedAt.Sub(res.Rollback.StartedAt).Round(100*time.Millisecond), first, n.Rounds, n.Checks, time.Since(began).Round(time.Second))
}
