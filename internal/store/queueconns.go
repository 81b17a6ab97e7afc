package store

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
)

// QueueConns are the connections the job queue (internal/jobs, River) runs its own
// statements on. Jobs inserted by the store's transactions go through Tx.SQL instead.
type QueueConns struct {
	// DB runs the queue's fetches, completions and maintenance. On PostgreSQL it is the
	// store's pool. On SQLite it is a second handle on the same file with one connection
	// of its own: the store's only write connection is held by a group commit while jobs
	// are inserted, so a queue sharing it could wait for a transaction that waits for the
	// queue. Two handles instead meet at SQLite's write lock, which both take at BEGIN
	// (_txlock=immediate) and wait for in the busy handler, up to busy_timeout; neither
	// ever waits for the other while holding it.
	DB *sql.DB
	// Listener is a small pool for LISTEN (PostgreSQL only, else nil): River hijacks one
	// connection from it, so a committed job is picked up in milliseconds instead of at
	// the next poll.
	Listener *pgxpool.Pool
	own      bool // DB is ours to close
}

// OpenQueueConns opens the job queue's connections; Close releases them. Connecting is
// lazy.
func (db *DB) OpenQueueConns() (*QueueConns, error) {
	if db.Dialect == Postgres {
		cfg, err := pgxpool.ParseConfig(db.dsn)
		if err != nil {
			return nil, fmt.Errorf("store: queue listener: %w", err)
		}
		cfg.MinConns, cfg.MaxConns = 0, 1 // LISTEN hijacks its connection; the pool itself stays idle
		pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
		if err != nil {
			return nil, fmt.Errorf("store: queue listener: %w", err)
		}
		return &QueueConns{DB: db.w, Listener: pool}, nil
	}
	q, err := sql.Open(sqliteCached, db.dsn+"&_txlock=immediate")
	if err != nil {
		return nil, err
	}
	// River's SQLite driver asks for a single connection: its services run in parallel
	// and would otherwise meet SQLITE_BUSY among themselves.
	q.SetMaxOpenConns(1)
	q.SetMaxIdleConns(1)
	q.SetConnMaxLifetime(0)
	return &QueueConns{DB: q, own: true}, nil
}

// Close releases the connections. Stop the queue first.
func (c *QueueConns) Close() error {
	if c.Listener != nil {
		c.Listener.Close()
	}
	if c.own {
		return c.DB.Close()
	}
	return nil
}
