package users

import (
	"context"
	"encoding/json"
	"reflect"

	"github.com/countersign/countersign/internal/auth"
	"github.com/countersign/countersign/internal/credentials/fido2"
	"github.com/countersign/countersign/internal/credentials/keycred"
	"github.com/countersign/countersign/internal/errs"
	"github.com/countersign/countersign/internal/identity"
	"github.com/countersign/countersign/internal/ids"
	"github.com/countersign/countersign/internal/useraction"
)

// Challenge is an issued ceremony and what the client needs to answer it.
type Challenge struct {
	Ceremony    Ceremony
	Handle      string // temporaryAuthenticationToken / challengeIdentifier
	User        identity.User
	Credentials []Credential // login: what may sign; registration: what to exclude
	Recovery    []Credential // recovery: the recovery credential that must sign
}

func (s *Service) issue(ctx context.Context, u identity.User, purpose, kind, credUUID string) (Challenge, error) {
	now := s.clock()
	h := handle(u.OrgID, u.ID, purpose)
	c := Ceremony{
		ID: ids.NewAt("ce", now), OrgID: u.OrgID, UserID: u.ID, Purpose: purpose, HandleHash: hash(h),
		Challenge: ids.Secret(32), CredKind: kind, CredUUID: credUUID, State: "pending",
		CreatedAt: now, ExpiresAt: now.Add(s.CeremonyTTL),
	}
	if err := s.store.CreateCeremony(ctx, c); err != nil {
		return Challenge{}, err
	}
	return Challenge{Ceremony: c, Handle: h, User: u}, nil
}

// ceremony resolves a handle to a pending, unexpired ceremony of purpose.
func (s *Service) ceremony(ctx context.Context, h string, purposes ...string) (Ceremony, error) {
	bad := errs.E(errs.Unauthenticated, "Challenge token is not valid.", nil)
	if h == "" || len(h) > 4096 {
		return Ceremony{}, bad
	}
	c, err := s.store.GetCeremony(ctx, hash(h))
	if errs.Is(err, errs.NotFound) {
		return Ceremony{}, bad
	}
	if err != nil {
		return Ceremony{}, err
	}
	ok := false
	for _, p := range purposes {
		ok = ok || c.Purpose == p
	}
	switch {
	case !ok:
		return Ceremony{}, bad
	case c.State != "pending":
		return Ceremony{}, errs.E(errs.Unauthenticated, "challenge has already been used", nil)
	case !s.clock().Before(c.ExpiresAt):
		return Ceremony{}, errs.E(errs.Unauthenticated, "challenge has expired", nil)
	}
	return c, nil
}

// complete consumes c and applies ch. The store refuses a ceremony that is no longer
// pending and a counter that moved (Unauthenticated); Conflict is a duplicate credential.
func (s *Service) complete(ctx context.Context, c Ceremony, ch Change) error {
	err := s.store.Complete(ctx, c.ID, s.clock(), ch)
	if errs.Is(err, errs.Conflict) {
		return errs.E(errs.Conflict, "a credential with this credId already exists", err)
	}
	return err
}

// NewCredential is an attestation: a credential to create (dfns-api.md §3.1.2).
type NewCredential struct {
	CredentialKind string `json:"credentialKind"`
	CredentialInfo *struct {
		CredID          string `json:"credId"`
		ClientData      string `json:"clientData"`
		AttestationData string `json:"attestationData"`
	} `json:"credentialInfo"`
	CredentialName      string `json:"credentialName,omitempty"`
	EncryptedPrivateKey string `json:"encryptedPrivateKey,omitempty"`
}

// verifyNew checks an attestation against challenge and builds the credential for u.
func (s *Service) verifyNew(nc *NewCredential, field, challenge string, u identity.User, kinds ...string) (Credential, error) {
	if nc == nil || nc.CredentialInfo == nil {
		return Credential{}, errs.Ef(errs.Invalid, "%s with credentialInfo is required", field)
	}
	ok := false
	for _, k := range kinds {
		ok = ok || nc.CredentialKind == k
	}
	if !ok {
		return Credential{}, errs.Ef(errs.Invalid, "%s.credentialKind must be one of %v", field, kinds)
	}
	if err := validText(field+".credentialName", nc.CredentialName, false); err != nil {
		return Credential{}, err
	}
	if len(nc.EncryptedPrivateKey) > 16<<10 {
		return Credential{}, errs.Ef(errs.Invalid, "%s.encryptedPrivateKey is too long", field)
	}
	now := s.clock()
	name := nc.CredentialName
	if name == "" {
		name = "Default Credential"
	}
	c := Credential{Credential: identity.Credential{
		UUID: ids.New("cr"), OrgID: u.OrgID, UserID: u.ID, Kind: nc.CredentialKind, Name: name,
		Status: identity.Active, CreatedAt: now,
	}, RPID: s.rpID}
	info := nc.CredentialInfo
	switch nc.CredentialKind {
	case identity.CredFido:
		reg, err := fido2.VerifyRegistration(fido2.RP{ID: s.rpID, Origins: s.Origins()}, challenge, info.CredID, info.ClientData, info.AttestationData)
		if err != nil {
			return Credential{}, err
		}
		c.CredID, c.PublicKey, c.Algorithm = reg.CredID, reg.PublicKey, reg.Algorithm
		c.SignCount, c.Flags, c.AAGUID, c.Origin = reg.SignCount, reg.Flags, reg.AAGUID, reg.Origin
	case identity.CredKey, CredRecoveryKey:
		if info.CredID == "" || len(info.CredID) > 1024 {
			return Credential{}, errs.Ef(errs.Invalid, "%s.credentialInfo.credId is required", field)
		}
		pub, _, err := keycred.VerifyAttestation(info.ClientData, info.AttestationData, challenge)
		if err != nil {
			return Credential{}, err
		}
		c.CredID, c.PublicKey, c.Algorithm = info.CredID, []byte(pub.PEM()), pub.Algorithm()
		c.EncryptedPrivateKey = nc.EncryptedPrivateKey
	}
	return c, nil
}

// RegisterRequest is the body of POST /auth/registration (and of the new credentials of a
// recovery).
type RegisterRequest struct {
	FirstFactorCredential  *NewCredential `json:"firstFactorCredential"`
	SecondFactorCredential *NewCredential `json:"secondFactorCredential,omitempty"`
	RecoveryCredential     *NewCredential `json:"recoveryCredential,omitempty"`
}

// Registered is the result of a registration or recovery.
type Registered struct {
	User       identity.User
	Credential Credential // the first factor
}

func (s *Service) verifyFactors(r RegisterRequest, challenge string, u identity.User) ([]Credential, error) {
	if r.SecondFactorCredential != nil {
		return nil, errs.E(errs.Invalid, "secondFactorCredential is not supported", nil)
	}
	first, err := s.verifyNew(r.FirstFactorCredential, "firstFactorCredential", challenge, u, identity.CredFido, identity.CredKey)
	if err != nil {
		return nil, err
	}
	creds := []Credential{first}
	if r.RecoveryCredential != nil {
		rc, err := s.verifyNew(r.RecoveryCredential, "recoveryCredential", challenge, u, CredRecoveryKey)
		if err != nil {
			return nil, err
		}
		if rc.CredID == first.CredID {
			return nil, errs.E(errs.Invalid, "recoveryCredential must differ from the first factor", nil)
		}
		creds = append(creds, rc)
	}
	return creds, nil
}

// RegistrationInitRequest is the body of POST /auth/registration/init.
type RegistrationInitRequest struct {
	OrgID            string `json:"orgId"`
	Username         string `json:"username"`
	RegistrationCode string `json:"registrationCode"`
}

// RegistrationInit checks a registration code and issues a registration challenge. The code
// is used up by the registration itself, so a failed attempt can be retried.
func (s *Service) RegistrationInit(ctx context.Context, r RegistrationInitRequest) (Challenge, error) {
	u, err := s.findPerson(ctx, r.OrgID, r.Username)
	if err != nil {
		return Challenge{}, err
	}
	if r.RegistrationCode == "" || len(r.RegistrationCode) > 64 {
		return Challenge{}, errs.E(errs.Invalid, "registrationCode is required", nil)
	}
	if _, err := s.store.CheckCode(ctx, hash(normCode(r.RegistrationCode)), u.ID, CodeRegistration, s.clock()); err != nil {
		if errs.Is(err, errs.NotFound) {
			return Challenge{}, errs.E(errs.Unauthenticated, "Registration code is invalid or expired", err)
		}
		return Challenge{}, err
	}
	return s.RegistrationChallenge(ctx, u)
}

// RegistrationChallenge issues a registration challenge for an active person who has not
// registered yet (delegated registration calls it directly, without a code).
func (s *Service) RegistrationChallenge(ctx context.Context, u identity.User) (Challenge, error) {
	switch {
	case u.IsServiceAccount:
		return Challenge{}, errs.E(errs.Invalid, "service accounts do not register", nil)
	case u.Status != identity.Active:
		return Challenge{}, errs.E(errs.Invalid, "User account has been deactivated.", nil)
	case u.IsRegistered:
		return Challenge{}, errs.E(errs.Unauthenticated, "User already exists.", nil)
	}
	return s.issue(ctx, u, PurposeRegistration, "", "")
}

// Register completes a registration: verifies the new credentials against the challenge
// of the temporary authentication token and stores them, marking the user registered.
func (s *Service) Register(ctx context.Context, tempToken string, r RegisterRequest) (Registered, error) {
	c, err := s.ceremony(ctx, tempToken, PurposeRegistration)
	if err != nil {
		return Registered{}, err
	}
	u, err := s.store.GetUser(ctx, c.OrgID, c.UserID)
	if err != nil {
		return Registered{}, err
	}
	if u.Status != identity.Active {
		return Registered{}, errs.E(errs.Invalid, "User account has been deactivated.", nil)
	}
	creds, err := s.verifyFactors(r, c.Challenge, u)
	if err != nil {
		return Registered{}, err
	}
	if err := s.complete(ctx, c, Change{RegisterUser: u.ID, NewCredentials: creds}); err != nil {
		return Registered{}, err
	}
	u.IsRegistered = true
	return Registered{User: u, Credential: creds[0]}, nil
}

// LoginInitRequest is the body of POST /auth/login/init.
type LoginInitRequest struct {
	Username  string `json:"username"`
	OrgID     string `json:"orgId"`
	LoginCode string `json:"loginCode,omitempty"`
}

// loginKinds are the credentials that log in and sign user actions (never RecoveryKey).
func loginKind(k string) bool { return k == identity.CredKey || k == identity.CredFido }

// LoginInit issues a login challenge listing the user's active login credentials.
func (s *Service) LoginInit(ctx context.Context, r LoginInitRequest) (Challenge, error) {
	u, err := s.findPerson(ctx, r.OrgID, r.Username)
	if err != nil {
		return Challenge{}, err
	}
	if u.Status != identity.Active {
		return Challenge{}, errs.E(errs.Invalid, "User account has been deactivated.", nil)
	}
	all, err := s.store.ListCredentials(ctx, u.OrgID, u.ID)
	if err != nil {
		return Challenge{}, err
	}
	var creds []Credential
	for _, c := range all {
		if c.Status == identity.Active && loginKind(c.Kind) {
			creds = append(creds, c)
		}
	}
	if len(creds) == 0 {
		return Challenge{}, errs.E(errs.Unauthenticated, "User does not have a credential that can be used for the application.", nil)
	}
	ch, err := s.issue(ctx, u, PurposeLogin, "", "")
	ch.Credentials = creds
	return ch, err
}

// Factor is a first factor: a Key or Fido2 assertion, as in POST /auth/action
// (dfns-api.md §2.4).
type Factor = useraction.Factor

// LoginRequest is the body of POST /auth/login.
type LoginRequest struct {
	ChallengeIdentifier string          `json:"challengeIdentifier"`
	FirstFactor         *Factor         `json:"firstFactor"`
	SecondFactor        json.RawMessage `json:"secondFactor,omitempty"`
}

// verified is a checked first factor.
type verified struct {
	cred       Credential
	counter    *CounterUpdate
	clientData []byte
	signature  []byte
}

// verifyFactor checks f over challenge by one of creds (the user's active login
// credentials). Nothing is written.
func (s *Service) verifyFactor(f *Factor, challenge string, u identity.User, creds []Credential) (verified, error) {
	if f == nil || f.CredentialAssertion == nil {
		return verified{}, errs.E(errs.Invalid, "firstFactor with a credentialAssertion is required", nil)
	}
	switch f.Kind {
	case identity.CredKey, identity.CredFido, "PasswordProtectedKey":
	default:
		return verified{}, errs.Ef(errs.Invalid, "firstFactor.kind %q is not supported", f.Kind)
	}
	want, err := keycred.DecodeB64(f.CredentialAssertion.CredID)
	if err != nil || len(want) == 0 {
		return verified{}, errs.E(errs.Invalid, "credentialAssertion.credId is required", err)
	}
	var cred *Credential
	for i := range creds {
		c := &creds[i]
		// Fido2 ids compare as bytes (clients may pad); Key ids are the client's string.
		if c.CredID == f.CredentialAssertion.CredID || (c.Kind == identity.CredFido && string(mustB64(c.CredID)) == string(want)) {
			cred = c
			break
		}
	}
	if cred == nil || cred.Status != identity.Active || !loginKind(cred.Kind) {
		return verified{}, errs.E(errs.Unauthenticated, "credential not found or not active", nil)
	}
	if (f.Kind == identity.CredFido) != (cred.Kind == identity.CredFido) {
		return verified{}, errs.E(errs.Invalid, "firstFactor.kind does not match the credential", nil)
	}
	if cred.Kind == identity.CredFido {
		res, err := fido2.VerifyAssertion(fido2.RP{ID: s.rpID, Origins: s.Origins()}, challenge, fido2.Stored{
			CredID: cred.CredID, PublicKey: cred.PublicKey, SignCount: cred.SignCount, Flags: cred.Flags, UserID: u.ID,
		}, f.CredentialAssertion.Fido2())
		if err != nil {
			return verified{}, err
		}
		return verified{cred: *cred, counter: &CounterUpdate{UUID: cred.UUID, Old: cred.SignCount, New: res.SignCount, Flags: res.Flags},
			clientData: res.ClientData, signature: res.Signature}, nil
	}
	pub, err := keycred.ParsePublicKeyPEM(string(cred.PublicKey))
	if err != nil {
		return verified{}, errs.E(errs.Internal, "stored credential key is unreadable", err)
	}
	cd, err := keycred.VerifyAssertion(pub, f.CredentialAssertion.Assertion, "key.get", challenge)
	if err != nil {
		return verified{}, err
	}
	sig, _ := keycred.DecodeB64(f.CredentialAssertion.Signature)
	return verified{cred: *cred, clientData: cd, signature: sig}, nil
}

func mustB64(s string) []byte { b, _ := keycred.DecodeB64(s); return b }

// Login verifies a login assertion and returns a user token (a short-lived JWT whose id
// names a session row, so logout and deactivation revoke it at once).
func (s *Service) Login(ctx context.Context, r LoginRequest) (string, error) {
	if len(r.SecondFactor) > 0 && string(r.SecondFactor) != "null" {
		return "", errs.E(errs.Invalid, "secondFactor is not supported", nil)
	}
	c, err := s.ceremony(ctx, r.ChallengeIdentifier, PurposeLogin)
	if err != nil {
		return "", err
	}
	u, err := s.store.GetUser(ctx, c.OrgID, c.UserID)
	if err != nil {
		return "", err
	}
	if u.Status != identity.Active {
		return "", errs.E(errs.Invalid, "User account has been deactivated.", nil)
	}
	creds, err := s.store.ListCredentials(ctx, u.OrgID, u.ID)
	if err != nil {
		return "", err
	}
	v, err := s.verifyFactor(r.FirstFactor, c.Challenge, u, creds)
	if err != nil {
		return "", err
	}
	tok, secret, err := s.session(u, v.cred.Credential)
	if err != nil {
		return "", err
	}
	if err := s.complete(ctx, c, Change{Counter: v.counter, Session: &tok}); err != nil {
		return "", err
	}
	return secret, nil
}

// session builds a login session for u, bound to the credential that logged in.
func (s *Service) session(u identity.User, cred identity.Credential) (identity.AccessToken, string, error) {
	now := s.clock()
	t := identity.AccessToken{
		ID: ids.New("to"), OrgID: u.OrgID, UserID: u.ID, Kind: auth.KindUser, Name: "login session",
		Status: identity.Active, CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(s.SessionTTL), Credential: cred,
	}
	secret, err := s.issuer.Issue(auth.Principal{OrgID: u.OrgID, UserID: u.ID, Username: u.Username,
		TokenKind: auth.KindUser, TokenID: t.ID}, now, t.ExpiresAt)
	if err != nil {
		return t, "", errs.E(errs.Internal, "could not issue token", err)
	}
	return t, secret, nil
}

// Session stores and returns a login session for u without a ceremony (delegated login
// and end-user registration use it after their own checks). cred is the user's
// credential the session is recorded against.
func (s *Service) Session(ctx context.Context, u identity.User, cred identity.Credential) (string, error) {
	t, secret, err := s.session(u, cred)
	if err != nil {
		return "", err
	}
	// A ceremony of its own keeps one write path: issue, then complete at once.
	ch, err := s.issue(ctx, u, PurposeLogin, "", "")
	if err != nil {
		return "", err
	}
	if err := s.complete(ctx, ch.Ceremony, Change{Session: &t}); err != nil {
		return "", err
	}
	return secret, nil
}

// Logout ends the caller's login session, or all of the user's sessions.
func (s *Service) Logout(ctx context.Context, p auth.Principal, all bool) error {
	if p.TokenKind != auth.KindUser {
		return errs.E(errs.Invalid, "only login sessions log out; deactivate or delete other tokens", nil)
	}
	tokenID := p.TokenID
	if all {
		tokenID = ""
	}
	return s.store.EndSessions(ctx, p.OrgID, p.UserID, tokenID, s.clock())
}

// VerifyFido2 verifies a user action assertion by a Fido2 credential of the caller and
// advances its signature counter (useraction.Fido2Verifier). cred comes from the caller's
// usable credentials; its WebAuthn state is read fresh here.
func (s *Service) VerifyFido2(ctx context.Context, cred identity.Credential, a fido2.Assertion, challenge string) ([]byte, []byte, error) {
	c, err := s.store.GetCredential(ctx, cred.OrgID, cred.UUID)
	if err != nil {
		return nil, nil, err
	}
	if c.Status != identity.Active || c.Kind != identity.CredFido || c.UserID != cred.UserID {
		return nil, nil, errs.E(errs.Unauthenticated, "credential not found or not active", nil)
	}
	res, err := fido2.VerifyAssertion(fido2.RP{ID: s.rpID, Origins: s.Origins()}, challenge, fido2.Stored{
		CredID: c.CredID, PublicKey: c.PublicKey, SignCount: c.SignCount, Flags: c.Flags, UserID: c.UserID,
	}, a)
	if err != nil {
		return nil, nil, err
	}
	err = s.store.AdvanceCounter(ctx, CounterUpdate{UUID: c.UUID, Old: c.SignCount, New: res.SignCount, Flags: res.Flags}, s.clock())
	if errs.Is(err, errs.Conflict) {
		return nil, nil, errs.E(errs.Unauthenticated, "signature counter did not increase (possible cloned authenticator)", err)
	}
	if err != nil {
		return nil, nil, err
	}
	return res.ClientData, res.Signature, nil
}

// sameJSON reports whether two JSON texts hold the same value (object member order and
// whitespace aside).
func sameJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}
