// Package keycred verifies Dfns "Key" credential assertions and attestations with Ed25519,
// ECDSA P-256/P-384, secp256k1 and RSA public keys (dfns-api §2.4.1, §3.1.2).
//
// clientData is always parsed and the signature checked over the bytes as received: the
// official SDKs lay the JSON out in at least three ways, so it can never be rebuilt.
package keycred

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"strings"

	"github.com/countersign/countersign/internal/errs"
)

// DecodeB64 decodes base64url with or without '=' padding, and standard base64 (+ /) with
// or without padding: the SDKs send unpadded base64url, but some clients pad and the
// React Native iOS path used the standard alphabet (dfns-api §2.4). Line breaks, which
// Go's decoder would silently skip, are rejected.
func DecodeB64(s string) ([]byte, error) {
	if s == "" {
		return []byte{}, nil
	}
	enc := base64.RawURLEncoding
	if strings.ContainsAny(s, "+/") {
		enc = base64.RawStdEncoding
	}
	if strings.HasSuffix(s, "=") {
		enc = enc.WithPadding(base64.StdPadding)
	}
	if strings.ContainsAny(s, "\r\n") {
		return nil, errs.E(errs.Invalid, "invalid base64 encoding", nil)
	}
	b, err := enc.DecodeString(s)
	if err != nil {
		return nil, errs.E(errs.Invalid, "invalid base64 encoding", err)
	}
	return b, nil
}

// ClientData is the parsed clientData JSON of a Key assertion/attestation. Parse, never
// rebuild: layouts vary by SDK.
type ClientData struct {
	Type        string `json:"type"`
	Challenge   string `json:"challenge"`
	Origin      string `json:"origin,omitempty"`
	CrossOrigin bool   `json:"crossOrigin,omitempty"`
}

// ParseClientData parses raw clientData bytes: a single JSON object whose type and
// challenge are strings. Duplicate members are rejected, so that no other JSON parser can
// read a different type or challenge from the same signed bytes. origin and crossOrigin
// are informational (dfns-api §2.4.1 says to ignore them) and are kept only when they
// have the expected JSON type.
func ParseClientData(raw []byte) (ClientData, error) {
	invalid := func(cause error) (ClientData, error) {
		return ClientData{}, errs.E(errs.Invalid, "clientData must be a JSON object with string type and challenge", cause)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return invalid(err)
	}
	var cd ClientData
	var haveType, haveChallenge bool
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return invalid(err)
		}
		key, isKey := tok.(string) // the decoder yields only string keys here; never panic on untrusted input
		if !isKey {
			return invalid(nil)
		}
		if seen[key] {
			return ClientData{}, errs.E(errs.Invalid, "clientData has a duplicate member", nil)
		}
		seen[key] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return invalid(err)
		}
		switch key {
		case "type":
			haveType = json.Unmarshal(v, &cd.Type) == nil && v[0] == '"'
		case "challenge":
			haveChallenge = json.Unmarshal(v, &cd.Challenge) == nil && v[0] == '"'
		case "origin":
			_ = json.Unmarshal(v, &cd.Origin)
		case "crossOrigin":
			_ = json.Unmarshal(v, &cd.CrossOrigin)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return invalid(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return invalid(err)
	}
	if !haveType || !haveChallenge {
		return invalid(nil)
	}
	return cd, nil
}

// ChallengeMatches reports, in constant time, whether got equals want or
// base64url-unpadded(UTF-8(want)), the WebAuthn-style double encoding that some clients
// use (dfns-api §2.4.1, §3.1.2). An empty want never matches.
func ChallengeMatches(got, want string) bool {
	if want == "" {
		return false
	}
	direct := subtle.ConstantTimeCompare([]byte(got), []byte(want))
	encoded := subtle.ConstantTimeCompare([]byte(got), []byte(base64.RawURLEncoding.EncodeToString([]byte(want))))
	return direct|encoded == 1
}

// Assertion is credentialAssertion of a Key (or PasswordProtectedKey) first factor.
type Assertion struct {
	CredID     string `json:"credId"`
	ClientData string `json:"clientData"`
	Signature  string `json:"signature"`
	Algorithm  string `json:"algorithm,omitempty"`
}

// VerifyAssertion checks a Key assertion against k (dfns-api §2.4.1): clientData type must
// be wantType (e.g. "key.get"), its challenge must match, and the signature must be over
// the raw clientData bytes, which it returns.
func VerifyAssertion(k *PublicKey, a Assertion, wantType, challenge string) ([]byte, error) {
	raw, err := decodeClientData(a.ClientData, wantType, challenge)
	if err != nil {
		return nil, err
	}
	sig, err := DecodeB64(a.Signature)
	if err != nil {
		return nil, errs.E(errs.Invalid, "signature must be base64url", err)
	}
	if err := k.Verify(raw, sig, a.Algorithm); err != nil {
		return nil, err
	}
	return raw, nil
}

// decodeClientData decodes, parses and checks clientData; mismatches are Unauthenticated
// because they mean the signature was made for another ceremony.
func decodeClientData(b64, wantType, challenge string) ([]byte, error) {
	raw, err := DecodeB64(b64)
	if err != nil {
		return nil, errs.E(errs.Invalid, "clientData must be base64url", err)
	}
	cd, err := ParseClientData(raw)
	if err != nil {
		return nil, err
	}
	if cd.Type != wantType {
		return nil, errs.E(errs.Unauthenticated, "clientData type mismatch", nil)
	}
	if !ChallengeMatches(cd.Challenge, challenge) {
		return nil, errs.E(errs.Unauthenticated, "challenge mismatch", nil)
	}
	return raw, nil
}

// attestationData is the decoded credentialInfo.attestationData of a Key credential.
type attestationData struct {
	PublicKey *string `json:"publicKey"`
	Signature *string `json:"signature"`
	Algorithm string  `json:"algorithm"`
}

// VerifyAttestation verifies a new Key credential (dfns-api §3.1.2): clientData of type
// "key.create" with a matching challenge, and attestationData = b64u(JSON {publicKey: PEM,
// signature: hex, algorithm?}) whose signature covers the fingerprint
// {"clientDataHash":"<hex sha256(clientData)>","publicKey":"<PEM>"}. The fingerprint is
// rebuilt from the PEM exactly as received, since that is what the client signed. It
// returns the parsed key and that PEM.
func VerifyAttestation(clientDataB64, attestationDataB64, challenge string) (*PublicKey, string, error) {
	raw, err := decodeClientData(clientDataB64, "key.create", challenge)
	if err != nil {
		return nil, "", err
	}
	attRaw, err := DecodeB64(attestationDataB64)
	if err != nil {
		return nil, "", errs.E(errs.Invalid, "attestationData must be base64url", err)
	}
	var att attestationData
	if err := json.Unmarshal(attRaw, &att); err != nil || att.PublicKey == nil || att.Signature == nil {
		return nil, "", errs.E(errs.Invalid, "attestationData must be a JSON object with string publicKey and signature", err)
	}
	k, err := ParsePublicKeyPEM(*att.PublicKey)
	if err != nil {
		return nil, "", err
	}
	sig, err := hex.DecodeString(*att.Signature)
	if err != nil {
		return nil, "", errs.E(errs.Invalid, "attestationData signature must be hex", err)
	}
	if err := k.Verify(fingerprint(raw, *att.PublicKey), sig, att.Algorithm); err != nil {
		return nil, "", err
	}
	return k, *att.PublicKey, nil
}

// fingerprint is what JSON.stringify({clientDataHash, publicKey}) gives. The PEM has been
// parsed, so it is ASCII, where Go and JavaScript escape alike once HTML escaping is off.
func fingerprint(clientData []byte, pemText string) []byte {
	sum := sha256.Sum256(clientData)
	var b bytes.Buffer
	b.WriteString(`{"clientDataHash":"`)
	b.WriteString(hex.EncodeToString(sum[:]))
	b.WriteString(`","publicKey":`)
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(pemText) // a string always encodes
	b.Truncate(b.Len() - 1) // Encode appends '\n'
	b.WriteByte('}')
	return b.Bytes()
}
