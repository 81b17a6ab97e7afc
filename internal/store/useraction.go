package store

import (
	"context"
	"time"

	"github.com/countersign/countersign/internal/auth"
	"github.com/countersign/countersign/internal/errs"
	"github.com/countersign/countersign/internal/identity"
	"github.com/countersign/countersign/internal/ids"
	"github.com/countersign/countersign/internal/useraction"
)

// CreateUserAction stores a freshly issued challenge (in memory on SQLite, see challenges).
func (db *DB) CreateUserAction(ctx context.Context, a useraction.Action) error {
	if db.chal != nil {
		if kept, err := db.chal.put(a, a.CreatedAt); kept || err != nil {
			return err
		}
	}
	_, err := db.exec(ctx, `INSERT INTO user_actions (id, org_id, user_id, token_id, challenge, method, path, payload,
		server_kind, state, created_at, expires_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)`,
		a.ID, a.OrgID, a.UserID, a.TokenID, a.Challenge, a.Method, a.Path, nonNil(a.Payload), a.ServerKind, a.State,
		ms(a.CreatedAt), ms(a.ExpiresAt))
	return err
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

const actionCols = `id, org_id, user_id, token_id, challenge, method, path, payload, server_kind, state, created_at,
	expires_at, COALESCE(credential_uuid, ''), client_data, signature, COALESCE(token_expires_at, 0)`

func scanAction(s scanner, a *useraction.Action) error {
	var c, e, te int64
	if err := s.Scan(&a.ID, &a.OrgID, &a.UserID, &a.TokenID, &a.Challenge, &a.Method, &a.Path, &a.Payload,
		&a.ServerKind, &a.State, &c, &e, &a.CredentialUUID, &a.ClientData, &a.Signature, &te); err != nil {
		return err
	}
	a.CreatedAt, a.ExpiresAt = fromMS(c), fromMS(e)
	if te != 0 { // NULL until signed
		a.TokenExpiresAt = fromMS(te)
	}
	return nil
}

// GetUserAction returns an action of the organization by its challengeIdentifier.
func (db *DB) GetUserAction(ctx context.Context, orgID, id string) (useraction.Action, error) {
	if db.chal != nil {
		if a, ok := db.chal.get(orgID, id); ok {
			return a, nil
		}
	}
	var a useraction.Action
	err := scanAction(db.queryRow(ctx, `SELECT `+actionCols+` FROM user_actions WHERE id = $1 AND org_id = $2`, id, orgID), &a)
	return a, mapErr(err)
}

// GetUserActionByToken finds an action by the hash of its token.
func (db *DB) GetUserActionByToken(ctx context.Context, tokenHash []byte) (useraction.Action, error) {
	var a useraction.Action
	err := scanAction(db.w.QueryRowContext(ctx, `SELECT `+actionCols+` FROM user_actions WHERE token_hash = $1`, tokenHash), &a)
	return a, mapErr(err)
}

// MarkSigned moves a pending, unexpired action to signed in one conditional UPDATE, so of
// two concurrent signers exactly one wins.
func (db *DB) MarkSigned(ctx context.Context, s useraction.SignedAction, now time.Time) error {
	if db.chal != nil {
		a, held, ok := db.chal.take(s.ID, now)
		if held && !ok {
			return errs.E(errs.Conflict, "challenge is no longer pending", nil)
		}
		if ok {
			// The challenge's first and only row, already signed. Its id is unique, so a
			// challenge that also reached the database (it cannot: put or insert, never
			// both) could not be signed twice either.
			_, err := db.exec(ctx, `INSERT INTO user_actions (id, org_id, user_id, token_id, challenge, method, path, payload,
				server_kind, state, created_at, expires_at, token_hash, credential_uuid, client_data, signature, signed_at,
				token_expires_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,'signed',$10,$11,$12,$13,$14,$15,$16,$17)`,
				a.ID, a.OrgID, a.UserID, a.TokenID, a.Challenge, a.Method, a.Path, nonNil(a.Payload), a.ServerKind,
				ms(a.CreatedAt), ms(a.ExpiresAt), s.TokenHash, s.CredentialUUID, s.ClientData, s.Signature, ms(s.SignedAt),
				ms(s.TokenExpiresAt))
			return err
		}
	}
	res, err := db.exec(ctx, `UPDATE user_actions SET state = 'signed', token_hash = $1, credential_uuid = $2,
		client_data = $3, signature = $4, signed_at = $5, token_expires_at = $6
		WHERE id = $7 AND state = 'pending' AND expires_at > $8`,
		s.TokenHash, s.CredentialUUID, s.ClientData, s.Signature, ms(s.SignedAt), ms(s.TokenExpiresAt), s.ID, ms(now))
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return errs.E(errs.Conflict, "challenge is no longer pending", nil)
	}
	return nil
}

// Consume uses a token up if, and only if, every binding matches, and writes the audit
// entry in the same transaction. The WHERE clause is the whole check: a refused request
// changes nothing, and two nodes cannot both see state = 'signed'.
func (db *DB) Consume(ctx context.Context, m useraction.Match) (useraction.Action, error) {
	var a useraction.Action
	err := db.Tx(ctx, func(tx *Tx) error {
		row := tx.QueryRowContext(ctx, `UPDATE user_actions SET state = 'used', used_at = $1
			WHERE token_hash = $2 AND state = 'signed' AND org_id = $3 AND user_id = $4 AND token_id = $5
			  AND method = $6 AND (path = $7 OR path = $8) AND payload = $9 AND token_expires_at > $1
			RETURNING `+actionCols, ms(m.Now), m.TokenHash, m.OrgID, m.UserID, m.TokenID, m.Method, m.Paths[0], m.Paths[1], nonNil(m.Payload))
		if err := scanAction(row, &a); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO audit_log (id, org_id, user_id, token_id, credential_uuid, user_action_id,
			method, path, body_hash, client_data, signature, status, created_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,0,$12)`,
			m.AuditID, a.OrgID, a.UserID, a.TokenID, a.CredentialUUID, a.ID, m.Method, m.Paths[0], m.BodyHash,
			nonNil(a.ClientData), nonNil(a.Signature), ms(m.Now))
		return err
	})
	return a, err
}

// UsableCredentials lists what may sign for p: for a service-account or personal access
// token, its own key credential while active.
func (db *DB) UsableCredentials(ctx context.Context, p auth.Principal) ([]identity.Credential, error) {
	var g uint64
	key := p.OrgID + "/" + p.TokenID + "/" + p.UserID // the query filters on all three
	if db.cache != nil {
		cs, gen, ok := db.cache.creds.get(key)
		if ok {
			return cs, nil
		}
		g = gen
	}
	cs, err := db.usableCredentials(ctx, p)
	if err == nil && db.cache != nil {
		db.cache.creds.put(key, g, cs)
	}
	return cs, err
}

func (db *DB) usableCredentials(ctx context.Context, p auth.Principal) ([]identity.Credential, error) {
	// A token's own key credential; for a login session (kind User), every active login
	// credential of the person instead (not RecoveryKey, not the keys of their PATs).
	rows, err := db.query(ctx, `SELECT c.uuid, c.cred_id, c.kind, c.name, c.public_key, c.algorithm, c.status, c.created_at
		FROM access_tokens t JOIN credentials c ON c.uuid = t.credential_uuid
		WHERE t.id = $1 AND t.org_id = $2 AND c.user_id = $3 AND c.status = 'Active' AND t.kind <> '`+auth.KindUser+`'
		UNION ALL
		SELECT c.uuid, c.cred_id, c.kind, c.name, c.public_key, c.algorithm, c.status, c.created_at
		FROM access_tokens t JOIN credentials c ON c.user_id = t.user_id
		WHERE t.id = $1 AND t.org_id = $2 AND c.user_id = $3 AND c.status = 'Active' AND t.kind = '`+auth.KindUser+`'
		  AND c.kind IN ('Key', 'Fido2')
		  AND NOT EXISTS (SELECT 1 FROM access_tokens pt WHERE pt.credential_uuid = c.uuid AND pt.kind <> '`+auth.KindUser+`')
		ORDER BY 8, 1`, p.TokenID, p.OrgID, p.UserID)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	var out []identity.Credential
	for rows.Next() {
		var c identity.Credential
		var created int64
		if err := rows.Scan(&c.UUID, &c.CredID, &c.Kind, &c.Name, &c.PublicKey, &c.Algorithm, &c.Status, &created); err != nil {
			return nil, mapErr(err)
		}
		c.OrgID, c.UserID, c.CreatedAt = p.OrgID, p.UserID, fromMS(created)
		out = append(out, c)
	}
	return out, mapErr(rows.Err())
}

// SetCredentialStatus activates or deactivates a credential.
func (db *DB) SetCredentialStatus(ctx context.Context, orgID, credUUID, status string, now time.Time) error {
	defer db.cache.invalidate()
	res, err := db.exec(ctx, `UPDATE credentials SET status = $1, updated_at = $2 WHERE org_id = $3 AND uuid = $4`,
		status, ms(now), orgID, credUUID)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return errs.E(errs.NotFound, "credential not found", nil)
	}
	return nil
}

// PurgeUserActions deletes actions created before cutoff. Ids sort by creation time, so
// the primary key finds them; cutoff must be older than any challenge or token lifetime.
func (db *DB) PurgeUserActions(ctx context.Context, cutoff time.Time) (int64, error) {
	var held int64
	if db.chal != nil {
		held = db.chal.purge(cutoff)
	}
	res, err := db.exec(ctx, `DELETE FROM user_actions WHERE id < $1 AND COALESCE(token_expires_at, 0) < $2 AND expires_at < $2`,
		ids.Floor("ch", cutoff), ms(cutoff))
	if err != nil {
		return held, err
	}
	n, err := res.RowsAffected()
	return held + n, err
}
