//go:build failpoints

package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/interceptor"
	"go.uber.org/zap"

	points "github.com/stagecraft/stagecraft/internal/failpoint"
)

// FailpointEnv holds failpoints, comma-separated, each
// "<ActivityType>:<n>:<before|after>": the worker SIGKILLs itself at the
// n-th execution of that activity type in this process, before its body
// runs or after it returns but before its result reaches Temporal; or
// "<ActivityType>:<n>:freeze=<file>": that execution freezes once its
// platform has read the target (failpoint.ConvergeRead) until the file
// exists (at most maxFreeze), ignoring its context, with its side
// heartbeat suppressed from then until it returns: a worker cut off from
// Temporal (or paused) but still reaching the platform, whose attempt times
// out on the server and comes back as a zombie; or
// "<ActivityType>:<n>:stall=<duration>": that execution stalls at the same
// point until its context ends (at most maxFreeze), with its side heartbeat
// muted for the duration, so the server times the attempt out and the
// beats after it find the attempt gone. Only builds with the "failpoints"
// tag (the fault suite's) read it.
const FailpointEnv = "STAGECRAFT_FAILPOINT"

// maxFreeze bounds a freeze, so a test that never releases it still ends.
const maxFreeze = 5 * time.Minute

type failpoint struct {
	activity string
	n        int
	after    bool
	// freeze is the file whose existence ends a freeze; stall, how long
	// a stall mutes the side heartbeat (neither: a kill).
	freeze string
	stall  time.Duration
}

func parseFailpoints(s string) ([]failpoint, error) {
	var out []failpoint
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		f := strings.SplitN(part, ":", 3)
		if len(f) != 3 {
			return nil, fmt.Errorf("%s: %q is not <ActivityType>:<n>:<before|after|freeze=FILE|stall=DURATION>", FailpointEnv, part)
		}
		n, err := strconv.Atoi(f[1])
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%s: %q: n must be a positive integer", FailpointEnv, part)
		}
		if file, ok := strings.CutPrefix(f[2], "freeze="); ok && file != "" {
			out = append(out, failpoint{activity: f[0], n: n, freeze: file})
			continue
		}
		if v, ok := strings.CutPrefix(f[2], "stall="); ok {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return nil, fmt.Errorf("%s: %q: stall= needs a positive duration", FailpointEnv, part)
			}
			out = append(out, failpoint{activity: f[0], n: n, stall: d})
			continue
		}
		if f[2] != "before" && f[2] != "after" {
			return nil, fmt.Errorf("%s: %q: the point must be before, after, freeze=FILE or stall=DURATION", FailpointEnv, part)
		}
		out = append(out, failpoint{activity: f[0], n: n, after: f[2] == "after"})
	}
	return out, nil
}

// failpoints returns the interceptor that fires the failpoints in
// FailpointEnv; a malformed value stops the worker at start.
func failpoints(log *zap.Logger) []interceptor.WorkerInterceptor {
	fps, err := parseFailpoints(os.Getenv(FailpointEnv))
	if err != nil {
		log.Fatal("failpoints", zap.Error(err))
	}
	if len(fps) == 0 {
		return nil
	}
	log.Warn("failpoints armed: this worker will SIGKILL itself or freeze an activity", zap.String(FailpointEnv, os.Getenv(FailpointEnv)))
	return []interceptor.WorkerInterceptor{&failpointInterceptor{log: log, fps: fps, seen: map[string]int{}}}
}

type failpointInterceptor struct {
	interceptor.WorkerInterceptorBase
	log  *zap.Logger
	fps  []failpoint
	mu   sync.Mutex
	seen map[string]int
}

func (f *failpointInterceptor) InterceptActivity(_ context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	return &failpointActivity{ActivityInboundInterceptorBase: interceptor.ActivityInboundInterceptorBase{Next: next}, f: f}
}

type failpointActivity struct {
	interceptor.ActivityInboundInterceptorBase
	f *failpointInterceptor
}

func (a *failpointActivity) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	name := activity.GetInfo(ctx).ActivityType.Name
	a.f.mu.Lock()
	a.f.seen[name]++
	n := a.f.seen[name]
	a.f.mu.Unlock()
	a.f.maybeKill(ctx, name, n, false)
	var returned chan struct{}
	if fp, ok := a.f.freezeAt(name, n); ok {
		returned = make(chan struct{})
		ctx = points.With(ctx, a.f.freezer(fp, returned))
	}
	res, err := a.Next.ExecuteActivity(ctx, in)
	if returned != nil {
		close(returned)
		info := activity.GetInfo(ctx)
		a.f.log.Warn("failpoint: frozen activity returned", zap.String("activity", name), zap.Int("n", n),
			zap.String("workflowId", info.WorkflowExecution.ID), zap.Int32("attempt", info.Attempt), zap.Error(err))
	}
	a.f.maybeKill(ctx, name, n, true)
	return res, err
}

// freezeAt returns the freeze or stall failpoint of the n-th execution of
// name.
func (f *failpointInterceptor) freezeAt(name string, n int) (failpoint, bool) {
	for _, fp := range f.fps {
		if fp.activity == name && fp.n == n && (fp.freeze != "" || fp.stall > 0) {
			return fp, true
		}
	}
	return failpoint{}, false
}

// freezer is the failpoint handler of a frozen or stalled execution. A
// freeze, at its first failpoint.ConvergeRead, waits for fp's file (its
// context ignored, as in a paused process), and from then until the
// execution returns (returned) its side heartbeats wait too, so none
// reaches the server. A stall waits there for its context to end, and its
// side heartbeats wait out fp.stall from then.
func (f *failpointInterceptor) freezer(fp failpoint, returned <-chan struct{}) points.Handler {
	var once sync.Once
	frozen := make(chan struct{})
	var mutedUntil time.Time
	return func(ctx context.Context, point string) {
		switch point {
		case points.ConvergeRead:
			once.Do(func() {
				mutedUntil = time.Now().Add(fp.stall)
				close(frozen)
				info := activity.GetInfo(ctx)
				f.log.Warn("failpoint: frozen after reading the target; side heartbeats suppressed",
					zap.String("activity", fp.activity), zap.Int("n", fp.n), zap.String("until", fp.freeze),
					zap.Duration("stall", fp.stall),
					zap.String("workflowId", info.WorkflowExecution.ID), zap.Int32("attempt", info.Attempt))
				for deadline := time.Now().Add(maxFreeze); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
					if fp.freeze == "" && ctx.Err() != nil {
						break
					}
					if _, err := os.Stat(fp.freeze); fp.freeze != "" && err == nil {
						break
					}
				}
				f.log.Warn("failpoint: frozen activity resumed", zap.String("activity", fp.activity), zap.Int("n", fp.n),
					zap.Bool("contextDone", ctx.Err() != nil), zap.NamedError("cause", context.Cause(ctx)))
			})
		case points.SideHeartbeat:
			select {
			case <-frozen:
			default:
				return
			}
			if fp.freeze != "" {
				<-returned
				return
			}
			select {
			case <-returned:
			case <-time.After(time.Until(mutedUntil)):
			}
		}
	}
}

func (f *failpointInterceptor) maybeKill(ctx context.Context, name string, n int, after bool) {
	for _, fp := range f.fps {
		if fp.activity != name || fp.n != n || fp.after != after || fp.freeze != "" || fp.stall > 0 {
			continue
		}
		point := "before"
		if after {
			point = "after"
		}
		info := activity.GetInfo(ctx)
		f.log.Warn("failpoint: SIGKILL", zap.String("activity", name), zap.Int("n", n), zap.String("point", point),
			zap.String("workflowId", info.WorkflowExecution.ID), zap.Int32("attempt", info.Attempt))
		_ = f.log.Sync()
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal ends the process
	}
}
