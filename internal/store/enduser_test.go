package store_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/countersign/countersign/internal/auth"
	"github.com/countersign/countersign/internal/identity"
	"github.com/countersign/countersign/internal/ids"
	"github.com/countersign/countersign/internal/keys"
	"github.com/countersign/countersign/internal/store"
	"github.com/countersign/countersign/internal/testutil"
	"github.com/countersign/countersign/internal/users"
	"github.com/countersign/countersign/internal/wallets"
	"github.com/countersign/countersign/internal/webhooks"
)

// TestEndUserRegistrationAtomic: an end user's registration (challenge consumed, user
// registered, credentials, login session) and their first wallets (keys, wallets, webhook
// events) commit in one transaction. A write that fails at the very end, after all the
// others, leaves the database as it was and the challenge usable, so the registration can
// be retried and then succeeds whole. On both engines.
func TestEndUserRegistrationAtomic(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		db := newDB(t, e)
		ctx := context.Background()
		at := now()
		o := newOrg(t, db, at)
		// The app's emitter in small: one event row per subscribed webhook, in the same tx.
		db.SetEmitter(func(ctx context.Context, tx *store.Tx, orgID, kind string, data any) error {
			hooks, err := db.SubscribedWebhooks(ctx, tx, orgID, kind)
			if err != nil {
				return err
			}
			for _, e := range webhooks.NewEvents(hooks, kind, json.RawMessage(`{}`), at) {
				if err := db.InsertWebhookEvent(ctx, tx, e); err != nil {
					return err
				}
			}
			return nil
		})
		hook := webhooks.Webhook{ID: ids.New("wh"), OrgID: o.ID, URL: "https://example.com/hook", Events: []string{"*"},
			Status: webhooks.Enabled, SealedSecret: []byte{1}, CreatedAt: at, UpdatedAt: at}
		if err := db.CreateWebhook(ctx, hook, 10); err != nil {
			t.Fatal(err)
		}
		u := newUser(o.ID, "end@example.co", false, at)
		u.Kind, u.IsRegistered = identity.EndUser, false
		if err := db.CreateUser(ctx, u, nil); err != nil {
			t.Fatal(err)
		}
		cer := users.Ceremony{ID: ids.New("ce"), OrgID: o.ID, UserID: u.ID, Purpose: users.PurposeRegistration,
			HandleHash: h("enduser-handle"), Challenge: ids.Secret(32), State: "pending", CreatedAt: at, ExpiresAt: at.Add(5 * time.Minute)}
		if err := db.CreateCeremony(ctx, cer); err != nil {
			t.Fatal(err)
		}
		cred := users.Credential{Credential: identity.Credential{UUID: ids.New("cr"), OrgID: o.ID, UserID: u.ID, CredID: "end-cred",
			Kind: identity.CredKey, Name: "k", PublicKey: []byte("pem"), Algorithm: "ES256", Status: identity.Active, CreatedAt: at}, RPID: "localhost"}
		sess := identity.AccessToken{ID: ids.New("to"), OrgID: o.ID, UserID: u.ID, Kind: auth.KindUser, Name: "login session",
			Status: identity.Active, CreatedAt: at, UpdatedAt: at, ExpiresAt: at.Add(time.Hour), Credential: cred.Credential}
		wallet := func(name string) wallets.Wallet {
			k := keys.Key{ID: ids.NewAt("key", at), OrgID: o.ID, Scheme: keys.SchemeECDSA, Curve: keys.CurveSecp256k1, Name: name,
				PublicKey: []byte{2, 1}, Sealed: []byte{1}, Status: keys.Active, CreatedAt: at, UpdatedAt: at,
				DelegatedTo: u.ID, DelegatedAt: at}
			return wallets.Wallet{ID: ids.NewAt("wa", at), OrgID: o.ID, Network: "EthereumSepolia", Name: name,
				Address: "0x" + ids.Secret(10), Key: k, Status: wallets.Active, Tags: []string{}, CreatedAt: at, UpdatedAt: at}
		}
		change := func(ws ...wallets.Wallet) users.Change {
			return users.Change{RegisterUser: u.ID, NewCredentials: []users.Credential{cred}, Session: &sess, NewWallets: ws}
		}

		before := snapshot(t, db)
		for _, tc := range []struct {
			name string
			ws   func() []wallets.Wallet
		}{
			{"second wallet's key exists already", func() []wallets.Wallet {
				a, b := wallet("a"), wallet("b")
				b.Key.ID = a.Key.ID // the last key insert fails
				return []wallets.Wallet{a, b}
			}},
			{"second wallet's id exists already", func() []wallets.Wallet {
				a, b := wallet("a"), wallet("b")
				b.ID = a.ID // the last wallet insert fails, after its key and every event but one
				return []wallets.Wallet{a, b}
			}},
		} {
			if err := db.Complete(ctx, cer.ID, at, change(tc.ws()...)); err == nil {
				t.Fatalf("%s: registration committed", tc.name)
			}
			if snapshot(t, db) != before {
				t.Fatalf("%s: a failed registration left rows behind", tc.name)
			}
			if c, err := db.GetCeremony(ctx, cer.HandleHash); err != nil || c.State != "pending" {
				t.Fatalf("%s: ceremony after the failure: %+v %v", tc.name, c, err)
			}
		}

		// The retry commits everything.
		a, b := wallet("a"), wallet("b")
		if err := db.Complete(ctx, cer.ID, at, change(a, b)); err != nil {
			t.Fatal(err)
		}
		if got, err := db.GetUser(ctx, o.ID, u.ID); err != nil || !got.IsRegistered {
			t.Fatalf("user after registration: %+v %v", got, err)
		}
		if cs, err := db.ListCredentials(ctx, o.ID, u.ID); err != nil || len(cs) != 1 || cs[0].UUID != cred.UUID {
			t.Fatalf("credentials: %+v %v", cs, err)
		}
		if st, err := db.TokenState(ctx, sess.ID); err != nil || !st.Active {
			t.Fatalf("session: %+v %v", st, err)
		}
		ws, err := db.ListWallets(ctx, o.ID, keys.Page{DelegatedTo: u.ID, Limit: 10})
		if err != nil || len(ws) != 2 {
			t.Fatalf("wallets: %+v %v", ws, err)
		}
		for _, w := range ws {
			if (w.ID != a.ID && w.ID != b.ID) || w.Key.DelegatedTo != u.ID {
				t.Fatalf("wallet %+v", w)
			}
		}
		evs, err := db.ListWebhookEvents(ctx, o.ID, hook.ID, webhooks.EventFilter{Limit: 10})
		if err != nil || len(evs) != 4 { // key.created and wallet.created of each wallet
			t.Fatalf("webhook events: %d %v", len(evs), err)
		}
		if c, _ := db.GetCeremony(ctx, cer.HandleHash); c.State != "used" {
			t.Fatalf("ceremony state %q after registration", c.State)
		}
	})
}
