package store

import (
	"context"
	"sort"

	"github.com/countersign/countersign/internal/errs"
	"github.com/countersign/countersign/internal/wallets"
)

// CreateReplacement stores r, a speed-up or cancel of the transfer or transaction
// r.Replaces, points the replaced request's replacement_id at it and runs after (which
// queues r's broadcast), in one transaction. It refuses with Conflict, changing nothing,
// unless the replaced request is still Broadcasted and its newest replacement is still
// prev ("" for none): two concurrent replacements must not both bump the same fees.
func (db *DB) CreateReplacement(ctx context.Context, r wallets.Transaction, prev string,
	after func(ctx context.Context, tx *Tx) error) error {
	return mapErr(db.Tx(ctx, func(tx *Tx) error {
		table := "transactions"
		if st, err := tx.sentStatus(ctx, "transfers", r.Replaces); err != nil {
			return err
		} else if st != "" {
			table = "transfers"
		}
		res, err := tx.ExecContext(ctx, `UPDATE `+table+` SET replacement_id = $1
			WHERE id = $2 AND status = 'Broadcasted' AND COALESCE(replacement_id, '') = $3`, r.ID, r.Replaces, prev)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return errs.E(errs.Conflict, "the request changed meanwhile (it was mined, or replaced again): read it and retry", nil)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO transactions (id, org_id, wallet_id, network, requester_user_id,
			requester_token_id, request_body, status, reason, nonce, raw_tx, tx_hash, fee, external_id, created_at,
			broadcasted_at, confirmed_at, replaces) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18)`,
			r.ID, r.OrgID, r.WalletID, r.Network, r.RequesterUserID, r.RequesterTokenID, []byte(r.RequestBody),
			r.Status, nullStr(r.Reason), int64(r.Nonce), r.RawTx, r.TxHash, nullStr(r.Fee), nullStr(r.ExternalID),
			ms(r.CreatedAt), nil, nil, r.Replaces); err != nil {
			return err
		}
		if err := tx.emitTransaction(ctx, r.ID, ""); err != nil {
			return err
		}
		return after(ctx, tx)
	}))
}

// Replacements lists the speed-ups and cancels of a transfer or transaction, oldest first.
func (db *DB) Replacements(ctx context.Context, id string) ([]wallets.Transaction, error) {
	ts, err := queryAll(ctx, db, scanTransaction, `SELECT `+transactionCols+` FROM transactions WHERE replaces = $1 ORDER BY id`, id)
	return ts, mapErr(err)
}

// SettleReplaced records, in one transaction, the outcome of a nonce that a request and
// its replacements competed for: each row of transfers or transactions named in ss that
// is not final yet takes its status, reason, fee, dates and (when given) tx hash, and
// emits its status event. Rows already final are left as they are, so concurrent jobs
// settling the same nonce agree.
func (db *DB) SettleReplaced(ctx context.Context, ss []wallets.Settled) error {
	ss = append([]wallets.Settled(nil), ss...)
	sort.Slice(ss, func(i, j int) bool { return ss[i].ID < ss[j].ID }) // one lock order for concurrent settlers
	return mapErr(db.Tx(ctx, func(tx *Tx) error {
		for _, s := range ss {
			for _, table := range []string{"transfers", "transactions"} {
				prev, err := tx.sentStatus(ctx, table, s.ID)
				if err != nil {
					return err
				}
				if prev == "" || prev == wallets.Confirmed || prev == wallets.Failed {
					continue
				}
				res, err := tx.ExecContext(ctx, `UPDATE `+table+` SET status = $1, reason = $2, fee = $3,
					broadcasted_at = COALESCE(broadcasted_at, $4), confirmed_at = $5, tx_hash = COALESCE($6, tx_hash)
					WHERE id = $7 AND status NOT IN ('Confirmed', 'Failed')`,
					s.Status, nullStr(s.Reason), nullStr(s.Fee), optMS(s.BroadcastedAt, ms(s.BroadcastedAt)),
					optMS(s.ConfirmedAt, ms(s.ConfirmedAt)), nullStr(s.TxHash), s.ID)
				if err != nil {
					return err
				}
				if n, err := res.RowsAffected(); err != nil || n == 0 {
					if err != nil {
						return err
					}
					continue
				}
				if err := tx.emitSent(ctx, table, s.ID, prev); err != nil {
					return err
				}
			}
		}
		return nil
	}))
}
