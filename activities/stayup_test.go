package activities

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// upPlatform is a fakePlatform that is also an UpChecker: StayedUp answers
// err after delay, and records that it was asked and that it answered.
type upPlatform struct {
	*fakePlatform
	delay    time.Duration
	err      error
	asked    atomic.Int32
	answered atomic.Bool
	rollout  atomic.Value
}

func (p *upPlatform) StayedUp(ctx context.Context, _ spec.Spec, rollout string) error {
	p.asked.Add(1)
	p.rollout.Store(rollout)
	select {
	case <-time.After(p.delay):
	case <-ctx.Done():
		return ctx.Err()
	}
	p.answered.Store(true)
	return p.err
}

// TestWatchFailsOnANewInstanceThatDidNotStayUp checks the watch's half of a
// converge's stay-up window (UpChecker): the platform's verdict that a new
// instance did not stay up fails the watch with its reason, whether it comes
// while rounds are still due or after they are done (the watch waits for it
// before it passes); a healthy answer lets the watch pass once it is in; and
// a watch of the old version (a rollback's verify) does not ask.
func TestWatchFailsOnANewInstanceThatDidNotStayUp(t *testing.T) {
	down := errors.New(`container "web-r1-0" is not running: exited (exit code 3) 500ms after it was started`)
	for _, tc := range []struct {
		name    string
		which   platform.Which
		mode    WatchMode
		rounds  int
		delay   time.Duration
		err     error
		healthy bool
		asked   bool
	}{
		{"fails while rounds are due", platform.WhichNew, WatchRounds, 1000, 0, down, false, true},
		{"fails after the rounds are done", platform.WhichNew, WatchRounds, 2, 300 * time.Millisecond, down, false, true},
		{"passes once the answer is in", platform.WhichNew, WatchRounds, 2, 300 * time.Millisecond, nil, true, true},
		{"a verify watch does not ask", platform.WhichOld, WatchVerify, 2, 0, down, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newWatchFixture(t, strings.Repeat("H", 2000))
			up := &upPlatform{fakePlatform: f.plat, delay: tc.delay, err: tc.err}
			f.acts.Platforms[spec.PlatformDocker] = up
			got := f.run(t, WatchInput{Spec: watchSpec(nil), Rollout: "r1", Which: tc.which, Mode: tc.mode, Rounds: tc.rounds})
			if got.Healthy != tc.healthy {
				t.Fatalf("healthy = %v; want %v (%+v)", got.Healthy, tc.healthy, got)
			}
			if asked := up.asked.Load() > 0; asked != tc.asked {
				t.Fatalf("StayedUp asked: %v; want %v", asked, tc.asked)
			}
			if !tc.asked {
				return
			}
			if r, _ := up.rollout.Load().(string); r != "r1" {
				t.Errorf("StayedUp asked of rollout %q; want r1", r)
			}
			if tc.healthy && !up.answered.Load() {
				t.Error("the watch passed before StayedUp answered")
			}
			if !tc.healthy && got.LastFailure != down.Error() {
				t.Errorf("LastFailure %q; want %q", got.LastFailure, down.Error())
			}
		})
	}
}

// TestWatchNamesTheExitOverTheCheckItBroke: a new instance that exits
// right after its start makes the first round fail too (an exited
// container publishes no port: no data), often before the stay-up answer
// is in. The watch then waits for that answer, briefly, and fails with the
// exit, the cause, rather than with the check it broke; with no exit it
// fails with the round's reason as before.
func TestWatchNamesTheExitOverTheCheckItBroke(t *testing.T) {
	down := errors.New(`container "web-r1-0" is not running: exited (exit code 1) 40ms after it was started; its last output is in the worker's log`)
	for _, tc := range []struct {
		name   string
		script string
		err    error
		want   string
	}{
		{"no data", "NNNN", down, down.Error()},
		{"failed", "FFFF", down, down.Error()},
		{"it stayed up", "NNNN", nil, "no-data"},
		// An HTTP answer says the instance is up: no wait, so a version
		// that answers 500 rolls back as soon as before.
		{"it answered", "5555", down, "boom"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newWatchFixture(t, tc.script)
			up := &upPlatform{fakePlatform: f.plat, delay: 300 * time.Millisecond, err: tc.err}
			f.acts.Platforms[spec.PlatformDocker] = up
			got := f.run(t, WatchInput{Spec: watchSpec(nil), Rollout: "r1", Which: platform.WhichNew, Mode: WatchRounds, Rounds: 4})
			if got.Healthy {
				t.Fatalf("a failing round passed: %+v", got)
			}
			if !strings.Contains(got.LastFailure, tc.want) {
				t.Errorf("LastFailure %q; want it to say %q", got.LastFailure, tc.want)
			}
			if tc.script == "5555" && up.answered.Load() {
				t.Error("the watch waited for the stay-up answer after an HTTP answer")
			}
		})
	}
}
