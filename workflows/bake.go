package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/stagecraft/stagecraft/activities"
	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/plan"
	"github.com/stagecraft/stagecraft/internal/platform"
)

// bake holds a stage for its bake time on a durable timer while a watcher
// activity runs one health round per interval and applies the spec's
// policy. The stage passes when the timer has fired and the watch counted
// minSamples passing rounds (watching on past the bake until it has); the
// policy failing a watch fails the stage at once. Pause freezes the
// remaining time while a watcher keeps checking (a failure still fails the
// stage); a degraded round may pause the rollout itself; abort cancels at
// once; promote skips the rest.
//
// Each turn of the loop arms the timer and the watcher for the rollout's
// state now (arm, keepWatching), shows it (show), waits for what comes
// first (next) and takes it in.
func (r *rollout) bake(ctx workflow.Context, i int) error {
	b := &baking{r: r, ctx: ctx, stage: r.plan.Stages[i], rec: &r.st.Stages[i],
		remaining: r.plan.Stages[i].Bake, interval: r.spec.Health.Interval.D(),
		checks: len(r.spec.Health.Checks) > 0, policy: r.healthV >= 1}
	defer b.stop()
	for {
		if r.aborted {
			return errAborted{r.abortReason}
		}
		if r.promoted || (b.remaining <= 0 && b.watch == nil && !b.short()) {
			return nil
		}
		now := workflow.Now(ctx)
		b.arm(now)
		b.keepWatching(now)
		b.show()
		ev := b.next()
		switch {
		case r.aborted:
			return errAborted{r.abortReason}
		case ctx.Err() != nil && (ev.cancelled || ev.timerErr != nil):
			return ctx.Err()
		case ev.fired:
			b.timer, b.remaining = nil, 0
			r.st.BakeRemaining, r.st.BakeEndsAt = 0, nil
		case ev.watched:
			if err := b.watched(ev.res, ev.watchErr); err != nil {
				return err
			}
		}
	}
}

// baking is one stage's bake in progress: its timer, its watcher and what
// is left of it.
type baking struct {
	r     *rollout
	ctx   workflow.Context
	stage plan.Stage
	rec   *api.StageRecord
	// remaining is the bake time left when the timer is not running.
	remaining time.Duration
	interval  time.Duration
	checks    bool
	// policy: the run follows healthPolicyVersion (minSamples may extend
	// the bake, a paused bake keeps a watcher, a degraded round may pause).
	// Runs recorded before it bake as they did.
	policy bool

	timer       workflow.Future
	cancelTimer workflow.CancelFunc
	watch       workflow.Future
	cancelWatch workflow.CancelFunc
	watchMode   activities.WatchMode
}

// startWatch starts a watcher of the new version for d (0: until
// cancelled, or its rounds for minSamples).
func (b *baking) startWatch(d time.Duration, mode activities.WatchMode) {
	r := b.r
	wctx, cancel := workflow.WithCancel(b.ctx)
	in := activities.WatchInput{Spec: r.spec, Rollout: r.token, Snapshot: r.snapshot,
		Which: platform.WhichNew, Mode: mode, Rounds: int(d / b.interval)}
	if b.policy {
		in.MinSamples = max(r.spec.Health.MinSamples-b.rec.ChecksPassed, 0)
		in.AcceptDegraded = r.acceptDegraded
		in.Stage = b.stage.Name
	}
	if mode == activities.WatchRounds && d > 0 {
		// The bake's deadline: a watcher retried after a worker
		// crash does not make up the rounds it missed past it.
		in.Until = workflow.Now(b.ctx).Add(d)
	}
	b.watch, b.cancelWatch, b.watchMode = workflow.ExecuteActivity(watchOptions(wctx, r.spec, bakeWatchAttempts), acts.Watch, in), cancel, mode
}

// stopWatch cancels the watcher and awaits its end beside the rollout.
func (b *baking) stopWatch() {
	b.cancelWatch()
	b.r.drainWatch(b.ctx, b.watch)
	b.watch = nil
}

// stop ends whatever still runs when the bake ends.
func (b *baking) stop() {
	if b.watch != nil {
		b.cancelWatch()
		b.r.drainWatch(b.ctx, b.watch)
	}
	if b.timer != nil {
		b.cancelTimer()
	}
}

// short: the stage has not yet counted the passing rounds it needs.
func (b *baking) short() bool {
	return b.policy && b.checks && b.rec.ChecksPassed < b.r.spec.Health.MinSamples
}

// arm starts the timer (and its watcher) when the bake runs, freezes the
// time left when it is paused, and watches on past the bake for the
// samples still missing.
func (b *baking) arm(now time.Time) {
	r := b.r
	switch {
	case b.remaining <= 0:
		if b.watch == nil && !r.paused {
			b.startWatch(0, activities.WatchRounds)
		}
	case !r.paused && b.timer == nil:
		r.bakeEndsAt = now.Add(b.remaining)
		tctx, cancel := workflow.WithCancel(b.ctx)
		b.timer = workflow.NewTimerWithOptions(tctx, b.remaining, workflow.TimerOptions{Summary: "bake " + b.stage.Name})
		b.cancelTimer = cancel
		if b.checks && b.watch == nil && (b.remaining >= b.interval || b.policy) {
			b.startWatch(b.remaining, activities.WatchRounds)
		}
	case r.paused && b.timer != nil:
		b.cancelTimer()
		b.timer = nil
		b.remaining = r.bakeEndsAt.Sub(now)
	}
}

// keepWatching keeps a paused bake checking (a failure still fails it),
// and on resume swaps that observer for a watcher of the rounds left.
func (b *baking) keepWatching(now time.Time) {
	if !b.policy || !b.checks {
		return
	}
	switch {
	case b.r.paused && b.watch == nil:
		b.startWatch(0, activities.WatchObserve)
	case !b.r.paused && b.watch != nil && b.watchMode == activities.WatchObserve:
		b.stopWatch()
		if b.remaining > 0 {
			b.startWatch(b.r.bakeEndsAt.Sub(now), activities.WatchRounds)
		} else {
			b.startWatch(0, activities.WatchRounds)
		}
	}
}

// show puts the bake's state in the status.
func (b *baking) show() {
	st := &b.r.st
	st.Paused = b.r.paused
	st.BakeRemaining = b.remaining
	st.BakeEndsAt = nil
	if b.timer != nil {
		ends := b.r.bakeEndsAt
		st.BakeEndsAt = &ends
	}
}

// bakeEvent is what ended one wait of the bake.
type bakeEvent struct {
	fired, watched bool
	timerErr       error
	res            activities.WatchResult
	watchErr       error
	cancelled      bool
}

// next waits for the timer, the watcher, a wake-up from a control or the
// stage's end, whichever comes first.
func (b *baking) next() bakeEvent {
	ctx := b.ctx
	var ev bakeEvent
	sel := workflow.NewSelector(ctx)
	if b.timer != nil {
		sel.AddFuture(b.timer, func(f workflow.Future) {
			ev.timerErr = f.Get(ctx, nil)
			ev.fired = ev.timerErr == nil
		})
	}
	if b.watch != nil {
		sel.AddFuture(b.watch, func(f workflow.Future) {
			ev.watched = true
			ev.watchErr = f.Get(ctx, &ev.res)
		})
	}
	sel.AddReceive(b.r.wake, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, nil) })
	// Paused with no timer and no watch, only cancellation can end the wait.
	sel.AddReceive(ctx.Done(), func(workflow.ReceiveChannel, bool) { ev.cancelled = true })
	sel.Select(ctx)
	return ev
}

// watched takes in a watcher's end: its rounds count, and the policy's
// verdict fails the stage, pauses the rollout, or lets the bake go on.
func (b *baking) watched(res activities.WatchResult, watchErr error) error {
	r, rec := b.r, b.rec
	b.watch = nil
	rec.ChecksPassed += res.Passed
	rec.ChecksFailed += res.Failed
	r.keepRounds(res.Unwritten)
	if b.policy {
		rec.Rounds = rec.Rounds.Add(res.Tally.Counts)
		if res.Latest != nil {
			r.st.LatestRound = res.Latest
		}
	}
	switch {
	case watchErr != nil:
		return causedBy(watchCause(watchErr), fmt.Errorf("health watch: %w", watchErr))
	case !res.Healthy:
		return causedBy(causeHealth, fmt.Errorf("health check failed: %s", res.LastFailure))
	case b.policy && res.Paused:
		r.pauseForHealth(b.ctx, res.LastFailure)
		return nil
	}
	// A pause moved the bake's end past the rounds watched so far: watch
	// the rest.
	if left := r.bakeEndsAt.Sub(workflow.Now(b.ctx)); b.timer != nil && !r.paused && (left >= b.interval || b.short()) {
		b.startWatch(left, activities.WatchRounds)
	}
	return nil
}

// watchSummary is a watch's result as callers see it (api.WatchSummary):
// the same fields under the same JSON names, without the audit buffer and
// the retry marks that only the workflow and the watch's next attempt read.
func watchSummary(w activities.WatchResult) api.WatchSummary {
	return api.WatchSummary{Healthy: w.Healthy, Paused: w.Paused, Rounds: w.Rounds, Passed: w.Passed, Failed: w.Failed,
		Tally: w.Tally, LastFailure: w.LastFailure, Latest: w.Latest, Settled: w.Settled, SettleTries: w.SettleTries,
		Lost: w.Lost, Started: w.Started}
}

// watchCause is what a watch that failed to run says: a timeout (a lost
// worker, a watch past its deadline) is the health watch failing; a
// cancellation is the workflow's; an application error is the watch unable
// to run at all (the worker's or the platform's configuration).
func watchCause(err error) cause {
	var (
		timeout *temporal.TimeoutError
		app     *temporal.ApplicationError
	)
	switch {
	case errors.As(err, &timeout):
		return causeHealth
	case temporal.IsCanceledError(err):
		return causeCancelled
	case errors.As(err, &app):
		return causeError
	}
	return causeHealth
}
