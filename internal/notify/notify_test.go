package notify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stagecraft/stagecraft/internal/spec"
)

// secretPath stands for the secret part of a Slack URL: no error may print it.
const secretPath = "/services/T000/B000/s3cr3t"

// request is what a test server received.
type request struct {
	method string
	path   string
	header http.Header
	body   string
}

// recorder is a test server answering every request with status and keeping it.
type recorder struct {
	srv    *httptest.Server
	status int

	mu   sync.Mutex
	reqs []request
}

func newRecorder(t *testing.T, status int) *recorder {
	t.Helper()
	r := &recorder{status: status}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.reqs = append(r.reqs, request{req.Method, req.URL.Path, req.Header.Clone(), string(body)})
		r.mu.Unlock()
		if r.status >= 300 && r.status < 400 {
			w.Header().Set("Location", "/elsewhere")
		}
		w.WriteHeader(r.status)
		_, _ = io.WriteString(w, strings.Repeat("x", 64<<10))
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *recorder) url() string { return r.srv.URL + secretPath }

func (r *recorder) host() string {
	u, _ := url.Parse(r.srv.URL)
	return u.Host
}

func (r *recorder) only(t *testing.T) request {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.reqs) != 1 {
		t.Fatalf("server got %d requests; want 1", len(r.reqs))
	}
	return r.reqs[0]
}

var at = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

func releaseEvent() Event {
	return Event{
		Kind: spec.EventRolledBack, Key: "release-shop-prod/run-1/rolled_back", Subject: "release",
		WorkflowID: "release-shop-prod", RunID: "run-1", Name: "shop", Environment: "prod",
		Reason: "service api: health check failed",
		Services: []ServiceOutcome{
			{Name: "db-migrator", State: "rolled_back"},
			{Name: "api", State: "failed", Error: "health check failed"},
			{Name: "web", State: "not_started"},
		},
		At: at,
	}
}

func TestSendWebhook(t *testing.T) {
	srv := newRecorder(t, http.StatusAccepted)
	n := spec.Notification{Name: "deploys", Webhook: srv.url(), Headers: spec.PlainValues(map[string]string{
		"Authorization": "Bearer t0ken",
		"content-type":  "text/plain", // validation refuses it; the sender's own wins anyway
	})}
	if err := (&Sender{}).Send(context.Background(), n, releaseEvent()); err != nil {
		t.Fatalf("Send: %v", err)
	}
	got := srv.only(t)
	if got.method != http.MethodPost || got.path != secretPath {
		t.Errorf("request %s %s; want POST %s", got.method, got.path, secretPath)
	}
	want := `{"event":"rolled_back","key":"release-shop-prod/run-1/rolled_back","subject":"release",` +
		`"workflowId":"release-shop-prod","runId":"run-1","name":"shop","environment":"prod",` +
		`"reason":"service api: health check failed","services":[{"name":"db-migrator","state":"rolled_back"},` +
		`{"name":"api","state":"failed","error":"health check failed"},{"name":"web","state":"not_started"}],` +
		`"at":"2026-03-04T05:06:07Z"}`
	if got.body != want {
		t.Errorf("body\n%s\nwant\n%s", got.body, want)
	}
	for k, v := range map[string]string{
		"Content-Type":    "application/json",
		"Idempotency-Key": "release-shop-prod/run-1/rolled_back",
		"User-Agent":      "stagecraft",
		"Authorization":   "Bearer t0ken",
	} {
		if g := got.header.Values(k); len(g) != 1 || g[0] != v {
			t.Errorf("header %s = %q; want %q", k, g, v)
		}
	}
}

func TestSendSlack(t *testing.T) {
	tests := []struct {
		name  string
		event Event
		want  string
	}{
		{
			name:  "release",
			event: releaseEvent(),
			want:  `{"text":"release shop in prod rolled back: service api: health check failed (db-migrator rolled_back, api failed, web not_started)"}`,
		},
		{
			name: "escaped",
			event: Event{Kind: spec.EventFailed, Subject: "rollout", Name: "api", Environment: "prod",
				Reason: `status 503, want <2xx> & "ok"`, ImageFrom: "api:1", ImageTo: "api:2"},
			want: `{"text":"rollout api in prod failed: status 503, want &lt;2xx&gt; &amp; \"ok\" (api:1 → api:2)"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newRecorder(t, http.StatusOK)
			// Headers are for webhooks only: a Slack target never sends them.
			n := spec.Notification{Slack: srv.url(), Headers: spec.PlainValues(map[string]string{"Authorization": "Bearer t0ken"})}
			if err := (&Sender{}).Send(context.Background(), n, tt.event); err != nil {
				t.Fatalf("Send: %v", err)
			}
			got := srv.only(t)
			if got.body != tt.want {
				t.Errorf("body\n%s\nwant\n%s", got.body, tt.want)
			}
			if ct := got.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			for _, h := range []string{"Idempotency-Key", "Authorization"} {
				if v := got.header.Get(h); v != "" {
					t.Errorf("header %s = %q sent to Slack", h, v)
				}
			}
		})
	}
}

func TestSendStatus(t *testing.T) {
	tests := []struct {
		status    int
		ok        bool
		permanent bool
	}{
		{status: 200, ok: true},
		{status: 204, ok: true},
		{status: 301},
		{status: 400, permanent: true},
		{status: 403, permanent: true},
		{status: 404, permanent: true},
		{status: 410, permanent: true},
		{status: 408},
		{status: 429},
		{status: 500},
		{status: 502},
		{status: 503},
	}
	for _, tt := range tests {
		for _, kind := range []string{"webhook", "slack"} {
			t.Run(http.StatusText(tt.status)+"/"+kind, func(t *testing.T) {
				srv := newRecorder(t, tt.status)
				n := spec.Notification{Name: "ops", Webhook: srv.url()}
				if kind == "slack" {
					n = spec.Notification{Name: "ops", Slack: srv.url()}
				}
				err := (&Sender{}).Send(context.Background(), n, releaseEvent())
				srv.only(t) // one request, redirects not followed
				if tt.ok {
					if err != nil {
						t.Fatalf("Send: %v", err)
					}
					return
				}
				if err == nil {
					t.Fatal("Send: no error")
				}
				var perm *PermanentError
				if errors.As(err, &perm) != tt.permanent {
					t.Errorf("Send = %v (%T); permanent %v", err, err, tt.permanent)
				}
				var se *StatusError
				if !errors.As(err, &se) || se.Code != tt.status {
					t.Errorf("Send = %v; want a *StatusError with code %d", err, tt.status)
				}
				msg := err.Error()
				if want := fmt.Sprintf("notify ops (%s): status %d", srv.host(), tt.status); !strings.HasPrefix(msg, want) {
					t.Errorf("error %q; want it to start with %q", msg, want)
				}
				if strings.Contains(msg, secretPath) {
					t.Errorf("error %q prints the URL", msg)
				}
			})
		}
	}
}

func TestSendTransportErrors(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	closed := srv.URL + secretPath
	srv.Close()

	t.Run("connection refused", func(t *testing.T) {
		err := (&Sender{}).Send(context.Background(), spec.Notification{Slack: closed}, releaseEvent())
		var perm *PermanentError
		if err == nil || errors.As(err, &perm) {
			t.Fatalf("Send = %v; want a transient error", err)
		}
		if msg := err.Error(); !strings.HasPrefix(msg, "notify slack (127.0.0.1:") || strings.Contains(msg, secretPath) {
			t.Errorf("error %q: want the name and host, never the URL's path", msg)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := (&Sender{}).Send(ctx, spec.Notification{Webhook: closed}, releaseEvent())
		var perm *PermanentError
		if !errors.Is(err, context.Canceled) || errors.As(err, &perm) {
			t.Fatalf("Send = %v; want a transient context.Canceled", err)
		}
	})
}

func TestSendMisconfigured(t *testing.T) {
	tests := []struct {
		name string
		n    spec.Notification
	}{
		{"neither", spec.Notification{Name: "x"}},
		{"both", spec.Notification{Webhook: "http://127.0.0.1:1/a", Slack: "http://127.0.0.1:1" + secretPath}},
		{"relative", spec.Notification{Slack: secretPath}},
		{"unparseable", spec.Notification{Slack: "http://h/%zz" + secretPath}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := (&Sender{}).Send(context.Background(), tt.n, releaseEvent())
			var perm *PermanentError
			if !errors.As(err, &perm) {
				t.Fatalf("Send = %v; want a *PermanentError", err)
			}
			if strings.Contains(err.Error(), secretPath) {
				t.Errorf("error %q prints the URL", err)
			}
		})
	}
}

func TestEventText(t *testing.T) {
	tests := []struct {
		name string
		e    Event
		want string
	}{
		{"release rolled back", releaseEvent(),
			"release shop in prod rolled back: service api: health check failed (db-migrator rolled_back, api failed, web not_started)"},
		{"rollout started",
			Event{Kind: spec.EventStarted, Subject: "rollout", Name: "api", Environment: "staging", ImageFrom: "api:1", ImageTo: "api:2"},
			"rollout api in staging started (api:1 → api:2)"},
		{"first rollout, no environment",
			Event{Kind: spec.EventSucceeded, Subject: "rollout", Name: "api", ImageTo: "api:2"},
			"rollout api succeeded (api:2)"},
		{"approval", Event{Kind: spec.EventApprovalNeeded, Subject: "release", Name: "shop", Environment: "prod"},
			"release shop in prod needs approval"},
		{"rollback failed, multi-line reason",
			Event{Kind: spec.EventRollbackFailed, Subject: "rollout", Name: "api", Reason: "converge:\n  timeout\n"},
			"rollout api failed to roll back: converge: timeout"},
		{"rejected", Event{Kind: spec.EventRejected, Subject: "release", Name: "shop", Reason: "by alice"},
			"release shop was rejected: by alice"},
		{"paused", Event{Kind: spec.EventPaused, Subject: "rollout", Name: "api"}, "rollout api paused"},
		{"unknown kind, no subject", Event{Kind: "frobnicated_twice", Name: "api"}, "rollout api frobnicated twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.e.Text(); got != tt.want {
				t.Errorf("Text() = %q; want %q", got, tt.want)
			}
		})
	}
	for _, kind := range spec.NotifyEvents {
		if _, ok := verbs[kind]; !ok {
			t.Errorf("no verb for event %q", kind)
		}
	}
}
