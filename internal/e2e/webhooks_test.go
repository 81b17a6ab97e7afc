package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/countersign/countersign/client"
	"github.com/countersign/countersign/internal/app/apptest"
	"github.com/countersign/countersign/internal/store"
	"github.com/countersign/countersign/internal/testutil"
	"github.com/countersign/countersign/internal/webhooks"
)

// whEnvelope is a delivered body (dfns-api.md §5.2).
type whEnvelope struct {
	ID              string                     `json:"id"`
	Kind            string                     `json:"kind"`
	Date            string                     `json:"date"`
	Data            map[string]json.RawMessage `json:"data"`
	DeliveryAttempt int                        `json:"deliveryAttempt"`
	RetryOf         string                     `json:"retryOf"`
	TimestampSent   int64                      `json:"timestampSent"`
}

type whDelivery struct {
	body []byte
	sig  string
	env  whEnvelope
}

// whReceiver is a webhook receiver on loopback that records every delivery; answer picks
// the status of the n-th one (200 when nil).
type whReceiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	got    []whDelivery
	answer func(n int) int
}

func newWHReceiver(t testing.TB, answer func(n int) int) *whReceiver {
	r := &whReceiver{answer: answer}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		d := whDelivery{body: b, sig: req.Header.Get(webhooks.SignatureHeader)}
		_ = json.Unmarshal(b, &d.env)
		r.mu.Lock()
		n := len(r.got)
		r.got = append(r.got, d)
		r.mu.Unlock()
		code := http.StatusOK
		if r.answer != nil {
			code = r.answer(n)
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *whReceiver) deliveries() []whDelivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// waitFor polls until cond holds on the deliveries (generous deadline: the machine is loaded).
func (r *whReceiver) waitFor(t testing.TB, what string, cond func([]whDelivery) bool) []whDelivery {
	t.Helper()
	return r.waitForWithin(t, 60*time.Second, what, cond)
}

func (r *whReceiver) waitForWithin(t testing.TB, d time.Duration, what string, cond func([]whDelivery) bool) []whDelivery {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ds := r.deliveries()
		if cond(ds) {
			return ds
		}
		if time.Now().After(deadline) {
			kinds := []string{}
			for _, d := range ds[:min(len(ds), 20)] {
				kinds = append(kinds, d.env.Kind)
			}
			t.Fatalf("timed out waiting for %s; got %d deliveries: %v", what, len(ds), kinds)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type whWebhook struct {
	ID          string   `json:"id"`
	URL         string   `json:"url"`
	Events      []string `json:"events"`
	Status      string   `json:"status"`
	Description string   `json:"description"`
	DateCreated string   `json:"dateCreated"`
	DateUpdated string   `json:"dateUpdated"`
	Secret      string   `json:"secret"`
}

type whEvent struct {
	ID              string          `json:"id"`
	Kind            string          `json:"kind"`
	Date            string          `json:"date"`
	Data            json.RawMessage `json:"data"`
	Status          string          `json:"status"`
	Error           string          `json:"error"`
	DeliveryFailed  bool            `json:"deliveryFailed"`
	DeliveryAttempt int             `json:"deliveryAttempt"`
	RetryOf         string          `json:"retryOf"`
	TimestampSent   int64           `json:"timestampSent"`
	NextAttemptDate string          `json:"nextAttemptDate"`
}

type whEventList struct {
	Items         []whEvent `json:"items"`
	NextPageToken string    `json:"nextPageToken"`
}

func whCreate(t testing.TB, c *client.Client, body map[string]any) whWebhook {
	t.Helper()
	var w whWebhook
	if err := c.Do(context.Background(), http.MethodPost, "/webhooks", body, &w); err != nil {
		t.Fatalf("create webhook %v: %v", body, err)
	}
	return w
}

func whEvents(t testing.TB, c *client.Client, webhookID, query string) whEventList {
	t.Helper()
	var l whEventList
	if err := c.Do(context.Background(), http.MethodGet, "/webhooks/"+webhookID+"/events"+query, nil, &l); err != nil {
		t.Fatal(err)
	}
	return l
}

var (
	whEventID = regexp.MustCompile(`^whe-[0-9a-v]{5}-[0-9a-v]{5}-[0-9a-v]{14,16}$`)
	whID      = regexp.MustCompile(`^wh-[0-9a-v]{5}-[0-9a-v]{5}-[0-9a-v]{14,16}$`)
	whSecret  = regexp.MustCompile(`^whs-[A-Za-z0-9]{32}$`)
	whISO     = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)
)

// dataKeys is the data object's one key per kind family (dfns-api.md §5.2).
func whDataKey(kind string) string {
	switch {
	case strings.HasPrefix(kind, "key."):
		return "key"
	case strings.HasPrefix(kind, "wallet.signature."):
		return "signatureRequest"
	case strings.HasPrefix(kind, "wallet.transfer."):
		return "transferRequest"
	case strings.HasPrefix(kind, "wallet.transaction."):
		return "transactionRequest"
	case strings.HasPrefix(kind, "wallet.blockchainevent."):
		return "blockchainEvent"
	default:
		return "wallet"
	}
}

// whCheckDelivery checks a delivery the way a receiver following the Dfns docs would: the
// HMAC over the exact body, the same HMAC over JSON.stringify(JSON.parse(body)) (the
// body is already in that form), timestampSent within 5 minutes, and the envelope shape.
func whCheckDelivery(t testing.TB, secret string, d whDelivery) {
	t.Helper()
	if !webhooks.Verify(secret, d.body, d.sig) {
		t.Errorf("%s: signature %q does not verify over the body %s", d.env.Kind, d.sig, d.body)
	}
	if canon, err := webhooks.Canonical(d.body); err != nil || !bytes.Equal(canon, d.body) {
		t.Errorf("%s: body does not survive a JSON.parse/JSON.stringify round trip: %s", d.env.Kind, d.body)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(d.body, &raw); err != nil {
		t.Fatalf("body is not a JSON object: %s", d.body)
	}
	for k := range raw {
		if !slices.Contains([]string{"id", "kind", "date", "data", "deliveryAttempt", "retryOf", "timestampSent"}, k) {
			t.Errorf("%s: unexpected envelope field %q", d.env.Kind, k)
		}
	}
	e := d.env
	if !whEventID.MatchString(e.ID) || !whISO.MatchString(e.Date) || e.DeliveryAttempt < 1 {
		t.Errorf("envelope %+v", e)
	}
	if skew := time.Since(time.Unix(e.TimestampSent, 0)); skew > 5*time.Minute || skew < -5*time.Minute {
		t.Errorf("%s: timestampSent %d is %v from now", e.Kind, e.TimestampSent, skew)
	}
	if (e.DeliveryAttempt == 1) != (e.RetryOf == "") {
		t.Errorf("%s: attempt %d with retryOf %q", e.Kind, e.DeliveryAttempt, e.RetryOf)
	}
	if e.Kind == webhooks.PingKind {
		return
	}
	key := whDataKey(e.Kind)
	var obj map[string]any
	idField := "id"
	if key == "blockchainEvent" { // a chain event has no id of ours: its transaction names it
		idField = "txHash"
	}
	if len(e.Data) != 1 || json.Unmarshal(e.Data[key], &obj) != nil || obj[idField] == nil {
		t.Errorf("%s: data %s, want {%q: {id: …}}", e.Kind, raw["data"], key)
	}
}

// TestWebhookEvents: every kind countersign emits arrives at a real receiver, signed, in
// the documented envelope, once per subscribed webhook; the API manages webhooks and lists
// their events with the kind, deliveryFailed and pagination filters.
func TestWebhookEvents(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		ctx := context.Background()
		n := apptest.Start(t, e, apptest.Options{WebhooksAllowPrivate: true, WebhookRetrySchedule: "1s,2s,4s"})
		c := n.Admin
		all, walletsOnly, off := newWHReceiver(t, nil), newWHReceiver(t, nil), newWHReceiver(t, nil)

		wh := whCreate(t, c, map[string]any{"url": all.srv.URL + "/hook?x=1", "events": []string{"*"}, "description": "all <events> & more"})
		if !whID.MatchString(wh.ID) || !whSecret.MatchString(wh.Secret) || wh.Status != "Enabled" || !slices.Equal(wh.Events, []string{"*"}) ||
			!whISO.MatchString(wh.DateCreated) || wh.DateUpdated != wh.DateCreated || wh.Description != "all <events> & more" {
			t.Fatalf("created webhook %+v", wh)
		}
		wOnly := whCreate(t, c, map[string]any{"url": walletsOnly.srv.URL, "events": []string{"wallet.created", "wallet.created"}})
		if !slices.Equal(wOnly.Events, []string{"wallet.created"}) {
			t.Fatalf("events not deduplicated: %v", wOnly.Events)
		}
		whCreate(t, c, map[string]any{"url": off.srv.URL, "events": []string{"*"}, "status": "Disabled"})

		// The secret is shown once: never by get or list, and stored sealed.
		status, body, err := c.Raw(ctx, http.MethodGet, "/webhooks/"+wh.ID, nil, "")
		if err != nil || status != 200 || strings.Contains(string(body), wh.Secret) || strings.Contains(string(body), `"secret"`) {
			t.Fatalf("get webhook: %d %s %v", status, body, err)
		}
		status, body, err = c.Raw(ctx, http.MethodGet, "/webhooks", nil, "")
		if err != nil || status != 200 || strings.Contains(string(body), `"secret"`) || strings.Count(string(body), `"id":"wh-`) != 3 {
			t.Fatalf("list webhooks: %d %s %v", status, body, err)
		}
		var sealed []byte
		if err := n.App.DB.Tx(ctx, func(tx *store.Tx) error {
			ctx, stx := tx.SQL(ctx)
			return stx.QueryRowContext(ctx, `SELECT sealed_secret FROM webhooks WHERE id = $1`, wh.ID).Scan(&sealed)
		}); err != nil || len(sealed) == 0 || bytes.Contains(sealed, []byte(wh.Secret)) {
			t.Fatalf("stored secret not sealed: %v", err)
		}

		// State changes over the API.
		var w walletResp
		if err := c.Do(ctx, http.MethodPost, "/wallets", map[string]any{"network": "EthereumSepolia"}, &w); err != nil {
			t.Fatal(err)
		}
		if err := c.Do(ctx, http.MethodPut, "/wallets/"+w.ID+"/tags", map[string]any{"tags": []string{"hot"}}, nil); err != nil {
			t.Fatal(err)
		}
		var sig sigResp
		if err := c.Do(ctx, http.MethodPost, "/wallets/"+w.ID+"/signatures", map[string]any{"kind": "Hash", "hash": "0x" + strings.Repeat("ab", 32)}, &sig); err != nil {
			t.Fatal(err)
		}
		var k struct {
			ID string `json:"id"`
		}
		if err := c.Do(ctx, http.MethodPost, "/keys", map[string]any{"scheme": "ECDSA", "curve": "secp256k1"}, &k); err != nil {
			t.Fatal(err)
		}
		if err := c.Do(ctx, http.MethodDelete, "/keys/"+k.ID, nil, nil); err != nil {
			t.Fatal(err)
		}
		if err := c.Do(ctx, http.MethodPost, "/dev/faucet", map[string]any{"network": "EthereumSepolia", "address": w.Address, "amount": "1000000000000000000"}, nil); err != nil {
			t.Fatal(err)
		}
		var tr transferResp
		if err := c.Do(ctx, http.MethodPost, "/wallets/"+w.ID+"/transfers", map[string]any{"kind": "Native", "to": "0x000000000000000000000000000000000000dEaD", "amount": "1000"}, &tr); err != nil {
			t.Fatal(err)
		}
		var btx transferResp
		if err := c.Do(ctx, http.MethodPost, "/wallets/"+w.ID+"/transactions", map[string]any{"kind": "Evm", "to": "0x000000000000000000000000000000000000dEaD", "value": "1"}, &btx); err != nil {
			t.Fatal(err)
		}
		// Failures cannot be provoked over HTTP here (local signing does not fail, and the
		// dev chain takes every transfer that passed the balance checks): those kinds are
		// emitted the way the services emit them, in a store transaction.
		for kind, data := range map[string]any{
			webhooks.TransferFailed:  json.RawMessage(`{"transferRequest":{"id":"` + tr.ID + `","status":"Failed"}}`),
			webhooks.SignatureFailed: map[string]any{"signatureRequest": map[string]any{"id": sig.ID, "status": "Failed", "reason": "line\u2028sep <b>"}},
		} {
			if err := n.App.DB.Tx(ctx, func(tx *store.Tx) error { return tx.Emit(ctx, n.Env.OrgID, kind, data) }); err != nil {
				t.Fatal(err)
			}
		}

		want := []string{"key.created", "wallet.created", "wallet.tags.modified", "wallet.signature.requested", "wallet.signature.signed",
			"key.created", "key.deleted", "wallet.transfer.requested", "wallet.transfer.broadcasted", "wallet.transfer.confirmed",
			"wallet.transfer.failed", "wallet.signature.failed",
			"wallet.transaction.requested", "wallet.transaction.broadcasted", "wallet.transaction.confirmed",
			"wallet.blockchainevent.detected"} // the faucet's funding, found by the chain indexer
		ds := all.waitFor(t, "every kind", func(ds []whDelivery) bool { return len(ds) >= len(want) })
		time.Sleep(500 * time.Millisecond) // nothing more may arrive
		ds = all.deliveries()
		var kinds []string
		ids := map[string]bool{}
		for _, d := range ds {
			whCheckDelivery(t, wh.Secret, d)
			kinds = append(kinds, d.env.Kind)
			if ids[d.env.ID] {
				t.Errorf("event %s delivered twice", d.env.ID)
			}
			ids[d.env.ID] = true
			if d.env.DeliveryAttempt != 1 {
				t.Errorf("%s: attempt %d", d.env.Kind, d.env.DeliveryAttempt)
			}
		}
		sorted := func(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }
		if !slices.Equal(sorted(kinds), sorted(want)) {
			t.Fatalf("kinds delivered %v, want %v", kinds, want)
		}
		// The data objects are the API's own shapes.
		for _, d := range ds {
			var obj struct {
				ID     string `json:"id"`
				Status string `json:"status"`
			}
			json.Unmarshal(d.env.Data[whDataKey(d.env.Kind)], &obj)
			switch d.env.Kind {
			case "wallet.created", "wallet.tags.modified":
				if obj.ID != w.ID {
					t.Errorf("%s carries %s", d.env.Kind, obj.ID)
				}
			case "wallet.transfer.confirmed":
				if obj.ID != tr.ID || obj.Status != "Confirmed" {
					t.Errorf("%s carries %+v", d.env.Kind, obj)
				}
			case "wallet.signature.signed":
				if obj.ID != sig.ID || obj.Status != "Signed" {
					t.Errorf("%s carries %+v", d.env.Kind, obj)
				}
			case "key.deleted":
				if obj.ID != k.ID || obj.Status != "Archived" {
					t.Errorf("%s carries %+v", d.env.Kind, obj)
				}
			case "wallet.transaction.confirmed":
				if obj.ID != btx.ID || obj.Status != "Confirmed" {
					t.Errorf("%s carries %+v", d.env.Kind, obj)
				}
			case "wallet.blockchainevent.detected":
				var ev struct {
					WalletID, Direction, Kind, To, Value string
				}
				json.Unmarshal(d.env.Data["blockchainEvent"], &ev)
				if ev.WalletID != w.ID || ev.Direction != "In" || ev.Kind != "NativeTransfer" || ev.To != w.Address || ev.Value != "1000000000000000000" {
					t.Errorf("%s carries %s", d.env.Kind, d.env.Data["blockchainEvent"])
				}
			}
		}
		// Only what the second webhook subscribed to; nothing for the disabled one.
		wds := walletsOnly.waitFor(t, "wallet.created", func(ds []whDelivery) bool { return len(ds) >= 1 })
		if len(wds) != 1 || wds[0].env.Kind != "wallet.created" {
			t.Fatalf("wallet-only webhook got %d deliveries", len(wds))
		}
		whCheckDelivery(t, wOnly.Secret, wds[0])
		if whCheckNone := off.deliveries(); len(whCheckNone) != 0 {
			t.Fatalf("disabled webhook got %d deliveries", len(whCheckNone))
		}

		// The events API: every attempt, with its outcome.
		var evs whEventList
		deadline := time.Now().Add(30 * time.Second)
		for {
			evs = whEvents(t, c, wh.ID, "")
			done := len(evs.Items) == len(want)
			for _, ev := range evs.Items {
				done = done && ev.Status == "200"
			}
			if done || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if len(evs.Items) != len(want) || evs.NextPageToken != "" {
			t.Fatalf("events: %d items, next %q", len(evs.Items), evs.NextPageToken)
		}
		for i, ev := range evs.Items {
			if ev.Status != "200" || ev.DeliveryFailed || ev.Error != "" || ev.DeliveryAttempt != 1 || ev.TimestampSent == 0 ||
				!ids[ev.ID] || !whISO.MatchString(ev.Date) || ev.NextAttemptDate != "" {
				t.Errorf("event %+v", ev)
			}
			if i > 0 && ev.ID >= evs.Items[i-1].ID {
				t.Errorf("events not newest first")
			}
		}
		one := evs.Items[3]
		var got whEvent
		if err := c.Do(ctx, http.MethodGet, "/webhooks/"+wh.ID+"/events/"+one.ID, nil, &got); err != nil || got.ID != one.ID || got.Kind != one.Kind {
			t.Fatalf("get event: %+v %v", got, err)
		}
		if l := whEvents(t, c, wh.ID, "?kind=key.created"); len(l.Items) != 2 || l.Items[0].Kind != "key.created" || l.Items[1].Kind != "key.created" {
			t.Fatalf("kind filter: %+v", l.Items)
		}
		if l := whEvents(t, c, wh.ID, "?deliveryFailed=true"); len(l.Items) != 0 {
			t.Fatalf("deliveryFailed=true: %d items", len(l.Items))
		}
		if l := whEvents(t, c, wh.ID, "?deliveryFailed=false"); len(l.Items) != len(want) {
			t.Fatalf("deliveryFailed=false: %d items", len(l.Items))
		}
		var paged []string
		for tok := ""; ; {
			l := whEvents(t, c, wh.ID, "?limit=5&paginationToken="+tok)
			for _, ev := range l.Items {
				paged = append(paged, ev.ID)
			}
			if l.NextPageToken == "" {
				break
			}
			tok = l.NextPageToken
		}
		if len(paged) != len(want) || paged[0] != evs.Items[0].ID || paged[len(paged)-1] != evs.Items[len(evs.Items)-1].ID {
			t.Fatalf("pagination gave %d events", len(paged))
		}

		// Bad input is refused and changes nothing.
		before := whDigest(t, n)
		for _, bad := range []struct {
			method, path string
			body         any
			want         int
		}{
			{"POST", "/webhooks", map[string]any{"url": "ftp://example.com/x", "events": []string{"*"}}, 400},
			{"POST", "/webhooks", map[string]any{"url": "not a url", "events": []string{"*"}}, 400},
			{"POST", "/webhooks", map[string]any{"url": "https://user:pw@example.com/", "events": []string{"*"}}, 400},
			{"POST", "/webhooks", map[string]any{"url": "https://example.com/", "events": []string{}}, 400},
			{"POST", "/webhooks", map[string]any{"url": "https://example.com/", "events": []string{"wallet.transfer.initiated"}}, 400},
			{"POST", "/webhooks", map[string]any{"url": "https://example.com/", "events": []string{"*"}, "status": "On"}, 400},
			{"POST", "/webhooks", map[string]any{"url": "https://example.com/", "events": "*"}, 400},
			{"PUT", "/webhooks/" + wh.ID, map[string]any{"events": []string{"nope"}}, 400},
			{"PUT", "/webhooks/wh-00000-00000-0000000000000000", map[string]any{"description": "x"}, 404},
			{"DELETE", "/webhooks/wh-00000-00000-0000000000000000", nil, 404},
			{"GET", "/webhooks/" + wh.ID + "/events?deliveryFailed=maybe", nil, 400},
			{"GET", "/webhooks/" + wh.ID + "/events?kind=nope", nil, 400},
			{"GET", "/webhooks/" + wh.ID + "/events/whe-00000-00000-0000000000000000", nil, 404},
		} {
			err := c.Do(ctx, bad.method, bad.path, bad.body, nil)
			var ae *client.Error
			if !errors.As(err, &ae) || ae.Status != bad.want {
				t.Errorf("%s %s %v: %v, want %d", bad.method, bad.path, bad.body, err, bad.want)
			}
		}
		if after := whDigest(t, n); after != before {
			t.Fatal("a refused webhook request changed the webhooks or their events")
		}

		// Update: disabling stops new events; the ping still reaches the receiver.
		var upd whWebhook
		if err := c.Do(ctx, http.MethodPut, "/webhooks/"+wh.ID, map[string]any{"status": "Disabled", "description": "off"}, &upd); err != nil ||
			upd.Status != "Disabled" || upd.Description != "off" || upd.URL != wh.URL || upd.Secret != "" {
			t.Fatalf("update: %+v %v", upd, err)
		}
		var ping struct {
			Status string `json:"status"`
			Error  string `json:"error"`
		}
		if err := c.Do(ctx, http.MethodPost, "/webhooks/"+wh.ID+"/ping", nil, &ping); err != nil || ping.Status != "200" || ping.Error != "" {
			t.Fatalf("ping: %+v %v", ping, err)
		}
		pd := all.deliveries()
		last := pd[len(pd)-1]
		if len(pd) != len(want)+1 || last.env.Kind != webhooks.PingKind {
			t.Fatalf("ping not delivered: %d deliveries", len(pd))
		}
		whCheckDelivery(t, wh.Secret, last)
		if l := whEvents(t, c, wh.ID, ""); len(l.Items) != len(want) {
			t.Fatalf("ping was stored: %d events", len(l.Items))
		}
		if err := c.Do(ctx, http.MethodPost, "/keys", map[string]any{"scheme": "ECDSA", "curve": "secp256k1"}, nil); err != nil {
			t.Fatal(err)
		}
		// Delete removes the webhook and its events.
		var del map[string]any
		if err := c.Do(ctx, http.MethodDelete, "/webhooks/"+wh.ID, nil, &del); err != nil || del["deleted"] != true {
			t.Fatalf("delete: %v %v", del, err)
		}
		if err := c.Do(ctx, http.MethodGet, "/webhooks/"+wh.ID+"/events", nil, nil); status404(err) != 404 {
			t.Fatalf("events of a deleted webhook: %v", err)
		}
		time.Sleep(300 * time.Millisecond)
		if got := len(all.deliveries()); got != len(want)+1 {
			t.Fatalf("a disabled webhook got an event: %d deliveries", got)
		}
	})
}

// whDigest digests every row of the webhook tables (a refused request consumes its user
// action and writes its audit entry on purpose, so the whole-database snapshot moves).
func whDigest(t testing.TB, n *apptest.Node) string {
	t.Helper()
	var out strings.Builder
	err := n.App.DB.Tx(t.Context(), func(tx *store.Tx) error {
		ctx, stx := tx.SQL(t.Context())
		for _, q := range []string{`SELECT id, url, events, status, COALESCE(description, ''), updated_at FROM webhooks ORDER BY id`,
			`SELECT id, kind, status, delivery_failed FROM webhook_events ORDER BY id`} {
			rows, err := stx.QueryContext(ctx, q)
			if err != nil {
				return err
			}
			cols, _ := rows.Columns()
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			for rows.Next() {
				if err := rows.Scan(ptrs...); err != nil {
					rows.Close()
					return err
				}
				fmt.Fprintf(&out, "%v\n", vals)
			}
			rows.Close()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.String()
}

func status404(err error) int {
	var ae *client.Error
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

// TestWebhookRetry: a receiver answering 500 gets the event again on the schedule, as a
// new event that names the failed one; both attempts are listed with their outcome.
func TestWebhookRetry(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		ctx := context.Background()
		n := apptest.Start(t, e, apptest.Options{WebhooksAllowPrivate: true, WebhookRetrySchedule: "1s,2s,4s"})
		r := newWHReceiver(t, func(i int) int {
			if i == 0 {
				return http.StatusInternalServerError
			}
			return http.StatusOK
		})
		wh := whCreate(t, n.Admin, map[string]any{"url": r.srv.URL, "events": []string{"key.created"}})
		if err := n.Admin.Do(ctx, http.MethodPost, "/keys", map[string]any{"scheme": "EdDSA", "curve": "ed25519"}, nil); err != nil {
			t.Fatal(err)
		}
		ds := r.waitFor(t, "the retry", func(ds []whDelivery) bool { return len(ds) >= 2 })
		for _, d := range ds {
			whCheckDelivery(t, wh.Secret, d)
		}
		first, second := ds[0].env, ds[1].env
		if first.DeliveryAttempt != 1 || second.DeliveryAttempt != 2 || second.RetryOf != first.ID || second.ID == first.ID ||
			second.Date != first.Date || string(ds[0].env.Data["key"]) != string(ds[1].env.Data["key"]) {
			t.Fatalf("attempts %+v then %+v", first, second)
		}
		var l whEventList
		deadline := time.Now().Add(30 * time.Second)
		for {
			l = whEvents(t, n.Admin, wh.ID, "")
			if (len(l.Items) == 2 && l.Items[0].Status == "200") || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if len(l.Items) != 2 {
			t.Fatalf("%d events", len(l.Items))
		}
		ok, failed := l.Items[0], l.Items[1]
		if failed.ID != first.ID || failed.Status != "500" || !failed.DeliveryFailed || failed.Error == "" || failed.NextAttemptDate == "" ||
			ok.ID != second.ID || ok.Status != "200" || ok.DeliveryFailed || ok.RetryOf != first.ID || ok.DeliveryAttempt != 2 {
			t.Fatalf("events %+v", l.Items)
		}
		if f := whEvents(t, n.Admin, wh.ID, "?deliveryFailed=true"); len(f.Items) != 1 || f.Items[0].ID != first.ID {
			t.Fatalf("deliveryFailed=true: %+v", f.Items)
		}
		time.Sleep(500 * time.Millisecond)
		if got := len(r.deliveries()); got != 2 {
			t.Fatalf("%d deliveries after success, want 2", got)
		}
		// Events are kept 31 days, then purged (the hourly purge job runs Purge).
		n.Clock.Advance(30 * 24 * time.Hour)
		if k, err := n.App.Webhooks.Purge(ctx); err != nil || k != 0 {
			t.Fatalf("purge after 30 days: %d %v", k, err)
		}
		n.Clock.Advance(2 * 24 * time.Hour)
		if k, err := n.App.Webhooks.Purge(ctx); err != nil || k != 2 {
			t.Fatalf("purge after 32 days: %d %v", k, err)
		}
		if l := whEvents(t, n.Admin, wh.ID, ""); len(l.Items) != 0 {
			t.Fatalf("%d events left after the purge", len(l.Items))
		}
	})
}

// TestWebhookDeliveryFailed: a receiver that is down for the whole (short) schedule: every
// attempt is recorded and the event ends deliveryFailed.
func TestWebhookDeliveryFailed(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		ctx := context.Background()
		n := apptest.Start(t, e, apptest.Options{WebhooksAllowPrivate: true, WebhookRetrySchedule: "1s,2s"})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		down := "http://" + ln.Addr().String() + "/hook"
		ln.Close() // nothing listens there
		wh := whCreate(t, n.Admin, map[string]any{"url": down, "events": []string{"*"}})
		if err := n.Admin.Do(ctx, http.MethodPost, "/keys", map[string]any{"scheme": "ECDSA", "curve": "secp256k1"}, nil); err != nil {
			t.Fatal(err)
		}
		var l whEventList
		deadline := time.Now().Add(60 * time.Second)
		for {
			l = whEvents(t, n.Admin, wh.ID, "?deliveryFailed=true")
			if len(l.Items) == 3 || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if len(l.Items) != 3 {
			t.Fatalf("%d failed attempts listed, want 3: %+v", len(l.Items), l.Items)
		}
		for i, ev := range l.Items {
			if !ev.DeliveryFailed || ev.Status != "0" || !strings.Contains(ev.Error, "refused") || ev.DeliveryAttempt != 3-i || ev.Kind != "key.created" {
				t.Errorf("attempt %+v", ev)
			}
			if (ev.NextAttemptDate == "") != (i == 0) {
				t.Errorf("attempt %d nextAttemptDate %q", ev.DeliveryAttempt, ev.NextAttemptDate)
			}
			if i < 2 && ev.RetryOf != l.Items[i+1].ID {
				t.Errorf("attempt %d retryOf %q, want %q", ev.DeliveryAttempt, ev.RetryOf, l.Items[i+1].ID)
			}
		}
		time.Sleep(2 * time.Second)
		if all := whEvents(t, n.Admin, wh.ID, ""); len(all.Items) != 3 {
			t.Fatalf("a retry past the schedule: %d events", len(all.Items))
		}
	})
}

// TestWebhookPrivateRefused: without --webhooks-allow-private, URLs naming private,
// loopback or link-local addresses are refused at creation, and a name that resolves to
// one is refused when the delivery dials it (nothing reaches the receiver).
func TestWebhookPrivateRefused(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		ctx := context.Background()
		n := apptest.Start(t, e, apptest.Options{WebhookRetrySchedule: "1s"})
		r := newWHReceiver(t, nil)
		_, port, _ := net.SplitHostPort(strings.TrimPrefix(r.srv.URL, "http://"))
		before := whDigest(t, n)
		for _, u := range []string{
			r.srv.URL, "http://127.0.0.2:" + port, "http://[::1]:" + port, "http://10.0.0.1/", "http://192.168.1.10/",
			"http://172.16.5.4/", "http://169.254.169.254/latest/meta-data/", "http://100.64.0.1/", "http://[fd00:ec2::254]/",
			"http://0.0.0.0:" + port, "http://[::ffff:127.0.0.1]:" + port,
		} {
			err := n.Admin.Do(ctx, http.MethodPost, "/webhooks", map[string]any{"url": u, "events": []string{"*"}}, nil)
			var ae *client.Error
			if !errors.As(err, &ae) || ae.Status != 400 || !strings.Contains(ae.Message, "private") {
				t.Errorf("%s: %v, want 400", u, err)
			}
		}
		if after := whDigest(t, n); after != before {
			t.Fatal("a refused webhook changed the webhooks or their events")
		}
		// A name is accepted, but its loopback address is refused when dialed.
		wh := whCreate(t, n.Admin, map[string]any{"url": "http://localhost:" + port + "/hook", "events": []string{"*"}})
		var ping struct {
			Status string `json:"status"`
			Error  string `json:"error"`
		}
		if err := n.Admin.Do(ctx, http.MethodPost, "/webhooks/"+wh.ID+"/ping", nil, &ping); err != nil || ping.Status != "0" || !strings.Contains(ping.Error, "refused") {
			t.Fatalf("ping: %+v %v", ping, err)
		}
		if err := n.Admin.Do(ctx, http.MethodPost, "/keys", map[string]any{"scheme": "ECDSA", "curve": "secp256k1"}, nil); err != nil {
			t.Fatal(err)
		}
		var l whEventList
		deadline := time.Now().Add(60 * time.Second)
		for {
			l = whEvents(t, n.Admin, wh.ID, "?deliveryFailed=true")
			if len(l.Items) == 2 || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if len(l.Items) != 2 || !strings.Contains(l.Items[0].Error, "private") {
			t.Fatalf("events %+v", l.Items)
		}
		if got := r.deliveries(); len(got) != 0 {
			t.Fatalf("the receiver on loopback got %d deliveries", len(got))
		}
	})
}

// TestWebhookSurvivesKill: the event is committed with its state change; a node killed
// with SIGKILL before delivering (an API-only node here, so no job can run first) loses
// nothing: the next node delivers it (at least once).
func TestWebhookSurvivesKill(t *testing.T) {
	bin := tnBuild(t)
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		ctx := context.Background()
		dsn, dir := e.DSN(t), t.TempDir()
		r := newWHReceiver(t, nil)
		start := func(extra ...string) (*exec.Cmd, *client.Client, *tnBuffer) {
			addr := tnFreePorts(t, 1)[0]
			args := append([]string{"serve", "--listen", addr, "--data-dir", dir, "--database", dsn,
				"--webhooks-allow-private", "--webhook-retry-schedule", "1s,2s,4s"}, extra...)
			cmd := tnCommand(context.Background(), bin, args...)
			out := &tnBuffer{}
			cmd.Stdout, cmd.Stderr = out, out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				cmd.Process.Kill()
				cmd.Wait()
				if t.Failed() {
					t.Logf("node output:\n%s", out.String())
				}
			})
			hc := &http.Client{Timeout: 2 * time.Second}
			deadline := time.Now().Add(60 * time.Second)
			for {
				res, err := hc.Get("http://" + addr + "/healthz")
				if err == nil {
					res.Body.Close()
					if res.StatusCode == 200 {
						break
					}
				}
				if time.Now().After(deadline) {
					t.Fatalf("node not healthy: %v\n%s", err, out.String())
				}
				time.Sleep(100 * time.Millisecond)
			}
			env, err := client.LoadEnv(filepath.Join(dir, "bootstrap.env"))
			if err != nil {
				t.Fatal(err)
			}
			env.APIURL = "http://" + addr
			c, err := env.Client()
			if err != nil {
				t.Fatal(err)
			}
			return cmd, c, out
		}
		a, c, _ := start("--no-jobs")
		wh := whCreate(t, c, map[string]any{"url": r.srv.URL, "events": []string{"*"}})
		var w walletResp
		if err := c.Do(ctx, http.MethodPost, "/wallets", map[string]any{"network": "EthereumSepolia"}, &w); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		if got := len(r.deliveries()); got != 0 {
			t.Fatalf("an API-only node delivered %d events", got)
		}
		if err := a.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		a.Wait()

		_, c2, _ := start()
		ds := r.waitFor(t, "key.created and wallet.created after the restart", func(ds []whDelivery) bool { return len(ds) >= 2 })
		var kinds []string
		for _, d := range ds {
			whCheckDelivery(t, wh.Secret, d)
			kinds = append(kinds, d.env.Kind)
		}
		slices.Sort(kinds)
		if !slices.Equal(slices.Compact(kinds), []string{"key.created", "wallet.created"}) {
			t.Fatalf("kinds %v", kinds)
		}
		if l := whEvents(t, c2, wh.ID, "?kind=wallet.created"); len(l.Items) != 1 {
			t.Fatalf("events %+v", l.Items)
		}
	})
}

// TestWebhookThroughput delivers 1,000 events to a fast receiver on loopback and logs the
// rate (docs/benchmarks.md). Events are emitted in store transactions of 100, the way state
// changes emit them; the clock runs from the first commit to the last delivery.
func TestWebhookThroughput(t *testing.T) {
	if testing.Short() {
		t.Skip("throughput figure")
	}
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		ctx := context.Background()
		n := apptest.Start(t, e, apptest.Options{WebhooksAllowPrivate: true, WebhookRetrySchedule: "1s,2s,4s"})
		r := newWHReceiver(t, nil)
		wh := whCreate(t, n.Admin, map[string]any{"url": r.srv.URL, "events": []string{"*"}})
		total := 1000
		if whRace { // the figure means nothing under -race, which slows SQLite ~10x: check correctness on fewer
			total = 200
		}
		started := time.Now()
		for b := 0; b < total/100; b++ {
			if err := n.App.DB.Tx(ctx, func(tx *store.Tx) error {
				for i := range 100 {
					data := map[string]any{"wallet": map[string]any{"id": fmt.Sprintf("wa-bench-%d", b*100+i)}}
					if err := tx.Emit(ctx, n.Env.OrgID, webhooks.WalletCreated, data); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		emitted := time.Since(started)
		// A generous deadline: under -race on a loaded 2-core machine this runs ~10x slower.
		ds := r.waitForWithin(t, 5*time.Minute, "every delivery", func(ds []whDelivery) bool { return len(ds) >= total })
		took := time.Since(started)
		seen := map[string]bool{}
		for _, d := range ds {
			seen[d.env.ID] = true
		}
		if len(seen) != total {
			t.Fatalf("%d distinct events delivered, want %d", len(seen), total)
		}
		whCheckDelivery(t, wh.Secret, ds[len(ds)-1])
		t.Logf("%s: %d events emitted in %v, all delivered in %v: %.0f events/s", e.Name, total,
			emitted.Round(time.Millisecond), took.Round(time.Millisecond), float64(total)/took.Seconds())
	})
}

// TestWebhookDelegationEvents: delegating a wallet to an end user reports key.delegated
// and wallet.delegated, in the same transaction as the delegation.
func TestWebhookDelegationEvents(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		ctx := context.Background()
		n := apptest.Start(t, e, apptest.Options{WebhooksAllowPrivate: true, WebhookRetrySchedule: "1s,2s,4s"})
		c := n.Admin
		rcv := newWHReceiver(t, nil)
		wh := whCreate(t, c, map[string]any{"url": rcv.srv.URL, "events": []string{"key.delegated", "wallet.delegated"}})
		var u struct {
			ID string `json:"userId"`
		}
		if err := c.Do(ctx, http.MethodPost, "/auth/users", map[string]any{"email": "enduser@example.co", "kind": "EndUser"}, &u); err != nil {
			t.Fatal(err)
		}
		var w walletResp
		if err := c.Do(ctx, http.MethodPost, "/wallets", map[string]any{"network": "EthereumSepolia"}, &w); err != nil {
			t.Fatal(err)
		}
		if err := c.Do(ctx, http.MethodPost, "/wallets/"+w.ID+"/delegate", map[string]any{"userId": u.ID}, nil); err != nil {
			t.Fatal(err)
		}
		ds := rcv.waitFor(t, "delegation events", func(ds []whDelivery) bool { return len(ds) >= 2 })
		got := map[string]bool{}
		for _, d := range ds {
			whCheckDelivery(t, wh.Secret, d)
			got[d.env.Kind] = true
		}
		if len(ds) != 2 || !got["key.delegated"] || !got["wallet.delegated"] {
			t.Fatalf("deliveries %v", got)
		}
		for _, d := range ds {
			if d.env.Kind == "wallet.delegated" && !bytes.Contains(d.env.Data["wallet"], []byte(w.ID)) {
				t.Errorf("wallet.delegated carries %s", d.env.Data["wallet"])
			}
		}
	})
}
