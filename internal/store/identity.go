package store

import (
	"context"
	"database/sql"
	"time"

	"github.com/countersign/countersign/internal/auth"
	"github.com/countersign/countersign/internal/errs"
	"github.com/countersign/countersign/internal/identity"
)

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func nullStr(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// CreateOrg inserts an organization.
func (db *DB) CreateOrg(ctx context.Context, o identity.Org) error {
	_, err := db.exec(ctx, `INSERT INTO orgs (id, name, created_at) VALUES ($1, $2, $3)`, o.ID, o.Name, ms(o.CreatedAt))
	return err
}

// Bootstrap creates the first organization and its admin service account, unless some
// node already did (then it returns false and changes nothing).
func (db *DB) Bootstrap(ctx context.Context, o identity.Org, sa identity.ServiceAccount) (bool, error) {
	created := false
	err := db.Tx(ctx, func(tx *Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM bootstrap`).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO orgs (id, name, created_at) VALUES ($1, $2, $3)`, o.ID, o.Name, ms(o.CreatedAt)); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO bootstrap (singleton, org_id, created_at) VALUES (1, $1, $2)`, o.ID, ms(o.CreatedAt)); err != nil {
			return err
		}
		if err := insertServiceAccount(ctx, tx, sa); err != nil {
			return err
		}
		created = true
		return nil
	})
	if errs.Is(err, errs.Conflict) {
		// Lost the race to another node (PostgreSQL)? Then the bootstrap row exists now.
		if _, gerr := db.BootstrapOrg(ctx); gerr == nil {
			return false, nil
		}
	}
	return created, err
}

// BootstrapOrg returns the id of the first organization, or NotFound.
func (db *DB) BootstrapOrg(ctx context.Context) (string, error) {
	var id string
	err := db.queryRow(ctx, `SELECT org_id FROM bootstrap WHERE singleton = 1`).Scan(&id)
	return id, mapErr(err)
}

func insertUser(ctx context.Context, tx *Tx, u identity.User) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO users (id, org_id, username, name, kind, is_service_account, status,
		is_registered, external_id, created_at, updated_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)`,
		u.ID, u.OrgID, u.Username, u.Name, u.Kind, b2i(u.IsServiceAccount), u.Status, b2i(u.IsRegistered),
		nullStr(u.ExternalID), ms(u.CreatedAt), ms(u.UpdatedAt))
	return err
}

func insertCredential(ctx context.Context, tx *Tx, c identity.Credential) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO credentials (uuid, org_id, user_id, cred_id, kind, name, public_key,
		algorithm, status, created_at, updated_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$10)`,
		c.UUID, c.OrgID, c.UserID, c.CredID, c.Kind, c.Name, c.PublicKey, c.Algorithm, c.Status, ms(c.CreatedAt))
	return err
}

func insertToken(ctx context.Context, tx *Tx, t identity.AccessToken) error {
	if err := insertCredential(ctx, tx, t.Credential); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO access_tokens (id, org_id, user_id, kind, name, credential_uuid,
		external_id, status, created_at, updated_at, expires_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)`,
		t.ID, t.OrgID, t.UserID, t.Kind, t.Name, t.Credential.UUID, nullStr(t.ExternalID), t.Status,
		ms(t.CreatedAt), ms(t.UpdatedAt), ms(t.ExpiresAt))
	return err
}

func insertServiceAccount(ctx context.Context, tx *Tx, sa identity.ServiceAccount) error {
	if err := insertUser(ctx, tx, sa.User); err != nil {
		return err
	}
	for _, t := range sa.Tokens {
		if err := insertToken(ctx, tx, t); err != nil {
			return err
		}
	}
	return nil
}

// CreateServiceAccount inserts a service account, its credentials and tokens atomically.
func (db *DB) CreateServiceAccount(ctx context.Context, sa identity.ServiceAccount) error {
	return db.Tx(ctx, func(tx *Tx) error { return insertServiceAccount(ctx, tx, sa) })
}

// CreateAccessToken inserts a token and its key credential atomically.
func (db *DB) CreateAccessToken(ctx context.Context, t identity.AccessToken) error {
	return db.Tx(ctx, func(tx *Tx) error { return insertToken(ctx, tx, t) })
}

const userCols = `u.id, u.org_id, u.username, u.name, u.kind, u.is_service_account, u.status, u.is_registered,
	COALESCE(u.external_id, ''), u.created_at, u.updated_at`

type scanner interface{ Scan(...any) error }

func scanUser(s scanner, u *identity.User, extra ...any) error {
	var sa, reg int
	var c, up int64
	dest := append([]any{&u.ID, &u.OrgID, &u.Username, &u.Name, &u.Kind, &sa, &u.Status, &reg, &u.ExternalID, &c, &up}, extra...)
	if err := s.Scan(dest...); err != nil {
		return err
	}
	u.IsServiceAccount, u.IsRegistered, u.CreatedAt, u.UpdatedAt = sa == 1, reg == 1, fromMS(c), fromMS(up)
	return nil
}

const tokenCols = `t.id, t.org_id, t.user_id, t.kind, t.name, COALESCE(t.external_id, ''), t.status, t.created_at,
	t.updated_at, t.expires_at, c.uuid, c.cred_id, c.kind, c.name, c.public_key, c.algorithm, c.status, c.created_at`

func scanToken(s scanner, t *identity.AccessToken) error {
	var c, u, e, cc int64
	if err := s.Scan(&t.ID, &t.OrgID, &t.UserID, &t.Kind, &t.Name, &t.ExternalID, &t.Status, &c, &u, &e,
		&t.Credential.UUID, &t.Credential.CredID, &t.Credential.Kind, &t.Credential.Name, &t.Credential.PublicKey,
		&t.Credential.Algorithm, &t.Credential.Status, &cc); err != nil {
		return err
	}
	t.CreatedAt, t.UpdatedAt, t.ExpiresAt = fromMS(c), fromMS(u), fromMS(e)
	t.Credential.OrgID, t.Credential.UserID, t.Credential.CreatedAt = t.OrgID, t.UserID, fromMS(cc)
	return nil
}

// serviceAccounts runs one users LEFT JOIN tokens query (ordered by user, then token) and
// groups its rows: a service account with all its tokens, in one round trip.
func (db *DB) serviceAccounts(ctx context.Context, where string, args ...any) ([]identity.ServiceAccount, error) {
	rows, err := db.query(ctx, `SELECT `+userCols+`, `+tokenCols+` FROM users u
		LEFT JOIN access_tokens t ON t.user_id = u.id AND t.kind = '`+auth.KindServiceAccount+`'
		LEFT JOIN credentials c ON c.uuid = t.credential_uuid
		WHERE u.is_service_account = 1 AND `+where+` ORDER BY u.created_at, u.id, t.created_at, t.id`, args...)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	out := []identity.ServiceAccount{}
	for rows.Next() {
		var u identity.User
		var t nullToken
		if err := scanUser(rows, &u, t.dest()...); err != nil {
			return nil, mapErr(err)
		}
		if len(out) == 0 || out[len(out)-1].User.ID != u.ID {
			out = append(out, identity.ServiceAccount{User: u})
		}
		if t.id.Valid {
			sa := &out[len(out)-1]
			sa.Tokens = append(sa.Tokens, t.token(sa.User))
		}
	}
	return out, mapErr(rows.Err())
}

// ListServiceAccounts lists the organization's service accounts that are not archived.
func (db *DB) ListServiceAccounts(ctx context.Context, orgID string) ([]identity.ServiceAccount, error) {
	return db.serviceAccounts(ctx, `u.org_id = $1 AND u.status <> 'Archived'`, orgID)
}

// GetServiceAccount returns a service account of the organization (archived ones too).
func (db *DB) GetServiceAccount(ctx context.Context, orgID, userID string) (identity.ServiceAccount, error) {
	sas, err := db.serviceAccounts(ctx, `u.id = $1 AND u.org_id = $2`, userID, orgID)
	if err != nil {
		return identity.ServiceAccount{}, err
	}
	if len(sas) == 0 {
		return identity.ServiceAccount{}, errs.E(errs.NotFound, "not found", nil)
	}
	return sas[0], nil
}

// nullToken scans the token columns of a LEFT JOIN.
type nullToken struct {
	id, kind, name, ext, status, cuuid, credID, ckind, cname, alg, cstatus sql.NullString
	created, updated, expires, ccreated                                    sql.NullInt64
	pub                                                                    []byte
	org, user                                                              sql.NullString
}

func (n *nullToken) dest() []any {
	return []any{&n.id, &n.org, &n.user, &n.kind, &n.name, &n.ext, &n.status, &n.created, &n.updated, &n.expires,
		&n.cuuid, &n.credID, &n.ckind, &n.cname, &n.pub, &n.alg, &n.cstatus, &n.ccreated}
}

func (n *nullToken) token(u identity.User) identity.AccessToken {
	return identity.AccessToken{
		ID: n.id.String, OrgID: u.OrgID, UserID: u.ID, Kind: n.kind.String, Name: n.name.String, ExternalID: n.ext.String,
		Status: n.status.String, CreatedAt: fromMS(n.created.Int64), UpdatedAt: fromMS(n.updated.Int64), ExpiresAt: fromMS(n.expires.Int64),
		Credential: identity.Credential{UUID: n.cuuid.String, OrgID: u.OrgID, UserID: u.ID, CredID: n.credID.String, Kind: n.ckind.String,
			Name: n.cname.String, PublicKey: n.pub, Algorithm: n.alg.String, Status: n.cstatus.String, CreatedAt: fromMS(n.ccreated.Int64)},
	}
}

// UpdateUser changes a user's name (and, for service accounts, username) or externalId.
func (db *DB) UpdateUser(ctx context.Context, orgID, userID string, name, externalID *string, now time.Time) error {
	defer db.cache.invalidate()
	return db.Tx(ctx, func(tx *Tx) error {
		if name != nil {
			if err := affected(tx.ExecContext(ctx, `UPDATE users SET name = $1, username = CASE WHEN is_service_account = 1 THEN $1 ELSE username END,
				updated_at = $2 WHERE org_id = $3 AND id = $4`, *name, ms(now), orgID, userID)); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE access_tokens SET name = $1, updated_at = $2 WHERE org_id = $3 AND user_id = $4 AND kind = $5`,
				*name, ms(now), orgID, userID, auth.KindServiceAccount); err != nil {
				return err
			}
		}
		if externalID != nil {
			if err := affected(tx.ExecContext(ctx, `UPDATE users SET external_id = $1, updated_at = $2 WHERE org_id = $3 AND id = $4`,
				nullStr(*externalID), ms(now), orgID, userID)); err != nil {
				return err
			}
		}
		return nil
	})
}

// affected turns an UPDATE that matched no row (an unknown id, or another organization's)
// into NotFound.
func affected(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return errs.E(errs.NotFound, "not found", nil)
	}
	return nil
}

// SetServiceAccountStatus sets the status of a service account's user and its tokens.
func (db *DB) SetServiceAccountStatus(ctx context.Context, orgID, userID, status string, now time.Time) error {
	defer db.cache.invalidate()
	return db.Tx(ctx, func(tx *Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE users SET status = $1, updated_at = $2 WHERE org_id = $3 AND id = $4 AND is_service_account = 1`,
			status, ms(now), orgID, userID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return errs.E(errs.NotFound, "service account not found", nil)
		}
		_, err = tx.ExecContext(ctx, `UPDATE access_tokens SET status = $1, updated_at = $2 WHERE org_id = $3 AND user_id = $4 AND kind = $5`,
			status, ms(now), orgID, userID, auth.KindServiceAccount)
		return err
	})
}

// ListAccessTokens lists a user's tokens of one kind that are not archived.
func (db *DB) ListAccessTokens(ctx context.Context, orgID, userID, kind string) ([]identity.AccessToken, error) {
	rows, err := db.query(ctx, `SELECT `+tokenCols+` FROM access_tokens t JOIN credentials c ON c.uuid = t.credential_uuid
		WHERE t.org_id = $1 AND t.user_id = $2 AND t.kind = $3 AND t.status <> 'Archived' ORDER BY t.created_at, t.id`, orgID, userID, kind)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	out := []identity.AccessToken{}
	for rows.Next() {
		var t identity.AccessToken
		if err := scanToken(rows, &t); err != nil {
			return nil, mapErr(err)
		}
		out = append(out, t)
	}
	return out, mapErr(rows.Err())
}

// GetAccessToken returns a token of the organization.
func (db *DB) GetAccessToken(ctx context.Context, orgID, tokenID string) (identity.AccessToken, error) {
	var t identity.AccessToken
	err := scanToken(db.queryRow(ctx, `SELECT `+tokenCols+` FROM access_tokens t JOIN credentials c ON c.uuid = t.credential_uuid
		WHERE t.org_id = $1 AND t.id = $2`, orgID, tokenID), &t)
	return t, mapErr(err)
}

// UpdateAccessToken changes a token's name or externalId.
func (db *DB) UpdateAccessToken(ctx context.Context, orgID, tokenID string, name, externalID *string, now time.Time) error {
	return db.Tx(ctx, func(tx *Tx) error {
		if name != nil {
			if err := affected(tx.ExecContext(ctx, `UPDATE access_tokens SET name = $1, updated_at = $2 WHERE org_id = $3 AND id = $4`,
				*name, ms(now), orgID, tokenID)); err != nil {
				return err
			}
		}
		if externalID != nil {
			if err := affected(tx.ExecContext(ctx, `UPDATE access_tokens SET external_id = $1, updated_at = $2 WHERE org_id = $3 AND id = $4`,
				nullStr(*externalID), ms(now), orgID, tokenID)); err != nil {
				return err
			}
		}
		return nil
	})
}

// SetAccessTokenStatus sets a token's status. Its key credential keeps its own status: a
// token that is not active cannot authenticate, so its credential cannot sign either.
func (db *DB) SetAccessTokenStatus(ctx context.Context, orgID, tokenID, status string, now time.Time) error {
	defer db.cache.invalidate()
	return db.Tx(ctx, func(tx *Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE access_tokens SET status = $1, updated_at = $2 WHERE org_id = $3 AND id = $4`,
			status, ms(now), orgID, tokenID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return errs.E(errs.NotFound, "token not found", nil)
		}
		return nil
	})
}

// TokenState answers the per-request revocation check: one indexed read.
func (db *DB) TokenState(ctx context.Context, tokenID string) (auth.TokenState, error) {
	var g uint64
	if db.cache != nil {
		st, gen, ok := db.cache.tokens.get(tokenID)
		if ok {
			return st, nil
		}
		g = gen
	}
	st, err := db.tokenState(ctx, tokenID)
	if err == nil && db.cache != nil {
		db.cache.tokens.put(tokenID, g, st)
	}
	return st, err
}

func (db *DB) tokenState(ctx context.Context, tokenID string) (auth.TokenState, error) {
	var st auth.TokenState
	var tStatus, uStatus string
	var sa int
	var exp int64
	err := db.queryRow(ctx, `SELECT t.org_id, t.user_id, u.username, u.kind, u.is_service_account, t.status, u.status, t.expires_at
		FROM access_tokens t JOIN users u ON u.id = t.user_id WHERE t.id = $1`, tokenID).
		Scan(&st.OrgID, &st.UserID, &st.Username, &st.UserKind, &sa, &tStatus, &uStatus, &exp)
	if err != nil {
		return st, mapErr(err)
	}
	st.IsServiceAccount = sa == 1
	st.Active = tStatus == identity.Active && uStatus == identity.Active
	st.ExpiresAt = fromMS(exp)
	return st, nil
}

// TokenCredential returns the key credential bound to a token (the one that signs its user actions).
func (db *DB) TokenCredential(ctx context.Context, orgID, tokenID string) (identity.Credential, error) {
	t, err := db.GetAccessToken(ctx, orgID, tokenID)
	return t.Credential, err
}
