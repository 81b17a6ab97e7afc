package store

import (
	"context"
	"database/sql"
	"sync"
)

// batcher is SQLite group commit. SQLite has one writer and pays for every commit (WAL
// frames written, readers' caches invalidated), so a single goroutine takes all waiting
// write transactions and commits them as one. Each runs in its own savepoint: a caller
// whose function fails is rolled back to it alone, and a caller is answered only after
// the commit that made its work durable.
type batcher struct {
	db   *DB
	reqs chan *batchReq
	quit chan struct{}
	done chan struct{} // closed when loop has returned: nothing queued later is answered
	wg   sync.WaitGroup
}

type batchReq struct {
	ctx  context.Context
	fn   func(*Tx) error
	done chan error
}

const maxBatch = 64

func newBatcher(db *DB) *batcher {
	b := &batcher{db: db, reqs: make(chan *batchReq, 1024), quit: make(chan struct{}), done: make(chan struct{})}
	b.wg.Add(1)
	go b.loop()
	return b
}

func (b *batcher) do(ctx context.Context, fn func(*Tx) error) error {
	r := &batchReq{ctx: ctx, fn: fn, done: make(chan error, 1)}
	select {
	case b.reqs <- r:
	case <-ctx.Done():
		return ctx.Err()
	case <-b.quit:
		return sql.ErrConnDone
	}
	// Once queued, wait for the outcome even if ctx ends: the work may commit. A request
	// queued after loop's final drain (a write racing Close) is never answered: the select
	// above may pick the send even when quit is closed.
	select {
	case err := <-r.done:
		return err
	case <-b.done:
		select {
		case err := <-r.done: // loop answers every request it takes before it returns
			return err
		default:
			return sql.ErrConnDone
		}
	}
}

func (b *batcher) close() {
	close(b.quit)
	b.wg.Wait()
}

func (b *batcher) loop() {
	defer b.wg.Done()
	defer close(b.done)
	batch := make([]*batchReq, 0, maxBatch)
	for {
		select {
		case r := <-b.reqs:
			batch = append(batch[:0], r)
		case <-b.quit:
			for {
				select {
				case r := <-b.reqs:
					r.done <- sql.ErrConnDone
				default:
					return
				}
			}
		}
	fill:
		for len(batch) < maxBatch {
			select {
			case r := <-b.reqs:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		b.run(batch)
	}
}

func (b *batcher) run(batch []*batchReq) {
	ctx := context.Background()
	tx, err := b.db.w.BeginTx(ctx, nil)
	if err != nil {
		for _, r := range batch {
			r.done <- err
		}
		return
	}
	t := &Tx{tx: tx, db: b.db}
	results := make([]error, len(batch))
	single := len(batch) == 1
	for i, r := range batch {
		if err := r.ctx.Err(); err != nil {
			results[i] = err
			continue
		}
		if single { // no savepoint needed: the whole transaction is this caller's
			results[i] = r.fn(t)
			continue
		}
		if _, err := t.ExecContext(ctx, "SAVEPOINT b"); err != nil {
			results[i] = err
			continue
		}
		if results[i] = r.fn(t); results[i] != nil {
			t.ExecContext(ctx, "ROLLBACK TO b")
		}
		t.ExecContext(ctx, "RELEASE b")
	}
	if single && results[0] != nil {
		tx.Rollback()
		batch[0].done <- results[0]
		return
	}
	cerr := tx.Commit()
	if cerr != nil {
		b.db.hooks.clear() // it may hold what this batch wrote
	}
	for _, q := range t.misses {
		b.db.prep(ctx, b.db.w, &b.db.ws, q)
	}
	for i, r := range batch {
		if results[i] == nil {
			results[i] = cerr
		}
		r.done <- results[i]
	}
}
