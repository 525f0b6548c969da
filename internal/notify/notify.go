// Package notify tells people and systems about rollouts' and releases'
// events: a JSON POST to a webhook, or a message to a Slack incoming
// webhook. Target URLs never appear in its errors: Slack URLs are secrets.
package notify

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stagecraft/stagecraft/internal/egress"
	"github.com/stagecraft/stagecraft/internal/secrets"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// Event is one thing that happened to a rollout or a release, as sent.
type Event struct {
	// Kind is one of spec.Event*.
	Kind string `json:"event"`
	// Key is the idempotency key: the same event always has the same key
	// (workflowID/runID/kind[/n]), so receivers can drop repeats.
	Key string `json:"key"`
	// Subject is "release" or "rollout".
	Subject    string `json:"subject"`
	WorkflowID string `json:"workflowId"`
	RunID      string `json:"runId,omitempty"`
	// Name is the service's or the release's name.
	Name        string `json:"name"`
	Environment string `json:"environment,omitempty"`
	Strategy    string `json:"strategy,omitempty"`
	Platform    string `json:"platform,omitempty"`
	ImageFrom   string `json:"imageFrom,omitempty"`
	ImageTo     string `json:"imageTo,omitempty"`
	Reason      string `json:"reason,omitempty"`
	// Services holds, for a release, each service's state.
	Services []ServiceOutcome `json:"services,omitempty"`
	At       time.Time        `json:"at"`
}

// ServiceOutcome is one service's state in a release event.
type ServiceOutcome struct {
	Name  string `json:"name"`
	State string `json:"state"`
	Error string `json:"error,omitempty"`
}

var verbs = map[string]string{
	spec.EventStarted:        "started",
	spec.EventPaused:         "paused",
	spec.EventApprovalNeeded: "needs approval",
	spec.EventFailed:         "failed",
	spec.EventRolledBack:     "rolled back",
	spec.EventRollbackFailed: "failed to roll back",
	spec.EventSucceeded:      "succeeded",
	spec.EventRejected:       "was rejected",
}

// Text renders the event as one readable line, e.g.
// "release shop in prod rolled back: service api: health check failed
// (db-migrator rolled_back, api failed, web not_started)".
func (e Event) Text() string {
	var b strings.Builder
	subject := e.Subject
	if subject == "" {
		subject = "rollout"
	}
	b.WriteString(subject + " " + e.Name)
	if e.Environment != "" {
		b.WriteString(" in " + e.Environment)
	}
	verb, ok := verbs[e.Kind]
	if !ok {
		verb = strings.ReplaceAll(e.Kind, "_", " ")
	}
	b.WriteString(" " + verb)
	if r := oneLine(e.Reason); r != "" {
		b.WriteString(": " + r)
	}
	var details []string
	switch {
	case e.ImageFrom != "" && e.ImageTo != "":
		details = append(details, e.ImageFrom+" → "+e.ImageTo)
	case e.ImageTo != "":
		details = append(details, e.ImageTo)
	}
	for _, s := range e.Services {
		details = append(details, s.Name+" "+s.State)
	}
	if len(details) > 0 {
		b.WriteString(" (" + strings.Join(details, ", ") + ")")
	}
	return b.String()
}

// oneLine collapses runs of white space, line breaks included.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// PermanentError is a failure that sending again cannot fix: the target
// refused the request (a 4xx other than 408 and 429) or is misconfigured.
type PermanentError struct {
	Err error
}

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// StatusError is a target's answer other than 2xx.
type StatusError struct {
	// Target is the notification's name; Host is its URL's host, the only
	// part of the URL that may be shown.
	Target, Host string
	Code         int
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("notify %s (%s): status %d %s", e.Target, e.Host, e.Code, http.StatusText(e.Code))
}

// DefaultTimeout bounds one request when Sender has no client of its own.
const DefaultTimeout = 10 * time.Second

// maxDrain bounds the response body read before closing it, so the
// connection can be reused without trusting the target's size.
const maxDrain = 4 << 10

// newClient does not follow redirects: a redirected POST may turn into a
// GET or carry the headers (credentials) to another host. It dials
// through the egress policy, without a proxy.
func newClient(p *egress.Policy) *http.Client {
	return &http.Client{
		Timeout:       DefaultTimeout,
		Transport:     egress.Transport(p, true),
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Sender delivers events over HTTP. The zero value is ready to use.
type Sender struct {
	// Client sends the requests; nil means a client with a 10 s timeout
	// that does not follow redirects and dials through Egress. A Client
	// given here dials as its transport does: Egress does not apply to it.
	Client *http.Client
	// Egress is the worker's policy for webhook and Slack destinations;
	// nil is egress's open mode (all but link-local and cloud metadata).
	Egress *egress.Policy
	// Secrets resolves webhookFrom, slackFrom and header references when
	// sending; nil means secrets.Local.
	Secrets secrets.Resolver
	// SigningKeys sign every webhook delivery (HeaderSignature,
	// HeaderTimestamp), one signature per key; none, deliveries are
	// unsigned. Slack messages are never signed: Slack does not check.
	SigningKeys [][]byte
	// Now is the clock of the signatures' timestamps; nil means time.Now.
	Now func() time.Time

	once   sync.Once
	client *http.Client
}

// Send delivers e to n: to a webhook the event itself as JSON, with an
// Idempotency-Key header (e.Key), n's headers and, with SigningKeys, its
// signature (the signature headers, like the ones above, override n's
// headers of the same names); to Slack a message with
// e.Text(). An answer other than 2xx is an error; the ones sending again
// cannot fix are a *PermanentError.
func (s *Sender) Send(ctx context.Context, n spec.Notification, e Event) error {
	name := n.Name
	if name == "" {
		name = "webhook"
		if n.IsSlack() {
			name = "slack"
		}
	}
	targets := 0
	for _, on := range []bool{n.Webhook != "", n.WebhookFrom != nil, n.Slack != "", n.SlackFrom != nil} {
		if on {
			targets++
		}
	}
	if targets != 1 {
		return &PermanentError{Err: fmt.Errorf("notify %s: exactly one of webhook, webhookFrom, slack and slackFrom must be set", name)}
	}
	// References are resolved here, when sending: their values go into
	// the request only, never into an error or history.
	raw, headers := n.Webhook, n.Headers
	switch {
	case n.Slack != "":
		raw, headers = n.Slack, nil
	case n.SlackFrom != nil:
		raw, headers = "", nil
	}
	if ref := cmp.Or(n.WebhookFrom, n.SlackFrom); ref != nil {
		v, err := secrets.Value(s.Secrets, spec.SecretValue{Ref: ref})
		if err != nil {
			return &PermanentError{Err: fmt.Errorf("notify %s: the URL: %w", name, err)}
		}
		raw = v
	}
	slack := n.IsSlack()
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// err would print the URL.
		return &PermanentError{Err: fmt.Errorf("notify %s: the URL is not an absolute http(s) URL", name)}
	}

	var body []byte
	if slack {
		body, err = encode(map[string]string{"text": slackEscape(e.Text())})
	} else {
		body, err = encode(e)
	}
	if err != nil {
		return &PermanentError{Err: fmt.Errorf("notify %s (%s): encode: %w", name, u.Host, err)}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return &PermanentError{Err: fmt.Errorf("notify %s (%s): cannot build the request", name, u.Host)}
	}
	for _, k := range slices.Sorted(maps.Keys(headers)) {
		v, err := secrets.Value(s.Secrets, headers[k])
		if err != nil {
			return &PermanentError{Err: fmt.Errorf("notify %s (%s): header %s: %w", name, u.Host, k, err)}
		}
		req.Header.Set(k, v)
	}
	// Set after n's headers: these are not the user's to change.
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "stagecraft")
	if !slack && e.Key != "" {
		req.Header.Set("Idempotency-Key", e.Key)
	}
	if !slack && len(s.SigningKeys) > 0 {
		now := time.Now
		if s.Now != nil {
			now = s.Now
		}
		ts := now()
		req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
		req.Header.Set(HeaderSignature, Signature(s.SigningKeys, ts, body))
	}

	client := s.Client
	if client == nil {
		s.once.Do(func() { s.client = newClient(s.Egress) })
		client = s.client
	}
	resp, err := client.Do(req)
	if err != nil {
		// A *url.Error prints the whole URL; keep only its cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("notify %s (%s): %w", name, u.Host, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	_ = resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	serr := &StatusError{Target: name, Host: u.Host, Code: resp.StatusCode}
	if resp.StatusCode >= 400 && resp.StatusCode < 500 &&
		resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests {
		return &PermanentError{Err: serr}
	}
	return serr
}

// encode is json.Marshal without HTML escaping: a reason reads as written.
func encode(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// slackEscape escapes what Slack's message format reserves: &, < and >
// (https://api.slack.com/reference/surfaces/formatting#escaping).
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
