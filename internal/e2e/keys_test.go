package e2e

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"testing"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"

	"github.com/countersign/countersign/client"
)

// testKey is a credential key pair of one of the algorithms the SDKs use.
type testKey struct {
	Alg       string
	PublicPEM string
	signer    crypto.Signer
	k1        *secp256k1.PrivateKey
}

var keyAlgs = []string{"Ed25519", "P-256", "secp256k1", "RSA"}

func newKey(t testing.TB, alg string) testKey {
	t.Helper()
	var der []byte
	var err error
	k := testKey{Alg: alg}
	switch alg {
	case "Ed25519":
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		k.signer = priv
	case "P-256":
		k.signer, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "RSA":
		k.signer, _ = rsa.GenerateKey(rand.Reader, 2048)
	case "secp256k1":
		k.k1, _ = secp256k1.GeneratePrivateKey()
		der, err = asn1.Marshal(struct {
			Alg pkix.AlgorithmIdentifier
			Key asn1.BitString
		}{
			pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1},
				Parameters: asn1.RawValue{FullBytes: mustOID(asn1.ObjectIdentifier{1, 3, 132, 0, 10})}},
			asn1.BitString{Bytes: k.k1.PubKey().SerializeUncompressed(), BitLength: 65 * 8},
		})
	default:
		t.Fatalf("unknown alg %s", alg)
	}
	if k.signer != nil {
		der, err = x509.MarshalPKIXPublicKey(k.signer.Public())
	}
	if err != nil {
		t.Fatal(err)
	}
	k.PublicPEM = string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	return k
}

func mustOID(o asn1.ObjectIdentifier) []byte {
	b, err := asn1.Marshal(o)
	if err != nil {
		panic(err)
	}
	return b
}

func (k testKey) Signer(t testing.TB, credID string) *client.KeySigner {
	if k.k1 != nil {
		return client.NewSecp256k1Signer(credID, k.k1)
	}
	s, err := client.NewKeySigner(credID, k.signer)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// status returns the HTTP status of a client error, 0 for nil, -1 for other errors.
func status(err error) int {
	if err == nil {
		return 0
	}
	var e *client.Error
	if errors.As(err, &e) {
		return e.Status
	}
	return -1
}
