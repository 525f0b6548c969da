package client_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/stagecraft/stagecraft/client"
)

// A receiver checks each delivery's signature with the secrets it shares
// with the worker (during a rotation, the old and the new one), refuses
// deliveries outside the tolerance, and drops repeats by Idempotency-Key.
func ExampleVerifyWebhook() {
	secrets := [][]byte{[]byte(os.Getenv("STAGECRAFT_WEBHOOK_SECRET"))}
	seen := map[string]bool{} // in a real receiver: shared, kept for the tolerance
	http.HandleFunc("/stagecraft", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "read", http.StatusBadRequest)
			return
		}
		if err := client.VerifyWebhook(secrets, r.Header, body, time.Now(), client.WebhookTolerance); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var ev client.WebhookEvent
		if err := json.Unmarshal(body, &ev); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if key := r.Header.Get("Idempotency-Key"); !seen[key] {
			seen[key] = true
			// act on ev.Kind, ev.WorkflowID, ev.Reason ...
		}
		w.WriteHeader(http.StatusNoContent)
	})
}
