package identity

import (
	"context"
	"encoding/base64"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/countersign/countersign/internal/auth"
	"github.com/countersign/countersign/internal/credentials/keycred"
	"github.com/countersign/countersign/internal/errs"
	"github.com/countersign/countersign/internal/ids"
)

// Store is the persistence the identity service needs.
type Store interface {
	CreateServiceAccount(ctx context.Context, sa ServiceAccount) error
	ListServiceAccounts(ctx context.Context, orgID string) ([]ServiceAccount, error)
	GetServiceAccount(ctx context.Context, orgID, userID string) (ServiceAccount, error)
	UpdateUser(ctx context.Context, orgID, userID string, name, externalID *string, now time.Time) error
	// SetServiceAccountStatus sets the status of the user and of all its tokens.
	SetServiceAccountStatus(ctx context.Context, orgID, userID, status string, now time.Time) error
	CreateAccessToken(ctx context.Context, t AccessToken) error
	ListAccessTokens(ctx context.Context, orgID, userID, kind string) ([]AccessToken, error)
	GetAccessToken(ctx context.Context, orgID, tokenID string) (AccessToken, error)
	UpdateAccessToken(ctx context.Context, orgID, tokenID string, name, externalID *string, now time.Time) error
	SetAccessTokenStatus(ctx context.Context, orgID, tokenID, status string, now time.Time) error
}

// Issuer signs bearer tokens.
type Issuer interface {
	Issue(p auth.Principal, now, exp time.Time) (string, error)
}

// Service manages service accounts and personal access tokens.
type Service struct {
	store  Store
	issuer Issuer
	now    func() time.Time
}

// NewService wires a Service.
func NewService(store Store, issuer Issuer, now func() time.Time) *Service {
	return &Service{store: store, issuer: issuer, now: now}
}

// maxDaysValid is the Dfns ceiling for token lifetimes.
const maxDaysValid = 730

// CreateTokenRequest is the body of POST /auth/service-accounts and POST /auth/pats.
type CreateTokenRequest struct {
	Name         string `json:"name"`
	PublicKey    string `json:"publicKey"`
	PermissionID string `json:"permissionId,omitempty"`
	ExternalID   string `json:"externalId,omitempty"`
	DaysValid    *int   `json:"daysValid,omitempty"`
	SecondsValid *int   `json:"secondsValid,omitempty"` // PATs only; wins over daysValid
}

// UpdateRequest is the body of PUT /auth/service-accounts/{id} and PUT /auth/pats/{id}.
type UpdateRequest struct {
	Name       *string `json:"name,omitempty"`
	ExternalID *string `json:"externalId,omitempty"`
}

func validName(n string) error {
	if strings.TrimSpace(n) == "" {
		return errs.E(errs.Invalid, "name is required", nil)
	}
	if !utf8.ValidString(n) || len(n) > 256 {
		return errs.E(errs.Invalid, "name must be valid text of at most 256 bytes", nil)
	}
	return nil
}

func validExternalID(s *string) error {
	if s != nil && (len(*s) > 256 || !utf8.ValidString(*s)) {
		return errs.E(errs.Invalid, "externalId must be valid text of at most 256 bytes", nil)
	}
	return nil
}

// lifetime validates daysValid/secondsValid and returns the token lifetime.
func (r *CreateTokenRequest) lifetime(allowSeconds bool, def time.Duration) (time.Duration, error) {
	if r.SecondsValid != nil {
		if !allowSeconds {
			return 0, errs.E(errs.Invalid, "secondsValid is not accepted here", nil)
		}
		if *r.SecondsValid < 1 || *r.SecondsValid > maxDaysValid*86400 {
			return 0, errs.Ef(errs.Invalid, "secondsValid must be between 1 and %d", maxDaysValid*86400)
		}
		return time.Duration(*r.SecondsValid) * time.Second, nil
	}
	if r.DaysValid != nil {
		if *r.DaysValid < 1 || *r.DaysValid > maxDaysValid {
			return 0, errs.Ef(errs.Invalid, "daysValid must be between 1 and %d", maxDaysValid)
		}
		return time.Duration(*r.DaysValid) * 24 * time.Hour, nil
	}
	return def, nil
}

func (r *CreateTokenRequest) validate() (*keycred.PublicKey, error) {
	if err := validName(r.Name); err != nil {
		return nil, err
	}
	if r.PublicKey == "" {
		return nil, errs.E(errs.Invalid, "publicKey is required", nil)
	}
	if err := validExternalID(&r.ExternalID); err != nil {
		return nil, err
	}
	if r.PermissionID != "" {
		// Permissions arrive with the policy engine; refusing is honest, ignoring is not.
		return nil, errs.E(errs.Invalid, "permissionId is not supported yet: every token has its owner's rights", nil)
	}
	return keycred.ParsePublicKeyPEM(r.PublicKey)
}

// requireStaff refuses end users: they manage no tokens but their own session.
func requireStaff(p auth.Principal) error {
	if p.UserKind == EndUser {
		return errs.E(errs.PermissionDenied, "end users cannot manage service accounts or access tokens", nil)
	}
	return nil
}

// newKeyCredential builds the Key credential that signs user actions for a token. Its
// credId follows the shape Dfns uses: base64url of a "ci-…" id.
func newKeyCredential(orgID, userID, name string, pub *keycred.PublicKey, now time.Time) Credential {
	return Credential{
		UUID:      ids.New("cr"),
		OrgID:     orgID,
		UserID:    userID,
		CredID:    base64.RawURLEncoding.EncodeToString([]byte(ids.New("ci"))),
		Kind:      CredKey,
		Name:      name,
		PublicKey: []byte(pub.PEM()),
		Algorithm: pub.Algorithm(),
		Status:    Active,
		CreatedAt: now,
	}
}

// NewServiceAccount builds (without storing) a service account, its key credential and a
// token, and signs the token. Bootstrap uses it before any principal exists.
func (s *Service) NewServiceAccount(orgID string, r CreateTokenRequest) (ServiceAccount, error) {
	pub, err := r.validate()
	if err != nil {
		return ServiceAccount{}, err
	}
	life, err := r.lifetime(false, maxDaysValid*24*time.Hour)
	if err != nil {
		return ServiceAccount{}, err
	}
	now := s.now().UTC().Truncate(time.Millisecond)
	u := User{
		ID: ids.New("us"), OrgID: orgID, Name: r.Name, Kind: CustomerEmployee,
		IsServiceAccount: true, Status: Active, IsRegistered: true, ExternalID: r.ExternalID,
		CreatedAt: now, UpdatedAt: now,
	}
	u.Username = r.Name
	t := AccessToken{
		ID: ids.New("to"), OrgID: orgID, UserID: u.ID, Kind: auth.KindServiceAccount, Name: r.Name,
		ExternalID: r.ExternalID, Status: Active, CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(life),
		Credential: newKeyCredential(orgID, u.ID, r.Name, pub, now),
	}
	t.Secret, err = s.issuer.Issue(auth.Principal{OrgID: orgID, UserID: u.ID, Username: u.Username,
		TokenKind: t.Kind, TokenID: t.ID}, now, t.ExpiresAt)
	if err != nil {
		return ServiceAccount{}, errs.E(errs.Internal, "could not issue token", err)
	}
	return ServiceAccount{User: u, Tokens: []AccessToken{t}}, nil
}

// CreateServiceAccount creates a service account; the token is in Tokens[0].Secret, once.
func (s *Service) CreateServiceAccount(ctx context.Context, p auth.Principal, r CreateTokenRequest) (ServiceAccount, error) {
	if err := requireStaff(p); err != nil {
		return ServiceAccount{}, err
	}
	sa, err := s.NewServiceAccount(p.OrgID, r)
	if err != nil {
		return ServiceAccount{}, err
	}
	if err := s.store.CreateServiceAccount(ctx, sa); err != nil {
		if errs.Is(err, errs.Conflict) {
			return ServiceAccount{}, errs.E(errs.Conflict, "a service account with this externalId or public key already exists", err)
		}
		return ServiceAccount{}, err
	}
	return sa, nil
}

// ListServiceAccounts lists the organization's service accounts that are not archived.
func (s *Service) ListServiceAccounts(ctx context.Context, p auth.Principal) ([]ServiceAccount, error) {
	if err := requireStaff(p); err != nil {
		return nil, err
	}
	return s.store.ListServiceAccounts(ctx, p.OrgID)
}

// GetServiceAccount returns one service account of the caller's organization.
func (s *Service) GetServiceAccount(ctx context.Context, p auth.Principal, id string) (ServiceAccount, error) {
	if err := requireStaff(p); err != nil {
		return ServiceAccount{}, err
	}
	sa, err := s.store.GetServiceAccount(ctx, p.OrgID, id)
	if errs.Is(err, errs.NotFound) {
		return ServiceAccount{}, errs.E(errs.NotFound, "service account not found", err)
	}
	return sa, err
}

// UpdateServiceAccount renames a service account or changes its externalId.
func (s *Service) UpdateServiceAccount(ctx context.Context, p auth.Principal, id string, r UpdateRequest) (ServiceAccount, error) {
	if r.Name != nil {
		if err := validName(*r.Name); err != nil {
			return ServiceAccount{}, err
		}
	}
	if err := validExternalID(r.ExternalID); err != nil {
		return ServiceAccount{}, err
	}
	sa, err := s.mutable(ctx, p, id, false)
	if err != nil {
		return ServiceAccount{}, err
	}
	now := s.now().UTC()
	if err := s.store.UpdateUser(ctx, p.OrgID, id, r.Name, r.ExternalID, now); err != nil {
		return ServiceAccount{}, err
	}
	// The store applied exactly these changes; answer without reading them back.
	if r.Name != nil {
		sa.User.Name, sa.User.Username = *r.Name, *r.Name
		for i := range sa.Tokens {
			sa.Tokens[i].Name = *r.Name
		}
	}
	if r.ExternalID != nil {
		sa.User.ExternalID = *r.ExternalID
	}
	sa.User.UpdatedAt = now
	return sa, nil
}

// SetServiceAccountStatus activates, deactivates or archives a service account and its
// tokens. A service account cannot change its own state (it would lock itself out).
func (s *Service) SetServiceAccountStatus(ctx context.Context, p auth.Principal, id, status string) (ServiceAccount, error) {
	sa, err := s.mutable(ctx, p, id, true)
	if err != nil {
		return ServiceAccount{}, err
	}
	now := s.now().UTC()
	if err := s.store.SetServiceAccountStatus(ctx, p.OrgID, id, status, now); err != nil {
		return ServiceAccount{}, err
	}
	sa.User.Status, sa.User.UpdatedAt = status, now
	for i := range sa.Tokens {
		sa.Tokens[i].Status, sa.Tokens[i].UpdatedAt = status, now
	}
	return sa, nil
}

func (s *Service) mutable(ctx context.Context, p auth.Principal, id string, stateChange bool) (ServiceAccount, error) {
	sa, err := s.GetServiceAccount(ctx, p, id)
	if err != nil {
		return sa, err
	}
	if sa.User.Status == Archived {
		return sa, errs.E(errs.Invalid, "service account is archived", nil)
	}
	if stateChange && sa.User.ID == p.UserID {
		return sa, errs.E(errs.Invalid, "a service account cannot modify its own state", nil)
	}
	return sa, nil
}

// CreatePAT creates a personal access token for the caller's own user.
func (s *Service) CreatePAT(ctx context.Context, p auth.Principal, r CreateTokenRequest) (AccessToken, error) {
	if err := requireStaff(p); err != nil {
		return AccessToken{}, err
	}
	pub, err := r.validate()
	if err != nil {
		return AccessToken{}, err
	}
	life, err := r.lifetime(true, maxDaysValid*24*time.Hour)
	if err != nil {
		return AccessToken{}, err
	}
	now := s.now().UTC().Truncate(time.Millisecond)
	t := AccessToken{
		ID: ids.New("to"), OrgID: p.OrgID, UserID: p.UserID, Kind: auth.KindPat, Name: r.Name,
		ExternalID: r.ExternalID, Status: Active, CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(life),
		Credential: newKeyCredential(p.OrgID, p.UserID, r.Name, pub, now),
	}
	t.Secret, err = s.issuer.Issue(auth.Principal{OrgID: p.OrgID, UserID: p.UserID, Username: p.Username,
		TokenKind: t.Kind, TokenID: t.ID}, now, t.ExpiresAt)
	if err != nil {
		return AccessToken{}, errs.E(errs.Internal, "could not issue token", err)
	}
	if err := s.store.CreateAccessToken(ctx, t); err != nil {
		if errs.Is(err, errs.Conflict) {
			return AccessToken{}, errs.E(errs.Conflict, "a token with this externalId already exists", err)
		}
		return AccessToken{}, err
	}
	return t, nil
}

// ListPATs lists the caller's own personal access tokens that are not archived.
func (s *Service) ListPATs(ctx context.Context, p auth.Principal) ([]AccessToken, error) {
	if err := requireStaff(p); err != nil {
		return nil, err
	}
	return s.store.ListAccessTokens(ctx, p.OrgID, p.UserID, auth.KindPat)
}

// GetPAT returns one of the caller's personal access tokens.
func (s *Service) GetPAT(ctx context.Context, p auth.Principal, id string) (AccessToken, error) {
	if err := requireStaff(p); err != nil {
		return AccessToken{}, err
	}
	t, err := s.store.GetAccessToken(ctx, p.OrgID, id)
	if err == nil && (t.UserID != p.UserID || t.Kind != auth.KindPat) {
		err = errs.E(errs.NotFound, "not found", nil)
	}
	if errs.Is(err, errs.NotFound) {
		return AccessToken{}, errs.E(errs.NotFound, "personal access token not found", err)
	}
	return t, err
}

// UpdatePAT renames a personal access token or changes its externalId.
func (s *Service) UpdatePAT(ctx context.Context, p auth.Principal, id string, r UpdateRequest) (AccessToken, error) {
	if r.Name != nil {
		if err := validName(*r.Name); err != nil {
			return AccessToken{}, err
		}
	}
	if err := validExternalID(r.ExternalID); err != nil {
		return AccessToken{}, err
	}
	t, err := s.mutablePAT(ctx, p, id, false)
	if err != nil {
		return AccessToken{}, err
	}
	now := s.now().UTC()
	if err := s.store.UpdateAccessToken(ctx, p.OrgID, id, r.Name, r.ExternalID, now); err != nil {
		return AccessToken{}, err
	}
	if r.Name != nil {
		t.Name = *r.Name
	}
	if r.ExternalID != nil {
		t.ExternalID = *r.ExternalID
	}
	t.UpdatedAt = now
	return t, nil
}

// SetPATStatus activates, deactivates or archives a personal access token.
func (s *Service) SetPATStatus(ctx context.Context, p auth.Principal, id, status string) (AccessToken, error) {
	t, err := s.mutablePAT(ctx, p, id, true)
	if err != nil {
		return AccessToken{}, err
	}
	now := s.now().UTC()
	if err := s.store.SetAccessTokenStatus(ctx, p.OrgID, id, status, now); err != nil {
		return AccessToken{}, err
	}
	t.Status, t.UpdatedAt = status, now
	return t, nil
}

func (s *Service) mutablePAT(ctx context.Context, p auth.Principal, id string, stateChange bool) (AccessToken, error) {
	t, err := s.GetPAT(ctx, p, id)
	if err != nil {
		return t, err
	}
	if t.Status == Archived {
		return t, errs.E(errs.Invalid, "personal access token is archived", nil)
	}
	if stateChange && t.ID == p.TokenID {
		return t, errs.E(errs.Invalid, "a token cannot modify its own state", nil)
	}
	return t, nil
}
