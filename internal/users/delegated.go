package users

import (
	"context"
	"strings"

	"github.com/countersign/countersign/internal/auth"
	"github.com/countersign/countersign/internal/errs"
	"github.com/countersign/countersign/internal/identity"
	"github.com/countersign/countersign/internal/ids"
	"github.com/countersign/countersign/internal/wallets"
)

// Delegated flows (dfns-api.md §2.9, §3.2, §3.3): the organization's own server, holding a
// service account, signs up and logs in its end users. It never holds their credentials:
// registration hands the end user a challenge their own authenticator answers, and the
// token of a delegated login reads but cannot sign user actions, which need the end user's
// credential.

// requireServiceAccount admits only service accounts: delegated registration and login
// are server-to-server calls of the organization.
func requireServiceAccount(p auth.Principal) error {
	if !p.IsServiceAccount {
		return errs.E(errs.PermissionDenied, "only service accounts can register or log in users on their behalf", nil)
	}
	return nil
}

// DelegatedRegistrationRequest is the body of POST /auth/registration/delegated (and /restart).
type DelegatedRegistrationRequest struct {
	Email      string `json:"email"`
	Kind       string `json:"kind"`
	ExternalID string `json:"externalId,omitempty"`
}

// DelegatedRegistration creates a user without a registration code or email and issues
// their registration challenge; with restart it issues a new challenge for a user created
// so that never finished registering.
func (s *Service) DelegatedRegistration(ctx context.Context, p auth.Principal, r DelegatedRegistrationRequest, restart bool) (Challenge, error) {
	if err := requireServiceAccount(p); err != nil {
		return Challenge{}, err
	}
	cr := CreateRequest{Email: r.Email, Kind: r.Kind, ExternalID: r.ExternalID}
	if err := cr.validate(); err != nil {
		return Challenge{}, err
	}
	if restart {
		u, err := s.store.GetUserByUsername(ctx, p.OrgID, strings.TrimSpace(r.Email))
		if errs.Is(err, errs.NotFound) {
			return Challenge{}, errs.E(errs.NotFound, "User not found", err)
		}
		if err != nil {
			return Challenge{}, err
		}
		if u.Kind != r.Kind {
			return Challenge{}, errs.E(errs.Invalid, "kind does not match the user", nil)
		}
		return s.RegistrationChallenge(ctx, u)
	}
	now := s.clock()
	u := identity.User{
		ID: ids.New("us"), OrgID: p.OrgID, Username: r.Email, Name: r.Email, Kind: r.Kind,
		Status: identity.Active, ExternalID: r.ExternalID, CreatedAt: now, UpdatedAt: now,
	}
	if err := s.store.CreateUser(ctx, u, nil); err != nil {
		if errs.Is(err, errs.Conflict) {
			return Challenge{}, errs.E(errs.Conflict, "User already exists.", err)
		}
		return Challenge{}, err
	}
	return s.RegistrationChallenge(ctx, u)
}

// EndUserRegistered is a completed end-user registration with its login session.
type EndUserRegistered struct {
	Registered
	Token   string
	Wallets []wallets.Wallet // created with the registration, delegated to the user
}

// RegisterEndUser completes the registration of an end user (POST /auth/registration/enduser),
// logs them in and creates the wallets prepare returns, all in the one transaction that
// consumes the registration challenge: a failure anywhere leaves nothing behind and the
// challenge still usable. prepare receives the new user as their token will name them; it
// runs after the checks that need no write and before the credentials are verified, so a
// bad wallet request is refused first, with nothing changed. It must only compute (new
// keys, addresses): the store writes what it returns.
func (s *Service) RegisterEndUser(ctx context.Context, tempToken string, r RegisterRequest,
	prepare func(p auth.Principal) ([]wallets.Wallet, error)) (EndUserRegistered, error) {
	c, err := s.ceremony(ctx, tempToken, PurposeRegistration)
	if err != nil {
		return EndUserRegistered{}, err
	}
	u, err := s.store.GetUser(ctx, c.OrgID, c.UserID)
	if err != nil {
		return EndUserRegistered{}, err
	}
	if u.Kind != identity.EndUser {
		return EndUserRegistered{}, errs.E(errs.Invalid, "only end users register here; employees use /auth/registration", nil)
	}
	p := auth.Principal{OrgID: u.OrgID, UserID: u.ID, Username: u.Username, UserKind: u.Kind, TokenKind: auth.KindUser}
	var ws []wallets.Wallet
	if prepare != nil {
		if ws, err = prepare(p); err != nil {
			return EndUserRegistered{}, err
		}
	}
	if u.Status != identity.Active {
		return EndUserRegistered{}, errs.E(errs.Invalid, "User account has been deactivated.", nil)
	}
	creds, err := s.verifyFactors(r, c.Challenge, u)
	if err != nil {
		return EndUserRegistered{}, err
	}
	u.IsRegistered = true
	sess, secret, err := s.session(u, creds[0].Credential)
	if err != nil {
		return EndUserRegistered{}, err
	}
	if err := s.complete(ctx, c, Change{RegisterUser: u.ID, NewCredentials: creds, Session: &sess, NewWallets: ws}); err != nil {
		return EndUserRegistered{}, err
	}
	return EndUserRegistered{Registered: Registered{User: u, Credential: creds[0]}, Token: secret, Wallets: ws}, nil
}

// DelegatedLoginRequest is the body of POST /auth/login/delegated.
type DelegatedLoginRequest struct {
	Username string `json:"username"`
}

// DelegatedLogin returns a login session token of a registered, active end user of the
// caller's organization.
func (s *Service) DelegatedLogin(ctx context.Context, p auth.Principal, r DelegatedLoginRequest) (string, error) {
	if err := requireServiceAccount(p); err != nil {
		return "", err
	}
	if err := validText("username", r.Username, true); err != nil {
		return "", err
	}
	u, err := s.store.GetUserByUsername(ctx, p.OrgID, strings.TrimSpace(r.Username))
	if errs.Is(err, errs.NotFound) {
		return "", errs.E(errs.NotFound, "User not found", err)
	}
	if err != nil {
		return "", err
	}
	switch {
	case u.Kind != identity.EndUser:
		return "", errs.E(errs.PermissionDenied, "delegated login is for end users only", nil)
	case u.Status != identity.Active:
		return "", errs.E(errs.Invalid, "User account has been deactivated.", nil)
	case !u.IsRegistered:
		return "", errs.E(errs.Invalid, "the user has not completed registration", nil)
	}
	creds, err := s.store.ListCredentials(ctx, u.OrgID, u.ID)
	if err != nil {
		return "", err
	}
	for _, c := range creds {
		if c.Status == identity.Active && loginKind(c.Kind) {
			return s.Session(ctx, u, c.Credential)
		}
	}
	return "", errs.E(errs.Unauthenticated, "User does not have a credential that can be used for the application.", nil)
}

// CheckEndUser reports whether userID is an active end user of orgID (keys.EndUsers):
// what delegateTo may name.
func (s *Service) CheckEndUser(ctx context.Context, orgID, userID string) error {
	u, err := s.store.GetUser(ctx, orgID, userID)
	if errs.Is(err, errs.NotFound) {
		return errs.E(errs.Invalid, "delegateTo must be the id of an end user of the organization", err)
	}
	if err != nil {
		return err
	}
	switch {
	case u.IsServiceAccount || u.Kind != identity.EndUser:
		return errs.E(errs.Invalid, "delegateTo must be the id of an end user of the organization", nil)
	case u.Status != identity.Active:
		return errs.E(errs.Invalid, "delegateTo names a user who is not active", nil)
	}
	return nil
}
