package wallets

import (
	"github.com/countersign/countersign/internal/chains/evm"
	"github.com/countersign/countersign/internal/errs"
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
