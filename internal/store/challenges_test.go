package store

import (
	"testing"
	"time"

	"github.com/countersign/countersign/internal/errs"
	"github.com/countersign/countersign/internal/ids"
	"github.com/countersign/countersign/internal/useraction"
)

// TestChallengesBounded: past its limits the in-memory table says no (the caller then
// writes the challenge to the database) until expired entries can be swept.
func TestChallengesBounded(t *testing.T) {
	c := newChallenges()
	at := time.UnixMilli(1_700_000_000_000).UTC()
	mk := func() useraction.Action {
		return useraction.Action{ID: ids.NewAt("ch", at), OrgID: "or-1", Path: "/wallets", CreatedAt: at, ExpiresAt: at.Add(time.Minute)}
	}
	for range maxChallengeEntries {
		if kept, err := c.put(mk(), at); !kept || err != nil {
			t.Fatalf("put below the limit = %v, %v", kept, err)
		}
	}
	if kept, err := c.put(mk(), at); kept || err != nil {
		t.Fatalf("put at the limit = %v, %v; want false, nil", kept, err)
	}
	a := mk()
	if kept, _ := c.put(a, at.Add(time.Hour)); !kept { // everything held has expired by then
		t.Fatal("put after expiry was refused")
	}
	if len(c.m) != 1 || c.bytes != len(a.Path)+challengeOverhead {
		t.Fatalf("after sweep: %d entries, %d bytes", len(c.m), c.bytes)
	}
	if _, err := c.put(a, at); !errs.Is(err, errs.Conflict) {
		t.Fatalf("put of a held id = %v, want Conflict", err)
	}
	big := mk()
	big.Payload = make([]byte, maxChallengeBytes)
	if kept, err := c.put(big, at); kept || err != nil {
		t.Fatalf("put of a payload over the byte limit = %v, %v", kept, err)
	}
	if _, _, ok := c.take(a.ID, at.Add(time.Hour)); ok {
		t.Fatal("took an expired challenge")
	}
	if got, held, ok := c.take(a.ID, at); !ok || !held || got.ID != a.ID || len(c.m) != 0 || c.bytes != 0 {
		t.Fatalf("take = %v %v; left %d entries %d bytes", held, ok, len(c.m), c.bytes)
	}
	if _, held, _ := c.take(a.ID, at); held {
		t.Fatal("a challenge was taken twice")
	}
}
