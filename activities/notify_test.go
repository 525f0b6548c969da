package activities

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/stagecraft/stagecraft/internal/notify"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// hookPath stands for a webhook URL's secret part: never logged.
const hookPath = "/hooks/s3cr3t"

// hookServer answers with the next status of its script (the last one
// repeats) and keeps the bodies it got.
type hookServer struct {
	srv *httptest.Server

	mu     sync.Mutex
	script []int
	bodies []string
}

func newHookServer(t *testing.T, script ...int) *hookServer {
	t.Helper()
	h := &hookServer{script: script}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.bodies = append(h.bodies, string(body))
		status := h.script[min(len(h.bodies), len(h.script))-1]
		h.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookServer) url() string { return h.srv.URL + hookPath }

func (h *hookServer) received() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.bodies)
}

type notifyFixture struct {
	acts *Activities
	logs *observer.ObservedLogs
	env  *testsuite.TestActivityEnvironment
	// beats holds the heartbeat details the environment saw, in order.
	beats [][]int
}

func newNotifyFixture(t *testing.T, n Notifier) *notifyFixture {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	f := &notifyFixture{acts: &Activities{Notifier: n, Log: zap.New(core)}, logs: logs}
	var s testsuite.WorkflowTestSuite
	f.env = s.NewTestActivityEnvironment()
	f.env.RegisterActivity(f.acts)
	var mu sync.Mutex
	f.env.SetOnActivityHeartbeatListener(func(_ *activity.Info, details converter.EncodedValues) {
		var done []int
		if err := details.Get(&done); err != nil {
			t.Errorf("heartbeat details: %v", err)
		}
		mu.Lock()
		f.beats = append(f.beats, done)
		mu.Unlock()
	})
	return f
}

// run executes Notify and decodes its result.
func (f *notifyFixture) run(in NotifyInput) (NotifyResult, error) {
	val, err := f.env.ExecuteActivity(f.acts.Notify, in)
	if err != nil {
		return NotifyResult{}, err
	}
	var res NotifyResult
	err = val.Get(&res)
	return res, err
}

// checkLogs fails the test if a log entry prints a target's URL.
func (f *notifyFixture) checkLogs(t *testing.T) {
	t.Helper()
	for _, e := range f.logs.All() {
		if line := fmt.Sprint(e.Message, e.ContextMap()); strings.Contains(line, hookPath) {
			t.Errorf("log %q prints a URL", line)
		}
	}
}

func notifyEvent(kind string) notify.Event {
	return notify.Event{Kind: kind, Key: "rollout-api/run-1/" + kind, Subject: "rollout", WorkflowID: "rollout-api",
		RunID: "run-1", Name: "api", Environment: "prod", ImageFrom: "api:1", ImageTo: "api:2",
		At: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)}
}

func TestNotifyDeliversToTargetsThatWantTheEvent(t *testing.T) {
	failures := newHookServer(t, http.StatusOK) // webhook, failures only
	wins := newHookServer(t, http.StatusOK)     // slack, successes only
	all := newHookServer(t, http.StatusOK)      // webhook, every event
	targets := []spec.Notification{
		{Name: "pager", Webhook: failures.url(), Events: []string{spec.EventFailed, spec.EventRolledBack}},
		{Slack: wins.url(), Events: []string{spec.EventSucceeded}},
		{Webhook: all.url()},
	}
	tests := []struct {
		kind      string
		delivered []string
		bodies    [3]int // requests each server has seen by then
	}{
		{spec.EventStarted, []string{"webhook[2]"}, [3]int{0, 0, 1}},
		{spec.EventRolledBack, []string{"pager", "webhook[2]"}, [3]int{1, 0, 2}},
		{spec.EventSucceeded, []string{"slack[1]", "webhook[2]"}, [3]int{1, 1, 3}},
	}
	// Notifier nil: the activity sends with a notify.Sender.
	f := newNotifyFixture(t, nil)
	for _, tt := range tests {
		res, err := f.run(NotifyInput{Targets: targets, Event: notifyEvent(tt.kind)})
		if err != nil {
			t.Fatalf("Notify(%s): %v", tt.kind, err)
		}
		if !slices.Equal(res.Delivered, tt.delivered) || len(res.Failed) != 0 {
			t.Errorf("Notify(%s) = %+v; want delivered %q", tt.kind, res, tt.delivered)
		}
		for i, srv := range []*hookServer{failures, wins, all} {
			if n := len(srv.received()); n != tt.bodies[i] {
				t.Errorf("after %s: target %d got %d requests; want %d", tt.kind, i, n, tt.bodies[i])
			}
		}
	}
	if got := failures.received()[0]; !strings.Contains(got, `"event":"rolled_back"`) || !strings.Contains(got, `"key":"rollout-api/run-1/rolled_back"`) {
		t.Errorf("webhook body %s", got)
	}
	if got, want := wins.received()[0], `{"text":"rollout api in prod succeeded (api:1 → api:2)"}`; got != want {
		t.Errorf("slack body %s; want %s", got, want)
	}
	if n := f.logs.FilterMessage("notification delivered").FilterField(zap.String("target", "pager")).Len(); n != 1 {
		t.Errorf("%d delivery logs for pager; want 1", n)
	}
	f.checkLogs(t)
}

func TestNotifyRetrySkipsDelivered(t *testing.T) {
	a := newHookServer(t, http.StatusOK)
	b := newHookServer(t, http.StatusServiceUnavailable, http.StatusOK)
	in := NotifyInput{
		Targets: []spec.Notification{{Name: "a", Webhook: a.url()}, {Name: "b", Slack: b.url()}},
		Event:   notifyEvent(spec.EventFailed),
	}

	first := newNotifyFixture(t, nil)
	_, err := first.run(in)
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || app.NonRetryable() {
		t.Fatalf("first attempt = %v; want a retryable error", err)
	}
	if !strings.Contains(err.Error(), "notify b (") || !strings.Contains(err.Error(), "status 503") {
		t.Errorf("first attempt error %q does not name b and its status", err)
	}
	if len(first.beats) == 0 || !slices.Equal(first.beats[len(first.beats)-1], []int{0}) {
		t.Fatalf("heartbeats %v; want the last to be [0]", first.beats)
	}
	first.checkLogs(t)

	// The retry starts from the last heartbeat, as Temporal's next attempt would.
	retry := newNotifyFixture(t, nil)
	retry.env.SetHeartbeatDetails(first.beats[len(first.beats)-1])
	res, err := retry.run(in)
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	if !slices.Equal(res.Delivered, []string{"a", "b"}) || len(res.Failed) != 0 {
		t.Errorf("retry = %+v; want a and b delivered", res)
	}
	if n := len(a.received()); n != 1 {
		t.Errorf("a got %d requests; want 1 (the retry must not resend)", n)
	}
	if n := len(b.received()); n != 2 {
		t.Errorf("b got %d requests; want 2", n)
	}
	if got := retry.beats; len(got) == 0 || !slices.Equal(got[len(got)-1], []int{0, 1}) {
		t.Errorf("retry heartbeats %v; want the last to be [0 1]", got)
	}
}

func TestNotifyPermanentFailureIsNotRetried(t *testing.T) {
	gone := newHookServer(t, http.StatusNotFound)
	ok := newHookServer(t, http.StatusOK)
	f := newNotifyFixture(t, nil)
	res, err := f.run(NotifyInput{
		Targets: []spec.Notification{{Slack: gone.url()}, {Name: "ok", Webhook: ok.url()}},
		Event:   notifyEvent(spec.EventFailed),
	})
	if err != nil {
		t.Fatalf("Notify: %v; a 404 must not fail the attempt", err)
	}
	if !slices.Equal(res.Delivered, []string{"ok"}) || !slices.Equal(res.Failed, []string{"slack[0]"}) {
		t.Errorf("Notify = %+v; want ok delivered, slack[0] failed", res)
	}
	if n := f.logs.FilterMessage("notification refused; not retrying").Len(); n != 1 {
		t.Errorf("%d refusal logs; want 1", n)
	}
	f.checkLogs(t)
}

// fakeNotifier fails the targets named in fail with their error.
type fakeNotifier struct {
	fail map[string]error

	mu   sync.Mutex
	sent []string
}

func (n *fakeNotifier) Send(_ context.Context, target spec.Notification, _ notify.Event) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.sent = append(n.sent, target.Name)
	return n.fail[target.Name]
}

func TestNotifyUsesTheNotifier(t *testing.T) {
	fake := &fakeNotifier{fail: map[string]error{
		"webhook[1]": errors.New("connection refused"),
		"slack[2]":   &notify.PermanentError{Err: errors.New("status 403")},
	}}
	f := newNotifyFixture(t, fake)
	in := NotifyInput{Event: notifyEvent(spec.EventPaused), Targets: []spec.Notification{
		{Name: "ops", Webhook: "http://unused"},
		{Webhook: "http://unused"},
		{Slack: "http://unused"},
		{Webhook: "http://unused", Events: []string{spec.EventSucceeded}},
	}}
	_, err := f.run(in)
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || app.NonRetryable() || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("Notify = %v; want a retryable error with the transient cause", err)
	}
	if want := []string{"ops", "webhook[1]", "slack[2]"}; !slices.Equal(fake.sent, want) {
		t.Errorf("sent to %q; want %q", fake.sent, want)
	}
}

func TestNotifyOutsideAnActivity(t *testing.T) {
	// Called directly (no activity context) it neither heartbeats nor panics.
	fake := &fakeNotifier{}
	res, err := (&Activities{Notifier: fake}).Notify(context.Background(), NotifyInput{
		Targets: []spec.Notification{{Webhook: "http://unused"}}, Event: notifyEvent(spec.EventStarted)})
	if err != nil || !slices.Equal(res.Delivered, []string{"webhook[0]"}) {
		t.Fatalf("Notify = %+v, %v", res, err)
	}
}
