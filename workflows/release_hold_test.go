package workflows

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// TestHeldServiceDoesNotTimeOutInsideTheRelease: a service that passed its
// stages in the release's first wave waits, held, for the later waves; its
// own 2 h rollout timeout passes while it waits, well inside the release's
// 6 h. The release's timeout governs a held service, so the release
// commits every service. (It once aborted the held service on its own
// timeout and rolled the whole release back: review finding 9.)
func TestHeldServiceDoesNotTimeOutInsideTheRelease(t *testing.T) {
	r := threeTier()
	for i := range r.Services {
		r.Services[i].Deploy.Strategy.Bake = spec.Duration(50 * time.Minute)
	}
	h := newHarness(t)
	res := h.runRelease(r)
	require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
	require.Equal(t, "db-migrator=succeeded api=succeeded web=succeeded", states(res))
	started, restored := h.byService()
	require.Empty(t, restored)
	// db-migrator was held for longer than its own timeout.
	require.Greater(t, res.CompletedAt.Sub(started["db-migrator"]), 2*time.Hour)
}

// TestHeldServiceStillTimesOutBeforeReady: the rollout's own timeout still
// bounds its stages in a release: a service whose stages outlast it is
// aborted and the release rolls back.
func TestHeldServiceStillTimesOutBeforeReady(t *testing.T) {
	r := threeTier()
	d := &r.Services[0].Deploy
	d.Timeout = spec.Duration(30 * time.Minute)
	d.Strategy = spec.Strategy{Type: spec.Canary, Steps: []int{25, 50, 100}, Bake: spec.Duration(20 * time.Minute)}
	h := newHarness(t)
	res := h.runRelease(r)
	require.Equal(t, api.OutcomeRolledBack, res.Outcome, res.Error)
	require.Contains(t, res.Error, "rollout timeout 30m0s passed")
}
