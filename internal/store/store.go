// Package store keeps the audit trail (internal/audit) in PostgreSQL: plans,
// stages, events and health rounds, written idempotently in batches, and
// read back as lists and trails. The schema is a set of versioned goose
// migrations embedded in the binary; Migrate applies them.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// ErrNotFound says the store holds no such rollout.
var ErrNotFound = errors.New("rollout not found in the audit store")

// Store is the audit store on a pgx connection pool. It is safe for
// concurrent use.
type Store struct {
	pool *pgxpool.Pool
}

// Open connects to the database named by dsn (a URL or keyword/value string
// as in DATABASE_URL; TLS settings in it are honoured by pgx) and pings it.
// It does not migrate: run Migrate first.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's parse errors quote the DSN with its password masked.
		return nil, fmt.Errorf("audit store: parse DSN: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("audit store: connect to %s: %w", where(cfg.ConnConfig), err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("audit store: ping %s: %w", where(cfg.ConnConfig), err)
	}
	if err := checkEncoding(ctx, pool.QueryRow, cfg.ConnConfig); err != nil {
		pool.Close()
		return nil, err
	}
	return &Store{pool: pool}, nil
}

// ErrEncoding says the database's encoding is not UTF8: it cannot hold
// every character of what the trail records (a spec's text, a reason, a
// name), and a batch with one it lacks could never be written.
var ErrEncoding = errors.New("the audit store needs a database with ENCODING 'UTF8'")

// checkEncoding returns ErrEncoding, naming the database and its encoding,
// unless the server's encoding for the database is UTF8.
func checkEncoding(ctx context.Context, queryRow func(context.Context, string, ...any) pgx.Row, c *pgx.ConnConfig) error {
	var enc string
	if err := queryRow(ctx, "SHOW server_encoding").Scan(&enc); err != nil {
		return fmt.Errorf("audit store: read the encoding of %s: %w", where(c), err)
	}
	if enc != "UTF8" {
		return fmt.Errorf("audit store: %s is encoded %s: %w (create it with CREATE DATABASE ... ENCODING 'UTF8' TEMPLATE template0; docs/AUDIT.md)", where(c), enc, ErrEncoding)
	}
	return nil
}

// Close closes the pool, waiting for connections in use to be returned.
func (s *Store) Close() { s.pool.Close() }

// where names a database without its credentials, for error messages.
func where(c *pgx.ConnConfig) string {
	return fmt.Sprintf("database %q on %s:%d", c.Database, c.Host, c.Port)
}

//go:embed migrations/*.sql
var embedded embed.FS

// migrationTable is goose's version table. Not goose's default name, so the
// store can share a database with another application that uses goose.
const migrationTable = "stagecraft_schema_migrations"

// migrationLockID is the advisory lock that serializes concurrent Migrate
// calls (several workers starting at once); an arbitrary constant.
const migrationLockID int64 = 0x5ca9ec7af7a0d17

// Migrate applies every pending migration to the database named by dsn and
// returns the versions it applied, in order; on a migrated database it
// applies nothing and returns none. Each migration runs in a transaction;
// when one fails, Migrate returns the versions applied before it with the
// error. Concurrent callers wait for each other on an advisory lock.
func Migrate(ctx context.Context, dsn string) ([]int64, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("audit store: parse DSN: %w", err)
	}
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	// Nothing is applied to a database the store will not open.
	if err := checkEncoding(ctx, func(ctx context.Context, q string, args ...any) pgx.Row { return db.QueryRowContext(ctx, q, args...) }, cfg); err != nil {
		return nil, err
	}
	p, err := newProvider(db)
	if err != nil {
		return nil, fmt.Errorf("audit store: migrations: %w", err)
	}
	results, err := p.Up(ctx)
	if pe := (*goose.PartialError)(nil); errors.As(err, &pe) {
		results = pe.Applied
	}
	var applied []int64
	for _, r := range results {
		applied = append(applied, r.Source.Version)
	}
	if err != nil {
		return applied, fmt.Errorf("audit store: migrate %s: %w", where(cfg), err)
	}
	return applied, nil
}

// newProvider returns a goose provider over the embedded migrations that
// keeps no global state and logs nothing (Migrate's caller reports what it
// applied).
func newProvider(db *sql.DB) (*goose.Provider, error) {
	fsys, err := fs.Sub(embedded, "migrations")
	if err != nil {
		return nil, err
	}
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(migrationLockID),
		lock.WithLockTimeout(1, 300))
	if err != nil {
		return nil, err
	}
	return goose.NewProvider(goose.DialectPostgres, db, fsys,
		goose.WithTableName(migrationTable),
		goose.WithSessionLocker(locker),
		goose.WithDisableGlobalRegistry(true),
		goose.WithSlog(slog.New(slog.DiscardHandler)),
	)
}
