package activities

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// convergePlatform is a platform whose Converge records its request and
// runs do (nil: returns at once).
type convergePlatform struct {
	do func(ctx context.Context) error

	mu    sync.Mutex
	req   platform.ConvergeRequest
	cause error
}

func (p *convergePlatform) CheckImage(context.Context, string) error { return nil }
func (p *convergePlatform) Snapshot(context.Context, spec.Spec) (platform.Snapshot, error) {
	return platform.Snapshot{}, nil
}
func (p *convergePlatform) Endpoints(context.Context, spec.Spec, string, platform.Snapshot, platform.Which) ([]string, error) {
	return nil, nil
}
func (p *convergePlatform) Converge(ctx context.Context, req platform.ConvergeRequest) (platform.ConvergeResult, error) {
	p.mu.Lock()
	p.req = req
	p.mu.Unlock()
	var err error
	if p.do != nil {
		err = p.do(ctx)
	}
	p.mu.Lock()
	p.cause = context.Cause(ctx)
	p.mu.Unlock()
	return platform.ConvergeResult{}, err
}

// untilDone blocks like a converge waiting on the engine until its context
// ends, or for at most d.
func untilDone(d time.Duration) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		select {
		case <-ctx.Done():
			return fmt.Errorf("list containers: %w", ctx.Err())
		case <-time.After(d):
			return nil
		}
	}
}

// scriptedServer answers every side heartbeat with answer(n), n from 1.
type scriptedServer struct {
	answer func(n int) error
	mu     sync.Mutex
	n      int
}

func (s *scriptedServer) RecordActivityHeartbeat(ctx context.Context, token []byte, details ...any) error {
	s.mu.Lock()
	s.n++
	n := s.n
	s.mu.Unlock()
	if len(token) == 0 {
		return errors.New("no task token")
	}
	err := s.answer(n)
	if err == nil {
		// The test environment's server learns of heartbeats from the SDK
		// only: tell it this one arrived.
		activity.RecordHeartbeat(ctx, details...)
	}
	return err
}

func (s *scriptedServer) beats() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// runConverge runs Converge once as an activity with heartbeat timeout hb
// and returns its error and how long it ran.
func runConverge(t *testing.T, a *Activities, hb time.Duration) (time.Duration, error) {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.SetTestTimeout(time.Minute)
	env.RegisterActivity(a)
	env.RegisterWorkflowWithOptions(func(ctx workflow.Context) error {
		ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute,
			HeartbeatTimeout: hb, RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 1}})
		req := platform.ConvergeRequest{Spec: spec.Spec{Service: "web", Platform: spec.Platform{Docker: &spec.Docker{}}}}
		return workflow.ExecuteActivity(ctx, a.Converge, ConvergeInput{Request: req}).Get(ctx, nil)
	}, workflow.RegisterOptions{Name: "converge"})
	began := time.Now()
	env.ExecuteWorkflow("converge")
	return time.Since(began), env.GetWorkflowError()
}

func convergeActs(p Platform, server Heartbeater) *Activities {
	return &Activities{Platforms: map[string]Platform{spec.PlatformDocker: p}, Server: server}
}

// Converge hands the platform its attempt's fence: the rollout's namespace
// and workflow ID, the attempt's start and its deadline. The workflow's
// request never carries it (json:"-"), so histories do not change.
func TestConvergeFencesItsAttempt(t *testing.T) {
	p := &convergePlatform{}
	if _, err := runConverge(t, convergeActs(p, nil), time.Second); err != nil {
		t.Fatal(err)
	}
	f := p.req.Fence
	if f.Zero() || f.Step <= 0 || f.Until.IsZero() || f.Owner != "default-test-namespace/default-test-workflow-id" {
		t.Fatalf("fence %+v; want owner default/<workflow ID>, the attempt's start and deadline", f)
	}
	if got := time.Unix(0, f.Step); f.Until.Sub(got) < time.Minute || f.Until.Sub(got) > time.Minute+time.Second {
		t.Fatalf("fence step %s, until %s: want the attempt's start and its start-to-close deadline", got, f.Until)
	}
}

// A converge the platform fenced fails non-retryable with the Fenced type:
// retrying it can only be refused again.
func TestConvergeFencedIsNotRetried(t *testing.T) {
	fenced := &platform.FencedError{Target: "docker:web", Mine: platform.Fence{Owner: "default/w", Step: 1},
		Held: platform.Fence{Owner: "default/w", Step: 2}}
	p := &convergePlatform{do: func(context.Context) error { return fmt.Errorf("remove container %q: %w", "web-1", fenced) }}
	_, err := runConverge(t, convergeActs(p, nil), time.Second)
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || app.Type() != platform.ErrTypeFenced || !app.NonRetryable() {
		t.Fatalf("converge error %v; want a non-retryable %s application error", err, platform.ErrTypeFenced)
	}
	if err := classify(fmt.Errorf("x: %w", fenced)); !errors.As(err, &app) || app.Type() != platform.ErrTypeFenced {
		t.Fatalf("classify: %v", err)
	}
}

// A converge whose attempt the server no longer knows (NotFound: it timed
// out and was retried, or its workflow closed) stops at its next call,
// within one beat, instead of writing on. Before, the side heartbeat went
// through activity.RecordHeartbeat, which reports nothing, and the
// converge ran on to its end.
func TestConvergeStopsWhenTheServerForgetsTheAttempt(t *testing.T) {
	const hb = 2 * time.Second
	server := &scriptedServer{answer: func(n int) error {
		if n == 1 {
			return nil
		}
		return serviceerror.NewNotFound("workflow execution already completed")
	}}
	p := &convergePlatform{do: untilDone(20 * time.Second)}
	took, err := runConverge(t, convergeActs(p, server), hb)
	if !errors.Is(p.cause, ErrAttemptGone) {
		t.Fatalf("the converge ran %s and its context ended with %v (activity error %v); want it stopped with ErrAttemptGone", took, p.cause, err)
	}
	if took > hb {
		t.Fatalf("stopped after %s; want within two beats (%s)", took, hb/2)
	}
}

// A converge whose heartbeats have not reached the server for longer than
// the heartbeat timeout (the server has timed the attempt out) stops, and
// not before: a beat or two lost on the way is no reason.
func TestConvergeStopsWhenTheServerIsUnreachable(t *testing.T) {
	const hb = 2 * time.Second
	server := &scriptedServer{answer: func(int) error {
		return serviceerror.NewUnavailable("connection refused")
	}}
	p := &convergePlatform{do: untilDone(20 * time.Second)}
	took, err := runConverge(t, convergeActs(p, server), hb)
	if !errors.Is(p.cause, ErrAttemptGone) {
		t.Fatalf("the converge ran %s and its context ended with %v (activity error %v); want it stopped with ErrAttemptGone", took, p.cause, err)
	}
	if took < hb || took > hb+time.Second+500*time.Millisecond {
		t.Fatalf("stopped after %s; want just past the heartbeat timeout %s", took, hb)
	}
}

// While the server answers, the converge runs to its end, however long.
func TestConvergeRunsOnWhileTheServerAnswers(t *testing.T) {
	const hb = 2 * time.Second
	flaky := &scriptedServer{answer: func(n int) error {
		if n%3 == 0 {
			return serviceerror.NewUnavailable("a lost beat")
		}
		return nil
	}}
	p := &convergePlatform{do: untilDone(5 * time.Second)}
	if _, err := runConverge(t, convergeActs(p, flaky), hb); err != nil {
		t.Fatalf("converge: %v", err)
	}
	if p.cause != nil || flaky.beats() < 8 {
		t.Fatalf("cause %v after %d beats; want a converge that ran to its end, beating", p.cause, flaky.beats())
	}
}

func TestLivenessJudge(t *testing.T) {
	start := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	const timeout = 30 * time.Second
	cases := []struct {
		name     string
		err      error
		at       time.Duration
		gone     bool
		handOver bool
	}{
		{"answered", nil, 40 * time.Second, false, false},
		{"not found", serviceerror.NewNotFound("activity task not found"), time.Second, true, false},
		{"namespace gone", serviceerror.NewNamespaceNotFound("ns"), time.Second, true, false},
		{"cancel requested", temporal.NewCanceledError(), 40 * time.Second, false, true},
		{"unreachable, within the timeout", serviceerror.NewUnavailable("refused"), 29 * time.Second, false, false},
		{"unreachable, past the timeout", serviceerror.NewUnavailable("refused"), 31 * time.Second, true, false},
		{"a call that times out, past the timeout", context.DeadlineExceeded, 31 * time.Second, true, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := &liveness{timeout: timeout, last: start}
			gone, handOver := l.judge(c.err, start.Add(c.at))
			if (gone != nil) != c.gone || handOver != c.handOver {
				t.Fatalf("judge(%v at +%s) = %v, %v; want gone %v, hand over %v", c.err, c.at, gone, handOver, c.gone, c.handOver)
			}
			if gone != nil && !errors.Is(gone, ErrAttemptGone) {
				t.Fatalf("%v does not wrap ErrAttemptGone", gone)
			}
		})
	}
}
