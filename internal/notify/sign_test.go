package notify

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stagecraft/stagecraft/internal/spec"
)

// receiver is a webhook receiver as the docs tell one to be written: it
// verifies each delivery's signature against its keys and its clock, and
// drops repeats by Idempotency-Key. It keeps the raw deliveries so a test
// can replay or alter them.
type receiver struct {
	srv  *httptest.Server
	keys [][]byte
	now  time.Time

	mu       sync.Mutex
	seen     map[string]bool
	accepted int
	refused  []error
	raw      []*http.Request
	bodies   [][]byte
}

func newReceiver(t *testing.T, keys ...[]byte) *receiver {
	r := &receiver{keys: keys, now: at, seen: map[string]bool{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
		r.mu.Lock()
		defer r.mu.Unlock()
		r.raw, r.bodies = append(r.raw, req.Clone(context.Background())), append(r.bodies, body)
		if err := Verify(r.keys, req.Header, body, r.now, DefaultTolerance); err != nil {
			r.refused = append(r.refused, err)
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		if key := req.Header.Get("Idempotency-Key"); r.seen[key] {
			r.refused = append(r.refused, errors.New("repeat of "+key))
			w.WriteHeader(http.StatusOK) // already handled: the sender may stop
			return
		}
		r.seen[req.Header.Get("Idempotency-Key")] = true
		r.accepted++
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// resend posts delivery i again, with its headers, body changed by alter.
func (r *receiver) resend(t *testing.T, i int, alter func(h http.Header, body []byte) []byte) int {
	t.Helper()
	r.mu.Lock()
	h, body := r.raw[i].Header.Clone(), bytes.Clone(r.bodies[i])
	r.mu.Unlock()
	if alter != nil {
		body = alter(h, body)
	}
	req, _ := http.NewRequest(http.MethodPost, r.srv.URL+"/hook", bytes.NewReader(body))
	req.Header = h
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

func (r *receiver) counts() (accepted int, refused []error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.accepted, append([]error(nil), r.refused...)
}

var (
	keyOld = []byte(strings.Repeat("o", MinSigningKey))
	keyNew = []byte(strings.Repeat("n", MinSigningKey))
)

func TestSignedWebhookIsVerifiedAndReplaysAreRefused(t *testing.T) {
	r := newReceiver(t, keyOld)
	s := &Sender{SigningKeys: [][]byte{keyNew, keyOld}, Now: func() time.Time { return at }}
	hook := spec.Notification{Webhook: r.srv.URL + "/hook"}
	if err := s.Send(context.Background(), hook, releaseEvent()); err != nil {
		t.Fatalf("signed delivery (new and old key, the receiver knows the old): %v", err)
	}
	if acc, ref := r.counts(); acc != 1 || len(ref) != 0 {
		t.Fatalf("accepted %d, refused %v; want 1 accepted", acc, ref)
	}

	// The same delivery again, inside the tolerance: a repeat, dropped.
	r.resend(t, 0, nil)
	// An altered body, an altered timestamp, a signature removed.
	if code := r.resend(t, 0, func(_ http.Header, b []byte) []byte {
		return bytes.Replace(b, []byte("rolled_back"), []byte("succeeded"), 1)
	}); code != http.StatusUnauthorized {
		t.Errorf("altered body: status %d, want 401", code)
	}
	if code := r.resend(t, 0, func(h http.Header, b []byte) []byte {
		h.Set(HeaderTimestamp, strconv.FormatInt(at.Add(time.Minute).Unix(), 10)) // within the tolerance
		return b
	}); code != http.StatusUnauthorized {
		t.Errorf("altered timestamp: status %d, want 401", code)
	}
	if code := r.resend(t, 0, func(h http.Header, b []byte) []byte {
		h.Del(HeaderSignature)
		return b
	}); code != http.StatusUnauthorized {
		t.Errorf("signature removed: status %d, want 401", code)
	}
	// The same delivery replayed later than the tolerance.
	r.mu.Lock()
	r.now = at.Add(DefaultTolerance + time.Second)
	r.mu.Unlock()
	if code := r.resend(t, 0, nil); code != http.StatusUnauthorized {
		t.Errorf("replayed after the tolerance: status %d, want 401", code)
	}

	acc, ref := r.counts()
	if acc != 1 {
		t.Errorf("accepted %d deliveries, want only the first", acc)
	}
	want := []string{"repeat of ", ErrBadSignature.Error(), ErrBadSignature.Error(), ErrUnsigned.Error(), ErrStaleDelivery.Error()}
	if len(ref) != len(want) {
		t.Fatalf("refused %v; want %d refusals", ref, len(want))
	}
	for i, w := range want {
		if !strings.Contains(ref[i].Error(), w) {
			t.Errorf("refusal %d: %v, want %q", i, ref[i], w)
		}
	}
}

func TestUnsignedWebhookIsRefusedBySigningReceiver(t *testing.T) {
	r := newReceiver(t, keyOld)
	err := (&Sender{}).Send(context.Background(), spec.Notification{Webhook: r.srv.URL + "/hook"}, releaseEvent())
	var perm *PermanentError
	if !errors.As(err, &perm) {
		t.Fatalf("unsigned delivery: %v, want the receiver's 401 as a permanent error", err)
	}
	if _, ref := r.counts(); len(ref) != 1 || !errors.Is(ref[0], ErrUnsigned) {
		t.Errorf("refused %v, want ErrUnsigned", ref)
	}
	// A sender with another key is refused too.
	err = (&Sender{SigningKeys: [][]byte{keyNew}, Now: func() time.Time { return at }}).Send(context.Background(),
		spec.Notification{Webhook: r.srv.URL + "/hook"}, releaseEvent())
	if !errors.As(err, &perm) {
		t.Fatalf("delivery signed with a key the receiver does not have: %v, want 401", err)
	}
}

func TestSlackIsNotSigned(t *testing.T) {
	rec := newRecorder(t, http.StatusOK)
	s := &Sender{SigningKeys: [][]byte{keyNew}}
	if err := s.Send(context.Background(), spec.Notification{Slack: rec.url()}, releaseEvent()); err != nil {
		t.Fatal(err)
	}
	if h := rec.only(t).header; h.Get(HeaderSignature) != "" || h.Get(HeaderTimestamp) != "" {
		t.Errorf("a Slack message carries signature headers: %v", h)
	}
}

// A spec's headers cannot forge or drop the worker's signature.
func TestSpecHeadersCannotReplaceTheSignature(t *testing.T) {
	r := newReceiver(t, keyOld)
	s := &Sender{SigningKeys: [][]byte{keyOld}, Now: func() time.Time { return at }}
	hook := spec.Notification{Webhook: r.srv.URL + "/hook", Headers: spec.PlainValues(map[string]string{
		HeaderSignature: "v1=00", HeaderTimestamp: "1"})}
	if err := s.Send(context.Background(), hook, releaseEvent()); err != nil {
		t.Fatalf("signed delivery with spec headers of the same names: %v", err)
	}
}

func TestReadSigningKeys(t *testing.T) {
	dir := t.TempDir()
	short, good := dir+"/short", dir+"/good"
	if err := writeFile(short, "tooshort\n"); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(good, strings.Repeat("k", 64)+"\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadSigningKeys([]string{short}); err == nil || !strings.Contains(err.Error(), "8 bytes, want at least 32") {
		t.Errorf("short key: %v", err)
	}
	if _, err := ReadSigningKeys([]string{dir + "/missing"}); err == nil {
		t.Error("missing key file accepted")
	}
	keys, err := ReadSigningKeys([]string{good})
	if err != nil || len(keys) != 1 || len(keys[0]) != 64 {
		t.Errorf("good key: %d keys, %v", len(keys), err)
	}
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }
