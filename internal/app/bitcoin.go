package app

import (
	"context"
	"fmt"

	"github.com/riverqueue/river"

	"github.com/countersign/countersign/internal/chains/bitcoin"
	"github.com/countersign/countersign/internal/jobs"
	"github.com/countersign/countersign/internal/store"
	"github.com/countersign/countersign/internal/wallets"
)

// btcTxStore stores Psbt broadcasts with the job that sends them, in one transaction
// (the outbox rule of txStore).
type btcTxStore struct {
	*store.DB
	q *jobs.Queue
}

func (s btcTxStore) CreateBitcoinTransaction(ctx context.Context, t wallets.Transaction) (wallets.Transaction, error) {
	return s.DB.CreateSignedTransaction(ctx, t, func(ctx context.Context, tx *store.Tx) error {
		_, err := s.q.InsertTx(ctx, tx, bitcoinTxArgs{TransactionID: t.ID}, nil)
		return err
	})
}

// bitcoinTxArgs is the job that sends a Psbt broadcast's transaction to the network's
// Bitcoin node and follows it until it is in a block.
type bitcoinTxArgs struct {
	TransactionID string `json:"transactionId"`
}

func (bitcoinTxArgs) Kind() string { return "bitcoin_broadcast" }

func (bitcoinTxArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{Queue: broadcastQueue} }

// bitcoinTxWorker runs bitcoinTxArgs; like the EVM broadcast it is idempotent (it only
// resends the stored bytes) and snoozes while the transaction waits to be mined.
type bitcoinTxWorker struct {
	river.WorkerDefaults[bitcoinTxArgs]
	w *wallets.Service
}

func (w *bitcoinTxWorker) Work(ctx context.Context, j *river.Job[bitcoinTxArgs]) error {
	return snoozePending(j.CreatedAt, w.w.AdvanceBitcoinTransaction(ctx, j.Args.TransactionID))
}

// wireBitcoin connects the Bitcoin nodes of --bitcoin-rpc to Psbt broadcasts and registers
// their job. Without any node Psbt broadcasts are refused (400); signatures work anyway.
func (a *App) wireBitcoin(db *store.DB, q *jobs.Queue) error {
	nodes, err := bitcoin.ParseRPC(a.Cfg.BitcoinRPC)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	for network, c := range nodes {
		a.Log.Info("Bitcoin node configured", "network", network, "rpc", c.String())
	}
	a.Wallets.SetBitcoin(nodes, btcTxStore{DB: db, q: q})
	return jobs.Register(q, &bitcoinTxWorker{w: a.Wallets})
}
