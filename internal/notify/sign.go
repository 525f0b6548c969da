package notify

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// Headers of a signed webhook delivery. The signature is HMAC-SHA256, keyed
// by a secret the worker's operator holds (never the spec), over the
// timestamp, a dot and the body as sent: "1796279255.{...}". One "v1="
// value per signing key, comma-separated, so a receiver keeps accepting
// deliveries while the keys rotate.
const (
	HeaderTimestamp = "X-Stagecraft-Timestamp"
	HeaderSignature = "X-Stagecraft-Signature"
)

// DefaultTolerance is how far a delivery's timestamp may be from the
// receiver's clock: older ones are replays. Within it, a receiver drops
// repeats by the Idempotency-Key header (the event's key, also in the
// signed body), as it must anyway, since a delivery is retried.
const DefaultTolerance = 5 * time.Minute

// MinSigningKey is the shortest signing secret accepted, in bytes.
const MinSigningKey = 32

// Signature is the value of HeaderSignature for body sent at ts, signed
// by each of secrets.
func Signature(secrets [][]byte, ts time.Time, body []byte) string {
	sigs := make([]string, 0, len(secrets))
	for _, s := range secrets {
		sigs = append(sigs, "v1="+hex.EncodeToString(mac(s, ts.Unix(), body)))
	}
	return strings.Join(sigs, ",")
}

func mac(secret []byte, unix int64, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(strconv.FormatInt(unix, 10)))
	m.Write([]byte("."))
	m.Write(body)
	return m.Sum(nil)
}

// Errors Verify returns, wrapped.
var (
	ErrUnsigned      = errors.New("delivery not signed")
	ErrBadSignature  = errors.New("signature does not match")
	ErrStaleDelivery = errors.New("timestamp outside the tolerance")
)

// Verify checks a webhook delivery as a receiver written in Go would: its
// timestamp is within tolerance of now, and one of its signatures is the
// HMAC of timestamp and body under one of secrets (the receiver's current
// and previous keys). It compares in constant time. It does not remember
// deliveries: drop repeats by their Idempotency-Key.
func Verify(secrets [][]byte, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	ts, sigs := h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if ts == "" || sigs == "" {
		return fmt.Errorf("%w: %s or %s missing", ErrUnsigned, HeaderTimestamp, HeaderSignature)
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %s %q is not Unix seconds", ErrUnsigned, HeaderTimestamp, ts)
	}
	at := time.Unix(unix, 0)
	if d := now.Sub(at); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: sent %s, %s from now (tolerance %s)", ErrStaleDelivery, at.UTC().Format(time.RFC3339), d.Round(time.Second), tolerance)
	}
	for _, s := range secrets {
		want := mac(s, unix, body)
		for _, v := range strings.Split(sigs, ",") {
			got, ok := strings.CutPrefix(strings.TrimSpace(v), "v1=")
			if !ok {
				continue
			}
			if b, err := hex.DecodeString(got); err == nil && hmac.Equal(b, want) {
				return nil
			}
		}
	}
	return ErrBadSignature
}

// ReadSigningKeys reads webhook signing secrets from files, one secret per
// file (surrounding white space trimmed), each at least MinSigningKey
// bytes. The first signs; every one is sent, so receivers can rotate.
func ReadSigningKeys(paths []string) ([][]byte, error) {
	var keys [][]byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("webhook signing key: %w", err)
		}
		b = bytes.TrimSpace(b)
		if len(b) < MinSigningKey {
			return nil, fmt.Errorf("webhook signing key %s: %d bytes, want at least %d (e.g. openssl rand -hex 32)", p, len(b), MinSigningKey)
		}
		keys = append(keys, b)
	}
	return keys, nil
}
