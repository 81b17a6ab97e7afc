package e2e

import (
	"bytes"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/countersign/countersign/client"
	"github.com/countersign/countersign/internal/app/apptest"
	"github.com/countersign/countersign/internal/testutil"
)

// isoMillis is JavaScript's Date.toISOString format (dfns-api.md §6.4).
var isoMillis = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

// dfnsID is the Dfns id shape of one prefix (dfns-api.md §6.3).
func dfnsID(prefix string) *regexp.Regexp {
	return regexp.MustCompile(`^` + prefix + `-[a-z0-9]{5}-[a-z0-9]{5}-[a-z0-9]{14,16}$`)
}

// accountStep is one request of a lifecycle, checked by status and then by check.
type accountStep struct {
	name  string
	do    func(t *testing.T) (int, []byte)
	want  int
	check func(t *testing.T, body []byte)
}

func runSteps(t *testing.T, steps []accountStep) {
	t.Helper()
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			code, body := s.do(t)
			checkStatus(t, s.name, code, body, s.want)
			if s.check != nil {
				s.check(t, body)
			}
		})
	}
}

// noSecret fails if a response other than a creation carries a token (dfns-api.md §1.4:
// the token is shown once).
func noSecret(t *testing.T, body []byte) {
	t.Helper()
	if bytes.Contains(body, []byte(`"accessToken":`)) {
		t.Fatalf("response carries an accessToken: %s", body)
	}
}

// checkAccessToken checks the fields of an AccessToken object.
func checkAccessToken(t *testing.T, tok client.AccessToken, kind, userID, orgID string, created bool) {
	t.Helper()
	if !dfnsID("to").MatchString(tok.TokenID) {
		t.Errorf("tokenId %q is not a to- id", tok.TokenID)
	}
	if tok.Kind != kind || tok.LinkedUserID != userID || tok.OrgID != orgID || tok.CredID == "" {
		t.Errorf("token %+v: want kind %s, linkedUserId %s, orgId %s, a credId", tok, kind, userID, orgID)
	}
	if !strings.Contains(tok.PublicKey, "-----BEGIN PUBLIC KEY-----") {
		t.Errorf("publicKey %q is not a PEM public key", tok.PublicKey)
	}
	for what, d := range map[string]string{"dateCreated": tok.DateCreated, "expiresAt": tok.ExpiresAt} {
		if !isoMillis.MatchString(d) {
			t.Errorf("%s %q is not an ISO date with milliseconds and Z", what, d)
		}
	}
	if (tok.AccessToken != "") != created {
		t.Errorf("accessToken present = %v, want %v", tok.AccessToken != "", created)
	}
	if !created {
		return
	}
	claims := jwtPayload(t, tok.AccessToken)
	app := jwtAppMetadata(t, tok.AccessToken)
	want := map[string]string{"orgId": orgID, "userId": userID, "tokenKind": kind, "tokenId": tok.TokenID}
	for k, v := range want {
		if app[k] != v {
			t.Errorf("JWT app_metadata.%s = %q, want %q", k, app[k], v)
		}
	}
	if u, ok := claims["https://custom/username"].(string); !ok || u == "" {
		t.Errorf("JWT https://custom/username = %#v, want the username", claims["https://custom/username"])
	}
	exp, _ := time.Parse(time.RFC3339, tok.ExpiresAt)
	if e, _ := claims["exp"].(float64); int64(e) != exp.Unix() {
		t.Errorf("JWT exp %v does not match expiresAt %s", claims["exp"], tok.ExpiresAt)
	}
}

// lifetime is expiresAt - dateCreated.
func lifetime(t *testing.T, tok client.AccessToken) time.Duration {
	t.Helper()
	c, err1 := time.Parse(time.RFC3339, tok.DateCreated)
	e, err2 := time.Parse(time.RFC3339, tok.ExpiresAt)
	if err1 != nil || err2 != nil {
		t.Fatalf("dates %q %q: %v %v", tok.DateCreated, tok.ExpiresAt, err1, err2)
	}
	return e.Sub(c)
}

func listed(t *testing.T, reader actor, userID string) bool {
	t.Helper()
	list, err := reader.ListServiceAccounts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, sa := range list {
		if sa.UserInfo.UserID == userID {
			return true
		}
	}
	return false
}

// works reports whether a's token is accepted, and fails on anything but 200 or 401.
func works(t *testing.T, a actor) bool {
	t.Helper()
	code, body := a.raw(t, http.MethodGet, "/auth/pats", nil, "")
	if code != 200 && code != 401 {
		t.Fatalf("GET /auth/pats: %d %s", code, body)
	}
	return code == 200
}

func TestServiceAccountCRUD(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		n := apptest.Start(t, e, apptest.Options{})
		admin := adminActor(t, n)
		orgID := n.Env.OrgID
		k := newKey(t, "P-256")
		var svc, svcPAT actor // the service account under test and a PAT of its user, once created
		path := func() string { return "/auth/service-accounts/" + svc.userID }
		decodeSA := func(t *testing.T, body []byte) client.ServiceAccount {
			var sa client.ServiceAccount
			decodeJSON(t, body, &sa)
			return sa
		}

		runSteps(t, []accountStep{
			{
				name: "pass/create", want: 200,
				do: func(t *testing.T) (int, []byte) {
					return admin.signed(t, http.MethodPost, "/auth/service-accounts",
						mustJSON(t, map[string]string{"name": "svc", "publicKey": k.PublicPEM, "externalId": "ext-1"}))
				},
				check: func(t *testing.T, body []byte) {
					sa := decodeSA(t, body)
					u := sa.UserInfo
					if !dfnsID("us").MatchString(u.UserID) || u.Name != "svc" || u.Kind != "CustomerEmployee" || u.OrgID != orgID ||
						!u.IsActive || !u.IsServiceAccount || u.ExternalID != "ext-1" || u.CredentialUUID == "" {
						t.Errorf("userInfo %+v", u)
					}
					if len(sa.AccessTokens) != 1 {
						t.Fatalf("%d access tokens, want 1", len(sa.AccessTokens))
					}
					tok := sa.AccessTokens[0]
					checkAccessToken(t, tok, "ServiceAccount", u.UserID, orgID, true)
					if d := lifetime(t, tok); d != 730*24*time.Hour {
						t.Errorf("default lifetime %v, want 730 days", d)
					}
					svc = actor{Client: client.New(n.URL, tok.AccessToken, k.Signer(t, tok.CredID)), key: k,
						credID: tok.CredID, userID: u.UserID, tokenID: tok.TokenID}
					if !works(t, svc) {
						t.Fatal("the new token is refused")
					}
					svcPAT = newPAT(t, n, svc, "Ed25519", client.CreateTokenRequest{Name: "svc-pat"})
				},
			},
			{
				name: "fail/create-duplicate-external-id", want: 409,
				do: func(t *testing.T) (int, []byte) {
					return admin.signed(t, http.MethodPost, "/auth/service-accounts",
						mustJSON(t, map[string]string{"name": "svc", "publicKey": newKey(t, "Ed25519").PublicPEM, "externalId": "ext-1"}))
				},
			},
			{
				name: "pass/list", want: 200,
				do: func(t *testing.T) (int, []byte) {
					return admin.raw(t, http.MethodGet, "/auth/service-accounts", nil, "")
				},
				check: func(t *testing.T, body []byte) {
					noSecret(t, body)
					var l struct {
						Items []client.ServiceAccount `json:"items"`
					}
					decodeJSON(t, body, &l)
					found := false
					for _, sa := range l.Items {
						found = found || sa.UserInfo.UserID == svc.userID
						for _, tok := range sa.AccessTokens {
							checkAccessToken(t, tok, "ServiceAccount", sa.UserInfo.UserID, orgID, false)
						}
					}
					if len(l.Items) != 2 || !found {
						t.Errorf("list has %d items (svc found: %v), want admin and svc", len(l.Items), found)
					}
				},
			},
			{
				name: "pass/get", want: 200,
				do: func(t *testing.T) (int, []byte) { return admin.raw(t, http.MethodGet, path(), nil, "") },
				check: func(t *testing.T, body []byte) {
					noSecret(t, body)
					if sa := decodeSA(t, body); sa.UserInfo.UserID != svc.userID || sa.UserInfo.Name != "svc" {
						t.Errorf("got %+v", sa.UserInfo)
					}
				},
			},
			{
				name: "fail/get-unknown", want: 404,
				do: func(t *testing.T) (int, []byte) {
					return admin.raw(t, http.MethodGet, "/auth/service-accounts/us-00000-00000-00000000000000", nil, "")
				},
			},
			{
				name: "pass/update-name", want: 200,
				do: func(t *testing.T) (int, []byte) {
					return admin.signed(t, http.MethodPut, path(), []byte(`{"name":"svc renamed"}`))
				},
				check: func(t *testing.T, body []byte) {
					noSecret(t, body)
					if sa := decodeSA(t, body); sa.UserInfo.Name != "svc renamed" {
						t.Errorf("name %q after update", sa.UserInfo.Name)
					}
					sa, err := admin.GetServiceAccount(t.Context(), svc.userID)
					if err != nil || sa.UserInfo.Name != "svc renamed" {
						t.Errorf("get after update: %+v %v", sa, err)
					}
				},
			},
			{
				name: "fail/update-to-taken-external-id", want: 409,
				do: func(t *testing.T) (int, []byte) {
					newSA(t, n, admin, "Ed25519", "holder") // no externalId
					body := mustJSON(t, map[string]string{"name": "holder2", "publicKey": newKey(t, "Ed25519").PublicPEM, "externalId": "ext-2"})
					code, resp := admin.signed(t, http.MethodPost, "/auth/service-accounts", body)
					checkStatus(t, "create holder of ext-2", code, resp, 200)
					return admin.signed(t, http.MethodPut, path(), []byte(`{"externalId":"ext-2"}`))
				},
				check: func(t *testing.T, _ []byte) {
					if sa, err := admin.GetServiceAccount(t.Context(), svc.userID); err != nil || sa.UserInfo.ExternalID != "ext-1" {
						t.Errorf("after a refused update: %+v %v", sa.UserInfo, err)
					}
				},
			},
			{
				name: "fail/update-empty-name", want: 400,
				do: func(t *testing.T) (int, []byte) {
					return admin.signed(t, http.MethodPut, path(), []byte(`{"name":" "}`))
				},
			},
			{
				name: "fail/self-deactivation", want: 400,
				do: func(t *testing.T) (int, []byte) { return svc.signed(t, http.MethodPut, path()+"/deactivate", nil) },
				check: func(t *testing.T, _ []byte) {
					if !works(t, svc) {
						t.Fatal("refused self-deactivation deactivated the token")
					}
				},
			},
			{
				name: "fail/self-archive", want: 400,
				do: func(t *testing.T) (int, []byte) { return svc.signed(t, http.MethodDelete, path(), nil) },
			},
			{
				name: "pass/deactivate", want: 200,
				do: func(t *testing.T) (int, []byte) {
					return admin.signed(t, http.MethodPut, path()+"/deactivate", []byte("{}"))
				},
				check: func(t *testing.T, body []byte) {
					noSecret(t, body)
					if decodeSA(t, body).UserInfo.IsActive {
						t.Error("isActive after deactivation")
					}
					if works(t, svc) {
						t.Error("deactivated service account's token still works")
					}
					if works(t, svcPAT) {
						t.Error("a PAT of a deactivated service account still works")
					}
					if !listed(t, admin, svc.userID) {
						t.Error("a deactivated service account must still be listed")
					}
				},
			},
			{
				name: "pass/activate", want: 200,
				do: func(t *testing.T) (int, []byte) { return admin.signed(t, http.MethodPut, path()+"/activate", nil) },
				check: func(t *testing.T, body []byte) {
					if !decodeSA(t, body).UserInfo.IsActive {
						t.Error("not active after activation")
					}
					if !works(t, svc) || !works(t, svcPAT) {
						t.Error("reactivated service account's token or PAT is refused")
					}
				},
			},
			{
				name: "pass/archive", want: 200,
				do: func(t *testing.T) (int, []byte) { return admin.signed(t, http.MethodDelete, path(), nil) },
				check: func(t *testing.T, body []byte) {
					noSecret(t, body)
					if listed(t, admin, svc.userID) {
						t.Error("archived service account is still listed")
					}
					if works(t, svc) || works(t, svcPAT) {
						t.Error("archived service account's token or PAT still works")
					}
				},
			},
			{
				name: "fail/activate-archived", want: 400,
				do: func(t *testing.T) (int, []byte) { return admin.signed(t, http.MethodPut, path()+"/activate", nil) },
				check: func(t *testing.T, _ []byte) {
					if works(t, svc) {
						t.Error("archived service account came back")
					}
				},
			},
		})
	})
}

func TestPATCRUD(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		n := apptest.Start(t, e, apptest.Options{})
		admin := adminActor(t, n)
		orgID := n.Env.OrgID
		other := newSA(t, n, admin, "Ed25519", "other")
		othersPAT := newPAT(t, n, other, "Ed25519", client.CreateTokenRequest{Name: "theirs"})
		k := newKey(t, "Ed25519")
		var pat actor
		path := func() string { return "/auth/pats/" + pat.tokenID }
		decodePAT := func(t *testing.T, body []byte) client.AccessToken {
			var tok client.AccessToken
			decodeJSON(t, body, &tok)
			return tok
		}
		create := func(body map[string]any) func(t *testing.T) (int, []byte) {
			return func(t *testing.T) (int, []byte) {
				if _, ok := body["publicKey"]; !ok {
					body["publicKey"] = newKey(t, "Ed25519").PublicPEM
				}
				if _, ok := body["name"]; !ok {
					body["name"] = "p"
				}
				return admin.signed(t, http.MethodPost, "/auth/pats", mustJSON(t, body))
			}
		}
		wantLifetime := func(d time.Duration) func(t *testing.T, body []byte) {
			return func(t *testing.T, body []byte) {
				tok := decodePAT(t, body)
				checkAccessToken(t, tok, "Pat", admin.userID, orgID, true)
				if got := lifetime(t, tok); got != d {
					t.Errorf("lifetime %v, want %v", got, d)
				}
			}
		}

		runSteps(t, []accountStep{
			{name: "pass/create-seconds-valid", want: 200, do: create(map[string]any{"secondsValid": 3600}), check: wantLifetime(time.Hour)},
			{name: "pass/create-days-valid", want: 200, do: create(map[string]any{"daysValid": 10}), check: wantLifetime(10 * 24 * time.Hour)},
			{name: "pass/create-seconds-valid-wins", want: 200, do: create(map[string]any{"daysValid": 10, "secondsValid": 60}), check: wantLifetime(time.Minute)},
			{name: "pass/create-days-valid-730", want: 200, do: create(map[string]any{"daysValid": 730}), check: wantLifetime(730 * 24 * time.Hour)},
			{name: "fail/create-days-valid-0", want: 400, do: create(map[string]any{"daysValid": 0})},
			{name: "fail/create-days-valid-731", want: 400, do: create(map[string]any{"daysValid": 731})},
			{name: "fail/create-days-valid-negative", want: 400, do: create(map[string]any{"daysValid": -1})},
			{name: "fail/create-seconds-valid-0", want: 400, do: create(map[string]any{"secondsValid": 0})},
			{name: "fail/create-seconds-valid-beyond-730-days", want: 400, do: create(map[string]any{"secondsValid": 730*86400 + 1})},
			{name: "fail/create-days-valid-string", want: 400, do: create(map[string]any{"daysValid": "10"})},
			{name: "fail/create-missing-name", want: 400, do: create(map[string]any{"name": ""})},
			{name: "fail/create-missing-public-key", want: 400, do: create(map[string]any{"publicKey": ""})},
			{
				name: "pass/create", want: 200,
				do: create(map[string]any{"name": "mine", "publicKey": k.PublicPEM, "externalId": "pat-ext"}),
				check: func(t *testing.T, body []byte) {
					tok := decodePAT(t, body)
					checkAccessToken(t, tok, "Pat", admin.userID, orgID, true)
					if tok.Name != "mine" || !tok.IsActive || tok.ExternalID != "pat-ext" {
						t.Errorf("PAT %+v", tok)
					}
					if u := jwtPayload(t, tok.AccessToken)["https://custom/username"]; u != "bootstrap-admin" {
						t.Errorf("JWT username %v, want the owner's, bootstrap-admin", u)
					}
					pat = actor{Client: client.New(n.URL, tok.AccessToken, k.Signer(t, tok.CredID)), key: k,
						credID: tok.CredID, userID: admin.userID, tokenID: tok.TokenID}
					if !works(t, pat) {
						t.Fatal("the new PAT is refused")
					}
				},
			},
			{
				name: "pass/list-only-own", want: 200,
				do: func(t *testing.T) (int, []byte) { return admin.raw(t, http.MethodGet, "/auth/pats", nil, "") },
				check: func(t *testing.T, body []byte) {
					noSecret(t, body)
					var l struct {
						Items []client.AccessToken `json:"items"`
					}
					decodeJSON(t, body, &l)
					found := false
					for _, tok := range l.Items {
						if tok.LinkedUserID != admin.userID || tok.Kind != "Pat" {
							t.Errorf("list has %s of %s (%s)", tok.TokenID, tok.LinkedUserID, tok.Kind)
						}
						found = found || tok.TokenID == pat.tokenID
					}
					if len(l.Items) != 5 || !found {
						t.Errorf("list has %d PATs (new one found: %v), want the 5 created", len(l.Items), found)
					}
				},
			},
			{
				name: "pass/list-of-other-user", want: 200,
				do: func(t *testing.T) (int, []byte) { return other.raw(t, http.MethodGet, "/auth/pats", nil, "") },
				check: func(t *testing.T, body []byte) {
					var l struct {
						Items []client.AccessToken `json:"items"`
					}
					decodeJSON(t, body, &l)
					if len(l.Items) != 1 || l.Items[0].TokenID != othersPAT.tokenID {
						t.Errorf("the other user lists %+v, want only its own PAT", l.Items)
					}
				},
			},
			{
				name: "pass/get", want: 200,
				do: func(t *testing.T) (int, []byte) { return admin.raw(t, http.MethodGet, path(), nil, "") },
				check: func(t *testing.T, body []byte) {
					noSecret(t, body)
					checkAccessToken(t, decodePAT(t, body), "Pat", admin.userID, orgID, false)
				},
			},
			{
				name: "fail/get-other-users-pat", want: 404,
				do: func(t *testing.T) (int, []byte) {
					return admin.raw(t, http.MethodGet, "/auth/pats/"+othersPAT.tokenID, nil, "")
				},
			},
			{
				name: "fail/get-service-account-token-as-pat", want: 404,
				do: func(t *testing.T) (int, []byte) {
					return admin.raw(t, http.MethodGet, "/auth/pats/"+admin.tokenID, nil, "")
				},
			},
			{
				name: "fail/update-other-users-pat", want: 404,
				do: func(t *testing.T) (int, []byte) {
					return admin.signed(t, http.MethodPut, "/auth/pats/"+othersPAT.tokenID, []byte(`{"name":"stolen"}`))
				},
			},
			{
				name: "fail/deactivate-other-users-pat", want: 404,
				do: func(t *testing.T) (int, []byte) {
					return admin.signed(t, http.MethodPut, "/auth/pats/"+othersPAT.tokenID+"/deactivate", nil)
				},
				check: func(t *testing.T, _ []byte) {
					if !works(t, othersPAT) {
						t.Error("the other user's PAT was deactivated")
					}
				},
			},
			{
				name: "pass/update", want: 200,
				do: func(t *testing.T) (int, []byte) {
					return admin.signed(t, http.MethodPut, path(), []byte(`{"name":"renamed"}`))
				},
				check: func(t *testing.T, body []byte) {
					noSecret(t, body)
					if tok := decodePAT(t, body); tok.Name != "renamed" {
						t.Errorf("name %q after update", tok.Name)
					}
				},
			},
			{
				name: "fail/self-deactivation", want: 400,
				do: func(t *testing.T) (int, []byte) { return pat.signed(t, http.MethodPut, path()+"/deactivate", nil) },
			},
			{
				name: "pass/deactivate", want: 200,
				do: func(t *testing.T) (int, []byte) { return admin.signed(t, http.MethodPut, path()+"/deactivate", nil) },
				check: func(t *testing.T, body []byte) {
					noSecret(t, body)
					if decodePAT(t, body).IsActive {
						t.Error("isActive after deactivation")
					}
					if works(t, pat) {
						t.Error("deactivated PAT still works")
					}
				},
			},
			{
				name: "pass/activate", want: 200,
				do: func(t *testing.T) (int, []byte) { return admin.signed(t, http.MethodPut, path()+"/activate", nil) },
				check: func(t *testing.T, _ []byte) {
					if !works(t, pat) {
						t.Error("reactivated PAT is refused")
					}
				},
			},
			{
				name: "pass/archive", want: 200,
				do: func(t *testing.T) (int, []byte) { return admin.signed(t, http.MethodDelete, path(), nil) },
				check: func(t *testing.T, _ []byte) {
					if works(t, pat) {
						t.Error("archived PAT still works")
					}
					list, err := admin.ListPATs(t.Context())
					if err != nil {
						t.Fatal(err)
					}
					for _, tok := range list {
						if tok.TokenID == pat.tokenID {
							t.Error("archived PAT is still listed")
						}
					}
				},
			},
			{
				name: "fail/activate-archived", want: 400,
				do: func(t *testing.T) (int, []byte) { return admin.signed(t, http.MethodPut, path()+"/activate", nil) },
			},
		})
	})
}

// TestTokenLifetimeValidation checks daysValid/secondsValid bounds on both creation calls
// (dfns-api.md §1.4: daysValid 1–730; secondsValid only for PATs).
func TestTokenLifetimeValidation(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		n := apptest.Start(t, e, apptest.Options{})
		admin := adminActor(t, n)
		tests := []struct {
			name  string
			path  string
			extra string // JSON members added to name and publicKey
			want  int
		}{
			{"fail/sa-days-valid-0", "/auth/service-accounts", `"daysValid":0`, 400},
			{"fail/sa-days-valid-731", "/auth/service-accounts", `"daysValid":731`, 400},
			{"fail/sa-seconds-valid", "/auth/service-accounts", `"secondsValid":3600`, 400},
			{"fail/sa-permission-id", "/auth/service-accounts", `"permissionId":"pm-x"`, 400},
			{"pass/sa-days-valid-1", "/auth/service-accounts", `"daysValid":1`, 200},
			{"pass/sa-days-valid-730", "/auth/service-accounts", `"daysValid":730`, 200},
			{"fail/pat-days-valid-0", "/auth/pats", `"daysValid":0`, 400},
			{"fail/pat-days-valid-731", "/auth/pats", `"daysValid":731`, 400},
			{"pass/pat-days-valid-1", "/auth/pats", `"daysValid":1`, 200},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				body := []byte(`{"name":"x","publicKey":` + string(mustJSON(t, newKey(t, "Ed25519").PublicPEM)) + `,` + tc.extra + `}`)
				code, resp := admin.signed(t, http.MethodPost, tc.path, body)
				checkStatus(t, tc.name, code, resp, tc.want)
			})
		}
	})
}
