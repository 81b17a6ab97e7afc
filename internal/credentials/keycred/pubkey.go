package keycred

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"strings"

	"github.com/countersign/countersign/internal/errs"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	k1ecdsa "github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
)

// Algorithm names returned by PublicKey.Algorithm.
const (
	AlgEd25519   = "Ed25519"
	AlgP256      = "ECDSA-P256"
	AlgP384      = "ECDSA-P384"
	AlgSecp256k1 = "ECDSA-secp256k1"
	AlgRSA       = "RSA"
)

// minRSABits is checked at parse time: Go refuses to verify with small keys anyway, and a
// credential that can never verify must not be registered (notes-authn §4).
const minRSABits = 2048

var (
	oidRSA         = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidECPublicKey = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	oidEd25519     = asn1.ObjectIdentifier{1, 3, 101, 112}
	oidP256        = asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}
	oidP384        = asn1.ObjectIdentifier{1, 3, 132, 0, 34}
	oidSecp256k1   = asn1.ObjectIdentifier{1, 3, 132, 0, 10}
)

const msgNotSPKI = "publicKey must be a PEM-encoded SPKI public key"

var (
	errNotSPKI     = errs.E(errs.Invalid, msgNotSPKI, nil)
	errUnsupported = errs.E(errs.Invalid, "unsupported public key algorithm", nil)
	errBadSig      = errs.E(errs.Unauthenticated, "invalid signature", nil)
)

// spki mirrors SubjectPublicKeyInfo (RFC 5280 §4.1.2.7).
type spki struct {
	Algorithm pkix.AlgorithmIdentifier
	PublicKey asn1.BitString
}

// PublicKey is a parsed credential public key.
type PublicKey struct {
	alg string
	der []byte // canonical SPKI
	pub any    // ed25519.PublicKey, *ecdsa.PublicKey, *secp256k1.PublicKey or *rsa.PublicKey
}

// ParsePublicKeyPEM parses a PEM "PUBLIC KEY" (SPKI) block. Text before or after the block
// is rejected, except ASCII whitespace: the PEM is stored as the credential and is part of
// the signed registration fingerprint, so it must be exactly one key.
func ParsePublicKeyPEM(pemText string) (*PublicKey, error) {
	trimmed := strings.TrimLeft(pemText, " \t\r\n")
	if !strings.HasPrefix(trimmed, "-----BEGIN ") {
		return nil, errNotSPKI
	}
	block, rest := pem.Decode([]byte(trimmed))
	if block == nil || block.Type != "PUBLIC KEY" || len(block.Headers) != 0 ||
		strings.Trim(string(rest), " \t\r\n") != "" {
		return nil, errNotSPKI
	}
	return ParsePublicKeyDER(block.Bytes)
}

// ParsePublicKeyDER parses SPKI DER. The algorithm is decided from the OIDs before
// crypto/x509 sees the bytes, so the answer never depends on x509's error text, and
// secp256k1 (which x509 does not know) is parsed here.
func ParsePublicKeyDER(der []byte) (*PublicKey, error) {
	var info spki
	if rest, err := asn1.Unmarshal(der, &info); err != nil || len(rest) != 0 {
		return nil, errs.E(errs.Invalid, msgNotSPKI, err)
	}
	alg := info.Algorithm.Algorithm
	switch {
	case alg.Equal(oidEd25519), alg.Equal(oidRSA):
	case alg.Equal(oidECPublicKey):
		var curve asn1.ObjectIdentifier
		if rest, err := asn1.Unmarshal(info.Algorithm.Parameters.FullBytes, &curve); err != nil || len(rest) != 0 {
			return nil, errUnsupported
		}
		switch {
		case curve.Equal(oidSecp256k1):
			return parseSecp256k1(info.PublicKey)
		case curve.Equal(oidP256), curve.Equal(oidP384):
		default:
			return nil, errUnsupported
		}
	default:
		return nil, errUnsupported
	}

	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, errs.E(errs.Invalid, msgNotSPKI, err)
	}
	k := &PublicKey{pub: pub}
	switch p := pub.(type) {
	case ed25519.PublicKey:
		k.alg = AlgEd25519
	case *ecdsa.PublicKey:
		switch p.Curve {
		case elliptic.P256():
			k.alg = AlgP256
		case elliptic.P384():
			k.alg = AlgP384
		default:
			return nil, errUnsupported
		}
	case *rsa.PublicKey:
		if p.N.BitLen() < minRSABits {
			return nil, errs.E(errs.Invalid, "RSA keys must be at least 2048 bits", nil)
		}
		k.alg = AlgRSA
	default:
		return nil, errUnsupported
	}
	if k.der, err = x509.MarshalPKIXPublicKey(pub); err != nil {
		return nil, errs.E(errs.Internal, "marshal public key", err)
	}
	return k, nil
}

// parseSecp256k1 accepts only SEC1 uncompressed (04) and compressed (02/03) points;
// secp256k1.ParsePubKey would also take the obsolete "hybrid" 06/07 form.
func parseSecp256k1(bits asn1.BitString) (*PublicKey, error) {
	b := bits.Bytes
	if bits.BitLength != 8*len(b) || len(b) == 0 {
		return nil, errNotSPKI
	}
	switch {
	case b[0] == 0x04 && len(b) == 65:
	case (b[0] == 0x02 || b[0] == 0x03) && len(b) == 33:
	default:
		return nil, errs.E(errs.Invalid, "invalid secp256k1 public key point", nil)
	}
	pub, err := secp256k1.ParsePubKey(b)
	if err != nil {
		return nil, errs.E(errs.Invalid, "invalid secp256k1 public key point", err)
	}
	der, err := asn1.Marshal(spki{
		Algorithm: pkix.AlgorithmIdentifier{
			Algorithm:  oidECPublicKey,
			Parameters: asn1.RawValue{FullBytes: mustOID(oidSecp256k1)},
		},
		PublicKey: asn1.BitString{Bytes: pub.SerializeUncompressed(), BitLength: 65 * 8},
	})
	if err != nil {
		return nil, errs.E(errs.Internal, "marshal public key", err)
	}
	return &PublicKey{alg: AlgSecp256k1, der: der, pub: pub}, nil
}

func mustOID(oid asn1.ObjectIdentifier) []byte {
	b, err := asn1.Marshal(oid)
	if err != nil {
		panic(err)
	}
	return b
}

// Algorithm returns one of "Ed25519", "ECDSA-P256", "ECDSA-P384", "ECDSA-secp256k1", "RSA".
func (k *PublicKey) Algorithm() string { return k.alg }

// PEM returns a canonical PEM encoding of the SPKI: two encodings of the same key (such as
// a compressed and an uncompressed secp256k1 point) give the same text.
func (k *PublicKey) PEM() string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: k.der}))
}

// hashFor maps credentialAssertion.algorithm (dfns-api §2.4.1) to a digest. The names are
// OpenSSL's, as Node's crypto.sign takes them; "" is SHA-256, Node's default for EC and RSA
// keys whatever the curve.
func hashFor(digest string) (crypto.Hash, error) {
	switch strings.ToUpper(digest) {
	case "", "SHA256", "SHA-256", "RSA-SHA256":
		return crypto.SHA256, nil
	case "SHA384", "SHA-384":
		return crypto.SHA384, nil
	case "SHA512", "SHA-512":
		return crypto.SHA512, nil
	}
	return 0, errs.E(errs.Invalid, "unsupported signature algorithm", nil)
}

// Verify checks sig over message; k must come from ParsePublicKeyPEM or ParsePublicKeyDER. digest is the optional credentialAssertion.algorithm.
// ECDSA signatures are DER with high S accepted (Node does not normalise S); raw r||s is
// accepted too because WebCrypto produces it.
func (k *PublicKey) Verify(message, sig []byte, digest string) error {
	h, err := hashFor(digest)
	if err != nil {
		return err
	}
	if k.alg == AlgEd25519 {
		// Pure Ed25519 has no digest; Node throws if one is given, so no honest client sends it.
		if digest != "" {
			return errs.E(errs.Invalid, "Ed25519 keys take no signature algorithm", nil)
		}
		if !ed25519.Verify(k.pub.(ed25519.PublicKey), message, sig) {
			return errBadSig
		}
		return nil
	}
	hw := h.New()
	hw.Write(message)
	d := hw.Sum(nil)

	ok := false
	switch p := k.pub.(type) {
	case *ecdsa.PublicKey:
		ok = ecdsa.VerifyASN1(p, d, sig)
		if n := (p.Curve.Params().BitSize + 7) / 8; !ok && len(sig) == 2*n {
			r, s := new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:])
			ok = ecdsa.Verify(p, d, r, s)
		}
	case *secp256k1.PublicKey:
		ok = verifySecp256k1(p, d, sig)
	case *rsa.PublicKey:
		ok = rsa.VerifyPKCS1v15(p, h, d, sig) == nil
	}
	if !ok {
		return errBadSig
	}
	return nil
}

// verifySecp256k1 uses the decred ECDSA verifier, which (unlike go-ethereum's) does not
// reject high S (notes-authn §3).
func verifySecp256k1(pub *secp256k1.PublicKey, d, sig []byte) bool {
	s, err := k1ecdsa.ParseDERSignature(sig)
	if err != nil {
		if len(sig) != 64 {
			return false
		}
		var r, ss secp256k1.ModNScalar
		if r.SetByteSlice(sig[:32]) || ss.SetByteSlice(sig[32:]) {
			return false // r or s >= n
		}
		s = k1ecdsa.NewSignature(&r, &ss)
	}
	return s.Verify(d, pub)
}
