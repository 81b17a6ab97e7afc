// Package testutil gives tests real databases and a real server: every storage and HTTP
// test runs on SQLite and, when COUNTERSIGN_TEST_POSTGRES names a server, on PostgreSQL
// too (each test in a schema of its own). Under CI a missing PostgreSQL is a failure.
package testutil

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
)

// Engine is a database engine under test.
type Engine struct {
	Name string
	// DSN returns a fresh, empty database for t (dropped when t ends).
	DSN func(t testing.TB) string
}

// Engines returns SQLite and, if configured, PostgreSQL.
func Engines(t testing.TB) []Engine {
	es := []Engine{{Name: "sqlite", DSN: func(t testing.TB) string { return filepath.Join(t.TempDir(), "test.db") }}}
	if pg := os.Getenv("COUNTERSIGN_TEST_POSTGRES"); pg != "" {
		es = append(es, Engine{Name: "postgres", DSN: func(t testing.TB) string { return PostgresSchema(t, pg) }})
	} else if os.Getenv("CI") != "" {
		t.Fatal("COUNTERSIGN_TEST_POSTGRES is not set: CI must run every storage test on PostgreSQL too")
	}
	return es
}

// ForEachEngine runs f as a subtest per engine.
func ForEachEngine(t *testing.T, f func(t *testing.T, e Engine)) {
	for _, e := range Engines(t) {
		t.Run(e.Name, func(t *testing.T) { f(t, e) })
	}
}

var pgAdmin sync.Map // base DSN -> *sql.DB

// PostgresSchema creates a schema of its own for t and returns a DSN whose search_path
// points at it.
func PostgresSchema(t testing.TB, base string) string {
	v, _ := pgAdmin.LoadOrStore(base, sync.OnceValues(func() (*sql.DB, error) { return sql.Open("pgx", base) }))
	db, err := v.(func() (*sql.DB, error))()
	if err != nil {
		t.Fatal(err)
	}
	var b [6]byte
	rand.Read(b[:])
	schema := "cs_test_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema on %s: %v", redact(base), err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		db.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE")
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparseable DSN)"
	}
	return u.Redacted()
}

// Clock is a settable clock for expiry tests.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock starts at the real now.
func NewClock() *Clock { return &Clock{t: time.Now()} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}
