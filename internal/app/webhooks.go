package app

import (
	"context"
	"fmt"
	"time"

	"github.com/riverqueue/river"

	"github.com/countersign/countersign/internal/httpapi"
	"github.com/countersign/countersign/internal/jobs"
	"github.com/countersign/countersign/internal/secrets"
	"github.com/countersign/countersign/internal/store"
	"github.com/countersign/countersign/internal/webhooks"
)

// setupWebhooks builds the webhooks service, installs the store's emitter (every state
// change writes its events and their delivery jobs in its own transaction) and registers
// the delivery worker and the retention purge.
func (a *App) setupWebhooks(ring *secrets.Ring) error {
	schedule, err := webhooks.ParseSchedule(a.Cfg.WebhookRetrySchedule)
	if err != nil {
		return err
	}
	a.Webhooks = webhooks.NewService(webhookStore{DB: a.DB, q: a.Jobs}, ring, schedule, a.Cfg.WebhooksAllowPrivate, a.Now)
	a.DB.SetEmitter(a.emitWebhookEvents)
	if a.OnIncoming == nil { // transfers the indexer finds coming in are events too
		a.OnIncoming = store.EmitIncoming
	}
	if err := a.Jobs.AddQueue(webhookQueue, webhookWorkers, 25*time.Millisecond); err != nil {
		return err
	}
	if err := jobs.Register(a.Jobs, &deliverWorker{w: a.Webhooks}); err != nil {
		return err
	}
	if err := jobs.Register(a.Jobs, &purgeEventsWorker{a: a}); err != nil {
		return err
	}
	a.Jobs.Every(time.Hour, purgeEventsArgs{}, nil)
	return nil
}

// emitWebhookEvents is the store's Emitter: one event row and one delivery job per
// subscribed webhook, in tx. Organizations without webhooks pay one indexed read.
func (a *App) emitWebhookEvents(ctx context.Context, tx *store.Tx, orgID, kind string, data any) error {
	hooks, err := a.DB.SubscribedWebhooks(ctx, tx, orgID, kind)
	if err != nil || len(hooks) == 0 {
		return err
	}
	payload, err := httpapi.EventData(data)
	if err != nil {
		return fmt.Errorf("webhooks: %s: %w", kind, err)
	}
	for _, ev := range webhooks.NewEvents(hooks, kind, payload, a.Now()) {
		if err := a.DB.InsertWebhookEvent(ctx, tx, ev); err != nil {
			return err
		}
		if _, err := a.Jobs.InsertTx(ctx, tx, deliverArgs{EventID: ev.ID}, nil); err != nil {
			return err
		}
	}
	return nil
}

// webhookStore is the store's webhooks plus the job queue: a retry and the job that
// delivers it are written in one transaction.
type webhookStore struct {
	*store.DB
	q *jobs.Queue
}

func (s webhookStore) RecordAttempt(ctx context.Context, ev webhooks.Event, retry *webhooks.Event) (bool, error) {
	return s.DB.RecordAttempt(ctx, ev, retry, func(ctx context.Context, tx *store.Tx, r webhooks.Event) error {
		_, err := s.q.InsertTx(ctx, tx, deliverArgs{EventID: r.ID}, &river.InsertOpts{ScheduledAt: r.NextAttemptAt})
		return err
	})
}

// deliverArgs is the job that makes one delivery attempt of one event.
type deliverArgs struct {
	EventID string `json:"eventId"`
}

func (deliverArgs) Kind() string { return "webhook_deliver" }

// Deliveries have a queue of their own: a receiver that hangs until the client times out
// holds a delivery worker, never one that broadcasts transfers. webhookWorkers bounds the
// concurrent deliveries of a node (mostly waiting on the network, not the CPU).
const (
	webhookQueue   = "webhooks"
	webhookWorkers = 32
)

func (deliverArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{Queue: webhookQueue} }

// deliverWorker runs deliverArgs. It is idempotent (webhooks.Service.Deliver skips an
// event whose attempt is recorded); a job cut short by a crash runs again, so a receiver
// may see an attempt twice (at-least-once, as Dfns documents).
type deliverWorker struct {
	river.WorkerDefaults[deliverArgs]
	w *webhooks.Service
}

func (w *deliverWorker) Work(ctx context.Context, j *river.Job[deliverArgs]) error {
	return w.w.Deliver(ctx, j.Args.EventID)
}

// Timeout bounds one attempt: the HTTP client gives up first.
func (w *deliverWorker) Timeout(*river.Job[deliverArgs]) time.Duration {
	return webhooks.AttemptTimeout + 15*time.Second
}

// purgeEventsArgs is the periodic job that deletes events past their retention.
type purgeEventsArgs struct{}

func (purgeEventsArgs) Kind() string { return "purge_webhook_events" }

type purgeEventsWorker struct {
	river.WorkerDefaults[purgeEventsArgs]
	a *App
}

func (w *purgeEventsWorker) Work(ctx context.Context, _ *river.Job[purgeEventsArgs]) error {
	n, err := w.a.Webhooks.Purge(ctx)
	if err != nil {
		return err
	}
	if n > 0 {
		w.a.Log.Info("purged old webhook events", "count", n)
	}
	return nil
}
