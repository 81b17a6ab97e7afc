package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/countersign/countersign/internal/app/apptest"
	"github.com/countersign/countersign/internal/testutil"
)

// userObj is the Dfns User object as the tests read it.
type userObj struct {
	UserID                string `json:"userId"`
	Username              string `json:"username"`
	Name                  string `json:"name"`
	Kind                  string `json:"kind"`
	OrgID                 string `json:"orgId"`
	IsActive              bool   `json:"isActive"`
	IsServiceAccount      bool   `json:"isServiceAccount"`
	IsRegistered          bool   `json:"isRegistered"`
	RegistrationCode      string `json:"registrationCode"`
	PermissionAssignments []any  `json:"permissionAssignments"`
}

type userList struct {
	Items         []userObj `json:"items"`
	NextPageToken string    `json:"nextPageToken"`
}

// TestUsersAPI covers /auth/users: create, list (kind filter, pagination), get, activate,
// deactivate, archive, and who may do what; every refused call changes nothing.
func TestUsersAPI(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		n := apptest.Start(t, e, apptest.Options{})
		admin := adminActor(t, n)
		orgID := jwtAppMetadata(t, admin.Token)["orgId"]

		st, body := admin.signed(t, "POST", "/auth/users", mustJSON(t, map[string]string{"email": "emp@example.co", "kind": "CustomerEmployee", "externalId": "hr-1"}))
		checkStatus(t, "create employee", st, body, 200)
		var emp userObj
		decodeJSON(t, body, &emp)
		if !dfnsID("us").MatchString(emp.UserID) || emp.Username != "emp@example.co" || emp.Kind != "CustomerEmployee" ||
			emp.OrgID != orgID || !emp.IsActive || emp.IsRegistered || emp.IsServiceAccount || emp.PermissionAssignments == nil {
			t.Fatalf("created user: %s", body)
		}
		// No SMTP here: the code comes back to the admin, in the documented shape.
		if len(emp.RegistrationCode) != 11 || strings.Count(emp.RegistrationCode, "-") != 2 {
			t.Fatalf("registrationCode %q", emp.RegistrationCode)
		}
		st, body = admin.signed(t, "POST", "/auth/users", mustJSON(t, map[string]string{"email": "end@example.co", "kind": "EndUser"}))
		checkStatus(t, "create end user", st, body, 200)
		var end userObj
		decodeJSON(t, body, &end)

		for _, tc := range []struct {
			name string
			body map[string]string
			want int
		}{
			{"duplicate-email", map[string]string{"email": "emp@example.co", "kind": "CustomerEmployee"}, 409},
			{"not-an-email", map[string]string{"email": "Emp <emp@example.co>", "kind": "CustomerEmployee"}, 400},
			{"no-email", map[string]string{"kind": "CustomerEmployee"}, 400},
			{"bad-kind", map[string]string{"email": "x@example.co", "kind": "DfnsStaff"}, 400},
		} {
			ua := admin.uaToken(t, "POST", "/auth/users", mustJSON(t, tc.body))
			before := entityDigest(t, n)
			st, body := admin.raw(t, "POST", "/auth/users", mustJSON(t, tc.body), ua)
			checkStatus(t, "create/"+tc.name, st, body, tc.want)
			if entityDigest(t, n) != before {
				t.Errorf("create/%s changed users", tc.name)
			}
		}
		unchanged(t, n, "create without user action", func() {
			st, body := admin.raw(t, "POST", "/auth/users", mustJSON(t, map[string]string{"email": "y@example.co", "kind": "EndUser"}), "")
			checkStatus(t, "create without UA", st, body, 403)
		})

		// List: people only (the admin service account is not one), kind filter, pages.
		list := func(q string) userList {
			t.Helper()
			st, body := admin.raw(t, "GET", "/auth/users"+q, nil, "")
			checkStatus(t, "list "+q, st, body, 200)
			var l userList
			decodeJSON(t, body, &l)
			return l
		}
		if l := list(""); len(l.Items) != 2 || l.NextPageToken != "" {
			t.Fatalf("list: %+v", l)
		}
		if l := list("?kind=EndUser"); len(l.Items) != 1 || l.Items[0].UserID != end.UserID {
			t.Fatalf("list EndUser: %+v", l)
		}
		p1 := list("?limit=1")
		if len(p1.Items) != 1 || p1.NextPageToken == "" {
			t.Fatalf("page 1: %+v", p1)
		}
		p2 := list("?limit=1&paginationToken=" + p1.NextPageToken)
		if len(p2.Items) != 1 || p2.Items[0].UserID == p1.Items[0].UserID || p2.NextPageToken != "" {
			t.Fatalf("page 2: %+v", p2)
		}
		st, body = admin.raw(t, "GET", "/auth/users?kind=Robot", nil, "")
		checkStatus(t, "list bad kind", st, body, 400)

		st, body = admin.raw(t, "GET", "/auth/users/"+emp.UserID, nil, "")
		checkStatus(t, "get", st, body, 200)
		adminID := jwtAppMetadata(t, admin.Token)["userId"]
		st, body = admin.raw(t, "GET", "/auth/users/"+adminID, nil, "")
		checkStatus(t, "get a service account as a user", st, body, 404)

		// Another organization sees none of it.
		other := newOrg(t, n)
		st, body = other.raw(t, "GET", "/auth/users/"+emp.UserID, nil, "")
		checkStatus(t, "other org get", st, body, 404)
		ua := other.uaToken(t, "PUT", "/auth/users/"+emp.UserID+"/deactivate", []byte(`{}`))
		before := entityDigest(t, n)
		st, body = other.raw(t, "PUT", "/auth/users/"+emp.UserID+"/deactivate", []byte(`{}`), ua)
		checkStatus(t, "other org deactivate", st, body, 404)
		if entityDigest(t, n) != before {
			t.Error("another organization's deactivation changed users")
		}
		st, body = other.raw(t, "GET", "/auth/users", nil, "")
		checkStatus(t, "other org list", st, body, 200)
		if strings.Contains(string(body), emp.UserID) {
			t.Fatalf("other org lists our users: %s", body)
		}

		// The end user registers with a Key credential and logs in; end users cannot manage users.
		k := newKey(t, "Ed25519")
		ch := registrationInit(t, n, orgID, "end@example.co", mustCode(t, end))
		st, body = call(t, n, "POST", "/auth/registration", ch.TemporaryAuthenticationToken,
			map[string]any{"firstFactorCredential": keyAttest(t, k, "Key", "end-key", ch.Challenge)})
		checkStatus(t, "end user registers", st, body, 200)
		ep := &person{n: n, email: "end@example.co", userID: end.UserID, orgID: orgID}
		lc := ep.loginInit(t)
		st, body = call(t, n, "POST", "/auth/login", "", map[string]any{"challengeIdentifier": lc.ChallengeIdentifier,
			"firstFactor": keyFactor(t, k, "end-key", lc.Challenge)})
		checkStatus(t, "end user login", st, body, 200)
		var tok struct{ Token string }
		decodeJSON(t, body, &tok)
		st, body = call(t, n, "GET", "/auth/users", tok.Token, nil)
		checkStatus(t, "end user lists users", st, body, 403)
		st, body = call(t, n, "GET", "/auth/users/"+emp.UserID, tok.Token, nil)
		checkStatus(t, "end user reads another user", st, body, 403)
		st, body = call(t, n, "GET", "/auth/users/"+end.UserID, tok.Token, nil)
		checkStatus(t, "end user reads themselves", st, body, 200)
		var self userObj
		decodeJSON(t, body, &self)
		if !self.IsRegistered || self.Kind != "EndUser" {
			t.Fatalf("end user after registration: %s", body)
		}
		st, body = call(t, n, "GET", "/auth/service-accounts", tok.Token, nil)
		checkStatus(t, "end user lists service accounts", st, body, 403)

		// Deactivation takes effect on the very next request of the user's session.
		st, body = call(t, n, "GET", "/auth/credentials", tok.Token, nil)
		checkStatus(t, "session works", st, body, 200)
		st, body = admin.signed(t, "PUT", "/auth/users/"+end.UserID+"/deactivate", []byte(`{}`))
		checkStatus(t, "deactivate", st, body, 200)
		var u userObj
		decodeJSON(t, body, &u)
		if u.IsActive {
			t.Fatalf("deactivated user is active: %s", body)
		}
		st, body = call(t, n, "GET", "/auth/credentials", tok.Token, nil)
		checkStatus(t, "session of a deactivated user", st, body, 401)
		unchanged(t, n, "login init of a deactivated user", func() {
			st, body := call(t, n, "POST", "/auth/login/init", "", map[string]string{"username": "end@example.co", "orgId": orgID})
			checkStatus(t, "login init deactivated", st, body, 400)
		})
		st, body = admin.signed(t, "PUT", "/auth/users/"+end.UserID+"/activate", []byte(`{}`))
		checkStatus(t, "activate", st, body, 200)
		lc = ep.loginInit(t)
		st, body = call(t, n, "POST", "/auth/login", "", map[string]any{"challengeIdentifier": lc.ChallengeIdentifier,
			"firstFactor": keyFactor(t, k, "end-key", lc.Challenge)})
		checkStatus(t, "login after reactivation", st, body, 200)

		// Archive: gone from the list, no longer changeable, cannot log in.
		st, body = admin.signed(t, "DELETE", "/auth/users/"+end.UserID, []byte(`{}`))
		checkStatus(t, "archive", st, body, 200)
		if l := list(""); len(l.Items) != 1 || l.Items[0].UserID != emp.UserID {
			t.Fatalf("list after archive: %+v", l)
		}
		st, body = admin.signed(t, "PUT", "/auth/users/"+end.UserID+"/activate", []byte(`{}`))
		checkStatus(t, "activate archived", st, body, 400)
		unchanged(t, n, "login init of an archived user", func() {
			st, body := call(t, n, "POST", "/auth/login/init", "", map[string]string{"username": "end@example.co", "orgId": orgID})
			checkStatus(t, "login init archived", st, body, 401)
		})

		// With a notifier that delivers (SMTP), the code goes to the user only.
		notes := &delivering{}
		n.App.Users.SetNotifier(notes)
		st, body = admin.signed(t, "POST", "/auth/users", mustJSON(t, map[string]string{"email": "mailed@example.co", "kind": "CustomerEmployee"}))
		checkStatus(t, "create with mail", st, body, 200)
		if strings.Contains(string(body), "registrationCode") {
			t.Fatalf("the code was returned although it was mailed: %s", body)
		}
		first := notes.lastCode(t, "mailed@example.co")
		// A resent code replaces the first one (PUT /auth/registration/code, public, answers the same for anyone).
		for _, who := range []string{"mailed@example.co", "nobody@example.co"} {
			st, body = call(t, n, "PUT", "/auth/registration/code", "", map[string]string{"username": who, "orgId": orgID})
			checkStatus(t, "resend code to "+who, st, body, 200)
		}
		mailed := notes.lastCode(t, "mailed@example.co")
		if mailed == first {
			t.Fatal("the resent code is the first one")
		}
		unchanged(t, n, "registration init with a replaced code", func() {
			st, body := call(t, n, "POST", "/auth/registration/init", "", map[string]string{"orgId": orgID, "username": "mailed@example.co", "registrationCode": first})
			checkStatus(t, "replaced code", st, body, 401)
		})
		ch = registrationInit(t, n, orgID, "mailed@example.co", mailed)
		if ch.Challenge == "" {
			t.Fatal("no challenge for the mailed code")
		}

		// Registration codes: wrong code refused, and the code expires after 4 hours.
		unchanged(t, n, "registration init with a wrong code", func() {
			st, body := call(t, n, "POST", "/auth/registration/init", "", map[string]string{"orgId": orgID, "username": "emp@example.co", "registrationCode": "AAA-AAA-AAA"})
			checkStatus(t, "wrong registration code", st, body, 401)
		})
		unchanged(t, n, "registration init of an unknown user", func() {
			st, body := call(t, n, "POST", "/auth/registration/init", "", map[string]string{"orgId": orgID, "username": "nobody@example.co", "registrationCode": emp.RegistrationCode})
			checkStatus(t, "unknown user", st, body, 401)
		})
		n.Clock.Advance(4*time.Hour + time.Minute)
		unchanged(t, n, "registration init with an expired code", func() {
			st, body := call(t, n, "POST", "/auth/registration/init", "", map[string]string{"orgId": orgID, "username": "emp@example.co", "registrationCode": emp.RegistrationCode})
			checkStatus(t, "expired registration code", st, body, 401)
		})
	})
}

func mustCode(t testing.TB, u userObj) string {
	t.Helper()
	if u.RegistrationCode == "" {
		t.Fatalf("user %s has no registration code", u.UserID)
	}
	return u.RegistrationCode
}

// delivering is a notifier fake that counts as delivered mail (like SMTP).
type delivering struct{ captured }

func (*delivering) Delivers() bool { return true }
