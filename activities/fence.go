package activities

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/stagecraft/stagecraft/internal/platform"
)

// Heartbeater records an activity attempt's heartbeat on the Temporal
// server and returns what the server answered; the worker's client.Client
// is one. Activities that change a target beat through it
// (keepAliveWhileKnown), so an attempt the server has given up on stops.
type Heartbeater interface {
	RecordActivityHeartbeat(ctx context.Context, taskToken []byte, details ...any) error
}

// ErrAttemptGone is the cause of the context of an attempt the Temporal
// server has given up on: it no longer knows it, or no heartbeat of it has
// reached the server for longer than its heartbeat timeout.
var ErrAttemptGone = errors.New("the Temporal server has given up on this attempt")

// liveness judges an attempt's heartbeats by the server's answers.
type liveness struct {
	mu      sync.Mutex
	timeout time.Duration
	// last is when the server last answered a beat (at first, when the
	// beats began).
	last time.Time
}

// judge takes the answer to one beat, at now. gone is non-nil when the
// attempt must stop; handOver says the server asked for a cancellation,
// pause or reset, which the SDK's own heartbeat carries out (it is sent
// again through it).
func (l *liveness) judge(err error, now time.Time) (gone error, handOver bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var nf *serviceerror.NotFound
	var nsnf *serviceerror.NamespaceNotFound
	switch {
	case err == nil:
		l.last = now
		return nil, false
	case temporal.IsCanceledError(err), errors.Is(err, activity.ErrActivityPaused), errors.Is(err, activity.ErrActivityReset):
		l.last = now
		return nil, true
	case errors.As(err, &nf), errors.As(err, &nsnf):
		return fmt.Errorf("%w: it no longer knows it (it timed out, or its workflow closed): %v", ErrAttemptGone, err), false
	case now.Sub(l.last) > l.timeout:
		return fmt.Errorf("%w: no heartbeat reached it for %s, longer than the heartbeat timeout %s, so it has timed the attempt out: %v",
			ErrAttemptGone, now.Sub(l.last).Round(time.Millisecond), l.timeout, err), false
	}
	return nil, false
}

// attemptFence is the fence of the activity's attempt on its target
// (platform.Fence): the rollout's namespace and canonical workflow ID, the
// attempt's start on the server, and its deadline. Outside an activity it
// is zero (fences nothing).
func attemptFence(ctx context.Context) platform.Fence {
	if !activity.IsActivity(ctx) {
		return platform.Fence{}
	}
	info := activity.GetInfo(ctx)
	return platform.Fence{
		Owner: info.WorkflowNamespace + "/" + info.WorkflowExecution.ID,
		Step:  info.StartedTime.UnixNano(),
		Until: info.Deadline,
	}
}
