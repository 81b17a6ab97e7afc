package auth

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/countersign/countersign/internal/errs"
)

// TokenState is what the store knows of a token id right now.
type TokenState struct {
	OrgID            string
	UserID           string
	Username         string
	UserKind         string
	IsServiceAccount bool
	Active           bool // token and its user both active
	ExpiresAt        time.Time
}

// TokenStore answers revocation questions from the shared database.
type TokenStore interface {
	TokenState(ctx context.Context, tokenID string) (TokenState, error)
}

// Authenticator verifies bearer tokens. A token's signature is verified once per process
// and cached by the SHA-256 of its bytes; expiry and revocation are checked on every call,
// the latter against the database, so revocation is immediate on every node.
type Authenticator struct {
	keys  *Keyring
	store TokenStore
	now   func() time.Time

	mu    sync.RWMutex
	cache map[[32]byte]*Claims
}

const maxCached = 100_000

// NewAuthenticator returns an Authenticator; now is the clock (injected for tests).
func NewAuthenticator(keys *Keyring, store TokenStore, now func() time.Time) *Authenticator {
	return &Authenticator{keys: keys, store: store, now: now, cache: make(map[[32]byte]*Claims)}
}

// Keys returns the keyring used to issue tokens.
func (a *Authenticator) Keys() *Keyring { return a.keys }

// Authenticate resolves an Authorization header value to a principal.
func (a *Authenticator) Authenticate(ctx context.Context, header string) (Principal, error) {
	// The scheme name is case-insensitive (RFC 9110 §11.1).
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		if header == "" {
			return Principal{}, errs.E(errs.Unauthenticated, "authentication token is missing", nil)
		}
		return Principal{}, errs.E(errs.Unauthenticated, "authorization header must be 'Bearer <token>'", nil)
	}
	token = strings.TrimSpace(token)
	if token == "" || len(token) > 8192 {
		return Principal{}, errs.E(errs.Unauthenticated, "authentication token is missing or invalid", nil)
	}
	now := a.now()
	h := tokenHash(token)
	a.mu.RLock()
	c := a.cache[h]
	a.mu.RUnlock()
	if c == nil {
		var err error
		if c, err = a.keys.verify(token, now); err != nil {
			return Principal{}, err
		}
		a.mu.Lock()
		if len(a.cache) >= maxCached {
			a.evictLocked(now)
		}
		a.cache[h] = c
		a.mu.Unlock()
	} else if !now.Before(c.ExpiresAt.Time.Add(leeway)) {
		return Principal{}, errs.E(errs.Unauthenticated, "authentication token has expired", nil)
	}
	st, err := a.store.TokenState(ctx, c.App.TokenID)
	if err != nil {
		if errs.Is(err, errs.NotFound) {
			return Principal{}, errs.E(errs.Unauthenticated, "authentication token is missing or invalid", err)
		}
		return Principal{}, err
	}
	switch {
	case st.OrgID != c.App.OrgID || st.UserID != c.App.UserID:
		return Principal{}, errs.E(errs.Unauthenticated, "authentication token is missing or invalid", errors.New("claims do not match token row"))
	case !st.Active:
		return Principal{}, errs.E(errs.Unauthenticated, "authentication token has been revoked or its owner deactivated", nil)
	case !now.Before(st.ExpiresAt.Add(leeway)):
		return Principal{}, errs.E(errs.Unauthenticated, "authentication token has expired", nil)
	}
	return Principal{
		OrgID:            st.OrgID,
		UserID:           st.UserID,
		Username:         st.Username,
		UserKind:         st.UserKind,
		IsServiceAccount: st.IsServiceAccount,
		TokenKind:        c.App.TokenKind,
		TokenID:          c.App.TokenID,
	}, nil
}

// evictLocked drops expired entries, and everything if that frees too little.
func (a *Authenticator) evictLocked(now time.Time) {
	for k, c := range a.cache {
		if !now.Before(c.ExpiresAt.Time) {
			delete(a.cache, k)
		}
	}
	if len(a.cache) >= maxCached*9/10 {
		clear(a.cache)
	}
}
