package store

import (
	"context"
	"encoding/json"
	"time"

	"github.com/countersign/countersign/internal/auth"
	"github.com/countersign/countersign/internal/errs"
	"github.com/countersign/countersign/internal/identity"
	"github.com/countersign/countersign/internal/users"
)

// CreateUser inserts a person and, optionally, their registration code.
func (db *DB) CreateUser(ctx context.Context, u identity.User, c *users.Code) error {
	return db.Tx(ctx, func(tx *Tx) error {
		if err := insertUser(ctx, tx, u); err != nil {
			return err
		}
		if c != nil {
			return insertCode(ctx, tx, *c)
		}
		return nil
	})
}

func scanPlainUser(s scanner, u *identity.User) error { return scanUser(s, u) }

// ListUsers lists the people of an organization (not service accounts, not archived) in id
// order, after the id after.
func (db *DB) ListUsers(ctx context.Context, orgID, kind, after string, limit int) ([]identity.User, error) {
	return queryAll(ctx, db, scanPlainUser, `SELECT `+userCols+` FROM users u
		WHERE u.org_id = $1 AND u.is_service_account = 0 AND u.status <> 'Archived' AND ($2 = '' OR u.kind = $2) AND u.id > $3
		ORDER BY u.id LIMIT $4`, orgID, kind, after, limit)
}

// GetUser returns a person of the organization (archived ones too).
func (db *DB) GetUser(ctx context.Context, orgID, userID string) (identity.User, error) {
	var u identity.User
	err := scanUser(db.queryRow(ctx, `SELECT `+userCols+` FROM users u WHERE u.id = $1 AND u.org_id = $2 AND u.is_service_account = 0`,
		userID, orgID), &u)
	return u, mapErr(err)
}

// GetUserByUsername finds a person who is not archived by username.
func (db *DB) GetUserByUsername(ctx context.Context, orgID, username string) (identity.User, error) {
	us, err := queryAll(ctx, db, scanPlainUser, `SELECT `+userCols+` FROM users u
		WHERE u.username = $1 AND ($2 = '' OR u.org_id = $2) AND u.is_service_account = 0 AND u.status <> 'Archived' LIMIT 2`,
		username, orgID)
	if err != nil {
		return identity.User{}, err
	}
	if len(us) != 1 {
		return identity.User{}, errs.E(errs.NotFound, "user not found", nil)
	}
	return us[0], nil
}

// SetUserStatus sets a person's status; every token of theirs follows at the next request.
func (db *DB) SetUserStatus(ctx context.Context, orgID, userID, status string, now time.Time) error {
	defer db.cache.invalidate()
	return db.Tx(ctx, func(tx *Tx) error {
		return affected(tx.ExecContext(ctx, `UPDATE users SET status = $1, updated_at = $2 WHERE org_id = $3 AND id = $4 AND is_service_account = 0`,
			status, ms(now), orgID, userID))
	})
}

func insertCode(ctx context.Context, tx *Tx, c users.Code) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO auth_codes (code_hash, org_id, user_id, purpose, created_at, expires_at)
		VALUES ($1,$2,$3,$4,$5,$6)`, c.Hash, c.OrgID, c.UserID, c.Purpose, ms(c.CreatedAt), ms(c.ExpiresAt))
	return err
}

// CreateCode stores a one-time code (its hash).
func (db *DB) CreateCode(ctx context.Context, c users.Code) error {
	return db.Tx(ctx, func(tx *Tx) error { return insertCode(ctx, tx, c) })
}

func scanCode(s scanner, c *users.Code) error {
	var cr, ex int64
	if err := s.Scan(&c.Hash, &c.OrgID, &c.UserID, &c.Purpose, &cr, &ex); err != nil {
		return err
	}
	c.CreatedAt, c.ExpiresAt = fromMS(cr), fromMS(ex)
	return nil
}

const codeCols = `code_hash, org_id, user_id, purpose, created_at, expires_at`

// CheckCode returns a usable code.
func (db *DB) CheckCode(ctx context.Context, h []byte, userID, purpose string, now time.Time) (users.Code, error) {
	var c users.Code
	err := scanCode(db.queryRow(ctx, `SELECT `+codeCols+` FROM auth_codes WHERE code_hash = $1 AND purpose = $2
		AND ($3 = '' OR user_id = $3) AND used_at IS NULL AND expires_at > $4`, h, purpose, userID, ms(now)), &c)
	return c, mapErr(err)
}

// ConsumeCode uses a code up in one conditional UPDATE: of two concurrent uses one wins.
func (db *DB) ConsumeCode(ctx context.Context, h []byte, userID, purpose string, now time.Time) (users.Code, error) {
	var c users.Code
	err := db.Tx(ctx, func(tx *Tx) error {
		return scanCode(tx.QueryRowContext(ctx, `UPDATE auth_codes SET used_at = $1 WHERE code_hash = $2 AND purpose = $3
			AND ($4 = '' OR user_id = $4) AND used_at IS NULL AND expires_at > $1 RETURNING `+codeCols,
			ms(now), h, purpose, userID), &c)
	})
	return c, err
}

// CreateCeremony stores an issued ceremony.
func (db *DB) CreateCeremony(ctx context.Context, c users.Ceremony) error {
	_, err := db.exec(ctx, `INSERT INTO auth_ceremonies (id, org_id, user_id, purpose, handle_hash, challenge, cred_kind,
		cred_uuid, state, created_at, expires_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)`,
		c.ID, c.OrgID, c.UserID, c.Purpose, c.HandleHash, c.Challenge, c.CredKind, c.CredUUID, c.State,
		ms(c.CreatedAt), ms(c.ExpiresAt))
	return err
}

// GetCeremony finds a ceremony by the hash of its handle.
func (db *DB) GetCeremony(ctx context.Context, handleHash []byte) (users.Ceremony, error) {
	var c users.Ceremony
	var cr, ex int64
	err := db.queryRow(ctx, `SELECT id, org_id, user_id, purpose, handle_hash, challenge, cred_kind, cred_uuid, state,
		created_at, expires_at FROM auth_ceremonies WHERE handle_hash = $1`, handleHash).
		Scan(&c.ID, &c.OrgID, &c.UserID, &c.Purpose, &c.HandleHash, &c.Challenge, &c.CredKind, &c.CredUUID, &c.State, &cr, &ex)
	c.CreatedAt, c.ExpiresAt = fromMS(cr), fromMS(ex)
	return c, mapErr(err)
}

func insertUserCredential(ctx context.Context, tx *Tx, c users.Credential) error {
	if err := insertCredential(ctx, tx, c.Credential); err != nil {
		return err
	}
	var epk any
	if c.EncryptedPrivateKey != "" {
		epk = c.EncryptedPrivateKey
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO credential_details (uuid, sign_count, flags, aaguid, rp_id, origin, encrypted_private_key)
		VALUES ($1,$2,$3,$4,$5,$6,$7)`, c.UUID, int64(c.SignCount), int(c.Flags), c.AAGUID, c.RPID, c.Origin, epk)
	return err
}

// Complete consumes a ceremony and applies its change in one transaction.
func (db *DB) Complete(ctx context.Context, ceremonyID string, now time.Time, ch users.Change) error {
	defer db.cache.invalidate() // new credentials, counters, sessions and retirements all change auth answers
	return db.Tx(ctx, func(tx *Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE auth_ceremonies SET state = 'used', used_at = $1
			WHERE id = $2 AND state = 'pending' AND expires_at > $1`, ms(now), ceremonyID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return errs.E(errs.Unauthenticated, "challenge has already been used", nil)
		}
		if ch.RegisterUser != "" {
			res, err := tx.ExecContext(ctx, `UPDATE users SET is_registered = 1, updated_at = $1
				WHERE id = $2 AND is_registered = 0 AND status = 'Active'`, ms(now), ch.RegisterUser)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n != 1 {
				return errs.E(errs.Unauthenticated, "User already exists.", nil)
			}
			if _, err := tx.ExecContext(ctx, `UPDATE auth_codes SET used_at = $1 WHERE user_id = $2 AND purpose = $3 AND used_at IS NULL`,
				ms(now), ch.RegisterUser, users.CodeRegistration); err != nil {
				return err
			}
		}
		if ch.RetireUser != "" {
			if _, err := tx.ExecContext(ctx, `UPDATE credentials SET status = 'Archived', updated_at = $1 WHERE user_id = $2`,
				ms(now), ch.RetireUser); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE access_tokens SET status = 'Archived', updated_at = $1 WHERE user_id = $2`,
				ms(now), ch.RetireUser); err != nil {
				return err
			}
		}
		for _, c := range ch.NewCredentials {
			if err := insertUserCredential(ctx, tx, c); err != nil {
				return err
			}
		}
		if ch.Counter != nil {
			if err := advanceCounter(ctx, tx, *ch.Counter); err != nil {
				return err
			}
		}
		if t := ch.Session; t != nil {
			if _, err := tx.ExecContext(ctx, `INSERT INTO access_tokens (id, org_id, user_id, kind, name, credential_uuid,
				external_id, status, created_at, updated_at, expires_at) VALUES ($1,$2,$3,$4,$5,$6,NULL,$7,$8,$9,$10)`,
				t.ID, t.OrgID, t.UserID, t.Kind, t.Name, t.Credential.UUID, t.Status, ms(t.CreatedAt), ms(t.UpdatedAt), ms(t.ExpiresAt)); err != nil {
				return err
			}
		}
		// An end user's first wallets, each on a new key, commit with their registration.
		for _, w := range ch.NewWallets {
			tags, err := json.Marshal(w.Tags)
			if err != nil {
				return err
			}
			if err := insertWallet(ctx, tx, w, true, tags); err != nil {
				return err
			}
		}
		return nil
	})
}

// advanceCounter stores a new signature counter only if the stored one is still the one
// verified against, so two nodes can never both accept the same counter value.
func advanceCounter(ctx context.Context, tx *Tx, u users.CounterUpdate) error {
	res, err := tx.ExecContext(ctx, `UPDATE credential_details SET sign_count = $1, flags = $2 WHERE uuid = $3 AND sign_count = $4`,
		int64(u.New), int(u.Flags), u.UUID, int64(u.Old))
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return errs.E(errs.Unauthenticated, "signature counter did not increase (possible cloned authenticator)", nil)
	}
	return nil
}

// AdvanceCounter stores a Fido2 counter after a user action signature.
func (db *DB) AdvanceCounter(ctx context.Context, u users.CounterUpdate, now time.Time) error {
	return db.Tx(ctx, func(tx *Tx) error { return advanceCounter(ctx, tx, u) })
}

const userCredCols = `c.uuid, c.org_id, c.user_id, c.cred_id, c.kind, c.name, c.public_key, c.algorithm, c.status, c.created_at,
	COALESCE(d.sign_count, 0), COALESCE(d.flags, 0), d.aaguid, COALESCE(d.rp_id, ''), COALESCE(d.origin, ''),
	COALESCE(d.encrypted_private_key, '')`

func scanUserCred(s scanner, c *users.Credential) error {
	var cr, n int64
	var flags int
	if err := s.Scan(&c.UUID, &c.OrgID, &c.UserID, &c.CredID, &c.Kind, &c.Name, &c.PublicKey, &c.Algorithm, &c.Status, &cr,
		&n, &flags, &c.AAGUID, &c.RPID, &c.Origin, &c.EncryptedPrivateKey); err != nil {
		return err
	}
	c.CreatedAt, c.SignCount, c.Flags = fromMS(cr), uint32(n), byte(flags)
	return nil
}

// ListCredentials lists a person's own credentials (not the key credentials of their PATs).
func (db *DB) ListCredentials(ctx context.Context, orgID, userID string) ([]users.Credential, error) {
	return queryAll(ctx, db, scanUserCred, `SELECT `+userCredCols+` FROM credentials c
		LEFT JOIN credential_details d ON d.uuid = c.uuid
		WHERE c.org_id = $1 AND c.user_id = $2
		  AND NOT EXISTS (SELECT 1 FROM access_tokens t WHERE t.credential_uuid = c.uuid AND t.kind <> $3)
		ORDER BY c.created_at, c.uuid`, orgID, userID, auth.KindUser)
}

// GetCredential returns one credential with its details.
func (db *DB) GetCredential(ctx context.Context, orgID, uuid string) (users.Credential, error) {
	var c users.Credential
	err := scanUserCred(db.queryRow(ctx, `SELECT `+userCredCols+` FROM credentials c
		LEFT JOIN credential_details d ON d.uuid = c.uuid WHERE c.org_id = $1 AND c.uuid = $2`, orgID, uuid), &c)
	return c, mapErr(err)
}

// SetUserCredentialStatus activates or deactivates a person's credential. Deactivation also
// ends the login sessions opened with it.
func (db *DB) SetUserCredentialStatus(ctx context.Context, orgID, userID, uuid, status string, now time.Time) error {
	defer db.cache.invalidate()
	return db.Tx(ctx, func(tx *Tx) error {
		if err := affected(tx.ExecContext(ctx, `UPDATE credentials SET status = $1, updated_at = $2
			WHERE org_id = $3 AND user_id = $4 AND uuid = $5 AND status <> 'Archived'`, status, ms(now), orgID, userID, uuid)); err != nil {
			return err
		}
		if status == identity.Active {
			return nil
		}
		_, err := tx.ExecContext(ctx, `UPDATE access_tokens SET status = $1, updated_at = $2
			WHERE credential_uuid = $3 AND kind = $4 AND status = 'Active'`, identity.Inactive, ms(now), uuid, auth.KindUser)
		return err
	})
}

// EndSessions deactivates login sessions of a user: one, or all when tokenID is "".
func (db *DB) EndSessions(ctx context.Context, orgID, userID, tokenID string, now time.Time) error {
	defer db.cache.invalidate()
	return db.Tx(ctx, func(tx *Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE access_tokens SET status = $1, updated_at = $2
			WHERE org_id = $3 AND user_id = $4 AND kind = $5 AND ($6 = '' OR id = $6) AND status = 'Active'`,
			identity.Inactive, ms(now), orgID, userID, auth.KindUser, tokenID)
		return err
	})
}

// PurgeAuthCeremonies deletes ceremonies and one-time codes that expired before cutoff
// (used or not: an expired one can never be completed).
func (db *DB) PurgeAuthCeremonies(ctx context.Context, cutoff time.Time) (int64, error) {
	var total int64
	err := db.Tx(ctx, func(tx *Tx) error {
		total = 0
		for _, q := range []string{`DELETE FROM auth_ceremonies WHERE expires_at < $1`, `DELETE FROM auth_codes WHERE expires_at < $1`} {
			res, err := tx.ExecContext(ctx, q, ms(cutoff))
			if err != nil {
				return err
			}
			n, _ := res.RowsAffected()
			total += n
		}
		return nil
	})
	return total, err
}

// ReplaceCode stores a new code and uses up the user's earlier unused codes of the same
// purpose, so only the newest one works.
func (db *DB) ReplaceCode(ctx context.Context, c users.Code) error {
	return db.Tx(ctx, func(tx *Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE auth_codes SET used_at = $1 WHERE user_id = $2 AND purpose = $3 AND used_at IS NULL`,
			ms(c.CreatedAt), c.UserID, c.Purpose); err != nil {
			return err
		}
		return insertCode(ctx, tx, c)
	})
}
