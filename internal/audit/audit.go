// Package audit reads the append-only log of user-action-signed requests. Entries are
// written by the store in the same transaction that consumes the user action token, so a
// request that got past the signature check is never missing from the log; the HTTP layer
// then records the status the request ended with.
package audit

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/countersign/countersign/internal/auth"
	"github.com/countersign/countersign/internal/errs"
)

// Entry is one signed request. ClientData and Signature are kept so the assertion can be
// re-verified later against the credential's public key.
type Entry struct {
	ID             string
	OrgID          string
	UserID         string
	Username       string
	TokenID        string
	CredentialUUID string
	CredentialID   string
	CredentialKind string // Key or Fido2: the credential that signed
	UserActionID   string
	Method         string
	Path           string
	BodyHash       string // base64url SHA-256 of the exact body
	ClientData     []byte
	Signature      []byte
	Status         int // HTTP status of the request; 0 while it runs or if the node died
	CreatedAt      time.Time
	FinishedAt     time.Time
}

// Pending is a signed request's entry still waiting for its final status. The store records
// 200 in it inside the first write transaction the request commits, so a request that
// succeeds pays for no separate audit write and its status commits atomically with its
// change. A request that fails, or writes nothing, is finished by the HTTP layer instead.
type Pending struct {
	ID   string
	Now  func() time.Time
	done atomic.Bool
}

// Done reports whether a committed transaction has recorded the entry's status.
func (p *Pending) Done() bool { return p.done.Load() }

// MarkDone is called by the store once the transaction that recorded the status committed.
func (p *Pending) MarkDone() { p.done.Store(true) }

type pendingKey struct{}

// Begin returns ctx carrying the pending entry id for the store to finish.
func (s *Service) Begin(ctx context.Context, id string) (context.Context, *Pending) {
	p := &Pending{ID: id, Now: s.now}
	return context.WithValue(ctx, pendingKey{}, p), p
}

// PendingFrom returns the entry a write in ctx should finish, or nil.
func PendingFrom(ctx context.Context) *Pending {
	p, _ := ctx.Value(pendingKey{}).(*Pending)
	return p
}

// WithoutPending hides ctx's pending entry from the store (for the write that finishes it).
func WithoutPending(ctx context.Context) context.Context {
	return context.WithValue(ctx, pendingKey{}, (*Pending)(nil))
}

// Filter selects entries; zero fields do not filter.
type Filter struct {
	UserID    string
	StartTime time.Time
	EndTime   time.Time
	Limit     int
	After     string // pagination token: the id of the last entry of the previous page
}

// Store reads and finishes entries.
type Store interface {
	FinishAudit(ctx context.Context, id string, status int, now time.Time) error
	ListAudit(ctx context.Context, orgID string, f Filter) ([]Entry, error)
	GetAudit(ctx context.Context, orgID, id string) (Entry, error)
}

// Service is the audit log.
type Service struct {
	store Store
	now   func() time.Time
}

// NewService wires the audit log.
func NewService(store Store, now func() time.Time) *Service { return &Service{store: store, now: now} }

// Finish records the final HTTP status of a signed request.
func (s *Service) Finish(ctx context.Context, id string, status int) error {
	return s.store.FinishAudit(ctx, id, status, s.now())
}

// List returns a page of the caller's organization's entries, newest first, and the token
// of the next page ("" on the last page).
func (s *Service) List(ctx context.Context, p auth.Principal, f Filter) ([]Entry, string, error) {
	if p.UserKind == "EndUser" {
		return nil, "", errs.E(errs.PermissionDenied, "end users cannot read the audit log", nil)
	}
	if f.Limit <= 0 {
		f.Limit = 100
	}
	if f.Limit > 500 {
		f.Limit = 500
	}
	want := f.Limit
	f.Limit++
	items, err := s.store.ListAudit(ctx, p.OrgID, f)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(items) > want {
		items = items[:want]
		next = items[want-1].ID
	}
	return items, next, nil
}

// Get returns one entry.
func (s *Service) Get(ctx context.Context, p auth.Principal, id string) (Entry, error) {
	if p.UserKind == "EndUser" {
		return Entry{}, errs.E(errs.PermissionDenied, "end users cannot read the audit log", nil)
	}
	e, err := s.store.GetAudit(ctx, p.OrgID, id)
	if errs.Is(err, errs.NotFound) {
		return e, errs.E(errs.NotFound, "audit log entry not found", err)
	}
	return e, err
}
