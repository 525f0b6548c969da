package health

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stagecraft/stagecraft/internal/spec"
)

// TestHeaderReferencesResolvedInTheCheck: a check header given as a
// reference is read when the check runs and sent; the result (what goes to
// history and the audit trail) holds no value (review finding 14).
func TestHeaderReferencesResolvedInTheCheck(t *testing.T) {
	t.Setenv("STAGECRAFT_TEST_PROBE_TOKEN", "Bearer s3cret-from-env")
	file := filepath.Join(t.TempDir(), "tenant")
	if err := os.WriteFile(file, []byte("tenant-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var got http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		w.WriteHeader(http.StatusUnauthorized)
	}))
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	check := httpCheck("auth", "http://{{.Address}}/", func(h *spec.HTTPCheck) {
		h.Headers = map[string]spec.SecretValue{
			"Authorization": {Ref: &spec.SecretRef{FromEnv: "STAGECRAFT_TEST_PROBE_TOKEN"}},
			"X-Tenant":      {Ref: &spec.SecretRef{FromFile: file}},
			"X-Plain":       spec.Plain("plain"),
		}
	})
	r := checkerWith(nil).Round(context.Background(), []spec.Check{check}, nil, []string{addr})
	if got.Get("Authorization") != "Bearer s3cret-from-env" || got.Get("X-Tenant") != "tenant-from-file" || got.Get("X-Plain") != "plain" {
		t.Fatalf("headers received: %v", got)
	}
	b, _ := json.Marshal(struct {
		R     Round
		Check spec.Check
	}{r, check})
	if strings.Contains(string(b), "s3cret") || strings.Contains(string(b), "tenant-from-file") {
		t.Errorf("a resolved value is in the round or the check as encoded: %s", b)
	}

	check.HTTP.Headers = map[string]spec.SecretValue{"Authorization": {Ref: &spec.SecretRef{FromEnv: "STAGECRAFT_TEST_UNSET"}}}
	r = checkerWith(nil).Round(context.Background(), []spec.Check{check}, nil, []string{addr})
	if res := r.Results[0]; res.Verdict != Failed || !strings.Contains(res.Error, `header Authorization: environment variable "STAGECRAFT_TEST_UNSET" is not set on the worker`) {
		t.Errorf("unset reference: %+v; want failed naming the header and the variable", res)
	}
}
