package store

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/countersign/countersign/internal/audit"
)

// FinishAudit records the final status of a signed request. It is synchronous (on SQLite it
// joins the current group commit) so a client that has its answer also sees its entry done.
func (db *DB) FinishAudit(ctx context.Context, id string, status int, now time.Time) error {
	_, err := db.exec(audit.WithoutPending(ctx), finishAuditSQL, status, ms(now), id)
	return err
}

const finishAuditSQL = `UPDATE audit_log SET status = $1, finished_at = $2 WHERE id = $3`

const auditCols = `a.id, a.org_id, a.user_id, COALESCE(u.username, ''), a.token_id, a.credential_uuid, COALESCE(c.cred_id, ''), COALESCE(c.kind, ''),
	a.user_action_id, a.method, a.path, a.body_hash, a.client_data, a.signature, a.status, a.created_at, COALESCE(a.finished_at, 0)`

const auditFrom = ` FROM audit_log a LEFT JOIN users u ON u.id = a.user_id LEFT JOIN credentials c ON c.uuid = a.credential_uuid`

func scanAudit(s scanner, e *audit.Entry) error {
	var c, f int64
	if err := s.Scan(&e.ID, &e.OrgID, &e.UserID, &e.Username, &e.TokenID, &e.CredentialUUID, &e.CredentialID, &e.CredentialKind,
		&e.UserActionID, &e.Method, &e.Path, &e.BodyHash, &e.ClientData, &e.Signature, &e.Status, &c, &f); err != nil {
		return err
	}
	e.CreatedAt = fromMS(c)
	if f != 0 {
		e.FinishedAt = fromMS(f)
	}
	return nil
}

// ListAudit lists entries newest first; f.After continues after that entry.
func (db *DB) ListAudit(ctx context.Context, orgID string, f audit.Filter) ([]audit.Entry, error) {
	var where []string
	args := []any{orgID}
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(cond, "?", "$"+itoa(len(args))))
	}
	where = append(where, "a.org_id = $1")
	if f.UserID != "" {
		add("a.user_id = ?", f.UserID)
	}
	if !f.StartTime.IsZero() {
		add("a.created_at >= ?", ms(f.StartTime))
	}
	if !f.EndTime.IsZero() {
		add("a.created_at <= ?", ms(f.EndTime))
	}
	if f.After != "" {
		var c int64
		if err := db.queryRow(ctx, `SELECT created_at FROM audit_log WHERE id = $1 AND org_id = $2`, f.After, orgID).Scan(&c); err != nil {
			return nil, mapErr(err)
		}
		args = append(args, c, f.After)
		n := len(args)
		where = append(where, "(a.created_at < $"+itoa(n-1)+" OR (a.created_at = $"+itoa(n-1)+" AND a.id < $"+itoa(n)+"))")
	}
	args = append(args, f.Limit)
	q := `SELECT ` + auditCols + auditFrom + ` WHERE ` + strings.Join(where, " AND ") +
		` ORDER BY a.created_at DESC, a.id DESC LIMIT $` + itoa(len(args))
	return queryAll(ctx, db, scanAudit, q, args...)
}

// GetAudit returns one entry of the organization.
func (db *DB) GetAudit(ctx context.Context, orgID, id string) (audit.Entry, error) {
	var e audit.Entry
	err := scanAudit(db.queryRow(ctx, `SELECT `+auditCols+auditFrom+` WHERE a.org_id = $1 AND a.id = $2`, orgID, id), &e)
	return e, mapErr(err)
}

func itoa(i int) string { return strconv.Itoa(i) }
