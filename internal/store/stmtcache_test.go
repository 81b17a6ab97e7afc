package store

import (
	"context"
	"database/sql"
	"path/filepath"
	"sync"
	"testing"
)

func init() {
	// A tiny cache to see evictions.
	db, err := sql.Open("sqlite", "")
	if err != nil {
		panic(err)
	}
	sql.Register("sqlite-cached-2", &cachedDriver{d: db.Driver(), size: 2})
	db.Close()
}

func openCached(t *testing.T, driverName, path string, conns int) *sql.DB {
	t.Helper()
	db, err := sql.Open(driverName, "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	t.Cleanup(func() { db.Close() })
	return db
}

// cachedLen is the number of statements cached on db's only connection.
func cachedLen(t *testing.T, db *sql.DB) int {
	t.Helper()
	c, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	n := -1
	if err := c.Raw(func(dc any) error { n = dc.(*cachedConn).Len(); return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

func mustExec(t *testing.T, db interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, q string, args ...any) {
	t.Helper()
	if _, err := db.ExecContext(context.Background(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func count(t *testing.T, db *sql.DB, q string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func TestStmtCacheHitAndScripts(t *testing.T) {
	db := openCached(t, sqliteCached, filepath.Join(t.TempDir(), "a.db"), 1)
	// A script is run whole and not cached.
	mustExec(t, db, `CREATE TABLE t (x INTEGER); CREATE TABLE u (y INTEGER);`)
	if n := cachedLen(t, db); n != 0 {
		t.Fatalf("script cached: %d statements", n)
	}
	h0, m0 := stmtCacheStats.hits.Load(), stmtCacheStats.misses.Load()
	for i := range 10 {
		mustExec(t, db, `INSERT INTO t (x) VALUES (?)`, i)
	}
	if n := count(t, db, `SELECT count(*) FROM t`); n != 10 {
		t.Fatalf("rows %d", n)
	}
	if h, m := stmtCacheStats.hits.Load()-h0, stmtCacheStats.misses.Load()-m0; m != 2 || h != 9 {
		t.Fatalf("hits %d misses %d, want 9 and 2", h, m)
	}
	if n := cachedLen(t, db); n != 2 {
		t.Fatalf("cached %d statements, want 2", n)
	}
	// An error in a cached statement leaves it usable.
	mustExec(t, db, `CREATE UNIQUE INDEX tx ON t (x)`)
	if _, err := db.Exec(`INSERT INTO t (x) VALUES (?)`, 3); err == nil {
		t.Fatal("duplicate inserted")
	}
	mustExec(t, db, `INSERT INTO t (x) VALUES (?)`, 10)
	if n := count(t, db, `SELECT count(*) FROM t`); n != 11 {
		t.Fatalf("rows %d", n)
	}
}

func TestStmtCacheEviction(t *testing.T) {
	db := openCached(t, "sqlite-cached-2", filepath.Join(t.TempDir(), "a.db"), 1)
	mustExec(t, db, `CREATE TABLE t (x INTEGER)`)
	mustExec(t, db, `INSERT INTO t (x) VALUES (1), (2), (3)`)
	// A *sql.Stmt holds its statement out of the cache; evicting it must not finalize it
	// under the holder.
	held, err := db.Prepare(`SELECT count(*) FROM t WHERE x >= ?`)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`SELECT count(*) FROM t WHERE x >= 1`, `SELECT count(*) FROM t WHERE x >= 2`, `SELECT count(*) FROM t WHERE x >= 3`} {
		count(t, db, q)
	}
	if n := cachedLen(t, db); n != 2 {
		t.Fatalf("cached %d statements, want 2", n)
	}
	var n int
	if err := held.QueryRow(2).Scan(&n); err != nil || n != 2 {
		t.Fatalf("held statement after eviction: %d, %v", n, err)
	}
	if err := held.Close(); err != nil {
		t.Fatal(err)
	}
	m0 := stmtCacheStats.misses.Load()
	count(t, db, `SELECT count(*) FROM t WHERE x >= 1`) // evicted: parsed again
	count(t, db, `SELECT count(*) FROM t WHERE x >= 1`)
	if m := stmtCacheStats.misses.Load() - m0; m != 1 {
		t.Fatalf("misses %d, want 1", m)
	}
}

func TestStmtCacheSameSQLWhileRowsOpen(t *testing.T) {
	db := openCached(t, sqliteCached, filepath.Join(t.TempDir(), "a.db"), 1)
	mustExec(t, db, `CREATE TABLE t (x INTEGER)`)
	for i := range 5 {
		mustExec(t, db, `INSERT INTO t (x) VALUES (?)`, i)
	}
	const q = `SELECT x FROM t WHERE x >= ? ORDER BY x`
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	outer, err := tx.Query(q, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for outer.Next() {
		var x int
		if err := outer.Scan(&x); err != nil {
			t.Fatal(err)
		}
		got = append(got, x)
		// The same SQL again on the same connection while outer is open.
		inner, err := tx.Query(q, x)
		if err != nil {
			t.Fatal(err)
		}
		k := 0
		for inner.Next() {
			k++
		}
		if err := inner.Close(); err != nil {
			t.Fatal(err)
		}
		if k != 5-x {
			t.Fatalf("inner query from %d: %d rows", x, k)
		}
	}
	if err := outer.Err(); err != nil {
		t.Fatal(err)
	}
	outer.Close()
	if len(got) != 5 {
		t.Fatalf("outer rows %v", got)
	}
}

func TestStmtCacheConcurrent(t *testing.T) {
	for _, conns := range []int{1, 4} {
		db := openCached(t, sqliteCached, filepath.Join(t.TempDir(), "a.db"), conns)
		mustExec(t, db, `CREATE TABLE t (x INTEGER)`)
		var wg sync.WaitGroup
		errc := make(chan error, 8)
		for g := range 8 {
			wg.Go(func() {
				for i := range 50 {
					if _, err := db.Exec(`INSERT INTO t (x) VALUES (?)`, g*1000+i); err != nil {
						errc <- err
						return
					}
					rows, err := db.Query(`SELECT x FROM t WHERE x >= ? LIMIT 3`, g*1000)
					if err != nil {
						errc <- err
						return
					}
					for rows.Next() {
					}
					rows.Close()
				}
			})
		}
		wg.Wait()
		close(errc)
		for err := range errc {
			t.Fatal(err)
		}
		if n := count(t, db, `SELECT count(*) FROM t`); n != 400 {
			t.Fatalf("%d conns: rows %d", conns, n)
		}
	}
}

func TestStmtCacheRollback(t *testing.T) {
	db := openCached(t, sqliteCached, filepath.Join(t.TempDir(), "a.db"), 1)
	mustExec(t, db, `CREATE TABLE t (x INTEGER)`)
	mustExec(t, db, `INSERT INTO t (x) VALUES (?)`, 1) // cached
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, tx, `INSERT INTO t (x) VALUES (?)`, 2)
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if n := count(t, db, `SELECT count(*) FROM t`); n != 1 {
		t.Fatalf("rows after rollback %d", n)
	}
	tx, err = db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, tx, `INSERT INTO t (x) VALUES (?)`, 3)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if n := count(t, db, `SELECT count(*) FROM t`); n != 2 {
		t.Fatalf("rows after commit %d", n)
	}
}

func TestStmtCacheSchemaChange(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.db")
	db := openCached(t, sqliteCached, path, 1)
	other := openCached(t, sqliteCached, path, 1)
	mustExec(t, db, `CREATE TABLE t (x INTEGER)`)
	mustExec(t, db, `INSERT INTO t (x) VALUES (1)`)
	cols := func() []string {
		rows, err := db.Query(`SELECT * FROM t`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		c, err := rows.Columns()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if c := cols(); len(c) != 1 {
		t.Fatalf("columns %v", c)
	}
	// Another connection changes the schema under the cached statements.
	mustExec(t, other, `ALTER TABLE t ADD COLUMN y TEXT DEFAULT 'a'`)
	if c := cols(); len(c) != 2 {
		t.Fatalf("columns after ALTER %v", c)
	}
	mustExec(t, other, `DROP TABLE t; CREATE TABLE t (z TEXT, x INTEGER, w INTEGER);`)
	mustExec(t, db, `INSERT INTO t (x) VALUES (1)`) // cached before the DROP
	if c := cols(); len(c) != 3 {
		t.Fatalf("columns after re-CREATE %v", c)
	}
	mustExec(t, other, `DROP TABLE t`)
	if _, err := db.Exec(`INSERT INTO t (x) VALUES (1)`); err == nil {
		t.Fatal("insert into a dropped table succeeded")
	}
}

func TestStmtCacheable(t *testing.T) {
	for q, want := range map[string]bool{
		`SELECT 1`:                                true,
		`SELECT 1;`:                               true,
		`SELECT 1; `:                              true,
		"SELECT 1; -- done\n":                     true,
		`SELECT 1; /* done */`:                    true,
		"-- a; b\nSELECT 1":                       true,
		`SELECT /* a; b */ 1`:                     true,
		`SELECT 'a;b', "c;d", [e;f]`:              true,
		`SELECT 'it''s; fine'`:                    true,
		`SELECT 1; SELECT 2`:                      false,
		`CREATE TABLE a (x); CREATE TABLE b (y);`: false,
		"SELECT 1;\n-- c\nSELECT 2":               false,
	} {
		if got := cacheable(q); got != want {
			t.Errorf("cacheable(%q) = %v, want %v", q, got, want)
		}
	}
	// River's completion query: a ';' in a comment of its embedded metadata merge.
	if !cacheable("UPDATE t SET m = (-- once; twice\nSELECT 1) WHERE id = ?") {
		t.Error("a ';' in a comment made a statement uncacheable")
	}
}
