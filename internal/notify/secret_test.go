package notify

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stagecraft/stagecraft/internal/spec"
)

// TestSendResolvesReferences: a webhook URL, a Slack URL and a header
// given as references are read when sending; an unset one fails
// permanently, naming the reference and no value (review finding 14).
func TestSendResolvesReferences(t *testing.T) {
	var mu sync.Mutex
	var paths, auths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		paths = append(paths, r.URL.Path)
		auths = append(auths, r.Header.Get("Authorization"))
	}))
	t.Cleanup(srv.Close)
	file := filepath.Join(t.TempDir(), "hook-url")
	if err := os.WriteFile(file, []byte(srv.URL+"/hooks/T0/secret-path\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("STAGECRAFT_TEST_HOOK_TOKEN", "Bearer hook-s3cret")
	t.Setenv("STAGECRAFT_TEST_SLACK_URL", srv.URL+"/services/T/B/slack-secret")
	ev := Event{Kind: spec.EventStarted, Key: "wf/run/started", Name: "api"}
	var s Sender
	hook := spec.Notification{WebhookFrom: &spec.SecretRef{FromFile: file}, Headers: map[string]spec.SecretValue{
		"Authorization": {Ref: &spec.SecretRef{FromEnv: "STAGECRAFT_TEST_HOOK_TOKEN"}},
	}}
	if err := s.Send(context.Background(), hook, ev); err != nil {
		t.Fatalf("webhookFrom: %v", err)
	}
	if err := s.Send(context.Background(), spec.Notification{SlackFrom: &spec.SecretRef{FromEnv: "STAGECRAFT_TEST_SLACK_URL"}}, ev); err != nil {
		t.Fatalf("slackFrom: %v", err)
	}
	if strings.Join(paths, " ") != "/hooks/T0/secret-path /services/T/B/slack-secret" || auths[0] != "Bearer hook-s3cret" || auths[1] != "" {
		t.Fatalf("received paths %v, authorization %q", paths, auths)
	}

	err := s.Send(context.Background(), spec.Notification{Name: "ops", WebhookFrom: &spec.SecretRef{FromEnv: "STAGECRAFT_TEST_UNSET"}}, ev)
	var perm *PermanentError
	if !errors.As(err, &perm) || !strings.Contains(err.Error(), `environment variable "STAGECRAFT_TEST_UNSET" is not set`) {
		t.Errorf("unset webhookFrom: %v; want a permanent error naming the variable", err)
	}
	hook.Headers["Authorization"] = spec.SecretValue{Ref: &spec.SecretRef{FromFile: "/nonexistent/token"}}
	err = s.Send(context.Background(), hook, ev)
	if !errors.As(err, &perm) || strings.Contains(err.Error(), "secret-path") || !strings.Contains(err.Error(), "header Authorization") {
		t.Errorf("unreadable header file: %v; want a permanent error naming the header, not the URL", err)
	}
}
