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
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/countersign/countersign/internal/audit"
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
	// Prepared statements per pool, keyed by query text. Parsing SQL was a quarter of the
	// CPU of a signed write on SQLite; database/sql re-prepares a Stmt per connection lazily.
	ws, rs sync.Map
	batch  *batcher    // SQLite only
	cache  *authCache  // SQLite only
	chal   *challenges // SQLite only: pending user action challenges
	hooks  *hookCache  // SQLite only: enabled webhooks per organization
	keyc   *keyCache   // SQLite only: key rows
	lock   *os.File    // SQLite only: held exclusively while open
	// dsn opens more handles on the same database (OpenQueueConns): the PostgreSQL URL, or
	// the SQLite file URI with its pragmas.
	dsn     string
	emitter Emitter // webhook events of state changes (webhooks.go); nil emits nothing
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
		return &DB{Dialect: Postgres, w: db, r: db, ring: ring, dsn: dsn}, nil
	}
	path := strings.TrimPrefix(dsn, "sqlite://")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	// One process per SQLite database: the in-memory auth cache relies on being the only
	// writer. Several nodes need PostgreSQL.
	lock, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("store: %s is in use by another countersign process (several nodes need PostgreSQL)", path)
	}
	fail := func(err error) (*DB, error) { lock.Close(); return nil, err }
	// synchronous(NORMAL) in WAL mode keeps the database consistent after a crash and
	// loses at most the last transactions on power loss, the usual server trade-off.
	q := url.Values{}
	for _, p := range []string{"journal_mode(WAL)", "synchronous(NORMAL)", "busy_timeout(10000)", "foreign_keys(ON)", "cache_size(-16000)", "mmap_size(268435456)"} {
		q.Add("_pragma", p)
	}
	base := "file:" + path + "?" + q.Encode()
	w, err := sql.Open(sqliteCached, base+"&_txlock=immediate")
	if err != nil {
		return fail(err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return fail(fmt.Errorf("store: open SQLite %s: %w", path, err))
	}
	r, err := sql.Open(sqliteCached, base+"&mode=ro")
	if err != nil {
		w.Close()
		return fail(err)
	}
	n := max(4, 2*runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	r.SetConnMaxLifetime(0)
	db := &DB{Dialect: SQLite, w: w, r: r, ring: ring, cache: newAuthCache(), chal: newChallenges(), hooks: newHookCache(), keyc: newKeyCache(), lock: lock, dsn: base}
	db.batch = newBatcher(db)
	return db, nil
}

// Close closes both pools.
func (db *DB) Close() error {
	if db.batch != nil {
		db.batch.close()
	}
	for _, m := range []*sync.Map{&db.ws, &db.rs} {
		m.Range(func(_, v any) bool { v.(*sql.Stmt).Close(); return true })
	}
	err := db.w.Close()
	if db.r != db.w {
		err = errors.Join(err, db.r.Close())
	}
	if db.lock != nil {
		err = errors.Join(err, db.lock.Close())
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
		// Poll the lock every second (default 5 s): nodes starting together wait less.
		locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 300))
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

// Tx is a write transaction whose statements are prepared once and reused.
type Tx struct {
	tx     *sql.Tx
	db     *DB
	misses []string
}

// ExecContext runs a statement in the transaction.
func (t *Tx) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	ctx = t.stmtCtx(ctx)
	if st, ok := t.cached(q); ok {
		return t.tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return t.tx.ExecContext(ctx, q, args...)
}

// SQL returns the transaction's *sql.Tx and the context to run statements on it with, for
// code that writes its own SQL in our transaction: the job queue inserts a job in the same
// transaction as the state change that needs it. Every statement must use the returned
// context (see stmtCtx).
func (t *Tx) SQL(ctx context.Context) (context.Context, *sql.Tx) { return t.stmtCtx(ctx), t.tx }

// stmtCtx keeps a caller's cancellation out of a SQLite group commit: the driver interrupts
// a statement whose context ends, and SQLite answers an interrupted write by rolling back
// the whole transaction: the earlier callers' savepoints are lost and the later callers'
// statements run, and commit, outside the group while all are told the commit failed.
// A caller whose context ended before its turn is skipped by the batcher instead.
func (t *Tx) stmtCtx(ctx context.Context) context.Context {
	if t.db.batch != nil {
		return context.WithoutCancel(ctx)
	}
	return ctx
}

// cached returns the pool statement for q. A miss is prepared after the transaction: on
// SQLite the transaction holds the only write connection, so preparing on the pool now
// would wait for ourselves.
func (t *Tx) cached(q string) (*sql.Stmt, bool) {
	if st, ok := t.db.ws.Load(q); ok {
		return st.(*sql.Stmt), true
	}
	t.misses = append(t.misses, q)
	return nil, false
}

// QueryRowContext runs a one-row query in the transaction.
func (t *Tx) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	ctx = t.stmtCtx(ctx)
	if st, ok := t.cached(q); ok {
		return t.tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, q, args...)
}

// QueryContext runs a query in the transaction.
func (t *Tx) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	ctx = t.stmtCtx(ctx)
	if st, ok := t.cached(q); ok {
		return t.tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return t.tx.QueryContext(ctx, q, args...)
}

func (db *DB) prep(ctx context.Context, pool *sql.DB, cache *sync.Map, q string) (*sql.Stmt, error) {
	if st, ok := cache.Load(q); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := pool.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	if prev, loaded := cache.LoadOrStore(q, st); loaded {
		st.Close()
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}

// queryRow runs a one-row read on the read pool.
func (db *DB) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	st, err := db.prep(ctx, db.r, &db.rs, q)
	if err != nil {
		return db.r.QueryRowContext(ctx, q, args...)
	}
	return st.QueryRowContext(ctx, args...)
}

// query runs a read on the read pool.
func (db *DB) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	st, err := db.prep(ctx, db.r, &db.rs, q)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// Tx runs fn in a write transaction, retrying on serialization failures and deadlocks.
// On SQLite, concurrent calls are committed together (see batcher), each inside a
// savepoint of its own, so one caller's failure never undoes another's work.
//
// When ctx carries a signed request's pending audit entry (audit.Begin), the first
// transaction that commits also records the request's success in it.
func (db *DB) Tx(ctx context.Context, fn func(tx *Tx) error) error {
	p := audit.PendingFrom(ctx)
	if p != nil && !p.Done() {
		inner := fn
		fn = func(tx *Tx) error {
			if err := inner(tx); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, finishAuditSQL, 200, ms(p.Now()), p.ID)
			return err
		}
	}
	err := db.runTx(ctx, fn)
	if err == nil && p != nil {
		p.MarkDone()
	}
	return err
}

func (db *DB) runTx(ctx context.Context, fn func(tx *Tx) error) error {
	if db.batch != nil {
		return mapErr(db.batch.do(ctx, fn))
	}
	for attempt := 0; ; attempt++ {
		err := db.tx(ctx, fn)
		if err == nil || attempt >= 4 || !retryable(err) {
			return mapErr(err)
		}
		time.Sleep(time.Duration(attempt+1) * 5 * time.Millisecond)
	}
}

func (db *DB) tx(ctx context.Context, fn func(tx *Tx) error) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	t := &Tx{tx: tx, db: db}
	if err := fn(t); err != nil {
		tx.Rollback()
		return err
	}
	err = tx.Commit()
	for _, q := range t.misses {
		db.prep(ctx, db.w, &db.ws, q) // best effort; a failure only costs speed
	}
	return err
}

// exec runs one write statement outside an explicit transaction.
func (db *DB) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if db.batch != nil {
		var res sql.Result
		err := db.Tx(ctx, func(tx *Tx) error {
			var err error
			res, err = tx.ExecContext(ctx, q, args...)
			return err
		})
		return res, err
	}
	st, err := db.prep(ctx, db.w, &db.ws, q)
	if err != nil {
		return nil, mapErr(err)
	}
	res, err := st.ExecContext(ctx, args...)
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

// SnapshotTables lists every table of ours, in a fixed order.
func SnapshotTables() []string { return slices.Clone(snapshotTables) }

// snapshotTables are every table of ours, in a fixed order.
var snapshotTables = []string{"orgs", "bootstrap", "users", "credentials", "access_tokens", "user_actions", "audit_log", "server_keys", "keys", "wallets", "signature_requests", "evm_nonces", "transfers",
	"credential_details", "auth_ceremonies", "auth_codes", "transactions", "evm_nonce_fills",
	"chain_cursors", "wallet_history",
	"webhooks", "webhook_events"}

// Snapshot returns a digest of every row of every table. Tests use it to prove that a
// refused request changed nothing; operators can use it to compare two databases.
func (db *DB) Snapshot(ctx context.Context) (string, error) {
	return db.SnapshotOf(ctx, snapshotTables...)
}

// SnapshotOf is Snapshot over the named tables only.
func (db *DB) SnapshotOf(ctx context.Context, tables ...string) (string, error) {
	h := sha256.New()
	for _, t := range tables {
		probe, err := db.w.QueryContext(ctx, `SELECT * FROM `+t+` LIMIT 0`)
		if err != nil {
			return "", mapErr(err)
		}
		cols, _ := probe.Columns()
		probe.Close()
		order := make([]string, len(cols))
		for i := range cols {
			order[i] = itoa(i + 1)
		}
		// Order by every column: some keys are composite, and the digest must not depend on scan order.
		rows, err := db.w.QueryContext(ctx, `SELECT * FROM `+t+` ORDER BY `+strings.Join(order, ", "))
		if err != nil {
			return "", mapErr(err)
		}
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

// queryAll runs a read and scans every row with scan.
func queryAll[T any](ctx context.Context, db *DB, scan func(scanner, *T) error, q string, args ...any) ([]T, error) {
	rows, err := db.query(ctx, q, args...)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		var v T
		if err := scan(rows, &v); err != nil {
			return nil, mapErr(err)
		}
		out = append(out, v)
	}
	return out, mapErr(rows.Err())
}
