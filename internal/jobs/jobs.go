// Package jobs is countersign's durable background work: a River queue (riverqueue.com)
// kept in the store's own database, SQLite or PostgreSQL.
//
// A job is inserted in the same store transaction as the state change that needs it
// (InsertTx, the outbox pattern): it exists if and only if that change committed. A job
// runs at least once: after a crash it runs again, so every worker must be idempotent
// (check the state it is about to change, or write its effect under a unique key).
//
// A job whose process died mid-run is retried once it has been running longer than
// Options.RescueStuckJobsAfter, by whichever node leads (the leader checks every 30 s,
// and a new node becomes leader only once the dead one's lease, about 15 s, has run
// out). Periodic jobs (Every) run on the leader only.
package jobs

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"

	"github.com/countersign/countersign/internal/store"
)

// Defaults for Options.
const (
	DefaultJobTimeout = time.Minute
	// DefaultMaxWorkers: jobs mostly wait on a chain RPC or a webhook receiver, not on the
	// CPU, so a 2-core node runs many at once; more would mostly queue on SQLite's writer.
	DefaultMaxWorkers = 16
)

// Options configure a Queue. Zero values take the defaults.
type Options struct {
	// JobTimeout bounds one run of a job: its context is cancelled then. A worker may set
	// its own with Timeout. Default DefaultJobTimeout.
	JobTimeout time.Duration
	// RescueStuckJobsAfter is how long a job may stay running before it is taken to
	// belong to a dead process and retried. It must exceed every job's timeout, or a slow
	// job could run twice at once. Default JobTimeout + 1 minute.
	RescueStuckJobsAfter time.Duration
	// MaxWorkers is how many jobs this node runs at once. Default DefaultMaxWorkers.
	MaxWorkers int
}

// Queue is this node's River client: it inserts jobs, and once started works them.
type Queue struct {
	db      *store.DB
	log     *slog.Logger
	conns   *store.QueueConns
	driver  riverdriver.Driver[*sql.Tx]
	client  *river.Client[*sql.Tx]
	workers *river.Workers
}

// New builds a queue on db; it does not migrate (Migrate) or start working (Start).
// Register every worker before Start, and before inserting a job of its kind.
func New(db *store.DB, log *slog.Logger, opts Options) (*Queue, error) {
	if opts.JobTimeout == 0 {
		opts.JobTimeout = DefaultJobTimeout
	}
	if opts.RescueStuckJobsAfter == 0 {
		opts.RescueStuckJobsAfter = opts.JobTimeout + time.Minute
	}
	if opts.MaxWorkers == 0 {
		opts.MaxWorkers = DefaultMaxWorkers
	}
	switch {
	case opts.JobTimeout < 0 || opts.MaxWorkers < 0:
		return nil, fmt.Errorf("jobs: invalid options %+v", opts)
	case opts.RescueStuckJobsAfter <= opts.JobTimeout:
		return nil, fmt.Errorf("jobs: RescueStuckJobsAfter (%v) must exceed JobTimeout (%v)", opts.RescueStuckJobsAfter, opts.JobTimeout)
	}
	conns, err := db.OpenQueueConns()
	if err != nil {
		return nil, err
	}
	q := &Queue{db: db, log: log, conns: conns, workers: river.NewWorkers()}
	if db.Dialect == store.Postgres {
		q.driver = riverdatabasesql.NewWithPgxListener(conns.DB, conns.Listener)
	} else {
		q.driver = riversqlite.New(conns.DB)
	}
	q.client, err = river.NewClient(q.driver, &river.Config{
		JobTimeout:           opts.JobTimeout,
		RescueStuckJobsAfter: opts.RescueStuckJobsAfter,
		Queues:               map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: opts.MaxWorkers}},
		Workers:              q.workers,
		Logger:               log,
	})
	if err != nil {
		conns.Close()
		return nil, fmt.Errorf("jobs: %w", err)
	}
	return q, nil
}

// migrateLock is the PostgreSQL advisory lock key that keeps nodes starting together from
// applying River's migrations at once (rivermigrate takes no lock of its own).
const migrateLock = 0x636f756e74657231 // "counter1"

// Migrate creates or upgrades River's tables. On PostgreSQL each version is its own
// transaction: River's 004 adds an enum value that 006 uses, which PostgreSQL refuses
// within one transaction.
func (q *Queue) Migrate(ctx context.Context) error {
	m, err := rivermigrate.New(q.driver, &rivermigrate.Config{Logger: q.log})
	if err != nil {
		return fmt.Errorf("jobs: migrations: %w", err)
	}
	if q.db.Dialect == store.Postgres {
		conn, err := q.conns.DB.Conn(ctx)
		if err != nil {
			return fmt.Errorf("jobs: migrate: %w", err)
		}
		defer conn.Close()
		if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, int64(migrateLock)); err != nil {
			return fmt.Errorf("jobs: migrate: lock: %w", err)
		}
		defer func() {
			if _, uerr := conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, int64(migrateLock)); uerr != nil {
				// Never pool a connection that may still hold the lock.
				conn.Raw(func(any) error { return driver.ErrBadConn })
			}
		}()
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil { // logs each version applied
		return fmt.Errorf("jobs: migrate: %w", err)
	}
	return nil
}

// Register adds the worker for jobs of kind T. Call it before Start.
func Register[T river.JobArgs](q *Queue, w river.Worker[T]) error {
	if err := river.AddWorkerSafely(q.workers, w); err != nil {
		return fmt.Errorf("jobs: %w", err)
	}
	return nil
}

// Every inserts a job with args every interval, and once when this node becomes the
// leader: only the leader runs the schedule, so a cluster runs it once. A missed run is
// not made up, so the job must be one that the next run covers (a sweep, a purge).
func (q *Queue) Every(interval time.Duration, args river.JobArgs, opts *river.InsertOpts) {
	q.client.PeriodicJobs().Add(river.NewPeriodicJob(river.PeriodicInterval(interval),
		func() (river.JobArgs, *river.InsertOpts) { return args, opts },
		&river.PeriodicJobOpts{RunOnStart: true}))
}

// InsertTx inserts a job in tx: it becomes visible, and runs, only if tx commits.
func (q *Queue) InsertTx(ctx context.Context, tx *store.Tx, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error) {
	ctx, stx := tx.SQL(ctx)
	res, err := q.client.InsertTx(ctx, stx, args, opts)
	if err != nil {
		return nil, fmt.Errorf("jobs: insert %s: %w", args.Kind(), err)
	}
	return res, nil
}

// Start starts working jobs. Cancelling ctx does not stop the queue: call Stop, which
// lets running jobs finish.
func (q *Queue) Start(ctx context.Context) error {
	if err := q.client.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("jobs: start: %w", err)
	}
	return nil
}

// stopGrace is how long Stop waits for cancelled jobs to return once ctx has ended.
const stopGrace = 5 * time.Second

// Stop stops fetching jobs and waits for the running ones until ctx ends; then it
// cancels their contexts and waits a few seconds more. A job cut short runs again later.
func (q *Queue) Stop(ctx context.Context) error {
	err := q.client.Stop(ctx)
	if err == nil || ctx.Err() == nil {
		return err
	}
	cctx, cancel := context.WithTimeout(context.Background(), stopGrace)
	defer cancel()
	return errors.Join(err, q.client.StopAndCancel(cctx))
}

// Close releases the queue's connections. Stop it first.
func (q *Queue) Close() error { return q.conns.Close() }

// AddQueue adds a named queue with workers of its own (and a fetch cooldown; 0 keeps
// River's), so one kind of job cannot hold every worker: webhook deliveries wait on
// receivers that may be slow or dead. Jobs go to it through their args' InsertOpts
// (river.JobArgsWithInsertOpts). Call it before Start.
func (q *Queue) AddQueue(name string, workers int, cooldown time.Duration) error {
	if err := q.client.Queues().Add(name, river.QueueConfig{MaxWorkers: workers, FetchCooldown: cooldown}); err != nil {
		return fmt.Errorf("jobs: add queue %s: %w", name, err)
	}
	return nil
}
