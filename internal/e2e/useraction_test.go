package e2e

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"

	secpecdsa "github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"

	"github.com/countersign/countersign/client"
	"github.com/countersign/countersign/internal/app/apptest"
	"github.com/countersign/countersign/internal/store"
	"github.com/countersign/countersign/internal/testutil"
)

// This file tests User Action Signing as the SDKs perform it (dfns-api.md §2) and holds the
// helpers the other end-to-end tests of this package share: actors (a token with the key
// that signs for it), hand-built assertions, raw calls and database digests.

// actor is a bearer token together with the key credential that signs its user actions.
type actor struct {
	*client.Client
	key      testKey
	credID   string
	credUUID string
	userID   string
	tokenID  string
}

// adminActor is the node's bootstrap admin service account.
func adminActor(t testing.TB, n *apptest.Node) actor {
	t.Helper()
	pemBytes, err := os.ReadFile(n.Env.PrivateKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	s, err := client.ParsePrivateKeyPEM(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(s.Public())
	if err != nil {
		t.Fatal(err)
	}
	k := testKey{Alg: "Ed25519", signer: s, PublicPEM: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))}
	app := jwtAppMetadata(t, n.Admin.Token)
	return actor{Client: n.Admin, key: k, credID: n.Env.CredID, userID: app["userId"], tokenID: app["tokenId"]}
}

// newSA has creator create a service account with a fresh key of alg.
func newSA(t testing.TB, n *apptest.Node, creator actor, alg, name string) actor {
	t.Helper()
	k := newKey(t, alg)
	sa, err := creator.CreateServiceAccount(t.Context(), client.CreateTokenRequest{Name: name, PublicKey: k.PublicPEM})
	if err != nil {
		t.Fatalf("create service account %s (%s): %v", name, alg, err)
	}
	if len(sa.AccessTokens) != 1 || sa.AccessTokens[0].AccessToken == "" {
		t.Fatalf("service account %s has no token: %+v", name, sa)
	}
	tok := sa.AccessTokens[0]
	return actor{
		Client: client.New(n.URL, tok.AccessToken, k.Signer(t, tok.CredID)), key: k, credID: tok.CredID,
		credUUID: sa.UserInfo.CredentialUUID, userID: sa.UserInfo.UserID, tokenID: tok.TokenID,
	}
}

// newPAT has owner create a personal access token with a fresh key of alg.
func newPAT(t testing.TB, n *apptest.Node, owner actor, alg string, r client.CreateTokenRequest) actor {
	t.Helper()
	k := newKey(t, alg)
	r.PublicKey = k.PublicPEM
	if r.Name == "" {
		r.Name = "pat-" + alg
	}
	p, err := owner.CreatePAT(t.Context(), r)
	if err != nil {
		t.Fatalf("create PAT (%s): %v", alg, err)
	}
	if p.AccessToken == "" {
		t.Fatalf("PAT has no token: %+v", p)
	}
	return actor{
		Client: client.New(n.URL, p.AccessToken, k.Signer(t, p.CredID)), key: k, credID: p.CredID,
		userID: p.LinkedUserID, tokenID: p.TokenID,
	}
}

// sign signs msg the way the SDK key signers do (dfns-api.md §2.4.1).
func (k testKey) sign(t testing.TB, msg []byte) []byte {
	t.Helper()
	h := sha256.Sum256(msg)
	if k.k1 != nil {
		return secpecdsa.Sign(k.k1, h[:]).Serialize()
	}
	var sig []byte
	var err error
	switch s := k.signer.(type) {
	case ed25519.PrivateKey:
		sig = ed25519.Sign(s, msg)
	case *ecdsa.PrivateKey:
		sig, err = ecdsa.SignASN1(rand.Reader, s, h[:])
	case *rsa.PrivateKey:
		sig, err = rsa.SignPKCS1v15(rand.Reader, s, crypto.SHA256, h[:])
	default:
		t.Fatalf("cannot sign with %T", k.signer)
	}
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// verify checks sig over msg with the public half of k, independently of the server.
func (k testKey) verify(msg, sig []byte) bool {
	h := sha256.Sum256(msg)
	if k.k1 != nil {
		s, err := secpecdsa.ParseDERSignature(sig)
		return err == nil && s.Verify(h[:], k.k1.PubKey())
	}
	switch p := k.signer.Public().(type) {
	case ed25519.PublicKey:
		return ed25519.Verify(p, msg, sig)
	case *ecdsa.PublicKey:
		return ecdsa.VerifyASN1(p, h[:], sig)
	case *rsa.PublicKey:
		return rsa.VerifyPKCS1v15(p, crypto.SHA256, h[:], sig) == nil
	}
	return false
}

// cdLayout builds clientData bytes for a challenge.
type cdLayout func(challenge string) []byte

// The clientData layouts the official SDKs produce (dfns-api.md §2.4.1).
var (
	tsLayout = func(c string) []byte { return []byte(`{"type":"key.get","challenge":"` + c + `"}`) }
	goLayout = func(c string) []byte { return []byte(`{"challenge":"` + c + `","crossOrigin":false,"type":"key.get"}`) }
	pyLayout = func(c string) []byte {
		return []byte(`{"type":"key.get","challenge":"` + c + `","origin":"https://app.example.co","crossOrigin":false}`)
	}
)

var b64u = base64.RawURLEncoding

// assertion signs cd with the actor's key.
func (a actor) assertion(t testing.TB, cd []byte) *client.Assertion {
	return &client.Assertion{Kind: "Key", CredentialAssertion: client.CredentialAssertion{
		CredID: a.credID, ClientData: b64u.EncodeToString(cd), Signature: b64u.EncodeToString(a.key.sign(t, cd)),
	}}
}

// newChallenge asks for a challenge bound to a request, failing the test on error.
func (a actor) newChallenge(t testing.TB, method, path string, payload []byte) *client.Challenge {
	t.Helper()
	ch, err := a.InitUserAction(t.Context(), method, path, payload)
	if err != nil {
		t.Fatalf("init %s %s: %v", method, path, err)
	}
	return ch
}

// complete signs the challenge with layout and trades it for a user action token.
func (a actor) complete(t testing.TB, ch *client.Challenge, layout cdLayout) string {
	t.Helper()
	tok, err := a.CompleteUserAction(t.Context(), ch.ChallengeIdentifier, a.assertion(t, layout(ch.Challenge)))
	if err != nil {
		t.Fatalf("complete user action: %v", err)
	}
	return tok
}

// uaToken runs the whole flow (TS layout) for method, path and payload.
func (a actor) uaToken(t testing.TB, method, path string, payload []byte) string {
	t.Helper()
	return a.complete(t, a.newChallenge(t, method, path, payload), tsLayout)
}

// raw sends one request as is.
func (a actor) raw(t testing.TB, method, path string, body []byte, ua string) (int, []byte) {
	t.Helper()
	code, b, err := a.Raw(t.Context(), method, path, body, ua)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return code, b
}

// signed sends a request with a user action signed for exactly that request.
func (a actor) signed(t testing.TB, method, path string, body []byte) (int, []byte) {
	t.Helper()
	return a.raw(t, method, path, body, a.uaToken(t, method, path, body))
}

// mustJSON marshals v.
func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// decodeJSON unmarshals a response body.
func decodeJSON(t testing.TB, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("response is not the expected JSON: %v\n%s", err, b)
	}
}

// checkStatus fails unless code is want; error answers must carry the Dfns error shape
// (a JSON body with error.message and error.status, dfns-api.md §6.1).
func checkStatus(t testing.TB, what string, code int, body []byte, want int) {
	t.Helper()
	if code != want {
		t.Fatalf("%s: status %d, want %d; body %s", what, code, want, body)
	}
	if want < 400 {
		return
	}
	var e struct {
		Error struct {
			Status  int    `json:"status"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Error.Message == "" || e.Error.Status != code {
		t.Fatalf("%s: error body is not {\"error\":{\"status\":%d,\"message\":…}}: %s", what, code, body)
	}
}

// errorMessage returns error.message of an error body.
func errorMessage(body []byte) string {
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	json.Unmarshal(body, &e)
	return e.Error.Message
}

// jwtPayload decodes the payload of a JWT without verifying it (as the TS SDK does, §1.4).
func jwtPayload(t testing.TB, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token is not a JWT: %q", token)
	}
	raw, err := b64u.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("JWT payload is not base64url: %v", err)
	}
	var m map[string]any
	decodeJSON(t, raw, &m)
	return m
}

// jwtAppMetadata returns the https://custom/app_metadata claim as strings.
func jwtAppMetadata(t testing.TB, token string) map[string]string {
	t.Helper()
	m, ok := jwtPayload(t, token)["https://custom/app_metadata"].(map[string]any)
	if !ok {
		t.Fatalf("JWT has no https://custom/app_metadata object")
	}
	out := map[string]string{}
	for k, v := range m {
		s, ok := v.(string)
		if !ok {
			t.Fatalf("app_metadata.%s is %T, want string", k, v)
		}
		out[k] = s
	}
	return out
}

// snapshot digests every row of the node's database but the chain indexer's, which its
// background job writes whenever blocks come (a faucet call minutes before, say).
func snapshot(t testing.TB, n *apptest.Node) string { return snapshotExcept(t, n) }

// snapshotExcept is snapshot without the named tables too.
func snapshotExcept(t testing.TB, n *apptest.Node, skip ...string) string {
	t.Helper()
	skip = append(skip, "chain_cursors", "wallet_history")
	return tablesDigest(t, n, slices.DeleteFunc(store.SnapshotTables(), func(s string) bool { return slices.Contains(skip, s) })...)
}

// entityTables are the tables that a request refused by its handler must leave alone; the
// user action it consumed and its audit entry are recorded on purpose.
var entityTables = []string{"orgs", "bootstrap", "users", "credentials", "access_tokens", "server_keys"}

// entityDigest digests every row of entityTables.
func entityDigest(t testing.TB, n *apptest.Node) string { return tablesDigest(t, n, entityTables...) }

// tablesDigest digests every row of the named tables.
func tablesDigest(t testing.TB, n *apptest.Node, tables ...string) string {
	t.Helper()
	s, err := n.App.DB.SnapshotOf(t.Context(), tables...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// auditEntry is an entry of GET /auth/action/logs.
type auditEntry struct {
	ID                    string `json:"id"`
	ActionToken           string `json:"actionToken"`
	UserID                string `json:"userId"`
	TokenID               string `json:"tokenId"`
	DatePerformed         string `json:"datePerformed"`
	DateFinished          string `json:"dateFinished"`
	Method                string `json:"method"`
	Path                  string `json:"path"`
	BodySha256            string `json:"bodySha256"`
	Status                int    `json:"status"`
	FirstFactorCredential struct {
		Kind           string `json:"kind"`
		CredentialUUID string `json:"credentialUuid"`
		CredentialID   string `json:"credentialId"`
		ClientData     string `json:"clientData"`
		Signature      string `json:"signature"`
	} `json:"firstFactorCredential"`
}

type auditPage struct {
	Items         []auditEntry `json:"items"`
	NextPageToken *string      `json:"nextPageToken"`
}

// auditLog reads every page of GET /auth/action/logs?query as reader.
func auditLog(t testing.TB, reader actor, query string) []auditEntry {
	t.Helper()
	var all []auditEntry
	token := ""
	for range 100 {
		q := query
		if token != "" {
			q += "&paginationToken=" + token
		}
		code, body := reader.raw(t, http.MethodGet, "/auth/action/logs?"+q, nil, "")
		checkStatus(t, "GET /auth/action/logs", code, body, http.StatusOK)
		var p auditPage
		decodeJSON(t, body, &p)
		all = append(all, p.Items...)
		if p.NextPageToken == nil {
			return all
		}
		token = *p.NextPageToken
	}
	t.Fatal("audit log pagination does not end")
	return nil
}

// TestUserActionEveryAlgorithm drives the whole flow with each key algorithm the SDKs use,
// with every clientData layout they produce, and then re-verifies the audit log.
func TestUserActionEveryAlgorithm(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		n := apptest.Start(t, e, apptest.Options{})
		admin := adminActor(t, n)
		victim := newSA(t, n, admin, "Ed25519", "victim")
		victimPath := "/auth/service-accounts/" + victim.userID

		for _, alg := range keyAlgs {
			t.Run(alg, func(t *testing.T) {
				sa := newSA(t, n, admin, alg, "sa-"+alg)
				keys := map[string]testKey{sa.credID: sa.key}
				sent := map[string]bool{} // clientData we built, as the audit log must return them

				// As the SDK does it: the client's own signer (TS layout) creates a PAT.
				pat := newPAT(t, n, sa, alg, client.CreateTokenRequest{Name: "pat"})
				keys[pat.credID] = pat.key
				requests := 1

				// The PAT signs for itself with its own key.
				body := []byte(`{"name":"pat renamed"}`)
				ch := pat.newChallenge(t, http.MethodPut, "/auth/pats/"+pat.tokenID, body)
				if len(ch.AllowCredentials.Key) != 1 || ch.AllowCredentials.Key[0].ID != pat.credID {
					t.Fatalf("PAT challenge allows %+v, want only its own credential %s", ch.AllowCredentials.Key, pat.credID)
				}
				cd := tsLayout(ch.Challenge)
				sent[b64u.EncodeToString(cd)] = true
				tok, err := pat.CompleteUserAction(t.Context(), ch.ChallengeIdentifier, pat.assertion(t, cd))
				if err != nil {
					t.Fatal(err)
				}
				code, resp := pat.raw(t, http.MethodPut, "/auth/pats/"+pat.tokenID, body, tok)
				checkStatus(t, "PAT renames itself", code, resp, http.StatusOK)
				requests++

				tests := []struct {
					name   string
					layout cdLayout
					enc    *base64.Encoding
				}{
					{"pass/ts-layout", tsLayout, base64.RawURLEncoding},
					{"pass/go-layout", goLayout, base64.RawURLEncoding},
					{"pass/python-layout", pyLayout, base64.RawURLEncoding},
					{"pass/padded-base64url", tsLayout, base64.URLEncoding},
					{"pass/padded-std-base64", goLayout, base64.StdEncoding},
				}
				for _, tc := range tests {
					t.Run(tc.name, func(t *testing.T) {
						name := alg + " " + tc.name
						body := mustJSON(t, map[string]string{"name": name})
						ch := sa.newChallenge(t, http.MethodPut, victimPath, body)
						cd := tc.layout(ch.Challenge)
						sig := sa.key.sign(t, cd)
						a := &client.Assertion{Kind: "Key", CredentialAssertion: client.CredentialAssertion{
							CredID: sa.credID, ClientData: tc.enc.EncodeToString(cd), Signature: tc.enc.EncodeToString(sig),
						}}
						tok, err := sa.CompleteUserAction(t.Context(), ch.ChallengeIdentifier, a)
						if err != nil {
							t.Fatalf("complete: %v (clientData %s)", err, cd)
						}
						sent[b64u.EncodeToString(cd)] = true
						requests++
						code, resp := sa.raw(t, http.MethodPut, victimPath, body, tok)
						checkStatus(t, "update with "+tc.name, code, resp, http.StatusOK)
						var got client.ServiceAccount
						decodeJSON(t, resp, &got)
						if got.UserInfo.Name != name {
							t.Fatalf("name is %q, want %q", got.UserInfo.Name, name)
						}
					})
				}

				// One audit entry per signed request, each finished with 200, each
				// assertion verifiable by anyone holding the credential's public key.
				entries := auditLog(t, admin, "userId="+sa.userID)
				if len(entries) != requests {
					t.Fatalf("audit log has %d entries for %s, want %d", len(entries), sa.userID, requests)
				}
				for _, en := range entries {
					if en.Status != http.StatusOK || en.UserID != sa.userID || en.DateFinished == "" {
						t.Errorf("entry %s: status %d user %s finished %q, want 200 %s set", en.ID, en.Status, en.UserID, en.DateFinished, sa.userID)
					}
					k, ok := keys[en.FirstFactorCredential.CredentialID]
					if !ok || en.FirstFactorCredential.Kind != "Key" || en.FirstFactorCredential.CredentialUUID == "" {
						t.Errorf("entry %s: credential %+v is not one of the user's", en.ID, en.FirstFactorCredential)
						continue
					}
					cd, err1 := b64u.DecodeString(en.FirstFactorCredential.ClientData)
					sig, err2 := b64u.DecodeString(en.FirstFactorCredential.Signature)
					if err1 != nil || err2 != nil {
						t.Errorf("entry %s: clientData/signature not base64url: %v %v", en.ID, err1, err2)
						continue
					}
					if !k.verify(cd, sig) {
						t.Errorf("entry %s: signature does not verify over clientData %s", en.ID, cd)
					}
					if en.Path != "/auth/pats" && !sent[en.FirstFactorCredential.ClientData] {
						t.Errorf("entry %s: clientData %s is not the bytes that were signed", en.ID, cd)
					}
				}
			})
		}
	})
}

// TestUserActionChallengeShape checks the init answer field by field (dfns-api.md §2.2, §2.3).
func TestUserActionChallengeShape(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		n := apptest.Start(t, e, apptest.Options{})
		admin := adminActor(t, n)
		req := []byte(`{"userActionPayload":"{\"name\":\"x\"}","userActionHttpMethod":"POST","userActionHttpPath":"/auth/service-accounts","userActionServerKind":"Api"}`)
		code, body := admin.raw(t, http.MethodPost, "/auth/action/init", req, "")
		checkStatus(t, "init", code, body, http.StatusOK)
		var m map[string]any
		decodeJSON(t, body, &m)

		c, _ := m["challenge"].(string)
		if raw, err := b64u.DecodeString(c); err != nil || len(raw) < 16 || b64u.EncodeToString(raw) != c {
			t.Errorf("challenge %q is not canonical unpadded base64url of at least 16 bytes", c)
		}
		if id, _ := m["challengeIdentifier"].(string); id == "" {
			t.Errorf("challengeIdentifier missing: %s", body)
		}
		if s, ok := m["externalAuthenticationUrl"].(string); !ok || s != "" {
			t.Errorf("externalAuthenticationUrl = %#v, want \"\"", m["externalAuthenticationUrl"])
		}
		if v, _ := m["userVerification"].(string); v == "" {
			t.Errorf("userVerification missing")
		}
		rp, ok := m["rp"].(map[string]any)
		if !ok || rp["id"] != "localhost" || rp["name"] == nil {
			t.Errorf("rp = %#v, want {id: localhost, name}", m["rp"])
		}
		allow, ok := m["allowCredentials"].(map[string]any)
		if !ok {
			t.Fatalf("allowCredentials missing: %s", body)
		}
		for _, k := range []string{"key", "webauthn", "passwordProtectedKey"} {
			if _, ok := allow[k].([]any); !ok {
				t.Errorf("allowCredentials.%s = %#v, want an array", k, allow[k])
			}
		}
		keys, _ := allow["key"].([]any)
		if len(keys) != 1 {
			t.Fatalf("allowCredentials.key = %#v, want the admin's one credential", allow["key"])
		}
		if k0, _ := keys[0].(map[string]any); k0["id"] != admin.credID || k0["type"] != "public-key" {
			t.Errorf("allowCredentials.key[0] = %#v, want {type: public-key, id: %s}", keys[0], admin.credID)
		}
		kinds, _ := m["supportedCredentialKinds"].([]any)
		found := false
		for _, k := range kinds {
			if km, _ := k.(map[string]any); km["kind"] == "Key" && km["factor"] != nil {
				found = true
			}
		}
		if !found {
			t.Errorf("supportedCredentialKinds = %#v, want an entry of kind Key", m["supportedCredentialKinds"])
		}
	})
}

// TestUserActionSDKStyles checks that the path and body conventions of both SDKs are
// accepted (dfns-api.md §2.6): the Go SDK signs the query and sends no body (payload ""),
// the TS SDK signs the pathname only and sends and signs {}.
func TestUserActionSDKStyles(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		n := apptest.Start(t, e, apptest.Options{})
		admin := adminActor(t, n)
		a := newSA(t, n, admin, "P-256", "a")
		b := newSA(t, n, admin, "Ed25519", "b")
		c := newSA(t, n, admin, "Ed25519", "c")

		tests := []struct {
			name       string
			method     string
			path       string // request-target sent
			signedPath string
			payload    string // signed
			body       []byte // sent; nil = no body
			check      func(t *testing.T)
		}{
			{
				name: "pass/go-delete-force-signed-with-query", method: http.MethodDelete,
				path: "/auth/service-accounts/" + a.userID + "?force=true", signedPath: "/auth/service-accounts/" + a.userID + "?force=true",
				payload: "", body: nil,
				check: func(t *testing.T) { expectGone(t, admin, a.userID) },
			},
			{
				name: "pass/ts-delete-force-signed-without-query", method: http.MethodDelete,
				path: "/auth/service-accounts/" + b.userID + "?force=true", signedPath: "/auth/service-accounts/" + b.userID,
				payload: "{}", body: []byte("{}"),
				check: func(t *testing.T) { expectGone(t, admin, b.userID) },
			},
			{
				name: "pass/ts-deactivate-empty-object", method: http.MethodPut,
				path: "/auth/service-accounts/" + c.userID + "/deactivate", signedPath: "/auth/service-accounts/" + c.userID + "/deactivate",
				payload: "{}", body: []byte("{}"),
				check: func(t *testing.T) {
					if _, err := c.ListServiceAccounts(t.Context()); status(err) != http.StatusUnauthorized {
						t.Fatalf("deactivated service account's token: %v, want 401", err)
					}
				},
			},
			{
				name: "pass/go-activate-no-body", method: http.MethodPut,
				path: "/auth/service-accounts/" + c.userID + "/activate", signedPath: "/auth/service-accounts/" + c.userID + "/activate",
				payload: "", body: nil,
				check: func(t *testing.T) {
					if _, err := c.ListServiceAccounts(t.Context()); err != nil {
						t.Fatalf("reactivated service account's token: %v", err)
					}
				},
			},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				tok := admin.complete(t, admin.newChallenge(t, tc.method, tc.signedPath, []byte(tc.payload)), tsLayout)
				code, body := admin.raw(t, tc.method, tc.path, tc.body, tok)
				checkStatus(t, tc.method+" "+tc.path, code, body, http.StatusOK)
				var m map[string]any
				decodeJSON(t, body, &m) // every success has a JSON body (§0.1 rule 13)
				tc.check(t)
			})
		}
	})
}

// expectGone fails unless the service account is missing from the list.
func expectGone(t testing.TB, reader actor, userID string) {
	t.Helper()
	list, err := reader.ListServiceAccounts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, sa := range list {
		if sa.UserInfo.UserID == userID {
			t.Fatalf("archived service account %s is still listed", userID)
		}
	}
}
