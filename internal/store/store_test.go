package store_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/countersign/countersign/internal/audit"
	"github.com/countersign/countersign/internal/auth"
	"github.com/countersign/countersign/internal/errs"
	"github.com/countersign/countersign/internal/identity"
	"github.com/countersign/countersign/internal/ids"
	"github.com/countersign/countersign/internal/keys"
	"github.com/countersign/countersign/internal/secrets"
	"github.com/countersign/countersign/internal/store"
	"github.com/countersign/countersign/internal/testutil"
	"github.com/countersign/countersign/internal/useraction"
)

// noErr marks a table case that must succeed; kind maps nil to it.
const noErr errs.Kind = -1

func kind(err error) errs.Kind {
	if err == nil {
		return noErr
	}
	return errs.KindOf(err)
}

func kindName(k errs.Kind) string {
	if k == noErr {
		return "no error"
	}
	return k.String()
}

func wantKind(t testing.TB, what string, err error, want errs.Kind) {
	t.Helper()
	if got := kind(err); got != want {
		t.Fatalf("%s: got %s (%v), want %s", what, kindName(got), err, kindName(want))
	}
}

// newRing returns a ring with one fresh KEK named id.
func newRing(t testing.TB, id string) *secrets.Ring {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	r, err := secrets.NewRing([]secrets.KEK{{ID: id, Key: key}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// open opens and migrates dsn, and closes it when t ends.
func open(t testing.TB, dsn string, ring *secrets.Ring) *store.DB {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, dsn, ring)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx, nil); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return db
}

// newDB is a fresh, migrated database of engine e.
func newDB(t testing.TB, e testutil.Engine) *store.DB {
	t.Helper()
	return open(t, e.DSN(t), newRing(t, "k1"))
}

func snapshot(t testing.TB, db *store.DB) string {
	t.Helper()
	s, err := db.Snapshot(context.Background())
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	return s
}

// now is the current time at the stored (millisecond) precision, so that values read back
// compare equal to the ones written.
func now() time.Time { return time.UnixMilli(time.Now().UnixMilli()).UTC() }

func newOrg(t testing.TB, db *store.DB, at time.Time) identity.Org {
	t.Helper()
	o := identity.Org{ID: ids.New("or"), Name: "org", CreatedAt: at}
	if err := db.CreateOrg(context.Background(), o); err != nil {
		t.Fatalf("create org: %v", err)
	}
	return o
}

func newUser(orgID, name string, serviceAccount bool, at time.Time) identity.User {
	return identity.User{
		ID: ids.New("us"), OrgID: orgID, Username: name, Name: name, Kind: identity.CustomerEmployee,
		IsServiceAccount: serviceAccount, Status: identity.Active, IsRegistered: true, CreatedAt: at, UpdatedAt: at,
	}
}

func newToken(u identity.User, kind, credID string, at time.Time) identity.AccessToken {
	return identity.AccessToken{
		ID: ids.New("to"), OrgID: u.OrgID, UserID: u.ID, Kind: kind, Name: u.Name, Status: identity.Active,
		CreatedAt: at, UpdatedAt: at, ExpiresAt: at.Add(365 * 24 * time.Hour),
		Credential: identity.Credential{
			UUID: ids.New("cr"), OrgID: u.OrgID, UserID: u.ID, CredID: credID, Kind: identity.CredKey, Name: u.Name,
			PublicKey: []byte("-----BEGIN PUBLIC KEY-----\n" + credID + "\n-----END PUBLIC KEY-----\n"),
			Algorithm: "Ed25519", Status: identity.Active, CreatedAt: at,
		},
	}
}

// newServiceAccount is a service account with one token whose credential is credID.
func newServiceAccount(orgID, name, credID string, at time.Time) identity.ServiceAccount {
	u := newUser(orgID, name, true, at)
	return identity.ServiceAccount{User: u, Tokens: []identity.AccessToken{newToken(u, auth.KindServiceAccount, credID, at)}}
}

// fixture is an organization with one service account holding one token.
type fixture struct {
	org identity.Org
	sa  identity.ServiceAccount
	tok identity.AccessToken
}

func (f fixture) principal() auth.Principal {
	return auth.Principal{
		OrgID: f.org.ID, UserID: f.sa.User.ID, Username: f.sa.User.Username, UserKind: f.sa.User.Kind,
		IsServiceAccount: true, TokenKind: auth.KindServiceAccount, TokenID: f.tok.ID,
	}
}

func seed(t testing.TB, db *store.DB) fixture {
	t.Helper()
	at := now()
	o := newOrg(t, db, at)
	sa := newServiceAccount(o.ID, "sa-"+ids.Secret(4), "cred-"+ids.Secret(8), at)
	if err := db.CreateServiceAccount(context.Background(), sa); err != nil {
		t.Fatalf("create service account: %v", err)
	}
	return fixture{org: o, sa: sa, tok: sa.Tokens[0]}
}

func newAction(f fixture, method, path string, payload []byte, at time.Time) useraction.Action {
	return useraction.Action{
		ID: ids.NewAt("ch", at), OrgID: f.org.ID, UserID: f.sa.User.ID, TokenID: f.tok.ID, Challenge: ids.Secret(32),
		Method: method, Path: path, Payload: payload, ServerKind: "Api", State: useraction.Pending,
		CreatedAt: at, ExpiresAt: at.Add(5 * time.Minute),
	}
}

func signedFor(f fixture, a useraction.Action, at time.Time) (useraction.SignedAction, string) {
	token := ids.Secret(32)
	h := sha256.Sum256([]byte(token))
	return useraction.SignedAction{
		ID: a.ID, TokenHash: h[:], CredentialUUID: f.tok.Credential.UUID, ClientData: []byte(`{"type":"key.get"}`),
		Signature: []byte("sig-" + a.ID), SignedAt: at, TokenExpiresAt: at.Add(5 * time.Minute),
	}, token
}

// matchFor is the Match that useraction.Service.Consume builds for a request to a's method
// with rawPath (the request-target as received) and payload, presenting the token of s.
func matchFor(a useraction.Action, s useraction.SignedAction, rawPath string, payload []byte, at time.Time) useraction.Match {
	path, _, _ := strings.Cut(rawPath, "?")
	bh := sha256.Sum256(payload)
	return useraction.Match{
		TokenHash: s.TokenHash, OrgID: a.OrgID, UserID: a.UserID, TokenID: a.TokenID, Method: a.Method,
		Paths: [2]string{rawPath, path}, Payload: payload, Now: at, AuditID: ids.New("al"),
		BodyHash: base64.RawURLEncoding.EncodeToString(bh[:]),
	}
}

// signedAction creates and signs an action and returns it with the Match of its exact request.
func signedAction(t testing.TB, db *store.DB, f fixture, method, path string, payload []byte) (useraction.Action, useraction.SignedAction, useraction.Match) {
	t.Helper()
	ctx := context.Background()
	at := now()
	a := newAction(f, method, path, payload, at)
	if err := db.CreateUserAction(ctx, a); err != nil {
		t.Fatalf("create user action: %v", err)
	}
	s, _ := signedFor(f, a, at)
	if err := db.MarkSigned(ctx, s, at); err != nil {
		t.Fatalf("mark signed: %v", err)
	}
	return a, s, matchFor(a, s, path, payload, at.Add(time.Second))
}

func TestMigrate(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		ctx := t.Context()
		db := newDB(t, e)
		v1, err := db.Version(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if v1 < 1 {
			t.Fatalf("version %d after Migrate, want >= 1", v1)
		}
		before := snapshot(t, db)
		if err := db.Migrate(ctx, nil); err != nil {
			t.Fatalf("second migrate: %v", err)
		}
		v2, err := db.Version(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if v2 != v1 {
			t.Fatalf("version %d after a second Migrate, want %d", v2, v1)
		}
		if after := snapshot(t, db); after != before {
			t.Fatal("a second Migrate changed the data")
		}
		if err := db.Ping(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

func TestBootstrap(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		ctx := t.Context()
		db := newDB(t, e)
		_, err := db.BootstrapOrg(ctx)
		wantKind(t, "BootstrapOrg before bootstrap", err, errs.NotFound)

		at := now()
		o := identity.Org{ID: ids.New("or"), Name: "first", CreatedAt: at}
		sa := newServiceAccount(o.ID, "admin", "cred-admin", at)
		created, err := db.Bootstrap(ctx, o, sa)
		if err != nil || !created {
			t.Fatalf("first Bootstrap = %v, %v; want true, nil", created, err)
		}
		got, err := db.BootstrapOrg(ctx)
		if err != nil || got != o.ID {
			t.Fatalf("BootstrapOrg = %q, %v; want %q", got, err, o.ID)
		}
		gotSA, err := db.GetServiceAccount(ctx, o.ID, sa.User.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(gotSA, sa) {
			t.Fatalf("bootstrap service account:\n got %+v\nwant %+v", gotSA, sa)
		}

		before := snapshot(t, db)
		o2 := identity.Org{ID: ids.New("or"), Name: "second", CreatedAt: at}
		created, err = db.Bootstrap(ctx, o2, newServiceAccount(o2.ID, "admin", "cred-admin-2", at))
		if err != nil || created {
			t.Fatalf("second Bootstrap = %v, %v; want false, nil", created, err)
		}
		if snapshot(t, db) != before {
			t.Fatal("second Bootstrap changed the database")
		}
		if got, _ := db.BootstrapOrg(ctx); got != o.ID {
			t.Fatalf("BootstrapOrg after second Bootstrap = %q, want %q", got, o.ID)
		}
	})
}

func TestServiceAccounts(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		ctx := t.Context()
		db := newDB(t, e)
		at := now()
		o := newOrg(t, db, at)

		sa := newServiceAccount(o.ID, "builder", "cred-sa", at)
		sa.User.ExternalID = "ext-sa"
		sa.Tokens[0].ExternalID = "ext-tok"
		bare := identity.ServiceAccount{User: newUser(o.ID, "bare", true, at.Add(time.Millisecond))}
		person := identity.ServiceAccount{User: newUser(o.ID, "alice", false, at)}
		for _, x := range []identity.ServiceAccount{sa, bare, person} {
			if err := db.CreateServiceAccount(ctx, x); err != nil {
				t.Fatalf("create %s: %v", x.User.Name, err)
			}
		}

		get := func(id string) identity.ServiceAccount {
			t.Helper()
			got, err := db.GetServiceAccount(ctx, o.ID, id)
			if err != nil {
				t.Fatalf("get %s: %v", id, err)
			}
			return got
		}
		if got := get(sa.User.ID); !reflect.DeepEqual(got, sa) {
			t.Fatalf("GetServiceAccount with a token:\n got %+v\nwant %+v", got, sa)
		}
		if got := get(bare.User.ID); !reflect.DeepEqual(got, bare) || got.Tokens != nil {
			t.Fatalf("GetServiceAccount without tokens (LEFT JOIN):\n got %+v\nwant %+v", got, bare)
		}
		_, err := db.GetServiceAccount(ctx, o.ID, person.User.ID)
		wantKind(t, "GetServiceAccount of a person", err, errs.NotFound)

		list, err := db.ListServiceAccounts(ctx, o.ID)
		if err != nil {
			t.Fatal(err)
		}
		if want := []identity.ServiceAccount{sa, bare}; !reflect.DeepEqual(list, want) {
			t.Fatalf("ListServiceAccounts:\n got %+v\nwant %+v", list, want)
		}

		// A second token of another kind (a PAT) is not part of the service account.
		pat := newToken(sa.User, auth.KindPat, "cred-sa-pat", at.Add(time.Millisecond))
		if err := db.CreateAccessToken(ctx, pat); err != nil {
			t.Fatal(err)
		}
		if got := get(sa.User.ID); len(got.Tokens) != 1 || got.Tokens[0].ID != sa.Tokens[0].ID {
			t.Fatalf("GetServiceAccount tokens = %+v, want only the service-account token", got.Tokens)
		}

		// UpdateUser: a service account's username follows its name, and so do its tokens' names.
		later := at.Add(time.Minute)
		name, ext := "renamed", "ext-sa-2"
		if err := db.UpdateUser(ctx, o.ID, sa.User.ID, &name, &ext, later); err != nil {
			t.Fatal(err)
		}
		got := get(sa.User.ID)
		if got.User.Name != name || got.User.Username != name || got.User.ExternalID != ext || !got.User.UpdatedAt.Equal(later) {
			t.Fatalf("after UpdateUser: %+v", got.User)
		}
		if got.Tokens[0].Name != name || !got.Tokens[0].UpdatedAt.Equal(later) {
			t.Fatalf("token after UpdateUser: %+v", got.Tokens[0])
		}
		if p, _ := db.GetAccessToken(ctx, o.ID, pat.ID); p.Name != pat.Name {
			t.Fatalf("UpdateUser renamed the PAT too: %q", p.Name)
		}
		st, err := db.TokenState(ctx, sa.Tokens[0].ID)
		if err != nil || st.Username != name {
			t.Fatalf("TokenState after rename = %+v, %v; want username %q", st, err, name)
		}
		empty := ""
		if err := db.UpdateUser(ctx, o.ID, sa.User.ID, nil, &empty, later); err != nil {
			t.Fatal(err)
		}
		if got := get(sa.User.ID); got.User.ExternalID != "" || got.User.Name != name {
			t.Fatalf("after clearing externalId: %+v", got.User)
		}
		// A cleared externalId is NULL, so another service account may take the old one.
		other := newServiceAccount(o.ID, "other", "cred-other", at)
		other.User.ExternalID = ext
		if err := db.CreateServiceAccount(ctx, other); err != nil {
			t.Fatalf("reuse of a cleared externalId: %v", err)
		}

		// Status: the user and its service-account tokens move together.
		for _, status := range []string{identity.Inactive, identity.Active, identity.Archived} {
			if err := db.SetServiceAccountStatus(ctx, o.ID, sa.User.ID, status, later); err != nil {
				t.Fatal(err)
			}
			got := get(sa.User.ID)
			if got.User.Status != status || got.Tokens[0].Status != status {
				t.Fatalf("after SetServiceAccountStatus(%s): user %s, token %s", status, got.User.Status, got.Tokens[0].Status)
			}
			st, err := db.TokenState(ctx, sa.Tokens[0].ID)
			if err != nil || st.Active != (status == identity.Active) {
				t.Fatalf("TokenState after %s = %+v, %v", status, st, err)
			}
		}
		if p, _ := db.GetAccessToken(ctx, o.ID, pat.ID); p.Status != identity.Active {
			t.Fatalf("SetServiceAccountStatus changed the PAT's status to %s", p.Status)
		}
		list, err = db.ListServiceAccounts(ctx, o.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range list {
			if x.User.ID == sa.User.ID {
				t.Fatal("ListServiceAccounts lists an archived service account")
			}
		}
		if len(list) != 2 {
			t.Fatalf("ListServiceAccounts = %d accounts, want 2 (bare, other)", len(list))
		}
		err = db.SetServiceAccountStatus(ctx, o.ID, person.User.ID, identity.Inactive, later)
		wantKind(t, "SetServiceAccountStatus of a person", err, errs.NotFound)
	})
}

func TestAccessTokens(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		ctx := t.Context()
		db := newDB(t, e)
		at := now()
		o := newOrg(t, db, at)
		person := newUser(o.ID, "alice", false, at)
		if err := db.CreateServiceAccount(ctx, identity.ServiceAccount{User: person}); err != nil {
			t.Fatal(err)
		}
		pats := []identity.AccessToken{
			newToken(person, auth.KindPat, "cred-pat-1", at),
			newToken(person, auth.KindPat, "cred-pat-2", at.Add(time.Millisecond)),
		}
		pats[1].ExternalID = "ext-pat"
		for _, p := range pats {
			if err := db.CreateAccessToken(ctx, p); err != nil {
				t.Fatal(err)
			}
		}
		list, err := db.ListAccessTokens(ctx, o.ID, person.ID, auth.KindPat)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(list, pats) {
			t.Fatalf("ListAccessTokens:\n got %+v\nwant %+v", list, pats)
		}
		if list, err := db.ListAccessTokens(ctx, o.ID, person.ID, auth.KindServiceAccount); err != nil || list == nil || len(list) != 0 {
			t.Fatalf("ListAccessTokens of another kind = %#v, %v; want an empty, non-nil list", list, err)
		}
		got, err := db.GetAccessToken(ctx, o.ID, pats[1].ID)
		if err != nil || !reflect.DeepEqual(got, pats[1]) {
			t.Fatalf("GetAccessToken = %+v, %v; want %+v", got, err, pats[1])
		}
		cred, err := db.TokenCredential(ctx, o.ID, pats[0].ID)
		if err != nil || !reflect.DeepEqual(cred, pats[0].Credential) {
			t.Fatalf("TokenCredential = %+v, %v; want %+v", cred, err, pats[0].Credential)
		}

		later := at.Add(time.Minute)
		name, ext := "laptop", "ext-pat-new"
		if err := db.UpdateAccessToken(ctx, o.ID, pats[0].ID, &name, &ext, later); err != nil {
			t.Fatal(err)
		}
		got, _ = db.GetAccessToken(ctx, o.ID, pats[0].ID)
		if got.Name != name || got.ExternalID != ext || !got.UpdatedAt.Equal(later) {
			t.Fatalf("after UpdateAccessToken: %+v", got)
		}
		empty := ""
		if err := db.UpdateAccessToken(ctx, o.ID, pats[0].ID, nil, &empty, later); err != nil {
			t.Fatal(err)
		}
		if got, _ = db.GetAccessToken(ctx, o.ID, pats[0].ID); got.ExternalID != "" || got.Name != name {
			t.Fatalf("after clearing externalId: %+v", got)
		}

		st, err := db.TokenState(ctx, pats[0].ID)
		want := auth.TokenState{OrgID: o.ID, UserID: person.ID, Username: person.Username, UserKind: person.Kind,
			Active: true, ExpiresAt: pats[0].ExpiresAt}
		if err != nil || st != want {
			t.Fatalf("TokenState = %+v, %v; want %+v", st, err, want)
		}
		_, err = db.TokenState(ctx, ids.New("to"))
		wantKind(t, "TokenState of an unknown token", err, errs.NotFound)

		p := auth.Principal{OrgID: o.ID, UserID: person.ID, TokenID: pats[0].ID, TokenKind: auth.KindPat}
		cs, err := db.UsableCredentials(ctx, p)
		if err != nil || !reflect.DeepEqual(cs, []identity.Credential{pats[0].Credential}) {
			t.Fatalf("UsableCredentials = %+v, %v; want the token's own credential", cs, err)
		}

		if err := db.SetAccessTokenStatus(ctx, o.ID, pats[0].ID, identity.Inactive, later); err != nil {
			t.Fatal(err)
		}
		if got, _ = db.GetAccessToken(ctx, o.ID, pats[0].ID); got.Status != identity.Inactive {
			t.Fatalf("status after SetAccessTokenStatus = %s", got.Status)
		}
		if err := db.SetAccessTokenStatus(ctx, o.ID, pats[0].ID, identity.Archived, later); err != nil {
			t.Fatal(err)
		}
		list, _ = db.ListAccessTokens(ctx, o.ID, person.ID, auth.KindPat)
		if len(list) != 1 || list[0].ID != pats[1].ID {
			t.Fatalf("ListAccessTokens after archiving = %+v, want only %s", list, pats[1].ID)
		}
		if _, err := db.GetAccessToken(ctx, o.ID, pats[0].ID); err != nil {
			t.Fatalf("GetAccessToken of an archived token: %v", err)
		}

		if err := db.SetCredentialStatus(ctx, o.ID, pats[1].Credential.UUID, identity.Inactive, later); err != nil {
			t.Fatal(err)
		}
		got, _ = db.GetAccessToken(ctx, o.ID, pats[1].ID)
		if got.Credential.Status != identity.Inactive || got.Status != identity.Active {
			t.Fatalf("after SetCredentialStatus: token %s, credential %s", got.Status, got.Credential.Status)
		}
		err = db.SetAccessTokenStatus(ctx, o.ID, ids.New("to"), identity.Inactive, later)
		wantKind(t, "SetAccessTokenStatus of an unknown token", err, errs.NotFound)
		err = db.SetCredentialStatus(ctx, o.ID, ids.New("cr"), identity.Inactive, later)
		wantKind(t, "SetCredentialStatus of an unknown credential", err, errs.NotFound)
	})
}

// TestUniqueness checks that every uniqueness rule is a constraint that comes back as
// Conflict, and that a refused insert leaves nothing behind.
func TestUniqueness(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		ctx := t.Context()
		db := newDB(t, e)
		at := now()
		f := seed(t, db)
		other := newOrg(t, db, at)
		person := newUser(f.org.ID, "alice", false, at)
		person.ExternalID = "ext-alice"
		if err := db.CreateServiceAccount(ctx, identity.ServiceAccount{User: person}); err != nil {
			t.Fatal(err)
		}
		pat := newToken(person, auth.KindPat, "cred-pat", at)
		pat.ExternalID = "ext-pat"
		if err := db.CreateAccessToken(ctx, pat); err != nil {
			t.Fatal(err)
		}
		credID := f.tok.Credential.CredID

		cases := []struct {
			name string
			run  func() error
			want errs.Kind
		}{
			{"conflict/org-id", func() error { return db.CreateOrg(ctx, identity.Org{ID: f.org.ID, Name: "x", CreatedAt: at}) }, errs.Conflict},
			{"conflict/credential-id-service-account", func() error {
				return db.CreateServiceAccount(ctx, newServiceAccount(f.org.ID, "dup", credID, at))
			}, errs.Conflict},
			{"conflict/credential-id-pat", func() error {
				return db.CreateAccessToken(ctx, newToken(person, auth.KindPat, credID, at))
			}, errs.Conflict},
			{"conflict/credential-uuid", func() error {
				tok := newToken(person, auth.KindPat, "cred-fresh", at)
				tok.Credential.UUID = f.tok.Credential.UUID
				return db.CreateAccessToken(ctx, tok)
			}, errs.Conflict},
			{"conflict/user-id", func() error {
				sa := newServiceAccount(f.org.ID, "dup", "cred-fresh", at)
				sa.User.ID = f.sa.User.ID
				sa.Tokens[0].UserID, sa.Tokens[0].Credential.UserID = f.sa.User.ID, f.sa.User.ID
				return db.CreateServiceAccount(ctx, sa)
			}, errs.Conflict},
			{"conflict/token-id", func() error {
				tok := newToken(person, auth.KindPat, "cred-fresh", at)
				tok.ID = f.tok.ID
				return db.CreateAccessToken(ctx, tok)
			}, errs.Conflict},
			{"conflict/user-external-id", func() error {
				sa := newServiceAccount(f.org.ID, "dup", "cred-fresh", at)
				sa.User.ExternalID = person.ExternalID
				return db.CreateServiceAccount(ctx, sa)
			}, errs.Conflict},
			{"conflict/token-external-id", func() error {
				tok := newToken(person, auth.KindPat, "cred-fresh", at)
				tok.ExternalID = pat.ExternalID
				return db.CreateAccessToken(ctx, tok)
			}, errs.Conflict},
			{"conflict/person-username", func() error {
				return db.CreateServiceAccount(ctx, identity.ServiceAccount{User: newUser(f.org.ID, person.Username, false, at)})
			}, errs.Conflict},
			// The token's insert fails after its user's: the user must not stay.
			{"conflict/second-token-of-new-account", func() error {
				sa := newServiceAccount(f.org.ID, "two", "cred-two", at)
				sa.Tokens = append(sa.Tokens, newToken(sa.User, auth.KindServiceAccount, credID, at))
				return db.CreateServiceAccount(ctx, sa)
			}, errs.Conflict},
			{"ok/same-credential-id-other-org", func() error {
				return db.CreateServiceAccount(ctx, newServiceAccount(other.ID, "sa", credID, at))
			}, noErr},
			{"ok/same-external-id-other-org", func() error {
				u := newUser(other.ID, "bob", false, at)
				u.ExternalID = person.ExternalID
				return db.CreateServiceAccount(ctx, identity.ServiceAccount{User: u})
			}, noErr},
			{"ok/same-token-external-id-other-kind", func() error {
				sa := newServiceAccount(f.org.ID, "sa-ext", "cred-sa-ext", at)
				sa.Tokens[0].ExternalID = pat.ExternalID
				return db.CreateServiceAccount(ctx, sa)
			}, noErr},
			{"ok/service-accounts-share-names", func() error {
				return db.CreateServiceAccount(ctx, newServiceAccount(f.org.ID, f.sa.User.Username, "cred-same-name", at))
			}, noErr},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				before := snapshot(t, db)
				wantKind(t, c.name, c.run(), c.want)
				if c.want != noErr && snapshot(t, db) != before {
					t.Fatal("a refused insert changed the database")
				}
			})
		}
	})
}

// TestOtherOrganization checks that ids of one organization are invisible to another.
func TestOtherOrganization(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		ctx := t.Context()
		db := newDB(t, e)
		f := seed(t, db)
		g := seed(t, db) // the caller's organization
		at := now()
		_, _, m := signedAction(t, db, f, "POST", "/wallets", []byte(`{}`))
		if _, err := db.Consume(ctx, m); err != nil {
			t.Fatal(err)
		}
		a, _, _ := signedAction(t, db, f, "POST", "/wallets", []byte(`{}`))
		name := "stolen"
		cases := []struct {
			name string
			run  func() error
			want errs.Kind
		}{
			{"GetServiceAccount", func() error { _, err := db.GetServiceAccount(ctx, g.org.ID, f.sa.User.ID); return err }, errs.NotFound},
			{"GetAccessToken", func() error { _, err := db.GetAccessToken(ctx, g.org.ID, f.tok.ID); return err }, errs.NotFound},
			{"TokenCredential", func() error { _, err := db.TokenCredential(ctx, g.org.ID, f.tok.ID); return err }, errs.NotFound},
			{"GetUserAction", func() error { _, err := db.GetUserAction(ctx, g.org.ID, a.ID); return err }, errs.NotFound},
			{"GetAudit", func() error { _, err := db.GetAudit(ctx, g.org.ID, m.AuditID); return err }, errs.NotFound},
			{"ListAudit/after", func() error {
				_, err := db.ListAudit(ctx, g.org.ID, audit.Filter{After: m.AuditID, Limit: 10})
				return err
			}, errs.NotFound},
			{"UpdateUser", func() error { return db.UpdateUser(ctx, g.org.ID, f.sa.User.ID, &name, &name, at) }, errs.NotFound},
			{"UpdateAccessToken", func() error { return db.UpdateAccessToken(ctx, g.org.ID, f.tok.ID, &name, &name, at) }, errs.NotFound},
			{"SetServiceAccountStatus", func() error {
				return db.SetServiceAccountStatus(ctx, g.org.ID, f.sa.User.ID, identity.Inactive, at)
			}, errs.NotFound},
			{"SetAccessTokenStatus", func() error {
				return db.SetAccessTokenStatus(ctx, g.org.ID, f.tok.ID, identity.Inactive, at)
			}, errs.NotFound},
			{"SetCredentialStatus", func() error {
				return db.SetCredentialStatus(ctx, g.org.ID, f.tok.Credential.UUID, identity.Inactive, at)
			}, errs.NotFound},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				before := snapshot(t, db)
				wantKind(t, c.name, c.run(), c.want)
				if snapshot(t, db) != before {
					t.Fatal("a request naming another organization's id changed the database")
				}
			})
		}
		t.Run("lists", func(t *testing.T) {
			if l, err := db.ListServiceAccounts(ctx, g.org.ID); err != nil || len(l) != 1 || l[0].User.ID != g.sa.User.ID {
				t.Fatalf("ListServiceAccounts = %+v, %v; want only the caller's own", l, err)
			}
			if l, err := db.ListAccessTokens(ctx, g.org.ID, f.sa.User.ID, auth.KindServiceAccount); err != nil || len(l) != 0 {
				t.Fatalf("ListAccessTokens = %+v, %v; want none", l, err)
			}
			if l, err := db.ListAudit(ctx, g.org.ID, audit.Filter{Limit: 10}); err != nil || len(l) != 0 {
				t.Fatalf("ListAudit = %+v, %v; want none", l, err)
			}
		})
		t.Run("UsableCredentials", func(t *testing.T) {
			// Warm the SQLite auth cache with the rightful answer first.
			if cs, err := db.UsableCredentials(ctx, f.principal()); err != nil || len(cs) != 1 {
				t.Fatalf("UsableCredentials = %v, %v", cs, err)
			}
			p := f.principal()
			p.OrgID = g.org.ID
			if cs, err := db.UsableCredentials(ctx, p); err != nil || len(cs) != 0 {
				t.Fatalf("UsableCredentials with another organization = %+v, %v; want none", cs, err)
			}
		})
	})
}

func TestSigningKeys(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		ctx := t.Context()
		dsn := e.DSN(t)
		ring := newRing(t, "k1")
		db, err := store.Open(ctx, dsn, ring)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { db.Close() }()
		if err := db.Migrate(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if keys, err := db.SigningKeys(ctx, "jwt"); err != nil || len(keys) != 0 {
			t.Fatalf("SigningKeys of an empty database = %v, %v", keys, err)
		}
		pub, priv, _ := ed25519.GenerateKey(rand.Reader)
		k := auth.SigningKey{ID: "jwt-1", PublicKey: pub, PrivateKey: priv, CreatedAt: now()}
		if err := db.CreateSigningKey(ctx, "jwt", k); err != nil {
			t.Fatal(err)
		}
		// ON CONFLICT keeps the first key: a second node starting at once does not replace it.
		pub2, priv2, _ := ed25519.GenerateKey(rand.Reader)
		if err := db.CreateSigningKey(ctx, "jwt", auth.SigningKey{ID: "jwt-1", PublicKey: pub2, PrivateKey: priv2, CreatedAt: now()}); err != nil {
			t.Fatalf("CreateSigningKey with an existing id: %v", err)
		}
		keys, err := db.SigningKeys(ctx, "jwt")
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) != 1 || !keys[0].PublicKey.Equal(pub) || !keys[0].PrivateKey.Equal(priv) || !keys[0].CreatedAt.Equal(k.CreatedAt) {
			t.Fatalf("SigningKeys = %+v, want the first key only", keys)
		}
		if keys, err := db.SigningKeys(ctx, "other"); err != nil || len(keys) != 0 {
			t.Fatalf("SigningKeys of another purpose = %v, %v", keys, err)
		}

		// Sealed at rest: the stored column holds neither the seed nor the private key.
		var sealed []byte
		err = db.Tx(ctx, func(tx *store.Tx) error {
			return tx.QueryRowContext(ctx, `SELECT sealed_private FROM server_keys WHERE id = $1`, k.ID).Scan(&sealed)
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(sealed) == 0 || bytes.Contains(sealed, priv.Seed()) || bytes.Contains(sealed, priv) {
			t.Fatalf("sealed_private holds the key in clear (%d bytes)", len(sealed))
		}
		if got, err := ring.Open(sealed, []byte("server_keys/"+k.ID)); err != nil || !bytes.Equal(got, priv.Seed()) {
			t.Fatalf("sealed_private does not open to the seed: %v", err)
		}

		// Another master key cannot read it.
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		db, err = store.Open(ctx, dsn, newRing(t, "k2"))
		if err != nil {
			t.Fatal(err)
		}
		if keys, err := db.SigningKeys(ctx, "jwt"); err == nil {
			t.Fatalf("SigningKeys under another KEK = %d keys, want an error", len(keys))
		}
	})
}

// TestSQLiteExclusiveLock: one process per SQLite file (the auth cache relies on it); any
// number of handles on one PostgreSQL database (that is how several nodes run).
func TestSQLiteExclusiveLock(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		ctx := t.Context()
		dsn := e.DSN(t)
		ring := newRing(t, "k1")
		first, err := store.Open(ctx, dsn, ring)
		if err != nil {
			t.Fatal(err)
		}
		second, err := store.Open(ctx, dsn, ring)
		if e.Name == "postgres" {
			if err != nil {
				t.Fatalf("second handle on PostgreSQL: %v", err)
			}
			second.Close()
			first.Close()
			return
		}
		if err == nil {
			second.Close()
			first.Close()
			t.Fatal("a second Open of an open SQLite file succeeded")
		}
		if err := first.Close(); err != nil {
			t.Fatal(err)
		}
		again, err := store.Open(ctx, dsn, ring)
		if err != nil {
			t.Fatalf("Open after Close: %v", err)
		}
		again.Close()
	})
}

func TestUserActionLifecycle(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		ctx := t.Context()
		db := newDB(t, e)
		f := seed(t, db)
		at := now()
		payload := []byte(`{"network":"Ethereum","name":"w"}`)
		a := newAction(f, "POST", "/wallets", payload, at)
		if err := db.CreateUserAction(ctx, a); err != nil {
			t.Fatal(err)
		}
		got, err := db.GetUserAction(ctx, f.org.ID, a.ID)
		if err != nil || !sameRequest(got, a) || got.State != useraction.Pending {
			t.Fatalf("GetUserAction = %+v, %v; want %+v", got, err, a)
		}
		err = db.CreateUserAction(ctx, a)
		wantKind(t, "CreateUserAction with an existing id", err, errs.Conflict)

		s, _ := signedFor(f, a, at.Add(time.Second))
		if err := db.MarkSigned(ctx, s, at.Add(time.Second)); err != nil {
			t.Fatalf("MarkSigned: %v", err)
		}
		s2, _ := signedFor(f, a, at.Add(2*time.Second))
		before := snapshot(t, db)
		wantKind(t, "second MarkSigned", db.MarkSigned(ctx, s2, at.Add(2*time.Second)), errs.Conflict)
		if snapshot(t, db) != before {
			t.Fatal("a refused MarkSigned changed the database")
		}
		got, _ = db.GetUserAction(ctx, f.org.ID, a.ID)
		if got.State != useraction.Signed || !bytes.Equal(got.Signature, s.Signature) || got.CredentialUUID != s.CredentialUUID ||
			!got.TokenExpiresAt.Equal(s.TokenExpiresAt) || !bytes.Equal(got.ClientData, s.ClientData) {
			t.Fatalf("action after MarkSigned: %+v", got)
		}
		byToken, err := db.GetUserActionByToken(ctx, s.TokenHash)
		if err != nil || byToken.ID != a.ID {
			t.Fatalf("GetUserActionByToken = %+v, %v", byToken, err)
		}

		m := matchFor(a, s, a.Path, payload, at.Add(3*time.Second))
		used, err := db.Consume(ctx, m)
		if err != nil {
			t.Fatalf("Consume: %v", err)
		}
		want := got
		want.State = useraction.Used
		if !reflect.DeepEqual(used, want) {
			t.Fatalf("Consume returned\n %+v\nwant %+v", used, want)
		}
		if got, _ := db.GetUserAction(ctx, f.org.ID, a.ID); got.State != useraction.Used {
			t.Fatalf("state after Consume = %s", got.State)
		}

		entry := audit.Entry{
			ID: m.AuditID, OrgID: f.org.ID, UserID: f.sa.User.ID, Username: f.sa.User.Username, TokenID: f.tok.ID,
			CredentialUUID: f.tok.Credential.UUID, CredentialID: f.tok.Credential.CredID, CredentialKind: f.tok.Credential.Kind, UserActionID: a.ID,
			Method: a.Method, Path: a.Path, BodyHash: m.BodyHash, ClientData: s.ClientData, Signature: s.Signature,
			Status: 0, CreatedAt: m.Now,
		}
		list, err := db.ListAudit(ctx, f.org.ID, audit.Filter{Limit: 10})
		if err != nil || len(list) != 1 || !reflect.DeepEqual(list[0], entry) {
			t.Fatalf("ListAudit = %+v, %v; want [%+v]", list, err, entry)
		}
		if e, err := db.GetAudit(ctx, f.org.ID, m.AuditID); err != nil || !reflect.DeepEqual(e, entry) {
			t.Fatalf("GetAudit = %+v, %v; want %+v", e, err, entry)
		}

		before = snapshot(t, db)
		m2 := m
		m2.AuditID, m2.Now = ids.New("al"), m.Now.Add(time.Second)
		_, err = db.Consume(ctx, m2)
		wantKind(t, "second Consume", err, errs.NotFound)
		if snapshot(t, db) != before {
			t.Fatal("a refused Consume changed the database")
		}

		finished := m.Now.Add(time.Second)
		if err := db.FinishAudit(ctx, m.AuditID, 200, finished); err != nil {
			t.Fatal(err)
		}
		// FinishAudit is synchronous: once it returns, readers see the final status.
		entry.Status, entry.FinishedAt = 200, finished
		if e, err := db.GetAudit(ctx, f.org.ID, m.AuditID); err != nil || !reflect.DeepEqual(e, entry) {
			t.Fatalf("GetAudit after FinishAudit = %+v, %v; want %+v", e, err, entry)
		}
	})
}

// sameRequest compares what an action was issued for.
func sameRequest(a, b useraction.Action) bool {
	return a.ID == b.ID && a.OrgID == b.OrgID && a.UserID == b.UserID && a.TokenID == b.TokenID &&
		a.Challenge == b.Challenge && a.Method == b.Method && a.Path == b.Path && bytes.Equal(a.Payload, b.Payload) &&
		a.ServerKind == b.ServerKind && a.CreatedAt.Equal(b.CreatedAt) && a.ExpiresAt.Equal(b.ExpiresAt)
}

func TestMarkSignedRefusals(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		ctx := t.Context()
		db := newDB(t, e)
		f := seed(t, db)
		at := now()
		a := newAction(f, "POST", "/wallets", nil, at)
		if err := db.CreateUserAction(ctx, a); err != nil {
			t.Fatal(err)
		}
		unknown := newAction(f, "POST", "/wallets", nil, at) // never stored
		cases := []struct {
			name string
			id   string
			now  time.Time
		}{
			{"fail/expired-at-deadline", a.ID, a.ExpiresAt},
			{"fail/expired", a.ID, a.ExpiresAt.Add(time.Hour)},
			{"fail/unknown", unknown.ID, at},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				before := snapshot(t, db)
				s, _ := signedFor(f, a, c.now)
				s.ID = c.id
				wantKind(t, c.name, db.MarkSigned(ctx, s, c.now), errs.Conflict)
				if snapshot(t, db) != before {
					t.Fatal("a refused MarkSigned changed the database")
				}
			})
		}
		// The action was left pending: signing it in time still works.
		s, _ := signedFor(f, a, at)
		if err := db.MarkSigned(ctx, s, a.ExpiresAt.Add(-time.Millisecond)); err != nil {
			t.Fatalf("MarkSigned just before expiry: %v", err)
		}
	})
}

// TestConsumeBindings refuses a token whenever one binding differs, and then changes nothing.
func TestConsumeBindings(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		ctx := t.Context()
		db := newDB(t, e)
		f := seed(t, db)
		g := seed(t, db)
		payload := []byte(`{"amount":"1"}`)
		a, s, exact := signedAction(t, db, f, "POST", "/wallets/wa-1/transfers", payload)
		otherHash := sha256.Sum256([]byte("another token"))
		cases := []struct {
			name string
			mut  func(m *useraction.Match)
		}{
			{"fail/method", func(m *useraction.Match) { m.Method = "PUT" }},
			{"fail/path", func(m *useraction.Match) { m.Paths = [2]string{"/wallets/wa-2/transfers", "/wallets/wa-2/transfers"} }},
			{"fail/path-prefix", func(m *useraction.Match) { m.Paths = [2]string{"/wallets/wa-1", "/wallets/wa-1"} }},
			{"fail/trailing-slash", func(m *useraction.Match) { m.Paths = [2]string{"/wallets/wa-1/transfers/", "/wallets/wa-1/transfers/"} }},
			{"fail/payload", func(m *useraction.Match) { m.Payload = []byte(`{"amount":"2"}`) }},
			{"fail/payload-whitespace", func(m *useraction.Match) { m.Payload = []byte(`{"amount": "1"}`) }},
			{"fail/payload-empty", func(m *useraction.Match) { m.Payload = nil }},
			{"fail/user", func(m *useraction.Match) { m.UserID = g.sa.User.ID }},
			{"fail/token", func(m *useraction.Match) { m.TokenID = g.tok.ID }},
			{"fail/token-hash", func(m *useraction.Match) { m.TokenHash = otherHash[:] }},
			{"fail/expired-at-deadline", func(m *useraction.Match) { m.Now = s.TokenExpiresAt }},
			{"fail/expired", func(m *useraction.Match) { m.Now = s.TokenExpiresAt.Add(time.Hour) }},
			{"fail/org", func(m *useraction.Match) { m.OrgID = g.org.ID }},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				m := exact
				m.AuditID = ids.New("al")
				c.mut(&m)
				before := snapshot(t, db)
				_, err := db.Consume(ctx, m)
				wantKind(t, c.name, err, errs.NotFound)
				if snapshot(t, db) != before {
					t.Fatal("a refused Consume changed the database")
				}
			})
		}
		// After all that the token is still good, once.
		if _, err := db.Consume(ctx, exact); err != nil {
			t.Fatalf("Consume with the exact request after refusals: %v", err)
		}
		if got, _ := db.GetUserAction(ctx, f.org.ID, a.ID); got.State != useraction.Used {
			t.Fatalf("state = %s, want used", got.State)
		}
		exact.AuditID = ids.New("al")
		_, err := db.Consume(ctx, exact)
		wantKind(t, "replayed Consume", err, errs.NotFound)
	})
}

// TestConsumePaths: Match.Paths is the request-target as received and the same without its
// query; a challenge signed for a bare path accepts any query, one signed with a query only
// that query.
func TestConsumePaths(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		ctx := t.Context()
		db := newDB(t, e)
		f := seed(t, db)
		cases := []struct {
			name   string
			signed string
			raw    string
			want   errs.Kind
		}{
			{"ok/exact", "/wallets", "/wallets", noErr},
			{"ok/query-on-bare-path", "/wallets", "/wallets?force=true", noErr},
			{"ok/exact-query", "/wallets?force=true", "/wallets?force=true", noErr},
			{"fail/other-query", "/wallets?force=true", "/wallets?force=false", errs.NotFound},
			{"fail/query-dropped", "/wallets?force=true", "/wallets", errs.NotFound},
			{"fail/other-path-with-query", "/wallets", "/wallets/x?force=true", errs.NotFound},
			{"fail/case", "/wallets", "/Wallets", errs.NotFound},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				a, s, _ := signedAction(t, db, f, "DELETE", c.signed, nil)
				m := matchFor(a, s, c.raw, nil, now())
				before := snapshot(t, db)
				_, err := db.Consume(ctx, m)
				wantKind(t, c.name, err, c.want)
				if c.want != noErr && snapshot(t, db) != before {
					t.Fatal("a refused Consume changed the database")
				}
				if c.want == noErr {
					e, err := db.GetAudit(ctx, f.org.ID, m.AuditID)
					if err != nil || e.Path != c.raw {
						t.Fatalf("audit path = %q, %v; want the request-target as received %q", e.Path, err, c.raw)
					}
				}
			})
		}
	})
}

func TestAuditPagination(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		ctx := t.Context()
		db := newDB(t, e)
		f := seed(t, db)
		base := now()
		var want []string // newest first
		for i := range 5 {
			a, s, _ := signedAction(t, db, f, "POST", "/p/"+strconv.Itoa(i), nil)
			m := matchFor(a, s, a.Path, nil, base.Add(time.Duration(i)*time.Second))
			if _, err := db.Consume(ctx, m); err != nil {
				t.Fatal(err)
			}
			want = append([]string{m.AuditID}, want...)
		}
		var got []string
		after := ""
		for {
			page, err := db.ListAudit(ctx, f.org.ID, audit.Filter{Limit: 2, After: after})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range page {
				got = append(got, e.ID)
			}
			if len(page) < 2 {
				break
			}
			after = page[len(page)-1].ID
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("pages = %v, want %v", got, want)
		}
		l, err := db.ListAudit(ctx, f.org.ID, audit.Filter{Limit: 10, StartTime: base.Add(time.Second), EndTime: base.Add(3 * time.Second)})
		if err != nil || len(l) != 3 {
			t.Fatalf("time window = %d entries, %v; want 3", len(l), err)
		}
		l, err = db.ListAudit(ctx, f.org.ID, audit.Filter{Limit: 10, UserID: ids.New("us")})
		if err != nil || len(l) != 0 {
			t.Fatalf("another user's entries = %d, %v; want 0", len(l), err)
		}
	})
}

func TestPurgeUserActions(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		ctx := t.Context()
		db := newDB(t, e)
		f := seed(t, db)
		cutoff := now().Add(-time.Hour)
		old := cutoff.Add(-time.Hour)

		// state builds an action created at created, signed (if tokenTTL > 0) a minute later
		// with a token valid for tokenTTL, and used if use.
		state := func(created time.Time, tokenTTL time.Duration, use bool) string {
			a := newAction(f, "POST", "/x", nil, created)
			if err := db.CreateUserAction(ctx, a); err != nil {
				t.Fatal(err)
			}
			if tokenTTL == 0 {
				return a.ID
			}
			signedAt := created.Add(time.Minute)
			s, _ := signedFor(f, a, signedAt)
			s.TokenExpiresAt = signedAt.Add(tokenTTL)
			if err := db.MarkSigned(ctx, s, signedAt); err != nil {
				t.Fatal(err)
			}
			if use {
				if _, err := db.Consume(ctx, matchFor(a, s, a.Path, nil, signedAt.Add(time.Second))); err != nil {
					t.Fatal(err)
				}
			}
			return a.ID
		}
		cases := []struct {
			name string
			id   string
			gone bool
		}{
			{"pending-expired", state(old, 0, false), true},
			{"signed-both-expired", state(old, 5*time.Minute, false), true},
			{"used-both-expired", state(old, 5*time.Minute, true), true},
			{"signed-token-outlives-cutoff", state(old, 2*time.Hour, false), false},
			{"pending-challenge-outlives-cutoff", state(cutoff.Add(-time.Minute), 0, false), false},
			{"fresh", state(now(), 0, false), false},
			{"fresh-used", state(now(), 5*time.Minute, true), false},
		}
		n, err := db.PurgeUserActions(ctx, cutoff)
		if err != nil {
			t.Fatal(err)
		}
		want := 0
		for _, c := range cases {
			if c.gone {
				want++
			}
			_, err := db.GetUserAction(ctx, f.org.ID, c.id)
			if c.gone {
				wantKind(t, c.name, err, errs.NotFound)
			} else {
				wantKind(t, c.name, err, noErr)
			}
		}
		if n != int64(want) {
			t.Fatalf("PurgeUserActions = %d, want %d", n, want)
		}
		if l, _ := db.ListAudit(ctx, f.org.ID, audit.Filter{Limit: 10}); len(l) != 2 {
			t.Fatalf("audit entries after purge = %d, want 2 (the log is not purged)", len(l))
		}
		if n, err := db.PurgeUserActions(ctx, cutoff); err != nil || n != 0 {
			t.Fatalf("second purge = %d, %v; want 0", n, err)
		}
	})
}

// TestAuthCache: on SQLite answers are cached in memory; a committed change must show in the
// very next read. PostgreSQL has no cache and must behave the same.
func TestAuthCache(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		ctx := t.Context()
		db := newDB(t, e)
		f := seed(t, db)
		at := now()
		active := func(want bool, after string) {
			t.Helper()
			for range 2 { // the second read is the cached one
				st, err := db.TokenState(ctx, f.tok.ID)
				if err != nil || st.Active != want {
					t.Fatalf("TokenState after %s: Active = %v, %v; want %v", after, st.Active, err, want)
				}
			}
		}
		usable := func(want int, after string) {
			t.Helper()
			for range 2 {
				cs, err := db.UsableCredentials(ctx, f.principal())
				if err != nil || len(cs) != want {
					t.Fatalf("UsableCredentials after %s = %d credentials, %v; want %d", after, len(cs), err, want)
				}
			}
		}
		active(true, "creation")
		usable(1, "creation")
		steps := []struct {
			name   string
			run    func() error
			active bool
			usable int
		}{
			{"token-inactive", func() error { return db.SetAccessTokenStatus(ctx, f.org.ID, f.tok.ID, identity.Inactive, at) }, false, 1},
			{"token-active", func() error { return db.SetAccessTokenStatus(ctx, f.org.ID, f.tok.ID, identity.Active, at) }, true, 1},
			{"account-inactive", func() error {
				return db.SetServiceAccountStatus(ctx, f.org.ID, f.sa.User.ID, identity.Inactive, at)
			}, false, 1},
			{"account-active", func() error {
				return db.SetServiceAccountStatus(ctx, f.org.ID, f.sa.User.ID, identity.Active, at)
			}, true, 1},
			{"credential-inactive", func() error {
				return db.SetCredentialStatus(ctx, f.org.ID, f.tok.Credential.UUID, identity.Inactive, at)
			}, true, 0},
			{"credential-active", func() error {
				return db.SetCredentialStatus(ctx, f.org.ID, f.tok.Credential.UUID, identity.Active, at)
			}, true, 1},
			{"account-archived", func() error {
				return db.SetServiceAccountStatus(ctx, f.org.ID, f.sa.User.ID, identity.Archived, at)
			}, false, 1},
		}
		for _, s := range steps {
			if err := s.run(); err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
			active(s.active, s.name)
			usable(s.usable, s.name)
		}
	})
}

// BenchmarkConsume measures one Consume (the conditional UPDATE … RETURNING and the audit
// INSERT in one transaction); creating and signing the actions is outside the timer.
// "serial" is one caller at a time; "parallel" is 4×GOMAXPROCS callers, where SQLite's
// group commit shares each commit among them.
func BenchmarkConsume(b *testing.B) {
	for _, e := range testutil.Engines(b) {
		for _, mode := range []string{"serial", "parallel"} {
			b.Run(e.Name+"/"+mode, func(b *testing.B) {
				ctx := context.Background()
				db := newDB(b, e)
				f := seed(b, db)
				ms := make(chan useraction.Match, b.N)
				for range b.N {
					_, _, m := signedAction(b, db, f, "POST", "/wallets", []byte(`{"name":"bench"}`))
					ms <- m
				}
				close(ms)
				b.ReportAllocs()
				b.ResetTimer()
				if mode == "serial" {
					for m := range ms {
						if _, err := db.Consume(ctx, m); err != nil {
							b.Fatal(err)
						}
					}
					return
				}
				b.SetParallelism(4)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, err := db.Consume(ctx, <-ms); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}

// TestAuditPiggyback checks that a signed request's first committed write records its
// success in the audit entry, that a failed write records nothing, and that FinishAudit
// (the HTTP layer's fallback) is never itself overwritten by the piggyback.
func TestAuditPiggyback(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		ctx := t.Context()
		db := newDB(t, e)
		f := seed(t, db)
		_, _, m := signedAction(t, db, f, "PUT", "/auth/pats/x", []byte(`{}`))
		if _, err := db.Consume(ctx, m); err != nil {
			t.Fatal(err)
		}
		at := m.Now.Add(time.Second)
		svc := audit.NewService(db, func() time.Time { return at })
		pctx, p := svc.Begin(ctx, m.AuditID)

		failed := errs.E(errs.Invalid, "handler refused", nil)
		if err := db.Tx(pctx, func(*store.Tx) error { return failed }); !errors.Is(err, failed) || p.Done() {
			t.Fatalf("failed Tx = %v, done %v", err, p.Done())
		}
		if e, _ := db.GetAudit(ctx, f.org.ID, m.AuditID); e.Status != 0 {
			t.Fatalf("a rolled-back write recorded status %d", e.Status)
		}
		if err := db.Tx(pctx, func(tx *store.Tx) error {
			_, err := tx.ExecContext(pctx, `UPDATE orgs SET name = name WHERE id = $1`, f.org.ID)
			return err
		}); err != nil || !p.Done() {
			t.Fatalf("Tx = %v, done %v", err, p.Done())
		}
		if e, _ := db.GetAudit(ctx, f.org.ID, m.AuditID); e.Status != 200 || !e.FinishedAt.Equal(at) {
			t.Fatalf("after a committed write: status %d finished %v", e.Status, e.FinishedAt)
		}
		// The request failed later: the HTTP layer's FinishAudit wins, with pctx still carrying p.
		if err := db.FinishAudit(pctx, m.AuditID, 409, at); err != nil {
			t.Fatal(err)
		}
		if e, _ := db.GetAudit(ctx, f.org.ID, m.AuditID); e.Status != 409 {
			t.Fatalf("FinishAudit after the piggyback: status %d", e.Status)
		}
	})
}

// TestKeyReadsFollowWrites: a key read again after each kind of key write (rename,
// delegation, archive) is the written row, never a cached copy of the one before.
func TestKeyReadsFollowWrites(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		ctx := t.Context()
		db := newDB(t, e)
		f := seed(t, db)
		at := now()
		k := keys.Key{ID: ids.NewAt("key", at), OrgID: f.org.ID, Scheme: "EdDSA", Curve: "ed25519", PublicKey: []byte{1},
			Sealed: []byte{2}, Name: "first", Status: "Active", CreatedAt: at, UpdatedAt: at}
		if err := db.CreateKey(ctx, k); err != nil {
			t.Fatal(err)
		}
		get := func(what string) keys.Key {
			t.Helper()
			got, err := db.GetKey(ctx, f.org.ID, k.ID)
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			return got
		}
		if got := get("created"); got.Name != "first" {
			t.Fatalf("created key: %+v", got)
		}
		get("again") // a second read may come from memory
		if err := db.UpdateKey(ctx, f.org.ID, k.ID, "second", at.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		if got := get("renamed"); got.Name != "second" {
			t.Fatalf("after rename: %q", got.Name)
		}
		u := newUser(f.org.ID, "end@example.co", false, at)
		u.Kind = "EndUser"
		if err := db.Tx(ctx, func(tx *store.Tx) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO users (id, org_id, username, name, kind, is_service_account, status,
				is_registered, created_at, updated_at) VALUES ($1,$2,$3,$4,$5,0,'Active',1,$6,$6)`,
				u.ID, u.OrgID, u.Username, u.Name, u.Kind, at.UnixMilli())
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if err := db.DelegateKey(ctx, f.org.ID, k.ID, u.ID, at.Add(2*time.Second)); err != nil {
			t.Fatal(err)
		}
		if got := get("delegated"); got.DelegatedTo != u.ID {
			t.Fatalf("after delegation: %+v", got)
		}
		if err := db.ArchiveKey(ctx, f.org.ID, k.ID, at.Add(3*time.Second)); err != nil {
			t.Fatal(err)
		}
		if got := get("archived"); got.Status != "Archived" {
			t.Fatalf("after archive: %+v", got)
		}
		if _, err := db.GetKey(ctx, "or-other", k.ID); !errs.Is(err, errs.NotFound) {
			t.Fatalf("another organization's read = %v", err)
		}
	})
}
