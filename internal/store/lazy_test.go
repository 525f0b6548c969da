package store

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/stagecraft/stagecraft/internal/audit"
)

// fakeOpen opens a store when up says the database answers this attempt
// (counted from 1), and fails otherwise. The store is on a pool that has not
// connected (pgxpool dials on first use, and an empty batch uses none), so
// no PostgreSQL is needed.
type fakeOpen struct {
	up       func(attempt int32) bool
	attempts atomic.Int32
}

func (f *fakeOpen) open(t *testing.T) func(context.Context) (*Store, error) {
	return func(ctx context.Context) (*Store, error) {
		if !f.up(f.attempts.Add(1)) {
			return nil, errors.New("connection refused")
		}
		pool, err := pgxpool.New(ctx, "postgres://stagecraft@127.0.0.1:1/none")
		require.NoError(t, err)
		return &Store{pool: pool}, nil
	}
}

func newTestLazy(t *testing.T, f *fakeOpen) (*Lazy, *observer.ObservedLogs) {
	core, logs := observer.New(zap.InfoLevel)
	l := newLazy(zap.New(core), f.open(t))
	l.backoff, l.maxBackoff = time.Millisecond, 4*time.Millisecond
	t.Cleanup(l.Close)
	return l, logs
}

// messages returns the logged messages with the level.
func messages(logs *observer.ObservedLogs) []string {
	var out []string
	for _, e := range logs.All() {
		out = append(out, e.Level.String()+": "+e.Message)
	}
	return out
}

// TestLazyConnectsAfterFailures: writes fail with ErrNotConnected until an
// attempt succeeds; each failed attempt is logged with its number, and
// start returns once connected.
func TestLazyConnectsAfterFailures(t *testing.T) {
	f := &fakeOpen{up: func(attempt int32) bool { return attempt == 3 }}
	l, logs := newTestLazy(t, f)
	require.ErrorIs(t, l.Write(context.Background(), audit.Batch{}), ErrNotConnected, "not connected: even an empty batch")

	l.start(context.Background(), time.Minute)

	require.EqualValues(t, 3, f.attempts.Load())
	require.NoError(t, l.Write(context.Background(), audit.Batch{}), "connected: the write goes to the store")
	require.Equal(t, []string{
		"warn: audit store unavailable; rollouts run, audit writes wait for it",
		"warn: audit store unavailable; rollouts run, audit writes wait for it",
		"info: audit trail on (PostgreSQL)",
	}, messages(logs))
	for i, e := range logs.FilterMessageSnippet("unavailable").All() {
		require.Equal(t, int64(i+1), e.ContextMap()["attempt"])
		require.Equal(t, "connection refused", e.ContextMap()["error"])
	}
}

// TestLazyStartsWithoutTheDatabase: with the database down, start returns
// after its wait saying so, and the store connects later, when the
// database answers.
func TestLazyStartsWithoutTheDatabase(t *testing.T) {
	var up atomic.Bool
	f := &fakeOpen{up: func(int32) bool { return up.Load() }}
	l, logs := newTestLazy(t, f)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l.start(ctx, 20*time.Millisecond)
	require.Contains(t, messages(logs), "warn: starting without the audit store; it connects when PostgreSQL answers")
	require.ErrorIs(t, l.Write(ctx, audit.Batch{}), ErrNotConnected)

	up.Store(true)
	require.Eventually(t, func() bool { return logs.FilterMessage("audit trail on (PostgreSQL)").Len() == 1 },
		10*time.Second, time.Millisecond)
	require.NoError(t, l.Write(ctx, audit.Batch{}))
}

// TestLazyStopsWithItsContext: once ctx ends, no more attempts; the store
// stays unconnected and Close has nothing to close.
func TestLazyStopsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	f := &fakeOpen{up: func(attempt int32) bool {
		if attempt == 4 {
			cancel()
		}
		return false
	}}
	l, _ := newTestLazy(t, f)
	l.connect(ctx) // returns (a connect that went on would time the test out)
	require.EqualValues(t, 4, f.attempts.Load(), "the attempt that saw the end was the last")
	require.ErrorIs(t, l.Write(context.Background(), audit.Batch{}), ErrNotConnected)
	l.Close()
}
