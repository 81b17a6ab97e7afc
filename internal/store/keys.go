package store

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/countersign/countersign/internal/keys"
	"github.com/countersign/countersign/internal/wallets"
	"github.com/countersign/countersign/internal/webhooks"
)

const keyCols = `k.id, k.org_id, k.scheme, k.curve, k.public_key, k.sealed_private, COALESCE(k.name, ''), k.status,
	k.created_at, k.updated_at, COALESCE(k.deleted_at, 0), COALESCE(k.delegated_to, ''), COALESCE(k.delegated_at, 0)`

func scanKey(s scanner, k *keys.Key, extra ...any) error {
	var c, u, d, da int64
	dest := append([]any{&k.ID, &k.OrgID, &k.Scheme, &k.Curve, &k.PublicKey, &k.Sealed, &k.Name, &k.Status, &c, &u, &d,
		&k.DelegatedTo, &da}, extra...)
	if err := s.Scan(dest...); err != nil {
		return err
	}
	k.CreatedAt, k.UpdatedAt = fromMS(c), fromMS(u)
	if da != 0 {
		k.DelegatedAt = fromMS(da)
	}
	if d != 0 {
		k.DeletedAt = fromMS(d)
	}
	return nil
}

func insertKey(ctx context.Context, tx *Tx, k keys.Key) error {
	var delegatedAt any
	if k.DelegatedTo != "" {
		delegatedAt = ms(k.DelegatedAt)
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO keys (id, org_id, scheme, curve, public_key, sealed_private, name, status,
		created_at, updated_at, delegated_to, delegated_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)`,
		k.ID, k.OrgID, k.Scheme, k.Curve, k.PublicKey, k.Sealed, nullStr(k.Name), k.Status, ms(k.CreatedAt), ms(k.UpdatedAt),
		nullStr(k.DelegatedTo), delegatedAt)
	if err != nil {
		return err
	}
	return tx.Emit(ctx, k.OrgID, webhooks.KeyCreated, k)
}

// CreateKey stores a key.
func (db *DB) CreateKey(ctx context.Context, k keys.Key) error {
	return db.Tx(ctx, func(tx *Tx) error { return insertKey(ctx, tx, k) })
}

// GetKey returns a key of the organization.
func (db *DB) GetKey(ctx context.Context, orgID, id string) (keys.Key, error) {
	ck := orgID + "/" + id
	k, g, ok := db.keyc.get(ck)
	if ok {
		return k, nil
	}
	err := scanKey(db.queryRow(ctx, `SELECT `+keyCols+` FROM keys k WHERE k.id = $1 AND k.org_id = $2`, id, orgID), &k)
	if err == nil {
		db.keyc.put(ck, g, k)
	}
	return k, mapErr(err)
}

// ListKeys lists the organization's keys, newest first.
func (db *DB) ListKeys(ctx context.Context, orgID string, page keys.Page) ([]keys.Key, error) {
	q := `SELECT ` + keyCols + ` FROM keys k WHERE k.org_id = $1`
	args := []any{orgID}
	if page.After != "" {
		args = append(args, page.After)
		q += ` AND k.id < $` + itoa(len(args))
	}
	if page.DelegatedTo != "" {
		args = append(args, page.DelegatedTo)
		q += ` AND k.delegated_to = $` + itoa(len(args))
	}
	args = append(args, page.Limit)
	q += ` ORDER BY k.id DESC LIMIT $` + itoa(len(args))
	return queryAll(ctx, db, func(s scanner, k *keys.Key) error { return scanKey(s, k) }, q, args...)
}

// UpdateKey renames a key.
func (db *DB) UpdateKey(ctx context.Context, orgID, id, name string, now time.Time) error {
	defer db.keyc.invalidate()
	return affected(db.exec(ctx, `UPDATE keys SET name = $1, updated_at = $2 WHERE id = $3 AND org_id = $4`, nullStr(name), ms(now), id, orgID))
}

// ArchiveKey archives a key and every wallet on it.
func (db *DB) ArchiveKey(ctx context.Context, orgID, id string, now time.Time) error {
	defer db.keyc.invalidate()
	return db.Tx(ctx, func(tx *Tx) error {
		if err := affected(tx.ExecContext(ctx, `UPDATE keys SET status = 'Archived', updated_at = $1, deleted_at = $1 WHERE id = $2 AND org_id = $3`,
			ms(now), id, orgID)); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE wallets SET status = 'Archived', updated_at = $1, deleted_at = $1 WHERE key_id = $2 AND org_id = $3`,
			ms(now), id, orgID); err != nil {
			return err
		}
		return tx.emitKey(ctx, webhooks.KeyDeleted, orgID, id)
	})
}

const sigCols = `id, org_id, key_id, COALESCE(wallet_id, ''), COALESCE(network, ''), requester_user_id, requester_token_id,
	request_body, status, COALESCE(reason, ''), COALESCE(signature, ''), COALESCE(signed_data, ''), COALESCE(external_id, ''),
	created_at, COALESCE(signed_at, 0)`

func scanSig(s scanner, r *keys.SignatureRequest) error {
	var body []byte
	var sig string
	var c, sa int64
	if err := s.Scan(&r.ID, &r.OrgID, &r.KeyID, &r.WalletID, &r.Network, &r.RequesterUserID, &r.RequesterTokenID,
		&body, &r.Status, &r.Reason, &sig, &r.SignedData, &r.ExternalID, &c, &sa); err != nil {
		return err
	}
	r.RequestBody, r.CreatedAt = body, fromMS(c)
	if sa != 0 {
		r.SignedAt = fromMS(sa)
	}
	if strings.HasPrefix(sig, "[") { // several signatures (a PSBT's inputs) are stored as a JSON array
		return json.Unmarshal([]byte(sig), &r.Signatures)
	}
	if sig != "" {
		r.Signature = new(keys.SignatureParts)
		if err := json.Unmarshal([]byte(sig), r.Signature); err != nil {
			return err
		}
	}
	return nil
}

// CreateSignatureRequest stores a signature request; Conflict on a taken externalId.
func (db *DB) CreateSignatureRequest(ctx context.Context, r keys.SignatureRequest) error {
	var sig any
	if r.Signature != nil || len(r.Signatures) > 0 {
		var v any = r.Signature
		if len(r.Signatures) > 0 {
			v = r.Signatures
		}
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		sig = string(b)
	}
	var signedAt any
	if !r.SignedAt.IsZero() {
		signedAt = ms(r.SignedAt)
	}
	return db.Tx(ctx, func(tx *Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO signature_requests (id, org_id, key_id, wallet_id, network, requester_user_id,
		requester_token_id, request_body, status, reason, signature, signed_data, external_id, created_at, signed_at)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15)`,
			r.ID, r.OrgID, r.KeyID, nullStr(r.WalletID), nullStr(r.Network), r.RequesterUserID, r.RequesterTokenID,
			[]byte(r.RequestBody), r.Status, nullStr(r.Reason), sig, nullStr(r.SignedData), nullStr(r.ExternalID),
			ms(r.CreatedAt), signedAt); err != nil {
			return err
		}
		return tx.emitSignature(ctx, r)
	})
}

// GetSignatureRequest returns a signature request of the organization.
func (db *DB) GetSignatureRequest(ctx context.Context, orgID, id string) (keys.SignatureRequest, error) {
	var r keys.SignatureRequest
	err := scanSig(db.queryRow(ctx, `SELECT `+sigCols+` FROM signature_requests WHERE id = $1 AND org_id = $2`, id, orgID), &r)
	return r, mapErr(err)
}

// GetSignatureRequestByExternalID finds a request by its idempotency key.
func (db *DB) GetSignatureRequestByExternalID(ctx context.Context, orgID, externalID string) (keys.SignatureRequest, error) {
	var r keys.SignatureRequest
	err := scanSig(db.queryRow(ctx, `SELECT `+sigCols+` FROM signature_requests WHERE org_id = $1 AND external_id = $2`, orgID, externalID), &r)
	return r, mapErr(err)
}

// ListSignatureRequests lists a key's or a wallet's requests, newest first.
func (db *DB) ListSignatureRequests(ctx context.Context, orgID, keyID, walletID string, page keys.Page) ([]keys.SignatureRequest, error) {
	q := `SELECT ` + sigCols + ` FROM signature_requests WHERE org_id = $1`
	args := []any{orgID}
	add := func(cond string, v any) {
		args = append(args, v)
		q += " AND " + cond + itoa(len(args))
	}
	if keyID != "" {
		add("key_id = $", keyID)
	}
	if walletID != "" {
		add("wallet_id = $", walletID)
	}
	if page.After != "" {
		add("id < $", page.After)
	}
	args = append(args, page.Limit)
	q += ` ORDER BY id DESC LIMIT $` + itoa(len(args))
	return queryAll(ctx, db, scanSig, q, args...)
}

const walletCols = `w.id, w.org_id, w.network, COALESCE(w.address, ''), COALESCE(w.name, ''), w.status,
	COALESCE(w.external_id, ''), w.tags, w.created_at, w.updated_at`

func scanWallet(s scanner, w *wallets.Wallet) error {
	var tags string
	var c, u int64
	if err := scanKey(s, &w.Key, &w.ID, &w.OrgID, &w.Network, &w.Address, &w.Name, &w.Status, &w.ExternalID, &tags, &c, &u); err != nil {
		return err
	}
	w.CreatedAt, w.UpdatedAt = fromMS(c), fromMS(u)
	return json.Unmarshal([]byte(tags), &w.Tags)
}

const walletFrom = ` FROM wallets w JOIN keys k ON k.id = w.key_id`

// CreateWallet stores a wallet (and its new key) atomically.
func (db *DB) CreateWallet(ctx context.Context, w wallets.Wallet, newKey bool) error {
	tags, err := json.Marshal(w.Tags)
	if err != nil {
		return err
	}
	return db.Tx(ctx, func(tx *Tx) error { return insertWallet(ctx, tx, w, newKey, tags) })
}

// insertWallet writes a wallet (and its new key) and their webhook events in tx.
func insertWallet(ctx context.Context, tx *Tx, w wallets.Wallet, newKey bool, tags []byte) error {
	if newKey {
		if err := insertKey(ctx, tx, w.Key); err != nil {
			return err
		}
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO wallets (id, org_id, network, address, key_id, name, status, external_id,
		tags, created_at, updated_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)`,
		w.ID, w.OrgID, w.Network, nullStr(w.Address), w.Key.ID, nullStr(w.Name), w.Status, nullStr(w.ExternalID),
		string(tags), ms(w.CreatedAt), ms(w.UpdatedAt))
	if err != nil {
		return err
	}
	return tx.Emit(ctx, w.OrgID, webhooks.WalletCreated, w)
}

// GetWallet returns a wallet of the organization with its key.
func (db *DB) GetWallet(ctx context.Context, orgID, id string) (wallets.Wallet, error) {
	var w wallets.Wallet
	err := scanWallet(db.queryRow(ctx, `SELECT `+keyCols+`, `+walletCols+walletFrom+` WHERE w.id = $1 AND w.org_id = $2`, id, orgID), &w)
	return w, mapErr(err)
}

// ListWallets lists the organization's wallets, newest first.
func (db *DB) ListWallets(ctx context.Context, orgID string, page keys.Page) ([]wallets.Wallet, error) {
	q := `SELECT ` + keyCols + `, ` + walletCols + walletFrom + ` WHERE w.org_id = $1`
	args := []any{orgID}
	if page.After != "" {
		args = append(args, page.After)
		q += ` AND w.id < $` + itoa(len(args))
	}
	if page.DelegatedTo != "" {
		args = append(args, page.DelegatedTo)
		q += ` AND k.delegated_to = $` + itoa(len(args))
	}
	args = append(args, page.Limit)
	q += ` ORDER BY w.id DESC LIMIT $` + itoa(len(args))
	return db.queryWallets(ctx, q, args...)
}

func (db *DB) queryWallets(ctx context.Context, q string, args ...any) ([]wallets.Wallet, error) {
	return queryAll(ctx, db, scanWallet, q, args...)
}

// UpdateWallet changes a wallet's name or externalId ("" clears it).
func (db *DB) UpdateWallet(ctx context.Context, orgID, id string, name, externalID *string, now time.Time) error {
	return db.Tx(ctx, func(tx *Tx) error {
		if name != nil {
			if err := affected(tx.ExecContext(ctx, `UPDATE wallets SET name = $1, updated_at = $2 WHERE id = $3 AND org_id = $4`,
				nullStr(*name), ms(now), id, orgID)); err != nil {
				return err
			}
		}
		if externalID != nil {
			if err := affected(tx.ExecContext(ctx, `UPDATE wallets SET external_id = $1, updated_at = $2 WHERE id = $3 AND org_id = $4`,
				nullStr(*externalID), ms(now), id, orgID)); err != nil {
				return err
			}
		}
		return nil
	})
}

// SetWalletTags replaces a wallet's tags.
func (db *DB) SetWalletTags(ctx context.Context, orgID, id string, tags []string, now time.Time) error {
	b, err := json.Marshal(tags)
	if err != nil {
		return err
	}
	return db.Tx(ctx, func(tx *Tx) error {
		if err := affected(tx.ExecContext(ctx, `UPDATE wallets SET tags = $1, updated_at = $2 WHERE id = $3 AND org_id = $4`, string(b), ms(now), id, orgID)); err != nil {
			return err
		}
		return tx.emitWallet(ctx, webhooks.WalletTagsModified, orgID, id)
	})
}

// ListWalletsOfKey lists the wallets made with a key, oldest first.
func (db *DB) ListWalletsOfKey(ctx context.Context, orgID, keyID string) ([]wallets.Wallet, error) {
	return db.queryWallets(ctx, `SELECT `+keyCols+`, `+walletCols+walletFrom+` WHERE w.key_id = $1 AND w.org_id = $2 ORDER BY w.id`, keyID, orgID)
}

// DelegateKey hands an active, never delegated key to an end user; the condition is part of
// the update, so of two racing delegations one gets NotFound (nothing changed).
func (db *DB) DelegateKey(ctx context.Context, orgID, id, userID string, now time.Time) error {
	defer db.keyc.invalidate()
	return db.Tx(ctx, func(tx *Tx) error {
		err := affected(tx.ExecContext(ctx, `UPDATE keys SET delegated_to = $1, delegated_at = $2, updated_at = $2
			WHERE id = $3 AND org_id = $4 AND status = 'Active' AND delegated_to IS NULL`, userID, ms(now), id, orgID))
		if err != nil {
			return err
		}
		if err := tx.emitKey(ctx, webhooks.KeyDelegated, orgID, id); err != nil {
			return err
		}
		// Every wallet on the key is delegated with it.
		rows, err := tx.QueryContext(ctx, `SELECT id FROM wallets WHERE key_id = $1 AND org_id = $2 ORDER BY id`, id, orgID)
		if err != nil {
			return err
		}
		var ws []string
		for rows.Next() {
			var w string
			if err := rows.Scan(&w); err != nil {
				rows.Close()
				return err
			}
			ws = append(ws, w)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, w := range ws {
			if err := tx.emitWallet(ctx, webhooks.WalletDelegated, orgID, w); err != nil {
				return err
			}
		}
		return nil
	})
}
