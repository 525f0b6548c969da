package spec

import (
	"fmt"
	"net/textproto"
	"net/url"
	"slices"
	"strings"
)

// Notification events.
const (
	EventStarted        = "started"
	EventPaused         = "paused"
	EventApprovalNeeded = "approval_needed"
	EventFailed         = "failed"
	EventRolledBack     = "rolled_back"
	EventRollbackFailed = "rollback_failed"
	EventSucceeded      = "succeeded"
	EventRejected       = "rejected"
)

// NotifyEvents lists them all, in the order above.
var NotifyEvents = []string{
	EventStarted, EventPaused, EventApprovalNeeded, EventFailed,
	EventRolledBack, EventRollbackFailed, EventSucceeded, EventRejected,
}

// Notification is one place to tell about a rollout's or release's events.
type Notification struct {
	// Name identifies the target in messages and errors; without it the
	// target is named by its kind and index, e.g. "slack[1]".
	Name string `json:"name,omitempty"`
	// Webhook is a generic target: the event is POSTed to it as JSON.
	Webhook string `json:"webhook,omitempty"`
	// WebhookFrom is a webhook URL the worker reads when it sends
	// ({fromEnv: VAR} or {fromFile: /path}), for URLs that hold a
	// credential: only the reference is in the spec and in history.
	WebhookFrom *SecretRef `json:"webhookFrom,omitempty"`
	// Slack is a Slack incoming-webhook URL. It is a secret: it is never
	// printed, in problems or errors; but it is in the spec and in
	// workflow history, so prefer SlackFrom.
	Slack string `json:"slack,omitempty"`
	// SlackFrom is a Slack incoming-webhook URL the worker reads when it
	// sends ({fromEnv: VAR} or {fromFile: /path}).
	SlackFrom *SecretRef `json:"slackFrom,omitempty"`
	// Headers are extra request headers (webhook only); a value is a
	// string or a reference the worker resolves when it sends
	// ({fromEnv: VAR}, {fromFile: /path}).
	Headers map[string]SecretValue `json:"headers,omitempty"`
	// Events selects the events sent; empty means all.
	Events []string `json:"events,omitempty"`
}

// Wants reports whether the target is told about event.
func (n Notification) Wants(event string) bool {
	return len(n.Events) == 0 || slices.Contains(n.Events, event)
}

// Label names the target at index i: its Name, or its kind and index.
func (n Notification) Label(i int) string {
	if n.Name != "" {
		return n.Name
	}
	kind := "webhook"
	if n.IsSlack() {
		kind = "slack"
	}
	return fmt.Sprintf("%s[%d]", kind, i)
}

// IsSlack reports whether the target is Slack (Slack or SlackFrom).
func (n Notification) IsSlack() bool { return n.Slack != "" || n.SlackFrom != nil }

// IsWebhook reports whether the target is a webhook (Webhook or
// WebhookFrom).
func (n Notification) IsWebhook() bool { return n.Webhook != "" || n.WebhookFrom != nil }

// reservedHeaders are set by the sender itself.
// The signature headers are reserved too, under RulesBoundaries
// (signatureHeaders).
var reservedHeaders = []string{"Content-Type", "Content-Length", "Host", "Idempotency-Key", "User-Agent"}

// ValidateNotifications reports, through add, every problem with ns, each
// under field (e.g. "notifications[1].events[0]").
func ValidateNotifications(add func(field, format string, args ...any), field string, ns []Notification) {
	names := map[string]bool{}
	for i, n := range ns {
		f := fmt.Sprintf("%s[%d]", field, i)
		var set []string
		for _, t := range []struct {
			name string
			on   bool
		}{{"webhook", n.Webhook != ""}, {"webhookFrom", n.WebhookFrom != nil}, {"slack", n.Slack != ""}, {"slackFrom", n.SlackFrom != nil}} {
			if t.on {
				set = append(set, t.name)
			}
		}
		switch {
		case len(set) > 1:
			add(f, "only one of webhook, webhookFrom, slack and slackFrom may be set (%s are)", strings.Join(set, ", "))
		case n.Webhook != "":
			notifyURL(add, f+".webhook", n.Webhook)
		case n.Slack != "":
			notifyURL(add, f+".slack", n.Slack)
		case n.WebhookFrom != nil:
			validateWorkerRef(add, f+".webhookFrom", *n.WebhookFrom)
		case n.SlackFrom != nil:
			validateWorkerRef(add, f+".slackFrom", *n.SlackFrom)
		default:
			add(f, "one of webhook, webhookFrom, slack or slackFrom is required")
		}
		if n.Name != "" {
			if names[n.Name] {
				add(f+".name", "%q is used twice", n.Name)
			}
			names[n.Name] = true
		}
		if len(n.Headers) > 0 && !n.IsWebhook() {
			add(f+".headers", "only applies to webhook")
		}
		for _, k := range sortedKeys(n.Headers) {
			switch {
			case !isToken(k):
				add(f+".headers", "%q is not a header name", k)
			case slices.Contains(reservedHeaders, textproto.CanonicalMIMEHeaderKey(k)):
				add(f+".headers."+k, "is set by stagecraft")
			case n.Headers[k].Ref == nil && strings.ContainsAny(n.Headers[k].Value, "\r\n\x00"):
				// The value may be a credential: name the header only.
				add(f+".headers."+k, "must not contain line breaks or NUL")
			}
		}
		validateHeaderRefs(add, f+".headers", n.Headers)
		seen := map[string]bool{}
		for j, ev := range n.Events {
			fj := fmt.Sprintf("%s.events[%d]", f, j)
			switch {
			case !slices.Contains(NotifyEvents, ev):
				add(fj, "%q is not one of %s", ev, strings.Join(NotifyEvents, ", "))
			case seen[ev]:
				add(fj, "%q is listed twice", ev)
			}
			seen[ev] = true
		}
	}
}

// notifyURL checks a target URL without printing it: a Slack webhook URL
// is a credential, and validation problems end up in logs and histories.
func notifyURL(add func(string, string, ...any), field, raw string) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		add(field, "must be an absolute http(s) URL with a host")
	}
}

// isToken reports whether s is an HTTP token (RFC 9110), as header names are.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
		if !ok {
			return false
		}
	}
	return true
}
