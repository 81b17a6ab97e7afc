// Package users owns people: the users API (create, list, activate, deactivate, archive),
// registration and login with Fido2 (WebAuthn) and Key credentials, credential management
// and recovery (dfns-api.md §3, §4.1). Service accounts stay in package identity; people
// and service accounts share the users, credentials and access_tokens tables.
//
// Every ceremony (registration, login, new credential, recovery) is a server-side challenge
// used exactly once: its completion consumes it in the same transaction as its effect, so a
// replay or a race between nodes cannot complete it twice, and a refused attempt changes
// nothing. A login session is an access_tokens row of kind User, so logout, deactivation
// and recovery revoke it through the same per-request check as every other token.
//
// Reuse for the flows built later on this package: /auth/registration/delegated and
// /auth/registration/delegated/restart call CreateUser (or look the user up) and then
// RegistrationChallenge without a code; /auth/registration/enduser calls Register and then
// Session for the token; /auth/login/delegated calls Session for the named end user.
package users

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/countersign/countersign/internal/auth"
	"github.com/countersign/countersign/internal/errs"
	"github.com/countersign/countersign/internal/identity"
	"github.com/countersign/countersign/internal/ids"
	"github.com/countersign/countersign/internal/notify"
	"github.com/countersign/countersign/internal/wallets"
)

// Credential kinds besides identity.CredKey and identity.CredFido.
const (
	CredRecoveryKey = "RecoveryKey"
)

// Ceremony purposes.
const (
	PurposeRegistration = "registration"
	PurposeLogin        = "login"
	PurposeCredential   = "credential"      // POST /auth/credentials (caller signs a user action)
	PurposeCredCode     = "credential-code" // POST /auth/credentials/code/verify (the code authorised it)
	PurposeRecovery     = "recovery"
)

// Code purposes.
const (
	CodeRegistration = "registration"
	CodeCredential   = "credential"
	CodeRecovery     = "recovery"
)

// Credential is a credential with the state kept beside it.
type Credential struct {
	identity.Credential
	SignCount           uint32
	Flags               byte
	AAGUID              []byte
	RPID                string
	Origin              string
	EncryptedPrivateKey string
}

// Ceremony is one issued challenge.
type Ceremony struct {
	ID         string
	OrgID      string
	UserID     string
	Purpose    string
	HandleHash []byte
	Challenge  string
	CredKind   string // the kind a credential ceremony creates
	CredUUID   string // recovery: the recovery credential that must sign
	State      string // pending | used
	CreatedAt  time.Time
	ExpiresAt  time.Time
}

// Code is a one-time code; only its hash is stored.
type Code struct {
	Hash      []byte
	OrgID     string
	UserID    string
	Purpose   string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// CounterUpdate advances a Fido2 signature counter from Old (conditional) to New.
type CounterUpdate struct {
	UUID     string
	Old, New uint32
	Flags    byte
}

// Change is what completing a ceremony does, in the transaction that consumes it.
type Change struct {
	RegisterUser   string // mark this user registered (must not be yet) and use up its registration codes
	RetireUser     string // archive every credential and token of this user (recovery)
	NewCredentials []Credential
	Counter        *CounterUpdate
	Session        *identity.AccessToken // a login session row (its credential exists already or is in NewCredentials)
	// NewWallets are an end user's first wallets, each with its new key (delegated to them),
	// written after everything else so a registration and its wallets commit together.
	NewWallets []wallets.Wallet
}

// Store is the persistence of people, their credentials, ceremonies and codes.
type Store interface {
	CreateUser(ctx context.Context, u identity.User, c *Code) error
	ListUsers(ctx context.Context, orgID, kind, after string, limit int) ([]identity.User, error)
	GetUser(ctx context.Context, orgID, userID string) (identity.User, error)
	// GetUserByUsername finds a person; an empty orgID searches every organization and
	// fails with NotFound unless exactly one person has that username.
	GetUserByUsername(ctx context.Context, orgID, username string) (identity.User, error)
	SetUserStatus(ctx context.Context, orgID, userID, status string, now time.Time) error
	CreateCode(ctx context.Context, c Code) error
	// ReplaceCode stores c and uses up the user's other unused codes of its purpose.
	ReplaceCode(ctx context.Context, c Code) error
	// CheckCode returns an unused, unexpired code of the user; ConsumeCode also marks it
	// used (userID "" matches any user). Both fail with NotFound.
	CheckCode(ctx context.Context, hash []byte, userID, purpose string, now time.Time) (Code, error)
	ConsumeCode(ctx context.Context, hash []byte, userID, purpose string, now time.Time) (Code, error)
	CreateCeremony(ctx context.Context, c Ceremony) error
	GetCeremony(ctx context.Context, handleHash []byte) (Ceremony, error)
	// Complete marks a pending, unexpired ceremony used and applies ch atomically;
	// Conflict when the ceremony was no longer pending (nothing changed then).
	Complete(ctx context.Context, ceremonyID string, now time.Time, ch Change) error
	ListCredentials(ctx context.Context, orgID, userID string) ([]Credential, error)
	GetCredential(ctx context.Context, orgID, uuid string) (Credential, error)
	SetUserCredentialStatus(ctx context.Context, orgID, userID, uuid, status string, now time.Time) error
	// AdvanceCounter stores a Fido2 counter if it still is u.Old; Conflict otherwise.
	AdvanceCounter(ctx context.Context, u CounterUpdate, now time.Time) error
	// EndSessions deactivates the user's login session tokenID, or all of them when "".
	EndSessions(ctx context.Context, orgID, userID, tokenID string, now time.Time) error
}

// Issuer signs bearer tokens.
type Issuer interface {
	Issue(p auth.Principal, now, exp time.Time) (string, error)
}

// Service implements the people side of the API.
type Service struct {
	store  Store
	issuer Issuer
	now    func() time.Time
	rpID   string

	mu       sync.RWMutex
	origins  []string
	notifier notify.Notifier

	RegistrationCodeTTL time.Duration // 4 h (dfns-api.md §3.2)
	RecoveryCodeTTL     time.Duration
	CeremonyTTL         time.Duration
	SessionTTL          time.Duration // user login tokens
}

// NewService wires a Service. origins are the allowed WebAuthn origins (see SetOrigins).
func NewService(store Store, issuer Issuer, n notify.Notifier, rpID string, origins []string, now func() time.Time) *Service {
	return &Service{
		store: store, issuer: issuer, now: now, rpID: rpID, origins: origins, notifier: n,
		RegistrationCodeTTL: 4 * time.Hour, RecoveryCodeTTL: 15 * time.Minute,
		CeremonyTTL: 5 * time.Minute, SessionTTL: time.Hour,
	}
}

// SetOrigins replaces the allowed WebAuthn origins (the defaults depend on the port the
// server really listens on, known only after Listen).
func (s *Service) SetOrigins(o []string) {
	s.mu.Lock()
	s.origins = append([]string(nil), o...)
	s.mu.Unlock()
}

// Origins returns the allowed WebAuthn origins.
func (s *Service) Origins() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.origins
}

// SetNotifier replaces the notifier (tests capture codes with a fake).
func (s *Service) SetNotifier(n notify.Notifier) {
	s.mu.Lock()
	s.notifier = n
	s.mu.Unlock()
}

func (s *Service) notify() notify.Notifier {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.notifier
}

// RPID is the WebAuthn relying party id.
func (s *Service) RPID() string { return s.rpID }

func (s *Service) clock() time.Time { return s.now().UTC().Truncate(time.Millisecond) }

func hash(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }

// handle returns a ceremony handle: a bearer secret shaped like a JWT, because the TS SDK
// decodes the payload of every token it is given (dfns-api.md §1.4). It is not signed; the
// server only ever looks up the SHA-256 of the whole string, whose third part is 256 random
// bits.
func handle(orgID, userID, purpose string) string {
	head := base64.RawURLEncoding.EncodeToString([]byte(`{"typ":"JWT","alg":"none"}`))
	body, _ := json.Marshal(map[string]any{"https://custom/app_metadata": map[string]string{
		"orgId": orgID, "userId": userID, "tokenKind": "Temp", "purpose": purpose}})
	return head + "." + base64.RawURLEncoding.EncodeToString(body) + "." + ids.Secret(32)
}

// newCode returns a one-time code like Dfns' "A7U-KY6-9PT" (about 46 bits; codes live at
// most hours, are single use and are looked up by hash).
func newCode() string {
	const alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	b := make([]byte, 9)
	rand.Read(b)
	var sb strings.Builder
	for i, c := range b {
		if i > 0 && i%3 == 0 {
			sb.WriteByte('-')
		}
		sb.WriteByte(alphabet[int(c)%len(alphabet)])
	}
	return sb.String()
}

// normCode accepts a code in any case, with or without dashes or spaces.
func normCode(c string) string {
	c = strings.ToUpper(strings.NewReplacer("-", "", " ", "").Replace(c))
	if len(c) != 9 {
		return c
	}
	return c[0:3] + "-" + c[3:6] + "-" + c[6:9]
}

// requireStaff refuses end users: they see and manage only themselves.
func requireStaff(p auth.Principal) error {
	if p.UserKind == identity.EndUser {
		return errs.E(errs.PermissionDenied, "end users cannot manage users", nil)
	}
	return nil
}

func validText(field, v string, required bool) error {
	if required && strings.TrimSpace(v) == "" {
		return errs.Ef(errs.Invalid, "%s is required", field)
	}
	if !utf8.ValidString(v) || len(v) > 256 || strings.ContainsAny(v, "\r\n\x00") {
		return errs.Ef(errs.Invalid, "%s must be one line of valid text of at most 256 bytes", field)
	}
	return nil
}

func recoveryMessage(u identity.User, code string) notify.Message {
	return notify.Message{To: u.Username, Subject: "Your recovery code",
		Body: "Your account recovery verification code for organization " + u.OrgID + " is " + code + "."}
}
