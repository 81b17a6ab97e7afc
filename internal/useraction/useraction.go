// Package useraction implements User Action Signing (dfns-api.md §2): a challenge bound to
// one request (method, path, exact body) is signed by one of the caller's credentials and
// traded for a one-time token, which the request then presents in X-DFNS-USERACTION.
// Every step is single-use and consumed atomically in the database, so two nodes over one
// database can never both accept the same challenge or token.
package useraction

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"

	"github.com/countersign/countersign/internal/auth"
	"github.com/countersign/countersign/internal/credentials/fido2"
	"github.com/countersign/countersign/internal/credentials/keycred"
	"github.com/countersign/countersign/internal/errs"
	"github.com/countersign/countersign/internal/identity"
	"github.com/countersign/countersign/internal/ids"
)

// States of a user action.
const (
	Pending = "pending" // challenge issued
	Signed  = "signed"  // assertion verified, token issued
	Used    = "used"    // token consumed by its request
)

// Action is one user action from challenge to use.
type Action struct {
	ID             string // the challengeIdentifier
	OrgID          string
	UserID         string
	TokenID        string
	Challenge      string
	Method         string
	Path           string
	Payload        []byte
	ServerKind     string
	State          string
	CreatedAt      time.Time
	ExpiresAt      time.Time
	CredentialUUID string
	ClientData     []byte
	Signature      []byte
	TokenExpiresAt time.Time
}

// SignedAction records a verified assertion and the hash of the token it earned.
type SignedAction struct {
	ID             string
	TokenHash      []byte
	CredentialUUID string
	ClientData     []byte
	Signature      []byte
	SignedAt       time.Time
	TokenExpiresAt time.Time
}

// Match is what a request must match to consume a token.
type Match struct {
	TokenHash []byte
	OrgID     string
	UserID    string
	TokenID   string
	Method    string
	Paths     [2]string // the request-target as received, and without its query
	Payload   []byte
	Now       time.Time
	AuditID   string
	BodyHash  string
}

// Store is the persistence of user actions.
type Store interface {
	CreateUserAction(ctx context.Context, a Action) error
	GetUserAction(ctx context.Context, orgID, id string) (Action, error)
	// MarkSigned moves a pending, unexpired action to signed; Conflict if it was not pending.
	MarkSigned(ctx context.Context, s SignedAction, now time.Time) error
	// Consume marks the matching signed action used and writes its audit entry in the same
	// transaction; NotFound when nothing matched (and then nothing changed).
	Consume(ctx context.Context, m Match) (Action, error)
	GetUserActionByToken(ctx context.Context, tokenHash []byte) (Action, error)
	// UsableCredentials lists the credentials that may sign for p (for a token: its own key).
	UsableCredentials(ctx context.Context, p auth.Principal) ([]identity.Credential, error)
}

// Service runs the user action flow.
type Service struct {
	store        Store
	Fido2        Fido2Verifier // nil: Fido2 credentials cannot sign
	now          func() time.Time
	ChallengeTTL time.Duration
	TokenTTL     time.Duration
}

// NewService returns a Service with 5-minute challenges and tokens.
func NewService(store Store, now func() time.Time) *Service {
	return &Service{store: store, now: now, ChallengeTTL: 5 * time.Minute, TokenTTL: 5 * time.Minute}
}

// InitRequest is the body of POST /auth/action/init.
type InitRequest struct {
	UserActionPayload    *string `json:"userActionPayload"`
	UserActionHTTPMethod string  `json:"userActionHttpMethod"`
	UserActionHTTPPath   string  `json:"userActionHttpPath"`
	UserActionServerKind string  `json:"userActionServerKind,omitempty"`
}

// MaxPayload bounds the signed payload: it is a request body, and bodies are bounded too.
const MaxPayload = 1 << 20

func (r *InitRequest) validate() error {
	switch {
	case r.UserActionPayload == nil:
		return errs.E(errs.Invalid, "userActionPayload is required (a string, possibly empty)", nil)
	case len(*r.UserActionPayload) > MaxPayload:
		return errs.E(errs.Invalid, "userActionPayload is larger than 1 MiB", nil)
	}
	switch r.UserActionHTTPMethod {
	case "POST", "PUT", "DELETE", "GET":
	default:
		return errs.E(errs.Invalid, "userActionHttpMethod must be POST, PUT, DELETE or GET", nil)
	}
	if !strings.HasPrefix(r.UserActionHTTPPath, "/") || len(r.UserActionHTTPPath) > 2048 {
		return errs.E(errs.Invalid, "userActionHttpPath must be an absolute path of at most 2048 characters", nil)
	}
	switch r.UserActionServerKind {
	case "", "Api":
	case "Staff":
		return errs.E(errs.Invalid, "userActionServerKind Staff is not served here", nil)
	default:
		return errs.E(errs.Invalid, "userActionServerKind must be Api", nil)
	}
	return nil
}

// Challenge is what Init returns.
type Challenge struct {
	Action      Action
	Credentials []identity.Credential
}

// Init issues a challenge bound to the request described in r.
func (s *Service) Init(ctx context.Context, p auth.Principal, r InitRequest) (Challenge, error) {
	if err := r.validate(); err != nil {
		return Challenge{}, err
	}
	creds, err := s.store.UsableCredentials(ctx, p)
	if err != nil {
		return Challenge{}, err
	}
	if len(creds) == 0 {
		return Challenge{}, errs.E(errs.Unauthenticated, "User does not have a credential that can be used for the application.", nil)
	}
	now := s.now().UTC()
	a := Action{
		ID: ids.NewAt("ch", now), OrgID: p.OrgID, UserID: p.UserID, TokenID: p.TokenID,
		Challenge: ids.Secret(32), Method: r.UserActionHTTPMethod, Path: r.UserActionHTTPPath,
		Payload: []byte(*r.UserActionPayload), ServerKind: "Api", State: Pending,
		CreatedAt: now, ExpiresAt: now.Add(s.ChallengeTTL),
	}
	if err := s.store.CreateUserAction(ctx, a); err != nil {
		return Challenge{}, err
	}
	return Challenge{Action: a, Credentials: creds}, nil
}

// Factor is a first or second factor of POST /auth/action.
type Factor struct {
	Kind                string     `json:"kind"`
	CredentialAssertion *Assertion `json:"credentialAssertion"`
}

// Assertion holds the fields of a Key assertion and the extra ones of a Fido2 assertion
// (dfns-api.md §2.4.1, §2.4.3).
type Assertion struct {
	keycred.Assertion
	AuthenticatorData string `json:"authenticatorData,omitempty"`
	UserHandle        string `json:"userHandle,omitempty"`
}

// Fido2 returns the WebAuthn view of a.
func (a *Assertion) Fido2() fido2.Assertion {
	return fido2.Assertion{CredID: a.CredID, ClientData: a.ClientData, AuthenticatorData: a.AuthenticatorData,
		Signature: a.Signature, UserHandle: a.UserHandle}
}

// Fido2Verifier verifies a WebAuthn assertion by one of the caller's Fido2 credentials over
// challenge and advances the credential's signature counter; it returns the raw
// clientDataJSON and the signature for the audit log. Package users implements it.
type Fido2Verifier interface {
	VerifyFido2(ctx context.Context, cred identity.Credential, a fido2.Assertion, challenge string) (clientData, sig []byte, err error)
}

// SignRequest is the body of POST /auth/action.
type SignRequest struct {
	ChallengeIdentifier string  `json:"challengeIdentifier"`
	FirstFactor         *Factor `json:"firstFactor"`
	SecondFactor        *Factor `json:"secondFactor,omitempty"`
}

// Sign verifies the assertion over a pending challenge and returns a one-time token.
func (s *Service) Sign(ctx context.Context, p auth.Principal, r SignRequest) (string, error) {
	if r.ChallengeIdentifier == "" || len(r.ChallengeIdentifier) > 128 {
		return "", errs.E(errs.Invalid, "challengeIdentifier is required", nil)
	}
	if r.FirstFactor == nil || r.FirstFactor.CredentialAssertion == nil {
		return "", errs.E(errs.Invalid, "firstFactor with a credentialAssertion is required", nil)
	}
	if r.SecondFactor != nil {
		return "", errs.E(errs.Invalid, "secondFactor is not supported", nil)
	}
	a, err := s.store.GetUserAction(ctx, p.OrgID, r.ChallengeIdentifier)
	if errs.Is(err, errs.NotFound) {
		return "", errs.E(errs.Unauthenticated, "Challenge token is not valid.", err)
	}
	if err != nil {
		return "", err
	}
	now := s.now().UTC()
	switch {
	case a.UserID != p.UserID || a.TokenID != p.TokenID:
		return "", errs.E(errs.Unauthenticated, "Challenge token is not valid.", nil)
	case a.State != Pending:
		return "", errs.E(errs.Unauthenticated, "challenge has already been used", nil)
	case !now.Before(a.ExpiresAt):
		return "", errs.E(errs.Unauthenticated, "challenge has expired", nil)
	}
	cred, err := s.credential(ctx, p, r.FirstFactor)
	if err != nil {
		return "", err
	}
	var clientData, sig []byte
	switch cred.Kind {
	case identity.CredKey:
		pub, err := keycred.ParsePublicKeyPEM(string(cred.PublicKey))
		if err != nil {
			return "", errs.E(errs.Internal, "stored credential key is unreadable", err)
		}
		clientData, err = keycred.VerifyAssertion(pub, r.FirstFactor.CredentialAssertion.Assertion, "key.get", a.Challenge)
		if err != nil {
			return "", err
		}
		sig, _ = keycred.DecodeB64(r.FirstFactor.CredentialAssertion.Signature)
	case identity.CredFido:
		if s.Fido2 == nil {
			return "", errs.E(errs.Invalid, "Fido2 credentials cannot sign user actions on this server", nil)
		}
		clientData, sig, err = s.Fido2.VerifyFido2(ctx, cred, r.FirstFactor.CredentialAssertion.Fido2(), a.Challenge)
		if err != nil {
			return "", err
		}
	default:
		return "", errs.Ef(errs.Invalid, "credentials of kind %s cannot sign user actions", cred.Kind)
	}
	token := ids.Secret(32)
	h := sha256.Sum256([]byte(token))
	err = s.store.MarkSigned(ctx, SignedAction{
		ID: a.ID, TokenHash: h[:], CredentialUUID: cred.UUID, ClientData: clientData, Signature: sig,
		SignedAt: now, TokenExpiresAt: now.Add(s.TokenTTL),
	}, now)
	if errs.Is(err, errs.Conflict) {
		return "", errs.E(errs.Unauthenticated, "challenge has already been used", err)
	}
	return token, err
}

// credential resolves the assertion's credId among the caller's usable credentials. The
// client-side allow-list check of some SDKs is not trusted (the Go signer has none).
func (s *Service) credential(ctx context.Context, p auth.Principal, f *Factor) (identity.Credential, error) {
	switch f.Kind {
	case "Key", "PasswordProtectedKey", "Fido2":
	case "":
		return identity.Credential{}, errs.E(errs.Invalid, "firstFactor.kind is required", nil)
	default:
		return identity.Credential{}, errs.Ef(errs.Invalid, "firstFactor.kind %q is not supported", f.Kind)
	}
	creds, err := s.store.UsableCredentials(ctx, p)
	if err != nil {
		return identity.Credential{}, err
	}
	want := f.CredentialAssertion.CredID
	for _, c := range creds {
		if c.CredID == want {
			if (f.Kind == "Fido2") != (c.Kind == identity.CredFido) {
				return identity.Credential{}, errs.E(errs.Invalid, "firstFactor.kind does not match the credential", nil)
			}
			return c, nil
		}
	}
	return identity.Credential{}, errs.E(errs.Unauthenticated, "credential not found or not active", nil)
}

// Consume checks X-DFNS-USERACTION against the request and uses the token up. requestURI is
// the request-target exactly as received; body the raw request body.
func (s *Service) Consume(ctx context.Context, p auth.Principal, token, method, requestURI string, body []byte) (Action, string, error) {
	if token == "" {
		return Action{}, "", errs.E(errs.PermissionDenied, "user action signature is missing or invalid", nil)
	}
	if fastAuth(token) {
		return Action{}, "", errs.WithDetails(errs.E(errs.PermissionDenied, "Fast Auth disabled", nil),
			map[string]any{"kind": "FastAuthDisabled"})
	}
	if len(token) > 256 { // ours are 43 characters
		return Action{}, "", errs.E(errs.PermissionDenied, "user action signature is missing or invalid", nil)
	}
	h := sha256.Sum256([]byte(token))
	path, _, _ := strings.Cut(requestURI, "?")
	if body == nil {
		body = []byte{}
	}
	bh := sha256.Sum256(body)
	m := Match{
		TokenHash: h[:], OrgID: p.OrgID, UserID: p.UserID, TokenID: p.TokenID, Method: method,
		Paths: [2]string{requestURI, path}, Payload: body, Now: s.now().UTC(),
		AuditID: ids.New("al"), BodyHash: base64.RawURLEncoding.EncodeToString(bh[:]),
	}
	a, err := s.store.Consume(ctx, m)
	if err == nil {
		return a, m.AuditID, nil
	}
	if !errs.Is(err, errs.NotFound) {
		return Action{}, "", err
	}
	return Action{}, "", s.explain(ctx, m)
}

// explain says why a token did not match, after the fact (nothing was changed).
func (s *Service) explain(ctx context.Context, m Match) error {
	a, err := s.store.GetUserActionByToken(ctx, m.TokenHash)
	if err != nil || a.OrgID != m.OrgID {
		return errs.E(errs.PermissionDenied, "user action signature is missing or invalid", err)
	}
	mismatch := func(what string) error {
		return errs.WithDetails(errs.E(errs.PermissionDenied, "user action does not match this request", nil),
			map[string]any{"mismatch": what})
	}
	switch {
	case a.UserID != m.UserID || a.TokenID != m.TokenID:
		return errs.E(errs.PermissionDenied, "user action signature is missing or invalid", nil)
	case a.State == Used:
		return errs.E(errs.Invalid, "user action has already been used", nil)
	case !m.Now.Before(a.TokenExpiresAt):
		return errs.E(errs.PermissionDenied, "user action has expired", nil)
	case a.Method != m.Method:
		return mismatch("method")
	case a.Path != m.Paths[0] && a.Path != m.Paths[1]:
		return mismatch("path")
	default:
		return mismatch("body")
	}
}

// fastAuth recognises the single-request Fast Auth header (b64u JSON with a kind), which
// this server does not accept (dfns-api.md §2.8): say so clearly.
func fastAuth(token string) bool {
	if len(token) > 64<<10 || !strings.HasPrefix(token, "eyJ") || strings.Count(token, ".") == 2 {
		return false
	}
	raw, err := keycred.DecodeB64(token)
	if err != nil {
		return false
	}
	var v struct {
		Kind string `json:"kind"`
	}
	return json.Unmarshal(raw, &v) == nil && v.Kind != ""
}
