package docker

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"
)

// fakeStream is an engine event stream the test feeds.
type fakeStream struct {
	msgs chan events.Message
	errs chan error
}

func newFakeWatch() (*upWatch, fakeStream) {
	s := fakeStream{msgs: make(chan events.Message), errs: make(chan error, 1)}
	w := &upWatch{cancel: func() {}, done: make(chan struct{}), wake: make(chan struct{}, 1),
		started: map[string]startedOne{}}
	go w.follow(client.EventsResult{Messages: s.msgs, Err: s.errs})
	return w, s
}

func event(id string, action events.Action, attrs map[string]string) events.Message {
	return events.Message{Type: events.ContainerEventType, Action: action,
		Actor: events.Actor{ID: id, Attributes: attrs}}
}

// TestUpWatch checks which events fail the stay-up check: only a die, an OOM
// kill or an unhealthy HEALTHCHECK of a container the converge started.
func TestUpWatch(t *testing.T) {
	for _, tc := range []struct {
		name    string
		events  []events.Message
		fell    string
		because string
	}{
		{"nothing", nil, "", ""},
		{"start and healthy", []events.Message{
			event("a1", events.ActionStart, nil),
			event("a1", events.ActionHealthStatusRunning, nil),
			event("a1", events.ActionHealthStatusHealthy, nil)}, "", ""},
		{"die", []events.Message{
			event("a1", events.ActionStart, nil),
			event("a1", events.ActionDie, map[string]string{"exitCode": "3"})}, "svc-a", "exit code 3"},
		{"oom", []events.Message{event("b2", events.ActionOOM, nil)}, "svc-b", "out of memory"},
		{"unhealthy", []events.Message{event("a1", events.ActionHealthStatusUnhealthy, nil)}, "svc-a", "HEALTHCHECK"},
		{"the first counts", []events.Message{
			event("b2", events.ActionDie, map[string]string{"exitCode": "1"}),
			event("a1", events.ActionDie, map[string]string{"exitCode": "2"})}, "svc-b", "exit code 1"},
		{"another container's die", []events.Message{
			event("zz", events.ActionDie, map[string]string{"exitCode": "3"})}, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, s := newFakeWatch()
			w.starting("a1", "svc-a")
			w.starting("b2", "svc-b")
			for _, m := range tc.events {
				s.msgs <- m
			}
			name, why, lost, err := w.until(t.Context(), time.Now().Add(50*time.Millisecond))
			if err != nil || lost != nil {
				t.Fatalf("until: lost %v, err %v", lost, err)
			}
			if name != tc.fell || !strings.Contains(why, tc.because) {
				t.Errorf("fell %q (%q), want %q (%q)", name, why, tc.fell, tc.because)
			}
		})
	}
}

// TestUpWatchFailsAtOnce checks a die ends the wait at once, not at its
// deadline.
func TestUpWatchFailsAtOnce(t *testing.T) {
	w, s := newFakeWatch()
	w.starting("a1", "svc-a")
	go func() { s.msgs <- event("a1", events.ActionDie, map[string]string{"exitCode": "3"}) }()
	done := make(chan string, 1)
	go func() {
		name, _, _, _ := w.until(context.Background(), time.Now().Add(time.Hour))
		done <- name
	}()
	select {
	case name := <-done:
		if name != "svc-a" {
			t.Errorf("fell %q, want svc-a", name)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a die did not end the wait")
	}
}

// TestUpWatchLost checks a stream that ends early is reported, for the
// caller to fall back on the containers' state.
func TestUpWatchLost(t *testing.T) {
	w, s := newFakeWatch()
	w.starting("a1", "svc-a")
	s.errs <- errors.New("connection reset")
	_, _, lost, err := w.until(t.Context(), time.Now().Add(time.Hour))
	if err != nil || lost == nil || !strings.Contains(lost.Error(), "connection reset") {
		t.Fatalf("until = lost %v, err %v; want the stream's error", lost, err)
	}
}
