// Package store is countersign's persistence: database/sql over SQLite (modernc.org/sqlite,
// the embedded default) or PostgreSQL (pgx), with embedded migrations. It implements the
// small store interfaces that the domain packages declare and turns driver errors into
// errs kinds, so no SQL text ever reaches a client.
package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/countersign/countersign/internal/errs"
	"github.com/countersign/countersign/internal/secrets"
	"github.com/countersign/countersign/internal/store/migrations"
)

// Dialect names the SQL engine behind a DB.
type Dialect string

const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// DB is a database handle. On SQLite all writes go through one connection (SQLite has a
// single writer anyway, and queueing in Go is cheaper than SQLITE_BUSY retries) while
// reads use a pool of their own; on PostgreSQL both are the same pool.
type DB struct {
	Dialect Dialect
	w       *sql.DB
	r       *sql.DB
	ring    *secrets.Ring // seals server key material
}

// Open opens dsn: a postgres:// or postgresql:// URL selects PostgreSQL, anything else is
// a SQLite file path (created if missing). It does not migrate; call Migrate.
func Open(ctx context.Context, dsn string, ring *secrets.Ring) (*DB, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			return nil, err
		}
		db.SetMaxOpenConns(32)
		db.SetMaxIdleConns(32)
		db.SetConnMaxIdleTime(5 * time.Minute)
		if err := db.PingContext(ctx); err != nil {
			db.Close()
			return nil, fmt.Errorf("store: connect to PostgreSQL: %w", err)
		}
		return &DB{Dialect: Postgres, w: db, r: db, ring: ring}, nil
	}
	path := strings.TrimPrefix(dsn, "sqlite://")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	// synchronous(NORMAL) in WAL mode keeps the database consistent after a crash and
	// loses at most the last transactions on power loss, the usual server trade-off.
	q := url.Values{}
	for _, p := range []string{"journal_mode(WAL)", "synchronous(NORMAL)", "busy_timeout(10000)", "foreign_keys(ON)", "cache_size(-16000)"} {
		q.Add("_pragma", p)
	}
	base := "file:" + path + "?" + q.Encode()
	w, err := sql.Open("sqlite", base+"&_txlock=immediate")
	if err != nil {
		return nil, err
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("store: open SQLite %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", base+"&mode=ro")
	if err != nil {
		w.Close()
		return nil, err
	}
	n := max(4, 2*runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	r.SetConnMaxLifetime(0)
	return &DB{Dialect: SQLite, w: w, r: r, ring: ring}, nil
}

// Close closes both pools.
func (db *DB) Close() error {
	err := db.w.Close()
	if db.r != db.w {
		err = errors.Join(err, db.r.Close())
	}
	return err
}

// Migrate applies the embedded migrations. On PostgreSQL a session advisory lock keeps
// several nodes starting at once from racing.
func (db *DB) Migrate(ctx context.Context, log *slog.Logger) error {
	dialect, fsys := goose.DialectSQLite3, migrations.FS("sqlite")
	var opts []goose.ProviderOption
	if db.Dialect == Postgres {
		dialect, fsys = goose.DialectPostgres, migrations.FS("postgres")
		locker, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return err
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(dialect, db.w, fsys, opts...)
	if err != nil {
		return fmt.Errorf("store: migrations: %w", err)
	}
	res, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	for _, r := range res {
		if log != nil {
			log.Info("migration applied", "version", r.Source.Version, "file", r.Source.Path, "took", r.Duration)
		}
	}
	return nil
}

// Version returns the current schema version.
func (db *DB) Version(ctx context.Context) (int64, error) {
	var v int64
	err := db.r.QueryRowContext(ctx, `SELECT COALESCE(MAX(version_id), 0) FROM goose_db_version WHERE is_applied`).Scan(&v)
	return v, err
}

// Tx runs fn in a write transaction, retrying on serialization failures and deadlocks.
func (db *DB) Tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	for attempt := 0; ; attempt++ {
		err := db.tx(ctx, fn)
		if err == nil || attempt >= 4 || !retryable(err) {
			return mapErr(err)
		}
		time.Sleep(time.Duration(attempt+1) * 5 * time.Millisecond)
	}
}

func (db *DB) tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// exec runs one write statement outside an explicit transaction.
func (db *DB) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	res, err := db.w.ExecContext(ctx, q, args...)
	return res, mapErr(err)
}

func retryable(err error) bool {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code == "40001" || pg.Code == "40P01"
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		c := se.Code() & 0xff
		return c == sqlite3.SQLITE_BUSY || c == sqlite3.SQLITE_LOCKED
	}
	return false
}

// mapErr turns driver errors into errs kinds; errors already of ours pass through.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	var e *errs.Error
	if errors.As(err, &e) {
		return err
	}
	if errors.Is(err, sql.ErrNoRows) {
		return errs.E(errs.NotFound, "not found", err)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return errs.E(errs.Unavailable, "request cancelled or timed out", err)
	}
	if isUnique(err) {
		return errs.E(errs.Conflict, "already exists", err)
	}
	return errs.E(errs.Internal, "database error", err)
}

func isUnique(err error) bool {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code == "23505"
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}

// ms converts a time to the stored Unix milliseconds.
func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error { return db.r.PingContext(ctx) }

// snapshotTables are every table of ours, in a fixed order.
var snapshotTables = []string{"orgs", "bootstrap", "users", "credentials", "access_tokens", "user_actions", "audit_log", "server_keys"}

// Snapshot returns a digest of every row of every table. Tests use it to prove that a
// refused request changed nothing; operators can use it to compare two databases.
func (db *DB) Snapshot(ctx context.Context) (string, error) {
	h := sha256.New()
	for _, t := range snapshotTables {
		rows, err := db.w.QueryContext(ctx, `SELECT * FROM `+t+` ORDER BY 1`)
		if err != nil {
			return "", mapErr(err)
		}
		cols, _ := rows.Columns()
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		fmt.Fprintf(h, "table %s\n", t)
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				rows.Close()
				return "", mapErr(err)
			}
			for _, v := range vals {
				fmt.Fprintf(h, "%v|", v)
			}
			h.Write([]byte{'\n'})
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return "", mapErr(err)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
