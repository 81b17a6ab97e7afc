package main

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/countersign/countersign/internal/webhooks"
)

func TestListenHandler(t *testing.T) {
	const secret = "whs-test-secret"
	body := func(ts int64) []byte {
		return []byte(fmt.Sprintf(`{"id":"whe-1","kind":"key.created","date":"2026-01-01T00:00:00.000Z","data":{"key":{"id":"key-1"}},"deliveryAttempt":1,"timestampSent":%d}`, ts))
	}
	now := time.Now().Unix()
	for _, c := range []struct {
		name    string
		body    []byte
		sig     string
		answer  int
		want    int
		printed bool
	}{
		{"ok", body(now), webhooks.Sign(secret, body(now)), 200, 200, true},
		{"ok/answer-500", body(now), webhooks.Sign(secret, body(now)), 500, 500, true},
		{"bad-signature", body(now), webhooks.Sign("whs-other", body(now)), 200, 401, false},
		{"no-signature", body(now), "", 200, 401, false},
		{"altered-body", body(now + 1), webhooks.Sign(secret, body(now)), 200, 401, false},
		{"stale", body(now - 3600), webhooks.Sign(secret, body(now-3600)), 200, 400, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out, log bytes.Buffer
			req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(c.body))
			if c.sig != "" {
				req.Header.Set(webhooks.SignatureHeader, c.sig)
			}
			rec := httptest.NewRecorder()
			listenHandler(secret, c.answer, &out, &log).ServeHTTP(rec, req)
			if rec.Code != c.want || (out.Len() > 0) != c.printed {
				t.Fatalf("status %d (want %d), printed %q, log %q", rec.Code, c.want, out.String(), log.String())
			}
			if c.printed && strings.TrimSpace(out.String()) != string(c.body) {
				t.Fatalf("printed %q", out.String())
			}
		})
	}
}
