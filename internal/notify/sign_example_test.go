package notify_test

import (
	"io"
	"net/http"
	"os"
	"time"

	"github.com/stagecraft/stagecraft/internal/notify"
)

// A receiver checks each delivery's signature with the secrets it shares
// with the worker (during a rotation, the old and the new one), refuses
// deliveries outside the tolerance, and drops repeats by Idempotency-Key.
func ExampleVerify() {
	secrets := [][]byte{[]byte(os.Getenv("STAGECRAFT_WEBHOOK_SECRET"))}
	seen := map[string]bool{} // keep it as long as the tolerance, in a real receiver
	http.HandleFunc("/stagecraft", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "read", http.StatusBadRequest)
			return
		}
		if err := notify.Verify(secrets, r.Header, body, time.Now(), notify.DefaultTolerance); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		if key := r.Header.Get("Idempotency-Key"); !seen[key] {
			seen[key] = true
			// handle the event in body (JSON, see notify.Event)
		}
		w.WriteHeader(http.StatusNoContent)
	})
}
