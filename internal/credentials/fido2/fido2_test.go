package fido2

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/descope/virtualwebauthn"
	"github.com/fxamacker/cbor/v2"

	"github.com/countersign/countersign/internal/errs"
)

var b64u = base64.RawURLEncoding

const origin = "https://app.example.co"

var rp = RP{ID: "example.co", Origins: []string{origin, "http://localhost:8080", "android:apk-key-hash:abc"}}

// vcred makes a P-256 credential with full-length coordinates (virtualwebauthn writes
// big.Int.Bytes(), which drops leading zero bytes).
func vcred(t testing.TB) virtualwebauthn.Credential {
	for {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if len(k.X.Bytes()) == 32 && len(k.Y.Bytes()) == 32 {
			der, err := x509.MarshalPKCS8PrivateKey(k)
			if err != nil {
				t.Fatal(err)
			}
			return virtualwebauthn.NewCredentialWithImportedKey(virtualwebauthn.KeyTypeEC2, der)
		}
	}
}

type authn struct {
	rp   virtualwebauthn.RelyingParty
	auth virtualwebauthn.Authenticator
	cred virtualwebauthn.Credential
}

func newAuthn(t testing.TB) *authn {
	return &authn{
		rp:   virtualwebauthn.RelyingParty{ID: rp.ID, Origin: origin},
		auth: virtualwebauthn.NewAuthenticatorWithOptions(virtualwebauthn.AuthenticatorOptions{UserHandle: []byte("us-1")}),
		cred: vcred(t),
	}
}

// encode returns the challenge bytes of the browser SDK (UTF-8) or of a native client.
func encode(c string, native bool) []byte {
	if native {
		b, _ := b64u.DecodeString(c)
		return b
	}
	return []byte(c)
}

func (a *authn) attest(t testing.TB, c string, native bool) (credID, cd, att string) {
	res := virtualwebauthn.CreateAttestationResponse(a.rp, a.auth, a.cred, virtualwebauthn.AttestationOptions{Challenge: encode(c, native)})
	var r struct {
		ID       string
		Response struct{ AttestationObject, ClientDataJSON string }
	}
	if err := json.Unmarshal([]byte(res), &r); err != nil {
		t.Fatal(err)
	}
	return r.ID, r.Response.ClientDataJSON, r.Response.AttestationObject
}

func (a *authn) assert(t testing.TB, c string, native bool) Assertion {
	a.cred.Counter++
	res := virtualwebauthn.CreateAssertionResponse(a.rp, a.auth, a.cred, virtualwebauthn.AssertionOptions{Challenge: encode(c, native)})
	var r struct {
		ID       string
		Response struct{ AuthenticatorData, ClientDataJSON, Signature, UserHandle string }
	}
	if err := json.Unmarshal([]byte(res), &r); err != nil {
		t.Fatal(err)
	}
	return Assertion{CredID: r.ID, ClientData: r.Response.ClientDataJSON, AuthenticatorData: r.Response.AuthenticatorData,
		Signature: r.Response.Signature, UserHandle: r.Response.UserHandle}
}

// asNone rewrites a packed attestation object as attestation "none".
func asNone(t testing.TB, att string) string {
	raw, _ := b64u.DecodeString(att)
	var m map[string]any
	if err := cbor.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	m["fmt"], m["attStmt"] = "none", map[string]any{}
	out, err := cbor.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b64u.EncodeToString(out)
}

const challenge = "MWM0MmY5YTQ0MDRiNzdhNTFhNzY5ODQwNWI5ZTQ4Y2RhODZiNDk3ZTYzOTE5OGY"

func wantKind(t *testing.T, err error, k errs.Kind) {
	t.Helper()
	if err == nil || !errs.Is(err, k) {
		t.Fatalf("error %v, want kind %s", err, k)
	}
}

func TestVerifyRegistration(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mod    func(a *authn)
		native bool
		none   bool
		chal   string
		want   errs.Kind // 0 = success
		msg    string
	}{
		{name: "ok/browser-encoding"},
		{name: "ok/native-encoding", native: true},
		{name: "ok/attestation-none", none: true},
		{name: "ok/android-app-origin", mod: func(a *authn) { a.rp.Origin = "android:apk-key-hash:abc" }},
		{name: "fail/other-android-app", mod: func(a *authn) { a.rp.Origin = "android:apk-key-hash:xyz" }, want: errs.Unauthenticated, msg: "origin is not allowed"},
		{name: "ok/backup-eligible", mod: func(a *authn) { a.auth.Options.BackupEligible = true }},
		{name: "fail/wrong-origin", mod: func(a *authn) { a.rp.Origin = "https://evil.example" }, want: errs.Unauthenticated, msg: "origin is not allowed"},
		{name: "fail/origin-port", mod: func(a *authn) { a.rp.Origin = "http://localhost:8081" }, want: errs.Unauthenticated, msg: "origin is not allowed"},
		{name: "fail/wrong-rpid", mod: func(a *authn) { a.rp.ID = "evil.example" }, want: errs.Unauthenticated, msg: "rpIdHash"},
		{name: "fail/no-up", mod: func(a *authn) { a.auth.Options.UserNotPresent = true }, want: errs.Unauthenticated, msg: "user presence"},
		{name: "fail/no-uv", mod: func(a *authn) { a.auth.Options.UserNotVerified = true }, want: errs.Unauthenticated, msg: "user verification"},
		{name: "fail/bs-without-be", mod: func(a *authn) { a.auth.Options.BackupState = true }, want: errs.Unauthenticated, msg: "backup state"},
		{name: "fail/other-challenge", chal: "b3RoZXItY2hhbGxlbmdlLW90aGVyLWNoYWxsZW5nZS1vdGhlci1jaGFsbA", want: errs.Unauthenticated, msg: "challenge mismatch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newAuthn(t)
			if tc.mod != nil {
				tc.mod(a)
			}
			c := challenge
			if tc.chal != "" {
				c = tc.chal
			}
			id, cd, att := a.attest(t, c, tc.native)
			if tc.none {
				att = asNone(t, att)
			}
			reg, err := VerifyRegistration(rp, challenge, id, cd, att)
			if tc.want != 0 {
				wantKind(t, err, tc.want)
				if e := err.(*errs.Error); tc.msg != "" && !strings.Contains(e.Message, tc.msg) {
					t.Fatalf("message %q, want %q", e.Message, tc.msg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if reg.CredID != b64u.EncodeToString(a.cred.ID) || reg.Algorithm != "ES256" || len(reg.PublicKey) == 0 || reg.Origin != a.rp.Origin {
				t.Fatalf("registration %+v", reg)
			}
			if tc.none != (reg.Format == "none") {
				t.Fatalf("format %q", reg.Format)
			}
		})
	}
	t.Run("fail/garbage", func(t *testing.T) {
		_, err := VerifyRegistration(rp, challenge, "AAAA", "e30", "AAAA")
		wantKind(t, err, errs.Invalid)
		_, err = VerifyRegistration(rp, challenge, "", "", "")
		wantKind(t, err, errs.Invalid)
	})
	t.Run("fail/credid-mismatch", func(t *testing.T) {
		a := newAuthn(t)
		_, cd, att := a.attest(t, challenge, false)
		_, err := VerifyRegistration(rp, challenge, b64u.EncodeToString([]byte("another-id")), cd, att)
		if err == nil {
			t.Fatal("accepted a credId that is not the attested one")
		}
	})
}

func TestVerifyAssertion(t *testing.T) {
	a := newAuthn(t)
	id, cd, att := a.attest(t, challenge, false)
	reg, err := VerifyRegistration(rp, challenge, id, cd, att)
	if err != nil {
		t.Fatal(err)
	}
	stored := func() Stored {
		return Stored{CredID: reg.CredID, PublicKey: reg.PublicKey, SignCount: reg.SignCount, Flags: reg.Flags, UserID: "us-1"}
	}
	for _, tc := range []struct {
		name   string
		mod    func(a *authn)
		st     func(s *Stored)
		edit   func(x *Assertion)
		native bool
		want   errs.Kind
		msg    string
	}{
		{name: "ok/browser"},
		{name: "ok/native", native: true},
		{name: "ok/no-user-handle", edit: func(x *Assertion) { x.UserHandle = "" }},
		{name: "ok/padded-credid", edit: func(x *Assertion) { x.CredID = base64.URLEncoding.EncodeToString(a.cred.ID) }},
		{name: "ok/both-counters-zero", mod: func(a *authn) { a.cred.Counter = ^uint32(0) }, st: func(s *Stored) { s.SignCount = 0 }}, // assert wraps it to 0
		{name: "fail/wrong-origin", mod: func(a *authn) { a.rp.Origin = "https://evil.example" }, want: errs.Unauthenticated, msg: "origin"},
		{name: "fail/wrong-rpid", mod: func(a *authn) { a.rp.ID = "evil.example" }, want: errs.Unauthenticated, msg: "rpIdHash"},
		{name: "fail/no-up", mod: func(a *authn) { a.auth.Options.UserNotPresent = true }, want: errs.Unauthenticated, msg: "user presence"},
		{name: "fail/no-uv", mod: func(a *authn) { a.auth.Options.UserNotVerified = true }, want: errs.Unauthenticated, msg: "user verification"},
		{name: "fail/be-changed", mod: func(a *authn) { a.auth.Options.BackupEligible = true }, want: errs.Unauthenticated, msg: "backup eligibility"},
		{name: "fail/counter-equal", st: func(s *Stored) { s.SignCount = 1 << 20 }, want: errs.Unauthenticated, msg: "counter"},
		{name: "fail/counter-zero-after-nonzero", mod: func(a *authn) { a.cred.Counter = ^uint32(0) }, st: func(s *Stored) { s.SignCount = 5 }, want: errs.Unauthenticated, msg: "counter"},
		{name: "fail/other-user", st: func(s *Stored) { s.UserID = "us-2" }, want: errs.Unauthenticated, msg: "userHandle"},
		{name: "fail/other-credential", st: func(s *Stored) { s.CredID = b64u.EncodeToString([]byte("x")) }, want: errs.Unauthenticated, msg: "credential"},
		{name: "fail/bad-signature", edit: func(x *Assertion) { x.Signature = b64u.EncodeToString([]byte("nope")) }, want: errs.Unauthenticated, msg: "signature"},
		{name: "fail/cross-origin", edit: func(x *Assertion) {
			raw, _ := b64u.DecodeString(x.ClientData)
			var m map[string]any
			json.Unmarshal(raw, &m)
			m["crossOrigin"] = true
			b, _ := json.Marshal(m)
			x.ClientData = b64u.EncodeToString(b)
		}, want: errs.Unauthenticated},
		{name: "fail/not-base64", edit: func(x *Assertion) { x.AuthenticatorData = "***" }, want: errs.Invalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := *a
			if tc.mod != nil {
				tc.mod(&v)
			}
			st := stored()
			if tc.st != nil {
				tc.st(&st)
			}
			c := challenge
			x := v.assert(t, c, tc.native)
			if tc.edit != nil {
				tc.edit(&x)
			}
			res, err := VerifyAssertion(rp, challenge, st, x)
			if tc.want != 0 {
				wantKind(t, err, tc.want)
				if e := err.(*errs.Error); tc.msg != "" && !strings.Contains(e.Message, tc.msg) {
					t.Fatalf("message %q, want %q", e.Message, tc.msg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.SignCount != v.cred.Counter || len(res.ClientData) == 0 || len(res.Signature) == 0 {
				t.Fatalf("result %+v", res)
			}
		})
	}
}

func TestCounterOK(t *testing.T) {
	for _, tc := range []struct {
		stored, got uint32
		ok          bool
	}{{0, 0, true}, {0, 1, true}, {1, 2, true}, {1, 1, false}, {2, 1, false}, {5, 0, false}} {
		if CounterOK(tc.stored, tc.got) != tc.ok {
			t.Errorf("CounterOK(%d, %d) = %v", tc.stored, tc.got, !tc.ok)
		}
	}
}

// FuzzVerifyAssertion feeds untrusted assertion fields to the parser: no panics, and no
// acceptance without the credential's signature.
func FuzzVerifyAssertion(f *testing.F) {
	a := newAuthn(f)
	id, cd, att := a.attest(f, challenge, false)
	reg, err := VerifyRegistration(rp, challenge, id, cd, att)
	if err != nil {
		f.Fatal(err)
	}
	x := a.assert(f, challenge, false)
	f.Add(x.ClientData, x.AuthenticatorData, x.Signature)
	f.Add("e30", "AAAA", "")
	f.Fuzz(func(t *testing.T, cdj, ad, sig string) {
		st := Stored{CredID: reg.CredID, PublicKey: reg.PublicKey, SignCount: 1 << 30, Flags: reg.Flags, UserID: "us-1"}
		if _, err := VerifyAssertion(rp, challenge, st, Assertion{CredID: x.CredID, ClientData: cdj, AuthenticatorData: ad, Signature: sig}); err == nil {
			t.Fatal("accepted an assertion whose counter did not increase")
		}
	})
}

// FuzzVerifyRegistration: no panics on untrusted attestation bytes.
func FuzzVerifyRegistration(f *testing.F) {
	a := newAuthn(f)
	id, cd, att := a.attest(f, challenge, false)
	f.Add(id, cd, att)
	f.Fuzz(func(t *testing.T, id, cd, att string) {
		VerifyRegistration(rp, challenge, id, cd, att)
	})
}
