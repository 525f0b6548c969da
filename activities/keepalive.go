package activities

import (
	"context"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
)

// keepAlive heartbeats for an activity whose work blocks in one call (a
// converge waiting for a rollout, a write waiting for the database), so a
// worker that dies is noticed within the heartbeat timeout, not after the
// start-to-close timeout. set records details and makes every later beat
// carry them (what a retried attempt resumes from); stop ends the beats.
// Without a heartbeat timeout set only records; outside an activity both
// do nothing.
func keepAlive(ctx context.Context) (set func(details ...any), stop func()) {
	if !activity.IsActivity(ctx) {
		return func(...any) {}, func() {}
	}
	if activity.GetInfo(ctx).HeartbeatTimeout <= 0 {
		return func(d ...any) { activity.RecordHeartbeat(ctx, d...) }, func() {}
	}
	var mu sync.Mutex
	var details []any
	if activity.HasHeartbeatDetails(ctx) {
		// Until the attempt says otherwise, keep what the last one recorded.
		var raw any
		if activity.GetHeartbeatDetails(ctx, &raw) == nil {
			details = []any{raw}
		}
	}
	beat := func() {
		mu.Lock()
		d := details
		mu.Unlock()
		activity.RecordHeartbeat(ctx, d...)
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
		mu.Lock()
		details = d
		mu.Unlock()
		beat()
	}
	return set, func() { once.Do(func() { close(done) }) }
}
