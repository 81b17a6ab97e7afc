package store

import (
	"sync"
	"time"

	"github.com/countersign/countersign/internal/errs"
	"github.com/countersign/countersign/internal/useraction"
)

// challenges keeps issued, not yet signed user action challenges in memory on SQLite,
// where this process is the only node (Open holds an exclusive lock on the database
// file): issuing a challenge then costs no write, and only a signed challenge becomes a
// row. A restart forgets pending challenges; their callers ask for a new one, as after
// expiry. Past maxBytes of payload held (a flood of large challenges), new challenges
// go to the database as on PostgreSQL, so memory stays bounded and nothing is refused.
type challenges struct {
	mu    sync.Mutex
	m     map[string]useraction.Action
	bytes int
	puts  int
	swept time.Time
}

const (
	maxChallengeBytes   = 64 << 20
	maxChallengeEntries = 200_000
	challengeOverhead   = 256 // rough size of an entry without its payload
)

func newChallenges() *challenges { return &challenges{m: map[string]useraction.Action{}} }

// put keeps a, or reports false when memory is full. An id already held is a Conflict,
// as the primary key makes it in the database.
func (c *challenges) put(a useraction.Action, now time.Time) (bool, error) {
	size := len(a.Payload) + len(a.Path) + challengeOverhead
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, dup := c.m[a.ID]; dup {
		return false, errs.E(errs.Conflict, "challenge id already issued", nil)
	}
	full := c.bytes+size > maxChallengeBytes || len(c.m) >= maxChallengeEntries
	// A sweep walks the whole table: at most once a second, so a flood of challenges
	// that are never signed costs a bounded amount of work.
	if c.puts++; (full || c.puts%1024 == 0) && now.Sub(c.swept) >= time.Second {
		c.sweep(now)
		c.swept = now
	}
	if c.bytes+size > maxChallengeBytes || len(c.m) >= maxChallengeEntries {
		return false, nil
	}
	c.m[a.ID] = a
	c.bytes += size
	return true, nil
}

func (c *challenges) sweep(now time.Time) {
	for id, a := range c.m {
		if !now.Before(a.ExpiresAt) {
			c.drop(id, a)
		}
	}
}

func (c *challenges) drop(id string, a useraction.Action) {
	delete(c.m, id)
	c.bytes -= len(a.Payload) + len(a.Path) + challengeOverhead
}

func (c *challenges) get(orgID, id string) (useraction.Action, bool) {
	c.mu.Lock()
	a, ok := c.m[id]
	c.mu.Unlock()
	return a, ok && a.OrgID == orgID
}

// take removes an unexpired challenge so exactly one signer can turn it into a row. An
// expired one stays (refused, nothing changed) until a sweep or purge drops it.
func (c *challenges) take(id string, now time.Time) (a useraction.Action, held, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a, held = c.m[id]
	if !held || !now.Before(a.ExpiresAt) {
		return a, held, false
	}
	c.drop(id, a)
	return a, true, true
}

// purge drops challenges that expired before cutoff and says how many.
func (c *challenges) purge(cutoff time.Time) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.m)
	for id, a := range c.m {
		if a.ExpiresAt.Before(cutoff) {
			c.drop(id, a)
		}
	}
	return int64(n - len(c.m))
}
