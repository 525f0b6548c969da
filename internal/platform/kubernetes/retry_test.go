package kubernetes

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func TestRetryTransient(t *testing.T) {
	var calls atomic.Int32
	var bodies []string
	codes := []int{500, 503, 200}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies = append(bodies, string(b))
		n := int(calls.Add(1)) - 1
		w.WriteHeader(codes[min(n, len(codes)-1)])
	}))
	defer srv.Close()
	c := &http.Client{Transport: retryTransient{next: http.DefaultTransport}}

	req, _ := http.NewRequest(http.MethodPut, srv.URL, strings.NewReader(`{"spec":1}`))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || calls.Load() != 3 {
		t.Fatalf("status %d after %d calls; want 200 after 3", resp.StatusCode, calls.Load())
	}
	for i, b := range bodies {
		if b != `{"spec":1}` {
			t.Errorf("attempt %d sent body %q", i+1, b)
		}
	}

	// A conflict is the caller's to handle; persistent 500s end after the
	// retries with the last answer.
	calls.Store(0)
	codes = []int{409}
	resp, err = c.Get(srv.URL)
	if err != nil || resp.StatusCode != 409 || calls.Load() != 1 {
		t.Fatalf("409: %v %v after %d calls", err, resp, calls.Load())
	}
	resp.Body.Close()
	calls.Store(0)
	codes = []int{500}
	resp, err = c.Get(srv.URL)
	if err != nil || resp.StatusCode != 500 || calls.Load() != transientRetries+1 {
		t.Fatalf("500s: %v after %d calls; want %d", err, calls.Load(), transientRetries+1)
	}
	resp.Body.Close()
}
