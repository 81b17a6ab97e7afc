package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/countersign/countersign/client"
	"github.com/countersign/countersign/internal/app/apptest"
	"github.com/countersign/countersign/internal/identity"
	"github.com/countersign/countersign/internal/ids"
	"github.com/countersign/countersign/internal/testutil"
)

// attackFixture is one node with the principals the attacks need.
type attackFixture struct {
	n      *apptest.Node
	admin  actor
	sa1    actor // P-256; the principal most attacks act as
	sa2    actor // another service account of the same organization
	victim actor // the service account the attacks try to change
	org2   actor // the admin of a second organization in the same database
	other  *apptest.Node
}

func (f *attackFixture) victimPath() string { return "/auth/service-accounts/" + f.victim.userID }

// withToken is a copy of a's client that sends token as its bearer ("" sends none).
func withToken(a actor, token string) actor {
	c := *a.Client
	c.Token = token
	a.Client = &c
	return a
}

// actionBody is a POST /auth/action body.
func actionBody(t testing.TB, challengeID string, a *client.Assertion) []byte {
	return mustJSON(t, map[string]any{"challengeIdentifier": challengeID, "firstFactor": a})
}

// withSig is a with its signature replaced.
func withSig(a *client.Assertion, sig string) *client.Assertion {
	c := *a
	c.CredentialAssertion.Signature = sig
	return &c
}

// alter changes the last character of a base64url string to another valid one.
func alter(s string) string {
	last := s[len(s)-1]
	repl := byte('A')
	if last == 'A' {
		repl = 'B'
	}
	return s[:len(s)-1] + string(repl)
}

// newOrg creates a second organization with an admin service account directly in the
// database (the API has no call that creates organizations).
func newOrg(t testing.TB, n *apptest.Node) actor {
	t.Helper()
	ctx := t.Context()
	k := newKey(t, "Ed25519")
	org := identity.Org{ID: ids.New("or"), Name: "other", CreatedAt: n.Clock.Now().UTC()}
	if err := n.App.DB.CreateOrg(ctx, org); err != nil {
		t.Fatal(err)
	}
	sa, err := n.App.Identity.NewServiceAccount(org.ID, identity.CreateTokenRequest{Name: "other-admin", PublicKey: k.PublicPEM})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.App.DB.CreateServiceAccount(ctx, sa); err != nil {
		t.Fatal(err)
	}
	tok := sa.Tokens[0]
	return actor{
		Client: client.New(n.URL, tok.Secret, k.Signer(t, tok.Credential.CredID)), key: k,
		credID: tok.Credential.CredID, credUUID: tok.Credential.UUID, userID: sa.User.ID, tokenID: tok.ID,
	}
}

// auditCount counts the audit entries of both organizations that ended with status.
func (f *attackFixture) auditCount(t testing.TB, status int) int {
	t.Helper()
	n := 0
	for _, r := range []actor{f.admin, f.org2} {
		for _, e := range auditLog(t, r, "limit=500") {
			if e.Status == status {
				n++
			}
		}
	}
	return n
}

// step is the request under test; it must be refused.
type step func() (int, []byte)

// TestAttacks sends requests that must be refused and checks both the status and that a
// refused request changed nothing: the database digest is the same before and after.
// Requests that carry a valid user action and are refused by their handler (audited)
// consume that action and leave an audit entry on purpose, and must change nothing else.
func TestAttacks(t *testing.T) {
	const put, del, post, get = http.MethodPut, http.MethodDelete, http.MethodPost, http.MethodGet
	pwn := []byte(`{"name":"pwned"}`)

	tests := []struct {
		name    string
		prepare func(t *testing.T, f *attackFixture) step // may change the database
		want    int
		wantMsg string // only where the message is part of the Dfns contract
		audited bool
	}{
		// The user action token and what it is bound to (dfns-api.md §2.6).
		{
			name: "fail/replayed-action", want: 400, wantMsg: "user action has already been used",
			prepare: func(t *testing.T, f *attackFixture) step {
				body := []byte(`{"name":"first"}`)
				tok := f.sa1.uaToken(t, put, f.victimPath(), body)
				code, resp := f.sa1.raw(t, put, f.victimPath(), body, tok)
				checkStatus(t, "first use", code, resp, 200)
				return func() (int, []byte) { return f.sa1.raw(t, put, f.victimPath(), body, tok) }
			},
		},
		{
			name: "fail/body-changed-after-signing", want: 403,
			prepare: func(t *testing.T, f *attackFixture) step {
				tok := f.sa1.uaToken(t, put, f.victimPath(), []byte(`{"name":"a"}`))
				return func() (int, []byte) { return f.sa1.raw(t, put, f.victimPath(), pwn, tok) }
			},
		},
		{
			name: "fail/body-added-to-empty-signed-body", want: 403,
			prepare: func(t *testing.T, f *attackFixture) step {
				path := "/auth/service-accounts/" + f.victim.userID + "/deactivate"
				tok := f.sa1.uaToken(t, put, path, nil)
				return func() (int, []byte) { return f.sa1.raw(t, put, path, []byte(`{"x":1}`), tok) }
			},
		},
		{
			name: "fail/other-path", want: 403,
			prepare: func(t *testing.T, f *attackFixture) step {
				tok := f.sa1.uaToken(t, put, f.victimPath(), pwn)
				return func() (int, []byte) { return f.sa1.raw(t, put, "/auth/service-accounts/"+f.sa2.userID, pwn, tok) }
			},
		},
		{
			name: "fail/other-query-than-signed", want: 403,
			prepare: func(t *testing.T, f *attackFixture) step {
				tok := f.sa1.uaToken(t, del, f.victimPath()+"?force=false", nil)
				return func() (int, []byte) { return f.sa1.raw(t, del, f.victimPath()+"?force=true", nil, tok) }
			},
		},
		{
			name: "fail/signed-query-dropped", want: 403,
			prepare: func(t *testing.T, f *attackFixture) step {
				tok := f.sa1.uaToken(t, del, f.victimPath()+"?force=true", nil)
				return func() (int, []byte) { return f.sa1.raw(t, del, f.victimPath(), nil, tok) }
			},
		},
		{
			name: "fail/other-method", want: 403,
			prepare: func(t *testing.T, f *attackFixture) step {
				tok := f.sa1.uaToken(t, put, f.victimPath(), pwn)
				return func() (int, []byte) { return f.sa1.raw(t, del, f.victimPath(), pwn, tok) }
			},
		},
		{
			name: "fail/ua-token-of-another-principal", want: 403,
			prepare: func(t *testing.T, f *attackFixture) step {
				tok := f.sa2.uaToken(t, put, f.victimPath(), pwn)
				return func() (int, []byte) { return f.sa1.raw(t, put, f.victimPath(), pwn, tok) }
			},
		},
		{
			name: "fail/ua-token-of-own-pat-with-sa-bearer", want: 403,
			prepare: func(t *testing.T, f *attackFixture) step {
				pat := newPAT(t, f.n, f.sa1, "Ed25519", client.CreateTokenRequest{})
				tok := pat.uaToken(t, put, f.victimPath(), pwn)
				return func() (int, []byte) { return f.sa1.raw(t, put, f.victimPath(), pwn, tok) }
			},
		},
		{
			name: "fail/expired-ua-token", want: 403,
			prepare: func(t *testing.T, f *attackFixture) step {
				tok := f.sa1.uaToken(t, put, f.victimPath(), pwn)
				f.n.Clock.Advance(6 * time.Minute)
				return func() (int, []byte) { return f.sa1.raw(t, put, f.victimPath(), pwn, tok) }
			},
		},
		{
			name: "fail/missing-useraction-header", want: 403,
			prepare: func(t *testing.T, f *attackFixture) step {
				return func() (int, []byte) { return f.sa1.raw(t, put, f.victimPath(), pwn, "") }
			},
		},
		{
			name: "fail/garbage-useraction-header", want: 403,
			prepare: func(t *testing.T, f *attackFixture) step {
				return func() (int, []byte) { return f.sa1.raw(t, put, f.victimPath(), pwn, "garbage") }
			},
		},

		// POST /auth/action: the challenge and the assertion (§2.4.1, §2.5).
		{
			name: "fail/challenge-reused-after-success", want: 401,
			prepare: func(t *testing.T, f *attackFixture) step {
				ch := f.sa1.newChallenge(t, put, f.victimPath(), pwn)
				body := actionBody(t, ch.ChallengeIdentifier, f.sa1.assertion(t, tsLayout(ch.Challenge)))
				code, resp := f.sa1.raw(t, post, "/auth/action", body, "")
				checkStatus(t, "first /auth/action", code, resp, 200)
				return func() (int, []byte) { return f.sa1.raw(t, post, "/auth/action", body, "") }
			},
		},
		{
			name: "fail/expired-challenge", want: 401,
			prepare: func(t *testing.T, f *attackFixture) step {
				ch := f.sa1.newChallenge(t, put, f.victimPath(), pwn)
				body := actionBody(t, ch.ChallengeIdentifier, f.sa1.assertion(t, tsLayout(ch.Challenge)))
				f.n.Clock.Advance(6 * time.Minute)
				return func() (int, []byte) { return f.sa1.raw(t, post, "/auth/action", body, "") }
			},
		},
		{
			name: "fail/deactivated-credential", want: 401,
			prepare: func(t *testing.T, f *attackFixture) step {
				s := newSA(t, f.n, f.admin, "P-256", "doomed")
				ch := s.newChallenge(t, put, f.victimPath(), pwn)
				body := actionBody(t, ch.ChallengeIdentifier, s.assertion(t, tsLayout(ch.Challenge)))
				if err := f.n.App.DB.SetCredentialStatus(t.Context(), f.n.Env.OrgID, s.credUUID, "Inactive", f.n.Clock.Now()); err != nil {
					t.Fatal(err)
				}
				return func() (int, []byte) { return s.raw(t, post, "/auth/action", body, "") }
			},
		},
		{
			name: "fail/init-with-deactivated-credential", want: 401,
			prepare: func(t *testing.T, f *attackFixture) step {
				s := newSA(t, f.n, f.admin, "P-256", "doomed")
				if err := f.n.App.DB.SetCredentialStatus(t.Context(), f.n.Env.OrgID, s.credUUID, "Inactive", f.n.Clock.Now()); err != nil {
					t.Fatal(err)
				}
				body := mustJSON(t, map[string]string{"userActionPayload": string(pwn), "userActionHttpMethod": put,
					"userActionHttpPath": f.victimPath(), "userActionServerKind": "Api"})
				return func() (int, []byte) { return s.raw(t, post, "/auth/action/init", body, "") }
			},
		},
		{
			name: "fail/wrong-key", want: 401,
			prepare: func(t *testing.T, f *attackFixture) step {
				ch := f.sa1.newChallenge(t, put, f.victimPath(), pwn)
				cd := tsLayout(ch.Challenge)
				a := withSig(f.sa1.assertion(t, cd), b64u.EncodeToString(newKey(t, "P-256").sign(t, cd)))
				return func() (int, []byte) {
					return f.sa1.raw(t, post, "/auth/action", actionBody(t, ch.ChallengeIdentifier, a), "")
				}
			},
		},
		{
			name: "fail/signature-of-other-clientdata", want: 401,
			prepare: func(t *testing.T, f *attackFixture) step {
				ch := f.sa1.newChallenge(t, put, f.victimPath(), pwn)
				a := f.sa1.assertion(t, tsLayout(ch.Challenge))
				a = withSig(a, b64u.EncodeToString(f.sa1.key.sign(t, goLayout(ch.Challenge))))
				return func() (int, []byte) {
					return f.sa1.raw(t, post, "/auth/action", actionBody(t, ch.ChallengeIdentifier, a), "")
				}
			},
		},
		{
			name: "fail/tampered-clientdata-challenge", want: 401,
			prepare: func(t *testing.T, f *attackFixture) step {
				ch := f.sa1.newChallenge(t, put, f.victimPath(), pwn)
				a := f.sa1.assertion(t, tsLayout(alter(ch.Challenge)))
				return func() (int, []byte) {
					return f.sa1.raw(t, post, "/auth/action", actionBody(t, ch.ChallengeIdentifier, a), "")
				}
			},
		},
		{
			name: "fail/challenge-of-another-user-action", want: 401,
			prepare: func(t *testing.T, f *attackFixture) step {
				mine := f.sa1.newChallenge(t, put, f.victimPath(), []byte(`{"name":"harmless"}`))
				wanted := f.sa1.newChallenge(t, put, f.victimPath(), pwn)
				a := f.sa1.assertion(t, tsLayout(mine.Challenge))
				return func() (int, []byte) {
					return f.sa1.raw(t, post, "/auth/action", actionBody(t, wanted.ChallengeIdentifier, a), "")
				}
			},
		},
		{
			name: "fail/clientdata-type-webauthn-get", want: 401,
			prepare: func(t *testing.T, f *attackFixture) step {
				ch := f.sa1.newChallenge(t, put, f.victimPath(), pwn)
				a := f.sa1.assertion(t, []byte(`{"type":"webauthn.get","challenge":"`+ch.Challenge+`"}`))
				return func() (int, []byte) {
					return f.sa1.raw(t, post, "/auth/action", actionBody(t, ch.ChallengeIdentifier, a), "")
				}
			},
		},
		{
			name: "fail/clientdata-type-key-create", want: 401,
			prepare: func(t *testing.T, f *attackFixture) step {
				ch := f.sa1.newChallenge(t, put, f.victimPath(), pwn)
				a := f.sa1.assertion(t, []byte(`{"type":"key.create","challenge":"`+ch.Challenge+`"}`))
				return func() (int, []byte) {
					return f.sa1.raw(t, post, "/auth/action", actionBody(t, ch.ChallengeIdentifier, a), "")
				}
			},
		},
		{
			name: "fail/clientdata-duplicate-type", want: 400,
			prepare: func(t *testing.T, f *attackFixture) step {
				ch := f.sa1.newChallenge(t, put, f.victimPath(), pwn)
				a := f.sa1.assertion(t, []byte(`{"type":"webauthn.get","type":"key.get","challenge":"`+ch.Challenge+`"}`))
				return func() (int, []byte) {
					return f.sa1.raw(t, post, "/auth/action", actionBody(t, ch.ChallengeIdentifier, a), "")
				}
			},
		},
		{
			name: "fail/clientdata-not-json", want: 400,
			prepare: func(t *testing.T, f *attackFixture) step {
				ch := f.sa1.newChallenge(t, put, f.victimPath(), pwn)
				a := f.sa1.assertion(t, []byte("key.get "+ch.Challenge))
				return func() (int, []byte) {
					return f.sa1.raw(t, post, "/auth/action", actionBody(t, ch.ChallengeIdentifier, a), "")
				}
			},
		},
		{
			name: "fail/clientdata-bad-base64", want: 400,
			prepare: func(t *testing.T, f *attackFixture) step {
				ch := f.sa1.newChallenge(t, put, f.victimPath(), pwn)
				a := f.sa1.assertion(t, tsLayout(ch.Challenge))
				a.CredentialAssertion.ClientData = "%%%" + a.CredentialAssertion.ClientData
				return func() (int, []byte) {
					return f.sa1.raw(t, post, "/auth/action", actionBody(t, ch.ChallengeIdentifier, a), "")
				}
			},
		},
		{
			name: "fail/signature-bad-base64", want: 400,
			prepare: func(t *testing.T, f *attackFixture) step {
				ch := f.sa1.newChallenge(t, put, f.victimPath(), pwn)
				a := withSig(f.sa1.assertion(t, tsLayout(ch.Challenge)), "MEUCIQ!!*not-base64*")
				return func() (int, []byte) {
					return f.sa1.raw(t, post, "/auth/action", actionBody(t, ch.ChallengeIdentifier, a), "")
				}
			},
		},
		{
			name: "fail/signature-malformed-der", want: 401,
			prepare: func(t *testing.T, f *attackFixture) step {
				ch := f.sa1.newChallenge(t, put, f.victimPath(), pwn)
				a := withSig(f.sa1.assertion(t, tsLayout(ch.Challenge)), b64u.EncodeToString([]byte{0x30, 0x45, 0x02, 0x21, 0x00, 0xff}))
				return func() (int, []byte) {
					return f.sa1.raw(t, post, "/auth/action", actionBody(t, ch.ChallengeIdentifier, a), "")
				}
			},
		},
		{
			name: "fail/signature-der-r1-s1", want: 401,
			prepare: func(t *testing.T, f *attackFixture) step {
				ch := f.sa1.newChallenge(t, put, f.victimPath(), pwn)
				a := withSig(f.sa1.assertion(t, tsLayout(ch.Challenge)), b64u.EncodeToString([]byte{0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01}))
				return func() (int, []byte) {
					return f.sa1.raw(t, post, "/auth/action", actionBody(t, ch.ChallengeIdentifier, a), "")
				}
			},
		},
		{
			name: "fail/signature-empty", want: 401,
			prepare: func(t *testing.T, f *attackFixture) step {
				ch := f.sa1.newChallenge(t, put, f.victimPath(), pwn)
				a := withSig(f.sa1.assertion(t, tsLayout(ch.Challenge)), "")
				return func() (int, []byte) {
					return f.sa1.raw(t, post, "/auth/action", actionBody(t, ch.ChallengeIdentifier, a), "")
				}
			},
		},
		{
			name: "fail/action-body-malformed-json", want: 400,
			prepare: func(t *testing.T, f *attackFixture) step {
				return func() (int, []byte) { return f.sa1.raw(t, post, "/auth/action", []byte(`{"challengeIdentifier":`), "") }
			},
		},
		{
			name: "fail/action-body-wrong-types", want: 400,
			prepare: func(t *testing.T, f *attackFixture) step {
				return func() (int, []byte) {
					return f.sa1.raw(t, post, "/auth/action", []byte(`{"challengeIdentifier":5,"firstFactor":"Key"}`), "")
				}
			},
		},
		{
			name: "fail/unknown-credential-id", want: 401,
			prepare: func(t *testing.T, f *attackFixture) step {
				ch := f.sa1.newChallenge(t, put, f.victimPath(), pwn)
				a := f.sa1.assertion(t, tsLayout(ch.Challenge))
				a.CredentialAssertion.CredID = b64u.EncodeToString([]byte(ids.New("ci")))
				return func() (int, []byte) {
					return f.sa1.raw(t, post, "/auth/action", actionBody(t, ch.ChallengeIdentifier, a), "")
				}
			},
		},
		{
			name: "fail/credential-of-another-principal", want: 401,
			prepare: func(t *testing.T, f *attackFixture) step {
				ch := f.sa1.newChallenge(t, put, f.victimPath(), pwn)
				a := f.sa2.assertion(t, tsLayout(ch.Challenge)) // sa2's credId and key
				return func() (int, []byte) {
					return f.sa1.raw(t, post, "/auth/action", actionBody(t, ch.ChallengeIdentifier, a), "")
				}
			},
		},
		{
			name: "fail/challenge-of-another-principal", want: 401,
			prepare: func(t *testing.T, f *attackFixture) step {
				ch := f.sa2.newChallenge(t, put, f.victimPath(), pwn)
				a := f.sa1.assertion(t, tsLayout(ch.Challenge))
				return func() (int, []byte) {
					return f.sa1.raw(t, post, "/auth/action", actionBody(t, ch.ChallengeIdentifier, a), "")
				}
			},
		},
		{
			name: "fail/unknown-challenge-identifier", want: 401,
			prepare: func(t *testing.T, f *attackFixture) step {
				ch := f.sa1.newChallenge(t, put, f.victimPath(), pwn)
				a := f.sa1.assertion(t, tsLayout(ch.Challenge))
				return func() (int, []byte) {
					return f.sa1.raw(t, post, "/auth/action", actionBody(t, ids.New("ch"), a), "")
				}
			},
		},

		// Bearer tokens (§1.4).
		{
			name: "fail/bearer-garbage", want: 401,
			prepare: func(t *testing.T, f *attackFixture) step {
				return func() (int, []byte) {
					return withToken(f.sa1, "garbage").raw(t, get, "/auth/service-accounts", nil, "")
				}
			},
		},
		{
			name: "fail/bearer-two-segments", want: 401,
			prepare: func(t *testing.T, f *attackFixture) step {
				parts := strings.Split(f.sa1.Token, ".")
				return func() (int, []byte) {
					return withToken(f.sa1, parts[0]+"."+parts[1]).raw(t, get, "/auth/service-accounts", nil, "")
				}
			},
		},
		{
			name: "fail/bearer-alg-none", want: 401,
			prepare: func(t *testing.T, f *attackFixture) step {
				parts := strings.Split(f.sa1.Token, ".")
				hdr := b64u.EncodeToString([]byte(`{"alg":"none","typ":"JWT","kid":"jwt-1"}`))
				return func() (int, []byte) {
					return withToken(f.sa1, hdr+"."+parts[1]+".").raw(t, get, "/auth/service-accounts", nil, "")
				}
			},
		},
		{
			name: "fail/bearer-payload-swapped", want: 401,
			prepare: func(t *testing.T, f *attackFixture) step {
				mine, admins := strings.Split(f.sa1.Token, "."), strings.Split(f.admin.Token, ".")
				return func() (int, []byte) {
					return withToken(f.sa1, mine[0]+"."+admins[1]+"."+mine[2]).raw(t, get, "/auth/service-accounts", nil, "")
				}
			},
		},
		{
			name: "fail/bearer-of-another-node", want: 401,
			prepare: func(t *testing.T, f *attackFixture) step {
				return func() (int, []byte) {
					return withToken(f.sa1, f.other.Admin.Token).raw(t, get, "/auth/service-accounts", nil, "")
				}
			},
		},
		{
			name: "fail/bearer-basic-scheme", want: 401,
			prepare: func(t *testing.T, f *attackFixture) step {
				return func() (int, []byte) {
					req, _ := http.NewRequestWithContext(t.Context(), get, f.n.URL+"/auth/service-accounts", nil)
					req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("admin:admin")))
					return do(t, req)
				}
			},
		},
		{
			name: "fail/missing-bearer-on-ua-route", want: 401,
			prepare: func(t *testing.T, f *attackFixture) step {
				tok := f.sa1.uaToken(t, put, f.victimPath(), pwn)
				return func() (int, []byte) { return withToken(f.sa1, "").raw(t, put, f.victimPath(), pwn, tok) }
			},
		},
		{
			name: "fail/missing-bearer-on-action-init", want: 401,
			prepare: func(t *testing.T, f *attackFixture) step {
				body := mustJSON(t, map[string]string{"userActionPayload": "", "userActionHttpMethod": put, "userActionHttpPath": f.victimPath()})
				return func() (int, []byte) { return withToken(f.sa1, "").raw(t, post, "/auth/action/init", body, "") }
			},
		},
		{
			name: "fail/expired-bearer", want: 401,
			prepare: func(t *testing.T, f *attackFixture) step {
				pat := newPAT(t, f.n, f.sa1, "Ed25519", client.CreateTokenRequest{SecondsValid: 60})
				if _, err := pat.ListPATs(t.Context()); err != nil {
					t.Fatalf("fresh PAT: %v", err)
				}
				f.n.Clock.Advance(2 * time.Minute)
				return func() (int, []byte) { return pat.raw(t, get, "/auth/pats", nil, "") }
			},
		},
		{
			name: "fail/revoked-pat", want: 401,
			prepare: func(t *testing.T, f *attackFixture) step {
				pat := newPAT(t, f.n, f.sa1, "Ed25519", client.CreateTokenRequest{})
				if _, err := pat.ListPATs(t.Context()); err != nil {
					t.Fatalf("fresh PAT: %v", err)
				}
				if _, err := f.sa1.SetPATActive(t.Context(), pat.tokenID, false); err != nil {
					t.Fatal(err)
				}
				return func() (int, []byte) { return pat.raw(t, get, "/auth/pats", nil, "") }
			},
		},
		{
			name: "fail/revoked-pat-with-ua-signed-before", want: 401,
			prepare: func(t *testing.T, f *attackFixture) step {
				pat := newPAT(t, f.n, f.sa1, "Ed25519", client.CreateTokenRequest{})
				tok := pat.uaToken(t, put, f.victimPath(), pwn)
				if _, err := f.sa1.SetPATActive(t.Context(), pat.tokenID, false); err != nil {
					t.Fatal(err)
				}
				return func() (int, []byte) { return pat.raw(t, put, f.victimPath(), pwn, tok) }
			},
		},

		// Bodies, shapes, routes.
		{
			name: "fail/oversized-body", want: 413,
			prepare: func(t *testing.T, f *attackFixture) step {
				body := bytes.Repeat([]byte("a"), 1<<20+1)
				return func() (int, []byte) { return f.sa1.raw(t, post, "/auth/service-accounts", body, "") }
			},
		},
		{
			name: "fail/oversized-body-chunked", want: 413,
			prepare: func(t *testing.T, f *attackFixture) step {
				return func() (int, []byte) {
					body := io.LimitReader(strings.NewReader(strings.Repeat("a", 1<<20+1)), 1<<20+1)
					req, _ := http.NewRequestWithContext(t.Context(), post, f.n.URL+"/auth/service-accounts", body)
					req.Header.Set("Authorization", "Bearer "+f.sa1.Token)
					if req.ContentLength != 0 {
						t.Fatalf("request is not chunked: length %d", req.ContentLength)
					}
					return do(t, req)
				}
			},
		},
		{
			name: "fail/invalid-public-key-pem", want: 400, audited: true,
			prepare: func(t *testing.T, f *attackFixture) step {
				body := mustJSON(t, map[string]string{"name": "bad", "publicKey": "-----BEGIN PUBLIC KEY-----\nbm9wZQ==\n-----END PUBLIC KEY-----\n"})
				tok := f.sa1.uaToken(t, post, "/auth/service-accounts", body)
				return func() (int, []byte) { return f.sa1.raw(t, post, "/auth/service-accounts", body, tok) }
			},
		},
		{
			name: "fail/wrong-json-types-create-service-account", want: 400, audited: true,
			prepare: func(t *testing.T, f *attackFixture) step {
				body := mustJSON(t, map[string]any{"name": 5, "publicKey": newKey(t, "Ed25519").PublicPEM})
				tok := f.sa1.uaToken(t, post, "/auth/service-accounts", body)
				return func() (int, []byte) { return f.sa1.raw(t, post, "/auth/service-accounts", body, tok) }
			},
		},
		{
			name: "fail/wrong-json-types-action-init", want: 400,
			prepare: func(t *testing.T, f *attackFixture) step {
				body := []byte(`{"userActionPayload":5,"userActionHttpMethod":"PUT","userActionHttpPath":"/auth/service-accounts"}`)
				return func() (int, []byte) { return f.sa1.raw(t, post, "/auth/action/init", body, "") }
			},
		},
		{
			name: "fail/json-array-body-action-init", want: 400,
			prepare: func(t *testing.T, f *attackFixture) step {
				return func() (int, []byte) { return f.sa1.raw(t, post, "/auth/action/init", []byte(`[]`), "") }
			},
		},
		{
			name: "fail/unknown-route", want: 404,
			prepare: func(t *testing.T, f *attackFixture) step {
				return func() (int, []byte) { return f.sa1.raw(t, get, "/no/such/route", nil, "") }
			},
		},
		{
			name: "fail/unknown-route-unauthenticated-post", want: 404,
			prepare: func(t *testing.T, f *attackFixture) step {
				return func() (int, []byte) { return withToken(f.sa1, "").raw(t, post, "/no/such/route", []byte(`{}`), "") }
			},
		},

		// A second organization in the same database (tenant isolation).
		{
			name: "fail/other-org-get-service-account", want: 404,
			prepare: func(t *testing.T, f *attackFixture) step {
				return func() (int, []byte) { return f.org2.raw(t, get, f.victimPath(), nil, "") }
			},
		},
		{
			name: "fail/other-org-update-service-account", want: 404, audited: true,
			prepare: func(t *testing.T, f *attackFixture) step {
				tok := f.org2.uaToken(t, put, f.victimPath(), pwn)
				return func() (int, []byte) { return f.org2.raw(t, put, f.victimPath(), pwn, tok) }
			},
		},
		{
			name: "fail/other-org-deactivate-service-account", want: 404, audited: true,
			prepare: func(t *testing.T, f *attackFixture) step {
				path := f.victimPath() + "/deactivate"
				tok := f.org2.uaToken(t, put, path, nil)
				return func() (int, []byte) { return f.org2.raw(t, put, path, nil, tok) }
			},
		},
		{
			name: "fail/other-org-get-pat", want: 404,
			prepare: func(t *testing.T, f *attackFixture) step {
				pat := newPAT(t, f.n, f.sa1, "Ed25519", client.CreateTokenRequest{})
				return func() (int, []byte) { return f.org2.raw(t, get, "/auth/pats/"+pat.tokenID, nil, "") }
			},
		},
		{
			name: "fail/other-org-get-audit-entry", want: 404,
			prepare: func(t *testing.T, f *attackFixture) step {
				es := auditLog(t, f.admin, "limit=1")
				if len(es) == 0 {
					t.Fatal("no audit entry in the first organization")
				}
				return func() (int, []byte) { return f.org2.raw(t, get, "/auth/action/logs/"+es[0].ID, nil, "") }
			},
		},
		{
			name: "fail/other-org-challenge-used-by-first-org", want: 401,
			prepare: func(t *testing.T, f *attackFixture) step {
				ch := f.org2.newChallenge(t, put, f.victimPath(), pwn)
				a := f.sa1.assertion(t, tsLayout(ch.Challenge))
				return func() (int, []byte) {
					return f.sa1.raw(t, post, "/auth/action", actionBody(t, ch.ChallengeIdentifier, a), "")
				}
			},
		},
		{
			name: "fail/other-org-challenge-and-assertion-with-first-org-bearer", want: 401,
			prepare: func(t *testing.T, f *attackFixture) step {
				ch := f.org2.newChallenge(t, put, f.victimPath(), pwn)
				a := f.org2.assertion(t, tsLayout(ch.Challenge))
				return func() (int, []byte) {
					return f.sa1.raw(t, post, "/auth/action", actionBody(t, ch.ChallengeIdentifier, a), "")
				}
			},
		},
		{
			name: "fail/other-org-ua-token-with-first-org-bearer", want: 403,
			prepare: func(t *testing.T, f *attackFixture) step {
				tok := f.org2.uaToken(t, put, f.victimPath(), pwn)
				return func() (int, []byte) { return f.sa1.raw(t, put, f.victimPath(), pwn, tok) }
			},
		},
	}

	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		n := apptest.Start(t, e, apptest.Options{})
		f := &attackFixture{n: n, admin: adminActor(t, n), other: apptest.Start(t, e, apptest.Options{})}
		f.sa1 = newSA(t, n, f.admin, "P-256", "sa1")
		f.sa2 = newSA(t, n, f.admin, "Ed25519", "sa2")
		f.victim = newSA(t, n, f.admin, "Ed25519", "victim")
		f.org2 = newOrg(t, n)

		// The second organization sees none of the first one's service accounts.
		list, err := f.org2.ListServiceAccounts(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 1 || list[0].UserInfo.UserID != f.org2.userID {
			t.Fatalf("second organization lists %d service accounts, want only its own", len(list))
		}

		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				refused := tc.prepare(t, f)
				before := snapshot(t, n)
				var entities string
				var audited int
				if tc.audited {
					entities, audited = entityDigest(t, n), f.auditCount(t, tc.want)
				}
				code, body := refused()
				checkStatus(t, tc.name, code, body, tc.want)
				if tc.wantMsg != "" && errorMessage(body) != tc.wantMsg {
					t.Errorf("error.message = %q, want %q", errorMessage(body), tc.wantMsg)
				}
				if !tc.audited {
					if after := snapshot(t, n); after != before {
						t.Errorf("the refused request changed the database")
					}
					return
				}
				if got := entityDigest(t, n); got != entities {
					t.Errorf("the refused request changed users, credentials or tokens")
				}
				if got := f.auditCount(t, tc.want); got != audited+1 {
					t.Errorf("audit entries with status %d: %d, want %d", tc.want, got, audited+1)
				}
			})
		}

		// Whatever was tried, the victim is unchanged but for the one legitimate rename.
		sa, err := f.admin.GetServiceAccount(t.Context(), f.victim.userID)
		if err != nil {
			t.Fatal(err)
		}
		if sa.UserInfo.Name != "first" || !sa.UserInfo.IsActive {
			t.Errorf("victim is %+v, want active and named \"first\"", sa.UserInfo)
		}
	})
}

// do sends a prepared request.
func do(t testing.TB, req *http.Request) (int, []byte) {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, b
}

// TestFastAuthRefused checks that a Fast Auth header, which this server does not accept,
// is refused with the answer the TS SDK's own tests expect (dfns-api.md §2.8):
// 403 with details.kind FastAuthDisabled. The header is built as the SDK builds it, with a
// real assertion, so it has a realistic length.
func TestFastAuthRefused(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		n := apptest.Start(t, e, apptest.Options{})
		admin := adminActor(t, n)
		path := "/auth/service-accounts"
		body := mustJSON(t, map[string]string{"name": "fast", "publicKey": newKey(t, "Ed25519").PublicPEM})
		sum := b64u.EncodeToString(sha256Sum(body))
		challenge := b64u.EncodeToString(mustJSON(t, map[string]string{
			"timestamp": "1700000000000", "nonce": b64u.EncodeToString([]byte("0123456789abcdef")), "host": "127.0.0.1",
			"method": "POST", "path": path, "payloadHash": sum, "orgId": n.Env.OrgID,
		}))
		header := b64u.EncodeToString(mustJSON(t, admin.assertion(t, tsLayout(challenge))))

		tests := []struct {
			name   string
			header string
		}{
			{"fail/fast-auth-realistic", header},
			{"fail/fast-auth-minimal", b64u.EncodeToString([]byte(`{"kind":"Key"}`))},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				before := snapshot(t, n)
				code, resp := admin.raw(t, http.MethodPost, path, body, tc.header)
				checkStatus(t, tc.name, code, resp, http.StatusForbidden)
				var e struct {
					Error struct {
						Details struct {
							Kind string `json:"kind"`
						} `json:"details"`
					} `json:"error"`
				}
				json.Unmarshal(resp, &e)
				if e.Error.Details.Kind != "FastAuthDisabled" {
					t.Errorf("header of %d bytes: error.details.kind = %q, want FastAuthDisabled; body %s", len(tc.header), e.Error.Details.Kind, resp)
				}
				if snapshot(t, n) != before {
					t.Errorf("the refused request changed the database")
				}
			})
		}
	})
}

// TestUserActionSingleUseUnderConcurrency races many copies of one user action token, and
// of one signed challenge, against each other: exactly one may win.
func TestUserActionSingleUseUnderConcurrency(t *testing.T) {
	const racers = 12
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		n := apptest.Start(t, e, apptest.Options{})
		admin := adminActor(t, n)
		victim := newSA(t, n, admin, "Ed25519", "victim")
		path, body := "/auth/service-accounts/"+victim.userID, []byte(`{"name":"raced"}`)

		race := func(send func() (int, error)) map[int]int {
			codes := map[int]int{}
			var mu sync.Mutex
			var wg sync.WaitGroup
			start := make(chan struct{})
			for range racers {
				wg.Go(func() {
					<-start
					code, err := send()
					if err != nil {
						code = -1
					}
					mu.Lock()
					codes[code]++
					mu.Unlock()
				})
			}
			close(start)
			wg.Wait()
			return codes
		}

		t.Run("fail/token-raced", func(t *testing.T) {
			tok := admin.uaToken(t, http.MethodPut, path, body)
			codes := race(func() (int, error) {
				code, _, err := admin.Raw(t.Context(), http.MethodPut, path, body, tok)
				return code, err
			})
			if codes[200] != 1 || codes[400] != racers-1 {
				t.Fatalf("statuses %v, want one 200 and %d times 400", codes, racers-1)
			}
			if es := auditLog(t, admin, "userId="+admin.userID); len(es) != 2 { // victim creation + the winner
				t.Fatalf("audit entries: %d, want 2", len(es))
			}
		})
		t.Run("fail/challenge-raced", func(t *testing.T) {
			ch := admin.newChallenge(t, http.MethodPut, path, body)
			req := actionBody(t, ch.ChallengeIdentifier, admin.assertion(t, tsLayout(ch.Challenge)))
			codes := race(func() (int, error) {
				code, _, err := admin.Raw(t.Context(), http.MethodPost, "/auth/action", req, "")
				return code, err
			})
			if codes[200] != 1 || codes[401] != racers-1 {
				t.Fatalf("statuses %v, want one 200 and %d times 401", codes, racers-1)
			}
		})
	})
}

func sha256Sum(b []byte) []byte {
	h := sha256.Sum256(b)
	return h[:]
}
