// Package keys holds signing keys for wallets: generated in-process, sealed at rest under the master key file's key-encryption key, used only through a Signer so an HSM or KMS backend can replace the local one without touching callers.
package keys

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"strings"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"

	"github.com/countersign/countersign/internal/errs"
	"github.com/countersign/countersign/internal/secrets"
)

// Key schemes and curves. Only the pairs ECDSA/secp256k1 and EdDSA/ed25519 exist.
const (
	SchemeECDSA    = "ECDSA"
	SchemeEdDSA    = "EdDSA"
	CurveSecp256k1 = "secp256k1"
	CurveEd25519   = "ed25519"
)

// Ref identifies a stored key and carries its sealed material (as stored in the database).
type Ref struct {
	OrgID, KeyID  string
	Scheme, Curve string
	Sealed        []byte // private key sealed by Custody
}

// Signature is one signature. For ECDSA secp256k1: R and S are 32 bytes each (big-endian),
// S is low-S (canonical, as Ethereum requires, EIP-2), RecID is 0 or 1 (the recovery id so
// that ecrecover(hash, R, S, RecID) gives the public key). For EdDSA: Raw is the 64-byte
// signature and R/S are its halves; RecID is 0.
type Signature struct {
	R, S  []byte
	RecID int
	Raw   []byte // ECDSA: R||S (64 bytes); EdDSA: the 64-byte signature
}

// Signer signs with stored keys. The private key never leaves the implementation.
type Signer interface {
	// SignHash signs a 32-byte digest (ECDSA secp256k1 only; EdDSA keys return errs Invalid
	// "EdDSA keys sign messages, not hashes").
	SignHash(ctx context.Context, ref Ref, hash []byte) (Signature, error)
	// SignMessage signs arbitrary bytes (EdDSA ed25519 only: pure Ed25519; ECDSA keys return
	// errs Invalid).
	SignMessage(ctx context.Context, ref Ref, msg []byte) (Signature, error)
}

// Custody generates keys and is the local Signer: private keys are sealed with the ring,
// with additional authenticated data "keys/<orgID>/<keyID>" so a sealed key cannot be moved
// to another row or org.
//
// Sealed plaintexts: secp256k1 is the 32-byte big-endian scalar; ed25519 is the 32-byte
// RFC 8032 seed (the expanded private key is derived on use).
type Custody struct {
	ring *secrets.Ring
}

var _ Signer = (*Custody)(nil)

// NewCustody returns a Custody sealing under ring's newest KEK.
func NewCustody(ring *secrets.Ring) *Custody { return &Custody{ring: ring} }

const (
	secp256k1ScalarLen = 32
	ed25519SeedLen     = ed25519.SeedSize
	hashLen            = 32
)

// errUnsupported is returned for any (scheme, curve) pair other than the two we support.
func errUnsupported() error { return errs.E(errs.Invalid, "unsupported scheme/curve", nil) }

// Generate makes a new key for (scheme, curve) — only ECDSA/secp256k1 and EdDSA/ed25519;
// anything else → errs Invalid "unsupported scheme/curve" — and returns its public key
// (secp256k1: 33-byte compressed; ed25519: 32 bytes) and the sealed private key.
func (c *Custody) Generate(orgID, keyID, scheme, curve string) (publicKey, sealed []byte, err error) {
	if !(scheme == SchemeECDSA && curve == CurveSecp256k1) && !(scheme == SchemeEdDSA && curve == CurveEd25519) {
		return nil, nil, errUnsupported()
	}
	aad, err := custodyAAD(orgID, keyID, scheme, curve)
	if err != nil {
		return nil, nil, err
	}
	switch {
	case scheme == SchemeECDSA && curve == CurveSecp256k1:
		priv, err := secp256k1.GeneratePrivateKey()
		if err != nil {
			return nil, nil, errs.E(errs.Internal, "key generation failed", err)
		}
		defer priv.Zero()
		scalar := priv.Serialize()
		defer clear(scalar)
		return priv.PubKey().SerializeCompressed(), c.ring.Seal(scalar, aad), nil
	case scheme == SchemeEdDSA && curve == CurveEd25519:
		seed := make([]byte, ed25519SeedLen)
		defer clear(seed)
		if _, err := rand.Read(seed); err != nil {
			return nil, nil, errs.E(errs.Internal, "key generation failed", err)
		}
		priv := ed25519.NewKeyFromSeed(seed)
		defer clear(priv)
		pub := make([]byte, ed25519.PublicKeySize)
		copy(pub, priv.Public().(ed25519.PublicKey))
		return pub, c.ring.Seal(seed, aad), nil
	default:
		return nil, nil, errUnsupported()
	}
}

// SignHash signs a 32-byte digest with an ECDSA secp256k1 key: RFC 6979 deterministic
// nonce, low S, and the recovery id Ethereum needs (yellow paper appendix F, EIP-155 adds
// the chain id on top of it, which is the caller's business).
//
// ctx is unused: local signing never blocks. It is there for remote backends.
func (c *Custody) SignHash(_ context.Context, ref Ref, hash []byte) (Signature, error) {
	switch {
	case ref.Scheme == SchemeECDSA && ref.Curve == CurveSecp256k1:
	case ref.Scheme == SchemeEdDSA && ref.Curve == CurveEd25519:
		return Signature{}, errs.E(errs.Invalid, "EdDSA keys sign messages, not hashes", nil)
	default:
		return Signature{}, errUnsupported()
	}
	if len(hash) != hashLen {
		return Signature{}, errs.E(errs.Invalid, "hash must be 32 bytes", nil)
	}
	scalar, err := c.open(ref, secp256k1ScalarLen)
	if err != nil {
		return Signature{}, err
	}
	var priv secp256k1.PrivateKey
	overflow := priv.Key.SetByteSlice(scalar)
	clear(scalar)
	defer priv.Zero()
	if overflow || priv.Key.IsZero() {
		// It authenticated, so it is ours, yet it is not a valid scalar: a bug, not input.
		return Signature{}, errs.E(errs.Internal, "stored key is unusable", errors.New("keys: sealed secp256k1 scalar out of range"))
	}

	// SignCompact returns [27+recoveryCode || R || S] with R and S as fixed 32-byte
	// big-endian values and S already normalised to the lower half of the order.
	compact := ecdsa.SignCompact(&priv, hash, false)
	recID := int(compact[0]) - 27
	if recID != 0 && recID != 1 {
		// Recovery codes 2 and 3 mean R's x-coordinate overflowed the group order, which
		// happens with probability about 2^-127. Ethereum's v cannot express it, and RFC 6979
		// makes a retry give the same signature, so refuse rather than emit an
		// unrecoverable one.
		return Signature{}, errs.E(errs.Internal, "signing failed", errors.New("keys: secp256k1 recovery id out of range"))
	}
	raw := make([]byte, 64)
	copy(raw, compact[1:])
	return Signature{R: raw[:32:32], S: raw[32:], RecID: recID, Raw: raw}, nil
}

// SignMessage signs msg with an EdDSA ed25519 key: pure Ed25519 (RFC 8032 §5.1.6), no
// pre-hash and no context.
//
// ctx is unused: local signing never blocks. It is there for remote backends.
func (c *Custody) SignMessage(_ context.Context, ref Ref, msg []byte) (Signature, error) {
	switch {
	case ref.Scheme == SchemeEdDSA && ref.Curve == CurveEd25519:
	case ref.Scheme == SchemeECDSA && ref.Curve == CurveSecp256k1:
		return Signature{}, errs.E(errs.Invalid, "ECDSA keys sign hashes, not messages", nil)
	default:
		return Signature{}, errUnsupported()
	}
	seed, err := c.open(ref, ed25519SeedLen)
	if err != nil {
		return Signature{}, err
	}
	priv := ed25519.NewKeyFromSeed(seed)
	clear(seed)
	defer clear(priv)
	raw := ed25519.Sign(priv, msg)
	return Signature{R: raw[:32:32], S: raw[32:], Raw: raw}, nil
}

// Reseal re-encrypts a sealed key under the ring's newest KEK (for KEK rotation); returns
// the input unchanged if it is already sealed by the newest.
func (c *Custody) Reseal(ref Ref) ([]byte, error) {
	if !c.ring.NeedsReseal(ref.Sealed) {
		return ref.Sealed, nil
	}
	aad, err := custodyAAD(ref.OrgID, ref.KeyID, ref.Scheme, ref.Curve)
	if err != nil {
		return nil, err
	}
	pt, err := c.ring.Open(ref.Sealed, aad)
	if err != nil {
		return nil, errs.E(errs.Internal, "stored key is unusable", err)
	}
	defer clear(pt)
	return c.ring.Seal(pt, aad), nil
}

// open unseals ref's private key and checks its length. The caller clears the result.
// Every failure is Internal: the sealed value is ours, so a failure is corruption, a
// missing KEK or tampering, and the reason goes to the log only.
func (c *Custody) open(ref Ref, wantLen int) ([]byte, error) {
	aad, err := custodyAAD(ref.OrgID, ref.KeyID, ref.Scheme, ref.Curve)
	if err != nil {
		return nil, err
	}
	pt, err := c.ring.Open(ref.Sealed, aad)
	if err != nil {
		return nil, errs.E(errs.Internal, "stored key is unusable", err)
	}
	if len(pt) != wantLen {
		clear(pt)
		return nil, errs.E(errs.Internal, "stored key is unusable", errors.New("keys: sealed key has the wrong length"))
	}
	return pt, nil
}

// custodyAAD is the additional authenticated data binding a sealed key to its row: org,
// key id, scheme and curve (a 32-byte ed25519 seed must never be usable as a secp256k1
// scalar because someone edited the scheme column). Parts with '/' are refused so the
// string has one reading; our ids never contain it.
func custodyAAD(orgID, keyID, scheme, curve string) ([]byte, error) {
	for _, p := range []string{orgID, keyID, scheme, curve} {
		if p == "" || strings.Contains(p, "/") {
			return nil, errs.E(errs.Internal, "invalid key reference", errors.New("keys: key reference parts must be non-empty and contain no '/'"))
		}
	}
	return []byte("keys/" + orgID + "/" + keyID + "/" + scheme + "/" + curve), nil
}
