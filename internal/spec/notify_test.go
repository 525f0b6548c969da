package spec

import (
	"fmt"
	"strings"
	"testing"
)

func TestValidateNotifications(t *testing.T) {
	const hook = "https://hooks.example.com/deploys"
	const slack = "https://hooks.slack.com/services/T000/B000/secret"
	tests := []struct {
		name string
		ns   []Notification
		// want lists "field: message substring", in order; none means valid.
		want []string
	}{
		{name: "none", ns: nil},
		{name: "webhook and slack", ns: []Notification{
			{Webhook: hook, Headers: PlainValues(map[string]string{"Authorization": "Bearer x"})},
			{Name: "ops", Slack: slack, Events: []string{EventFailed, EventRolledBack, EventRollbackFailed}},
		}},
		{name: "every event", ns: []Notification{{Webhook: "http://127.0.0.1:9000/x", Events: NotifyEvents}}},
		{name: "neither", ns: []Notification{{Name: "x"}},
			want: []string{"notifications[0]: one of webhook, webhookFrom, slack or slackFrom is required"}},
		{name: "both", ns: []Notification{{Webhook: hook, Slack: slack}},
			want: []string{"notifications[0]: only one of"}},
		{name: "relative webhook", ns: []Notification{{Webhook: "/deploys"}},
			want: []string{"notifications[0].webhook: must be an absolute http(s) URL"}},
		{name: "ftp slack", ns: []Notification{{Webhook: hook}, {Slack: "ftp://hooks.slack.com/services/T/B/secret"}},
			want: []string{"notifications[1].slack: must be an absolute http(s) URL"}},
		{name: "no host", ns: []Notification{{Webhook: "https:///x"}},
			want: []string{"notifications[0].webhook: must be"}},
		{name: "unparseable", ns: []Notification{{Slack: "https://hooks.slack.com/%zz/secret"}},
			want: []string{"notifications[0].slack: must be"}},
		{name: "address placeholder", ns: []Notification{{Webhook: "http://" + AddressPlaceholder + "/x"}},
			want: []string{"notifications[0].webhook: must be"}},
		{name: "headers on slack", ns: []Notification{{Slack: slack, Headers: PlainValues(map[string]string{"X-Token": "t"})}},
			want: []string{"notifications[0].headers: only applies to webhook"}},
		{name: "bad header name", ns: []Notification{{Webhook: hook, Headers: PlainValues(map[string]string{"X Token": "t"})}},
			want: []string{`notifications[0].headers: "X Token" is not a header name`}},
		{name: "reserved header", ns: []Notification{{Webhook: hook, Headers: PlainValues(map[string]string{"idempotency-key": "k"})}},
			want: []string{"notifications[0].headers.idempotency-key: is set by stagecraft"}},
		{name: "header value line break", ns: []Notification{{Webhook: hook, Headers: PlainValues(map[string]string{"X-Token": "a\r\nX-Evil: 1"})}},
			want: []string{"notifications[0].headers.X-Token: must not contain line breaks"}},
		{name: "unknown event", ns: []Notification{{Webhook: hook}, {Webhook: hook, Events: []string{EventFailed, "exploded"}}},
			want: []string{`notifications[1].events[1]: "exploded" is not one of ` + strings.Join(NotifyEvents, ", ")}},
		{name: "duplicate event", ns: []Notification{{Webhook: hook, Events: []string{EventFailed, EventSucceeded, EventFailed}}},
			want: []string{`notifications[0].events[2]: "failed" is listed twice`}},
		{name: "duplicate name", ns: []Notification{{Name: "ops", Webhook: hook}, {Name: "ops", Slack: slack}},
			want: []string{`notifications[1].name: "ops" is used twice`}},
		{name: "every problem", ns: []Notification{{Slack: "nope", Headers: PlainValues(map[string]string{"X-A": "1"}), Events: []string{"x", "x"}}},
			want: []string{
				"notifications[0].slack: must be",
				"notifications[0].headers: only applies to webhook",
				`notifications[0].events[0]: "x" is not one of`,
				`notifications[0].events[1]: "x" is not one of`,
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			add := func(field, format string, args ...any) {
				got = append(got, field+": "+fmt.Sprintf(format, args...))
			}
			ValidateNotifications(add, "notifications", tt.ns)
			if len(got) != len(tt.want) {
				t.Fatalf("problems %q; want %q", got, tt.want)
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(got[i], w) {
					t.Errorf("problem %d = %q; want it to start with %q", i, got[i], w)
				}
			}
			for _, p := range got {
				if strings.Contains(p, "secret") {
					t.Errorf("problem %q prints the URL", p)
				}
			}
		})
	}
}

func TestNotificationWants(t *testing.T) {
	all := Notification{Webhook: "http://x"}
	some := Notification{Webhook: "http://x", Events: []string{EventFailed, EventRolledBack}}
	for _, ev := range NotifyEvents {
		if !all.Wants(ev) {
			t.Errorf("no events: Wants(%q) = false", ev)
		}
		want := ev == EventFailed || ev == EventRolledBack
		if some.Wants(ev) != want {
			t.Errorf("Wants(%q) = %v; want %v", ev, !want, want)
		}
	}
}

func TestNotificationLabel(t *testing.T) {
	tests := []struct {
		n    Notification
		i    int
		want string
	}{
		{Notification{Webhook: "http://x"}, 0, "webhook[0]"},
		{Notification{Slack: "http://x"}, 2, "slack[2]"},
		{Notification{Name: "ops", Slack: "http://x"}, 2, "ops"},
	}
	for _, tt := range tests {
		if got := tt.n.Label(tt.i); got != tt.want {
			t.Errorf("%+v.Label(%d) = %q; want %q", tt.n, tt.i, got, tt.want)
		}
	}
}
