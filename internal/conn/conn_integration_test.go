//go:build integration

package conn

import (
	"context"
	"strings"
	"testing"

	"go.temporal.io/sdk/client"

	"github.com/stagecraft/stagecraft/internal/itest"
)

// TestTLSAndMutualTLS connects to a real dev server through a TLS proxy on
// 127.0.0.1 that wants a client certificate: the right CA, certificate and
// server name connect; a wrong CA, no client certificate or a wrong server
// name fail with an error that says what to look at.
func TestTLSAndMutualTLS(t *testing.T) {
	ctx := context.Background()
	srv, err := itest.DevServer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	p := itest.StartTLSProxy(t, srv.FrontendHostPort(), true)

	dial := func(args ...string) (client.Client, error) {
		t.Helper()
		c, err := parse(t, nil, append([]string{"--address", p.Addr}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		opts, err := c.Options()
		if err != nil {
			t.Fatal(err)
		}
		tc, err := client.DialContext(ctx, opts)
		if err != nil {
			return nil, DialError(opts, err)
		}
		return tc, nil
	}
	mtls := []string{"--tls-ca-path", p.CA, "--tls-cert-path", p.ClientCert, "--tls-key-path", p.ClientKey}

	tc, err := dial(append(mtls, "--tls-server-name", p.ServerName)...)
	if err != nil {
		t.Fatalf("mTLS with the right CA: %v", err)
	}
	if _, err := tc.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
		t.Fatalf("health over mTLS: %v", err)
	}
	tc.Close()
	if _, err := dial(mtls...); err != nil {
		t.Fatalf("mTLS to 127.0.0.1 (an IP SAN): %v", err)
	}

	for _, tc := range []struct {
		what string
		args []string
		want []string
	}{
		{"a wrong CA", []string{"--tls-ca-path", p.OtherCA, "--tls-cert-path", p.ClientCert, "--tls-key-path", p.ClientKey},
			[]string{"certificate signed by unknown authority", "check --tls-ca-path"}},
		{"no client certificate", []string{"--tls-ca-path", p.CA},
			[]string{"client certificate", "--tls-cert-path"}},
		{"a wrong server name", append(mtls, "--tls-server-name", "elsewhere.example"),
			[]string{"elsewhere.example", "--tls-server-name"}},
	} {
		c, err := dial(tc.args...)
		if err == nil {
			c.Close()
			t.Errorf("%s: connected", tc.what)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not say %q", tc.what, err, w)
			}
		}
		t.Logf("%s: %v", tc.what, err)
	}
	if p.Handshakes() < 2 {
		t.Errorf("%d TLS handshakes through the proxy", p.Handshakes())
	}
}
