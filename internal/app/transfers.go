package app

import (
	"context"
	"errors"
	"time"

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
	err := w.w.Advance(ctx, j.Args.TransferID)
	if errors.Is(err, wallets.ErrPending) {
		return river.JobSnooze(min(max(time.Since(j.CreatedAt)/10, transferPoll), transferPollMax))
	}
	return err
}
