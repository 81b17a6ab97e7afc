package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/countersign/countersign/internal/errs"
	"github.com/countersign/countersign/internal/keys"
	"github.com/countersign/countersign/internal/wallets"
	"github.com/countersign/countersign/internal/webhooks"
)

// Emitter receives a state change inside the transaction that makes it (see Tx.Emit).
type Emitter func(ctx context.Context, tx *Tx, orgID, kind string, data any) error

// SetEmitter installs the webhook emitter (the app wires it; without one Emit does nothing).
func (db *DB) SetEmitter(e Emitter) { db.emitter = e }

// Emit reports a state change of orgID to its webhook subscribers: the event rows and
// their delivery jobs are written in t, so they exist if and only if the change commits
// (outbox). kind is a webhooks kind constant; data is the domain value the event carries
// (keys.Key, wallets.Wallet, keys.SignatureRequest, wallets.Transfer; httpapi.EventData
// turns it into the envelope's data object) or an already shaped map[string]any or
// json.RawMessage object. Call it once per state change, after the change's own writes.
func (t *Tx) Emit(ctx context.Context, orgID, kind string, data any) error {
	if t.db.emitter == nil {
		return nil
	}
	return t.db.emitter(ctx, t, orgID, kind, data)
}

const webhookCols = `id, org_id, url, events, status, COALESCE(description, ''), sealed_secret, created_at, updated_at`

func scanWebhook(s scanner, w *webhooks.Webhook) error {
	var events string
	var c, u int64
	if err := s.Scan(&w.ID, &w.OrgID, &w.URL, &events, &w.Status, &w.Description, &w.SealedSecret, &c, &u); err != nil {
		return err
	}
	w.CreatedAt, w.UpdatedAt = fromMS(c), fromMS(u)
	return json.Unmarshal([]byte(events), &w.Events)
}

// CreateWebhook stores w unless its organization has max webhooks already.
func (db *DB) CreateWebhook(ctx context.Context, w webhooks.Webhook, max int) error {
	events, err := json.Marshal(w.Events)
	if err != nil {
		return err
	}
	defer db.hooks.clear()
	return db.Tx(ctx, func(tx *Tx) error {
		db.hooks.clear()
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM webhooks WHERE org_id = $1`, w.OrgID).Scan(&n); err != nil {
			return err
		}
		if n >= max {
			return errs.Ef(errs.Invalid, "an organization has at most %d webhooks", max)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO webhooks (id, org_id, url, events, status, description, sealed_secret,
			created_at, updated_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)`,
			w.ID, w.OrgID, w.URL, string(events), w.Status, nullStr(w.Description), w.SealedSecret, ms(w.CreatedAt), ms(w.UpdatedAt))
		return err
	})
}

// GetWebhook returns a webhook of the organization.
func (db *DB) GetWebhook(ctx context.Context, orgID, id string) (webhooks.Webhook, error) {
	var w webhooks.Webhook
	err := scanWebhook(db.queryRow(ctx, `SELECT `+webhookCols+` FROM webhooks WHERE id = $1 AND org_id = $2`, id, orgID), &w)
	return w, mapErr(err)
}

// ListWebhooks lists the organization's webhooks, newest first.
func (db *DB) ListWebhooks(ctx context.Context, orgID string, page keys.Page) ([]webhooks.Webhook, error) {
	q := `SELECT ` + webhookCols + ` FROM webhooks WHERE org_id = $1`
	args := []any{orgID}
	if page.After != "" {
		q += ` AND id < $2`
		args = append(args, page.After)
	}
	args = append(args, page.Limit)
	q += ` ORDER BY id DESC LIMIT $` + itoa(len(args))
	return queryAll(ctx, db, scanWebhook, q, args...)
}

// UpdateWebhook stores a webhook's url, events, description and status.
func (db *DB) UpdateWebhook(ctx context.Context, w webhooks.Webhook) error {
	events, err := json.Marshal(w.Events)
	if err != nil {
		return err
	}
	defer db.hooks.clear()
	return db.Tx(ctx, func(tx *Tx) error {
		db.hooks.clear()
		return affected(tx.ExecContext(ctx, `UPDATE webhooks SET url = $1, events = $2, description = $3, status = $4, updated_at = $5
			WHERE id = $6 AND org_id = $7`, w.URL, string(events), nullStr(w.Description), w.Status, ms(w.UpdatedAt), w.ID, w.OrgID))
	})
}

// DeleteWebhook deletes a webhook and its events (their pending jobs then find nothing).
func (db *DB) DeleteWebhook(ctx context.Context, orgID, id string) error {
	defer db.hooks.clear()
	return db.Tx(ctx, func(tx *Tx) error {
		db.hooks.clear()
		if err := affected(tx.ExecContext(ctx, `DELETE FROM webhooks WHERE id = $1 AND org_id = $2`, id, orgID)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM webhook_events WHERE webhook_id = $1`, id)
		return err
	})
}

// SubscribedWebhooks returns the organization's enabled webhooks subscribed to kind, read
// in tx (so a webhook created after the state change's transaction began is not missed
// on PostgreSQL's read-committed, and never seen half-made).
func (db *DB) SubscribedWebhooks(ctx context.Context, tx *Tx, orgID, kind string) ([]webhooks.Webhook, error) {
	all, ok := db.hooks.get(orgID)
	if !ok {
		var err error
		if all, err = enabledWebhooks(ctx, tx, orgID); err != nil {
			return nil, err
		}
		db.hooks.put(orgID, all)
	}
	var out []webhooks.Webhook
	for _, w := range all {
		if w.Subscribed(kind) {
			out = append(out, w)
		}
	}
	return out, nil
}

func enabledWebhooks(ctx context.Context, tx *Tx, orgID string) ([]webhooks.Webhook, error) {
	ctx, stx := tx.SQL(ctx)
	rows, err := stx.QueryContext(ctx, `SELECT `+webhookCols+` FROM webhooks WHERE org_id = $1 AND status = 'Enabled'`, orgID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []webhooks.Webhook
	for rows.Next() {
		var w webhooks.Webhook
		if err := scanWebhook(rows, &w); err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, rows.Err()
}

// hookCache keeps each organization's enabled webhooks in memory on SQLite, where this
// process is the only writer and every write, the emitting ones included, runs on one
// connection in order: a state change then pays no read to learn that nobody listens.
// Webhook writes clear it inside their transaction and again after it (commit or not),
// and a failed group commit clears it too, so it never outlives what the database holds.
// PostgreSQL has no cache: other nodes change webhooks there.
type hookCache struct {
	mu sync.Mutex
	m  map[string][]webhooks.Webhook
}

func newHookCache() *hookCache { return &hookCache{m: map[string][]webhooks.Webhook{}} }

func (c *hookCache) get(orgID string) ([]webhooks.Webhook, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ws, ok := c.m[orgID]
	return ws, ok
}

func (c *hookCache) put(orgID string, ws []webhooks.Webhook) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= 10_000 {
		clear(c.m)
	}
	c.m[orgID] = ws
}

func (c *hookCache) clear() {
	if c == nil {
		return
	}
	c.mu.Lock()
	clear(c.m)
	c.mu.Unlock()
}

const eventCols = `id, org_id, webhook_id, kind, data, event_date, delivery_attempt, COALESCE(retry_of, ''),
	COALESCE(first_attempt_at, 0), status, COALESCE(error, ''), delivery_failed, COALESCE(timestamp_sent, 0),
	COALESCE(next_attempt_at, 0), created_at`

func scanEvent(s scanner, e *webhooks.Event) error {
	var data string
	var d, fa, na, c, failed int64
	if err := s.Scan(&e.ID, &e.OrgID, &e.WebhookID, &e.Kind, &data, &d, &e.DeliveryAttempt, &e.RetryOf, &fa, &e.Status,
		&e.Error, &failed, &e.TimestampSent, &na, &c); err != nil {
		return err
	}
	e.Data, e.Date, e.DeliveryFailed, e.CreatedAt = json.RawMessage(data), fromMS(d), failed != 0, fromMS(c)
	if fa != 0 {
		e.FirstAttemptAt = fromMS(fa)
	}
	if na != 0 {
		e.NextAttemptAt = fromMS(na)
	}
	return nil
}

func optTimeMS(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return ms(t)
}

// InsertWebhookEvent stores an event row in tx.
func (db *DB) InsertWebhookEvent(ctx context.Context, tx *Tx, e webhooks.Event) error {
	failed := 0
	if e.DeliveryFailed {
		failed = 1
	}
	var sent any
	if e.TimestampSent != 0 {
		sent = e.TimestampSent
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO webhook_events (id, org_id, webhook_id, kind, data, event_date,
		delivery_attempt, retry_of, first_attempt_at, status, error, delivery_failed, timestamp_sent, next_attempt_at,
		created_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15)`,
		e.ID, e.OrgID, e.WebhookID, e.Kind, string(e.Data), ms(e.Date), e.DeliveryAttempt, nullStr(e.RetryOf),
		optTimeMS(e.FirstAttemptAt), e.Status, nullStr(e.Error), failed, sent, optTimeMS(e.NextAttemptAt), ms(e.CreatedAt))
	return err
}

// ListWebhookEvents lists a webhook's events, newest first.
func (db *DB) ListWebhookEvents(ctx context.Context, orgID, webhookID string, f webhooks.EventFilter) ([]webhooks.Event, error) {
	q := `SELECT ` + eventCols + ` FROM webhook_events WHERE webhook_id = $1 AND org_id = $2`
	args := []any{webhookID, orgID}
	add := func(cond string, v any) {
		args = append(args, v)
		q += " AND " + cond + itoa(len(args))
	}
	if f.Kind != "" {
		add("kind = $", f.Kind)
	}
	if f.DeliveryFailed != nil {
		v := 0
		if *f.DeliveryFailed {
			v = 1
		}
		add("delivery_failed = $", v)
	}
	if f.After != "" {
		add("id < $", f.After)
	}
	args = append(args, f.Limit)
	q += ` ORDER BY id DESC LIMIT $` + itoa(len(args))
	return queryAll(ctx, db, scanEvent, q, args...)
}

// GetWebhookEvent returns one event of a webhook of the organization.
func (db *DB) GetWebhookEvent(ctx context.Context, orgID, webhookID, id string) (webhooks.Event, error) {
	var e webhooks.Event
	err := scanEvent(db.queryRow(ctx, `SELECT `+eventCols+` FROM webhook_events WHERE id = $1 AND webhook_id = $2 AND org_id = $3`,
		id, webhookID, orgID), &e)
	return e, mapErr(err)
}

// LoadDelivery returns an event and its webhook by the event id alone.
func (db *DB) LoadDelivery(ctx context.Context, eventID string) (webhooks.Event, webhooks.Webhook, error) {
	var e webhooks.Event
	var w webhooks.Webhook
	if err := scanEvent(db.queryRow(ctx, `SELECT `+eventCols+` FROM webhook_events WHERE id = $1`, eventID), &e); err != nil {
		return e, w, mapErr(err)
	}
	err := scanWebhook(db.queryRow(ctx, `SELECT `+webhookCols+` FROM webhooks WHERE id = $1`, e.WebhookID), &w)
	return e, w, mapErr(err)
}

// RecordAttempt stores the outcome of e's attempt unless one is recorded already
// (reporting false), and in the same transaction stores retry, if any, and runs after
// with it (which queues its delivery).
func (db *DB) RecordAttempt(ctx context.Context, e webhooks.Event, retry *webhooks.Event,
	after func(ctx context.Context, tx *Tx, retry webhooks.Event) error) (bool, error) {
	failed := 0
	if e.DeliveryFailed {
		failed = 1
	}
	var sent any
	if e.TimestampSent != 0 {
		sent = e.TimestampSent
	}
	recorded := false
	err := db.Tx(ctx, func(tx *Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE webhook_events SET status = $1, error = $2, delivery_failed = $3,
			timestamp_sent = $4, next_attempt_at = $5, first_attempt_at = $6 WHERE id = $7 AND status = ''`,
			e.Status, nullStr(e.Error), failed, sent, optTimeMS(e.NextAttemptAt), optTimeMS(e.FirstAttemptAt), e.ID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil // another run recorded it (or it is gone)
		}
		recorded = true
		if retry == nil {
			return nil
		}
		if err := db.InsertWebhookEvent(ctx, tx, *retry); err != nil {
			return err
		}
		return after(ctx, tx, *retry)
	})
	return recorded, mapErr(err)
}

// PurgeWebhookEvents deletes events created before t.
func (db *DB) PurgeWebhookEvents(ctx context.Context, before time.Time) (int64, error) {
	res, err := db.exec(ctx, `DELETE FROM webhook_events WHERE created_at < $1`, ms(before))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// emitKey emits kind for key id as it is now in tx.
func (t *Tx) emitKey(ctx context.Context, kind, orgID, id string) error {
	var k keys.Key
	if err := scanKey(t.QueryRowContext(ctx, `SELECT `+keyCols+` FROM keys k WHERE k.id = $1 AND k.org_id = $2`, id, orgID), &k); err != nil {
		return err
	}
	return t.Emit(ctx, orgID, kind, k)
}

// emitWallet emits kind for wallet id as it is now in tx.
func (t *Tx) emitWallet(ctx context.Context, kind, orgID, id string) error {
	var w wallets.Wallet
	if err := scanWallet(t.QueryRowContext(ctx, `SELECT `+keyCols+`, `+walletCols+walletFrom+` WHERE w.id = $1 AND w.org_id = $2`, id, orgID), &w); err != nil {
		return err
	}
	return t.Emit(ctx, orgID, kind, w)
}

// emitSignature emits the events of a stored signature request: requested, then signed or
// failed when it is already final (local signing is synchronous).
func (t *Tx) emitSignature(ctx context.Context, r keys.SignatureRequest) error {
	if err := t.Emit(ctx, r.OrgID, webhooks.SignatureRequested, r); err != nil {
		return err
	}
	switch r.Status {
	case keys.Signed:
		return t.Emit(ctx, r.OrgID, webhooks.SignatureSigned, r)
	case keys.Failed:
		return t.Emit(ctx, r.OrgID, webhooks.SignatureFailed, r)
	}
	return nil
}

// transferKinds are the events of a transfer entering a status.
var transferKinds = map[string]string{
	wallets.Executing: webhooks.TransferRequested, wallets.Broadcasted: webhooks.TransferBroadcasted,
	wallets.Confirmed: webhooks.TransferConfirmed, wallets.Failed: webhooks.TransferFailed,
}

// emitTransfer emits the event of transfer id entering its current status in tx, unless
// it was in that status already (prev).
func (t *Tx) emitTransfer(ctx context.Context, id, prev string) error {
	var x wallets.Transfer
	if err := scanTransfer(t.QueryRowContext(ctx, `SELECT `+transferCols+` FROM transfers WHERE id = $1`, id), &x); err != nil {
		return err
	}
	if kind, ok := transferKinds[x.Status]; ok && x.Status != prev {
		return t.Emit(ctx, x.OrgID, kind, x)
	}
	return nil
}

// transactionKinds are the events of a broadcast request entering a status.
var transactionKinds = map[string]string{
	wallets.Pending: webhooks.TransactionRequested, wallets.Broadcasted: webhooks.TransactionBroadcast,
	wallets.Confirmed: webhooks.TransactionConfirmed, wallets.Failed: webhooks.TransactionFailed,
}

// emitTransaction emits the event of broadcast request id entering its current status in
// tx, unless it was in that status already (prev).
func (t *Tx) emitTransaction(ctx context.Context, id, prev string) error {
	var x wallets.Transaction
	if err := scanTransaction(t.QueryRowContext(ctx, `SELECT `+transactionCols+` FROM transactions WHERE id = $1`, id), &x); err != nil {
		return err
	}
	if kind, ok := transactionKinds[x.Status]; ok && x.Status != prev {
		return t.Emit(ctx, x.OrgID, kind, x)
	}
	return nil
}

// emitSent emits the status event of a row of transfers or transactions (the two tables
// the broadcast job moves on).
func (t *Tx) emitSent(ctx context.Context, table, id, prev string) error {
	if table == "transactions" {
		return t.emitTransaction(ctx, id, prev)
	}
	return t.emitTransfer(ctx, id, prev)
}

// sentStatus reads the status of id in table ("" when it has no row there).
func (t *Tx) sentStatus(ctx context.Context, table, id string) (string, error) {
	var st string
	err := t.QueryRowContext(ctx, `SELECT status FROM `+table+` WHERE id = $1`, id).Scan(&st)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return st, err
}

// EmitIncoming reports a transfer the indexer found coming into a wallet (the
// wallet.blockchainevent.detected event); the app installs it as the history hook.
func EmitIncoming(ctx context.Context, tx *Tx, e wallets.HistoryEvent) error {
	return tx.Emit(ctx, e.OrgID, webhooks.BlockchainEventDetect, e.Item())
}
