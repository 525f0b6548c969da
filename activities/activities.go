// Package activities adapts workflow calls to the seams: the platform that
// runs a service and the health checker. Every activity is idempotent and
// classifies its errors as retryable or not at this boundary.
package activities

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"

	"github.com/stagecraft/stagecraft/internal/audit"
	"github.com/stagecraft/stagecraft/internal/health"
	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// Platform is the seam every platform implements: converge a target to a
// desired state and report what runs.
type Platform interface {
	// CheckImage returns *platform.ImageNotFoundError if image cannot be had.
	CheckImage(ctx context.Context, image string) error
	// Snapshot captures what runs now, completely enough to restore it.
	Snapshot(ctx context.Context, s spec.Spec) (platform.Snapshot, error)
	// Converge brings the target to a desired state; re-running it is a no-op.
	Converge(ctx context.Context, req platform.ConvergeRequest) (platform.ConvergeResult, error)
	// Endpoints lists 127.0.0.1:port addresses of the selected instances.
	Endpoints(ctx context.Context, s spec.Spec, rollout string, snap platform.Snapshot, which platform.Which) ([]string, error)
}

// ImageLooker is implemented by a platform that holds images itself
// (Docker): FindImage says where image is without pulling it (local: on
// the platform; else only in its registry), or a
// *platform.ImageNotFoundError, so a plan can say what a rollout would
// pull without pulling it.
type ImageLooker interface {
	FindImage(ctx context.Context, image string) (local bool, err error)
}

// UpChecker is implemented by a platform whose converge returns before the
// new instances it started have proven they stay up (Docker: each must stay
// up a short window from its start). StayedUp returns nil once they have,
// or why one did not; a watch of the new version asks it beside its rounds,
// and that reason fails the stage.
type UpChecker interface {
	StayedUp(ctx context.Context, s spec.Spec, rollout string) error
}

// Checker runs one round of health checks.
type Checker interface {
	Round(ctx context.Context, checks, dependencies []spec.Check, addresses []string) health.Round
	// Allowlist lists the executables command checks may run.
	Allowlist() []string
}

// Store is the audit store seam (internal/store): it writes a batch of
// records idempotently. Nil means the audit trail is off.
type Store interface {
	Write(ctx context.Context, b audit.Batch) error
}

// Activities holds the clients activities use. Register it with a worker.
type Activities struct {
	// Platforms by name ("docker").
	Platforms map[string]Platform
	Checker   Checker
	// Store keeps the audit trail; nil turns it off.
	Store Store
	// Notifier delivers notifications; nil means a notify.Sender.
	Notifier Notifier
	// Server carries the side heartbeats of activities that change a
	// target (the worker's Temporal client), so an attempt the server has
	// given up on stops; nil leaves them to the SDK's heartbeat.
	Server Heartbeater
	Log    *zap.Logger
}

// PrepareInput asks for a target's snapshot after checking the request.
type PrepareInput struct {
	Spec spec.Spec `json:"spec"`
}

// PrepareResult holds the snapshot a rollback restores.
type PrepareResult struct {
	Snapshot platform.Snapshot `json:"snapshot"`
}

// Prepare validates the request against the platform (the image exists) and
// snapshots the target. It changes nothing.
func (a *Activities) Prepare(ctx context.Context, in PrepareInput) (PrepareResult, error) {
	_, stop := keepAlive(ctx)
	defer stop()
	p, err := a.platform(in.Spec)
	if err != nil {
		return PrepareResult{}, err
	}
	if err := in.Spec.Validate(); err != nil {
		return PrepareResult{}, temporal.NewNonRetryableApplicationError(err.Error(), platform.ErrTypeInvalidSpec, err)
	}
	// Command checks run on this host: only what the worker allows.
	if err := in.Spec.Health.CommandNotAllowed(a.Checker.Allowlist()); err != nil {
		return PrepareResult{}, temporal.NewNonRetryableApplicationError(err.Error(), platform.ErrTypeInvalidSpec, err)
	}
	// A target whose last rollback failed may run mixed or broken
	// versions: no rollout takes that as its baseline until it is cleared.
	if err := a.checkHold(ctx, in.Spec); err != nil {
		return PrepareResult{}, err
	}
	if err := a.checkLease(ctx, in.Spec); err != nil {
		return PrepareResult{}, err
	}
	if err := p.CheckImage(ctx, in.Spec.Image); err != nil {
		return PrepareResult{}, classify(err)
	}
	snap, err := p.Snapshot(ctx, in.Spec)
	if err != nil {
		return PrepareResult{}, classify(fmt.Errorf("snapshot %s: %w", in.Spec.TargetKey(), err))
	}
	a.logger(ctx).Info("snapshot taken", zap.String("service", in.Spec.Service), zap.Int("instances", snap.Count()))
	return PrepareResult{Snapshot: snap}, nil
}

// ConvergeInput is a converge request.
type ConvergeInput struct {
	Request platform.ConvergeRequest `json:"request"`
}

// Converge brings the target to the requested desired state.
//
// It fences the platform's writes with its attempt (platform.Fence): a
// converge whose attempt has timed out on the server, and that still
// reaches the platform after a later attempt, stage or rollback has written
// the target (a zombie), is refused there and fails with a non-retryable
// platform.ErrTypeFenced error that nobody reads, since the server has
// already given up on it. It also stops by itself once its heartbeats show
// the server has given up on it (keepAliveWhileKnown).
func (a *Activities) Converge(ctx context.Context, in ConvergeInput) (platform.ConvergeResult, error) {
	ctx, _, stop := a.keepAliveWhileKnown(ctx)
	defer stop()
	p, err := a.platform(in.Request.Spec)
	if err != nil {
		return platform.ConvergeResult{}, err
	}
	in.Request.Fence = attemptFence(ctx)
	res, err := p.Converge(ctx, in.Request)
	if err != nil {
		log := a.logger(ctx).With(zap.String("service", in.Request.Spec.Service), zap.String("owner", in.Request.Fence.Owner),
			zap.Int64("step", in.Request.Fence.Step))
		switch cause := context.Cause(ctx); {
		case errors.Is(err, platform.ErrFenced):
			log.Warn("converge fenced: a later attempt, stage or rollback has written the target, or another rollout holds it; this attempt changes nothing more",
				zap.Error(err))
		case errors.Is(cause, ErrAttemptGone):
			log.Warn("converge stopped: the Temporal server has given up on its attempt", zap.NamedError("cause", cause), zap.Error(err))
			err = fmt.Errorf("%w (%w)", err, cause)
		}
		return res, classify(err)
	}
	a.logger(ctx).Info("converged", zap.String("service", in.Request.Spec.Service),
		zap.Int("new", res.NewCount), zap.Int("old", res.OldCount),
		zap.Strings("created", res.Created), zap.Strings("removed", res.Removed))
	return res, nil
}

// WatchMode says when a watch ends.
type WatchMode string

const (
	// WatchRounds runs at least Rounds rounds, one every interval, and on
	// until MinSamples rounds counted; it ends early when the policy fails
	// the stage or pauses the rollout.
	WatchRounds WatchMode = "rounds"
	// WatchObserve runs until cancelled or until the policy fails the
	// stage: a paused rollout keeps checking.
	WatchObserve WatchMode = "observe"
	// WatchVerify verifies a rollback: it waits up to Rounds rounds for the
	// restored version's first passing round, then watches it for the
	// spec's verifyWindow and minSamples under the same policy.
	WatchVerify WatchMode = "verify"
)

// maxEvidence bounds the results a watch result carries.
const maxEvidence = 16

// WatchInput configures a health watch over a selection of instances.
type WatchInput struct {
	Spec       spec.Spec         `json:"spec"`
	Rollout    string            `json:"rollout"`
	Snapshot   platform.Snapshot `json:"snapshot"`
	Which      platform.Which    `json:"which"`
	Mode       WatchMode         `json:"mode"`
	Rounds     int               `json:"rounds"`
	MinSamples int               `json:"minSamples,omitempty"`
	// AcceptDegraded is set once an operator resumed a rollout the policy
	// paused: degraded rounds then continue.
	AcceptDegraded bool `json:"acceptDegraded,omitempty"`
	// Stage names the stage watched, for the evidence records.
	Stage string `json:"stage,omitempty"`
	// Until is the bake's deadline (rounds mode): once it passes, a
	// retried watch (its worker died) ends as soon as it has its
	// MinSamples, even short of Rounds, so rounds a dead worker missed do
	// not stretch the bake. Zero: no deadline (runs recorded before it).
	Until time.Time `json:"until,omitzero"`
}

// WatchResult summarises the rounds a watch ran: counts, the policy's
// state and the latest round's evidence (bounded), never raw rounds, so
// history stays small.
type WatchResult struct {
	// Healthy: the watch ended without the policy failing it.
	Healthy bool `json:"healthy"`
	// Paused: a degraded round ended it under onDegraded: pause.
	Paused bool `json:"paused,omitempty"`
	Rounds int  `json:"rounds"`
	// Passed counts rounds that counted as samples; Failed counts rounds
	// that counted toward the failure streak.
	Passed int          `json:"passed"`
	Failed int          `json:"failed"`
	Tally  health.Tally `json:"tally"`
	// LastFailure describes the latest round that was not healthy.
	LastFailure string        `json:"lastFailure,omitempty"`
	Latest      *health.Round `json:"latest,omitempty"`
	// Settled: a verify watch saw the restored version's first passing round.
	Settled     bool `json:"settled,omitempty"`
	SettleTries int  `json:"settleTries,omitempty"`
	// Unwritten holds rounds the audit store could not take yet (it was
	// down): carried in heartbeats and in the result, so the workflow's
	// audit writer stores them once it can. Bounded by bytes
	// (maxUnwrittenBytes, unwritten.go); Dropped counts rounds that could
	// not be kept, and the round kept after them carries their count.
	Unwritten []audit.Round `json:"unwritten,omitempty"`
	Dropped   int           `json:"dropped,omitempty"`
	// Lost counts rounds lost with their attempts (each counted as a
	// no-data round). RoundStarted marks, in heartbeats, a round that has
	// run lostRoundGrace and not ended: a retried attempt that finds it
	// knows that round was lost. Started is when the watch's first attempt
	// that heartbeat began. OwedSince is the attempt after which lost attempts count
	// (maxLostAttempts): the one that completed the latest round, or the
	// one before an attempt that began with no round due yet.
	Lost         int       `json:"lost,omitempty"`
	RoundStarted time.Time `json:"roundStarted,omitzero"`
	Started      time.Time `json:"started,omitzero"`
	OwedSince    int32     `json:"owedSince,omitempty"`
}

// Watch runs health-check rounds, one every interval (the first after one
// interval, giving new instances time to start), applies the spec's policy
// and heartbeats its summary, so the Web UI shows the latest round live.
// Cancelled, it returns its summary as the cancellation's details. Retried
// after a worker crash or a lost heartbeat, it carries on from the last
// heartbeat's summary and the schedule of the rounds before.
//
// It heartbeats from the side for its whole life, rounds included, so a
// round as long as its slowest check (10 s by default, twice the watch's
// heartbeat timeout) never costs the attempt. What a lost attempt did cost
// is counted, never dropped (docs/HEALTH.md, "A watcher's lost attempts"):
// a round it lost while running counts as a no-data round under the spec's
// policy, maxLostAttempts attempts in a row lost without a round fail the
// watch, and past the bake's deadline a retried watch passes only on a
// recent round that was not failing.
func (a *Activities) Watch(ctx context.Context, in WatchInput) (WatchResult, error) {
	p, err := a.platform(in.Spec)
	if err != nil {
		return WatchResult{}, err
	}
	var sum WatchResult
	resumed := activity.HasHeartbeatDetails(ctx)
	if resumed {
		_ = activity.GetHeartbeatDetails(ctx, &sum)
	}
	h := in.Spec.Health
	if in.AcceptDegraded && h.OnDegraded == spec.DegradedPause {
		h.OnDegraded = spec.DegradedContinue
	}
	checks := h.Checks
	if in.Mode == WatchVerify {
		checks = nil
		for _, c := range h.Checks {
			if !c.SkipVerify {
				checks = append(checks, c)
			}
		}
	}
	tracker := health.NewTracker(h, sum.Tally)
	interval := h.Interval.D()
	log := a.logger(ctx).With(zap.String("service", in.Spec.Service), zap.String("which", string(in.Which)), zap.String("mode", string(in.Mode)))
	attempt := int32(1)
	if activity.IsActivity(ctx) {
		attempt = activity.GetInfo(ctx).Attempt
	}
	beat, stop := keepAlive(ctx)
	defer stop()

	// observe applies the policy to a round (run or lost), records it and
	// heartbeats the summary; done says the watch ends, with sum as it is.
	observe := func(round health.Round) (done bool) {
		countRound(ctx, in, round.Verdict)
		decision := health.Continue
		if in.Mode == WatchVerify && !sum.Settled {
			// Until the restored version first passes, failures are it
			// starting up; after that the policy applies.
			probe := health.NewTracker(h, health.Tally{})
			probe.Observe(&round)
			if probe.Tally.Samples > 0 {
				sum.Settled, tracker = true, probe
			} else {
				sum.SettleTries++
			}
		} else {
			decision = tracker.Observe(&round)
		}
		sum.Tally = tracker.Tally
		sum.Rounds, sum.Passed, sum.Failed = sum.Tally.Rounds+sum.SettleTries, sum.Tally.Samples, sum.Tally.Failing
		latest := round.Bounded(maxEvidence)
		sum.Latest = &latest
		sum.RoundStarted = time.Time{}
		if round.Verdict != health.Healthy {
			sum.LastFailure = round.Problem()
		}
		// Queued and heartbeaten before the write is tried: an attempt
		// lost while the store is slow keeps the round's evidence.
		a.queue(ctx, in, &sum, round)
		beat(sum)
		if a.flush(ctx, &sum) {
			beat(sum)
		}

		switch {
		case decision == health.Fail:
			log.Warn("health policy failed the watch", zap.String("problem", sum.LastFailure), zap.Int("streak", sum.Tally.Streak))
			return true
		case decision == health.Pause && in.Mode == WatchRounds:
			log.Warn("health degraded: pausing the rollout", zap.String("problem", sum.LastFailure))
			sum.Healthy, sum.Paused = true, true
			return true
		case in.Mode == WatchVerify && !sum.Settled && sum.SettleTries >= max(in.Rounds, 1):
			sum.LastFailure = fmt.Sprintf("no passing round in %d tries: %s", sum.SettleTries, sum.LastFailure)
			return true
		}
		return false
	}

	// A retried watch (its worker died) stops at the bake's deadline
	// instead of making up the rounds it missed; a first attempt runs its
	// rounds as asked.
	until := time.Time{}
	if attempt > 1 || resumed {
		until = in.Until
		lost := lostAttempts(sum, attempt, time.Now(), interval)
		if lost >= maxLostAttempts {
			sum.LastFailure = fmt.Sprintf("the watch lost %d attempts in a row with a round due and none completed (its worker died or lost its heartbeat each time); last problem: %s",
				lost, cmp.Or(sum.LastFailure, "none"))
			log.Warn("health watch keeps losing its attempts: failing it", zap.Int("lost", lost))
			beat(sum)
			return sum, nil
		}
		if lost == 0 {
			// No round was owed yet: the attempts before cost nothing.
			sum.OwedSince = max(sum.OwedSince, attempt-1)
		}
		if !sum.RoundStarted.IsZero() {
			// The attempt before was lost with a round running: its
			// verdict is unknown, so it counts as a round without data.
			sum.Lost++
			log.Warn("a health round was lost with its attempt", zap.Time("started", sum.RoundStarted))
			if observe(lostRound(sum.RoundStarted)) {
				return sum, nil
			}
		}
	}
	// A retried watch keeps the schedule of the rounds before it: its first
	// round is due an interval after the last one recorded (at once when
	// that has passed), not an interval after the retry, so a lost worker
	// costs one late round rather than a gap of its own. Past the bake's
	// deadline it ends first (below).
	if sum.Started.IsZero() {
		sum.Started = time.Now()
	}
	// Heartbeaten at once (an attempt's first heartbeat is not batched), so
	// the next attempt counts from what this one found.
	beat(sum)
	first := interval
	if sum.Latest != nil && !sum.Latest.At.IsZero() && (until.IsZero() || time.Now().Before(until)) {
		first = max(time.Until(sum.Latest.At.Add(interval)), 0)
	}
	next := time.NewTimer(first)
	defer next.Stop()
	var deadline <-chan time.Time
	if in.Mode == WatchRounds && !until.IsZero() {
		dt := time.NewTimer(time.Until(until))
		defer dt.Stop()
		deadline = dt.C
	}
	limit := roundLimit(h, checks)
	// The new instances' stay-up window runs beside the rounds (UpChecker):
	// a verdict against them ends the watch failed, and no watch passes
	// before it is in.
	up := checkUp(ctx, p, in)
	defer up.stop()
	notUp := func(err error) (WatchResult, error) {
		sum.Healthy, sum.LastFailure = false, err.Error()
		log.Warn("a new instance did not stay up: failing the watch", zap.Error(err))
		beat(sum)
		return sum, nil
	}
	for {
		select {
		case <-ctx.Done():
			return sum, temporal.NewCanceledError(sum)
		case err := <-up.pending():
			if up.take(err) != nil && ctx.Err() == nil {
				return notUp(err)
			}
		case <-deadline:
			deadline = nil
			if sum.Tally.Samples >= in.MinSamples && passing(sum, interval) {
				if err := up.wait(ctx); err != nil && ctx.Err() == nil {
					return notUp(err)
				}
				sum.Healthy = true
				return sum, nil
			}
			// Past the bake, with the latest round failing, lost or
			// older than an interval: a round now decides.
			next.Reset(0)
			continue
		case <-next.C:
		}
		round := a.timedRound(ctx, p, in, checks, &sum, beat, limit)
		if ctx.Err() != nil {
			return sum, temporal.NewCanceledError(sum)
		}
		sum.OwedSince = attempt
		if observe(round) {
			// A new instance that exited right after its start fails the
			// round too (no port, no answer), often before the stay-up
			// answer is in: the exit is the cause, so it names the failure.
			// A round the instances answered (an HTTP status) is not
			// waited on: they are up.
			if !sum.Healthy && !up.done && mayBeDown(round) {
				wctx, cancel := context.WithTimeout(ctx, upAnswerWait)
				err := up.wait(wctx)
				cancel()
				if err != nil && ctx.Err() == nil {
					return notUp(err)
				}
			}
			return sum, nil
		}
		switch {
		case in.Mode == WatchVerify && sum.Settled && tracker.Enough() &&
			time.Duration(sum.Tally.Rounds)*interval >= h.VerifyWindow.D():
			sum.Healthy = true
			return sum, nil
		case in.Mode == WatchRounds && sum.Tally.Samples >= in.MinSamples && sum.Tally.Streak == 0 &&
			(sum.Rounds >= in.Rounds || (!until.IsZero() && !time.Now().Before(until))):
			// Never while the latest rounds fail: the next round decides.
			if err := up.wait(ctx); err != nil && ctx.Err() == nil {
				return notUp(err)
			}
			sum.Healthy = true
			return sum, nil
		}
		next.Reset(interval)
	}
}

// mayBeDown says whether round's failures leave open that an instance is
// down: one not healthy without an HTTP status (no endpoint, a refused or
// timed-out connection, a command's or a query's verdict) may be.
func mayBeDown(round health.Round) bool {
	if round.Unobserved {
		return true
	}
	for _, r := range round.Results {
		if r.Verdict != health.Healthy && r.Code == 0 {
			return true
		}
	}
	return false
}

// upAnswerWait bounds how long a watch whose rounds failed waits for the
// stay-up answer to name the failure: the window (a second from each new
// instance's start) and a loaded engine's calls fit well within it.
const upAnswerWait = 5 * time.Second

// upCheck is an UpChecker's answer for a watch of the new version: asked
// once, beside the rounds.
type upCheck struct {
	ch   chan error // nil when nothing was asked
	done bool
	err  error
	stop context.CancelFunc
}

// checkUp asks an UpChecker platform whether the new instances of the
// watched rollout stayed up.
func checkUp(ctx context.Context, p Platform, in WatchInput) *upCheck {
	u := &upCheck{stop: func() {}}
	uc, ok := p.(UpChecker)
	if !ok || in.Which != platform.WhichNew || in.Rollout == "" {
		u.done = true
		return u
	}
	ctx, u.stop = context.WithCancel(ctx)
	u.ch = make(chan error, 1)
	go func() { u.ch <- uc.StayedUp(ctx, in.Spec, in.Rollout) }()
	return u
}

// pending is the channel the answer comes on, nil once it came.
func (u *upCheck) pending() <-chan error {
	if u.done {
		return nil
	}
	return u.ch
}

// take records the answer received from pending.
func (u *upCheck) take(err error) error {
	u.done, u.err = true, err
	return err
}

// wait returns the answer, waiting for it if it has not come (nil if ctx
// ends first: the watch is cancelled then).
func (u *upCheck) wait(ctx context.Context) error {
	if u.done {
		return u.err
	}
	select {
	case err := <-u.ch:
		return u.take(err)
	case <-ctx.Done():
		return nil
	}
}

// maxLostAttempts is how many attempts in a row a watch may lose (each
// ended by its worker's death or a heartbeat timeout) with a round due and
// none completed before the next attempt fails it: it then has no evidence
// of the version at all, and a bake must not stall on it until the
// rollout's timeout. A busy worker losing a heartbeat now and then (P4 in
// docs/BENCHMARKS.md) completes rounds in between and never comes near;
// attempts lost while waiting for a round are not counted at all.
const maxLostAttempts = 5

// lostRoundGrace is how long a round runs before the heartbeat marks it in
// flight. One lost sooner is not counted: the next attempt runs it again
// at once (it keeps the schedule), so it is late, not lost; and a healthy
// round (milliseconds) never carries the mark, so a busy worker's lost
// heartbeat never turns into a no-data round.
const lostRoundGrace = time.Second

// roundGrace is what a round may take beyond its slowest check's timeout
// (a command check's children get a second to let go of its pipes) before
// it is cut off.
const roundGrace = 2 * time.Second

// lostAttempts counts the attempts before this one that were lost with a
// round owed and completed none: those after OwedSince. It is 0 when no
// round is due yet (the last round, or the watch's start, is less than an
// interval ago): attempts lost while waiting for a round cost nothing, so
// a busy worker losing heartbeats between rounds is never counted. A
// summary from before OwedSince existed counts from the attempt before.
func lostAttempts(sum WatchResult, attempt int32, now time.Time, interval time.Duration) int {
	last := sum.Started
	if sum.Latest != nil && sum.Latest.At.After(last) {
		last = sum.Latest.At
	}
	if !last.IsZero() && now.Before(last.Add(interval)) {
		return 0
	}
	since := sum.OwedSince
	if since == 0 && sum.Rounds > 0 && sum.Started.IsZero() {
		since = attempt - 1
	}
	return int(max(attempt-1-since, 0))
}

// lostRound stands for a round that was running when its attempt was lost.
// It observed nothing the watch can use (Unobserved): onNoData decides what
// it counts for, and not even "pass" makes it a sample.
func lostRound(started time.Time) health.Round {
	return health.Round{At: started, Verdict: health.NoData, Unobserved: true, Results: []health.Result{{
		Check: "watch", Verdict: health.NoData,
		Error: "round started " + started.UTC().Format(time.RFC3339) + " was lost with its attempt: the worker died or lost its heartbeat while it ran",
	}}}
}

// passing reports whether a retried watch past its bake may end on the
// summary it has: the latest round was not failing, not lost, and less than
// an interval old (no round was missed since).
func passing(sum WatchResult, interval time.Duration) bool {
	l := sum.Latest
	return l != nil && sum.Tally.Streak == 0 && l.Verdict != health.Failed && l.Verdict != health.NoData &&
		time.Since(l.At) < interval
}

// timedRound runs one round, cut off at limit, and marks it in flight in
// the heartbeat details once it has run lostRoundGrace, so the next
// attempt knows it was lost if this one is.
func (a *Activities) timedRound(ctx context.Context, p Platform, in WatchInput, checks []spec.Check,
	sum *WatchResult, beat func(...any), limit time.Duration) health.Round {
	inFlight := *sum
	inFlight.RoundStarted = time.Now()
	var mu sync.Mutex
	ended := false
	mark := time.AfterFunc(lostRoundGrace, func() {
		mu.Lock()
		defer mu.Unlock()
		if !ended {
			beat(inFlight)
		}
	})
	defer func() {
		mark.Stop()
		mu.Lock()
		ended = true
		mu.Unlock()
	}()
	rctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	return a.round(rctx, p, in, checks)
}

// roundLimit bounds a round: its slowest check's timeout (a check without
// one has the spec's, or the default) plus roundGrace.
func roundLimit(h spec.Health, checks []spec.Check) time.Duration {
	def := cmp.Or(h.Timeout.D(), spec.DefaultCheckTimeout)
	longest := time.Duration(0)
	for _, c := range slices.Concat(checks, h.Dependencies) {
		var d spec.Duration
		switch {
		case c.HTTP != nil:
			d = c.HTTP.Timeout
		case c.TCP != nil:
			d = c.TCP.Timeout
		case c.Command != nil:
			d = c.Command.Timeout
		case c.Prometheus != nil:
			d = c.Prometheus.Timeout
		}
		longest = max(longest, cmp.Or(d.D(), def))
	}
	return cmp.Or(longest, def) + roundGrace
}

// round runs one round of checks. The instances' addresses are looked up
// only when a check runs per instance ({{.Address}}): a round of checks on
// fixed targets costs the platform nothing.
func (a *Activities) round(ctx context.Context, p Platform, in WatchInput, checks []spec.Check) health.Round {
	if !slices.ContainsFunc(checks, spec.Check.PerInstance) && !slices.ContainsFunc(in.Spec.Health.Dependencies, spec.Check.PerInstance) {
		return a.Checker.Round(ctx, checks, in.Spec.Health.Dependencies, nil)
	}
	addrs, err := p.Endpoints(ctx, in.Spec, in.Rollout, in.Snapshot, in.Which)
	if err != nil {
		// Without addresses nothing was observed: no data, never healthy.
		return health.Round{At: time.Now(), Verdict: health.NoData, Unobserved: true,
			Results: []health.Result{{Check: "endpoints", Verdict: health.NoData, Error: err.Error()}}}
	}
	return a.Checker.Round(ctx, checks, in.Spec.Health.Dependencies, addrs)
}

// storeAttempt bounds one write from a watch: a slow or absent database must
// never hold the checks up.
const storeAttempt = 2 * time.Second

// queue adds a round's evidence to the rounds waiting for the audit store.
// What the store cannot take now stays in the summary (heartbeats, result)
// for a later round or for the workflow's audit writer, which retries
// without limit.
func (a *Activities) queue(ctx context.Context, in WatchInput, sum *WatchResult, r health.Round) {
	if a.Store == nil || !activity.IsActivity(ctx) {
		return
	}
	bounded := r.Bounded(maxEvidence)
	keepUnwritten(sum, audit.Round{ActivityID: activity.GetInfo(ctx).ActivityID, Seq: sum.Rounds,
		Stage: in.Stage, Which: string(in.Which), At: r.At, Verdict: r.Verdict, Results: bounded.Results})
}

// flush tries to write the queued rounds, once and briefly, and reports
// whether it did.
func (a *Activities) flush(ctx context.Context, sum *WatchResult) bool {
	rounds := evidence(sum.Unwritten)
	if a.Store == nil || !activity.IsActivity(ctx) || len(rounds) == 0 {
		return false
	}
	info := activity.GetInfo(ctx)
	wctx, cancel := context.WithTimeout(ctx, storeAttempt)
	defer cancel()
	err := a.Store.Write(wctx, audit.Batch{WorkflowID: info.WorkflowExecution.ID, RunID: info.WorkflowExecution.RunID, Rounds: rounds})
	if err != nil {
		if len(sum.Unwritten) == 1 || len(sum.Unwritten)%30 == 0 {
			a.logger(ctx).Warn("audit store unavailable: keeping health rounds to write later",
				zap.Int("waiting", len(sum.Unwritten)), zap.Error(err))
		}
		return false
	}
	written(sum)
	return true
}

// Audit writes a batch of a rollout's audit trail. The workflow's audit
// writer retries it without limit, in order, off the rollout's path. With
// no store configured it does nothing.
func (a *Activities) Audit(ctx context.Context, b audit.Batch) error {
	if a.Store == nil {
		return nil
	}
	_, stop := keepAlive(ctx)
	defer stop()
	if err := a.Store.Write(ctx, b); err != nil {
		a.logger(ctx).Warn("audit write failed; retrying", zap.Error(err),
			zap.Int("events", len(b.Events)), zap.Int("rounds", len(b.Rounds)))
		return err
	}
	return nil
}

func (a *Activities) platform(s spec.Spec) (Platform, error) {
	name := s.PlatformName()
	p, ok := a.Platforms[name]
	if !ok {
		err := fmt.Errorf("platform %q is not configured on this worker", name)
		return nil, temporal.NewNonRetryableApplicationError(err.Error(), platform.ErrTypeInvalidSpec, err)
	}
	return p, nil
}

func (a *Activities) logger(ctx context.Context) *zap.Logger {
	log := a.Log
	if log == nil {
		log = zap.NewNop()
	}
	if activity.IsActivity(ctx) {
		info := activity.GetInfo(ctx)
		log = log.With(zap.String("workflowId", info.WorkflowExecution.ID),
			zap.String("runId", info.WorkflowExecution.RunID), zap.String("activity", info.ActivityType.Name))
	}
	return log
}

// classify marks errors that retrying cannot fix as non-retryable, with the
// named types workflows list in their retry policies.
func classify(err error) error {
	var nf *platform.ImageNotFoundError
	var tnf *platform.TargetNotFoundError
	switch {
	case errors.As(err, &nf):
		return temporal.NewNonRetryableApplicationError(err.Error(), platform.ErrTypeImageNotFound, err)
	case errors.As(err, &tnf):
		return temporal.NewNonRetryableApplicationError(err.Error(), platform.ErrTypeTargetNotFound, err)
	case errors.Is(err, platform.ErrForbidden):
		return temporal.NewNonRetryableApplicationError(err.Error(), platform.ErrTypeForbidden, err)
	case errors.Is(err, platform.ErrProgressDeadline):
		return temporal.NewNonRetryableApplicationError(err.Error(), platform.ErrTypeProgressStuck, err)
	case errors.Is(err, platform.ErrConfigConflict):
		return temporal.NewNonRetryableApplicationError(err.Error(), platform.ErrTypeConfigConflict, err)
	case errors.Is(err, platform.ErrSpecRefused):
		return temporal.NewNonRetryableApplicationError(err.Error(), platform.ErrTypeInvalidSpec, err)
	case errors.Is(err, platform.ErrUnrestorable):
		return temporal.NewNonRetryableApplicationError(err.Error(), platform.ErrTypeInvalidSpec, err)
	case errors.Is(err, platform.ErrFenced):
		// A later attempt or another rollout owns the target: retrying
		// this one can only be refused again.
		return temporal.NewNonRetryableApplicationError(err.Error(), platform.ErrTypeFenced, err)
	}
	return err
}
