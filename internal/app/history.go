package app

import (
	"context"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/countersign/countersign/internal/jobs"
	"github.com/countersign/countersign/internal/store"
	"github.com/countersign/countersign/internal/wallets"
)

// historyStore is the store's history plus the hook that runs with each new incoming event.
type historyStore struct {
	*store.DB
	a *App
}

func (s historyStore) RecordHistory(ctx context.Context, events []wallets.HistoryEvent, cursor wallets.ChainCursor) (int, error) {
	return s.DB.RecordHistory(ctx, events, cursor, s.a.OnIncoming)
}

// historyArgs is the wallet history indexer (wallets.Service.IndexNetworks). It is one job
// for the whole cluster that never completes: each run indexes what is new on every EVM
// network that has a wallet, then snoozes historyPoll, so it leaves no row per run behind.
// Uniqueness (by kind, in every live state) keeps it single however many nodes insert it.
type historyArgs struct{}

func (historyArgs) Kind() string { return "wallet_history_index" }

// historyPoll is the pause between two indexer runs: a transfer shows in the history about
// this long after it is mined. An idle run costs one head read and one cursor read per
// network.
const historyPoll = 2 * time.Second

// historyUnique makes historyArgs a singleton among the jobs that may still run.
var historyUnique = river.UniqueOpts{ByState: []rivertype.JobState{rivertype.JobStateAvailable, rivertype.JobStatePending,
	rivertype.JobStateRunning, rivertype.JobStateRetryable, rivertype.JobStateScheduled}}

// historyWorker runs historyArgs. A failed run is logged and retried at the next snooze, so
// the job is never discarded.
type historyWorker struct {
	river.WorkerDefaults[historyArgs]
	a *App
}

func (w *historyWorker) Work(ctx context.Context, _ *river.Job[historyArgs]) error {
	if _, err := w.a.Wallets.IndexNetworks(ctx); err != nil && ctx.Err() == nil {
		w.a.Log.Warn("history: indexer run failed; will retry", "err", err)
	}
	return river.JobSnooze(historyPoll)
}

// startHistory registers the indexer and makes sure it exists: the leader inserts it at
// start and then hourly, which is a no-op while it lives (uniqueness).
func (a *App) startHistory() error {
	a.Wallets.SetHistory(historyStore{DB: a.DB, a: a}, a.Chains, a.Log)
	if err := jobs.Register(a.Jobs, &historyWorker{a: a}); err != nil {
		return err
	}
	a.Jobs.Every(time.Hour, historyArgs{}, &river.InsertOpts{UniqueOpts: historyUnique})
	return nil
}
