package wallets

import (
	"time"

	"github.com/countersign/countersign/internal/auth"
	"github.com/countersign/countersign/internal/chains/evm"
	"github.com/countersign/countersign/internal/errs"
	"github.com/countersign/countersign/internal/ids"
	"github.com/countersign/countersign/internal/keys"
)

// MaxEndUserWallets bounds the wallets one end-user registration may ask for.
const MaxEndUserWallets = 10

// CheckNewWallets checks the wallets an end-user registration asks for without writing, so
// a bad request is refused before the registration is committed.
func CheckNewWallets(rs []CreateRequest) error {
	if len(rs) > MaxEndUserWallets {
		return errs.Ef(errs.Invalid, "at most %d wallets per registration", MaxEndUserWallets)
	}
	for _, r := range rs {
		if r.Network == "" {
			return errs.E(errs.Invalid, "wallets[].network is required", nil)
		}
		if _, ok := evm.Lookup(r.Network); !ok {
			return errs.Ef(errs.Invalid, "network %q is not supported", r.Network)
		}
		if err := keys.ValidName(r.Name); err != nil {
			return err
		}
		if r.DelegateTo != "" || r.SigningKey != nil || r.DelayDelegation != nil || len(r.Tags) > 0 || r.ExternalID != "" {
			return errs.E(errs.Invalid, "wallets[] take only network and name", nil)
		}
	}
	return nil
}

// PrepareEndUserWallets checks the wallets an end-user registration asks for and builds
// them as Create would for the end user p (each on a new key, delegated to p), without
// writing: key generation and sealing stay outside the registration's transaction, which
// stores the result (users.Change.NewWallets) with the registration or not at all.
func (s *Service) PrepareEndUserWallets(p auth.Principal, rs []CreateRequest) ([]Wallet, error) {
	if err := CheckNewWallets(rs); err != nil {
		return nil, err
	}
	out := make([]Wallet, 0, len(rs))
	for _, r := range rs {
		net, ok := keys.LookupNetwork(r.Network)
		if !ok {
			return nil, errs.Ef(errs.Invalid, "network %q is not supported", r.Network)
		}
		k, err := s.keys.NewKey(p.OrgID, net.Scheme, net.Curve, r.Name)
		if err != nil {
			return nil, err
		}
		k.DelegatedTo, k.DelegatedAt = p.UserID, k.CreatedAt
		addr, err := net.Address(k.PublicKey)
		if err != nil {
			return nil, errs.E(errs.Internal, "could not derive the address", err)
		}
		now := s.now().UTC().Truncate(time.Millisecond)
		out = append(out, Wallet{ID: ids.NewAt("wa", now), OrgID: p.OrgID, Network: r.Network, Name: r.Name, Status: Active,
			Address: addr, Key: k, Tags: []string{}, CreatedAt: now, UpdatedAt: now})
	}
	return out, nil
}
