package kubernetes

import (
	"net/http"
	"time"
)

// transientRetries and transientBackoff bound how a request the API server
// answered with a transient error (500, 502, 503, 504) is sent again.
const (
	transientRetries = 4
	transientBackoff = 100 * time.Millisecond
)

// retryTransient sends a request again, after a short backoff, when the API
// server answers it with a transient server error, so one flaky answer does
// not throw away a whole converge attempt. Sending again is safe for every
// request this package makes: a write carries a resourceVersion (a repeat
// of one that was applied gets 409 Conflict, which the converge re-reads
// and finds done), a create of an existing object gets AlreadyExists, a
// delete carries a UID precondition. client-go itself already waits out
// 429 answers with a Retry-After.
type retryTransient struct{ next http.RoundTripper }

func (r retryTransient) RoundTrip(req *http.Request) (*http.Response, error) {
	wait := transientBackoff
	for attempt := 0; ; attempt++ {
		resp, err := r.next.RoundTrip(req)
		if err != nil || attempt == transientRetries || !transientStatus(resp.StatusCode) {
			return resp, err
		}
		if req.Body != nil && req.GetBody == nil {
			return resp, nil // the body cannot be sent again
		}
		resp.Body.Close()
		t := time.NewTimer(wait)
		select {
		case <-req.Context().Done():
			t.Stop()
			return nil, req.Context().Err()
		case <-t.C:
		}
		wait *= 2
		if req.GetBody != nil {
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			req = req.Clone(req.Context())
			req.Body = body
		}
	}
}

func transientStatus(code int) bool {
	switch code {
	case http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}
