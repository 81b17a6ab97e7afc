// Package fido2 verifies WebAuthn (Dfns "Fido2") credential registrations and assertions
// with go-webauthn's protocol package, using our own challenges, relying party id and
// origins (dfns-api.md §2.4.3, §3.1.2; notes-authn.md §1). It keeps no state: callers
// store what Registration returns and enforce the signature counter with Result.
//
// Policy, following WebAuthn Level 3:
//   - Attestation: any statement format go-webauthn can check is verified (packed self or
//     x5c, none, …); trust roots are not enforced, so "none" is accepted (§7.1 steps 21-24:
//     a Relying Party may accept self and none attestation).
//   - User presence (UP) is always required; user verification (UV) is required because
//     every challenge we issue says userVerification "required" (§7.1 step 14, §7.2 step 15).
//   - Signature counter (§6.1.1, §7.2 step 21): when either the stored or the new counter is
//     non-zero, the new one must be strictly greater, otherwise the assertion is refused as
//     a possible cloned authenticator. Both zero means the authenticator has no counter.
//     The caller persists the new value with a conditional update so two nodes cannot both
//     accept the same counter (see CounterOK).
//   - Backup flags (§6.3.3): backup eligibility (BE) is fixed at registration; an assertion
//     whose BE differs from the stored one is refused. Backup state (BS) may change and is
//     stored with each use. BS without BE is malformed and refused.
//   - clientDataJSON.challenge may be the challenge string itself (native clients) or
//     b64u(UTF-8(challenge)) (the browser SDK); both are accepted (dfns-api.md §2.4.3).
//   - crossOrigin true and topOrigin are refused: we serve no iframes.
package fido2

import (
	"bytes"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/protocol/webauthncose"

	"github.com/countersign/countersign/internal/credentials/keycred"
	"github.com/countersign/countersign/internal/errs"
)

// RP is the relying party a ceremony is verified for.
type RP struct {
	ID      string   // rpId; its SHA-256 must head authenticatorData
	Origins []string // allowed clientDataJSON.origin values (scheme, host and port; or opaque, e.g. android:apk-key-hash:…)
}

// origins splits the allowed origins into web origins (matched on scheme, host and port)
// and opaque ones (matched as exact strings, e.g. Android apps).
func (rp RP) origins() (web, opaque []string) {
	for _, o := range rp.Origins {
		if strings.HasPrefix(o, "http://") || strings.HasPrefix(o, "https://") {
			web = append(web, o)
		} else {
			opaque = append(opaque, o)
		}
	}
	return web, opaque
}

// Flag bits of authenticatorData (WebAuthn §6.1).
const (
	FlagUP = 0x01
	FlagUV = 0x04
	FlagBE = 0x08
	FlagBS = 0x10
)

// Registration is a verified new credential: what must be stored.
type Registration struct {
	CredID    string // b64u of the raw credential id (PublicKeyCredential.id)
	PublicKey []byte // COSE_Key as the authenticator sent it
	Algorithm string // "ES256", "RS256", "EdDSA", … (the COSE alg name)
	SignCount uint32
	Flags     byte
	AAGUID    []byte
	Format    string // attestation statement format
	Origin    string
}

// Assertion is the Dfns credentialAssertion of a Fido2 factor (dfns-api.md §2.4.3).
type Assertion struct {
	CredID            string `json:"credId"`
	ClientData        string `json:"clientData"`
	AuthenticatorData string `json:"authenticatorData"`
	Signature         string `json:"signature"`
	UserHandle        string `json:"userHandle,omitempty"`
}

// Stored is what an assertion is verified against.
type Stored struct {
	CredID    string // b64u raw id
	PublicKey []byte // COSE_Key
	SignCount uint32
	Flags     byte   // as last stored
	UserID    string // the Dfns user id; the user handle is its UTF-8 bytes
}

// Result is a verified assertion.
type Result struct {
	SignCount  uint32
	Flags      byte
	ClientData []byte // raw clientDataJSON (for the audit log)
	Signature  []byte
}

func decode(field, s string) ([]byte, error) {
	b, err := keycred.DecodeB64(s)
	if err != nil || len(b) == 0 {
		return nil, errs.Ef(errs.Invalid, "%s must be non-empty base64url", field)
	}
	return b, nil
}

// pickChallenge returns the form of challenge that got equals (constant time), or "".
func pickChallenge(got, challenge string) string {
	enc := base64.RawURLEncoding.EncodeToString([]byte(challenge))
	switch {
	case challenge == "":
		return ""
	case subtle.ConstantTimeCompare([]byte(got), []byte(challenge)) == 1:
		return challenge
	case subtle.ConstantTimeCompare([]byte(got), []byte(enc)) == 1:
		return enc
	}
	return ""
}

// refused turns a go-webauthn verification failure into an Unauthenticated error whose
// public message names the check; the library's details go to the cause (the log) only.
func refused(msg string, err error) error {
	return errs.E(errs.Unauthenticated, msg, err)
}

// credParams are the algorithms we accept for new credentials.
var credParams = []protocol.CredentialParameter{
	{Type: protocol.PublicKeyCredentialType, Algorithm: webauthncose.AlgES256},
	{Type: protocol.PublicKeyCredentialType, Algorithm: webauthncose.AlgRS256},
	{Type: protocol.PublicKeyCredentialType, Algorithm: webauthncose.AlgEdDSA},
	{Type: protocol.PublicKeyCredentialType, Algorithm: webauthncose.AlgES384},
}

// Algorithms lists the COSE algorithm numbers announced in pubKeyCredParams.
func Algorithms() []int64 {
	out := make([]int64, len(credParams))
	for i, p := range credParams {
		out[i] = int64(p.Algorithm)
	}
	return out
}

// VerifyRegistration checks a new Fido2 credential (credentialInfo of dfns-api.md §3.1.2)
// created for challenge.
func VerifyRegistration(rp RP, challenge, credID, clientDataB64, attestationB64 string) (Registration, error) {
	rawID, err := decode("credentialInfo.credId", credID)
	if err != nil {
		return Registration{}, err
	}
	cdj, err := decode("credentialInfo.clientData", clientDataB64)
	if err != nil {
		return Registration{}, err
	}
	att, err := decode("credentialInfo.attestationData", attestationB64)
	if err != nil {
		return Registration{}, err
	}
	id := base64.RawURLEncoding.EncodeToString(rawID)
	ccr := protocol.CredentialCreationResponse{
		PublicKeyCredential: protocol.PublicKeyCredential{
			Credential: protocol.Credential{ID: id, Type: string(protocol.PublicKeyCredentialType)},
			RawID:      rawID,
		},
		AttestationResponse: protocol.AuthenticatorAttestationResponse{
			AuthenticatorResponse: protocol.AuthenticatorResponse{ClientDataJSON: cdj},
			AttestationObject:     att,
		},
	}
	p, err := ccr.Parse()
	if err != nil {
		return Registration{}, errs.E(errs.Invalid, "attestationData or clientData is not a valid WebAuthn attestation", err)
	}
	matched := pickChallenge(p.Response.CollectedClientData.Challenge, challenge)
	if matched == "" {
		return Registration{}, refused("challenge mismatch", nil)
	}
	if p.Response.CollectedClientData.TopOrigin != "" {
		return Registration{}, refused("topOrigin is not accepted", nil)
	}
	web, opaque := rp.origins()
	if _, err := p.Verify(matched, rp.ID, web, opaque, nil, protocol.TopOriginExplicitVerificationMode,
		false, true, true, nil, credParams, protocol.AttestationPolicy{}, protocol.SignaturePolicy{}); err != nil {
		return Registration{}, refused(verifyMessage(err), err)
	}
	ad := p.Response.AttestationObject.AuthData
	flags := byte(ad.Flags)
	if flags&FlagBS != 0 && flags&FlagBE == 0 {
		return Registration{}, refused("backup state set without backup eligibility", nil)
	}
	alg, err := webauthncose.ParsePublicKey(ad.AttData.CredentialPublicKey)
	if err != nil {
		return Registration{}, errs.E(errs.Invalid, "credential public key is not a COSE key", err)
	}
	return Registration{
		CredID:    id,
		PublicKey: ad.AttData.CredentialPublicKey,
		Algorithm: coseAlgName(alg),
		SignCount: ad.Counter,
		Flags:     flags,
		AAGUID:    ad.AttData.AAGUID,
		Format:    p.Response.AttestationObject.Format,
		Origin:    p.Response.CollectedClientData.Origin,
	}, nil
}

func coseAlgName(k any) string {
	switch v := k.(type) {
	case webauthncose.EC2PublicKeyData:
		return webauthncose.COSEAlgorithmIdentifier(v.Algorithm).String()
	case webauthncose.RSAPublicKeyData:
		return webauthncose.COSEAlgorithmIdentifier(v.Algorithm).String()
	case webauthncose.OKPPublicKeyData:
		return webauthncose.COSEAlgorithmIdentifier(v.Algorithm).String()
	}
	return "COSE"
}

// VerifyAssertion checks a Fido2 assertion over challenge by the stored credential. It
// does not persist anything: the caller stores Result.SignCount, conditionally on the
// counter it read (CounterOK has already been checked here against st.SignCount).
func VerifyAssertion(rp RP, challenge string, st Stored, a Assertion) (Result, error) {
	rawID, err := decode("credentialAssertion.credId", a.CredID)
	if err != nil {
		return Result{}, err
	}
	storedID, _ := keycred.DecodeB64(st.CredID)
	if !bytes.Equal(rawID, storedID) {
		return Result{}, refused("credential not found or not active", nil)
	}
	cdj, err := decode("credentialAssertion.clientData", a.ClientData)
	if err != nil {
		return Result{}, err
	}
	ad, err := decode("credentialAssertion.authenticatorData", a.AuthenticatorData)
	if err != nil {
		return Result{}, err
	}
	sig, err := decode("credentialAssertion.signature", a.Signature)
	if err != nil {
		return Result{}, err
	}
	var uh []byte
	if a.UserHandle != "" {
		if uh, err = keycred.DecodeB64(a.UserHandle); err != nil {
			return Result{}, errs.E(errs.Invalid, "credentialAssertion.userHandle must be base64url", err)
		}
	}
	id := base64.RawURLEncoding.EncodeToString(rawID)
	car := protocol.CredentialAssertionResponse{
		PublicKeyCredential: protocol.PublicKeyCredential{
			Credential: protocol.Credential{ID: id, Type: string(protocol.PublicKeyCredentialType)},
			RawID:      rawID,
		},
		AssertionResponse: protocol.AuthenticatorAssertionResponse{
			AuthenticatorResponse: protocol.AuthenticatorResponse{ClientDataJSON: cdj},
			AuthenticatorData:     ad, Signature: sig, UserHandle: uh,
		},
	}
	p, err := car.Parse()
	if err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return Result{}, errs.E(errs.Invalid, "clientData is not JSON", err)
		}
		return Result{}, errs.E(errs.Invalid, "authenticatorData or clientData is malformed", err)
	}
	matched := pickChallenge(p.Response.CollectedClientData.Challenge, challenge)
	if matched == "" {
		return Result{}, refused("challenge mismatch", nil)
	}
	if p.Response.CollectedClientData.TopOrigin != "" {
		return Result{}, refused("topOrigin is not accepted", nil)
	}
	// WebAuthn §7.2 step 6: a user handle, when present, must name the credential's owner.
	if len(uh) > 0 && subtle.ConstantTimeCompare(uh, []byte(st.UserID)) != 1 {
		return Result{}, refused("userHandle does not match the credential's user", nil)
	}
	web, opaque := rp.origins()
	if err := p.Verify(matched, rp.ID, "", web, opaque, nil, protocol.TopOriginExplicitVerificationMode,
		false, true, true, st.PublicKey, protocol.SignaturePolicy{}); err != nil {
		return Result{}, refused(verifyMessage(err), err)
	}
	flags := byte(p.Response.AuthenticatorData.Flags)
	switch {
	case flags&FlagBS != 0 && flags&FlagBE == 0:
		return Result{}, refused("backup state set without backup eligibility", nil)
	case flags&FlagBE != st.Flags&FlagBE:
		return Result{}, refused("backup eligibility differs from the registered credential", nil)
	}
	n := p.Response.AuthenticatorData.Counter
	if !CounterOK(st.SignCount, n) {
		return Result{}, refused("signature counter did not increase (possible cloned authenticator)", nil)
	}
	return Result{SignCount: n, Flags: flags, ClientData: cdj, Signature: sig}, nil
}

// CounterOK is the signature counter rule of WebAuthn §7.2 step 21 as our policy: the new
// counter must exceed the stored one unless both are zero (no counter support).
func CounterOK(stored, got uint32) bool {
	return (stored == 0 && got == 0) || got > stored
}

// verifyMessage names the failed check for the client, without the library's detail.
func verifyMessage(err error) string {
	var pe *protocol.Error
	if !errors.As(err, &pe) {
		return "WebAuthn verification failed"
	}
	text := pe.Details + " " + pe.DevInfo
	for _, m := range []struct{ needle, msg string }{
		{"validating origin", "origin is not allowed"},
		{"ceremony type", "clientData type mismatch"},
		{"cross origin", "crossOrigin is not accepted"},
		{"RP Hash", "rpIdHash does not match the relying party"},
		{"User presence", "user presence flag missing"},
		{"User verification", "user verification flag missing"},
		{"signature", "signature verification failed"},
	} {
		if strings.Contains(text, m.needle) {
			return m.msg
		}
	}
	return "WebAuthn verification failed"
}
