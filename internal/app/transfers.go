package app

import (
	"context"
	"errors"
	"os"
	"syscall"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/riverqueue/river"

	"github.com/countersign/countersign/internal/jobs"
	"github.com/countersign/countersign/internal/store"
	"github.com/countersign/countersign/internal/wallets"
)

// transferStore is the store's transfers plus the job queue: a transfer and the job that
// broadcasts it are inserted in one transaction (outbox).
type transferStore struct {
	*store.DB
	q *jobs.Queue
}

func (s transferStore) CreateTransfer(ctx context.Context, t wallets.Transfer, sender string, chainNonce uint64,
	sign func(nonce uint64) ([]byte, string, error)) (wallets.Transfer, error) {
	return s.DB.CreateTransfer(ctx, t, sender, chainNonce, sign, func(ctx context.Context, tx *store.Tx) error {
		_, err := s.q.InsertTx(ctx, tx, transferArgs{TransferID: t.ID}, nil)
		return err
	})
}

// transferArgs is the job that broadcasts a transfer's signed transaction and follows it
// until it is mined.
type transferArgs struct {
	TransferID string `json:"transferId"`
}

func (transferArgs) Kind() string { return "transfer_broadcast" }

func (transferArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{Queue: broadcastQueue} }

// broadcastQueue holds the jobs that send transactions and follow them (transfers,
// broadcast requests, nonce fillers, Bitcoin broadcasts), with workers of their own: a
// run mostly waits on the chain (on a dev chain it waits for the block, see
// wallets.Service.send), not on the CPU, so many run at once, and webhook deliveries or
// purges never hold them up. The short fetch cooldown lets a freed worker take the next
// job at once (River's default waits 100 ms between fetches, which capped the default
// queue at about 160 runs a second). 64 workers drained one wallet's backlog fastest on
// 2 cores (docs/benchmarks.md, "Transfers end to end"). Jobs queued before this queue
// existed stay in the default queue and run there.
const (
	broadcastQueue    = "broadcasts"
	broadcastWorkers  = 64
	broadcastCooldown = 10 * time.Millisecond
)

// transferWorker runs transferArgs. It is idempotent (wallets.Service.Advance resends the
// stored bytes only); while the transaction waits to be mined it snoozes rather than
// holding a worker.
type transferWorker struct {
	river.WorkerDefaults[transferArgs]
	w *wallets.Service
}

// transferPoll is how long a broadcast transfer first waits before its receipt is checked
// again; the wait grows with the transfer's age (a tenth of it) up to transferPollMax, so a
// transaction stuck in a mempool costs little.
const (
	transferPoll    = 500 * time.Millisecond
	transferPollMax = 30 * time.Second
)

func (w *transferWorker) Work(ctx context.Context, j *river.Job[transferArgs]) error {
	return snoozePending(j.CreatedAt, w.w.Advance(ctx, j.Args.TransferID))
}

// txStore is the store's broadcast requests and nonce fillers plus the job queue, with the
// same outbox rule as transferStore.
type txStore struct {
	*store.DB
	q *jobs.Queue
}

func (s txStore) CreateTransaction(ctx context.Context, t wallets.Transaction, sender string, chainNonce uint64,
	sign func(nonce uint64) ([]byte, string, error)) (wallets.Transaction, error) {
	return s.DB.CreateTransaction(ctx, t, sender, chainNonce, sign, func(ctx context.Context, tx *store.Tx) error {
		_, err := s.q.InsertTx(ctx, tx, transactionArgs{TransactionID: t.ID}, nil)
		return err
	})
}

func (s txStore) FailAndFill(ctx context.Context, replaces, reason string, f wallets.NonceFill) error {
	return s.DB.FailAndFill(ctx, replaces, reason, f, func(ctx context.Context, tx *store.Tx) error {
		_, err := s.q.InsertTx(ctx, tx, fillArgs{Network: f.Network, Address: f.Address, Nonce: f.Nonce}, nil)
		return err
	})
}

// transactionArgs is the job that broadcasts a broadcast request's signed transaction and
// follows it until it is mined (as transferArgs does for transfers).
type transactionArgs struct {
	TransactionID string `json:"transactionId"`
}

func (transactionArgs) Kind() string { return "transaction_broadcast" }

func (transactionArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{Queue: broadcastQueue} }

type transactionWorker struct {
	river.WorkerDefaults[transactionArgs]
	w *wallets.Service
}

func (w *transactionWorker) Work(ctx context.Context, j *river.Job[transactionArgs]) error {
	return snoozePending(j.CreatedAt, w.w.AdvanceTransaction(ctx, j.Args.TransactionID))
}

// fillArgs is the job that broadcasts the filler of a refused nonce and follows it.
type fillArgs struct {
	Network string `json:"network"`
	Address string `json:"address"`
	Nonce   uint64 `json:"nonce"`
}

func (fillArgs) Kind() string { return "nonce_fill" }

func (fillArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{Queue: broadcastQueue} }

// fillWorker runs fillArgs. A filler refused for lack of funds snoozes like a pending
// transaction (a snooze uses up no attempt), so funding the wallet later unblocks its nonces.
type fillWorker struct {
	river.WorkerDefaults[fillArgs]
	w *wallets.Service
}

func (w *fillWorker) Work(ctx context.Context, j *river.Job[fillArgs]) error {
	return snoozePending(j.CreatedAt, w.w.AdvanceFill(ctx, j.Args.Network, j.Args.Address, j.Args.Nonce))
}

func snoozePending(created time.Time, err error) error {
	if errors.Is(err, wallets.ErrPending) {
		return river.JobSnooze(min(max(time.Since(created)/10, transferPoll), transferPollMax))
	}
	return err
}

// FaultEnv names the fault-injection switch of crash tests (internal/e2e/kill_test.go).
// "kill-after-send" makes the node SIGKILL itself right after a broadcast job handed a
// transaction to the network (once it is mined, so the crash is after the effect) and
// before the job records it. Never set it in production.
const FaultEnv = "COUNTERSIGN_FAULT"

// wireTransactions attaches broadcast requests and nonce fillers to the wallets service,
// adds the broadcast queue and registers their jobs.
func (a *App) wireTransactions(db *store.DB, q *jobs.Queue) error {
	if err := q.AddQueue(broadcastQueue, broadcastWorkers, broadcastCooldown); err != nil {
		return err
	}
	ts := txStore{DB: db, q: q}
	a.Wallets.SetTransactions(ts, ts)
	a.Wallets.SetReplacements(replaceStore{DB: db, q: q})
	if os.Getenv(FaultEnv) == "kill-after-send" {
		a.Log.Warn("fault injection: this node kills itself after its first broadcast", "env", FaultEnv)
		a.Wallets.SetAfterSend(func(ctx context.Context, network, hash string) {
			if b, err := a.Chains.Get(ctx, network); err == nil {
				for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
					if _, err := b.Client.TransactionReceipt(ctx, common.HexToHash(hash)); err == nil {
						break
					}
				}
			}
			a.Log.Warn("fault injection: killing this node after sending, before recording", "txHash", hash)
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		})
	}
	if err := jobs.Register(q, &transactionWorker{w: a.Wallets}); err != nil {
		return err
	}
	return jobs.Register(q, &fillWorker{w: a.Wallets})
}

// replaceStore is the store's speed-ups and cancels plus the job queue: a replacement and
// the job that broadcasts it (a transaction_broadcast job, like any broadcast request)
// are inserted in one transaction (outbox).
type replaceStore struct {
	*store.DB
	q *jobs.Queue
}

func (s replaceStore) CreateReplacement(ctx context.Context, r wallets.Transaction, prev string) error {
	return s.DB.CreateReplacement(ctx, r, prev, func(ctx context.Context, tx *store.Tx) error {
		_, err := s.q.InsertTx(ctx, tx, transactionArgs{TransactionID: r.ID}, nil)
		return err
	})
}
