package users

import (
	"encoding/base64"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestCodes(t *testing.T) {
	shape := regexp.MustCompile(`^[A-HJ-NP-Z2-9]{3}-[A-HJ-NP-Z2-9]{3}-[A-HJ-NP-Z2-9]{3}$`)
	seen := map[string]bool{}
	for range 1000 {
		c := newCode()
		if !shape.MatchString(c) {
			t.Fatalf("code %q", c)
		}
		if seen[c] {
			t.Fatalf("repeated code %q", c)
		}
		seen[c] = true
		for _, typed := range []string{c, strings.ToLower(c), strings.ReplaceAll(c, "-", ""), strings.ReplaceAll(c, "-", " ")} {
			if normCode(typed) != c {
				t.Fatalf("normCode(%q) = %q, want %q", typed, normCode(typed), c)
			}
		}
	}
}

func TestHandleIsJWTShaped(t *testing.T) {
	h := handle("or-1", "us-1", PurposeLogin)
	parts := strings.Split(h, ".")
	if len(parts) != 3 {
		t.Fatalf("handle %q", h)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]map[string]string
	if err := json.Unmarshal(raw, &claims); err != nil {
		t.Fatal(err)
	}
	if m := claims["https://custom/app_metadata"]; m["orgId"] != "or-1" || m["userId"] != "us-1" {
		t.Fatalf("claims %v", claims)
	}
	if handle("or-1", "us-1", PurposeLogin) == h {
		t.Fatal("two handles are equal")
	}
}

func TestSameJSON(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{`{"a":1,"b":[1,2]}`, `{ "b":[1,2], "a":1 }`, true},
		{`{"a":1}`, `{"a":2}`, false},
		{`{"a":[1,2]}`, `{"a":[2,1]}`, false},
		{`{"a":1}`, `not json`, false},
	} {
		if sameJSON([]byte(tc.a), []byte(tc.b)) != tc.same {
			t.Errorf("sameJSON(%s, %s) != %v", tc.a, tc.b, tc.same)
		}
	}
}

func TestParseExpiration(t *testing.T) {
	want := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, in := range []string{`"2026-01-02T03:04:05.000Z"`, `1767323045`, `1767323045000`, `"1767323045"`} {
		got, err := parseExpiration(json.RawMessage(in))
		if err != nil || !got.Equal(want) {
			t.Errorf("parseExpiration(%s) = %v, %v", in, got, err)
		}
	}
	if _, err := parseExpiration(json.RawMessage(`"tomorrow"`)); err == nil {
		t.Error("accepted tomorrow")
	}
}
