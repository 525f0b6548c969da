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

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/interceptor"
	"go.uber.org/zap"
)

// FailpointEnv holds failpoints, comma-separated, each
// "<ActivityType>:<n>:<before|after>": the worker SIGKILLs itself at the
// n-th execution of that activity type in this process, before its body
// runs or after it returns but before its result reaches Temporal. Only
// builds with the "failpoints" tag (the fault suite's) read it.
const FailpointEnv = "STAGECRAFT_FAILPOINT"

type failpoint struct {
	activity string
	n        int
	after    bool
}

func parseFailpoints(s string) ([]failpoint, error) {
	var out []failpoint
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		f := strings.Split(part, ":")
		if len(f) != 3 {
			return nil, fmt.Errorf("%s: %q is not <ActivityType>:<n>:<before|after>", FailpointEnv, part)
		}
		n, err := strconv.Atoi(f[1])
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%s: %q: n must be a positive integer", FailpointEnv, part)
		}
		if f[2] != "before" && f[2] != "after" {
			return nil, fmt.Errorf("%s: %q: the point must be before or after", FailpointEnv, part)
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
	log.Warn("failpoints armed: this worker will SIGKILL itself", zap.String(FailpointEnv, os.Getenv(FailpointEnv)))
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
	res, err := a.Next.ExecuteActivity(ctx, in)
	a.f.maybeKill(ctx, name, n, true)
	return res, err
}

func (f *failpointInterceptor) maybeKill(ctx context.Context, name string, n int, after bool) {
	for _, fp := range f.fps {
		if fp.activity != name || fp.n != n || fp.after != after {
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
