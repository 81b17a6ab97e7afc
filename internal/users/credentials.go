package users

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/countersign/countersign/internal/auth"
	"github.com/countersign/countersign/internal/credentials/keycred"
	"github.com/countersign/countersign/internal/errs"
	"github.com/countersign/countersign/internal/identity"
	"github.com/countersign/countersign/internal/useraction"
)

// creatableKinds are the credential kinds a user can add.
func creatable(kind string) error {
	switch kind {
	case identity.CredFido, identity.CredKey, CredRecoveryKey:
		return nil
	case "PasswordProtectedKey", "Password", "Totp":
		return errs.Ef(errs.Invalid, "credential kind %s is not supported", kind)
	}
	return errs.E(errs.Invalid, "kind must be Fido2, Key or RecoveryKey", nil)
}

// person refuses service accounts: their key credential comes with their token.
func (s *Service) person(ctx context.Context, p auth.Principal) (identity.User, error) {
	if p.IsServiceAccount {
		return identity.User{}, errs.E(errs.PermissionDenied, "service accounts have no user credentials", nil)
	}
	return s.store.GetUser(ctx, p.OrgID, p.UserID)
}

// CredentialInit issues a challenge for a new credential of kind for the caller.
func (s *Service) CredentialInit(ctx context.Context, p auth.Principal, kind string) (Challenge, error) {
	if err := creatable(kind); err != nil {
		return Challenge{}, err
	}
	u, err := s.person(ctx, p)
	if err != nil {
		return Challenge{}, err
	}
	return s.credentialChallenge(ctx, u, kind, PurposeCredential)
}

func (s *Service) credentialChallenge(ctx context.Context, u identity.User, kind, purpose string) (Challenge, error) {
	creds, err := s.store.ListCredentials(ctx, u.OrgID, u.ID)
	if err != nil {
		return Challenge{}, err
	}
	ch, err := s.issue(ctx, u, purpose, kind, "")
	ch.Credentials = creds
	return ch, err
}

// CreateCredentialRequest is the body of POST /auth/credentials and
// POST /auth/credentials/code/verify.
type CreateCredentialRequest struct {
	NewCredential
	ChallengeIdentifier string `json:"challengeIdentifier"`
}

// CreateCredential adds a credential to the caller. The route requires a user action, so
// an existing credential of the caller has signed this very request.
func (s *Service) CreateCredential(ctx context.Context, p auth.Principal, r CreateCredentialRequest) (Credential, error) {
	c, err := s.ceremony(ctx, r.ChallengeIdentifier, PurposeCredential)
	if err != nil {
		return Credential{}, err
	}
	if c.OrgID != p.OrgID || c.UserID != p.UserID {
		return Credential{}, errs.E(errs.Unauthenticated, "Challenge token is not valid.", nil)
	}
	return s.addCredential(ctx, c, r)
}

func (s *Service) addCredential(ctx context.Context, c Ceremony, r CreateCredentialRequest) (Credential, error) {
	if r.CredentialKind != c.CredKind {
		return Credential{}, errs.Ef(errs.Invalid, "credentialKind must be %s, the kind this challenge was issued for", c.CredKind)
	}
	if strings.TrimSpace(r.CredentialName) == "" {
		return Credential{}, errs.E(errs.Invalid, "credentialName is required", nil)
	}
	u, err := s.store.GetUser(ctx, c.OrgID, c.UserID)
	if err != nil {
		return Credential{}, err
	}
	if u.Status != identity.Active {
		return Credential{}, errs.E(errs.Invalid, "User account has been deactivated.", nil)
	}
	cred, err := s.verifyNew(&r.NewCredential, "credential", c.Challenge, u, c.CredKind)
	if err != nil {
		return Credential{}, err
	}
	if err := s.complete(ctx, c, Change{NewCredentials: []Credential{cred}}); err != nil {
		return Credential{}, err
	}
	return cred, nil
}

// ListCredentials lists the caller's credentials.
func (s *Service) ListCredentials(ctx context.Context, p auth.Principal) ([]Credential, error) {
	if _, err := s.person(ctx, p); err != nil {
		return nil, err
	}
	cs, err := s.store.ListCredentials(ctx, p.OrgID, p.UserID)
	if err != nil {
		return nil, err
	}
	out := cs[:0]
	for _, c := range cs {
		if c.Status != identity.Archived {
			out = append(out, c)
		}
	}
	return out, nil
}

// SetCredentialStatus activates or deactivates one of the caller's credentials. A
// deactivated credential can neither log in nor sign; its sessions end with it, and the
// last active login credential cannot be deactivated (the user would be locked out).
func (s *Service) SetCredentialStatus(ctx context.Context, p auth.Principal, uuid, status string) error {
	if uuid == "" || len(uuid) > 128 {
		return errs.E(errs.Invalid, "credentialUuid is required", nil)
	}
	if _, err := s.person(ctx, p); err != nil {
		return err
	}
	cs, err := s.store.ListCredentials(ctx, p.OrgID, p.UserID)
	if err != nil {
		return err
	}
	var target *Credential
	active := 0
	for i := range cs {
		if cs[i].UUID == uuid {
			target = &cs[i]
		}
		if cs[i].Status == identity.Active && loginKind(cs[i].Kind) {
			active++
		}
	}
	switch {
	case target == nil || target.Status == identity.Archived:
		return errs.E(errs.NotFound, "credential not found", nil)
	case status == identity.Inactive && target.Status == identity.Active && loginKind(target.Kind) && active == 1:
		return errs.E(errs.Invalid, "cannot deactivate the last active credential", nil)
	}
	return s.store.SetUserCredentialStatus(ctx, p.OrgID, p.UserID, uuid, status, s.clock())
}

// CodeRequest is the body of POST /auth/credentials/code.
type CodeRequest struct {
	Expiration json.RawMessage `json:"expiration"`
}

// maxCodeLife bounds credential codes (dfns-api.md §3.4: at most 1 minute ahead).
const maxCodeLife = time.Minute

// CreateCredentialCode issues a one-time code with which the caller can add a credential
// where no existing credential can sign (another device or origin).
func (s *Service) CreateCredentialCode(ctx context.Context, p auth.Principal, r CodeRequest) (string, time.Time, error) {
	u, err := s.person(ctx, p)
	if err != nil {
		return "", time.Time{}, err
	}
	now := s.clock()
	exp := now.Add(maxCodeLife)
	if len(r.Expiration) > 0 && string(r.Expiration) != "null" {
		if exp, err = parseExpiration(r.Expiration); err != nil {
			return "", time.Time{}, err
		}
		if !exp.After(now) || exp.After(now.Add(maxCodeLife+time.Second)) {
			return "", time.Time{}, errs.E(errs.Invalid, "expiration must be in the future and at most 1 minute ahead", nil)
		}
	}
	code := newCode()
	if err := s.store.CreateCode(ctx, Code{Hash: hash(code), OrgID: u.OrgID, UserID: u.ID, Purpose: CodeCredential,
		CreatedAt: now, ExpiresAt: exp}); err != nil {
		return "", time.Time{}, err
	}
	return code, exp, nil
}

// parseExpiration reads an ISO date or a Unix time (seconds or milliseconds).
func parseExpiration(raw json.RawMessage) (time.Time, error) {
	var str string
	if json.Unmarshal(raw, &str) == nil {
		if t, err := time.Parse(time.RFC3339Nano, str); err == nil {
			return t.UTC(), nil
		}
		raw = json.RawMessage(str)
	}
	n, err := strconv.ParseFloat(strings.TrimSpace(string(raw)), 64)
	if err != nil {
		return time.Time{}, errs.E(errs.Invalid, "expiration must be an ISO-8601 date or a Unix time", nil)
	}
	if n > 1e11 {
		return time.UnixMilli(int64(n)).UTC(), nil
	}
	return time.Unix(int64(n), 0).UTC(), nil
}

// CodeInitRequest is the body of POST /auth/credentials/code/init.
type CodeInitRequest struct {
	Code           string `json:"code"`
	CredentialKind string `json:"credentialKind"`
}

// CredentialCodeInit trades a credential code (used up here) for a credential challenge.
func (s *Service) CredentialCodeInit(ctx context.Context, r CodeInitRequest) (Challenge, error) {
	if err := creatable(r.CredentialKind); err != nil {
		return Challenge{}, err
	}
	if r.Code == "" || len(r.Code) > 64 {
		return Challenge{}, errs.E(errs.Invalid, "code is required", nil)
	}
	h := hash(normCode(r.Code))
	now := s.clock()
	code, err := s.store.CheckCode(ctx, h, "", CodeCredential, now)
	if errs.Is(err, errs.NotFound) {
		return Challenge{}, errs.E(errs.PermissionDenied, "Invalid code", err)
	}
	if err != nil {
		return Challenge{}, err
	}
	u, err := s.store.GetUser(ctx, code.OrgID, code.UserID)
	if err != nil {
		return Challenge{}, err
	}
	if u.Status != identity.Active {
		return Challenge{}, errs.E(errs.Invalid, "User account has been deactivated.", nil)
	}
	if _, err := s.store.ConsumeCode(ctx, h, u.ID, CodeCredential, now); err != nil {
		return Challenge{}, errs.E(errs.PermissionDenied, "Invalid code", err)
	}
	return s.credentialChallenge(ctx, u, r.CredentialKind, PurposeCredCode)
}

// CredentialCodeVerify adds the credential of a code-initiated challenge.
func (s *Service) CredentialCodeVerify(ctx context.Context, r CreateCredentialRequest) (Credential, error) {
	c, err := s.ceremony(ctx, r.ChallengeIdentifier, PurposeCredCode)
	if err != nil {
		return Credential{}, err
	}
	return s.addCredential(ctx, c, r)
}

// RecoveryCodeRequest is the body of POST /auth/recover/user/code.
type RecoveryCodeRequest struct {
	Username string `json:"username"`
	OrgID    string `json:"orgId"`
}

// SendRecoveryCode sends a verification code to a registered person. The answer is the
// same whether or not the user exists, so it tells nobody who has an account.
func (s *Service) SendRecoveryCode(ctx context.Context, r RecoveryCodeRequest) error {
	u, err := s.findPerson(ctx, r.OrgID, r.Username)
	if errs.Is(err, errs.Unauthenticated) {
		return nil
	}
	if err != nil {
		return err
	}
	if u.Status != identity.Active || !u.IsRegistered {
		return nil
	}
	now := s.clock()
	code := newCode()
	c := Code{Hash: hash(code), OrgID: u.OrgID, UserID: u.ID, Purpose: CodeRecovery, CreatedAt: now, ExpiresAt: now.Add(s.RecoveryCodeTTL)}
	if err := s.store.CreateCode(ctx, c); err != nil {
		return err
	}
	return s.notify().Send(ctx, recoveryMessage(u, code))
}

// RecoveryInitRequest is the body of POST /auth/recover/user/init.
type RecoveryInitRequest struct {
	Username         string `json:"username"`
	VerificationCode string `json:"verificationCode"`
	OrgID            string `json:"orgId"`
	CredentialID     string `json:"credentialId"`
}

// RecoveryInit checks the verification code (used up here) and the named recovery
// credential, and issues a recovery challenge for the new credentials.
func (s *Service) RecoveryInit(ctx context.Context, r RecoveryInitRequest) (Challenge, error) {
	u, err := s.findPerson(ctx, r.OrgID, r.Username)
	if err != nil {
		return Challenge{}, err
	}
	if u.Status != identity.Active {
		return Challenge{}, errs.E(errs.Invalid, "User account has been deactivated.", nil)
	}
	if r.VerificationCode == "" || len(r.VerificationCode) > 64 || r.CredentialID == "" {
		return Challenge{}, errs.E(errs.Invalid, "verificationCode and credentialId are required", nil)
	}
	creds, err := s.store.ListCredentials(ctx, u.OrgID, u.ID)
	if err != nil {
		return Challenge{}, err
	}
	var rc *Credential
	for i := range creds {
		if creds[i].CredID == r.CredentialID && creds[i].Kind == CredRecoveryKey && creds[i].Status == identity.Active {
			rc = &creds[i]
		}
	}
	if rc == nil {
		return Challenge{}, errs.E(errs.Unauthenticated, "Credential cannot be used as a recovery factor.", nil)
	}
	if _, err := s.store.ConsumeCode(ctx, hash(normCode(r.VerificationCode)), u.ID, CodeRecovery, s.clock()); err != nil {
		if errs.Is(err, errs.NotFound) {
			return Challenge{}, errs.E(errs.PermissionDenied, "Invalid code", err)
		}
		return Challenge{}, err
	}
	ch, err := s.issue(ctx, u, PurposeRecovery, "", rc.UUID)
	ch.Recovery = []Credential{*rc}
	return ch, err
}

// RecoverRequest is the body of POST /auth/recover/user.
type RecoverRequest struct {
	Recovery       *Factor         `json:"recovery"`
	NewCredentials json.RawMessage `json:"newCredentials"`
}

// Recover replaces every credential and token of the user with new credentials, signed off
// by the recovery key: its clientData challenge is b64u(JSON of newCredentials), compared
// by value since the server cannot reproduce the client's serialisation (dfns-api.md §3.5).
func (s *Service) Recover(ctx context.Context, tempToken string, r RecoverRequest) (Registered, error) {
	c, err := s.ceremony(ctx, tempToken, PurposeRecovery)
	if err != nil {
		return Registered{}, err
	}
	if r.Recovery == nil || r.Recovery.CredentialAssertion == nil || len(r.NewCredentials) == 0 {
		return Registered{}, errs.E(errs.Invalid, "recovery with a credentialAssertion and newCredentials are required", nil)
	}
	if r.Recovery.Kind != CredRecoveryKey {
		return Registered{}, errs.E(errs.Invalid, "recovery.kind must be RecoveryKey", nil)
	}
	var nc RegisterRequest
	if err := json.Unmarshal(r.NewCredentials, &nc); err != nil {
		return Registered{}, errs.E(errs.Invalid, "newCredentials must be an object of new credentials", err)
	}
	u, err := s.store.GetUser(ctx, c.OrgID, c.UserID)
	if err != nil {
		return Registered{}, err
	}
	if u.Status != identity.Active {
		return Registered{}, errs.E(errs.Invalid, "User account has been deactivated.", nil)
	}
	rc, err := s.store.GetCredential(ctx, c.OrgID, c.CredUUID)
	if err != nil {
		return Registered{}, err
	}
	a := r.Recovery.CredentialAssertion
	if rc.Status != identity.Active || rc.UserID != u.ID || a.CredID != rc.CredID {
		return Registered{}, errs.E(errs.Unauthenticated, "Credential cannot be used as a recovery factor.", nil)
	}
	if err := verifyRecoverySignature(rc, a, r.NewCredentials); err != nil {
		return Registered{}, err
	}
	creds, err := s.verifyFactors(nc, c.Challenge, u)
	if err != nil {
		return Registered{}, err
	}
	if err := s.complete(ctx, c, Change{RetireUser: u.ID, NewCredentials: creds}); err != nil {
		return Registered{}, err
	}
	return Registered{User: u, Credential: creds[0]}, nil
}

func verifyRecoverySignature(rc Credential, a *useraction.Assertion, newCreds []byte) error {
	raw, err := keycred.DecodeB64(a.ClientData)
	if err != nil {
		return errs.E(errs.Invalid, "clientData must be base64url", err)
	}
	cd, err := keycred.ParseClientData(raw)
	if err != nil {
		return err
	}
	if cd.Type != "key.get" {
		return errs.E(errs.Unauthenticated, "clientData type mismatch", nil)
	}
	signed, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(cd.Challenge, "="))
	if err != nil || !sameJSON(signed, newCreds) {
		return errs.E(errs.Unauthenticated, "the recovery signature does not cover these newCredentials", err)
	}
	pub, err := keycred.ParsePublicKeyPEM(string(rc.PublicKey))
	if err != nil {
		return errs.E(errs.Internal, "stored credential key is unreadable", err)
	}
	sig, err := keycred.DecodeB64(a.Signature)
	if err != nil {
		return errs.E(errs.Invalid, "signature must be base64url", err)
	}
	return pub.Verify(raw, sig, a.Algorithm)
}
