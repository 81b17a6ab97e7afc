package store_test

import (
	"context"
	"crypto/sha256"
	"sync"
	"testing"
	"time"

	"github.com/countersign/countersign/internal/auth"
	"github.com/countersign/countersign/internal/errs"
	"github.com/countersign/countersign/internal/identity"
	"github.com/countersign/countersign/internal/ids"
	"github.com/countersign/countersign/internal/testutil"
	"github.com/countersign/countersign/internal/users"
)

func h(s string) []byte { d := sha256.Sum256([]byte(s)); return d[:] }

// TestPeopleStore covers the ceremony, code and counter primitives the people flows rely
// on, on both engines: single use under concurrency, nothing changed on refusal, purge.
func TestPeopleStore(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		db := newDB(t, e)
		ctx := context.Background()
		at := now()
		o := newOrg(t, db, at)
		u := newUser(o.ID, "p@example.co", false, at)
		u.IsRegistered = false
		code := users.Code{Hash: h("ABC-DEF-GHJ"), OrgID: o.ID, UserID: u.ID, Purpose: users.CodeRegistration, CreatedAt: at, ExpiresAt: at.Add(time.Hour)}
		if err := db.CreateUser(ctx, u, &code); err != nil {
			t.Fatal(err)
		}
		wantKind(t, "duplicate username", db.CreateUser(ctx, newUserNamed(o.ID, "p@example.co", at), nil), errs.Conflict)
		if _, err := db.CheckCode(ctx, h("ABC-DEF-GHJ"), u.ID, users.CodeRegistration, at); err != nil {
			t.Fatal(err)
		}
		_, err := db.CheckCode(ctx, h("ABC-DEF-GHJ"), u.ID, users.CodeRegistration, at.Add(2*time.Hour))
		wantKind(t, "expired code", err, errs.NotFound)
		_, err = db.CheckCode(ctx, h("ABC-DEF-GHJ"), "us-other", users.CodeRegistration, at)
		wantKind(t, "code of another user", err, errs.NotFound)

		// A ceremony completes once; the losers change nothing.
		cer := users.Ceremony{ID: ids.New("ce"), OrgID: o.ID, UserID: u.ID, Purpose: users.PurposeRegistration,
			HandleHash: h("handle"), Challenge: ids.Secret(32), State: "pending", CreatedAt: at, ExpiresAt: at.Add(5 * time.Minute)}
		if err := db.CreateCeremony(ctx, cer); err != nil {
			t.Fatal(err)
		}
		got, err := db.GetCeremony(ctx, h("handle"))
		if err != nil || got.ID != cer.ID || got.Challenge != cer.Challenge {
			t.Fatalf("get ceremony: %+v %v", got, err)
		}
		cred := func(credID string) users.Credential {
			return users.Credential{Credential: identity.Credential{UUID: ids.New("cr"), OrgID: o.ID, UserID: u.ID, CredID: credID,
				Kind: identity.CredFido, Name: "pk", PublicKey: []byte{1, 2, 3}, Algorithm: "ES256", Status: identity.Active, CreatedAt: at},
				SignCount: 7, Flags: 0x45, AAGUID: make([]byte, 16), RPID: "localhost", Origin: "http://localhost:1"}
		}
		var wg sync.WaitGroup
		results := make([]error, 8)
		for i := range results {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i] = db.Complete(ctx, cer.ID, at, users.Change{RegisterUser: u.ID, NewCredentials: []users.Credential{cred("c-" + ids.Secret(6))}})
			}()
		}
		wg.Wait()
		wins := 0
		for _, err := range results {
			if err == nil {
				wins++
			} else if !errs.Is(err, errs.Unauthenticated) {
				t.Fatalf("losing completion: %v", err)
			}
		}
		if wins != 1 {
			t.Fatalf("%d completions won, want 1", wins)
		}
		cs, err := db.ListCredentials(ctx, o.ID, u.ID)
		if err != nil || len(cs) != 1 || cs[0].SignCount != 7 || cs[0].Flags != 0x45 || cs[0].RPID != "localhost" {
			t.Fatalf("credentials: %+v %v", cs, err)
		}
		_, err = db.CheckCode(ctx, h("ABC-DEF-GHJ"), u.ID, users.CodeRegistration, at)
		wantKind(t, "registration code after registration", err, errs.NotFound)

		// Counters advance only from the value verified against.
		c := cs[0]
		before := snapshot(t, db)
		wantKind(t, "stale counter", db.AdvanceCounter(ctx, users.CounterUpdate{UUID: c.UUID, Old: 6, New: 9, Flags: c.Flags}, at), errs.Unauthenticated)
		if snapshot(t, db) != before {
			t.Fatal("a refused counter update changed the database")
		}
		if err := db.AdvanceCounter(ctx, users.CounterUpdate{UUID: c.UUID, Old: 7, New: 9, Flags: c.Flags}, at); err != nil {
			t.Fatal(err)
		}
		if g, _ := db.GetCredential(ctx, o.ID, c.UUID); g.SignCount != 9 {
			t.Fatalf("counter %d, want 9", g.SignCount)
		}

		// A code is consumed once under concurrency.
		cc := users.Code{Hash: h("CCC-CCC-CCC"), OrgID: o.ID, UserID: u.ID, Purpose: users.CodeCredential, CreatedAt: at, ExpiresAt: at.Add(time.Minute)}
		if err := db.CreateCode(ctx, cc); err != nil {
			t.Fatal(err)
		}
		for i := range results {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, results[i] = db.ConsumeCode(ctx, cc.Hash, "", users.CodeCredential, at)
			}()
		}
		wg.Wait()
		wins = 0
		for _, err := range results {
			if err == nil {
				wins++
			}
		}
		if wins != 1 {
			t.Fatalf("%d consumptions won, want 1", wins)
		}

		// Sessions end; recovery retires everything; purge drops only the expired.
		sess := identity.AccessToken{ID: ids.New("to"), OrgID: o.ID, UserID: u.ID, Kind: auth.KindUser, Name: "s", Status: identity.Active,
			CreatedAt: at, UpdatedAt: at, ExpiresAt: at.Add(time.Hour), Credential: c.Credential}
		cer2 := users.Ceremony{ID: ids.New("ce"), OrgID: o.ID, UserID: u.ID, Purpose: users.PurposeLogin, HandleHash: h("h2"),
			Challenge: ids.Secret(32), State: "pending", CreatedAt: at, ExpiresAt: at.Add(5 * time.Minute)}
		if err := db.CreateCeremony(ctx, cer2); err != nil {
			t.Fatal(err)
		}
		if err := db.Complete(ctx, cer2.ID, at, users.Change{Session: &sess}); err != nil {
			t.Fatal(err)
		}
		if st, err := db.TokenState(ctx, sess.ID); err != nil || !st.Active {
			t.Fatalf("session state %+v %v", st, err)
		}
		if err := db.EndSessions(ctx, o.ID, u.ID, "", at); err != nil {
			t.Fatal(err)
		}
		if st, _ := db.TokenState(ctx, sess.ID); st.Active {
			t.Fatal("session active after EndSessions")
		}
		n, err := db.PurgeAuthCeremonies(ctx, at.Add(4*time.Minute))
		if err != nil || n != 1 { // the credential code (expired at +1 min)
			t.Fatalf("purged %d, %v; want 1", n, err)
		}
		n, err = db.PurgeAuthCeremonies(ctx, at.Add(2*time.Hour))
		if err != nil || n != 3 { // both ceremonies and the registration code
			t.Fatalf("purged %d, %v; want 3", n, err)
		}
	})
}

func newUserNamed(orgID, name string, at time.Time) identity.User {
	u := newUser(orgID, name, false, at)
	return u
}
