package activities

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"

	"github.com/stagecraft/stagecraft/internal/failpoint"
)

// keepAlive heartbeats for an activity whose work blocks in one call (a
// converge waiting for a rollout, a write waiting for the database), so a
// worker that dies is noticed within the heartbeat timeout, not after the
// start-to-close timeout. set records details and makes every later beat
// carry them (what a retried attempt resumes from); stop ends the beats.
// Without a heartbeat timeout set only records; outside an activity both
// do nothing.
//
// set encodes the details at once, in the caller's goroutine, and the
// beats send those payloads: a caller may change what it passed (a watch's
// summary shares its slices with the copy it heartbeats) as soon as set
// returns, and the ticker never reads memory the caller writes. Details
// that cannot be encoded (or whose encoding panics) are logged and the
// last good ones kept; a panic in a beat is logged too. Neither ever
// reaches the worker: the SDK panics when heartbeat details do not encode,
// which in the ticker's goroutine would end the worker process.
func keepAlive(ctx context.Context) (set func(details ...any), stop func()) {
	_, set, stop = sideBeat(ctx, nil)
	return set, stop
}

// keepAliveWhileKnown is keepAlive for an activity that changes a target
// (Converge): its beats go through server, which says what the Temporal
// server answered, and the context it returns is cancelled, with
// ErrAttemptGone as the cause, once the server no longer knows the attempt
// (NotFound: it timed out, or its workflow closed) or no beat has reached
// the server for longer than the heartbeat timeout (the server has then
// timed the attempt out and retried it, or moved on). The work stops at its
// next call instead of writing on as a zombie. With server nil it is
// keepAlive, and the context is ctx.
//
// The SDK's own heartbeat (activity.RecordHeartbeat) reports no errors and
// cancels only on a NotFound or Canceled reply: a server it cannot reach
// at all (a call that times out) never stops the attempt. A cancellation,
// pause or reset the server asks for is handed to the SDK's heartbeat, so
// the activity is cancelled exactly as before.
func (a *Activities) keepAliveWhileKnown(ctx context.Context) (context.Context, func(details ...any), func()) {
	var server Heartbeater
	if a != nil {
		server = a.Server
	}
	return sideBeat(ctx, server)
}

func sideBeat(ctx context.Context, server Heartbeater) (context.Context, func(details ...any), func()) {
	if !activity.IsActivity(ctx) {
		return ctx, func(...any) {}, func() {}
	}
	info := activity.GetInfo(ctx)
	if info.HeartbeatTimeout <= 0 {
		return ctx, func(d ...any) {
			if enc, err := encodeDetails(d); err != nil {
				activity.GetLogger(ctx).Warn("heartbeat details not recorded", "error", err)
			} else {
				safeHeartbeat(ctx, enc)
			}
		}, func() {}
	}
	var mu sync.Mutex
	var details []any
	if activity.HasHeartbeatDetails(ctx) {
		// Until the attempt says otherwise, keep what the last one recorded.
		var raw converter.RawValue
		if activity.GetHeartbeatDetails(ctx, &raw) == nil {
			details = []any{raw}
		}
	}
	every := max(info.HeartbeatTimeout/4, 500*time.Millisecond)
	done := make(chan struct{})
	var once sync.Once
	stopBeats := func() { once.Do(func() { close(done) }) }
	actx := ctx
	var live *liveness
	var cancel context.CancelCauseFunc
	if server != nil && len(info.TaskToken) > 0 {
		actx, cancel = context.WithCancelCause(ctx)
		live = &liveness{timeout: info.HeartbeatTimeout, last: time.Now()}
	}
	beat := func() {
		mu.Lock()
		d := details
		mu.Unlock()
		failpoint.Hit(ctx, failpoint.SideHeartbeat)
		if live == nil {
			safeHeartbeat(ctx, d)
			return
		}
		// Bounded by the beat interval: a server that does not answer
		// must not hold the beats up past the heartbeat timeout.
		cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), every)
		err := server.RecordActivityHeartbeat(cctx, info.TaskToken, d...)
		ccancel()
		gone, handOver := live.judge(err, time.Now())
		switch {
		case handOver:
			safeHeartbeat(ctx, d)
		case gone != nil:
			activity.GetLogger(ctx).Warn("stopping the attempt: the Temporal server has given up on it", "error", gone)
			cancel(gone)
			stopBeats()
		}
	}
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-actx.Done():
				return
			case <-t.C:
				beat()
			}
		}
	}()
	set := func(d ...any) {
		enc, err := encodeDetails(d)
		if err != nil {
			activity.GetLogger(ctx).Warn("heartbeat details not recorded; beating with the last ones", "error", err)
		} else {
			mu.Lock()
			details = enc
			mu.Unlock()
		}
		beat()
	}
	stop := func() {
		stopBeats()
		if cancel != nil {
			cancel(nil)
		}
	}
	return actx, set, stop
}

// encodeDetails turns heartbeat details into payloads, as the worker's
// (default) data converter would at the beat, so a beat sends a snapshot.
// No details, or one nil, stay as they are (a beat with no details).
func encodeDetails(d []any) (out []any, err error) {
	if len(d) == 0 || (len(d) == 1 && d[0] == nil) {
		return d, nil
	}
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("encoding heartbeat details panicked: %v", r)
		}
	}()
	dc := converter.GetDefaultDataConverter()
	out = make([]any, len(d))
	for i, v := range d {
		if raw, ok := v.(converter.RawValue); ok {
			out[i] = raw
			continue
		}
		p, err := dc.ToPayload(v)
		if err != nil {
			return nil, fmt.Errorf("encoding heartbeat details: %w", err)
		}
		out[i] = converter.NewRawValue(p)
	}
	return out, nil
}

// safeHeartbeat records a heartbeat, logging a panic instead of passing it
// on (in the ticker's goroutine it would end the worker).
func safeHeartbeat(ctx context.Context, d []any) {
	defer func() {
		if r := recover(); r != nil {
			activity.GetLogger(ctx).Error("heartbeat failed", "panic", fmt.Sprint(r))
		}
	}()
	activity.RecordHeartbeat(ctx, d...)
}
