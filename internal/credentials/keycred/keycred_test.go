package keycred

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"strings"
	"sync"
	"testing"

	"github.com/countersign/countersign/internal/errs"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	k1ecdsa "github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
)

// Test vectors of dfns-api.md §2.10 (Ed25519 seed 32×0x07).
const (
	vecPEM = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA6kpsY+KcUgq+9VB7Ey7F+ZVHdq6+vnuSQh7qaRRG0iw=\n-----END PUBLIC KEY-----\n"

	vecUAChallenge  = "dGVzdC1jaGFsbGVuZ2U"
	vecUAClientData = "eyJ0eXBlIjoia2V5LmdldCIsImNoYWxsZW5nZSI6ImRHVnpkQzFqYUdGc2JHVnVaMlUifQ"
	vecUASignature  = "n2eDG2lA98LKQ6tGy68iHpYxVKm0lQUbvT4aa3oav_boNRJ-IoEwwzOHzq2gpYpIgpmCqZ113nYvXY7yelYBCA"

	vecRegChallenge   = "Y2gtdGVzdC0xMjM0NQ"
	vecRegClientData  = "eyJ0eXBlIjoia2V5LmNyZWF0ZSIsImNoYWxsZW5nZSI6IlkyZ3RkR1Z6ZEMweE1qTTBOUSJ9"
	vecRegAttestation = "eyJwdWJsaWNLZXkiOiItLS0tLUJFR0lOIFBVQkxJQyBLRVktLS0tLVxuTUNvd0JRWURLMlZ3QXlFQTZrcHNZK0tjVWdxKzlWQjdFeTdGK1pWSGRxNit2bnVTUWg3cWFSUkcwaXc9XG4tLS0tLUVORCBQVUJMSUMgS0VZLS0tLS1cbiIsInNpZ25hdHVyZSI6IjhhMGMyMWIzYzc0Nzk5ZmM2NTZmM2Y2ZTc3NDcxYTBlYmNhZDQzMmI0ZGQ5YzVlYTIwNDJkOTk5OTE2M2M2ZjJmMjg5Y2RhNWJiMTU0ZmU4ZTk4MGI1OGQxMGEzNTk4NzI0MWE5MDE0NmJhMzMxNjQ4NTBhMTQ5YjYwYWRjYjA5In0"
)

var (
	b64u    = base64.RawURLEncoding.EncodeToString
	vecPriv = ed25519.NewKeyFromSeed([]byte(strings.Repeat("\x07", 32)))
)

// testKey is a freshly generated key pair; sign produces what Node's crypto.sign(undefined, …)
// would: pure Ed25519, DER ECDSA over SHA-256, RSA PKCS#1 v1.5 SHA-256.
type testKey struct {
	alg  string
	der  []byte
	pub  *PublicKey
	sign func(msg []byte) []byte
}

var (
	keysOnce sync.Once
	keys     []testKey
	k1Priv   *secp256k1.PrivateKey
	p256Priv *ecdsa.PrivateKey
)

// secp256k1SPKI builds Node's SPKI for a secp256k1 point (notes-authn §3).
func secp256k1SPKI(t testing.TB, point []byte) []byte {
	t.Helper()
	curve, err := asn1.Marshal(asn1.ObjectIdentifier{1, 3, 132, 0, 10})
	if err != nil {
		t.Fatal(err)
	}
	der, err := asn1.Marshal(struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}{
		Algorithm: pkix.AlgorithmIdentifier{
			Algorithm:  asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1},
			Parameters: asn1.RawValue{FullBytes: curve},
		},
		PublicKey: asn1.BitString{Bytes: point, BitLength: 8 * len(point)},
	})
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func mustSPKI(t testing.TB, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func sha(msg []byte) []byte { d := sha256.Sum256(msg); return d[:] }

func testKeys(t testing.TB) []testKey {
	t.Helper()
	keysOnce.Do(func() {
		edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
		p256Priv, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		k1Priv, _ = secp256k1.GeneratePrivateKey()
		rsaPriv, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		ecSign := func(k *ecdsa.PrivateKey) func([]byte) []byte {
			return func(m []byte) []byte { s, _ := ecdsa.SignASN1(rand.Reader, k, sha(m)); return s }
		}
		keys = []testKey{
			{AlgEd25519, mustSPKI(t, edPub), nil, func(m []byte) []byte { return ed25519.Sign(edPriv, m) }},
			{AlgP256, mustSPKI(t, &p256Priv.PublicKey), nil, ecSign(p256Priv)},
			{AlgP384, mustSPKI(t, &p384.PublicKey), nil, ecSign(p384)},
			{AlgSecp256k1, secp256k1SPKI(t, k1Priv.PubKey().SerializeUncompressed()), nil,
				func(m []byte) []byte { return k1ecdsa.Sign(k1Priv, sha(m)).Serialize() }},
			{AlgRSA, mustSPKI(t, &rsaPriv.PublicKey), nil, func(m []byte) []byte {
				s, _ := rsa.SignPKCS1v15(rand.Reader, rsaPriv, crypto.SHA256, sha(m))
				return s
			}},
		}
		for i := range keys {
			pk, err := ParsePublicKeyDER(keys[i].der)
			if err != nil {
				t.Fatalf("%s: %v", keys[i].alg, err)
			}
			keys[i].pub = pk
		}
	})
	if keys == nil {
		t.Fatal("key generation failed")
	}
	return keys
}

func keyByAlg(t testing.TB, alg string) testKey {
	for _, k := range testKeys(t) {
		if k.alg == alg {
			return k
		}
	}
	t.Fatalf("no key %s", alg)
	return testKey{}
}

func wantKind(t *testing.T, err error, want errs.Kind) {
	t.Helper()
	if want == errs.Internal { // used as "no error" in the tables below
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if testing.Verbose() && err != nil {
		t.Logf("err: %v", err)
	}
	if err == nil || errs.KindOf(err) != want {
		t.Fatalf("got error %v (kind %v), want kind %v", err, errs.KindOf(err), want)
	}
}

const noErr = errs.Internal // no error expected

func TestDfnsVectors(t *testing.T) {
	pk, err := ParsePublicKeyPEM(vecPEM)
	if err != nil {
		t.Fatal(err)
	}
	if der, _ := x509.MarshalPKIXPublicKey(vecPriv.Public()); pemOf("PUBLIC KEY", der) != vecPEM {
		t.Fatal("vector private key does not match the vector PEM")
	}
	if pk.Algorithm() != AlgEd25519 || pk.PEM() != vecPEM {
		t.Fatalf("got %s %q", pk.Algorithm(), pk.PEM())
	}
	raw, err := VerifyAssertion(pk, Assertion{CredID: "c", ClientData: vecUAClientData, Signature: vecUASignature}, "key.get", vecUAChallenge)
	if err != nil {
		t.Fatal(err)
	}
	if string(raw) != `{"type":"key.get","challenge":"dGVzdC1jaGFsbGVuZ2U"}` {
		t.Fatalf("raw clientData %q", raw)
	}
	k, gotPEM, err := VerifyAttestation(vecRegClientData, vecRegAttestation, vecRegChallenge)
	if err != nil {
		t.Fatal(err)
	}
	if gotPEM != vecPEM || k.Algorithm() != AlgEd25519 {
		t.Fatalf("got %s %q", k.Algorithm(), gotPEM)
	}
	// The vector's signature must not pass as a UA assertion (type key.create, not key.get).
	_, err = VerifyAssertion(pk, Assertion{ClientData: vecRegClientData, Signature: vecUASignature}, "key.get", vecRegChallenge)
	wantKind(t, err, errs.Unauthenticated)
}

// layouts are the clientData bytes produced by the TS, Go and Python SDKs (dfns-sdk-wire §4).
func layouts(typ, c string) map[string]string {
	return map[string]string{
		"ts":     `{"type":"` + typ + `","challenge":"` + c + `"}`,
		"go":     `{"challenge":"` + c + `","crossOrigin":false,"type":"` + typ + `"}`,
		"python": `{"type":"` + typ + `","challenge":"` + c + `","origin":"https://app.dfns.io","crossOrigin":false}`,
	}
}

func TestVerifyAssertionLayouts(t *testing.T) {
	const c = "x4-PNHpPeLbhE5J-YJu4Ais1uutJjt26wmSX5U0LDZ4"
	for _, k := range testKeys(t) {
		for name, cd := range layouts("key.get", c) {
			t.Run(k.alg+"/"+name, func(t *testing.T) {
				a := Assertion{CredID: "id", ClientData: b64u([]byte(cd)), Signature: b64u(k.sign([]byte(cd)))}
				raw, err := VerifyAssertion(k.pub, a, "key.get", c)
				if err != nil {
					t.Fatal(err)
				}
				if string(raw) != cd {
					t.Fatalf("raw %q", raw)
				}
			})
		}
	}
}

// highS re-encodes a secp256k1 signature with s' = n - s, as about half of Node's are.
func highS(t *testing.T, sig *k1ecdsa.Signature) []byte {
	r, s := sig.R(), sig.S()
	s.Negate()
	if !s.IsOverHalfOrder() {
		t.Fatal("expected a high S")
	}
	rb, sb := r.Bytes(), s.Bytes()
	der, err := asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(rb[:]), new(big.Int).SetBytes(sb[:])})
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestVerifyAssertion(t *testing.T) {
	const c = "Y2gtMzllNDYt"
	cd := []byte(`{"type":"key.get","challenge":"` + c + `"}`)
	cdB64 := b64u(cd)
	p256, k1, ed, rsaK := keyByAlg(t, AlgP256), keyByAlg(t, AlgSecp256k1), keyByAlg(t, AlgEd25519), keyByAlg(t, AlgRSA)

	r, s, err := ecdsa.Sign(rand.Reader, p256Priv, sha(cd))
	if err != nil {
		t.Fatal(err)
	}
	p256Raw := append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
	k1Sig := k1ecdsa.Sign(k1Priv, sha(cd))
	k1R, k1S := k1Sig.R(), k1Sig.S()
	rb, sb := k1R.Bytes(), k1S.Bytes()
	k1Raw := append(rb[:], sb[:]...)

	doubleC := b64u([]byte(c))
	doubleCD := []byte(`{"type":"key.get","challenge":"` + doubleC + `"}`)
	tampered := []byte(`{"type":"key.get","challenge":"` + c + `" }`)
	otherType := []byte(`{"type":"key.create","challenge":"` + c + `"}`)
	otherChallenge := []byte(`{"type":"key.get","challenge":"other"}`)
	p256SHA512, err := ecdsa.SignASN1(rand.Reader, p256Priv, sha512Sum(cd))
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		key  testKey
		a    Assertion
		want errs.Kind
	}{
		{"ok/secp256k1-high-s", k1, Assertion{ClientData: cdB64, Signature: b64u(highS(t, k1Sig))}, noErr},
		{"ok/secp256k1-raw-rs", k1, Assertion{ClientData: cdB64, Signature: b64u(k1Raw)}, noErr},
		{"ok/p256-raw-rs", p256, Assertion{ClientData: cdB64, Signature: b64u(p256Raw)}, noErr},
		{"ok/padded-base64", p256, Assertion{ClientData: base64.URLEncoding.EncodeToString(cd), Signature: base64.URLEncoding.EncodeToString(p256.sign(cd))}, noErr},
		{"ok/std-base64", rsaK, Assertion{ClientData: base64.StdEncoding.EncodeToString(cd), Signature: base64.StdEncoding.EncodeToString(rsaK.sign(cd))}, noErr},
		{"ok/double-encoded-challenge", ed, Assertion{ClientData: b64u(doubleCD), Signature: b64u(ed.sign(doubleCD))}, noErr},
		{"ok/digest-sha256-name", p256, Assertion{ClientData: cdB64, Signature: b64u(p256.sign(cd)), Algorithm: "rsa-sha256"}, noErr},
		{"ok/digest-sha512", p256, Assertion{ClientData: cdB64, Signature: b64u(p256SHA512), Algorithm: "SHA-512"}, noErr},

		{"fail/wrong-key", p256, Assertion{ClientData: cdB64, Signature: b64u(keyByAlg(t, AlgP384).sign(cd))}, errs.Unauthenticated},
		{"fail/wrong-key-ed25519", ed, Assertion{ClientData: cdB64, Signature: b64u(ed25519.Sign(vecPriv, cd))}, errs.Unauthenticated},
		{"fail/tampered-clientdata", ed, Assertion{ClientData: b64u(tampered), Signature: b64u(ed.sign(cd))}, errs.Unauthenticated},
		{"fail/wrong-challenge", ed, Assertion{ClientData: b64u(otherChallenge), Signature: b64u(ed.sign(otherChallenge))}, errs.Unauthenticated},
		{"fail/wrong-type", k1, Assertion{ClientData: b64u(otherType), Signature: b64u(k1.sign(otherType))}, errs.Unauthenticated},
		{"fail/digest-mismatch", p256, Assertion{ClientData: cdB64, Signature: b64u(p256.sign(cd)), Algorithm: "SHA384"}, errs.Unauthenticated},
		{"fail/empty-signature", rsaK, Assertion{ClientData: cdB64}, errs.Unauthenticated},
		{"fail/garbage-signature", k1, Assertion{ClientData: cdB64, Signature: b64u([]byte("not a signature"))}, errs.Unauthenticated},
		{"fail/bad-base64-clientdata", ed, Assertion{ClientData: "e30*", Signature: b64u(ed.sign(cd))}, errs.Invalid},
		{"fail/bad-base64-signature", ed, Assertion{ClientData: cdB64, Signature: "!!!"}, errs.Invalid},
		{"fail/clientdata-not-json", ed, Assertion{ClientData: b64u([]byte("key.get " + c)), Signature: b64u(ed.sign(cd))}, errs.Invalid},
		{"fail/unknown-digest", rsaK, Assertion{ClientData: cdB64, Signature: b64u(rsaK.sign(cd)), Algorithm: "MD5"}, errs.Invalid},
		{"fail/ed25519-with-digest", ed, Assertion{ClientData: cdB64, Signature: b64u(ed.sign(cd)), Algorithm: "SHA256"}, errs.Invalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := VerifyAssertion(tt.key.pub, tt.a, "key.get", c)
			wantKind(t, err, tt.want)
		})
	}
}

func sha512Sum(m []byte) []byte { h := crypto.SHA512.New(); h.Write(m); return h.Sum(nil) }

// attest builds attestationData the way dfns-api §3.1.2 describes, independently of the
// package's fingerprint code.
func attest(k testKey, pemText string, clientData []byte) string {
	sum := sha256.Sum256(clientData)
	esc := strings.NewReplacer("\r", `\r`, "\n", `\n`).Replace(pemText)
	fp := `{"clientDataHash":"` + hex.EncodeToString(sum[:]) + `","publicKey":"` + esc + `"}`
	return b64u([]byte(`{"publicKey":"` + esc + `","signature":"` + hex.EncodeToString(k.sign([]byte(fp))) + `"}`))
}

func TestVerifyAttestation(t *testing.T) {
	const c = "Y2gtdGVzdC0xMjM0NQ"
	for _, k := range testKeys(t) {
		for name, cd := range layouts("key.create", c) {
			t.Run(k.alg+"/"+name, func(t *testing.T) {
				pemText := k.pub.PEM()
				if name == "go" { // received verbatim: no final newline, CRLF
					pemText = strings.TrimSuffix(strings.ReplaceAll(pemText, "\n", "\r\n"), "\r\n")
				}
				pk, got, err := VerifyAttestation(b64u([]byte(cd)), attest(k, pemText, []byte(cd)), c)
				if err != nil {
					t.Fatal(err)
				}
				if got != pemText || pk.Algorithm() != k.alg || pk.PEM() != k.pub.PEM() {
					t.Fatalf("got %s %q", pk.Algorithm(), got)
				}
			})
		}
	}

	ed, p256 := keyByAlg(t, AlgEd25519), keyByAlg(t, AlgP256)
	cd := []byte(`{"type":"key.create","challenge":"` + c + `"}`)
	getCD := []byte(`{"type":"key.get","challenge":"` + c + `"}`)
	attJSON := func(s string) string { return b64u([]byte(s)) }
	sum := sha256.Sum256(cd)
	edSigHex := hex.EncodeToString(ed.sign([]byte(`{"clientDataHash":"` + hex.EncodeToString(sum[:]) + `","publicKey":` + jsonString(ed.pub.PEM()) + `}`)))
	tests := []struct {
		name, clientData, att string
		want                  errs.Kind
	}{
		{"fail/key-get-type", b64u(getCD), attest(ed, ed.pub.PEM(), getCD), errs.Unauthenticated},
		{"fail/signed-by-other-key", b64u(cd), attest(p256, ed.pub.PEM(), cd), errs.Unauthenticated},
		{"fail/other-clientdata", b64u(cd), attest(ed, ed.pub.PEM(), getCD), errs.Unauthenticated},
		{"fail/pem-changed-after-signing", b64u(cd), attJSON(`{"publicKey":` + jsonString(ed.pub.PEM()+"\n") + `,"signature":"` + edSigHex + `"}`), errs.Unauthenticated},
		{"fail/not-base64", b64u(cd), "***", errs.Invalid},
		{"fail/not-json", b64u(cd), attJSON("nope"), errs.Invalid},
		{"fail/no-signature", b64u(cd), attJSON(`{"publicKey":"x"}`), errs.Invalid},
		{"fail/signature-not-hex", b64u(cd), attJSON(`{"publicKey":` + jsonString(ed.pub.PEM()) + `,"signature":"zz"}`), errs.Invalid},
		{"fail/bad-pem", b64u(cd), attJSON(`{"publicKey":"BEGIN","signature":"00"}`), errs.Invalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := VerifyAttestation(tt.clientData, tt.att, c)
			wantKind(t, err, tt.want)
		})
	}
}

func jsonString(s string) string { return `"` + strings.ReplaceAll(s, "\n", `\n`) + `"` }

func pemOf(typ string, der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}

func TestParsePublicKey(t *testing.T) {
	k1 := keyByAlg(t, AlgSecp256k1)
	point := k1Priv.PubKey().SerializeUncompressed()
	hybrid := append([]byte{0x06 | point[64]&1}, point[1:]...) // valid hybrid point for ParsePubKey
	offCurve := append([]byte(nil), point...)
	offCurve[64] ^= 1
	rsaK := keyByAlg(t, AlgRSA)
	rsaPub, _ := x509.ParsePKIXPublicKey(rsaK.der)
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	x25519, _ := ecdh.X25519().GenerateKey(rand.Reader)
	good := pemOf("PUBLIC KEY", k1.der)

	pemTests := []struct {
		name, pem string
		wantAlg   string
		want      errs.Kind
	}{
		{"ok/crlf-no-final-newline", strings.TrimSpace(strings.ReplaceAll(good, "\n", "\r\n")), AlgSecp256k1, noErr},
		{"ok/surrounding-whitespace", "\n  " + good + "\n\n", AlgSecp256k1, noErr},
		{"ok/secp256k1-compressed", pemOf("PUBLIC KEY", secp256k1SPKI(t, k1Priv.PubKey().SerializeCompressed())), AlgSecp256k1, noErr},
		{"fail/not-pem", "MCowBQYDK2VwAyEA6kpsY+KcUgq+9VB7Ey7F+ZVHdq6+vnuSQh7qaRRG0iw=", "", errs.Invalid},
		{"fail/escaped-newlines", strings.ReplaceAll(good, "\n", `\n`), "", errs.Invalid},
		{"fail/rsa-public-key-type", pemOf("RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(rsaPub.(*rsa.PublicKey))), "", errs.Invalid},
		{"fail/certificate-type", pemOf("CERTIFICATE", k1.der), "", errs.Invalid},
		{"fail/trailing-garbage", good + "garbage", "", errs.Invalid},
		{"fail/second-block", good + good, "", errs.Invalid},
		{"fail/leading-garbage", "x" + good, "", errs.Invalid},
		{"fail/pem-headers", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Headers: map[string]string{"A": "b"}, Bytes: k1.der})), "", errs.Invalid},
		{"fail/empty", "", "", errs.Invalid},
	}
	for _, tt := range pemTests {
		t.Run(tt.name, func(t *testing.T) {
			pk, err := ParsePublicKeyPEM(tt.pem)
			wantKind(t, err, tt.want)
			if err == nil && (pk.Algorithm() != tt.wantAlg || pk.PEM() != good) {
				t.Fatalf("got %s %q", pk.Algorithm(), pk.PEM())
			}
		})
	}

	derTests := []struct {
		name string
		der  []byte
		want errs.Kind
	}{
		{"fail/truncated", k1.der[:len(k1.der)-1], errs.Invalid},
		{"fail/truncated-rsa", rsaK.der[:len(rsaK.der)-1], errs.Invalid},
		{"fail/garbage", []byte("garbage"), errs.Invalid},
		{"fail/empty", nil, errs.Invalid},
		{"fail/trailing-byte-secp256k1", append(append([]byte(nil), k1.der...), 0), errs.Invalid},
		{"fail/trailing-byte-ed25519", append(mustSPKI(t, ed25519.PublicKey(make([]byte, 32))), 0), errs.Invalid},
		{"fail/secp256k1-hybrid-prefix", secp256k1SPKI(t, hybrid), errs.Invalid},
		{"fail/secp256k1-off-curve", secp256k1SPKI(t, offCurve), errs.Invalid},
		{"fail/secp256k1-short-point", secp256k1SPKI(t, point[:33]), errs.Invalid},
		{"fail/rsa-1024", mustSPKI(t, &rsa1024.PublicKey), errs.Invalid},
		{"fail/p224", mustSPKI(t, &p224.PublicKey), errs.Invalid},
		{"fail/p521", mustSPKI(t, &p521.PublicKey), errs.Invalid},
		{"fail/x25519", mustSPKI(t, x25519.PublicKey()), errs.Invalid},
	}
	for _, tt := range derTests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParsePublicKeyDER(tt.der)
			wantKind(t, err, tt.want)
		})
	}
	for _, k := range testKeys(t) {
		if k.pub.Algorithm() != k.alg || k.pub.PEM() != pemOf("PUBLIC KEY", k.der) {
			t.Errorf("%s: got %s %q", k.alg, k.pub.Algorithm(), k.pub.PEM())
		}
	}
}

func TestDecodeB64(t *testing.T) {
	tests := []struct {
		in   string
		want string
		kind errs.Kind
	}{
		{"", "", noErr},
		{"-_8", "\xfb\xff", noErr},
		{"-_8=", "\xfb\xff", noErr},
		{"+/8", "\xfb\xff", noErr},
		{"+/8=", "\xfb\xff", noErr},
		{"aGk", "hi", noErr},
		{"aGk=", "hi", noErr},
		{"aA==", "h", noErr},
		{"aA=", "", errs.Invalid},
		{"aGk==", "", errs.Invalid},
		{"a", "", errs.Invalid},
		{"-/8", "", errs.Invalid},
		{"aG\nk", "", errs.Invalid},
		{"aGk ", "", errs.Invalid},
		{"=", "", errs.Invalid},
		{"a*bc", "", errs.Invalid},
	}
	for _, tt := range tests {
		got, err := DecodeB64(tt.in)
		if (err != nil || tt.kind != noErr) && errs.KindOf(err) != tt.kind {
			t.Errorf("DecodeB64(%q) error %v, want kind %v", tt.in, err, tt.kind)
			continue
		}
		if err == nil && (string(got) != tt.want || got == nil) {
			t.Errorf("DecodeB64(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseClientData(t *testing.T) {
	tests := []struct {
		name, in string
		want     ClientData
		kind     errs.Kind
	}{
		{"ok/python", `{"type":"key.get","challenge":"c","origin":"https://a","crossOrigin":true}`, ClientData{"key.get", "c", "https://a", true}, noErr},
		{"ok/whitespace-and-extras", " {\"x\":{\"type\":1},\n\"challenge\" : \"c\", \"type\":\"t\"} ", ClientData{Type: "t", Challenge: "c"}, noErr},
		{"ok/odd-origin-ignored", `{"type":"t","challenge":"c","origin":5,"crossOrigin":"yes"}`, ClientData{Type: "t", Challenge: "c"}, noErr},
		{"ok/escapes", `{"type":"t","challenge":"\u0063"}`, ClientData{Type: "t", Challenge: "c"}, noErr},
		{"fail/empty", ``, ClientData{}, errs.Invalid},
		{"fail/array", `["type","challenge"]`, ClientData{}, errs.Invalid},
		{"fail/null", `null`, ClientData{}, errs.Invalid},
		{"fail/string", `"x"`, ClientData{}, errs.Invalid},
		{"fail/no-type", `{"challenge":"c"}`, ClientData{}, errs.Invalid},
		{"fail/no-challenge", `{"type":"t"}`, ClientData{}, errs.Invalid},
		{"fail/type-number", `{"type":1,"challenge":"c"}`, ClientData{}, errs.Invalid},
		{"fail/challenge-null", `{"type":"t","challenge":null}`, ClientData{}, errs.Invalid},
		{"fail/duplicate-type", `{"type":"key.create","challenge":"c","type":"key.get"}`, ClientData{}, errs.Invalid},
		{"fail/trailing-object", `{"type":"t","challenge":"c"}{}`, ClientData{}, errs.Invalid},
		{"fail/trailing-garbage", `{"type":"t","challenge":"c"} x`, ClientData{}, errs.Invalid},
		{"fail/unterminated", `{"type":"t","challenge":"c"`, ClientData{}, errs.Invalid},
		{"fail/trailing-comma", `{"type":"t","challenge":"c",}`, ClientData{}, errs.Invalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseClientData([]byte(tt.in))
			wantKind(t, err, tt.kind)
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestChallengeMatches(t *testing.T) {
	tests := []struct {
		got, want string
		match     bool
	}{
		{"abc", "abc", true},
		{b64u([]byte("abc")), "abc", true},
		{"abd", "abc", false},
		{"", "", false},
		{"YWJj=", "abc", false},
		{"abc", b64u([]byte("abc")), false},
	}
	for _, tt := range tests {
		if got := ChallengeMatches(tt.got, tt.want); got != tt.match {
			t.Errorf("ChallengeMatches(%q, %q) = %v", tt.got, tt.want, got)
		}
	}
}

func FuzzParsePublicKeyDER(f *testing.F) {
	for _, k := range testKeys(f) {
		f.Add(k.der)
	}
	f.Add(secp256k1SPKI(f, k1Priv.PubKey().SerializeCompressed()))
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, der []byte) {
		pk, err := ParsePublicKeyDER(der)
		if err != nil {
			if errs.KindOf(err) != errs.Invalid {
				t.Fatalf("error kind %v: %v", errs.KindOf(err), err)
			}
			return
		}
		again, err := ParsePublicKeyPEM(pk.PEM())
		if err != nil || again.PEM() != pk.PEM() || again.Algorithm() != pk.Algorithm() {
			t.Fatalf("canonical PEM does not round-trip: %v", err)
		}
		_ = pk.Verify(der, der, "")
		if len(der) >= 64 {
			_ = pk.Verify(der, der[:64], "")
		}
	})
}

func FuzzParseClientData(f *testing.F) {
	for _, cd := range layouts("key.get", "x4-PNHpPeLbhE5J") {
		f.Add([]byte(cd))
	}
	f.Add([]byte(`{"type":"t","challenge":"c","type":"u"}`))
	f.Add([]byte(`{"a":[1,{"b":null}],"type":"\ud800","challenge":""}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		if _, err := ParseClientData(raw); err != nil && errs.KindOf(err) != errs.Invalid {
			t.Fatalf("error kind %v: %v", errs.KindOf(err), err)
		}
	})
}

func FuzzDecodeB64(f *testing.F) {
	for _, s := range []string{"", "aGk", "aGk=", "+/8=", "-_8", vecUASignature, "a===", "\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := DecodeB64(s)
		if err != nil {
			if errs.KindOf(err) != errs.Invalid {
				t.Fatalf("error kind %v: %v", errs.KindOf(err), err)
			}
			return
		}
		// A simpler oracle: strip padding, map to the URL alphabet, decode unpadded.
		norm := strings.NewReplacer("+", "-", "/", "_").Replace(strings.TrimRight(s, "="))
		want, werr := base64.RawURLEncoding.DecodeString(norm)
		if werr != nil || string(want) != string(b) {
			t.Fatalf("DecodeB64(%q) = %x, oracle %x %v", s, b, want, werr)
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	msg := []byte(`{"type":"key.get","challenge":"x4-PNHpPeLbhE5J-YJu4Ais1uutJjt26wmSX5U0LDZ4"}`)
	for _, k := range testKeys(b) {
		sig := k.sign(msg)
		b.Run(k.alg, func(b *testing.B) {
			for b.Loop() {
				if err := k.pub.Verify(msg, sig, ""); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
