package e2e

import (
	"crypto/sha256"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/countersign/countersign/internal/app/apptest"
	"github.com/countersign/countersign/internal/testutil"
)

// TestAuditLog checks GET /auth/action/logs and /auth/action/logs/{id}: newest first,
// pagination, filters, and which requests are recorded.
func TestAuditLog(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		n := apptest.Start(t, e, apptest.Options{})
		admin := adminActor(t, n)
		const put, post, get = http.MethodPut, http.MethodPost, http.MethodGet

		// Five signed requests one second apart; times[i] is when request i ran.
		var times []time.Time
		var bodies [][]byte
		tick := func(a actor, method, path string, body []byte) {
			t.Helper()
			times = append(times, n.Clock.Now())
			bodies = append(bodies, body)
			code, resp := a.signed(t, method, path, body)
			checkStatus(t, method+" "+path, code, resp, 200)
			n.Clock.Advance(time.Second)
		}
		times = append(times, n.Clock.Now())
		bodies = append(bodies, nil) // newSA's body is built by the client
		sa := newSA(t, n, admin, "P-256", "sa")
		n.Clock.Advance(time.Second)
		saPath := "/auth/service-accounts/" + sa.userID
		tick(admin, put, saPath, []byte(`{"name":"a"}`))
		tick(sa, post, "/auth/pats", mustJSON(t, map[string]string{"name": "p", "publicKey": newKey(t, "Ed25519").PublicPEM}))
		tick(admin, put, saPath, []byte(`{"name":"b"}`))
		tick(sa, put, saPath, []byte(`{"name":"self"}`))
		users := []string{admin.userID, admin.userID, sa.userID, admin.userID, sa.userID}

		all := auditLog(t, admin, "")
		if len(all) != 5 {
			t.Fatalf("%d entries, want 5", len(all))
		}
		for i, en := range all { // newest first: all[i] is request 4-i
			r := 4 - i
			if want := jsTime(times[r]); en.DatePerformed != want || en.UserID != users[r] || en.Status != 200 {
				t.Errorf("entry %d: %s by %s status %d, want request %d at %s by %s status 200",
					i, en.DatePerformed, en.UserID, en.Status, r, want, users[r])
			}
			if bodies[r] != nil {
				if sum := sha256.Sum256(bodies[r]); en.BodySha256 != b64u.EncodeToString(sum[:]) {
					t.Errorf("entry %d: bodySha256 %s is not the SHA-256 of the body", i, en.BodySha256)
				}
			}
			if en.ActionToken == "" || en.TokenID == "" || en.Method == "" || en.Path == "" || !isoMillis.MatchString(en.DateFinished) {
				t.Errorf("entry %d is incomplete: %+v", i, en)
			}
		}

		t.Run("pass/pagination", func(t *testing.T) {
			var pages [][]auditEntry
			token := ""
			for range 10 {
				q := url.Values{"limit": {"2"}}
				if token != "" {
					q.Set("paginationToken", token)
				}
				code, body := admin.raw(t, get, "/auth/action/logs?"+q.Encode(), nil, "")
				checkStatus(t, "page", code, body, 200)
				var p auditPage
				decodeJSON(t, body, &p)
				pages = append(pages, p.Items)
				if p.NextPageToken == nil {
					break
				}
				if *p.NextPageToken == "" {
					t.Fatal("nextPageToken is empty instead of absent")
				}
				token = *p.NextPageToken
			}
			var joined []auditEntry
			for _, p := range pages {
				joined = append(joined, p...)
			}
			if len(pages) != 3 || len(pages[0]) != 2 || len(pages[1]) != 2 || len(pages[2]) != 1 || !reflect.DeepEqual(joined, all) {
				t.Fatalf("pages of sizes %v do not add up to the full list", pageSizes(pages))
			}
		})

		filters := []struct {
			name  string
			query url.Values
			want  []int // request numbers, newest first
		}{
			{"pass/filter-user-id", url.Values{"userId": {sa.userID}}, []int{4, 2}},
			{"pass/filter-other-user-id", url.Values{"userId": {admin.userID}}, []int{3, 1, 0}},
			{"pass/filter-unknown-user-id", url.Values{"userId": {"us-00000-00000-00000000000000"}}, nil},
			{"pass/filter-start-end-iso", url.Values{"startTime": {jsTime(times[1])}, "endTime": {jsTime(times[3])}}, []int{3, 2, 1}},
			{"pass/filter-start-end-unix-ms", url.Values{
				"startTime": {strconv.FormatInt(times[1].UnixMilli(), 10)}, "endTime": {strconv.FormatInt(times[2].UnixMilli(), 10)},
			}, []int{2, 1}},
			{"pass/filter-start-only", url.Values{"startTime": {jsTime(times[4])}}, []int{4}},
			{"pass/filter-end-only", url.Values{"endTime": {jsTime(times[0])}}, []int{0}},
			{"pass/filter-user-and-time", url.Values{"userId": {admin.userID}, "startTime": {jsTime(times[1])}}, []int{3, 1}},
			{"pass/filter-user-and-limit", url.Values{"userId": {admin.userID}, "limit": {"1"}}, []int{3, 1, 0}},
		}
		for _, tc := range filters {
			t.Run(tc.name, func(t *testing.T) {
				got := auditLog(t, admin, tc.query.Encode())
				var want []auditEntry
				for _, r := range tc.want {
					want = append(want, all[4-r])
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("got %d entries %v, want requests %v", len(got), dates(got), tc.want)
				}
			})
		}

		t.Run("pass/get-one", func(t *testing.T) {
			for _, en := range all {
				code, body := admin.raw(t, get, "/auth/action/logs/"+en.ID, nil, "")
				checkStatus(t, "get "+en.ID, code, body, 200)
				var got auditEntry
				decodeJSON(t, body, &got)
				if !reflect.DeepEqual(got, en) {
					t.Fatalf("GET one differs from the list:\n got %+v\nwant %+v", got, en)
				}
			}
		})

		bad := []struct {
			name string
			path string
			want int
		}{
			{"fail/get-unknown-id", "/auth/action/logs/al-00000-00000-00000000000000", 404},
			{"fail/limit-0", "/auth/action/logs?limit=0", 400},
			{"fail/limit-not-a-number", "/auth/action/logs?limit=two", 400},
			{"fail/limit-too-large", "/auth/action/logs?limit=100000", 400},
			{"fail/start-time-garbage", "/auth/action/logs?startTime=yesterday", 400},
			{"fail/unknown-pagination-token", "/auth/action/logs?paginationToken=al-00000-00000-00000000000000", 400},
		}
		for _, tc := range bad {
			t.Run(tc.name, func(t *testing.T) {
				code, body := admin.raw(t, get, tc.path, nil, "")
				checkStatus(t, tc.path, code, body, tc.want)
			})
		}

		t.Run("pass/refused-binding-writes-nothing", func(t *testing.T) {
			tok := admin.uaToken(t, put, saPath, []byte(`{"name":"signed"}`))
			code, body := admin.raw(t, put, saPath, []byte(`{"name":"sent"}`), tok)
			checkStatus(t, "body mismatch", code, body, 403)
			if got := auditLog(t, admin, ""); !reflect.DeepEqual(got, all) {
				t.Fatalf("a refused request changed the audit log: %d entries, want %d", len(got), len(all))
			}
		})

		t.Run("pass/handler-failure-is-recorded", func(t *testing.T) {
			n.Clock.Advance(time.Second)
			body := mustJSON(t, map[string]string{"name": "bad", "publicKey": "not a PEM"})
			code, resp := admin.signed(t, post, "/auth/service-accounts", body)
			checkStatus(t, "create with invalid key", code, resp, 400)
			got := auditLog(t, admin, "")
			if len(got) != len(all)+1 {
				t.Fatalf("%d entries, want %d", len(got), len(all)+1)
			}
			en, sum := got[0], sha256.Sum256(body)
			if en.Status != 400 || en.Method != post || en.Path != "/auth/service-accounts" || en.UserID != admin.userID ||
				en.BodySha256 != b64u.EncodeToString(sum[:]) || en.FirstFactorCredential.CredentialID != admin.credID {
				t.Fatalf("entry %+v, want the refused POST /auth/service-accounts with status 400", en)
			}
			cd, _ := b64u.DecodeString(en.FirstFactorCredential.ClientData)
			sig, _ := b64u.DecodeString(en.FirstFactorCredential.Signature)
			if !admin.key.verify(cd, sig) {
				t.Fatal("the recorded assertion does not verify")
			}
		})

		t.Run("pass/service-account-reads-log", func(t *testing.T) {
			if got := auditLog(t, sa, "userId="+sa.userID); len(got) != 2 {
				t.Fatalf("service account reads %d of its entries, want 2", len(got))
			}
		})
	})
}

// jsTime formats like Date.toISOString.
func jsTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func pageSizes(pages [][]auditEntry) []int {
	var out []int
	for _, p := range pages {
		out = append(out, len(p))
	}
	return out
}

func dates(es []auditEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.DatePerformed)
	}
	return out
}

// TestAuditStatusVisibleWithResponse checks read-your-writes on the audit log: once a
// signed request has been answered, its entry carries that answer's status. A client that
// audits what it just did must never see status 0 ("unknown", which the log reserves for
// a node that died mid-request).
func TestAuditStatusVisibleWithResponse(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		n := apptest.Start(t, e, apptest.Options{})
		admin := adminActor(t, n)
		sa := newSA(t, n, admin, "Ed25519", "sa")
		path := "/auth/service-accounts/" + sa.userID
		unfinished := 0
		const rounds = 100
		for i := range rounds {
			n.Clock.Advance(time.Millisecond) // the newest entry is the first one listed
			code, body := admin.signed(t, http.MethodPut, path, mustJSON(t, map[string]string{"name": "n" + strconv.Itoa(i)}))
			checkStatus(t, "rename", code, body, 200)
			code, body = admin.raw(t, http.MethodGet, "/auth/action/logs?limit=1", nil, "")
			checkStatus(t, "read log", code, body, 200)
			var p auditPage
			decodeJSON(t, body, &p)
			if len(p.Items) != 1 || p.Items[0].Method != http.MethodPut {
				t.Fatalf("newest entry is not the rename: %s", body)
			}
			if p.Items[0].Status != 200 || p.Items[0].DateFinished == "" {
				unfinished++
			}
		}
		if unfinished > 0 {
			t.Fatalf("%d of %d answered requests had an unfinished audit entry (status 0) right after the answer", unfinished, rounds)
		}
	})
}
