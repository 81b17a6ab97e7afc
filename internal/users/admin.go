package users

import (
	"context"
	"fmt"
	"net/mail"
	"strings"
	"time"

	"github.com/countersign/countersign/internal/auth"
	"github.com/countersign/countersign/internal/errs"
	"github.com/countersign/countersign/internal/identity"
	"github.com/countersign/countersign/internal/ids"
	"github.com/countersign/countersign/internal/notify"
)

// CreateRequest is the body of POST /auth/users.
type CreateRequest struct {
	Email         string `json:"email"`
	Kind          string `json:"kind"`
	ExternalID    string `json:"externalId,omitempty"`
	PublicKey     string `json:"publicKey,omitempty"`
	IsSSORequired bool   `json:"isSSORequired,omitempty"`
}

func (r *CreateRequest) validate() error {
	if err := validText("email", r.Email, true); err != nil {
		return err
	}
	if a, err := mail.ParseAddress(r.Email); err != nil || a.Address != r.Email {
		return errs.E(errs.Invalid, "email must be a plain email address", err)
	}
	switch r.Kind {
	case identity.CustomerEmployee, identity.EndUser:
	default:
		return errs.E(errs.Invalid, "kind must be CustomerEmployee or EndUser", nil)
	}
	if err := validText("externalId", r.ExternalID, false); err != nil {
		return err
	}
	if r.PublicKey != "" {
		return errs.E(errs.Invalid, "publicKey is not supported: users register their own credentials", nil)
	}
	if r.IsSSORequired {
		return errs.E(errs.Invalid, "isSSORequired is not supported: there is no SSO here", nil)
	}
	return nil
}

// Created is a new user and, when no mail is delivered, the registration code the admin
// must pass on (it is never stored in clear and never shown again).
type Created struct {
	User             identity.User
	RegistrationCode string
}

// CreateUser creates a person who must register within RegistrationCodeTTL with the code
// sent to their email (or handed back in Created when no SMTP server is configured).
func (s *Service) CreateUser(ctx context.Context, p auth.Principal, r CreateRequest) (Created, error) {
	if err := requireStaff(p); err != nil {
		return Created{}, err
	}
	if err := r.validate(); err != nil {
		return Created{}, err
	}
	now := s.clock()
	u := identity.User{
		ID: ids.New("us"), OrgID: p.OrgID, Username: r.Email, Name: r.Email, Kind: r.Kind,
		Status: identity.Active, ExternalID: r.ExternalID, CreatedAt: now, UpdatedAt: now,
	}
	code := newCode()
	c := &Code{Hash: hash(code), OrgID: u.OrgID, UserID: u.ID, Purpose: CodeRegistration, CreatedAt: now,
		ExpiresAt: now.Add(s.RegistrationCodeTTL)}
	if err := s.store.CreateUser(ctx, u, c); err != nil {
		if errs.Is(err, errs.Conflict) {
			return Created{}, errs.E(errs.Conflict, "User already exists.", err)
		}
		return Created{}, err
	}
	out := Created{User: u}
	n := s.notify()
	if err := n.Send(ctx, registrationMessage(u, code, c.ExpiresAt)); err != nil || !n.Delivers() {
		// Without delivery the admin who created the user is the only channel.
		out.RegistrationCode = code
	}
	return out, nil
}

func registrationMessage(u identity.User, code string, exp time.Time) notify.Message {
	return notify.Message{To: u.Username, Subject: "Your registration code",
		Body: fmt.Sprintf("Your registration code for organization %s is %s. It expires at %s.",
			u.OrgID, code, exp.UTC().Format("2006-01-02 15:04 MST"))}
}

// ListRequest filters GET /auth/users.
type ListRequest struct {
	Kind  string
	Limit int
	After string
}

// ListUsers lists the people of the caller's organization (not service accounts).
func (s *Service) ListUsers(ctx context.Context, p auth.Principal, r ListRequest) ([]identity.User, string, error) {
	if err := requireStaff(p); err != nil {
		return nil, "", err
	}
	switch r.Kind {
	case "", identity.CustomerEmployee, identity.EndUser:
	default:
		return nil, "", errs.E(errs.Invalid, "kind must be CustomerEmployee or EndUser", nil)
	}
	limit := r.Limit
	if limit <= 0 {
		limit = 100
	}
	us, err := s.store.ListUsers(ctx, p.OrgID, r.Kind, r.After, limit+1)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(us) > limit {
		us, next = us[:limit], us[limit-1].ID
	}
	return us, next, nil
}

// GetUser returns a person of the caller's organization; end users may read themselves.
func (s *Service) GetUser(ctx context.Context, p auth.Principal, id string) (identity.User, error) {
	if p.UserKind == identity.EndUser && id != p.UserID {
		return identity.User{}, errs.E(errs.PermissionDenied, "end users cannot read other users", nil)
	}
	u, err := s.store.GetUser(ctx, p.OrgID, id)
	if errs.Is(err, errs.NotFound) {
		return identity.User{}, errs.E(errs.NotFound, "user not found", err)
	}
	return u, err
}

// SetUserStatus activates, deactivates or archives a person. Deactivation and archival take
// effect at once for every session and token of the user (the per-request token check
// reads the user's status). Nobody changes their own state.
func (s *Service) SetUserStatus(ctx context.Context, p auth.Principal, id, status string) (identity.User, error) {
	if err := requireStaff(p); err != nil {
		return identity.User{}, err
	}
	u, err := s.GetUser(ctx, p, id)
	if err != nil {
		return u, err
	}
	switch {
	case u.ID == p.UserID:
		return u, errs.E(errs.Invalid, "a user cannot change their own state", nil)
	case u.Status == identity.Archived:
		return u, errs.E(errs.Invalid, "user is archived", nil)
	}
	now := s.clock()
	if err := s.store.SetUserStatus(ctx, p.OrgID, id, status, now); err != nil {
		return u, err
	}
	u.Status, u.UpdatedAt = status, now
	return u, nil
}

// findPerson resolves a username in an organization for the unauthenticated flows.
func (s *Service) findPerson(ctx context.Context, orgID, username string) (identity.User, error) {
	if err := validText("username", username, true); err != nil {
		return identity.User{}, err
	}
	if err := validText("orgId", orgID, false); err != nil {
		return identity.User{}, err
	}
	u, err := s.store.GetUserByUsername(ctx, orgID, strings.TrimSpace(username))
	if errs.Is(err, errs.NotFound) {
		return u, errs.E(errs.Unauthenticated, "User not found", err)
	}
	return u, err
}

// ResendRegistrationCode sends a new registration code to a person who has not registered;
// the previous code stops working. The answer is the same for unknown users, and the code
// only goes out through the notifier (mail, or the log without SMTP): this call is public.
func (s *Service) ResendRegistrationCode(ctx context.Context, orgID, username string) error {
	u, err := s.findPerson(ctx, orgID, username)
	if errs.Is(err, errs.Unauthenticated) {
		return nil
	}
	if err != nil {
		return err
	}
	if u.IsRegistered || u.Status != identity.Active {
		return nil
	}
	now := s.clock()
	code := newCode()
	c := Code{Hash: hash(code), OrgID: u.OrgID, UserID: u.ID, Purpose: CodeRegistration, CreatedAt: now, ExpiresAt: now.Add(s.RegistrationCodeTTL)}
	if err := s.store.ReplaceCode(ctx, c); err != nil {
		return err
	}
	return s.notify().Send(ctx, registrationMessage(u, code, c.ExpiresAt))
}
