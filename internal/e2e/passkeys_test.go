package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/descope/virtualwebauthn"

	"github.com/countersign/countersign/client"
	"github.com/countersign/countersign/internal/app/apptest"
	"github.com/countersign/countersign/internal/notify"
	"github.com/countersign/countersign/internal/testutil"
)

// This file drives registration, login, user-action signing and recovery of people over
// real HTTP, with a virtual WebAuthn authenticator (descope/virtualwebauthn) standing in
// for the browser, and Key credentials signed like the SDK key signers.

// captured is a notifier fake: the edge we do not own is the mail server. It does not
// deliver, so the registration code also comes back to the admin.
type captured struct {
	mu   sync.Mutex
	msgs []notify.Message
}

func (c *captured) Send(_ context.Context, m notify.Message) error {
	c.mu.Lock()
	c.msgs = append(c.msgs, m)
	c.mu.Unlock()
	return nil
}

func (c *captured) Delivers() bool { return false }

// lastCode returns the code in the last message sent to to.
func (c *captured) lastCode(t testing.TB, to string) string {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(c.msgs) - 1; i >= 0; i-- {
		if c.msgs[i].To == to {
			f := strings.Fields(c.msgs[i].Body)
			for _, w := range f {
				w = strings.TrimSuffix(w, ".")
				if len(w) == 11 && w[3] == '-' && w[7] == '-' {
					return w
				}
			}
		}
	}
	t.Fatalf("no code was sent to %s", to)
	return ""
}

// call sends a request with an optional bearer token and no user action.
func call(t testing.TB, n *apptest.Node, method, path, bearer string, body any) (int, []byte) {
	t.Helper()
	var raw []byte
	switch b := body.(type) {
	case nil:
	case []byte:
		raw = b
	default:
		raw = mustJSON(t, b)
	}
	code, out, err := client.New(n.URL, bearer, nil).Raw(t.Context(), method, path, raw, "")
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return code, out
}

// regChallenge is the part of a registration or credential challenge the tests read.
type regChallenge struct {
	Kind                         string `json:"kind"`
	Challenge                    string `json:"challenge"`
	TemporaryAuthenticationToken string `json:"temporaryAuthenticationToken"`
	ChallengeIdentifier          string `json:"challengeIdentifier"`
	User                         struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"user"`
	RP struct {
		ID string `json:"id"`
	} `json:"rp"`
	PubKeyCredParams []struct {
		Alg int `json:"alg"`
	} `json:"pubKeyCredParams"`
	ExcludeCredentials []client.CredentialRef `json:"excludeCredentials"`
	AllowedRecovery    []struct {
		ID string `json:"id"`
	} `json:"allowedRecoveryCredentials"`
}

// loginChallenge is the login/init (and action/init) answer.
type loginChallenge struct {
	Challenge           string `json:"challenge"`
	ChallengeIdentifier string `json:"challengeIdentifier"`
	AllowCredentials    struct {
		Key      []client.CredentialRef `json:"key"`
		WebAuthn []client.CredentialRef `json:"webauthn"`
	} `json:"allowCredentials"`
}

// passkey is a virtual authenticator holding one credential.
type passkey struct {
	rp   virtualwebauthn.RelyingParty
	auth virtualwebauthn.Authenticator
	cred virtualwebauthn.Credential
}

func newPasskey(n *apptest.Node, userID string) *passkey {
	port := n.URL[strings.LastIndex(n.URL, ":")+1:]
	return &passkey{
		rp:   virtualwebauthn.RelyingParty{ID: "localhost", Name: "countersign", Origin: "http://localhost:" + port},
		auth: virtualwebauthn.NewAuthenticatorWithOptions(virtualwebauthn.AuthenticatorOptions{UserHandle: []byte(userID)}),
		cred: newVirtualCredential(),
	}
}

// newVirtualCredential makes a P-256 credential whose coordinates are 32 bytes long:
// virtualwebauthn writes big.Int.Bytes() into the COSE key, so about one key in 64 would
// come out with a short coordinate, which COSE (RFC 9053 §7.1.1) and go-webauthn refuse.
func newVirtualCredential() virtualwebauthn.Credential {
	for {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		if len(k.X.Bytes()) != 32 || len(k.Y.Bytes()) != 32 {
			continue
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			panic(err)
		}
		return virtualwebauthn.NewCredentialWithImportedKey(virtualwebauthn.KeyTypeEC2, der)
	}
}

func (p *passkey) credID() string { return b64u.EncodeToString(p.cred.ID) }

// challengeBytes gives the authenticator the bytes the browser SDK (UTF-8 of the string)
// or a native client (the base64url-decoded string) would (dfns-api.md §2.4.3).
func challengeBytes(t testing.TB, c string, native bool) []byte {
	if !native {
		return []byte(c)
	}
	b, err := b64u.DecodeString(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// attest creates the credential for challenge and returns the Dfns new-credential object.
func (p *passkey) attest(t testing.TB, challenge string, native bool) map[string]any {
	t.Helper()
	res := virtualwebauthn.CreateAttestationResponse(p.rp, p.auth, p.cred, virtualwebauthn.AttestationOptions{
		Challenge: challengeBytes(t, challenge, native), RelyingPartyID: p.rp.ID})
	var r struct {
		ID       string `json:"id"`
		Response struct {
			AttestationObject string `json:"attestationObject"`
			ClientDataJSON    string `json:"clientDataJSON"`
		} `json:"response"`
	}
	decodeJSON(t, []byte(res), &r)
	return map[string]any{"credentialKind": "Fido2", "credentialName": "passkey", "credentialInfo": map[string]string{
		"credId": r.ID, "clientData": r.Response.ClientDataJSON, "attestationData": r.Response.AttestationObject}}
}

// assert signs challenge with the next counter value and returns a Fido2 first factor.
func (p *passkey) assert(t testing.TB, challenge string, native bool) map[string]any {
	t.Helper()
	p.cred.Counter++
	res := virtualwebauthn.CreateAssertionResponse(p.rp, p.auth, p.cred, virtualwebauthn.AssertionOptions{
		Challenge: challengeBytes(t, challenge, native), RelyingPartyID: p.rp.ID})
	var r struct {
		ID       string `json:"id"`
		Response struct {
			AuthenticatorData string `json:"authenticatorData"`
			ClientDataJSON    string `json:"clientDataJSON"`
			Signature         string `json:"signature"`
			UserHandle        string `json:"userHandle"`
		} `json:"response"`
	}
	decodeJSON(t, []byte(res), &r)
	return map[string]any{"kind": "Fido2", "credentialAssertion": map[string]string{
		"credId": r.ID, "clientData": r.Response.ClientDataJSON, "authenticatorData": r.Response.AuthenticatorData,
		"signature": r.Response.Signature, "userHandle": r.Response.UserHandle}}
}

// keyAttest makes the new-credential object of a Key-style credential (Key, RecoveryKey;
// dfns-api.md §3.1.2) for challenge.
func keyAttest(t testing.TB, k testKey, kind, credID, challenge string) map[string]any {
	t.Helper()
	cd := []byte(`{"type":"key.create","challenge":"` + challenge + `"}`)
	h := sha256.Sum256(cd)
	pemJSON, _ := json.Marshal(k.PublicPEM)
	fp := []byte(`{"clientDataHash":"` + hex.EncodeToString(h[:]) + `","publicKey":` + string(pemJSON) + `}`)
	att := mustJSON(t, map[string]string{"publicKey": k.PublicPEM, "signature": hex.EncodeToString(k.sign(t, fp))})
	out := map[string]any{"credentialKind": kind, "credentialName": strings.ToLower(kind), "credentialInfo": map[string]string{
		"credId": credID, "clientData": b64u.EncodeToString(cd), "attestationData": b64u.EncodeToString(att)}}
	if kind == "RecoveryKey" {
		out["encryptedPrivateKey"] = "opaque-encrypted-key"
	}
	return out
}

// keyFactor signs a key.get clientData for challenge.
func keyFactor(t testing.TB, k testKey, credID, challenge string) map[string]any {
	cd := tsLayout(challenge)
	return map[string]any{"kind": "Key", "credentialAssertion": map[string]string{
		"credId": credID, "clientData": b64u.EncodeToString(cd), "signature": b64u.EncodeToString(k.sign(t, cd))}}
}

// person is a registered user with a login session.
type person struct {
	n      *apptest.Node
	email  string
	userID string
	orgID  string
	pk     *passkey
	token  string
}

// newPerson has the admin create a CustomerEmployee and returns the registration code.
func newPerson(t testing.TB, n *apptest.Node, admin actor, email, kind string) (string, string) {
	t.Helper()
	code, body := admin.signed(t, "POST", "/auth/users", mustJSON(t, map[string]string{"email": email, "kind": kind}))
	checkStatus(t, "create user", code, body, 200)
	var u struct {
		UserID           string `json:"userId"`
		RegistrationCode string `json:"registrationCode"`
		IsRegistered     bool   `json:"isRegistered"`
	}
	decodeJSON(t, body, &u)
	if u.RegistrationCode == "" || u.IsRegistered {
		t.Fatalf("new user: %s", body)
	}
	return u.UserID, u.RegistrationCode
}

// registrationInit starts a registration.
func registrationInit(t testing.TB, n *apptest.Node, orgID, email, code string) regChallenge {
	t.Helper()
	st, body := call(t, n, "POST", "/auth/registration/init", "", map[string]string{"orgId": orgID, "username": email, "registrationCode": code})
	checkStatus(t, "registration init", st, body, 200)
	var ch regChallenge
	decodeJSON(t, body, &ch)
	return ch
}

// registerPasskeyPerson creates, registers (Fido2, browser challenge form) and logs in a person.
func registerPasskeyPerson(t testing.TB, n *apptest.Node, admin actor, email string) *person {
	t.Helper()
	orgID := jwtAppMetadata(t, admin.Token)["orgId"]
	userID, code := newPerson(t, n, admin, email, "CustomerEmployee")
	p := &person{n: n, email: email, userID: userID, orgID: orgID, pk: newPasskey(n, userID)}
	ch := registrationInit(t, n, orgID, email, code)
	st, body := call(t, n, "POST", "/auth/registration", ch.TemporaryAuthenticationToken,
		map[string]any{"firstFactorCredential": p.pk.attest(t, ch.Challenge, false)})
	checkStatus(t, "register", st, body, 200)
	p.token = p.login(t, false)
	return p
}

// loginInit starts a login.
func (p *person) loginInit(t testing.TB) loginChallenge {
	t.Helper()
	st, body := call(t, p.n, "POST", "/auth/login/init", "", map[string]string{"username": p.email, "orgId": p.orgID})
	checkStatus(t, "login init", st, body, 200)
	var ch loginChallenge
	decodeJSON(t, body, &ch)
	return ch
}

// login logs in with the passkey and returns the token.
func (p *person) login(t testing.TB, native bool) string {
	t.Helper()
	ch := p.loginInit(t)
	st, body := call(t, p.n, "POST", "/auth/login", "", map[string]any{"challengeIdentifier": ch.ChallengeIdentifier,
		"firstFactor": p.pk.assert(t, ch.Challenge, native)})
	checkStatus(t, "login", st, body, 200)
	var out struct {
		Token string `json:"token"`
	}
	decodeJSON(t, body, &out)
	return out.Token
}

// actionInit asks for a user action challenge with the person's token.
func (p *person) actionInit(t testing.TB, method, path string, payload []byte) loginChallenge {
	t.Helper()
	st, body := call(t, p.n, "POST", "/auth/action/init", p.token, map[string]string{"userActionPayload": string(payload),
		"userActionHttpMethod": method, "userActionHttpPath": path, "userActionServerKind": "Api"})
	checkStatus(t, "action init", st, body, 200)
	var ch loginChallenge
	decodeJSON(t, body, &ch)
	return ch
}

// actionSign posts a first factor for a user action challenge.
func (p *person) actionSign(t testing.TB, chID string, factor map[string]any) (int, []byte) {
	t.Helper()
	return call(t, p.n, "POST", "/auth/action", p.token, map[string]any{"challengeIdentifier": chID, "firstFactor": factor})
}

// signed sends a request user-action-signed with the passkey.
func (p *person) signed(t testing.TB, method, path string, body []byte) (int, []byte) {
	t.Helper()
	ch := p.actionInit(t, method, path, body)
	st, out := p.actionSign(t, ch.ChallengeIdentifier, p.pk.assert(t, ch.Challenge, false))
	checkStatus(t, "action sign", st, out, 200)
	var ua struct {
		UserAction string `json:"userAction"`
	}
	decodeJSON(t, out, &ua)
	code, b, err := client.New(p.n.URL, p.token, nil).Raw(t.Context(), method, path, body, ua.UserAction)
	if err != nil {
		t.Fatal(err)
	}
	return code, b
}

// unchanged runs f and fails if it changed any row.
func unchanged(t *testing.T, n *apptest.Node, what string, f func()) {
	t.Helper()
	before := snapshot(t, n)
	f()
	if after := snapshot(t, n); after != before {
		t.Errorf("%s: a refused call changed the database", what)
	}
}

// TestPasskeyRegistrationAndLogin covers registration and login with a virtual WebAuthn
// authenticator in both challenge encodings, the token it yields, and every refused input.
func TestPasskeyRegistrationAndLogin(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		n := apptest.Start(t, e, apptest.Options{})
		admin := adminActor(t, n)
		orgID := jwtAppMetadata(t, admin.Token)["orgId"]

		// Registration in the native form (clientData.challenge = C itself).
		userID, code := newPerson(t, n, admin, "native@example.co", "CustomerEmployee")
		pk := newPasskey(n, userID)
		ch := registrationInit(t, n, orgID, "native@example.co", code)
		if ch.User.ID != userID || ch.RP.ID != "localhost" || len(ch.PubKeyCredParams) == 0 || ch.ExcludeCredentials == nil {
			t.Fatalf("registration challenge: %+v", ch)
		}
		if app := jwtAppMetadata(t, ch.TemporaryAuthenticationToken); app["userId"] != userID {
			t.Fatalf("temporaryAuthenticationToken is not JWT-shaped with the user: %v", app)
		}
		regBody := map[string]any{"firstFactorCredential": pk.attest(t, ch.Challenge, true)}

		// Bad registrations first: each refused, nothing written.
		badOrigin := *pk
		badOrigin.rp.Origin = "http://evil.example:1"
		badRP := *pk
		badRP.rp.ID = "evil.example"
		noUV := *pk
		noUV.auth.Options.UserNotVerified = true
		other := regChallenge{Challenge: ids32()}
		for _, tc := range []struct {
			name  string
			token string
			body  any
			want  int
		}{
			{"wrong-origin", ch.TemporaryAuthenticationToken, map[string]any{"firstFactorCredential": badOrigin.attest(t, ch.Challenge, true)}, 401},
			{"wrong-rpid", ch.TemporaryAuthenticationToken, map[string]any{"firstFactorCredential": badRP.attest(t, ch.Challenge, true)}, 401},
			{"no-uv", ch.TemporaryAuthenticationToken, map[string]any{"firstFactorCredential": noUV.attest(t, ch.Challenge, true)}, 401},
			{"other-challenge", ch.TemporaryAuthenticationToken, map[string]any{"firstFactorCredential": pk.attest(t, other.Challenge, true)}, 401},
			{"no-token", "", regBody, 401},
			{"bad-token", alter(ch.TemporaryAuthenticationToken), regBody, 401},
			{"missing-factor", ch.TemporaryAuthenticationToken, map[string]any{}, 400},
			{"second-factor", ch.TemporaryAuthenticationToken, map[string]any{"firstFactorCredential": regBody["firstFactorCredential"], "secondFactorCredential": regBody["firstFactorCredential"]}, 400},
		} {
			unchanged(t, n, "register/"+tc.name, func() {
				st, body := call(t, n, "POST", "/auth/registration", tc.token, tc.body)
				checkStatus(t, "register/"+tc.name, st, body, tc.want)
				refusedFor(t, tc.name, body)
			})
		}
		st, body := call(t, n, "POST", "/auth/registration", ch.TemporaryAuthenticationToken, regBody)
		checkStatus(t, "register", st, body, 200)
		var reg struct {
			Credential struct{ UUID, Kind string } `json:"credential"`
			User       struct{ ID, Username, OrgID string }
		}
		decodeJSON(t, body, &reg)
		if reg.Credential.Kind != "Fido2" || !dfnsID("cr").MatchString(reg.Credential.UUID) || reg.User.ID != userID {
			t.Fatalf("registration result: %s", body)
		}
		unchanged(t, n, "register/replay", func() {
			st, body := call(t, n, "POST", "/auth/registration", ch.TemporaryAuthenticationToken, regBody)
			checkStatus(t, "register again", st, body, 401)
		})
		unchanged(t, n, "registration-init/registered", func() {
			st, body := call(t, n, "POST", "/auth/registration/init", "", map[string]string{"orgId": orgID, "username": "native@example.co", "registrationCode": code})
			checkStatus(t, "init after registration", st, body, 401)
		})

		p := &person{n: n, email: "native@example.co", userID: userID, orgID: orgID, pk: pk}
		// Login in both encodings; the token carries the Dfns claims of other tokens.
		for _, native := range []bool{true, false} {
			p.token = p.login(t, native)
		}
		app := jwtAppMetadata(t, p.token)
		if app["orgId"] != orgID || app["userId"] != userID || app["tokenKind"] != "User" || !dfnsID("to").MatchString(app["tokenId"]) {
			t.Fatalf("login token claims: %v", app)
		}
		if u := jwtPayload(t, p.token)["https://custom/username"]; u != "native@example.co" {
			t.Fatalf("username claim %v", u)
		}
		st, body = call(t, n, "GET", "/auth/credentials", p.token, nil)
		checkStatus(t, "list credentials", st, body, 200)
		if !strings.Contains(string(body), pk.credID()) {
			t.Fatalf("credentials list lacks the passkey: %s", body)
		}

		// Refused logins: each on a fresh challenge, none changes anything.
		lc := p.loginInit(t)
		if len(lc.AllowCredentials.WebAuthn) != 1 || lc.AllowCredentials.WebAuthn[0].ID != pk.credID() || lc.AllowCredentials.Key == nil {
			t.Fatalf("login challenge allowCredentials: %+v", lc.AllowCredentials)
		}
		variant := func(mod func(k *passkey)) *passkey {
			k := *pk
			mod(&k)
			return &k
		}
		stranger := newPasskey(n, userID)
		lc2 := p.loginInit(t)
		good := pk.assert(t, lc.Challenge, false)
		regress := variant(func(k *passkey) { k.cred.Counter = 1 }) // signs 2 again: the stored value
		for _, tc := range []struct {
			name   string
			chID   string
			factor map[string]any
			want   int
		}{
			{"wrong-origin", lc.ChallengeIdentifier, variant(func(k *passkey) { k.rp.Origin = "https://localhost:1" }).assert(t, lc.Challenge, false), 401},
			{"wrong-rpid-hash", lc.ChallengeIdentifier, variant(func(k *passkey) { k.rp.ID = "example.co" }).assert(t, lc.Challenge, false), 401},
			{"no-up", lc.ChallengeIdentifier, variant(func(k *passkey) { k.auth.Options.UserNotPresent = true }).assert(t, lc.Challenge, false), 401},
			{"no-uv", lc.ChallengeIdentifier, variant(func(k *passkey) { k.auth.Options.UserNotVerified = true }).assert(t, lc.Challenge, false), 401},
			{"be-flag-changed", lc.ChallengeIdentifier, variant(func(k *passkey) { k.auth.Options.BackupEligible = true }).assert(t, lc.Challenge, false), 401},
			{"counter-regression", lc.ChallengeIdentifier, regress.assert(t, lc.Challenge, false), 401},
			{"other-ceremony-challenge", lc2.ChallengeIdentifier, good, 401},
			{"unknown-credential", lc.ChallengeIdentifier, stranger.assert(t, lc.Challenge, false), 401},
			{"wrong-user-handle", lc.ChallengeIdentifier, variant(func(k *passkey) { k.auth.Options.UserHandle = []byte("us-someone-else") }).assert(t, lc.Challenge, false), 401},
			{"kind-mismatch", lc.ChallengeIdentifier, map[string]any{"kind": "Key", "credentialAssertion": good["credentialAssertion"]}, 400},
			{"unknown-challenge", "nope", good, 401},
		} {
			unchanged(t, n, "login/"+tc.name, func() {
				st, body := call(t, n, "POST", "/auth/login", "", map[string]any{"challengeIdentifier": tc.chID, "firstFactor": tc.factor})
				checkStatus(t, "login/"+tc.name, st, body, tc.want)
				refusedFor(t, tc.name, body)
			})
		}
		// The good assertion works once; replaying it is refused.
		st, body = call(t, n, "POST", "/auth/login", "", map[string]any{"challengeIdentifier": lc.ChallengeIdentifier, "firstFactor": good})
		checkStatus(t, "login with the good assertion", st, body, 200)
		unchanged(t, n, "login/replay", func() {
			st, body := call(t, n, "POST", "/auth/login", "", map[string]any{"challengeIdentifier": lc.ChallengeIdentifier, "firstFactor": good})
			checkStatus(t, "login replay", st, body, 401)
		})

		// Logout ends that session at once; the other session still works.
		var out struct{ Token string }
		decodeJSON(t, body, &out)
		st, body = call(t, n, "PUT", "/auth/logout", out.Token, map[string]any{})
		checkStatus(t, "logout", st, body, 200)
		st, body = call(t, n, "GET", "/auth/credentials", out.Token, nil)
		checkStatus(t, "after logout", st, body, 401)
		st, body = call(t, n, "GET", "/auth/credentials", p.token, nil)
		checkStatus(t, "other session", st, body, 200)
		st, body = call(t, n, "POST", "/auth/logout", p.token, nil)
		checkStatus(t, "logout (POST)", st, body, 200)
		st, body = call(t, n, "GET", "/auth/credentials", p.token, nil)
		checkStatus(t, "after second logout", st, body, 401)

		// A Key credential registers and logs in too.
		kUser, kCode := newPerson(t, n, admin, "keyuser@example.co", "EndUser")
		k := newKey(t, "P-256")
		kch := registrationInit(t, n, orgID, "keyuser@example.co", kCode)
		st, body = call(t, n, "POST", "/auth/registration", kch.TemporaryAuthenticationToken,
			map[string]any{"firstFactorCredential": keyAttest(t, k, "Key", "key-cred-1", kch.Challenge)})
		checkStatus(t, "register Key", st, body, 200)
		kp := &person{n: n, email: "keyuser@example.co", userID: kUser, orgID: orgID}
		klc := kp.loginInit(t)
		if len(klc.AllowCredentials.Key) != 1 || klc.AllowCredentials.Key[0].ID != "key-cred-1" || len(klc.AllowCredentials.WebAuthn) != 0 {
			t.Fatalf("Key login challenge: %+v", klc.AllowCredentials)
		}
		other2 := newKey(t, "P-256")
		unchanged(t, n, "key-login/wrong-key", func() {
			st, body := call(t, n, "POST", "/auth/login", "", map[string]any{"challengeIdentifier": klc.ChallengeIdentifier,
				"firstFactor": keyFactor(t, other2, "key-cred-1", klc.Challenge)})
			checkStatus(t, "Key login with another key", st, body, 401)
		})
		st, body = call(t, n, "POST", "/auth/login", "", map[string]any{"challengeIdentifier": klc.ChallengeIdentifier,
			"firstFactor": keyFactor(t, k, "key-cred-1", klc.Challenge)})
		checkStatus(t, "Key login", st, body, 200)
		decodeJSON(t, body, &out)
		if jwtAppMetadata(t, out.Token)["userId"] != kUser {
			t.Fatal("Key login token names another user")
		}
	})
}

// refusalReasons are the messages that show a refusal came from the intended check.
var refusalReasons = map[string]string{
	"wrong-origin": "origin is not allowed", "wrong-rpid": "rpIdHash does not match", "wrong-rpid-hash": "rpIdHash does not match",
	"no-up": "user presence flag missing", "no-uv": "user verification flag missing", "counter-regression": "signature counter did not increase",
	"other-ceremony-challenge": "challenge mismatch", "other-challenge": "challenge mismatch", "unknown-credential": "credential not found or not active",
	"be-flag-changed": "backup eligibility differs", "wrong-user-handle": "userHandle does not match", "unknown-challenge": "Challenge token is not valid.",
	"bad-token": "Challenge token is not valid.", "kind-mismatch": "kind does not match",
}

// refusedFor checks the error message of a refused case named in refusalReasons.
func refusedFor(t testing.TB, name string, body []byte) {
	t.Helper()
	if want, ok := refusalReasons[name]; ok && !strings.Contains(string(body), want) {
		t.Errorf("%s: refused for another reason than %q: %s", name, want, body)
	}
}

// ids32 is a challenge-shaped string that was never issued.
func ids32() string { return b64u.EncodeToString(make([]byte, 32)) }

// TestPasskeyUserActions signs user actions with a Fido2 credential, adds a Key credential
// with it, and checks the refused assertions and deactivated credentials.
func TestPasskeyUserActions(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		n := apptest.Start(t, e, apptest.Options{})
		admin := adminActor(t, n)
		p := registerPasskeyPerson(t, n, admin, "ua@example.co")

		// Refused user action signatures: the pending action and everything else stay as they were.
		ch := p.actionInit(t, "PUT", "/auth/credentials/deactivate", []byte(`{}`))
		other := p.actionInit(t, "PUT", "/auth/credentials/deactivate", []byte(`{}`))
		variant := func(mod func(k *passkey)) *passkey { k := *p.pk; mod(&k); return &k }
		good := p.pk.assert(t, ch.Challenge, true)
		for _, tc := range []struct {
			name   string
			chID   string
			factor map[string]any
			want   int
		}{
			{"wrong-origin", ch.ChallengeIdentifier, variant(func(k *passkey) { k.rp.Origin = "http://localhost:1" }).assert(t, ch.Challenge, false), 401},
			{"wrong-rpid-hash", ch.ChallengeIdentifier, variant(func(k *passkey) { k.rp.ID = "other.example" }).assert(t, ch.Challenge, false), 401},
			{"no-up", ch.ChallengeIdentifier, variant(func(k *passkey) { k.auth.Options.UserNotPresent = true }).assert(t, ch.Challenge, false), 401},
			{"no-uv", ch.ChallengeIdentifier, variant(func(k *passkey) { k.auth.Options.UserNotVerified = true }).assert(t, ch.Challenge, false), 401},
			{"counter-regression", ch.ChallengeIdentifier, variant(func(k *passkey) { k.cred.Counter = 0 }).assert(t, ch.Challenge, false), 401}, // signs 1, the stored value
			{"other-ceremony-challenge", other.ChallengeIdentifier, good, 401},
			{"unknown-credential", ch.ChallengeIdentifier, newPasskey(n, p.userID).assert(t, ch.Challenge, false), 401},
		} {
			unchanged(t, n, "action/"+tc.name, func() {
				st, body := p.actionSign(t, tc.chID, tc.factor)
				checkStatus(t, "action/"+tc.name, st, body, tc.want)
				refusedFor(t, tc.name, body)
			})
		}
		st, body := p.actionSign(t, ch.ChallengeIdentifier, good)
		checkStatus(t, "sign with the good assertion (native challenge form)", st, body, 200)
		unchanged(t, n, "action/replay", func() {
			st, body := p.actionSign(t, ch.ChallengeIdentifier, good)
			checkStatus(t, "action replay", st, body, 401)
		})

		// Add a Key credential, user-action-signed by the passkey.
		k := newKey(t, "Ed25519")
		st, body = call(t, n, "POST", "/auth/credentials/init", p.token, map[string]string{"kind": "Key"})
		checkStatus(t, "credential init", st, body, 200)
		var cch regChallenge
		decodeJSON(t, body, &cch)
		if cch.Kind != "Key" || cch.ChallengeIdentifier == "" || cch.TemporaryAuthenticationToken != cch.ChallengeIdentifier {
			t.Fatalf("credential challenge: %s", body)
		}
		nc := keyAttest(t, k, "Key", "second-key", cch.Challenge)
		nc["challengeIdentifier"] = cch.ChallengeIdentifier
		nc["credentialName"] = "laptop key"
		ncBody := mustJSON(t, nc)
		unchanged(t, n, "create credential without user action", func() {
			st, body := call(t, n, "POST", "/auth/credentials", p.token, ncBody)
			checkStatus(t, "create credential without UA", st, body, 403)
		})
		st, body = p.signed(t, "POST", "/auth/credentials", ncBody)
		checkStatus(t, "create credential", st, body, 200)
		var cred struct {
			CredentialUUID string `json:"credentialUuid"`
			CredentialID   string `json:"credentialId"`
			Kind           string `json:"kind"`
			IsActive       bool   `json:"isActive"`
		}
		decodeJSON(t, body, &cred)
		if cred.Kind != "Key" || cred.CredentialID != "second-key" || !cred.IsActive {
			t.Fatalf("new credential: %s", body)
		}
		// The audit log names the passkey as the credential that signed.
		st, body = call(t, n, "GET", "/auth/action/logs?limit=1", admin.Token, nil)
		checkStatus(t, "audit log", st, body, 200)
		var logs struct {
			Items []struct {
				Path                  string         `json:"path"`
				FirstFactorCredential map[string]any `json:"firstFactorCredential"`
			} `json:"items"`
		}
		decodeJSON(t, body, &logs)
		if len(logs.Items) != 1 || logs.Items[0].Path != "/auth/credentials" || logs.Items[0].FirstFactorCredential["kind"] != "Fido2" {
			t.Fatalf("audit entry of the passkey-signed request: %s", body)
		}

		// The Key credential signs user actions of the session too.
		kch := p.actionInit(t, "PUT", "/auth/credentials/deactivate", []byte(`{}`))
		if len(kch.AllowCredentials.Key) != 1 || len(kch.AllowCredentials.WebAuthn) != 1 {
			t.Fatalf("allowCredentials after adding a key: %+v", kch.AllowCredentials)
		}
		st, body = p.actionSign(t, kch.ChallengeIdentifier, keyFactor(t, k, "second-key", kch.Challenge))
		checkStatus(t, "sign with the Key credential", st, body, 200)

		// Deactivate the passkey (signed by the passkey itself): it can neither sign nor log in.
		var passkeyUUID string
		st, body = call(t, n, "GET", "/auth/credentials", p.token, nil)
		checkStatus(t, "list", st, body, 200)
		var list struct {
			Items []struct {
				CredentialUUID string `json:"credentialUuid"`
				CredentialID   string `json:"credentialId"`
				IsActive       bool   `json:"isActive"`
			} `json:"items"`
		}
		decodeJSON(t, body, &list)
		for _, it := range list.Items {
			if it.CredentialID == p.pk.credID() {
				passkeyUUID = it.CredentialUUID
			}
		}
		if len(list.Items) != 2 || passkeyUUID == "" {
			t.Fatalf("credentials: %s", body)
		}
		st, body = p.signed(t, "PUT", "/auth/credentials/deactivate", mustJSON(t, map[string]string{"credentialUuid": passkeyUUID}))
		checkStatus(t, "deactivate passkey", st, body, 200)
		// The session opened with the passkey ended with it.
		st, body = call(t, n, "GET", "/auth/credentials", p.token, nil)
		checkStatus(t, "session of a deactivated credential", st, body, 401)
		kp := &person{n: n, email: p.email, userID: p.userID, orgID: p.orgID}
		lc := kp.loginInit(t)
		if len(lc.AllowCredentials.WebAuthn) != 0 {
			t.Fatalf("deactivated passkey still offered: %+v", lc.AllowCredentials)
		}
		unchanged(t, n, "login with deactivated passkey", func() {
			st, body := call(t, n, "POST", "/auth/login", "", map[string]any{"challengeIdentifier": lc.ChallengeIdentifier,
				"firstFactor": p.pk.assert(t, lc.Challenge, false)})
			checkStatus(t, "login with deactivated passkey", st, body, 401)
		})
		st, body = call(t, n, "POST", "/auth/login", "", map[string]any{"challengeIdentifier": lc.ChallengeIdentifier,
			"firstFactor": keyFactor(t, k, "second-key", lc.Challenge)})
		checkStatus(t, "login with the key", st, body, 200)
		var out struct{ Token string }
		decodeJSON(t, body, &out)
		p.token = out.Token
		ach := p.actionInit(t, "PUT", "/auth/credentials/activate", []byte(`{}`))
		unchanged(t, n, "sign with deactivated passkey", func() {
			st, body := p.actionSign(t, ach.ChallengeIdentifier, p.pk.assert(t, ach.Challenge, false))
			checkStatus(t, "sign with deactivated passkey", st, body, 401)
		})
		// The last active credential cannot be deactivated.
		kuuid := cred.CredentialUUID
		body = mustJSON(t, map[string]string{"credentialUuid": kuuid})
		ua := p.actionInit(t, "PUT", "/auth/credentials/deactivate", body)
		st, sb := p.actionSign(t, ua.ChallengeIdentifier, keyFactor(t, k, "second-key", ua.Challenge))
		checkStatus(t, "sign", st, sb, 200)
		var uat struct{ UserAction string }
		decodeJSON(t, sb, &uat)
		code, rb, err := client.New(n.URL, p.token, nil).Raw(t.Context(), "PUT", "/auth/credentials/deactivate", body, uat.UserAction)
		if err != nil {
			t.Fatal(err)
		}
		checkStatus(t, "deactivate the last credential", code, rb, 400)
	})
}

// TestCredentialCodeFlow adds a passkey with a one-time code (no existing credential signs
// on the new device).
func TestCredentialCodeFlow(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		n := apptest.Start(t, e, apptest.Options{})
		admin := adminActor(t, n)
		p := registerPasskeyPerson(t, n, admin, "code@example.co")
		st, body := p.signed(t, "POST", "/auth/credentials/code", mustJSON(t, map[string]any{"expiration": n.Clock.Now().Add(50 * 1e9).UTC().Format("2006-01-02T15:04:05.000Z")}))
		checkStatus(t, "create code", st, body, 200)
		var c struct{ Code, Expiration string }
		decodeJSON(t, body, &c)
		if len(c.Code) != 11 || !isoMillis.MatchString(c.Expiration) {
			t.Fatalf("code: %s", body)
		}
		st, body = p.signed(t, "POST", "/auth/credentials/code", mustJSON(t, map[string]any{"expiration": n.Clock.Now().Add(1e12).Unix()}))
		checkStatus(t, "code too far ahead", st, body, 400)
		unchanged(t, n, "code init with a wrong code", func() {
			st, body := call(t, n, "POST", "/auth/credentials/code/init", "", map[string]string{"code": "AAA-BBB-CCC", "credentialKind": "Fido2"})
			checkStatus(t, "wrong code", st, body, 403)
		})
		st, body = call(t, n, "POST", "/auth/credentials/code/init", "", map[string]string{"code": strings.ToLower(c.Code), "credentialKind": "Fido2"})
		checkStatus(t, "code init", st, body, 200)
		var ch regChallenge
		decodeJSON(t, body, &ch)
		if len(ch.ExcludeCredentials) != 1 || ch.ExcludeCredentials[0].ID != p.pk.credID() {
			t.Fatalf("excludeCredentials: %s", body)
		}
		st, body = call(t, n, "POST", "/auth/credentials/code/init", "", map[string]string{"code": c.Code, "credentialKind": "Fido2"})
		checkStatus(t, "code reused", st, body, 403)
		pk2 := newPasskey(n, p.userID)
		nc := pk2.attest(t, ch.Challenge, false)
		nc["challengeIdentifier"] = ch.ChallengeIdentifier
		nc["credentialName"] = "phone"
		st, body = call(t, n, "POST", "/auth/credentials/code/verify", "", nc)
		checkStatus(t, "code verify", st, body, 200)
		st, body = call(t, n, "POST", "/auth/credentials/code/verify", "", nc)
		checkStatus(t, "code verify replay", st, body, 401)
		p.pk = pk2
		p.token = p.login(t, false)
	})
}

// TestRecovery recovers a user with a RecoveryKey: every earlier credential and token of
// the user stops working, the new passkey logs in.
func TestRecovery(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		n := apptest.Start(t, e, apptest.Options{})
		notes := &captured{}
		n.App.Users.SetNotifier(notes)
		admin := adminActor(t, n)
		orgID := jwtAppMetadata(t, admin.Token)["orgId"]
		email := "lost@example.co"
		userID, code := newPerson(t, n, admin, email, "CustomerEmployee")
		pk := newPasskey(n, userID)
		rk := newKey(t, "Ed25519")
		ch := registrationInit(t, n, orgID, email, code)
		st, body := call(t, n, "POST", "/auth/registration", ch.TemporaryAuthenticationToken, map[string]any{
			"firstFactorCredential": pk.attest(t, ch.Challenge, false),
			"recoveryCredential":    keyAttest(t, rk, "RecoveryKey", "recovery-1", ch.Challenge)})
		checkStatus(t, "register with recovery key", st, body, 200)
		p := &person{n: n, email: email, userID: userID, orgID: orgID, pk: pk}
		p.token = p.login(t, false)
		// A personal access token of the user, to see it die with the recovery.
		pat := newKey(t, "P-256")
		st, body = p.signed(t, "POST", "/auth/pats", mustJSON(t, map[string]string{"name": "cli", "publicKey": pat.PublicPEM}))
		checkStatus(t, "create PAT", st, body, 200)
		var patTok struct{ AccessToken string }
		decodeJSON(t, body, &patTok)
		st, body = call(t, n, "GET", "/auth/pats", patTok.AccessToken, nil)
		checkStatus(t, "PAT works", st, body, 200)
		// The recovery key cannot log in.
		lc := p.loginInit(t)
		unchanged(t, n, "login with the recovery key", func() {
			st, body := call(t, n, "POST", "/auth/login", "", map[string]any{"challengeIdentifier": lc.ChallengeIdentifier,
				"firstFactor": keyFactor(t, rk, "recovery-1", lc.Challenge)})
			checkStatus(t, "login with recovery key", st, body, 401)
		})

		st, body = call(t, n, "POST", "/auth/recover/user/code", "", map[string]string{"username": email, "orgId": orgID})
		checkStatus(t, "recovery code", st, body, 200)
		vcode := notes.lastCode(t, email)
		unchanged(t, n, "recovery init with a wrong code", func() {
			st, body := call(t, n, "POST", "/auth/recover/user/init", "", map[string]string{"username": email, "orgId": orgID,
				"verificationCode": "AAA-AAA-AAA", "credentialId": "recovery-1"})
			checkStatus(t, "wrong verification code", st, body, 403)
		})
		unchanged(t, n, "recovery init with a login credential", func() {
			st, body := call(t, n, "POST", "/auth/recover/user/init", "", map[string]string{"username": email, "orgId": orgID,
				"verificationCode": vcode, "credentialId": pk.credID()})
			checkStatus(t, "not a recovery credential", st, body, 401)
		})
		st, body = call(t, n, "POST", "/auth/recover/user/init", "", map[string]string{"username": email, "orgId": orgID,
			"verificationCode": vcode, "credentialId": "recovery-1"})
		checkStatus(t, "recovery init", st, body, 200)
		var rch regChallenge
		decodeJSON(t, body, &rch)
		if len(rch.AllowedRecovery) != 1 || rch.AllowedRecovery[0].ID != "recovery-1" || !strings.Contains(string(body), "opaque-encrypted-key") {
			t.Fatalf("recovery challenge: %s", body)
		}
		newPK := newPasskey(n, userID)
		newCreds := map[string]any{"firstFactorCredential": newPK.attest(t, rch.Challenge, false)}
		signRecovery := func(k testKey, creds any) map[string]any {
			cd := []byte(`{"type":"key.get","challenge":"` + b64u.EncodeToString(mustJSON(t, creds)) + `"}`)
			return map[string]any{"kind": "RecoveryKey", "credentialAssertion": map[string]string{
				"credId": "recovery-1", "clientData": b64u.EncodeToString(cd), "signature": b64u.EncodeToString(k.sign(t, cd))}}
		}
		otherCreds := map[string]any{"firstFactorCredential": newPasskey(n, userID).attest(t, rch.Challenge, false)}
		for _, tc := range []struct {
			name string
			body map[string]any
			want int
		}{
			{"wrong-key", map[string]any{"recovery": signRecovery(newKey(t, "Ed25519"), newCreds), "newCredentials": newCreds}, 401},
			{"signed-other-credentials", map[string]any{"recovery": signRecovery(rk, otherCreds), "newCredentials": newCreds}, 401},
		} {
			unchanged(t, n, "recover/"+tc.name, func() {
				st, body := call(t, n, "POST", "/auth/recover/user", rch.TemporaryAuthenticationToken, tc.body)
				checkStatus(t, "recover/"+tc.name, st, body, tc.want)
			})
		}
		st, body = call(t, n, "POST", "/auth/recover/user", rch.TemporaryAuthenticationToken,
			map[string]any{"recovery": signRecovery(rk, newCreds), "newCredentials": newCreds})
		checkStatus(t, "recover", st, body, 200)

		// Every previous credential and token is gone.
		for what, tok := range map[string]string{"login session": p.token, "PAT": patTok.AccessToken} {
			st, body := call(t, n, "GET", "/auth/pats", tok, nil)
			checkStatus(t, what+" after recovery", st, body, 401)
		}
		lc = p.loginInit(t)
		if len(lc.AllowCredentials.WebAuthn) != 1 || lc.AllowCredentials.WebAuthn[0].ID != newPK.credID() {
			t.Fatalf("after recovery the login offers %+v", lc.AllowCredentials)
		}
		unchanged(t, n, "old passkey after recovery", func() {
			st, body := call(t, n, "POST", "/auth/login", "", map[string]any{"challengeIdentifier": lc.ChallengeIdentifier,
				"firstFactor": pk.assert(t, lc.Challenge, false)})
			checkStatus(t, "old passkey", st, body, 401)
		})
		p.pk = newPK
		p.token = p.login(t, false)
		st, body = call(t, n, "GET", "/auth/credentials", p.token, nil)
		checkStatus(t, "credentials after recovery", st, body, 200)
		if strings.Contains(string(body), pk.credID()) || strings.Contains(string(body), "recovery-1") {
			t.Fatalf("old credentials still listed: %s", body)
		}
		// The verification code was used up.
		st, body = call(t, n, "POST", "/auth/recover/user/init", "", map[string]string{"username": email, "orgId": orgID,
			"verificationCode": vcode, "credentialId": "recovery-1"})
		if st != 401 && st != 403 {
			checkStatus(t, "reuse of the verification code", st, body, 403)
		}
	})
}

// TestLoginAssertionSingleUseUnderConcurrency posts one valid login assertion from many
// goroutines at once: exactly one login succeeds and one session is created.
func TestLoginAssertionSingleUseUnderConcurrency(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		n := apptest.Start(t, e, apptest.Options{})
		p := registerPasskeyPerson(t, n, adminActor(t, n), "race@example.co")
		lc := p.loginInit(t)
		body := mustJSON(t, map[string]any{"challengeIdentifier": lc.ChallengeIdentifier, "firstFactor": p.pk.assert(t, lc.Challenge, false)})
		const workers = 12
		codes := make(chan int, workers)
		var wg sync.WaitGroup
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				st, _, err := client.New(n.URL, "", nil).Raw(context.Background(), "POST", "/auth/login", body, "")
				if err != nil {
					st = -1
				}
				codes <- st
			}()
		}
		wg.Wait()
		close(codes)
		won := 0
		for c := range codes {
			switch c {
			case 200:
				won++
			case 401:
			default:
				t.Errorf("status %d", c)
			}
		}
		if won != 1 {
			t.Fatalf("%d logins succeeded with one assertion, want 1", won)
		}
	})
}
