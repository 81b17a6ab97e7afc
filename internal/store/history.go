package store

import (
	"context"

	"github.com/countersign/countersign/internal/wallets"
)

const historyCols = `wallet_id, org_id, network, kind, direction, tx_hash, tx_index, log_index, block_number, block_time,
	from_address, to_address, value, COALESCE(fee, ''), COALESCE(contract, ''), symbol, decimals, verified, created_at`

func scanHistory(s scanner, e *wallets.HistoryEvent) error {
	var txIndex, logIndex, block, at, verified, created int64
	if err := s.Scan(&e.WalletID, &e.OrgID, &e.Network, &e.Kind, &e.Direction, &e.TxHash, &txIndex, &logIndex, &block, &at,
		&e.From, &e.To, &e.Value, &e.Fee, &e.Contract, &e.Symbol, &e.Decimals, &verified, &created); err != nil {
		return err
	}
	e.TxIndex, e.LogIndex, e.BlockNumber = uint(txIndex), int(logIndex), uint64(block)
	e.BlockTime, e.Verified, e.CreatedAt = fromMS(at), verified != 0, fromMS(created)
	return nil
}

// ListHistory lists a wallet's history events, newest (highest chain position) first,
// after q.After (a SortKey) and filtered by direction, kind and contract when set.
func (db *DB) ListHistory(ctx context.Context, orgID, walletID string, q wallets.HistoryQuery) ([]wallets.HistoryEvent, error) {
	query := `SELECT ` + historyCols + ` FROM wallet_history WHERE wallet_id = $1 AND org_id = $2`
	args := []any{walletID, orgID}
	for _, f := range []struct{ col, v string }{{"sort_key <", q.After}, {"direction =", q.Direction}, {"kind =", q.Kind}, {"contract =", q.Contract}} {
		if f.v != "" {
			args = append(args, f.v)
			query += ` AND ` + f.col + ` $` + itoa(len(args))
		}
	}
	args = append(args, q.Limit)
	query += ` ORDER BY sort_key DESC LIMIT $` + itoa(len(args))
	return queryAll(ctx, db, scanHistory, query, args...)
}

// HistoryNetworks lists the networks that have at least one wallet. It skips from one
// network to the next through the wallets_network index rather than reading every wallet,
// so the indexer's idle tick stays cheap however many wallets there are.
func (db *DB) HistoryNetworks(ctx context.Context) ([]string, error) {
	return queryAll(ctx, db, func(s scanner, n *string) error { return s.Scan(n) },
		`WITH RECURSIVE n(network) AS (
			SELECT MIN(network) FROM wallets
			UNION ALL
			SELECT (SELECT MIN(network) FROM wallets WHERE network > n.network) FROM n WHERE n.network IS NOT NULL)
		SELECT network FROM n WHERE network IS NOT NULL`)
}

// WatchedWallets lists every wallet of every organization on network, with its address.
func (db *DB) WatchedWallets(ctx context.Context, network string) ([]wallets.Watched, error) {
	return queryAll(ctx, db, func(s scanner, w *wallets.Watched) error { return s.Scan(&w.ID, &w.OrgID, &w.Address) },
		`SELECT id, org_id, address FROM wallets WHERE network = $1 AND address IS NOT NULL ORDER BY id`, network)
}

// GetChainCursor returns the last indexed block of network.
func (db *DB) GetChainCursor(ctx context.Context, network string) (wallets.ChainCursor, error) {
	c := wallets.ChainCursor{Network: network}
	var block int64
	err := db.queryRow(ctx, `SELECT block, block_hash FROM chain_cursors WHERE network = $1`, network).Scan(&block, &c.Hash)
	c.Block = uint64(block)
	return c, mapErr(err)
}

// HistoryHook is called inside the transaction that stores a new incoming event (once per
// event, never for a rerun that finds it stored), so work that must follow an incoming
// transfer (a webhook event) commits with it or not at all.
type HistoryHook func(ctx context.Context, tx *Tx, e wallets.HistoryEvent) error

// RecordHistory stores the events not stored yet (a wallet, transaction, kind, log index and
// direction is stored once, whoever records it and however often) and sets the network's
// cursor, in one transaction. onIncoming, when set, is called for each new In event. It
// returns how many events were new.
func (db *DB) RecordHistory(ctx context.Context, events []wallets.HistoryEvent, cursor wallets.ChainCursor, onIncoming HistoryHook) (int, error) {
	added := 0
	err := db.Tx(ctx, func(tx *Tx) error {
		added = 0
		for _, e := range events {
			verified := 0
			if e.Verified {
				verified = 1
			}
			res, err := tx.ExecContext(ctx, `INSERT INTO wallet_history (wallet_id, sort_key, org_id, network, kind, direction,
				tx_hash, tx_index, log_index, block_number, block_time, from_address, to_address, value, fee, contract, symbol,
				decimals, verified, created_at)
				VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20) ON CONFLICT DO NOTHING`,
				e.WalletID, e.SortKey(), e.OrgID, e.Network, e.Kind, e.Direction, e.TxHash, int64(e.TxIndex), e.LogIndex,
				int64(e.BlockNumber), ms(e.BlockTime), e.From, e.To, e.Value, nullStr(e.Fee), nullStr(e.Contract), e.Symbol,
				e.Decimals, verified, ms(e.CreatedAt))
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil || n == 0 {
				continue // already stored
			}
			added++
			if e.Direction == wallets.In && onIncoming != nil {
				if err := onIncoming(ctx, tx, e); err != nil {
					return err
				}
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO chain_cursors (network, block, block_hash, updated_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (network) DO UPDATE SET block = excluded.block, block_hash = excluded.block_hash, updated_at = excluded.updated_at`,
			cursor.Network, int64(cursor.Block), cursor.Hash, ms(cursor.At))
		return err
	})
	if err != nil {
		return 0, mapErr(err)
	}
	return added, nil
}
