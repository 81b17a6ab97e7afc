package store

import (
	"sync"
	"sync/atomic"

	"github.com/countersign/countersign/internal/auth"
	"github.com/countersign/countersign/internal/identity"
)

// genCache is an in-memory answer cache for SQLite, where this process is the only writer
// (Open takes an exclusive lock on the database file). Every write that can change an
// answer bumps gen after it commits; an entry is good only for the generation read before
// its query, so a read racing a write can never resurrect a stale answer. PostgreSQL has
// no caches: other nodes write there too.
type genCache[V any] struct {
	gen *atomic.Uint64
	mu  sync.RWMutex
	m   map[string]genEntry[V]
}

type genEntry[V any] struct {
	gen uint64
	v   V
}

const maxGenCache = 50_000

func newGenCache[V any](gen *atomic.Uint64) *genCache[V] {
	return &genCache[V]{gen: gen, m: map[string]genEntry[V]{}}
}

// get returns the cached answer for k, if good, and the generation to store a fresh
// answer under.
func (c *genCache[V]) get(k string) (V, uint64, bool) {
	g := c.gen.Load()
	c.mu.RLock()
	e, ok := c.m[k]
	c.mu.RUnlock()
	return e.v, g, ok && e.gen == g
}

func (c *genCache[V]) put(k string, g uint64, v V) {
	c.mu.Lock()
	if len(c.m) >= maxGenCache {
		clear(c.m)
	}
	c.m[k] = genEntry[V]{gen: g, v: v}
	c.mu.Unlock()
}

// authCache keeps the per-request token and credential checks (see genCache).
type authCache struct {
	gen    atomic.Uint64
	tokens *genCache[auth.TokenState]
	creds  *genCache[[]identity.Credential]
}

func newAuthCache() *authCache {
	c := &authCache{}
	c.tokens, c.creds = newGenCache[auth.TokenState](&c.gen), newGenCache[[]identity.Credential](&c.gen)
	return c
}

// invalidate is called after a commit that changed users, tokens or credentials.
func (c *authCache) invalidate() {
	if c != nil {
		c.gen.Add(1)
	}
}
