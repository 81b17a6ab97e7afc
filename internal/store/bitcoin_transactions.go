package store

import (
	"context"

	"github.com/countersign/countersign/internal/wallets"
)

// CreateSignedTransaction stores t, whose transaction is already signed (a Bitcoin Psbt
// broadcast: no nonce to allocate, the column holds 0), and runs after (which queues its
// broadcast), in one transaction, with its webhook event.
func (db *DB) CreateSignedTransaction(ctx context.Context, t wallets.Transaction,
	after func(ctx context.Context, tx *Tx) error) (wallets.Transaction, error) {
	err := db.Tx(ctx, func(tx *Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO transactions (id, org_id, wallet_id, network, requester_user_id,
			requester_token_id, request_body, status, reason, nonce, raw_tx, tx_hash, fee, external_id, created_at,
			broadcasted_at, confirmed_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17)`,
			t.ID, t.OrgID, t.WalletID, t.Network, t.RequesterUserID, t.RequesterTokenID, []byte(t.RequestBody),
			t.Status, nullStr(t.Reason), 0, t.RawTx, t.TxHash, nullStr(t.Fee), nullStr(t.ExternalID),
			ms(t.CreatedAt), nil, nil); err != nil {
			return err
		}
		if err := tx.emitTransaction(ctx, t.ID, ""); err != nil {
			return err
		}
		return after(ctx, tx)
	})
	if err != nil {
		return wallets.Transaction{}, mapErr(err)
	}
	return t, nil
}
