package store

import (
	"sync"
	"sync/atomic"

	"github.com/countersign/countersign/internal/keys"
)

// keyCache keeps key rows in memory on SQLite, where this process is the only writer: a
// signature request then reads no row to find its key. Like authCache, an entry is good
// only for the generation read before its query, and every write to a key bumps the
// generation after it commits, so a read racing a write never keeps a stale row.
// PostgreSQL has no cache: other nodes write there too.
type keyCache struct {
	gen atomic.Uint64
	mu  sync.RWMutex
	m   map[string]keyEntry
}

type keyEntry struct {
	gen uint64
	k   keys.Key
}

const maxKeyCache = 50_000

func newKeyCache() *keyCache { return &keyCache{m: map[string]keyEntry{}} }

func (c *keyCache) get(id string) (keys.Key, uint64, bool) {
	if c == nil {
		return keys.Key{}, 0, false
	}
	g := c.gen.Load()
	c.mu.RLock()
	e, ok := c.m[id]
	c.mu.RUnlock()
	return e.k, g, ok && e.gen == g
}

func (c *keyCache) put(id string, g uint64, k keys.Key) {
	if c == nil {
		return
	}
	c.mu.Lock()
	if len(c.m) >= maxKeyCache {
		clear(c.m)
	}
	c.m[id] = keyEntry{gen: g, k: k}
	c.mu.Unlock()
}

// invalidate is deferred by every write to the keys table.
func (c *keyCache) invalidate() {
	if c != nil {
		c.gen.Add(1)
	}
}
