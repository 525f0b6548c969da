package store

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/stagecraft/stagecraft/internal/audit"
)

// ErrNotConnected is what Lazy.Write returns before the store is connected.
var ErrNotConnected = errors.New("audit store: not connected to PostgreSQL yet")

// lazyWait is how long OpenLazy waits for the first connection: with the
// database up, the store is connected before the worker polls.
const lazyWait = 10 * time.Second

// Lazy is a worker's audit store. It connects (and migrates) in the
// background, so a worker starting while PostgreSQL is down still runs
// rollouts: until it is connected, Write fails with ErrNotConnected and the
// write is retried (the workflow's audit writer without limit; watchers
// keep their rounds). Once connected, the pool reconnects by itself. It is
// safe for concurrent use.
type Lazy struct {
	st  atomic.Pointer[Store]
	log *zap.Logger
	// open connects once: migrates (unless skipped) and opens.
	open func(ctx context.Context) (*Store, error)
	// backoff is the wait after the first failed attempt, doubled after
	// each next one up to maxBackoff.
	backoff, maxBackoff time.Duration
}

// OpenLazy returns the audit store at dsn (as for Open), connecting to it
// in the background until it succeeds or ctx ends: each attempt migrates
// first unless skipMigrations, then opens. It waits up to 10 s for the
// first attempts, so it returns connected when the database is up. Close
// it when done; cancel ctx to stop the attempts.
func OpenLazy(ctx context.Context, dsn string, skipMigrations bool, log *zap.Logger) *Lazy {
	l := newLazy(log, func(ctx context.Context) (*Store, error) {
		if !skipMigrations {
			applied, err := Migrate(ctx, dsn)
			if err != nil {
				return nil, fmt.Errorf("migrations: %w", err)
			}
			log.Info("audit store migrated", zap.Int("applied", len(applied)))
		}
		return Open(ctx, dsn)
	})
	l.start(ctx, lazyWait)
	return l
}

func newLazy(log *zap.Logger, open func(context.Context) (*Store, error)) *Lazy {
	return &Lazy{log: log, open: open, backoff: time.Second, maxBackoff: 30 * time.Second}
}

// start connects in the background and waits for it up to wait.
func (l *Lazy) start(ctx context.Context, wait time.Duration) {
	connected := make(chan struct{})
	go func() {
		l.connect(ctx)
		close(connected)
	}()
	select {
	case <-connected:
	case <-time.After(wait):
		l.log.Warn("starting without the audit store; it connects when PostgreSQL answers")
	}
}

// connect opens the store, retrying with backoff until it succeeds or ctx
// ends.
func (l *Lazy) connect(ctx context.Context) {
	wait := l.backoff
	for attempt := 1; ; attempt++ {
		st, err := l.open(ctx)
		if err == nil {
			l.st.Store(st)
			l.log.Info("audit trail on (PostgreSQL)")
			return
		}
		l.log.Warn("audit store unavailable; rollouts run, audit writes wait for it", zap.Int("attempt", attempt), zap.Error(err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, l.maxBackoff)
	}
}

// Write writes b to the store (see Store.Write); ErrNotConnected before it
// is connected.
func (l *Lazy) Write(ctx context.Context, b audit.Batch) error {
	st := l.st.Load()
	if st == nil {
		return ErrNotConnected
	}
	return st.Write(ctx, b)
}

// Close closes the store if it is connected.
func (l *Lazy) Close() {
	if st := l.st.Load(); st != nil {
		st.Close()
	}
}
