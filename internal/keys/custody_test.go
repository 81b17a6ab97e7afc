package keys

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"testing"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
	ethcrypto "github.com/ethereum/go-ethereum/crypto"

	"github.com/countersign/countersign/internal/errs"
	"github.com/countersign/countersign/internal/secrets"
)

func custodyRing(t testing.TB, ids ...string) *secrets.Ring {
	t.Helper()
	var keks []secrets.KEK
	for _, id := range ids {
		keks = append(keks, secrets.KEK{ID: id, Key: bytes.Repeat([]byte(id[len(id)-1:]), 32)})
	}
	r, err := secrets.NewRing(keks)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func custodyHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func custodyRandHash(t testing.TB) []byte {
	t.Helper()
	h := make([]byte, 32)
	rand.Read(h)
	return h
}

// custodyKey generates a key and returns its Ref and public key.
func custodyKey(t testing.TB, c *Custody, orgID, keyID, scheme, curve string) (Ref, []byte) {
	t.Helper()
	pub, sealed, err := c.Generate(orgID, keyID, scheme, curve)
	if err != nil {
		t.Fatalf("Generate(%s, %s): %v", scheme, curve, err)
	}
	return Ref{OrgID: orgID, KeyID: keyID, Scheme: scheme, Curve: curve, Sealed: sealed}, pub
}

// sign signs payload with the method the key's scheme uses.
func custodySign(c *Custody, ref Ref, payload []byte) (Signature, error) {
	if ref.Scheme == SchemeEdDSA {
		return c.SignMessage(context.Background(), ref, payload)
	}
	return c.SignHash(context.Background(), ref, payload)
}

func checkSecp256k1(t *testing.T, pub, hash []byte, sig Signature) {
	t.Helper()
	if len(sig.R) != 32 || len(sig.S) != 32 || len(sig.Raw) != 64 {
		t.Fatalf("lengths R=%d S=%d Raw=%d", len(sig.R), len(sig.S), len(sig.Raw))
	}
	if !bytes.Equal(sig.Raw, append(append([]byte{}, sig.R...), sig.S...)) {
		t.Fatal("Raw is not R||S")
	}
	if sig.RecID != 0 && sig.RecID != 1 {
		t.Fatalf("RecID %d", sig.RecID)
	}
	var r, s secp256k1.ModNScalar
	if r.SetByteSlice(sig.R) || s.SetByteSlice(sig.S) || r.IsZero() || s.IsZero() {
		t.Fatal("R or S out of range")
	}
	if s.IsOverHalfOrder() { // EIP-2: s must be at most n/2
		t.Fatal("S is high")
	}
	pk, err := secp256k1.ParsePubKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	if !ecdsa.NewSignature(&r, &s).Verify(hash, pk) {
		t.Fatal("decred: signature does not verify")
	}
	// What an Ethereum node does: ecrecover(hash, R||S||v) must give the key's address.
	got, err := ethcrypto.Ecrecover(hash, append(append([]byte{}, sig.Raw...), byte(sig.RecID)))
	if err != nil {
		t.Fatalf("Ecrecover: %v", err)
	}
	if !bytes.Equal(got, pk.SerializeUncompressed()) {
		t.Fatalf("Ecrecover gave %x, want %x", got, pk.SerializeUncompressed())
	}
}

func checkEd25519(t *testing.T, pub, msg []byte, sig Signature) {
	t.Helper()
	if len(sig.Raw) != ed25519.SignatureSize || !bytes.Equal(sig.R, sig.Raw[:32]) || !bytes.Equal(sig.S, sig.Raw[32:]) || sig.RecID != 0 {
		t.Fatalf("shape: R=%x S=%x RecID=%d Raw=%x", sig.R, sig.S, sig.RecID, sig.Raw)
	}
	if !ed25519.Verify(pub, msg, sig.Raw) {
		t.Fatal("ed25519: signature does not verify")
	}
}

func TestGenerateSignVerify(t *testing.T) {
	c := NewCustody(custodyRing(t, "k1"))
	tests := []struct {
		name          string
		scheme, curve string
		pubLen        int
		payloads      [][]byte
		check         func(t *testing.T, pub, payload []byte, sig Signature)
	}{
		{
			name: "ok/ecdsa-secp256k1", scheme: SchemeECDSA, curve: CurveSecp256k1, pubLen: 33,
			payloads: [][]byte{make([]byte, 32), bytes.Repeat([]byte{0xff}, 32), custodyRandHash(t), custodyRandHash(t), custodyRandHash(t)},
			check:    checkSecp256k1,
		},
		{
			name: "ok/eddsa-ed25519", scheme: SchemeEdDSA, curve: CurveEd25519, pubLen: 32,
			payloads: [][]byte{nil, []byte("x"), custodyRandHash(t), bytes.Repeat([]byte("long message "), 1000)},
			check:    checkEd25519,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Several keys, so both recovery ids and both pubkey parities turn up.
			for i := 0; i < 8; i++ {
				ref, pub := custodyKey(t, c, "or-org", "key-"+string(rune('a'+i)), tt.scheme, tt.curve)
				if len(pub) != tt.pubLen {
					t.Fatalf("public key is %d bytes, want %d", len(pub), tt.pubLen)
				}
				if bytes.Contains(ref.Sealed, pub) {
					t.Fatal("sealed value contains the public key in clear")
				}
				for _, p := range tt.payloads {
					sig, err := custodySign(c, ref, p)
					if err != nil {
						t.Fatal(err)
					}
					tt.check(t, pub, p, sig)
				}
			}
		})
	}
}

// TestKnownVectors seals known private keys by hand with the documented AAD, so it pins the
// AAD format and the plaintext layout, and compares the output with independent signers:
// go-ethereum's crypto.Sign (libsecp256k1, RFC 6979, low S) and RFC 8032 §7.1 test 1.
func TestKnownVectors(t *testing.T) {
	ring := custodyRing(t, "k1")
	c := NewCustody(ring)
	aad := func(scheme, curve string) []byte { return []byte("keys/or-1/key-1/" + scheme + "/" + curve) }

	t.Run("ok/secp256k1-matches-go-ethereum", func(t *testing.T) {
		scalar := custodyHex(t, "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
		ref := Ref{OrgID: "or-1", KeyID: "key-1", Scheme: SchemeECDSA, Curve: CurveSecp256k1, Sealed: ring.Seal(scalar, aad(SchemeECDSA, CurveSecp256k1))}
		prv, err := ethcrypto.ToECDSA(scalar)
		if err != nil {
			t.Fatal(err)
		}
		for _, hash := range [][]byte{ethcrypto.Keccak256([]byte("hello")), custodyRandHash(t), custodyRandHash(t)} {
			want, err := ethcrypto.Sign(hash, prv) // R||S||v
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.SignHash(context.Background(), ref, hash)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Raw, want[:64]) || got.RecID != int(want[64]) {
				t.Fatalf("got %x/%d, go-ethereum %x", got.Raw, got.RecID, want)
			}
		}
	})

	t.Run("ok/ed25519-rfc8032-test1", func(t *testing.T) {
		seed := custodyHex(t, "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
		ref := Ref{OrgID: "or-1", KeyID: "key-1", Scheme: SchemeEdDSA, Curve: CurveEd25519, Sealed: ring.Seal(seed, aad(SchemeEdDSA, CurveEd25519))}
		want := custodyHex(t, "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065"+
			"224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b")
		got, err := c.SignMessage(context.Background(), ref, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Raw, want) {
			t.Fatalf("got %x, want %x", got.Raw, want)
		}
	})
}

func TestGenerateUnsupported(t *testing.T) {
	c := NewCustody(custodyRing(t, "k1"))
	tests := []struct {
		name          string
		scheme, curve string
	}{
		{"fail/ecdsa-ed25519", SchemeECDSA, CurveEd25519},
		{"fail/eddsa-secp256k1", SchemeEdDSA, CurveSecp256k1},
		{"fail/schnorr", "Schnorr", CurveSecp256k1},
		{"fail/ecdsa-p256", SchemeECDSA, "stark"},
		{"fail/lower-case", "ecdsa", CurveSecp256k1},
		{"fail/empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub, sealed, err := c.Generate("or-1", "key-1", tt.scheme, tt.curve)
			if !errs.Is(err, errs.Invalid) || pub != nil || sealed != nil {
				t.Fatalf("Generate: %v, %x, %x; want Invalid", err, pub, sealed)
			}
			ref := Ref{OrgID: "or-1", KeyID: "key-1", Scheme: tt.scheme, Curve: tt.curve, Sealed: []byte{1}}
			if _, err := c.SignHash(context.Background(), ref, make([]byte, 32)); !errs.Is(err, errs.Invalid) {
				t.Fatalf("SignHash: %v, want Invalid", err)
			}
			if _, err := c.SignMessage(context.Background(), ref, []byte("m")); !errs.Is(err, errs.Invalid) {
				t.Fatalf("SignMessage: %v, want Invalid", err)
			}
		})
	}
}

func TestGenerateBadIDs(t *testing.T) {
	c := NewCustody(custodyRing(t, "k1"))
	for _, tt := range []struct{ name, org, key string }{
		{"fail/empty-org", "", "key-1"},
		{"fail/empty-key", "or-1", ""},
		{"fail/slash-in-org", "or/1", "key-1"},
		{"fail/slash-in-key", "or-1", "key/1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := c.Generate(tt.org, tt.key, SchemeECDSA, CurveSecp256k1); err == nil || errs.KindOf(err) != errs.Internal {
				t.Fatalf("Generate: %v, want Internal", err)
			}
		})
	}
}

func TestSignRefusals(t *testing.T) {
	c := NewCustody(custodyRing(t, "k1"))
	ec, _ := custodyKey(t, c, "or-1", "key-ec", SchemeECDSA, CurveSecp256k1)
	ed, _ := custodyKey(t, c, "or-1", "key-ed", SchemeEdDSA, CurveEd25519)
	tests := []struct {
		name    string
		call    func() (Signature, error)
		wantMsg string
	}{
		{"fail/hash-empty", func() (Signature, error) { return c.SignHash(context.Background(), ec, nil) }, "hash must be 32 bytes"},
		{"fail/hash-31", func() (Signature, error) { return c.SignHash(context.Background(), ec, make([]byte, 31)) }, "hash must be 32 bytes"},
		{"fail/hash-33", func() (Signature, error) { return c.SignHash(context.Background(), ec, make([]byte, 33)) }, "hash must be 32 bytes"},
		{"fail/hash-64", func() (Signature, error) { return c.SignHash(context.Background(), ec, make([]byte, 64)) }, "hash must be 32 bytes"},
		{"fail/ecdsa-sign-message", func() (Signature, error) { return c.SignMessage(context.Background(), ec, []byte("m")) }, "ECDSA keys sign hashes, not messages"},
		{"fail/eddsa-sign-hash", func() (Signature, error) { return c.SignHash(context.Background(), ed, make([]byte, 32)) }, "EdDSA keys sign messages, not hashes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sig, err := tt.call()
			if !errs.Is(err, errs.Invalid) {
				t.Fatalf("err %v, want Invalid", err)
			}
			if msg, _ := errs.Public(err); msg != tt.wantMsg {
				t.Fatalf("public message %q, want %q", msg, tt.wantMsg)
			}
			if sig.Raw != nil {
				t.Fatal("signature returned with an error")
			}
		})
	}
}

// TestSealedBinding moves and damages sealed keys: every case must fail as Internal, with a
// public message that says nothing, and never sign.
func TestSealedBinding(t *testing.T) {
	c := NewCustody(custodyRing(t, "k1"))
	for _, sc := range []struct{ scheme, curve string }{{SchemeECDSA, CurveSecp256k1}, {SchemeEdDSA, CurveEd25519}} {
		ref, _ := custodyKey(t, c, "or-1", "key-1", sc.scheme, sc.curve)
		other, _ := custodyKey(t, c, "or-1", "key-2", sc.scheme, sc.curve)
		flip := func(i int) []byte {
			b := bytes.Clone(ref.Sealed)
			b[(i+len(b))%len(b)] ^= 1
			return b
		}
		tests := []struct {
			name string
			ref  Ref
		}{
			{"fail/moved-to-other-key", Ref{OrgID: "or-1", KeyID: "key-2", Scheme: sc.scheme, Curve: sc.curve, Sealed: ref.Sealed}},
			{"fail/moved-to-other-org", Ref{OrgID: "or-2", KeyID: "key-1", Scheme: sc.scheme, Curve: sc.curve, Sealed: ref.Sealed}},
			{"fail/other-keys-blob", Ref{OrgID: "or-1", KeyID: "key-1", Scheme: sc.scheme, Curve: sc.curve, Sealed: other.Sealed}},
			{"fail/org-key-swapped", Ref{OrgID: "key-1", KeyID: "or-1", Scheme: sc.scheme, Curve: sc.curve, Sealed: ref.Sealed}},
			{"fail/tampered-tag", Ref{OrgID: "or-1", KeyID: "key-1", Scheme: sc.scheme, Curve: sc.curve, Sealed: flip(-1)}},
			{"fail/tampered-ciphertext", Ref{OrgID: "or-1", KeyID: "key-1", Scheme: sc.scheme, Curve: sc.curve, Sealed: flip(-20)}},
			{"fail/tampered-nonce", Ref{OrgID: "or-1", KeyID: "key-1", Scheme: sc.scheme, Curve: sc.curve, Sealed: flip(5)}},
			{"fail/unknown-kek", Ref{OrgID: "or-1", KeyID: "key-1", Scheme: sc.scheme, Curve: sc.curve, Sealed: flip(2)}},
			{"fail/bad-version", Ref{OrgID: "or-1", KeyID: "key-1", Scheme: sc.scheme, Curve: sc.curve, Sealed: flip(0)}},
			{"fail/truncated", Ref{OrgID: "or-1", KeyID: "key-1", Scheme: sc.scheme, Curve: sc.curve, Sealed: ref.Sealed[:len(ref.Sealed)-1]}},
			{"fail/empty", Ref{OrgID: "or-1", KeyID: "key-1", Scheme: sc.scheme, Curve: sc.curve}},
		}
		for _, tt := range tests {
			t.Run(sc.curve+"/"+tt.name, func(t *testing.T) {
				sig, err := custodySign(c, tt.ref, custodyRandHash(t))
				if err == nil || errs.KindOf(err) != errs.Internal || sig.Raw != nil {
					t.Fatalf("err %v, sig %x; want Internal", err, sig.Raw)
				}
				if msg, details := errs.Public(err); msg != "Internal Server Error" || details != nil {
					t.Fatalf("public %q %v", msg, details)
				}
				// Reseal never turns a moved or damaged blob into a fresh valid one: a blob
				// that names the newest KEK is returned untouched (not opened), anything
				// else must open first and fails.
				if got, err := c.Reseal(tt.ref); err == nil && !bytes.Equal(got, tt.ref.Sealed) {
					t.Fatal("Reseal produced a new blob from a moved or damaged one")
				} else if err != nil && errs.KindOf(err) != errs.Internal {
					t.Fatalf("Reseal: %v, want Internal", err)
				}
			})
		}
	}
}

// TestWrongLengthPlaintext: a value that authenticates but is not a key of the ref's curve
// (here a blob sealed with the right AAD by a buggy writer) is Internal, not a panic.
func TestWrongLengthPlaintext(t *testing.T) {
	ring := custodyRing(t, "k1")
	c := NewCustody(ring)
	for _, tt := range []struct {
		name string
		pt   []byte
		ref  Ref
	}{
		{"fail/secp256k1-short", make([]byte, 31), Ref{Scheme: SchemeECDSA, Curve: CurveSecp256k1}},
		{"fail/secp256k1-zero", make([]byte, 32), Ref{Scheme: SchemeECDSA, Curve: CurveSecp256k1}},
		{"fail/secp256k1-overflow", bytes.Repeat([]byte{0xff}, 32), Ref{Scheme: SchemeECDSA, Curve: CurveSecp256k1}},
		{"fail/ed25519-long", make([]byte, 64), Ref{Scheme: SchemeEdDSA, Curve: CurveEd25519}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ref := tt.ref
			ref.OrgID, ref.KeyID = "or-1", "key-1"
			ref.Sealed = ring.Seal(tt.pt, []byte("keys/or-1/key-1/"+ref.Scheme+"/"+ref.Curve))
			if _, err := custodySign(c, ref, custodyRandHash(t)); err == nil || errs.KindOf(err) != errs.Internal {
				t.Fatalf("err %v, want Internal", err)
			}
		})
	}
}

func TestRotation(t *testing.T) {
	old := NewCustody(custodyRing(t, "k1"))
	both := NewCustody(custodyRing(t, "k1", "k2"))
	onlyNew := NewCustody(custodyRing(t, "k2"))
	for _, sc := range []struct{ scheme, curve string }{{SchemeECDSA, CurveSecp256k1}, {SchemeEdDSA, CurveEd25519}} {
		t.Run(sc.curve, func(t *testing.T) {
			ref, _ := custodyKey(t, old, "or-1", "key-1", sc.scheme, sc.curve)
			payload := custodyRandHash(t)
			want, err := custodySign(old, ref, payload)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := custodySign(both, ref, payload); err != nil || !bytes.Equal(got.Raw, want.Raw) {
				t.Fatalf("rotated ring, old blob: %v", err)
			}
			if _, err := custodySign(onlyNew, ref, payload); errs.KindOf(err) != errs.Internal || err == nil {
				t.Fatalf("ring without k1 opened a k1 blob: %v", err)
			}

			resealed, err := both.Reseal(ref)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(resealed, ref.Sealed) || !bytes.HasPrefix(resealed, []byte{1, 2, 'k', '2'}) {
				t.Fatalf("not resealed under k2: %x", resealed[:4])
			}
			newRef := ref
			newRef.Sealed = resealed
			if got, err := custodySign(onlyNew, newRef, payload); err != nil || !bytes.Equal(got.Raw, want.Raw) {
				t.Fatalf("k2-only ring, resealed blob: %v (same key must give the same signature)", err)
			}
			if _, err := custodySign(old, newRef, payload); err == nil {
				t.Fatal("k1-only ring opened a k2 blob")
			}

			again, err := both.Reseal(newRef)
			if err != nil || &again[0] != &resealed[0] {
				t.Fatalf("Reseal of a current blob did not return it unchanged: %v", err)
			}
			moved := ref
			moved.KeyID = "key-2"
			if _, err := both.Reseal(moved); errs.KindOf(err) != errs.Internal || err == nil {
				t.Fatalf("Reseal of a moved blob: %v, want Internal", err)
			}
		})
	}
}

func TestDeterministic(t *testing.T) {
	c := NewCustody(custodyRing(t, "k1"))
	for _, sc := range []struct{ scheme, curve string }{{SchemeECDSA, CurveSecp256k1}, {SchemeEdDSA, CurveEd25519}} {
		t.Run(sc.curve, func(t *testing.T) {
			ref, _ := custodyKey(t, c, "or-1", "key-1", sc.scheme, sc.curve)
			h1, h2 := custodyRandHash(t), custodyRandHash(t)
			a, err := custodySign(c, ref, h1)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := custodySign(c, ref, h1)
			d, _ := custodySign(c, ref, h2)
			if !bytes.Equal(a.Raw, b.Raw) || a.RecID != b.RecID {
				t.Fatal("same input signed twice gave different signatures")
			}
			if bytes.Equal(a.Raw, d.Raw) {
				t.Fatal("different inputs gave the same signature")
			}
		})
	}
}

// TestConcurrent signs from many goroutines with one Custody (run with -race).
func TestConcurrent(t *testing.T) {
	c := NewCustody(custodyRing(t, "k1"))
	ec, ecPub := custodyKey(t, c, "or-1", "key-ec", SchemeECDSA, CurveSecp256k1)
	ed, edPub := custodyKey(t, c, "or-1", "key-ed", SchemeEdDSA, CurveEd25519)
	pk, _ := secp256k1.ParsePubKey(ecPub)
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Go(func() {
			h := sha256.Sum256([]byte{byte(i)})
			s1, err := c.SignHash(context.Background(), ec, h[:])
			if err != nil {
				t.Error(err)
				return
			}
			var r, s secp256k1.ModNScalar
			r.SetByteSlice(s1.R)
			s.SetByteSlice(s1.S)
			if !ecdsa.NewSignature(&r, &s).Verify(h[:], pk) {
				t.Error("secp256k1 signature does not verify")
			}
			s2, err := c.SignMessage(context.Background(), ed, h[:])
			if err != nil || !ed25519.Verify(edPub, h[:], s2.Raw) {
				t.Errorf("ed25519: %v", err)
			}
		})
	}
	wg.Wait()
}

func BenchmarkSignHash(b *testing.B) {
	c := NewCustody(custodyRing(b, "k1"))
	ref, _ := custodyKey(b, c, "or-1", "key-1", SchemeECDSA, CurveSecp256k1)
	hash := custodyRandHash(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.SignHash(ctx, ref, hash); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSignMessage(b *testing.B) {
	c := NewCustody(custodyRing(b, "k1"))
	ref, _ := custodyKey(b, c, "or-1", "key-1", SchemeEdDSA, CurveEd25519)
	msg := bytes.Repeat([]byte{0xab}, 256)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.SignMessage(ctx, ref, msg); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSchemeBoundToSealedKey: a sealed key whose row claims another scheme does not open.
func TestSchemeBoundToSealedKey(t *testing.T) {
	c := NewCustody(custodyRing(t, "k1"))
	_, sealed, err := c.Generate("or-1", "key-1", SchemeEdDSA, CurveEd25519)
	if err != nil {
		t.Fatal(err)
	}
	ref := Ref{OrgID: "or-1", KeyID: "key-1", Scheme: SchemeECDSA, Curve: CurveSecp256k1, Sealed: sealed}
	if _, err := c.SignHash(context.Background(), ref, make([]byte, 32)); errs.KindOf(err) != errs.Internal {
		t.Fatalf("ed25519 seed used as secp256k1: %v", err)
	}
}
