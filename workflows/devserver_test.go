//go:build integration

package workflows

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	tclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"
	"go.uber.org/zap"

	"github.com/stagecraft/stagecraft/internal/logging"
)

// devServer starts a real Temporal dev server (in memory, on a free
// 127.0.0.1 port) for a test of this package's workflow code that needs
// what the time-skipped environment does not do, and stops it when the
// test ends. It is internal/itest's DevServer, which imports this package.
func devServer(t *testing.T) tclient.Client {
	t.Helper()
	bin := os.Getenv("STAGECRAFT_TEMPORAL_BIN")
	if bin == "" {
		t.Fatal("STAGECRAFT_TEMPORAL_BIN is not set: run the integration tests with `make test`, which builds the Temporal CLI and sets it")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	server, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath:  bin,
		LogLevel:      "error",
		ClientOptions: &tclient.Options{Logger: logging.Temporal(zap.NewNop())},
		ExtraArgs:     []string{"--ip", "127.0.0.1"},
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = server.Stop() })
	return server.Client()
}
