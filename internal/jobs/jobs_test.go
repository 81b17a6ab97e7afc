package jobs

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/countersign/countersign/internal/secrets"
	"github.com/countersign/countersign/internal/store"
	"github.com/countersign/countersign/internal/testutil"
)

// The crash test re-runs this test binary as a helper node: with helperEnv set to a DSN,
// TestMain runs helperMain instead of the tests.
const helperEnv = "COUNTERSIGN_JOBS_HELPER_DSN"

func TestMain(m *testing.M) {
	if dsn := os.Getenv(helperEnv); dsn != "" {
		helperMain(dsn)
		return
	}
	os.Exit(m.Run())
}

// fast are short limits, so a job of a killed process is retried within seconds.
var fast = Options{JobTimeout: 2 * time.Second, RescueStuckJobsAfter: 3 * time.Second}

func testLog() *slog.Logger {
	if os.Getenv("COUNTERSIGN_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func newRing() *secrets.Ring {
	key := make([]byte, 32)
	rand.Read(key)
	r, err := secrets.NewRing([]secrets.KEK{{ID: "k1", Key: key}})
	if err != nil {
		panic(err)
	}
	return r
}

// openDB opens and migrates dsn (our schema and the test tables); close it with the
// returned function, or let the test's cleanup do it.
func openDB(t testing.TB, dsn string) (*store.DB, func()) {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, dsn, newRing())
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	var once sync.Once
	closeDB := func() { once.Do(func() { db.Close() }) }
	t.Cleanup(closeDB)
	if err := db.Migrate(ctx, nil); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	err = db.Tx(ctx, func(tx *store.Tx) error {
		for _, q := range []string{
			`CREATE TABLE IF NOT EXISTS test_orders (id INTEGER PRIMARY KEY)`,
			`CREATE TABLE IF NOT EXISTS test_effects (order_id INTEGER PRIMARY KEY)`,
		} {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("test tables: %v", err)
	}
	return db, closeDB
}

// newQueue builds and migrates a queue on db; stop and close it with the returned
// function, or let the test's cleanup do it (before the database closes).
func newQueue(t testing.TB, db *store.DB, opts Options) (*Queue, func()) {
	t.Helper()
	q, err := New(db, testLog(), opts)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := q.Stop(ctx); err != nil {
				t.Errorf("stop: %v", err)
			}
			q.Close()
		})
	}
	t.Cleanup(stop)
	if err := q.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return q, stop
}

func start(t testing.TB, q *Queue) {
	t.Helper()
	if err := q.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// orderArgs is the job a test order's transaction inserts.
type orderArgs struct {
	Order int `json:"order"`
}

func (orderArgs) Kind() string { return "test_order" }

// orderWorker writes the order's effect under its unique key, so a second run changes
// nothing. Orders for which failAfterEffect is true fail their first attempt after the
// effect is written, like a process that dies before it records the job done.
type orderWorker struct {
	river.WorkerDefaults[orderArgs]
	db              *store.DB
	failAfterEffect func(order int) bool

	mu   sync.Mutex
	runs map[int]int
	ran  chan int // each finished run's order, if not nil (never blocks: buffered)
}

func newOrderWorker(db *store.DB) *orderWorker {
	return &orderWorker{db: db, runs: make(map[int]int), ran: make(chan int, 1024)}
}

func (w *orderWorker) Work(ctx context.Context, job *river.Job[orderArgs]) error {
	w.mu.Lock()
	w.runs[job.Args.Order]++
	w.mu.Unlock()
	err := w.db.Tx(ctx, func(tx *store.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO test_effects (order_id) VALUES ($1) ON CONFLICT DO NOTHING`, job.Args.Order)
		return err
	})
	if err == nil && job.Attempt == 1 && w.failAfterEffect != nil && w.failAfterEffect(job.Args.Order) {
		err = errors.New("lost the acknowledgement")
	}
	w.ran <- job.Args.Order
	return err
}

func (w *orderWorker) runsOf(order int) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.runs[order]
}

// placeOrder records order id and inserts its job in one store transaction; fail makes
// the transaction roll back after both.
func placeOrder(ctx context.Context, db *store.DB, q *Queue, id int, opts *river.InsertOpts, fail bool) (*rivertype.JobInsertResult, error) {
	var res *rivertype.JobInsertResult
	err := db.Tx(ctx, func(tx *store.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO test_orders (id) VALUES ($1)`, id); err != nil {
			return err
		}
		var err error
		if res, err = q.InsertTx(ctx, tx, orderArgs{Order: id}, opts); err != nil {
			return err
		}
		if fail {
			return errTestRollback
		}
		return nil
	})
	return res, err
}

var errTestRollback = errors.New("test: roll back")

func count(t testing.TB, q *Queue, query string, args ...any) int {
	t.Helper()
	var n int
	if err := q.conns.DB.QueryRowContext(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func TestInsertTxCommitsOrRollsBackWithTheStateChange(t *testing.T) {
	t.Parallel()
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		t.Parallel()
		ctx := context.Background()
		db, _ := openDB(t, e.DSN(t))
		q, _ := newQueue(t, db, fast)
		w := newOrderWorker(db)
		if err := Register(q, w); err != nil {
			t.Fatal(err)
		}
		start(t, q)

		began := time.Now()
		if _, err := placeOrder(ctx, db, q, 1, nil, false); err != nil {
			t.Fatal(err)
		}
		select {
		case id := <-w.ran:
			if id != 1 {
				t.Fatalf("ran order %d, want 1", id)
			}
			t.Logf("the committed job ran %v after its transaction began", time.Since(began).Round(time.Millisecond))
		case <-time.After(15 * time.Second):
			t.Fatal("the committed job did not run")
		}
		if _, err := placeOrder(ctx, db, q, 2, nil, true); !errors.Is(err, errTestRollback) {
			t.Fatalf("rolled-back order: %v", err)
		}
		// The rolled-back job was never stored, so no poll can find it.
		if n := count(t, q, `SELECT COUNT(*) FROM river_job`); n != 1 {
			t.Fatalf("%d jobs stored, want 1", n)
		}
		if n := count(t, q, `SELECT COUNT(*) FROM test_orders`); n != 1 {
			t.Fatalf("%d orders stored, want 1", n)
		}
		select {
		case id := <-w.ran:
			t.Fatalf("order %d ran again", id)
		case <-time.After(1500 * time.Millisecond): // longer than a fetch poll
		}
		if w.runsOf(2) != 0 {
			t.Fatal("the rolled-back job ran")
		}
	})
}

// Sixteen writers place 200 orders through store transactions (on SQLite: group commits,
// each caller in a savepoint), while the queue works the jobs on its own connection.
// Every tenth writer also places an order that rolls back, in the same batches as the
// others; every order is inserted twice under a unique key; and every seventh order's
// first run fails after writing its effect. Each order must run, its effect must exist
// once, and no rolled-back order may run.
func TestConcurrentInsertTxRunsEachJobAndEachEffectOnce(t *testing.T) {
	t.Parallel()
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		db, _ := openDB(t, e.DSN(t))
		// Run counts are exact here, so no run may be cut short by a timeout or rescued while
		// it runs: a loaded machine makes single transactions take seconds.
		q, _ := newQueue(t, db, Options{JobTimeout: 30 * time.Second, RescueStuckJobsAfter: 45 * time.Second})
		w := newOrderWorker(db)
		w.failAfterEffect = func(order int) bool { return order%7 == 0 }
		if err := Register(q, w); err != nil {
			t.Fatal(err)
		}
		start(t, q)

		const orders, writers = 200, 16
		unique := &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true}}
		began := time.Now()
		var (
			wg         sync.WaitGroup
			next       atomic.Int64
			dupSkipped atomic.Int64
			slowest    atomic.Int64 // ns of the slowest order transaction
			errc       = make(chan error, writers)
		)
		for range writers {
			wg.Go(func() {
				for {
					id := int(next.Add(1))
					if id > orders {
						return
					}
					t0 := time.Now()
					if _, err := placeOrder(ctx, db, q, id, unique, false); err != nil {
						errc <- fmt.Errorf("order %d: %w", id, err)
						return
					}
					if d := int64(time.Since(t0)); d > slowest.Load() {
						slowest.Store(d) // racy max, good enough for a log line
					}
					// The same job again, in a transaction of its own: the unique key skips it.
					err := db.Tx(ctx, func(tx *store.Tx) error {
						res, err := q.InsertTx(ctx, tx, orderArgs{Order: id}, unique)
						if err == nil && res.UniqueSkippedAsDuplicate {
							dupSkipped.Add(1)
						}
						return err
					})
					if err != nil {
						errc <- fmt.Errorf("duplicate of order %d: %w", id, err)
						return
					}
					if id%10 == 0 {
						if _, err := placeOrder(ctx, db, q, 10000+id, unique, true); !errors.Is(err, errTestRollback) {
							errc <- fmt.Errorf("rolled-back order %d: %v", 10000+id, err)
							return
						}
					}
				}
			})
		}
		wg.Wait()
		close(errc)
		for err := range errc {
			t.Fatal(err)
		}
		inserted := time.Since(began)
		if got := dupSkipped.Load(); got != orders {
			t.Errorf("%d duplicate inserts skipped, want %d", got, orders)
		}

		// Wait for every job to complete (the failed first runs retry after about 1 s).
		for count(t, q, `SELECT COUNT(*) FROM river_job WHERE state = 'completed'`) < orders {
			if ctx.Err() != nil {
				t.Fatalf("timed out: %d of %d jobs completed", count(t, q, `SELECT COUNT(*) FROM river_job WHERE state = 'completed'`), orders)
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Logf("%d orders placed by %d writers in %v (slowest transaction %v); all jobs done after %v",
			orders, writers, inserted.Round(time.Millisecond), time.Duration(slowest.Load()).Round(time.Millisecond), time.Since(began).Round(time.Millisecond))

		if n := count(t, q, `SELECT COUNT(*) FROM river_job`); n != orders {
			t.Errorf("%d jobs stored, want %d", n, orders)
		}
		if n := count(t, q, `SELECT COUNT(*) FROM test_orders`); n != orders {
			t.Errorf("%d orders stored, want %d", n, orders)
		}
		if n := count(t, q, `SELECT COUNT(*) FROM test_effects`); n != orders {
			t.Errorf("%d effects stored, want %d", n, orders)
		}
		for id := 1; id <= orders; id++ {
			want := 1
			if id%7 == 0 {
				want = 2
			}
			if got := w.runsOf(id); got != want {
				t.Errorf("order %d ran %d times, want %d", id, got, want)
			}
			if id%10 == 0 && w.runsOf(10000+id) != 0 {
				t.Errorf("rolled-back order %d ran", 10000+id)
			}
		}
	})
}

// failArgs is a job whose worker fails its first FailTimes attempts.
type failArgs struct {
	FailTimes int `json:"fail_times"`
}

func (failArgs) Kind() string { return "test_fail" }

type failWorker struct {
	river.WorkerDefaults[failArgs]
	mu     sync.Mutex
	starts map[int64][]time.Time
}

func (w *failWorker) Work(ctx context.Context, job *river.Job[failArgs]) error {
	w.mu.Lock()
	w.starts[job.ID] = append(w.starts[job.ID], time.Now())
	w.mu.Unlock()
	if job.Attempt <= job.Args.FailTimes {
		return fmt.Errorf("receiver answered 503 (attempt %d)", job.Attempt)
	}
	return nil
}

func TestFailingJobIsRetriedWithBackoffAndItsErrorRecorded(t *testing.T) {
	t.Parallel()
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		t.Parallel()
		ctx := context.Background()
		db, _ := openDB(t, e.DSN(t))
		q, _ := newQueue(t, db, fast)
		w := &failWorker{starts: make(map[int64][]time.Time)}
		if err := Register(q, w); err != nil {
			t.Fatal(err)
		}
		start(t, q)

		insert := func(args failArgs, opts *river.InsertOpts) int64 {
			var id int64
			err := db.Tx(ctx, func(tx *store.Tx) error {
				res, err := q.InsertTx(ctx, tx, args, opts)
				if err == nil {
					id = res.Job.ID
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			return id
		}
		recovers := insert(failArgs{FailTimes: 1}, nil)
		givesUp := insert(failArgs{FailTimes: 99}, &river.InsertOpts{MaxAttempts: 2})

		wait := func(id int64, state rivertype.JobState) *rivertype.JobRow {
			deadline := time.Now().Add(20 * time.Second)
			for {
				j, err := q.client.JobGet(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				if j.State == state {
					return j
				}
				if time.Now().After(deadline) {
					t.Fatalf("job %d is %s with errors %+v, want %s", id, j.State, j.Errors, state)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
		j := wait(recovers, rivertype.JobStateCompleted)
		if j.Attempt != 2 || len(j.Errors) != 1 || j.Errors[0].Attempt != 1 || !strings.Contains(j.Errors[0].Error, "503 (attempt 1)") {
			t.Fatalf("completed job: attempt %d, errors %+v", j.Attempt, j.Errors)
		}
		j = wait(givesUp, rivertype.JobStateDiscarded)
		if j.Attempt != 2 || len(j.Errors) != 2 || !strings.Contains(j.Errors[1].Error, "503 (attempt 2)") {
			t.Fatalf("discarded job: attempt %d, errors %+v", j.Attempt, j.Errors)
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, id := range []int64{recovers, givesUp} {
			s := w.starts[id]
			if len(s) != 2 {
				t.Fatalf("job %d started %d times, want 2", id, len(s))
			}
			// River's default backoff is attempt⁴ seconds ±10%: about 1 s before the second.
			if gap := s[1].Sub(s[0]); gap < 850*time.Millisecond {
				t.Errorf("job %d retried after %v, want a backoff of about 1 s", id, gap)
			} else {
				t.Logf("job %d retried after %v", id, gap.Round(time.Millisecond))
			}
		}
	})
}

// tickArgs is a periodic test job.
type tickArgs struct{}

func (tickArgs) Kind() string { return "test_tick" }

type tickWorker struct {
	river.WorkerDefaults[tickArgs]
	ran chan struct{}
}

func (w *tickWorker) Work(context.Context, *river.Job[tickArgs]) error {
	w.ran <- struct{}{}
	return nil
}

func TestPeriodicJobRunsOnStart(t *testing.T) {
	t.Parallel()
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		t.Parallel()
		db, _ := openDB(t, e.DSN(t))
		q, _ := newQueue(t, db, fast)
		w := &tickWorker{ran: make(chan struct{}, 16)}
		if err := Register(q, w); err != nil {
			t.Fatal(err)
		}
		q.Every(time.Hour, tickArgs{}, nil)
		began := time.Now()
		start(t, q)
		select {
		case <-w.ran:
			t.Logf("periodic job ran %v after start", time.Since(began).Round(time.Millisecond))
		case <-time.After(20 * time.Second):
			t.Fatal("the periodic job did not run on start")
		}
	})
}

// blockArgs is the crash test's job.
type blockArgs struct{}

func (blockArgs) Kind() string { return "test_block" }

// blockWorker, in the helper, reports the job's start and then hangs, ignoring its
// context, until the process is killed. In the test process it reports the job's run.
type blockWorker struct {
	river.WorkerDefaults[blockArgs]
	ran chan *rivertype.JobRow
}

func (w *blockWorker) Work(ctx context.Context, job *river.Job[blockArgs]) error {
	if w.ran != nil {
		w.ran <- job.JobRow
		return nil
	}
	fmt.Printf("started job %d attempt %d\n", job.ID, job.Attempt)
	select {}
}

// helperMain is the node that dies: it works the crash test's job until it is killed.
func helperMain(dsn string) {
	ctx := context.Background()
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(2)
	}
	db, err := store.Open(ctx, dsn, newRing())
	if err != nil {
		fail(err)
	}
	q, err := New(db, testLog(), fast)
	if err != nil {
		fail(err)
	}
	if err := Register(q, &blockWorker{}); err != nil {
		fail(err)
	}
	if err := q.Start(ctx); err != nil {
		fail(err)
	}
	select {}
}

// A node takes a job and is killed (SIGKILL) while working it; a new node must retry and
// complete it. The job is rescued once it has run longer than RescueStuckJobsAfter, by
// the leader, and the new node leads only once the dead node's lease has run out.
func TestJobOfKilledNodeIsRetried(t *testing.T) {
	t.Parallel()
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		t.Parallel()
		ctx := context.Background()
		dsn := e.DSN(t)

		// Place the job, then close everything: on SQLite only one process may open the file.
		db, closeDB := openDB(t, dsn)
		q, stop := newQueue(t, db, fast)
		if err := Register(q, &blockWorker{}); err != nil {
			t.Fatal(err)
		}
		var jobID int64
		err := db.Tx(ctx, func(tx *store.Tx) error {
			res, err := q.InsertTx(ctx, tx, blockArgs{}, nil)
			if err == nil {
				jobID = res.Job.ID
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		stop()
		closeDB()

		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), helperEnv+"="+dsn)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer cmd.Process.Kill()
		lines := bufio.NewScanner(out)
		want := fmt.Sprintf("started job %d attempt 1", jobID)
		started := make(chan bool, 1)
		go func() {
			for lines.Scan() {
				if lines.Text() == want {
					started <- true
					return
				}
			}
			started <- false
		}()
		select {
		case ok := <-started:
			if !ok {
				t.Fatal("the helper exited before it took the job")
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the helper did not take the job")
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()
		killed := time.Now()

		db, _ = openDB(t, dsn)
		q, _ = newQueue(t, db, fast)
		w := &blockWorker{ran: make(chan *rivertype.JobRow, 1)}
		if err := Register(q, w); err != nil {
			t.Fatal(err)
		}
		start(t, q)
		select {
		case j := <-w.ran:
			took := time.Since(killed)
			if j.ID != jobID || j.Attempt != 2 || len(j.Errors) != 1 {
				t.Fatalf("rerun: job %d attempt %d errors %+v; want job %d attempt 2 with the rescue error", j.ID, j.Attempt, j.Errors, jobID)
			}
			t.Logf("the killed node's job ran again %v after the kill (%s)", took.Round(100*time.Millisecond), j.Errors[0].Error)
		case <-time.After(60 * time.Second):
			t.Fatal("the killed node's job was not retried within 60 s")
		}
	})
}

// Nodes starting together migrate River's tables at once: one applies them, the others
// wait for it (PostgreSQL advisory lock) and find nothing left to do.
func TestConcurrentMigrate(t *testing.T) {
	t.Parallel()
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		if e.Name == "sqlite" {
			t.Skip("one process per SQLite database (store.Open's file lock)")
		}
		t.Parallel()
		dsn := e.DSN(t)
		var wg sync.WaitGroup
		errc := make(chan error, 4)
		for range 4 {
			db, _ := openDB(t, dsn)
			q, err := New(db, testLog(), Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { q.Close() })
			wg.Go(func() { errc <- q.Migrate(context.Background()) })
		}
		wg.Wait()
		close(errc)
		for err := range errc {
			if err != nil {
				t.Fatal(err)
			}
		}
	})
}

func TestOptions(t *testing.T) {
	t.Parallel()
	db, _ := openDB(t, testutil.Engines(t)[0].DSN(t))
	tests := []struct {
		name string
		opts Options
		ok   bool
	}{
		{"ok/defaults", Options{}, true},
		{"ok/short", fast, true},
		{"ok/timeout-only", Options{JobTimeout: 2 * time.Hour}, true},
		{"fail/rescue-not-after-timeout", Options{JobTimeout: time.Minute, RescueStuckJobsAfter: time.Minute}, false},
		{"fail/rescue-before-default-timeout", Options{RescueStuckJobsAfter: time.Second}, false},
		{"fail/negative-timeout", Options{JobTimeout: -1}, false},
		{"fail/negative-workers", Options{MaxWorkers: -1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := New(db, testLog(), tt.opts)
			if (err == nil) != tt.ok {
				t.Fatalf("New(%+v) = %v, ok want %v", tt.opts, err, tt.ok)
			}
			if q != nil {
				q.Close()
			}
		})
	}
}
