package notify

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stagecraft/stagecraft/internal/egress"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// TestSendWithinEgressPolicy: webhooks and Slack URLs dial within the
// worker's egress policy: the metadata address is refused in the open
// default, a receiver off the allowlist is refused before it is reached,
// one on it gets the event (review finding 6).
func TestSendWithinEgressPolicy(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hits.Add(1) }))
	t.Cleanup(srv.Close)
	ev := Event{Kind: spec.EventStarted, Key: "wf/run/started", Name: "api"}

	var open Sender
	for _, n := range []spec.Notification{
		{Webhook: "http://169.254.169.254/latest/meta-data/"},
		{Slack: "http://169.254.169.254/services/T/B/X"},
	} {
		err := open.Send(context.Background(), n, ev)
		if err == nil || !strings.Contains(err.Error(), "egress policy") {
			t.Errorf("send to the metadata address: %v; want refused by the egress policy", err)
		}
	}

	strict, err := egress.Parse([]string{"hooks.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	s := Sender{Egress: strict}
	err = s.Send(context.Background(), spec.Notification{Webhook: srv.URL + "/hook"}, ev)
	if err == nil || !strings.Contains(err.Error(), "egress policy") || hits.Load() != 0 {
		t.Fatalf("send off the allowlist: %v, %d hits; want refused by the egress policy, none", err, hits.Load())
	}
	allowed, err := egress.Parse([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	s = Sender{Egress: allowed}
	if err := s.Send(context.Background(), spec.Notification{Webhook: srv.URL + "/hook"}, ev); err != nil || hits.Load() != 1 {
		t.Fatalf("send on the allowlist: %v, %d hits; want delivered once", err, hits.Load())
	}
}
