package conn

import (
	"os"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func parse(t *testing.T, env map[string]string, args ...string) (*Temporal, error) {
	t.Helper()
	for _, k := range []string{"TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "TEMPORAL_API_KEY", "TEMPORAL_TLS",
		"TEMPORAL_TLS_CLIENT_CERT_PATH", "TEMPORAL_TLS_CLIENT_KEY_PATH", "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
		"TEMPORAL_TLS_SERVER_NAME", "TEMPORAL_TLS_DISABLE_HOST_VERIFICATION", "TEMPORAL_PROFILE"} {
		if v, ok := os.LookupEnv(k); ok {
			os.Unsetenv(k)
			t.Cleanup(func() { os.Setenv(k, v) })
		}
	}
	t.Setenv("TEMPORAL_CONFIG_FILE", t.TempDir()+"/none.toml")
	for k, v := range env {
		t.Setenv(k, v)
	}
	var c Temporal
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	c.AddFlags(fs)
	return &c, fs.Parse(args)
}

func TestDefaultsEnvAndFlags(t *testing.T) {
	c, err := parse(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := c.Options()
	if err != nil {
		t.Fatal(err)
	}
	if opts.HostPort != DefaultAddress || opts.Namespace != DefaultNamespace || opts.ConnectionOptions.TLS != nil || opts.Credentials != nil {
		t.Errorf("defaults: %s", Describe(opts))
	}

	c, _ = parse(t, map[string]string{"TEMPORAL_ADDRESS": "env:7233", "TEMPORAL_NAMESPACE": "prod"}, "--namespace", "staging")
	opts, err = c.Options()
	if err != nil {
		t.Fatal(err)
	}
	if opts.HostPort != "env:7233" || opts.Namespace != "staging" {
		t.Errorf("env then flags: %s", Describe(opts))
	}
}

func TestAPIKeyImpliesTLS(t *testing.T) {
	c, _ := parse(t, map[string]string{"TEMPORAL_API_KEY": "secret-key-value"}, "--address", "ns.acct.tmprl.cloud:7233")
	opts, err := c.Options()
	if err != nil {
		t.Fatal(err)
	}
	if opts.ConnectionOptions.TLS == nil || opts.Credentials == nil {
		t.Fatalf("API key without TLS: %s", Describe(opts))
	}
	if d := Describe(opts); strings.Contains(d, "secret-key-value") || !strings.Contains(d, "TLS with an API key") {
		t.Errorf("Describe = %q", d)
	}
}

func TestTLSFlagsAreCheckedBeforeDialing(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--tls-ca-path", "/nonexistent/ca.pem"}, "server CA"},
		{[]string{"--tls-cert-path", "/nonexistent/client.pem"}, "other must be present"},
		{[]string{"--tls-cert-path", "/nonexistent/c.pem", "--tls-key-path", "/nonexistent/k.pem"}, "client cert/key"},
	} {
		c, err := parse(t, nil, tc.args...)
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Options()
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "temporal connection settings") {
			t.Errorf("%v: err = %v; want it to mention %q", tc.args, err, tc.want)
		}
	}
	c, _ := parse(t, nil, "--tls")
	opts, err := c.Options()
	if err != nil || opts.ConnectionOptions.TLS == nil {
		t.Errorf("--tls: %v %s", err, Describe(opts))
	}
	c, _ = parse(t, map[string]string{"TEMPORAL_TLS": "true"}, "--tls=false")
	opts, err = c.Options()
	if err != nil || !opts.ConnectionOptions.TLSDisabled {
		t.Errorf("--tls=false over TEMPORAL_TLS=true: %v %s", err, Describe(opts))
	}
}
