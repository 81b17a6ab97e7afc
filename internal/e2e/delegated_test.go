package e2e

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/countersign/countersign/client"
	"github.com/countersign/countersign/internal/app/apptest"
	"github.com/countersign/countersign/internal/testutil"
)

// This file covers delegated end users (dfns-api.md §2.9, §3.2, §3.3, §4.4, §4.5): the
// organization's service account signs end users up and logs them in, wallets and keys are
// delegated to them, and from then on only the end user's own passkey signs for those.

const delegatedNetwork = "BaseSepolia"

// endUserReg is the answer of POST /auth/registration/enduser.
type endUserReg struct {
	Credential struct {
		UUID string `json:"uuid"`
		Kind string `json:"kind"`
	} `json:"credential"`
	User struct {
		ID       string `json:"id"`
		Username string `json:"username"`
		OrgID    string `json:"orgId"`
	} `json:"user"`
	Authentication struct {
		Token string `json:"token"`
	} `json:"authentication"`
	Wallets []walletResp `json:"wallets"`
}

// delegatedChallenge has the service account start a delegated registration.
func delegatedChallenge(t testing.TB, admin actor, email string) regChallenge {
	t.Helper()
	st, body := admin.signed(t, "POST", "/auth/registration/delegated", mustJSON(t, map[string]string{"email": email, "kind": "EndUser"}))
	checkStatus(t, "delegated registration", st, body, 200)
	var ch regChallenge
	decodeJSON(t, body, &ch)
	if ch.TemporaryAuthenticationToken == "" || ch.Challenge == "" || ch.User.ID == "" || ch.User.Name != email {
		t.Fatalf("delegated registration challenge: %s", body)
	}
	return ch
}

// signUpEndUser registers an end user with a passkey through the delegated flow and the
// wallets asked for, and returns them logged in.
func signUpEndUser(t testing.TB, n *apptest.Node, admin actor, email string, wallets ...map[string]string) (*person, endUserReg) {
	t.Helper()
	ch := delegatedChallenge(t, admin, email)
	p := &person{n: n, email: email, userID: ch.User.ID, orgID: jwtAppMetadata(t, admin.Token)["orgId"], pk: newPasskey(n, ch.User.ID)}
	if wallets == nil {
		wallets = []map[string]string{}
	}
	st, body := call(t, n, "POST", "/auth/registration/enduser", ch.TemporaryAuthenticationToken,
		map[string]any{"firstFactorCredential": p.pk.attest(t, ch.Challenge, false), "wallets": wallets})
	checkStatus(t, "end-user registration", st, body, 200)
	var reg endUserReg
	decodeJSON(t, body, &reg)
	if reg.User.ID != p.userID || reg.Credential.Kind != "Fido2" || reg.Authentication.Token == "" || len(reg.Wallets) != len(wallets) {
		t.Fatalf("end-user registration: %s", body)
	}
	p.token = reg.Authentication.Token
	return p, reg
}

// waitTransfer polls a transfer with token until it is final (generous deadline: the
// machine is loaded).
func waitTransfer(t testing.TB, n *apptest.Node, token, walletID, id string) transferResp {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, body := call(t, n, "GET", "/wallets/"+walletID+"/transfers/"+id, token, nil)
		checkStatus(t, "get transfer", st, body, 200)
		var tr transferResp
		decodeJSON(t, body, &tr)
		if tr.Status == "Confirmed" || tr.Status == "Failed" || time.Now().After(deadline) {
			return tr
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// listIDs returns the ids of a GET list answer.
func listIDs(t testing.TB, n *apptest.Node, token, path string) []string {
	t.Helper()
	st, body := call(t, n, "GET", path, token, nil)
	checkStatus(t, "list "+path, st, body, 200)
	var out struct {
		Items []struct {
			ID string `json:"id"`
		} `json:"items"`
	}
	decodeJSON(t, body, &out)
	ids := []string{}
	for _, it := range out.Items {
		ids = append(ids, it.ID)
	}
	return ids
}

// domainSnapshot is snapshot without the user-action bookkeeping that a signed request
// writes whatever its outcome: the consumed action, its audit entry and the passkey counter.
func domainSnapshot(t testing.TB, n *apptest.Node) string {
	return snapshotExcept(t, n, "user_actions", "audit_log", "credential_details")
}

// signedRefusal sends a request with a valid user action (ua, of the same caller) and
// checks it is refused with want and changed nothing.
func signedRefusal(t *testing.T, n *apptest.Node, what, token, ua, method, path string, body []byte, want int) {
	t.Helper()
	before := domainSnapshot(t, n)
	st, out, err := client.New(n.URL, token, nil).Raw(t.Context(), method, path, body, ua)
	if err != nil {
		t.Fatal(err)
	}
	checkStatus(t, what, st, out, want)
	if domainSnapshot(t, n) != before {
		t.Errorf("%s: a refused call changed the database", what)
	}
}

// adminRefused has the admin sign a request and checks the refusal.
func adminRefused(t *testing.T, n *apptest.Node, admin actor, what, method, path string, body []byte, want int) {
	t.Helper()
	signedRefusal(t, n, what, admin.Token, admin.uaToken(t, method, path, body), method, path, body, want)
}

// uaToken has the person's passkey sign a user action for the request.
func (p *person) uaToken(t testing.TB, method, path string, body []byte) string {
	t.Helper()
	ch := p.actionInit(t, method, path, body)
	st, out := p.actionSign(t, ch.ChallengeIdentifier, p.pk.assert(t, ch.Challenge, false))
	checkStatus(t, "action sign", st, out, 200)
	var ua struct {
		UserAction string `json:"userAction"`
	}
	decodeJSON(t, out, &ua)
	return ua.UserAction
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]int{}
	for _, x := range a {
		seen[x]++
	}
	for _, x := range b {
		if seen[x]--; seen[x] < 0 {
			return false
		}
	}
	return true
}

func TestDelegatedEndUsers(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		n := apptest.Start(t, e, apptest.Options{})
		admin := adminActor(t, n)
		orgID := jwtAppMetadata(t, admin.Token)["orgId"]
		employeeID, _ := newPerson(t, n, admin, "staff@example.co", "CustomerEmployee")
		mail := &captured{} // delegated registration must send nothing
		n.App.Users.SetNotifier(mail)

		// Delegated registration: bad requests first, each refused with nothing written.
		for _, tc := range []struct {
			name string
			path string
			body any
			want int
		}{
			{"bad-kind", "/auth/registration/delegated", map[string]string{"email": "x@example.co", "kind": "Robot"}, 400},
			{"bad-email", "/auth/registration/delegated", map[string]string{"email": "not an email", "kind": "EndUser"}, 400},
			{"restart-unknown", "/auth/registration/delegated/restart", map[string]string{"email": "nobody@example.co", "kind": "EndUser"}, 404},
			{"existing-user", "/auth/registration/delegated", map[string]string{"email": "staff@example.co", "kind": "EndUser"}, 409},
		} {
			adminRefused(t, n, admin, "delegated/"+tc.name, "POST", tc.path, mustJSON(t, tc.body), tc.want)
		}
		unchanged(t, n, "delegated/no-user-action", func() {
			st, body := admin.raw(t, "POST", "/auth/registration/delegated", mustJSON(t, map[string]string{"email": "y@example.co", "kind": "EndUser"}), "")
			if st < 400 {
				t.Fatalf("delegated registration without a user action: %d %s", st, body)
			}
		})

		// A first challenge that is never used; restart issues another for the same user,
		// and no email leaves the server.
		first := delegatedChallenge(t, admin, "alice@example.co")
		st, body := admin.signed(t, "POST", "/auth/registration/delegated/restart", mustJSON(t, map[string]string{"email": "alice@example.co", "kind": "EndUser"}))
		checkStatus(t, "restart", st, body, 200)
		var again regChallenge
		decodeJSON(t, body, &again)
		if again.User.ID != first.User.ID || again.TemporaryAuthenticationToken == first.TemporaryAuthenticationToken {
			t.Fatalf("restart: %s", body)
		}
		alicePK := newPasskey(n, first.User.ID)
		if len(mail.msgs) != 0 {
			t.Fatalf("delegated registration sent %d messages", len(mail.msgs))
		}

		// End-user registration refusals: a bad wallet request refuses the whole registration
		// and leaves the challenge usable; employees cannot register there.
		_, empCode := newPerson(t, n, admin, "staff2@example.co", "CustomerEmployee")
		empCh := registrationInit(t, n, orgID, "staff2@example.co", empCode)
		for _, tc := range []struct {
			name  string
			token string
			body  any
			want  int
		}{
			{"bad-network", again.TemporaryAuthenticationToken, map[string]any{"firstFactorCredential": alicePK.attest(t, again.Challenge, false), "wallets": []map[string]string{{"network": "Narnia"}}}, 400},
			{"extra-wallet-fields", again.TemporaryAuthenticationToken, map[string]any{"firstFactorCredential": alicePK.attest(t, again.Challenge, false), "wallets": []map[string]string{{"network": delegatedNetwork, "delegateTo": employeeID}}}, 400},
			{"employee", empCh.TemporaryAuthenticationToken, map[string]any{"firstFactorCredential": newPasskey(n, "x").attest(t, empCh.Challenge, false)}, 400},
			{"no-token", "", map[string]any{"firstFactorCredential": alicePK.attest(t, again.Challenge, false)}, 401},
		} {
			unchanged(t, n, "enduser/"+tc.name, func() {
				st, body := call(t, n, "POST", "/auth/registration/enduser", tc.token, tc.body)
				checkStatus(t, "enduser/"+tc.name, st, body, tc.want)
			})
		}
		st, body = call(t, n, "POST", "/auth/registration/enduser", again.TemporaryAuthenticationToken,
			map[string]any{"firstFactorCredential": alicePK.attest(t, again.Challenge, false),
				"wallets": []map[string]string{{"network": delegatedNetwork, "name": "alice main"}}})
		checkStatus(t, "end-user registration", st, body, 200)
		var reg endUserReg
		decodeJSON(t, body, &reg)
		if reg.User.ID != first.User.ID || reg.User.OrgID != orgID || reg.Authentication.Token == "" || len(reg.Wallets) != 1 ||
			reg.Wallets[0].Custodial || reg.Wallets[0].Network != delegatedNetwork || reg.Wallets[0].Address == "" {
			t.Fatalf("end-user registration: %s", body)
		}
		alice := &person{n: n, email: "alice@example.co", userID: reg.User.ID, orgID: orgID, pk: alicePK, token: reg.Authentication.Token}
		aliceMain := reg.Wallets[0]
		if app := jwtAppMetadata(t, alice.token); app["userId"] != alice.userID {
			t.Fatalf("end-user token names %v", app)
		}
		// The consumed challenge, and a restart for a registered user, are refused.
		unchanged(t, n, "enduser/replay", func() {
			st, body := call(t, n, "POST", "/auth/registration/enduser", again.TemporaryAuthenticationToken,
				map[string]any{"firstFactorCredential": alicePK.attest(t, again.Challenge, false)})
			checkStatus(t, "enduser/replay", st, body, 401)
		})
		adminRefused(t, n, admin, "restart registered", "POST", "/auth/registration/delegated/restart",
			mustJSON(t, map[string]string{"email": "alice@example.co", "kind": "EndUser"}), 401)

		bob, bobReg := signUpEndUser(t, n, admin, "bob@example.co", map[string]string{"network": delegatedNetwork})
		bobWallet := bobReg.Wallets[0]

		// The organization's wallets: one delegated to alice at creation, one plain, one
		// delegated later; a key delegated at creation.
		var delegatedW, plainW, laterW walletResp
		delegatedTo := map[string]string{}
		for _, x := range []struct {
			out  *walletResp
			body map[string]any
		}{
			{&delegatedW, map[string]any{"network": delegatedNetwork, "delegateTo": alice.userID}},
			{&plainW, map[string]any{"network": delegatedNetwork}},
			{&laterW, map[string]any{"network": delegatedNetwork, "delayDelegation": true}},
		} {
			st, body := admin.signed(t, "POST", "/wallets", mustJSON(t, x.body))
			checkStatus(t, "create wallet", st, body, 200)
			decodeJSON(t, body, x.out)
			var d struct {
				SigningKey struct {
					DelegatedTo string `json:"delegatedTo"`
				} `json:"signingKey"`
			}
			decodeJSON(t, body, &d)
			delegatedTo[x.out.ID] = d.SigningKey.DelegatedTo
		}
		if delegatedTo[delegatedW.ID] != alice.userID || delegatedTo[plainW.ID] != "" {
			t.Fatalf("signingKey.delegatedTo: %v", delegatedTo)
		}
		if delegatedW.Custodial || !plainW.Custodial || !laterW.Custodial {
			t.Fatalf("custodial flags: delegated %v plain %v later %v", delegatedW.Custodial, plainW.Custodial, laterW.Custodial)
		}
		st, body = admin.signed(t, "POST", "/keys", mustJSON(t, map[string]any{"scheme": "ECDSA", "curve": "secp256k1", "delegateTo": alice.userID}))
		checkStatus(t, "create delegated key", st, body, 200)
		var aliceKey struct {
			ID        string `json:"id"`
			Custodial bool   `json:"custodial"`
		}
		decodeJSON(t, body, &aliceKey)
		if aliceKey.Custodial {
			t.Fatalf("delegated key: %s", body)
		}
		st, body = admin.signed(t, "POST", "/keys", mustJSON(t, map[string]any{"scheme": "ECDSA", "curve": "secp256k1"}))
		checkStatus(t, "create key", st, body, 200)
		var plainKey struct {
			ID string `json:"id"`
		}
		decodeJSON(t, body, &plainKey)

		// delegateTo must name an active end user of the organization.
		adminID := admin.userID
		for _, to := range []string{"us-nobody", employeeID, adminID, strings.Repeat("u", 200)} {
			for _, path := range []string{"/wallets", "/keys"} {
				b := map[string]any{"network": delegatedNetwork, "delegateTo": to}
				if path == "/keys" {
					b = map[string]any{"scheme": "ECDSA", "curve": "secp256k1", "delegateTo": to}
				}
				adminRefused(t, n, admin, "delegateTo "+to+" on "+path, "POST", path, mustJSON(t, b), 400)
			}
		}
		adminRefused(t, n, admin, "delegateTo with delayDelegation", "POST", "/wallets",
			mustJSON(t, map[string]any{"network": delegatedNetwork, "delegateTo": alice.userID, "delayDelegation": true}), 400)

		// Delegating later: once, for good.
		st, body = admin.signed(t, "POST", "/wallets/"+laterW.ID+"/delegate", mustJSON(t, map[string]string{"userId": alice.userID}))
		checkStatus(t, "delegate wallet", st, body, 200)
		var del struct{ WalletID, Status string }
		decodeJSON(t, body, &del)
		if del.WalletID != laterW.ID || del.Status != "Delegated" {
			t.Fatalf("delegate wallet: %s", body)
		}
		for _, tc := range []struct {
			name, path string
			body       any
			want       int
		}{
			{"wallet-again", "/wallets/" + laterW.ID + "/delegate", map[string]string{"userId": bob.userID}, 409},
			{"wallet-same", "/wallets/" + laterW.ID + "/delegate", map[string]string{"userId": alice.userID}, 409},
			{"key-of-alice", "/keys/" + aliceKey.ID + "/delegate", map[string]string{"delegateTo": bob.userID}, 409},
			{"key-of-registration", "/keys/" + aliceMain.SigningKey.ID + "/delegate", map[string]string{"delegateTo": bob.userID}, 409},
			{"key-to-employee", "/keys/" + plainKey.ID + "/delegate", map[string]string{"delegateTo": employeeID}, 400},
			{"key-to-nobody", "/keys/" + plainKey.ID + "/delegate", map[string]string{}, 400},
			{"unknown-key", "/keys/key-nope/delegate", map[string]string{"delegateTo": alice.userID}, 404},
		} {
			adminRefused(t, n, admin, "delegate/"+tc.name, "POST", tc.path, mustJSON(t, tc.body), tc.want)
		}
		st, body = admin.signed(t, "POST", "/keys/"+plainKey.ID+"/delegate", mustJSON(t, map[string]string{"delegateTo": bob.userID}))
		checkStatus(t, "delegate key", st, body, 200)
		var kdel struct{ KeyID, Status string }
		decodeJSON(t, body, &kdel)
		if kdel.KeyID != plainKey.ID || kdel.Status != "Delegated" {
			t.Fatalf("delegate key: %s", body)
		}

		// Two delegations of one key racing (user actions signed beforehand): exactly one wins.
		st, body = admin.signed(t, "POST", "/keys", mustJSON(t, map[string]any{"scheme": "ECDSA", "curve": "secp256k1"}))
		checkStatus(t, "create key", st, body, 200)
		var raced struct {
			ID string `json:"id"`
		}
		decodeJSON(t, body, &raced)
		racePath := "/keys/" + raced.ID + "/delegate"
		bodies := [][]byte{mustJSON(t, map[string]string{"delegateTo": alice.userID}), mustJSON(t, map[string]string{"delegateTo": bob.userID})}
		uas := []string{admin.uaToken(t, "POST", racePath, bodies[0]), admin.uaToken(t, "POST", racePath, bodies[1])}
		codes := make([]int, 2)
		var wg sync.WaitGroup
		for i := range 2 {
			wg.Go(func() {
				c, _, err := client.New(n.URL, admin.Token, nil).Raw(t.Context(), "POST", racePath, bodies[i], uas[i])
				if err != nil {
					t.Error(err)
				}
				codes[i] = c
			})
		}
		wg.Wait()
		if !(codes[0] == 200 && codes[1] == 409) && !(codes[0] == 409 && codes[1] == 200) {
			t.Fatalf("racing delegations answered %v, want one 200 and one 409", codes)
		}

		// End users see only their own wallets and keys; another's id is not found.
		if got, want := listIDs(t, n, alice.token, "/wallets"), []string{aliceMain.ID, delegatedW.ID, laterW.ID}; !sameSet(got, want) {
			t.Fatalf("alice's wallets %v, want %v", got, want)
		}
		if got := listIDs(t, n, bob.token, "/wallets"); !sameSet(got, []string{bobWallet.ID}) {
			t.Fatalf("bob's wallets %v", got)
		}
		bobKeys := []string{bobWallet.SigningKey.ID, plainKey.ID}
		if codes[1] == 200 {
			bobKeys = append(bobKeys, raced.ID)
		}
		if got := listIDs(t, n, bob.token, "/keys"); !sameSet(got, bobKeys) {
			t.Fatalf("bob's keys %v", got)
		}
		if got := listIDs(t, n, admin.Token, "/wallets"); len(got) != 5 {
			t.Fatalf("the organization sees %d wallets, want all 5", len(got))
		}
		for _, path := range []string{"/wallets/" + plainW.ID, "/wallets/" + bobWallet.ID, "/wallets/" + bobWallet.ID + "/assets",
			"/wallets/" + bobWallet.ID + "/transfers", "/keys/" + plainKey.ID, "/keys/" + plainKey.ID + "/signatures"} {
			st, body := call(t, n, "GET", path, alice.token, nil)
			checkStatus(t, "alice reads "+path, st, body, 404)
		}
		for _, path := range []string{"/wallets/" + aliceMain.ID, "/wallets/" + aliceMain.ID + "/assets", "/keys/" + aliceKey.ID} {
			st, body := call(t, n, "GET", path, alice.token, nil)
			checkStatus(t, "alice reads "+path, st, body, 200)
			st, body = call(t, n, "GET", path, admin.Token, nil)
			checkStatus(t, "the organization reads "+path, st, body, 200)
		}

		// Fund alice's wallet; her passkey signs a transfer out of it.
		st, body = admin.signed(t, "POST", "/dev/faucet", mustJSON(t, map[string]string{"network": delegatedNetwork, "address": aliceMain.Address, "amount": "1000000000000000000"}))
		checkStatus(t, "faucet", st, body, 200)
		transfer := mustJSON(t, map[string]string{"kind": "Native", "to": plainW.Address, "amount": "1000"})
		st, body = alice.signed(t, "POST", "/wallets/"+aliceMain.ID+"/transfers", transfer)
		checkStatus(t, "alice's transfer", st, body, 200)
		var tr transferResp
		decodeJSON(t, body, &tr)
		if tr.Requester.UserID != alice.userID {
			t.Fatalf("transfer requester: %s", body)
		}
		if done := waitTransfer(t, n, alice.token, aliceMain.ID, tr.ID); done.Status != "Confirmed" {
			t.Fatalf("alice's transfer ended %s", done.Status)
		}

		// The organization, with valid user actions, cannot move or sign with what is
		// delegated, nor change it.
		sigBody := mustJSON(t, map[string]string{"kind": "Hash", "hash": "0x" + strings.Repeat("ab", 32)})
		for _, tc := range []struct{ name, method, path, body string }{
			{"transfer", "POST", "/wallets/" + aliceMain.ID + "/transfers", string(transfer)},
			{"transfer-later", "POST", "/wallets/" + laterW.ID + "/transfers", string(transfer)},
			{"broadcast", "POST", "/wallets/" + aliceMain.ID + "/transactions", `{"kind":"Evm","to":"` + plainW.Address + `","value":"1"}`},
			{"wallet-signature", "POST", "/wallets/" + delegatedW.ID + "/signatures", string(sigBody)},
			{"key-signature", "POST", "/keys/" + aliceKey.ID + "/signatures", string(sigBody)},
			{"key-signature-bob", "POST", "/keys/" + plainKey.ID + "/signatures", string(sigBody)},
			{"rename-wallet", "PUT", "/wallets/" + aliceMain.ID, `{"name":"mine now"}`},
			{"tag-wallet", "PUT", "/wallets/" + aliceMain.ID + "/tags", `{"tags":["x"]}`},
			{"rename-key", "PUT", "/keys/" + aliceKey.ID, `{"name":"mine now"}`},
			{"delete-key", "DELETE", "/keys/" + aliceKey.ID, ``},
			{"wallet-on-key", "POST", "/wallets", `{"network":"EthereumSepolia","signingKey":{"id":"` + aliceKey.ID + `"}}`},
		} {
			adminRefused(t, n, admin, "organization/"+tc.name, tc.method, tc.path, []byte(tc.body), 403)
		}

		// Another end user is refused too (not found), and so are end users acting as the
		// organization.
		for _, tc := range []struct {
			name, method, path, body string
			want                     int
		}{
			{"bob-transfers-alice", "POST", "/wallets/" + aliceMain.ID + "/transfers", string(transfer), 404},
			{"bob-signs-alice-key", "POST", "/keys/" + aliceKey.ID + "/signatures", string(sigBody), 404},
			{"bob-uses-plain-wallet", "POST", "/wallets/" + plainW.ID + "/transfers", string(transfer), 404},
			{"bob-broadcasts-alice", "POST", "/wallets/" + aliceMain.ID + "/transactions", `{"kind":"Evm","to":"` + plainW.Address + `","value":"1"}`, 404},
			{"bob-delegates", "POST", "/keys/" + plainKey.ID + "/delegate", `{"delegateTo":"` + alice.userID + `"}`, 403},
			{"bob-creates-for-alice", "POST", "/wallets", `{"network":"` + delegatedNetwork + `","delegateTo":"` + alice.userID + `"}`, 403},
			{"bob-delegated-login", "POST", "/auth/login/delegated", `{"username":"alice@example.co"}`, 403},
			{"bob-delegated-registration", "POST", "/auth/registration/delegated", `{"email":"eve@example.co","kind":"EndUser"}`, 403},
		} {
			body := []byte(tc.body)
			signedRefusal(t, n, tc.name, bob.token, bob.uaToken(t, tc.method, tc.path, body), tc.method, tc.path, body, tc.want)
		}

		// An end user's own new wallet is delegated to them.
		st, body = bob.signed(t, "POST", "/wallets", mustJSON(t, map[string]string{"network": delegatedNetwork}))
		checkStatus(t, "bob creates a wallet", st, body, 200)
		var bobW2 walletResp
		decodeJSON(t, body, &bobW2)
		if bobW2.Custodial {
			t.Fatalf("end user's wallet is custodial: %s", body)
		}
		adminRefused(t, n, admin, "organization renames bob's wallet", "PUT", "/wallets/"+bobW2.ID, []byte(`{"name":"x"}`), 403)
		st, body = bob.signed(t, "POST", "/keys/"+plainKey.ID+"/signatures", sigBody)
		checkStatus(t, "bob signs with the key delegated to him", st, body, 200)

		// Delegated login: the service account gets a token of alice that reads her
		// wallets, but cannot sign her user actions with its own credential.
		for _, tc := range []struct {
			name, username string
			want           int
		}{
			{"unknown", "nobody@example.co", 404},
			{"employee", "staff@example.co", 403},
		} {
			adminRefused(t, n, admin, "delegated login "+tc.name, "POST", "/auth/login/delegated", mustJSON(t, map[string]string{"username": tc.username}), tc.want)
		}
		st, body = admin.signed(t, "POST", "/auth/login/delegated", mustJSON(t, map[string]string{"username": "alice@example.co"}))
		checkStatus(t, "delegated login", st, body, 200)
		var dl struct {
			Token string `json:"token"`
		}
		decodeJSON(t, body, &dl)
		if app := jwtAppMetadata(t, dl.Token); app["userId"] != alice.userID {
			t.Fatalf("delegated login token names %v", app)
		}
		if got := listIDs(t, n, dl.Token, "/wallets"); !sameSet(got, []string{aliceMain.ID, delegatedW.ID, laterW.ID}) {
			t.Fatalf("delegated token lists %v", got)
		}
		asAlice := withToken(admin, dl.Token)
		ch := asAlice.newChallenge(t, "POST", "/wallets/"+aliceMain.ID+"/transfers", transfer)
		before := domainSnapshot(t, n)
		st, body = call(t, n, "POST", "/auth/action", dl.Token, actionBody(t, ch.ChallengeIdentifier, admin.assertion(t, tsLayout(ch.Challenge))))
		if st != 401 && st != 403 {
			t.Fatalf("the organization's key signed alice's user action: %d %s", st, body)
		}
		if domainSnapshot(t, n) != before {
			t.Errorf("a refused user action changed the database")
		}
		// With her token and her passkey, it is her action again.
		delegatedAlice := *alice
		delegatedAlice.token = dl.Token
		st, body = delegatedAlice.signed(t, "PUT", "/wallets/"+delegatedW.ID, []byte(`{"name":"alice's"}`))
		checkStatus(t, "alice renames through the delegated token", st, body, 200)
	})
}

// TestDemoAppOff checks that the /app/ page is served but its demo sign-up, which acts with
// the admin service account, is refused unless --demo-app is set.
func TestDemoAppOff(t *testing.T) {
	n := apptest.Start(t, testutil.Engines(t)[0], apptest.Options{})
	unchanged(t, n, "demo sign-up off", func() {
		st, body := call(t, n, "POST", "/app/demo/signup", "", map[string]string{"email": "x@example.co"})
		checkStatus(t, "demo sign-up without --demo-app", st, body, 404)
	})
	st, body := call(t, n, "GET", "/app/", "", nil)
	if st != 200 || !strings.Contains(string(body), "countersign wallet") {
		t.Fatalf("GET /app/: %d %.200s", st, body)
	}
	st, body = call(t, n, "GET", "/app/app.js", "", nil)
	if st != 200 || !strings.Contains(string(body), "/auth/action/init") {
		t.Fatalf("GET /app/app.js: %d %.200s", st, body)
	}
}
