package store

import (
	"context"
	"time"

	"github.com/countersign/countersign/internal/keys"
	"github.com/countersign/countersign/internal/wallets"
)

const transactionCols = `id, org_id, wallet_id, network, requester_user_id, requester_token_id, request_body, status,
	COALESCE(reason, ''), nonce, raw_tx, tx_hash, COALESCE(fee, ''), COALESCE(external_id, ''), created_at,
	COALESCE(broadcasted_at, 0), COALESCE(confirmed_at, 0), COALESCE(replacement_id, ''), COALESCE(replaces, '')`

func scanTransaction(s scanner, t *wallets.Transaction) error {
	var body []byte
	var nonce, c, b, cf int64
	if err := s.Scan(&t.ID, &t.OrgID, &t.WalletID, &t.Network, &t.RequesterUserID, &t.RequesterTokenID, &body,
		&t.Status, &t.Reason, &nonce, &t.RawTx, &t.TxHash, &t.Fee, &t.ExternalID, &c, &b, &cf,
		&t.ReplacementID, &t.Replaces); err != nil {
		return err
	}
	t.RequestBody, t.Nonce, t.CreatedAt = body, uint64(nonce), fromMS(c)
	if b != 0 {
		t.BroadcastedAt = fromMS(b)
	}
	if cf != 0 {
		t.ConfirmedAt = fromMS(cf)
	}
	return nil
}

// CreateTransaction allocates sender's next nonce (allocNonce), calls sign with it, stores
// t with the signed transaction and runs after (which queues the broadcast), all in one
// transaction: an error from sign (a caller-given nonce that is not the next one) leaves
// the allocator as it was.
func (db *DB) CreateTransaction(ctx context.Context, t wallets.Transaction, sender string, chainNonce uint64,
	sign func(nonce uint64) ([]byte, string, error), after func(ctx context.Context, tx *Tx) error) (wallets.Transaction, error) {
	var out wallets.Transaction
	err := db.Tx(ctx, func(tx *Tx) error {
		nonce, err := allocNonce(ctx, tx, t.Network, sender, chainNonce)
		if err != nil {
			return err
		}
		raw, hash, err := sign(uint64(nonce))
		if err != nil {
			return err
		}
		x := t
		x.Nonce, x.RawTx, x.TxHash = uint64(nonce), raw, hash
		if _, err := tx.ExecContext(ctx, `INSERT INTO transactions (id, org_id, wallet_id, network, requester_user_id,
			requester_token_id, request_body, status, reason, nonce, raw_tx, tx_hash, fee, external_id, created_at,
			broadcasted_at, confirmed_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17)`,
			x.ID, x.OrgID, x.WalletID, x.Network, x.RequesterUserID, x.RequesterTokenID, []byte(x.RequestBody),
			x.Status, nullStr(x.Reason), nonce, x.RawTx, x.TxHash, nullStr(x.Fee), nullStr(x.ExternalID),
			ms(x.CreatedAt), nil, nil); err != nil {
			return err
		}
		if err := tx.emitTransaction(ctx, x.ID, ""); err != nil {
			return err
		}
		if err := after(ctx, tx); err != nil {
			return err
		}
		out = x
		return nil
	})
	return out, mapErr(err)
}

// GetTransaction returns a transaction of the organization.
func (db *DB) GetTransaction(ctx context.Context, orgID, id string) (wallets.Transaction, error) {
	var t wallets.Transaction
	err := scanTransaction(db.queryRow(ctx, `SELECT `+transactionCols+` FROM transactions WHERE id = $1 AND org_id = $2`, id, orgID), &t)
	return t, mapErr(err)
}

// LoadTransaction returns a transaction by id alone.
func (db *DB) LoadTransaction(ctx context.Context, id string) (wallets.Transaction, error) {
	var t wallets.Transaction
	err := scanTransaction(db.queryRow(ctx, `SELECT `+transactionCols+` FROM transactions WHERE id = $1`, id), &t)
	return t, mapErr(err)
}

// GetTransactionByExternalID finds a transaction by its idempotency key.
func (db *DB) GetTransactionByExternalID(ctx context.Context, orgID, externalID string) (wallets.Transaction, error) {
	var t wallets.Transaction
	err := scanTransaction(db.queryRow(ctx, `SELECT `+transactionCols+` FROM transactions WHERE org_id = $1 AND external_id = $2`,
		orgID, externalID), &t)
	return t, mapErr(err)
}

// ListTransactions lists a wallet's transactions, newest first.
func (db *DB) ListTransactions(ctx context.Context, orgID, walletID string, page keys.Page) ([]wallets.Transaction, error) {
	q := `SELECT ` + transactionCols + ` FROM transactions WHERE org_id = $1 AND wallet_id = $2`
	args := []any{orgID, walletID}
	if page.After != "" {
		args = append(args, page.After)
		q += ` AND id < $3`
	}
	args = append(args, page.Limit)
	q += ` ORDER BY id DESC LIMIT $` + itoa(len(args))
	return queryAll(ctx, db, scanTransaction, q, args...)
}

// UpdateTransactionStatus records a transaction's progress. A final status is never changed.
func (db *DB) UpdateTransactionStatus(ctx context.Context, t wallets.Transaction) error {
	return db.updateSent(ctx, "transactions", t.ID, t.Status, t.Reason, t.Fee, t.BroadcastedAt, t.ConfirmedAt)
}

// updateSent records the progress of a transfer or transaction (table) whose status is not
// final yet.
func (db *DB) updateSent(ctx context.Context, table, id, status, reason, fee string, broadcasted, confirmed time.Time) error {
	return db.Tx(ctx, func(tx *Tx) error {
		prev, err := tx.sentStatus(ctx, table, id)
		if err != nil || prev == "" {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE `+table+` SET status = $1, reason = $2, fee = $3, broadcasted_at = $4, confirmed_at = $5
			WHERE id = $6 AND status NOT IN ('Confirmed', 'Failed')`,
			status, nullStr(reason), nullStr(fee), optMS(broadcasted, ms(broadcasted)), optMS(confirmed, ms(confirmed)), id); err != nil {
			return err
		}
		return tx.emitSent(ctx, table, id, prev)
	})
}

// FailAndFill ends the transfer or transaction replaces as Failed with reason, stores the
// nonce filler f and runs after (which queues its broadcast), in one transaction. A nonce
// that already has a filler keeps it, and no second job is queued: the job runs at least
// once, so this may be called again for the same refusal.
func (db *DB) FailAndFill(ctx context.Context, replaces, reason string, f wallets.NonceFill,
	after func(ctx context.Context, tx *Tx) error) error {
	return mapErr(db.Tx(ctx, func(tx *Tx) error {
		for _, table := range []string{"transfers", "transactions"} {
			prev, err := tx.sentStatus(ctx, table, replaces)
			if err != nil {
				return err
			}
			if prev == "" {
				continue
			}
			if _, err := tx.ExecContext(ctx, `UPDATE `+table+` SET status = 'Failed', reason = $1
				WHERE id = $2 AND status NOT IN ('Confirmed', 'Failed')`, reason, replaces); err != nil {
				return err
			}
			if err := tx.emitSent(ctx, table, replaces, prev); err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO evm_nonce_fills (network, address, nonce, replaces, raw_tx, tx_hash,
			status, created_at, confirmed_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) ON CONFLICT DO NOTHING`,
			f.Network, f.Address, int64(f.Nonce), f.Replaces, f.RawTx, f.TxHash, f.Status, ms(f.CreatedAt), nil)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		return after(ctx, tx)
	}))
}

const fillCols = `network, address, nonce, replaces, raw_tx, tx_hash, status, created_at, COALESCE(confirmed_at, 0)`

// LoadFill returns the nonce filler of a sender's nonce.
func (db *DB) LoadFill(ctx context.Context, network, address string, nonce uint64) (wallets.NonceFill, error) {
	var f wallets.NonceFill
	var n, c, cf int64
	err := db.queryRow(ctx, `SELECT `+fillCols+` FROM evm_nonce_fills WHERE network = $1 AND address = $2 AND nonce = $3`,
		network, address, int64(nonce)).Scan(&f.Network, &f.Address, &n, &f.Replaces, &f.RawTx, &f.TxHash, &f.Status, &c, &cf)
	if err != nil {
		return f, mapErr(err)
	}
	f.Nonce, f.CreatedAt = uint64(n), fromMS(c)
	if cf != 0 {
		f.ConfirmedAt = fromMS(cf)
	}
	return f, nil
}

// UpdateFill records a filler's progress. A final status is never changed.
func (db *DB) UpdateFill(ctx context.Context, f wallets.NonceFill) error {
	_, err := db.exec(ctx, `UPDATE evm_nonce_fills SET status = $1, confirmed_at = $2
		WHERE network = $3 AND address = $4 AND nonce = $5 AND status NOT IN ('Confirmed', 'Superseded')`,
		f.Status, optMS(f.ConfirmedAt, ms(f.ConfirmedAt)), f.Network, f.Address, int64(f.Nonce))
	return err
}
