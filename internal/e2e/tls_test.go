//go:build integration

package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stagecraft/stagecraft/internal/itest"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// TestRolloutOverMutualTLS runs the worker binary and the starter against
// a Temporal frontend that serves only mTLS (a TLS proxy on 127.0.0.1 in
// front of the dev server): the worker from flags, the starter from the
// TEMPORAL_TLS_* environment the temporal CLI reads. A rollout goes through
// to success; a starter with a wrong CA is refused with a clear error.
func TestRolloutOverMutualTLS(t *testing.T) {
	p := itest.StartTLSProxy(t, server.FrontendHostPort(), true)
	var logs bytes.Buffer
	w := exec.Command(workerB, "--address", p.Addr, "--log-level", "info",
		"--tls-ca-path", p.CA, "--tls-cert-path", p.ClientCert, "--tls-key-path", p.ClientKey, "--tls-server-name", p.ServerName)
	w.Stdout, w.Stderr = &logs, &logs
	require.NoError(t, w.Start())
	t.Cleanup(func() {
		_ = w.Process.Kill()
		_ = w.Wait()
		if t.Failed() {
			t.Logf("worker log:\n%s", logs.String())
		}
	})

	service := itest.Name("e2e-mtls")
	cleanup(t, service)
	s := demoSpec(service, "stagecraft-demo:v1", spec.Recreate, 1)
	file := writeSpec(t, s)
	starterTLS := func(ca string, args ...string) (string, int) {
		cmd := exec.Command(starter, args...)
		cmd.Env = append(os.Environ(), "TEMPORAL_ADDRESS="+p.Addr,
			"TEMPORAL_TLS_SERVER_CA_CERT_PATH="+ca, "TEMPORAL_TLS_CLIENT_CERT_PATH="+p.ClientCert,
			"TEMPORAL_TLS_CLIENT_KEY_PATH="+p.ClientKey, "TEMPORAL_TLS_SERVER_NAME="+p.ServerName)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else {
			require.NoError(t, err)
		}
		return string(out), code
	}

	out, code := starterTLS(p.OtherCA, "status", "deploy:docker:"+service)
	require.NotZero(t, code, out)
	require.Contains(t, out, "certificate signed by unknown authority")
	require.Contains(t, out, "--tls-ca-path")

	out, code = starterTLS(p.CA, "deploy", "-f", file, "--wait")
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "succeeded")
	require.Len(t, instances(t, service), 1)
	require.Contains(t, logs.String(), "mTLS", "the worker says how it connected")
	require.GreaterOrEqual(t, p.Handshakes(), 2, "worker and starter went through the proxy (one connection each)")
	t.Logf("rollout over mTLS: %d TLS handshakes through the proxy; starter said: %s", p.Handshakes(), strings.TrimSpace(out))
}
