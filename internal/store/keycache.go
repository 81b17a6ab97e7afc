package store

import (
	"sync/atomic"

	"github.com/countersign/countersign/internal/keys"
)

// keyCache keeps key rows in memory on SQLite (see genCache): a signature request then
// reads no row to find its key. Every write to a key bumps the generation after it commits.
type keyCache struct {
	gen  atomic.Uint64
	rows *genCache[keys.Key]
}

func newKeyCache() *keyCache {
	c := &keyCache{}
	c.rows = newGenCache[keys.Key](&c.gen)
	return c
}

func (c *keyCache) get(id string) (keys.Key, uint64, bool) {
	if c == nil {
		return keys.Key{}, 0, false
	}
	return c.rows.get(id)
}

func (c *keyCache) put(id string, g uint64, k keys.Key) {
	if c != nil {
		c.rows.put(id, g, k)
	}
}

// invalidate is deferred by every write to the keys table.
func (c *keyCache) invalidate() {
	if c != nil {
		c.gen.Add(1)
	}
}
