// Package conn holds how Stagecraft's processes (worker, starter, the
// client package's callers) connect to Temporal: address, namespace, TLS or
// mTLS and an API key. Settings load as the temporal CLI and the SDKs load
// them (envconfig: the TOML profile file, then TEMPORAL_ADDRESS,
// TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS,
// TEMPORAL_TLS_CLIENT_CERT_PATH, TEMPORAL_TLS_CLIENT_KEY_PATH,
// TEMPORAL_TLS_SERVER_CA_CERT_PATH, TEMPORAL_TLS_SERVER_NAME,
// TEMPORAL_TLS_DISABLE_HOST_VERIFICATION and the *_DATA forms), and flags
// named as the CLI names them override both.
package conn

import (
	"cmp"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/spf13/pflag"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"

	"github.com/stagecraft/stagecraft/internal/codec"
)

// Defaults when neither a profile, the environment nor a flag says.
const (
	DefaultAddress   = "127.0.0.1:7233"
	DefaultNamespace = "default"
)

// Temporal is a process's Temporal connection settings. Register its flags
// with AddFlags, then call Options.
type Temporal struct {
	fs *pflag.FlagSet

	address, namespace, apiKey, profile   string
	tls, disableHostVerification          bool
	certPath, keyPath, caPath, serverName string
	codecKeys                             string
}

// AddFlags registers the connection flags on fs.
func (t *Temporal) AddFlags(fs *pflag.FlagSet) {
	t.fs = fs
	fs.StringVar(&t.address, "address", "", "Temporal frontend host:port (env TEMPORAL_ADDRESS; default "+DefaultAddress+")")
	fs.StringVar(&t.namespace, "namespace", "", "Temporal namespace (env TEMPORAL_NAMESPACE; default "+DefaultNamespace+")")
	fs.StringVar(&t.apiKey, "api-key", "", "API key sent with every request, over TLS (env TEMPORAL_API_KEY)")
	fs.BoolVar(&t.tls, "tls", false, "connect over TLS with the system's CAs (env TEMPORAL_TLS); implied by the other --tls-* flags and by an API key")
	fs.StringVar(&t.certPath, "tls-cert-path", "", "client certificate (PEM) for mTLS (env TEMPORAL_TLS_CLIENT_CERT_PATH)")
	fs.StringVar(&t.keyPath, "tls-key-path", "", "client private key (PEM) for mTLS (env TEMPORAL_TLS_CLIENT_KEY_PATH)")
	fs.StringVar(&t.caPath, "tls-ca-path", "", "CA certificate (PEM) the server's certificate must chain to, instead of the system's (env TEMPORAL_TLS_SERVER_CA_CERT_PATH)")
	fs.StringVar(&t.serverName, "tls-server-name", "", "server name to verify the server's certificate against (env TEMPORAL_TLS_SERVER_NAME)")
	fs.BoolVar(&t.disableHostVerification, "tls-disable-host-verification", false, "do not verify the server's certificate (testing only; env TEMPORAL_TLS_DISABLE_HOST_VERIFICATION)")
	fs.StringVar(&t.codecKeys, "codec-key-file", "", "file of payload encryption keys, KEYID=BASE64 (32 bytes) per line, the first sealing (env "+codec.EnvKeyFile+", or the keys themselves comma-separated in "+codec.EnvKeys+"); every payload sent to Temporal is then AES-GCM sealed. Worker and starter need the same keys")
	fs.StringVar(&t.profile, "profile", "", "profile of the Temporal client config file (env TEMPORAL_PROFILE; file from TEMPORAL_CONFIG_FILE or ~/.config/temporalio/temporal.toml)")
}

// Profile returns the settings in effect: the config file's profile, the
// environment over it, the flags set over both, and the defaults.
func (t *Temporal) Profile() (envconfig.ClientConfigProfile, error) {
	p, err := envconfig.LoadClientConfigProfile(envconfig.LoadClientConfigProfileOptions{ConfigFileProfile: t.profile})
	if err != nil {
		return p, fmt.Errorf("temporal connection settings: %w", err)
	}
	set := func(name string) bool { return t.fs != nil && t.fs.Changed(name) }
	if set("address") {
		p.Address = t.address
	}
	if set("namespace") {
		p.Namespace = t.namespace
	}
	if set("api-key") {
		p.APIKey = t.apiKey
	}
	p.Address = cmp.Or(p.Address, DefaultAddress)
	p.Namespace = cmp.Or(p.Namespace, DefaultNamespace)
	tlsFlags := []string{"tls", "tls-cert-path", "tls-key-path", "tls-ca-path", "tls-server-name", "tls-disable-host-verification"}
	for _, name := range tlsFlags {
		if !set(name) {
			continue
		}
		if p.TLS == nil {
			p.TLS = &envconfig.ClientConfigTLS{}
		}
		switch name {
		case "tls":
			p.TLS.Disabled = !t.tls
		case "tls-cert-path":
			p.TLS.ClientCertPath, p.TLS.ClientCertData = t.certPath, nil
		case "tls-key-path":
			p.TLS.ClientKeyPath, p.TLS.ClientKeyData = t.keyPath, nil
		case "tls-ca-path":
			p.TLS.ServerCACertPath, p.TLS.ServerCACertData = t.caPath, nil
		case "tls-server-name":
			p.TLS.ServerName = t.serverName
		case "tls-disable-host-verification":
			p.TLS.DisableHostVerification = t.disableHostVerification
		}
	}
	return p, nil
}

// Options returns the client options for the settings in effect, with
// Address and Namespace always set. A TLS setting that cannot be used (a
// missing file, a key without its certificate) is an error here, before
// any connection is tried.
func (t *Temporal) Options() (client.Options, error) {
	p, err := t.Profile()
	if err != nil {
		return client.Options{}, err
	}
	opts, err := p.ToClientOptions(envconfig.ToClientOptionsRequest{})
	if err != nil {
		return client.Options{}, fmt.Errorf("temporal connection settings: %w", err)
	}
	c, err := t.Codec()
	if err != nil {
		return client.Options{}, err
	}
	if c != nil {
		opts.DataConverter = c.DataConverter()
		opts.FailureConverter = codec.FailureConverter(opts.DataConverter)
	}
	return opts, nil
}

// KeyFiles are the files holding the process's own credentials (the
// codec's keys, the TLS key and certificates), from flags and environment:
// what no spec may have the worker read.
func (t *Temporal) KeyFiles() []string {
	files := []string{t.codecKeys, t.certPath, t.keyPath, t.caPath}
	for _, env := range []string{codec.EnvKeyFile, "TEMPORAL_TLS_CLIENT_CERT_PATH", "TEMPORAL_TLS_CLIENT_KEY_PATH",
		"TEMPORAL_TLS_SERVER_CA_CERT_PATH", "TEMPORAL_CONFIG_FILE"} {
		files = append(files, os.Getenv(env))
	}
	return slices.DeleteFunc(files, func(f string) bool { return f == "" })
}

// Codec returns the payload codec configured (--codec-key-file, or the
// environment), or nil when none is.
func (t *Temporal) Codec() (*codec.Codec, error) { return codec.Load(t.codecKeys) }

// Describe says how opts connect, for logs and errors: never a key or a
// secret, only whether TLS, mTLS and an API key are in use.
func Describe(opts client.Options) string {
	how := "plaintext"
	if c := opts.ConnectionOptions.TLS; tlsOn(opts) {
		how = "TLS"
		if len(c.Certificates) > 0 {
			how = "mTLS"
		}
		if c.InsecureSkipVerify {
			how += " (server certificate not verified)"
		}
	}
	if opts.Credentials != nil {
		how += " with an API key"
	}
	if opts.DataConverter != nil {
		how += ", payloads sealed by the codec"
	}
	return fmt.Sprintf("%s, namespace %s, %s", opts.HostPort, opts.Namespace, how)
}

// DialError explains a failed connection; for a failed TLS handshake it
// says which settings to look at (gRPC reports those as text only).
func DialError(opts client.Options, err error) error {
	hint := ""
	msg := err.Error()
	switch {
	case strings.Contains(msg, "x509:") || strings.Contains(msg, "tls: failed to verify"):
		hint = "; the server's certificate did not verify: check --tls-ca-path (TEMPORAL_TLS_SERVER_CA_CERT_PATH) and --tls-server-name (TEMPORAL_TLS_SERVER_NAME)"
	case tlsOn(opts) && len(opts.ConnectionOptions.TLS.Certificates) == 0 &&
		containsAny(msg, "certificate required", "bad certificate", "broken pipe", "connection reset", "EOF"):
		// With TLS 1.3 a server that wants a client certificate hangs up
		// after the handshake: the client sees its write fail.
		hint = "; the server closed the TLS connection: if it wants a client certificate (mTLS), set --tls-cert-path and --tls-key-path (TEMPORAL_TLS_CLIENT_CERT_PATH, TEMPORAL_TLS_CLIENT_KEY_PATH)"
	case strings.Contains(msg, "tls:"):
		hint = "; the TLS handshake failed: check the --tls-* settings"
	case !tlsOn(opts) && containsAny(msg, "EOF", "connection reset", "first record does not look like"):
		hint = "; if the server wants TLS, set --tls (TEMPORAL_TLS=true) or the --tls-* settings"
	}
	return fmt.Errorf("connect to Temporal at %s: %w%s", Describe(opts), err, hint)
}

func tlsOn(opts client.Options) bool {
	return opts.ConnectionOptions.TLS != nil && !opts.ConnectionOptions.TLSDisabled
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
