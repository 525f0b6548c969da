package activities

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
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
	if !activity.IsActivity(ctx) {
		return func(...any) {}, func() {}
	}
	if activity.GetInfo(ctx).HeartbeatTimeout <= 0 {
		return func(d ...any) {
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
	beat := func() {
		mu.Lock()
		d := details
		mu.Unlock()
		safeHeartbeat(ctx, d)
	}
	every := max(activity.GetInfo(ctx).HeartbeatTimeout/4, 500*time.Millisecond)
	done := make(chan struct{})
	var once sync.Once
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				beat()
			}
		}
	}()
	set = func(d ...any) {
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
	return set, func() { once.Do(func() { close(done) }) }
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
