package main

import (
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

// The stop timeout reaches the SDK worker (whose default, 0, cancels
// running activities at once on SIGTERM): from the flag's default, from
// STAGECRAFT_STOP_TIMEOUT, or from the flag, which wins over the env.
func TestStopTimeoutReachesTheWorker(t *testing.T) {
	parse := func(args ...string) (time.Duration, error) {
		var cfg config
		f := pflag.NewFlagSet("worker", pflag.ContinueOnError)
		f.DurationVar(&cfg.stopTimeout, "stop-timeout", defaultStopTimeout, "")
		require.NoError(t, f.Parse(args))
		if err := stopTimeoutFromEnv(f, &cfg.stopTimeout); err != nil {
			return 0, err
		}
		return workerOptions(cfg, zap.NewNop()).WorkerStopTimeout, nil
	}
	d, err := parse()
	require.NoError(t, err)
	require.Equal(t, 50*time.Second, d)

	t.Setenv("STAGECRAFT_STOP_TIMEOUT", "20s")
	d, err = parse()
	require.NoError(t, err)
	require.Equal(t, 20*time.Second, d)
	d, err = parse("--stop-timeout", "5s")
	require.NoError(t, err)
	require.Equal(t, 5*time.Second, d)

	t.Setenv("STAGECRAFT_STOP_TIMEOUT", "fifty")
	_, err = parse()
	require.EqualError(t, err, `STAGECRAFT_STOP_TIMEOUT "fifty": not a duration like 50s`)
}
