package keys

import (
	"context"
	"time"

	"github.com/countersign/countersign/internal/auth"
	"github.com/countersign/countersign/internal/errs"
)

// Delegation (dfns-api.md §2.9, §4.4 delegateTo, §4.5 /keys/{keyId}/delegate): a key, and
// every wallet on it, can be handed to one end user of the organization for good. From then
// on only that end user signs with it or changes it — their user action is signed by their
// own credential, which the organization does not hold — while the organization's staff and
// service accounts keep read access. End users see nothing but what is delegated to them.
//
// Every read path of keys and wallets goes through Visible and every write path through
// CheckWrite, so the rule lives in one place.

// DelegatedStatus is the status the delegate endpoints answer with.
const DelegatedStatus = "Delegated"

// EndUsers checks that a user id names an active end user of an organization (the users
// service implements it).
type EndUsers interface {
	CheckEndUser(ctx context.Context, orgID, userID string) error
}

// SetEndUsers attaches the end-user lookup that delegateTo needs.
func (s *Service) SetEndUsers(u EndUsers) { s.endUsers = u }

func isEndUser(p auth.Principal) bool { return p.UserKind == "EndUser" }

// Visible reports whether p may read k: staff see every key of their organization, an end
// user only the keys delegated to them.
func Visible(p auth.Principal, k Key) bool {
	if k.OrgID != p.OrgID {
		return false
	}
	return !isEndUser(p) || (k.DelegatedTo != "" && k.DelegatedTo == p.UserID)
}

// CheckWrite is the single rule for everything that signs with k or changes it (and the
// wallets on it): a key p cannot see is not found; a delegated key answers only to its end
// user, so staff and service accounts get PermissionDenied even with a valid user action.
func CheckWrite(p auth.Principal, k Key) error {
	if !Visible(p, k) {
		return errs.E(errs.NotFound, "key not found", nil)
	}
	if k.DelegatedTo != "" && k.DelegatedTo != p.UserID {
		return errs.E(errs.PermissionDenied, "this key is delegated to an end user: only that user can sign with it or change it", nil)
	}
	return nil
}

// ListFilter narrows a list page to what p may see.
func ListFilter(p auth.Principal, page Page) Page {
	if isEndUser(p) {
		page.DelegatedTo = p.UserID
	}
	return page
}

// DelegateTarget resolves who a new key or wallet belongs to: an end user's own creations
// are delegated to themselves (delegateTo may only name them); staff may name an active end
// user of the organization, or nobody.
func (s *Service) DelegateTarget(ctx context.Context, p auth.Principal, delegateTo string, delay bool) (string, error) {
	if delay && delegateTo != "" {
		return "", errs.E(errs.Invalid, "delegateTo and delayDelegation are exclusive: delay, then POST .../delegate", nil)
	}
	if isEndUser(p) {
		if delegateTo != "" && delegateTo != p.UserID {
			return "", errs.E(errs.PermissionDenied, "end users can only create keys and wallets for themselves", nil)
		}
		if delay {
			return "", errs.E(errs.Invalid, "delayDelegation is for the organization's server", nil)
		}
		return p.UserID, nil
	}
	if delegateTo == "" {
		return "", nil
	}
	if err := s.checkEndUser(ctx, p.OrgID, delegateTo); err != nil {
		return "", err
	}
	return delegateTo, nil
}

func (s *Service) checkEndUser(ctx context.Context, orgID, userID string) error {
	if len(userID) > 128 {
		return errs.E(errs.Invalid, "delegateTo must be an end user id", nil)
	}
	if s.endUsers == nil {
		return errs.E(errs.Invalid, "delegation is not available on this server", nil)
	}
	return s.endUsers.CheckEndUser(ctx, orgID, userID)
}

// DelegateRequest is the body of POST /keys/{keyId}/delegate.
type DelegateRequest struct {
	DelegateTo string `json:"delegateTo"`
}

// Delegate hands key id to end user userID for good. Only staff delegate, only an active
// key that was never delegated; the store re-checks that in the update itself, so two
// racing delegations cannot both win.
func (s *Service) Delegate(ctx context.Context, p auth.Principal, id, userID string) (Key, error) {
	if err := RequireStaff(p); err != nil {
		return Key{}, err
	}
	if userID == "" {
		return Key{}, errs.E(errs.Invalid, "delegateTo (the end user id) is required", nil)
	}
	k, err := s.Get(ctx, p, id)
	if err != nil {
		return Key{}, err
	}
	switch {
	case k.DelegatedTo != "":
		return Key{}, errs.E(errs.Conflict, "key is already delegated: delegation cannot be undone or moved", nil)
	case k.Status != Active:
		return Key{}, errs.E(errs.Invalid, "key is archived", nil)
	}
	if err := s.checkEndUser(ctx, p.OrgID, userID); err != nil {
		return Key{}, err
	}
	now := s.now().UTC().Truncate(time.Millisecond)
	if err := s.store.DelegateKey(ctx, p.OrgID, id, userID, now); err != nil {
		if errs.Is(err, errs.NotFound) || errs.Is(err, errs.Conflict) {
			return Key{}, errs.E(errs.Conflict, "key is already delegated: delegation cannot be undone or moved", err)
		}
		return Key{}, err
	}
	k.DelegatedTo, k.DelegatedAt, k.UpdatedAt = userID, now, now
	return k, nil
}
