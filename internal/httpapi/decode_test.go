package httpapi

import (
	"strings"
	"testing"

	"github.com/countersign/countersign/internal/errs"
	"github.com/countersign/countersign/internal/useraction"
)

func TestDecode(t *testing.T) {
	tests := []struct {
		name string
		body string
		want errs.Kind // 0 (Internal) means success here
		ok   bool
	}{
		{name: "ok/object", body: `{"userActionPayload":"{}","userActionHttpMethod":"POST","userActionHttpPath":"/x"}`, ok: true},
		{name: "ok/empty-body-is-empty-object", body: ``, ok: true},
		{name: "ok/whitespace", body: " \n{}\t", ok: true},
		{name: "fail/array", body: `[]`, want: errs.Invalid},
		{name: "fail/string", body: `"x"`, want: errs.Invalid},
		{name: "fail/truncated", body: `{"a":`, want: errs.Invalid},
		{name: "fail/trailing-data", body: `{}{}`, want: errs.Invalid},
		{name: "fail/wrong-type", body: `{"userActionHttpMethod":5}`, want: errs.Invalid},
		{name: "fail/null-byte", body: "{\x00}", want: errs.Invalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v useraction.InitRequest
			err := decode([]byte(tt.body), &v)
			if tt.ok {
				if err != nil {
					t.Fatalf("decode: %v", err)
				}
				return
			}
			if errs.KindOf(err) != tt.want {
				t.Fatalf("got %v, want kind %v", err, tt.want)
			}
			if msg, _ := errs.Public(err); msg == "" || strings.Contains(msg, "json:") {
				t.Fatalf("public message %q should be ours, not the decoder's", msg)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{``, `{}`, `{"userActionPayload":"x","userActionHttpMethod":"POST"}`, `[1]`, `{"a":{"b":[1,2,{"c":null}]}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var v useraction.InitRequest
		if err := decode(b, &v); err != nil && errs.KindOf(err) != errs.Invalid {
			t.Fatalf("kind %v for %q", errs.KindOf(err), b)
		}
	})
}
