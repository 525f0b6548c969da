package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/control"
	"github.com/stagecraft/stagecraft/internal/health"
)

// queryTimeout bounds one status query: a rollout with no worker to answer
// it is shown as such, and the watch goes on.
const queryTimeout = 5 * time.Second

func watchCmd(g *globals) *cobra.Command {
	var poll time.Duration
	cmd := &cobra.Command{
		Use:   "watch ID",
		Short: "Follow a rollout (or a release) live until it ends; exit with its outcome's code",
		Long: `Follow a rollout live: each stage with its progress (instances updated/total),
bake time left (frozen while paused), check rounds passed and failed, the latest failing
evidence, the phase, a pause, an open approval gate; at the end the outcome and its error.
A release (release:ENV/NAME) shows its services, their states and their rollouts' stages.

On a terminal the view is redrawn in place; piped, a line is printed whenever something
changed; with --json, the status is printed as one JSON object per line whenever it changed.
A finished rollout is shown once. The exit code is the outcome's (see starter --help).`,
		Example: `  starter watch deploy:docker:hello
  starter watch release:prod/shop
  starter watch deploy:docker:hello --json | jq -c '{phase, currentStage}'
  starter watch my-execution-id --poll 5s > rollout.log`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if poll <= 0 {
				return &exitError{exitInvalid, fmt.Errorf("--poll must be positive, got %s", poll)}
			}
			c, ctx, done, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			ex, err := control.Find(ctx, c, args[0])
			if err != nil {
				return err
			}
			d := newDisplay(cmd.OutOrStdout(), g.jsonOut)
			return watch(ctx, c, ex, poll, d)
		},
	}
	cmd.Flags().DurationVar(&poll, "poll", time.Second, "how often to look")
	return cmd
}

// watch shows a rollout or release on d until it ends, and returns its
// outcome as an error carrying the exit code (nil when it succeeded).
func watch(ctx context.Context, c client.Client, ex control.Execution, poll time.Duration, d *display) error {
	var (
		o      api.Outcome
		reason string
		err    error
	)
	if control.IsRelease(ex.WorkflowID) {
		var st api.ReleaseStatus
		st, err = followRelease(ctx, c, ex.WorkflowID, ex.RunID, poll, d)
		o, reason = st.Outcome, st.Error
	} else {
		var st api.Status
		st, err = followRollout(ctx, c, ex.WorkflowID, ex.RunID, poll, d)
		o, reason = st.Outcome, st.Error
	}
	if err != nil {
		return err
	}
	return outcomeError(control.Kind(ex.WorkflowID), ex.WorkflowID, o, reason)
}

// interrupted says that the watch stopped, not the rollout.
func interrupted(ctx context.Context, id string) error {
	if ctx.Err() != nil {
		return fmt.Errorf("stopped watching; %s goes on (starter watch %s to follow it again)", id, id)
	}
	return nil
}

// closing returns a channel closed once the run id/runID (or a run it
// continued as) has closed, or the wait for it failed: a follower looks
// again at once instead of waiting out its poll, so `deploy --wait` and
// `watch` exit when the run ends, not up to a poll later.
func closing(ctx context.Context, c client.Client, id, runID string) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		_ = c.GetWorkflow(ctx, id, runID).Get(ctx, nil)
	}()
	return ch
}

// followRollout shows a rollout (runID: the run to follow, "" the latest)
// until it has an outcome, and returns its final status. Each look shows
// the newest failing round seen so far, in it or an earlier one.
func followRollout(ctx context.Context, c client.Client, id, runID string, poll time.Duration, d *display) (api.Status, error) {
	var bad *health.Round
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	return follow(ctx, id, poll, closing(ctx, c, id, runID), d, func(ctx context.Context) (rolloutView, bool, error) {
		v, done, err := lookRollout(ctx, c, id, runID)
		if err != nil {
			return v, done, err
		}
		// An unanswered look has no round: bad stays as it was.
		bad = newestBad(bad, v.st.LatestRound)
		if v.live != nil {
			bad = newestBad(bad, v.live.Latest)
		}
		v.bad = bad
		return v, done, nil
	})
}

// followRelease shows a release (runID as for followRollout) until it has
// an outcome, and returns its final status.
func followRelease(ctx context.Context, c client.Client, id, runID string, poll time.Duration, d *display) (api.ReleaseStatus, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	return follow(ctx, id, poll, closing(ctx, c, id, runID), d, func(ctx context.Context) (releaseView, bool, error) {
		return lookRelease(ctx, c, id, runID)
	})
}

// followed is what follow needs of one look at a rollout or a release.
type followed[V any, T any] interface {
	view
	// status is the status seen (the result once closed).
	status() T
	// unanswered says why the status query did not answer; "" when it did.
	unanswered() string
	// at is the look as shown at now.
	at(now time.Time) V
}

func (v rolloutView) status() api.Status           { return v.st }
func (v rolloutView) unanswered() string           { return v.warn }
func (v rolloutView) at(now time.Time) rolloutView { v.now = now; return v }
func (v releaseView) status() api.ReleaseStatus    { return v.st }
func (v releaseView) unanswered() string           { return v.warn }
func (v releaseView) at(now time.Time) releaseView { v.now = now; return v }

// follow shows the looks that look takes at id on d, poll apart, until one
// says it has ended, and returns that look's status. When closed is closed
// (the run ended), the next look is taken at once, once. The first
// unanswered look in a row is not shown (see quiet). An interrupt stops the
// watch, not what it follows, and the error says so.
func follow[V followed[V, T], T any](ctx context.Context, id string, poll time.Duration, closed <-chan struct{}, d *display, look func(context.Context) (V, bool, error)) (T, error) {
	unanswered := 0
	sleep := func(ctx context.Context, poll time.Duration) {
		t := time.NewTimer(poll)
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-t.C:
		case <-closed:
			closed = nil
		}
	}
	for {
		v, done, err := look(ctx)
		if err != nil {
			var zero T
			if e := interrupted(ctx, id); e != nil {
				return zero, e
			}
			return zero, err
		}
		if quiet(v.unanswered(), &unanswered) {
			sleep(ctx, poll)
			continue
		}
		now := time.Now()
		v = v.at(now)
		d.final = done
		if err := d.show(v, now); err != nil {
			return v.status(), err
		}
		if done {
			return v.status(), nil
		}
		sleep(ctx, poll)
		if e := interrupted(ctx, id); e != nil {
			return v.status(), e
		}
	}
}

// lookRollout takes one look at a rollout: its status (the result once
// closed) and the running watcher's heartbeat. done says it has ended.
func lookRollout(ctx context.Context, c client.Client, id, runID string) (rolloutView, bool, error) {
	ex, err := describeRun(ctx, c, id, runID)
	if err != nil {
		return rolloutView{}, false, err
	}
	if !ex.Open() {
		st, err := control.Final[api.Status](ctx, c, ex)
		return rolloutView{st: st}, true, err
	}
	qctx, cancel := context.WithTimeout(ctx, queryTimeout)
	st, err := control.Status(qctx, c, id)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return rolloutView{}, false, ctx.Err()
		}
		return rolloutView{warn: noAnswer(id, err)}, false, nil
	}
	v := rolloutView{st: st}
	if st.Phase == api.PhaseDone && st.Outcome != "" {
		return v, true, nil
	}
	// Describe again after the query: a watcher that is still pending now
	// had not reported to the status queried, so its counts add up.
	if st.Phase == api.PhaseValidating || st.Phase == api.PhasePaused {
		if ex, err := control.Describe(ctx, c, id, ex.RunID); err == nil && ex.Open() {
			v.live = ex.Watch
		}
	}
	return v, false, nil
}

// quiet reports whether to skip a look: the first unanswered status query
// in a row is usual (a rollout just started has not run its first workflow
// task yet); from the second on, the look says so.
func quiet(warn string, unanswered *int) bool {
	if warn == "" {
		*unanswered = 0
		return false
	}
	*unanswered++
	return *unanswered < 2
}

// noAnswer says why a look found no status: a workflow answers queries
// only through a worker, once its first task has run.
func noAnswer(id string, err error) string {
	return fmt.Sprintf("waiting for %s to answer its status query (is a worker polling task queue %q?): %v", id, api.TaskQueue, err)
}

// describeRun describes the run followed; once it has continued as new,
// the run it continued as.
func describeRun(ctx context.Context, c client.Client, id, runID string) (control.Execution, error) {
	ex, err := control.Describe(ctx, c, id, runID)
	if err == nil && runID != "" && ex.Ended() == "continued_as_new" {
		return control.Describe(ctx, c, id, "")
	}
	return ex, err
}

// newestBad returns the newer of two rounds that were not healthy.
func newestBad(bad, r *health.Round) *health.Round {
	if r == nil || r.Verdict == health.Healthy {
		return bad
	}
	if bad == nil || r.At.After(bad.At) {
		return r
	}
	return bad
}

// lookRelease takes one look at a release: its status (the result once
// closed) and that of each running service's rollout. done says it has ended.
func lookRelease(ctx context.Context, c client.Client, id, runID string) (releaseView, bool, error) {
	ex, err := describeRun(ctx, c, id, runID)
	if err != nil {
		return releaseView{}, false, err
	}
	if !ex.Open() {
		st, err := control.Final[api.ReleaseStatus](ctx, c, ex)
		return releaseView{st: st}, true, err
	}
	qctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	st, err := control.ReleaseStatus(qctx, c, id)
	if err != nil {
		if ctx.Err() != nil {
			return releaseView{}, false, ctx.Err()
		}
		return releaseView{warn: noAnswer(id, err)}, false, nil
	}
	v := releaseView{st: st, rollouts: map[string]api.Status{}}
	for _, s := range st.Services {
		if s.State != api.ServiceRunning || s.WorkflowID == "" {
			continue
		}
		// A rollout that does not answer just shows no stage.
		if ro, err := control.Status(qctx, c, s.WorkflowID); err == nil {
			v.rollouts[s.WorkflowID] = ro
		}
	}
	return v, st.Phase == api.ReleaseDone && st.Outcome != "", nil
}
