package client

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	secpecdsa "github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
)

// Signer signs user action challenges.
type Signer interface {
	Sign(ctx context.Context, ch *Challenge) (*Assertion, error)
}

// Assertion is a first factor for POST /auth/action.
type Assertion struct {
	Kind                string              `json:"kind"`
	CredentialAssertion CredentialAssertion `json:"credentialAssertion"`
}

// CredentialAssertion is a Key credential's signature over clientData.
type CredentialAssertion struct {
	CredID     string `json:"credId"`
	ClientData string `json:"clientData"`
	Signature  string `json:"signature"`
}

// KeySigner signs like the Dfns key signers: clientData {"type":"key.get","challenge":…}
// signed with Ed25519 (pure), ECDSA (SHA-256, DER) or RSA (PKCS#1 v1.5, SHA-256).
type KeySigner struct {
	CredID string
	sign   func(msg []byte) ([]byte, error)
}

// NewKeySigner wraps an Ed25519, ECDSA (NIST curves) or RSA private key.
func NewKeySigner(credID string, key crypto.Signer) (*KeySigner, error) {
	var f func([]byte) ([]byte, error)
	switch k := key.(type) {
	case ed25519.PrivateKey:
		f = func(m []byte) ([]byte, error) { return ed25519.Sign(k, m), nil }
	case *ecdsa.PrivateKey:
		f = func(m []byte) ([]byte, error) { h := sha256.Sum256(m); return ecdsa.SignASN1(rand.Reader, k, h[:]) }
	case *rsa.PrivateKey:
		f = func(m []byte) ([]byte, error) {
			h := sha256.Sum256(m)
			return rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, h[:])
		}
	default:
		return nil, fmt.Errorf("dfns client: unsupported key type %T", key)
	}
	return &KeySigner{CredID: credID, sign: f}, nil
}

// NewSecp256k1Signer wraps a secp256k1 key (DER signatures over SHA-256, as OpenSSL makes).
func NewSecp256k1Signer(credID string, key *secp256k1.PrivateKey) *KeySigner {
	return &KeySigner{CredID: credID, sign: func(m []byte) ([]byte, error) {
		h := sha256.Sum256(m)
		return secpecdsa.Sign(key, h[:]).Serialize(), nil
	}}
}

// ParsePrivateKeyPEM reads a PKCS#8, SEC1 EC or PKCS#1 RSA private key.
func ParsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, errors.New("dfns client: no PEM block in private key")
	}
	var k any
	var err error
	switch b.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(b.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	default:
		return nil, fmt.Errorf("dfns client: unsupported PEM type %q", b.Type)
	}
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("dfns client: %T cannot sign", k)
	}
	return s, nil
}

// Sign implements Signer.
func (s *KeySigner) Sign(_ context.Context, ch *Challenge) (*Assertion, error) {
	if !slices.ContainsFunc(ch.AllowCredentials.Key, func(c CredentialRef) bool { return c.ID == s.CredID }) {
		return nil, fmt.Errorf("dfns client: credential %s is not among the allowed credentials", s.CredID)
	}
	cd, err := json.Marshal(struct {
		Type      string `json:"type"`
		Challenge string `json:"challenge"`
	}{"key.get", ch.Challenge})
	if err != nil {
		return nil, err
	}
	sig, err := s.sign(cd)
	if err != nil {
		return nil, err
	}
	return &Assertion{Kind: "Key", CredentialAssertion: CredentialAssertion{
		CredID:     s.CredID,
		ClientData: base64.RawURLEncoding.EncodeToString(cd),
		Signature:  base64.RawURLEncoding.EncodeToString(sig),
	}}, nil
}
