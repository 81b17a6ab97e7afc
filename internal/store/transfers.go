package store

import (
	"context"

	"github.com/countersign/countersign/internal/keys"
	"github.com/countersign/countersign/internal/wallets"
	"github.com/countersign/countersign/internal/webhooks"
)

const transferCols = `id, org_id, wallet_id, network, requester_user_id, requester_token_id, request_body, asset_symbol,
	asset_decimals, asset_verified, status, COALESCE(reason, ''), nonce, raw_tx, tx_hash, COALESCE(fee, ''),
	COALESCE(external_id, ''), created_at, COALESCE(broadcasted_at, 0), COALESCE(confirmed_at, 0), COALESCE(replacement_id, '')`

func scanTransfer(s scanner, t *wallets.Transfer) error {
	var body []byte
	var verified, nonce, c, b, cf int64
	if err := s.Scan(&t.ID, &t.OrgID, &t.WalletID, &t.Network, &t.RequesterUserID, &t.RequesterTokenID, &body,
		&t.AssetSymbol, &t.AssetDecimals, &verified, &t.Status, &t.Reason, &nonce, &t.RawTx, &t.TxHash, &t.Fee,
		&t.ExternalID, &c, &b, &cf, &t.ReplacementID); err != nil {
		return err
	}
	t.RequestBody, t.AssetVerified, t.Nonce, t.CreatedAt = body, verified != 0, uint64(nonce), fromMS(c)
	if b != 0 {
		t.BroadcastedAt = fromMS(b)
	}
	if cf != 0 {
		t.ConfirmedAt = fromMS(cf)
	}
	return nil
}

func optMS(t interface{ IsZero() bool }, v int64) any {
	if t.IsZero() {
		return nil
	}
	return v
}

// CreateTransfer allocates sender's next nonce on t.Network — the larger of the stored next
// nonce and chainNonce (the chain's pending count, read before) — then calls sign with it,
// stores t with the signed transaction and runs after (which queues the broadcast), all in
// one transaction. The nonce row is written by one upsert, so on PostgreSQL the row lock
// keeps two nodes from taking the same nonce; on SQLite the single writer does.
func (db *DB) CreateTransfer(ctx context.Context, t wallets.Transfer, sender string, chainNonce uint64,
	sign func(nonce uint64) ([]byte, string, error), after func(ctx context.Context, tx *Tx) error) (wallets.Transfer, error) {
	var out wallets.Transfer
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
		verified := 0
		if x.AssetVerified {
			verified = 1
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO transfers (id, org_id, wallet_id, network, requester_user_id,
			requester_token_id, request_body, asset_symbol, asset_decimals, asset_verified, status, reason, nonce, raw_tx,
			tx_hash, fee, external_id, created_at, broadcasted_at, confirmed_at)
			VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20)`,
			x.ID, x.OrgID, x.WalletID, x.Network, x.RequesterUserID, x.RequesterTokenID, []byte(x.RequestBody),
			x.AssetSymbol, x.AssetDecimals, verified, x.Status, nullStr(x.Reason), nonce, x.RawTx, x.TxHash,
			nullStr(x.Fee), nullStr(x.ExternalID), ms(x.CreatedAt), nil, nil); err != nil {
			return err
		}
		if err := after(ctx, tx); err != nil {
			return err
		}
		if err := tx.Emit(ctx, x.OrgID, webhooks.TransferRequested, x); err != nil {
			return err
		}
		out = x
		return nil
	})
	return out, mapErr(err)
}

// allocNonce takes sender's next nonce on network: the larger of the stored next nonce
// and chainNonce (the chain's pending count, read before). The row is written by one
// upsert, so on PostgreSQL the row lock keeps two nodes from taking the same nonce; on
// SQLite the single writer does. Rolling tx back gives the nonce back.
func allocNonce(ctx context.Context, tx *Tx, network, sender string, chainNonce uint64) (int64, error) {
	upsert := `INSERT INTO evm_nonces (network, address, next) VALUES ($1, $2, $3)
		ON CONFLICT (network, address) DO UPDATE SET next = GREATEST(evm_nonces.next, $4) + 1 RETURNING next - 1`
	if tx.db.Dialect == SQLite {
		upsert = `INSERT INTO evm_nonces (network, address, next) VALUES ($1, $2, $3)
		ON CONFLICT (network, address) DO UPDATE SET next = MAX(evm_nonces.next, $4) + 1 RETURNING next - 1`
	}
	var nonce int64
	err := tx.QueryRowContext(ctx, upsert, network, sender, int64(chainNonce)+1, int64(chainNonce)).Scan(&nonce)
	return nonce, err
}

// GetTransfer returns a transfer of the organization.
func (db *DB) GetTransfer(ctx context.Context, orgID, id string) (wallets.Transfer, error) {
	var t wallets.Transfer
	err := scanTransfer(db.queryRow(ctx, `SELECT `+transferCols+` FROM transfers WHERE id = $1 AND org_id = $2`, id, orgID), &t)
	return t, mapErr(err)
}

// LoadTransfer returns a transfer by id alone.
func (db *DB) LoadTransfer(ctx context.Context, id string) (wallets.Transfer, error) {
	var t wallets.Transfer
	err := scanTransfer(db.queryRow(ctx, `SELECT `+transferCols+` FROM transfers WHERE id = $1`, id), &t)
	return t, mapErr(err)
}

// GetTransferByExternalID finds a transfer by its idempotency key.
func (db *DB) GetTransferByExternalID(ctx context.Context, orgID, externalID string) (wallets.Transfer, error) {
	var t wallets.Transfer
	err := scanTransfer(db.queryRow(ctx, `SELECT `+transferCols+` FROM transfers WHERE org_id = $1 AND external_id = $2`, orgID, externalID), &t)
	return t, mapErr(err)
}

// ListTransfers lists a wallet's transfers, newest first.
func (db *DB) ListTransfers(ctx context.Context, orgID, walletID string, page keys.Page) ([]wallets.Transfer, error) {
	q := `SELECT ` + transferCols + ` FROM transfers WHERE org_id = $1 AND wallet_id = $2`
	args := []any{orgID, walletID}
	if page.After != "" {
		args = append(args, page.After)
		q += ` AND id < $3`
	}
	args = append(args, page.Limit)
	q += ` ORDER BY id DESC LIMIT $` + itoa(len(args))
	return queryAll(ctx, db, scanTransfer, q, args...)
}

// UpdateTransferStatus records a transfer's progress. A final status is never changed.
func (db *DB) UpdateTransferStatus(ctx context.Context, t wallets.Transfer) error {
	return db.updateSent(ctx, "transfers", t.ID, t.Status, t.Reason, t.Fee, t.BroadcastedAt, t.ConfirmedAt)
}
