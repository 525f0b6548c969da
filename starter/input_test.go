package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// withStdin runs f with "-f -" reading data.
func withStdin(t *testing.T, data []byte, f func()) {
	t.Helper()
	old := stdin
	stdin = bytes.NewReader(data)
	defer func() { stdin = old }()
	f()
}

// TestPipedInputIsReadOnce: every verb that takes -f reads a piped spec or
// release once and parses what it read (validate used to read standard
// input twice and so report every required field missing).
func TestPipedInputIsReadOnce(t *testing.T) {
	specYAML, err := os.ReadFile("../deployments/examples/canary.yaml")
	require.NoError(t, err)
	releaseYAML, err := os.ReadFile("../deployments/examples/release.yaml")
	require.NoError(t, err)

	for _, tt := range []struct {
		name string
		data []byte
		want string // a key of the JSON validate prints
	}{{"spec", specYAML, "strategy"}, {"release", releaseYAML, "services"}} {
		t.Run("validate "+tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			withStdin(t, tt.data, func() {
				require.Equal(t, 0, run([]string{"validate", "-f", "-"}, &out, &errb), errb.String())
			})
			var got map[string]any
			require.NoError(t, json.Unmarshal(out.Bytes(), &got), out.String())
			require.Contains(t, got, tt.want)
		})
	}
	// deploy, release and plan parse what they read before they dial: with no
	// server, the failure is the connection, not the input.
	for _, tt := range []struct {
		verb string
		data []byte
		name string
	}{{"deploy", specYAML, "deploy"}, {"release", releaseYAML, "release"}, {"plan", specYAML, "plan-spec"}, {"plan", releaseYAML, "plan-release"}} {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			withStdin(t, tt.data, func() {
				code := run([]string{"--address", "127.0.0.1:1", tt.verb, "-f", "-"}, &out, &errb)
				require.NotEqual(t, 0, code)
			})
			require.NotContains(t, errb.String(), "-:", "the piped input was refused: "+errb.String())
			require.True(t, strings.Contains(errb.String(), "127.0.0.1:1"), "the failure names the server it could not reach: %s", errb.String())
		})
	}
	// Invalid piped input is refused naming the input.
	var out, errb bytes.Buffer
	withStdin(t, []byte("service: x\n"), func() {
		require.Equal(t, exitInvalid, run([]string{"validate", "-f", "-"}, &out, &errb))
	})
	require.Contains(t, errb.String(), "error: -: ")
}
