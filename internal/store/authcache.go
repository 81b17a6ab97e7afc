package store

import (
	"sync"
	"sync/atomic"

	"github.com/countersign/countersign/internal/auth"
	"github.com/countersign/countersign/internal/identity"
)

// authCache keeps the per-request token and credential checks in memory on SQLite, where
// this process is the only writer (Open takes an exclusive lock on the database file).
// Every write that can change an answer bumps gen after it commits; an entry is good only
// for the generation read before its query, so a read racing a write can never
// resurrect a stale answer. PostgreSQL has no cache: other nodes write there too.
type authCache struct {
	gen    atomic.Uint64
	mu     sync.RWMutex
	tokens map[string]tokenEntry
	creds  map[string]credEntry
}

type tokenEntry struct {
	gen uint64
	st  auth.TokenState
}

type credEntry struct {
	gen   uint64
	creds []identity.Credential
}

const maxAuthCache = 50_000

func newAuthCache() *authCache {
	return &authCache{tokens: map[string]tokenEntry{}, creds: map[string]credEntry{}}
}

// invalidate is called after a commit that changed users, tokens or credentials.
func (c *authCache) invalidate() {
	if c != nil {
		c.gen.Add(1)
	}
}

func (c *authCache) token(id string) (auth.TokenState, uint64, bool) {
	g := c.gen.Load()
	c.mu.RLock()
	e, ok := c.tokens[id]
	c.mu.RUnlock()
	return e.st, g, ok && e.gen == g
}

func (c *authCache) putToken(id string, g uint64, st auth.TokenState) {
	c.mu.Lock()
	if len(c.tokens) >= maxAuthCache {
		clear(c.tokens)
	}
	c.tokens[id] = tokenEntry{gen: g, st: st}
	c.mu.Unlock()
}

func (c *authCache) credentials(key string) ([]identity.Credential, uint64, bool) {
	g := c.gen.Load()
	c.mu.RLock()
	e, ok := c.creds[key]
	c.mu.RUnlock()
	return e.creds, g, ok && e.gen == g
}

func (c *authCache) putCredentials(key string, g uint64, creds []identity.Credential) {
	c.mu.Lock()
	if len(c.creds) >= maxAuthCache {
		clear(c.creds)
	}
	c.creds[key] = credEntry{gen: g, creds: creds}
	c.mu.Unlock()
}
