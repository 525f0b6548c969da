package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/stagecraft/stagecraft/internal/api"
)

// searchVersion: rollouts and releases keep their search attributes and
// current details up to date. Runs recorded before it do not.
const searchVersion = "search-20261122"

// keepSearchable upserts the fixed attributes now and the status whenever
// status() changes, from a goroutine beside the workflow.
func keepSearchable(ctx workflow.Context, fixed []temporal.SearchAttributeUpdate, status func() string) {
	last := status()
	upsert := append(fixed, api.SearchStatus.ValueSet(last))
	if err := workflow.UpsertTypedSearchAttributes(ctx, upsert...); err != nil {
		workflow.GetLogger(ctx).Warn("search attributes not kept", "error", err)
		return
	}
	workflow.Go(ctx, func(gctx workflow.Context) {
		for {
			if err := workflow.Await(gctx, func() bool { return status() != last }); err != nil {
				return
			}
			last = status()
			if err := workflow.UpsertTypedSearchAttributes(gctx, api.SearchStatus.ValueSet(last)); err != nil {
				workflow.GetLogger(gctx).Warn("search attribute not kept", "error", err)
			}
		}
	})
}

// searchStatus is a rollout's StagecraftStatus: its phase, then its outcome.
func (r *rollout) searchStatus() string {
	if r.st.Outcome != "" {
		return string(r.st.Outcome)
	}
	return string(r.phase())
}

// details says in one line what the rollout is doing now, for the Web UI
// ("canary 25% (stage 2/4): validating, bake ends 14:05:09 UTC, 6/10 rounds
// healthy"). It depends on the state only, not the clock, so it stays true
// between workflow tasks.
func (r *rollout) details() string {
	st := &r.st
	switch {
	case st.Outcome != "":
		return r.summary()
	case len(st.Stages) == 0 || st.Phase == api.PhaseRollingBack || st.Phase == api.PhaseVerifying ||
		st.Phase == api.PhaseFinalizing || st.Phase == api.PhaseAwaitingRelease || st.Phase == api.PhaseKeepingBlue:
		return string(r.phase())
	}
	rec := st.Stages[st.CurrentStage]
	line := fmt.Sprintf("%s (stage %d/%d): %s", rec.Name, st.CurrentStage+1, len(st.Stages), r.phase())
	if a := r.openApproval(); a != nil {
		return fmt.Sprintf("%s (stage %d/%d): awaiting approval until %s, then %s", a.Name, a.Stage+1, len(st.Stages),
			a.Deadline.UTC().Format(time.TimeOnly+" UTC"), a.OnTimeout)
	}
	switch {
	case r.paused:
		line += fmt.Sprintf(", %s of bake left", st.BakeRemaining.Round(time.Second))
	case st.BakeEndsAt != nil:
		line += fmt.Sprintf(", bake ends %s", st.BakeEndsAt.UTC().Format(time.TimeOnly+" UTC"))
	}
	c := rec.Rounds
	if n := c.Healthy + c.Degraded + c.Failed + c.NoData; n > 0 {
		line += fmt.Sprintf(", %d/%d rounds healthy", c.Healthy, n)
	}
	return line
}

// keepDetails sets the current details whenever the rollout's state moves.
func (r *rollout) keepDetails(ctx workflow.Context) {
	workflow.Go(ctx, func(gctx workflow.Context) {
		last := ""
		for {
			if d := r.details(); d != last {
				workflow.SetCurrentDetails(gctx, d)
				last = d
			}
			if err := workflow.Await(gctx, func() bool { return r.details() != last }); err != nil {
				return
			}
		}
	})
}

// startSearch keeps the rollout's search attributes current.
func (r *rollout) startSearch(ctx workflow.Context) {
	if workflow.GetVersion(ctx, searchVersion, workflow.DefaultVersion, 1) < 1 {
		return
	}
	fixed := []temporal.SearchAttributeUpdate{api.SearchService.ValueSet(r.spec.Service), api.SearchStrategy.ValueSet(r.st.Strategy),
		api.SearchPlatform.ValueSet(r.st.Platform), api.SearchImage.ValueSet(r.spec.Image)}
	if r.spec.Environment != "" {
		fixed = append(fixed, api.SearchEnvironment.ValueSet(r.spec.Environment))
	}
	keepSearchable(ctx, fixed, r.searchStatus)
}

// startSearch keeps the release's search attributes current: its name as
// the service, "release" as the strategy.
func (rel *release) startSearch(ctx workflow.Context) {
	if workflow.GetVersion(ctx, searchVersion, workflow.DefaultVersion, 1) < 1 {
		return
	}
	fixed := []temporal.SearchAttributeUpdate{api.SearchService.ValueSet(rel.st.Name), api.SearchStrategy.ValueSet("release"),
		api.SearchPlatform.ValueSet("release"), api.SearchEnvironment.ValueSet(rel.st.Environment)}
	keepSearchable(ctx, fixed, func() string {
		if rel.st.Outcome != "" {
			return string(rel.st.Outcome)
		}
		return rel.st.Phase
	})
}
