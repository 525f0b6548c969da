package codec

import (
	"crypto/subtle"
	"net/http"
	"slices"

	"go.temporal.io/sdk/converter"
)

// MaxRequest bounds a codec request's body: a batch of payloads, each at
// most Temporal's 2 MiB.
const MaxRequest = 8 << 20

// ServerOptions say who a codec server answers.
type ServerOptions struct {
	// Token, when set, must come in the Authorization header as it is
	// (the temporal CLI's --codec-auth sends it so: "Bearer s3cret").
	Token string
	// Origins may call it from a browser (the Web UI's origin, e.g.
	// http://127.0.0.1:8233); others get no CORS headers.
	Origins []string
}

// Handler answers Temporal's remote codec protocol (POST .../encode and
// .../decode, a JSON Payloads body) with c: the Web UI and the temporal
// CLI show what c seals as it was sent. Requests without the token, when
// one is set, get 401 and learn nothing.
func Handler(c *Codec, o ServerOptions) http.Handler {
	codec := converter.NewPayloadCodecHTTPHandler(c)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if origin := r.Header.Get("Origin"); origin != "" && slices.Contains(o.Origins, origin) {
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
			h.Set("Access-Control-Allow-Headers", "Content-Type, X-Namespace, Authorization")
			h.Set("Access-Control-Allow-Credentials", "true")
			h.Add("Vary", "Origin")
		}
		if r.Method == http.MethodOptions {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if o.Token != "" && subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte(o.Token)) != 1 {
			http.Error(w, "codec: unauthorized", http.StatusUnauthorized)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxRequest)
		codec.ServeHTTP(w, r)
	})
}
