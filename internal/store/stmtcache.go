package store

import (
	"container/list"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
)

// sqliteCached is the database/sql driver name of SQLite connections that keep their
// prepared statements. modernc.org/sqlite parses a statement on every ExecContext and
// QueryContext of a *sql.DB or *sql.Tx; the job queue's statements (River's, run as plain
// ExecContext/QueryContext) were a third of the server's CPU under transfer load. A
// cachedConn hides the driver's ExecerContext/QueryerContext, so database/sql prepares
// every statement through it, and answers a prepare from a per-connection LRU of parsed
// statements by SQL text.
const sqliteCached = "sqlite-cached"

// stmtCacheSize bounds the parsed statements kept per connection.
const stmtCacheSize = 256

func init() {
	// Wrap the driver registered as "sqlite", with whatever is registered on it.
	db, err := sql.Open("sqlite", "")
	if err != nil {
		panic(err)
	}
	sql.Register(sqliteCached, &cachedDriver{d: db.Driver(), size: stmtCacheSize})
	db.Close()
}

// cachedDriver wraps modernc's driver; see sqliteCached.
type cachedDriver struct {
	d    driver.Driver
	size int
}

func (d *cachedDriver) Open(name string) (driver.Conn, error) {
	c, err := d.d.Open(name)
	if err != nil {
		return nil, err
	}
	return newCachedConn(c, d.size), nil
}

// stmtCacheStats counts, over all cached connections, the prepares answered from a cache
// (hits) and those that parsed (misses, uncacheable and busy statements included). Tests
// read it.
var stmtCacheStats struct{ hits, misses atomic.Int64 }

// cachedConn is a modernc connection with an LRU of its prepared statements. It exposes
// only what database/sql needs of the connection besides Prepare: transactions, Ping,
// session reset and validity. modernc implements no NamedValueChecker, so argument
// conversion is database/sql's default either way.
type cachedConn struct {
	c    driver.Conn
	size int

	mu     sync.Mutex
	lru    *list.List // of *cachedEntry, most recently used first
	m      map[string]*list.Element
	closed bool
}

// cachedEntry is one parsed statement. A statement is handed to one user at a time: while
// it is out (a statement executing, its Rows still open, or a *sql.Stmt holding it) a
// prepare of the same SQL parses a fresh, uncached statement, since one SQLite statement
// cannot run twice at once. An entry evicted while out is finalized when given back.
type cachedEntry struct {
	q       string
	st      driver.Stmt
	out     bool
	evicted bool // no longer in the cache: finalize when given back
	dead    bool // finalized with the connection
}

func newCachedConn(c driver.Conn, size int) *cachedConn {
	return &cachedConn{c: c, size: size, lru: list.New(), m: make(map[string]*list.Element)}
}

// cacheable reports whether q is a single statement. A script (several statements, such
// as a migration) is parsed anew on every run by the driver anyway and is not kept. A ';'
// inside a comment, a string or a quoted name does not count (River's SQL has one in a
// comment), nor do trailing ones.
func cacheable(q string) bool {
	ended := false // a ';' was seen outside comments and quotes
	for i := 0; i < len(q); i++ {
		switch c := q[i]; {
		case c == '-' && i+1 < len(q) && q[i+1] == '-':
			j := strings.IndexByte(q[i:], '\n')
			if j < 0 {
				return true
			}
			i += j
		case c == '/' && i+1 < len(q) && q[i+1] == '*':
			j := strings.Index(q[i+2:], "*/")
			if j < 0 {
				return !ended
			}
			i += j + 3
		case c == ';':
			ended = true
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
		default:
			if ended {
				return false // a second statement
			}
			if c == '\'' || c == '"' || c == '`' || c == '[' {
				end := c
				if c == '[' {
					end = ']'
				}
				// A doubled quote inside is two quoted runs back to back: same result.
				j := strings.IndexByte(q[i+1:], end)
				if j < 0 {
					return true // unterminated: let SQLite report it
				}
				i += j + 1
			}
		}
	}
	return true
}

func (c *cachedConn) Prepare(q string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), q)
}

func (c *cachedConn) PrepareContext(ctx context.Context, q string) (driver.Stmt, error) {
	c.mu.Lock()
	if el, ok := c.m[q]; ok {
		e := el.Value.(*cachedEntry)
		if !e.out {
			e.out = true
			c.lru.MoveToFront(el)
			c.mu.Unlock()
			stmtCacheStats.hits.Add(1)
			return &cachedStmt{c: c, e: e}, nil
		}
		c.mu.Unlock()
		return c.prepareRaw(ctx, q) // busy: a fresh statement, finalized on Close
	}
	c.mu.Unlock()
	if !cacheable(q) {
		return c.prepareRaw(ctx, q)
	}
	st, err := c.prepareRaw(ctx, q)
	if err != nil {
		return nil, err
	}
	e := &cachedEntry{q: q, st: st, out: true}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return st, nil
	}
	if _, ok := c.m[q]; ok {
		// Cannot happen (database/sql uses a connection from one goroutine at a time), but
		// keep the one already cached and let this one be finalized on Close.
		return st, nil
	}
	c.m[q] = c.lru.PushFront(e)
	for c.lru.Len() > c.size {
		old := c.lru.Back()
		oe := old.Value.(*cachedEntry)
		c.lru.Remove(old)
		delete(c.m, oe.q)
		if oe.out {
			oe.evicted = true
		} else {
			oe.st.Close()
		}
	}
	return &cachedStmt{c: c, e: e}, nil
}

func (c *cachedConn) prepareRaw(ctx context.Context, q string) (driver.Stmt, error) {
	stmtCacheStats.misses.Add(1)
	if p, ok := c.c.(driver.ConnPrepareContext); ok {
		return p.PrepareContext(ctx, q)
	}
	return c.c.Prepare(q)
}

// giveBack returns e to the cache after its user closed it.
func (c *cachedConn) giveBack(e *cachedEntry) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.dead || !e.out {
		return nil
	}
	e.out = false
	if e.evicted {
		e.dead = true
		return e.st.Close()
	}
	return nil
}

// Close finalizes the cached statements, then closes the connection.
func (c *cachedConn) Close() error {
	c.mu.Lock()
	var errs []error
	for el := c.lru.Front(); el != nil; el = el.Next() {
		e := el.Value.(*cachedEntry)
		e.dead = true
		errs = append(errs, e.st.Close())
	}
	c.lru.Init()
	clear(c.m)
	c.closed = true
	c.mu.Unlock()
	errs = append(errs, c.c.Close())
	return errors.Join(errs...)
}

// Len is the number of statements cached (tests).
func (c *cachedConn) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

func (c *cachedConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *cachedConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if b, ok := c.c.(driver.ConnBeginTx); ok {
		return b.BeginTx(ctx, opts)
	}
	return c.c.Begin() //nolint:staticcheck // the fallback for drivers without BeginTx
}

func (c *cachedConn) Ping(ctx context.Context) error {
	if p, ok := c.c.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

func (c *cachedConn) ResetSession(ctx context.Context) error {
	if r, ok := c.c.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *cachedConn) IsValid() bool {
	if v, ok := c.c.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

var (
	_ driver.ConnPrepareContext = (*cachedConn)(nil)
	_ driver.ConnBeginTx        = (*cachedConn)(nil)
	_ driver.Pinger             = (*cachedConn)(nil)
	_ driver.SessionResetter    = (*cachedConn)(nil)
	_ driver.Validator          = (*cachedConn)(nil)
)

// cachedStmt is a cached statement lent to one user; Close gives it back.
type cachedStmt struct {
	c    *cachedConn
	e    *cachedEntry
	done bool
}

func (s *cachedStmt) Close() error {
	if s.done {
		return nil
	}
	s.done = true
	return s.c.giveBack(s.e)
}

func (s *cachedStmt) NumInput() int { return s.e.st.NumInput() }

func (s *cachedStmt) Exec(args []driver.Value) (driver.Result, error) {
	return s.e.st.Exec(args) //nolint:staticcheck // database/sql's fallback
}

func (s *cachedStmt) Query(args []driver.Value) (driver.Rows, error) {
	return s.e.st.Query(args) //nolint:staticcheck // database/sql's fallback
}

// ExecContext and QueryContext hand the call to modernc's statement, which implements both
// (database/sql would not fall back on driver.ErrSkip here, so there is no other path).
func (s *cachedStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	return s.e.st.(driver.StmtExecContext).ExecContext(ctx, args)
}

func (s *cachedStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	return s.e.st.(driver.StmtQueryContext).QueryContext(ctx, args)
}

var (
	_ driver.StmtExecContext  = (*cachedStmt)(nil)
	_ driver.StmtQueryContext = (*cachedStmt)(nil)
)
