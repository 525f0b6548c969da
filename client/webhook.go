package client

import (
	"net/http"
	"time"

	"github.com/stagecraft/stagecraft/internal/notify"
)

// WebhookEvent is the JSON body of a webhook delivery.
type WebhookEvent = notify.Event

// Headers of a signed webhook delivery (a worker started with
// --webhook-signing-key-file): the Unix time of sending, and one
// "v1=" + hex(HMAC-SHA256(secret, timestamp + "." + body)) per signing key,
// comma-separated.
const (
	WebhookTimestampHeader = notify.HeaderTimestamp
	WebhookSignatureHeader = notify.HeaderSignature
)

// WebhookTolerance is how far a delivery's timestamp may be from the
// receiver's clock before VerifyWebhook calls it a replay.
const WebhookTolerance = notify.DefaultTolerance

// VerifyWebhook checks a webhook delivery: its timestamp is within
// tolerance of now and one of its signatures is the HMAC of timestamp and
// body under one of secrets (during a rotation, the old and the new one).
// It compares in constant time. It does not remember deliveries: drop
// repeats by the Idempotency-Key header, since deliveries are retried.
func VerifyWebhook(secrets [][]byte, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	return notify.Verify(secrets, h, body, now, tolerance)
}
