package wallets

import (
	"context"
	"math/big"
	"strings"

	"github.com/countersign/countersign/internal/auth"
	"github.com/countersign/countersign/internal/chains/registry"
	"github.com/countersign/countersign/internal/errs"
	"github.com/countersign/countersign/internal/keys"
)

// Chains reads balances and runs the dev faucet (implemented by chains/registry).
type Chains interface {
	Get(ctx context.Context, network string) (*registry.Backend, error)
	Balances(ctx context.Context, network, addr string) ([]registry.Asset, error)
	FaucetToken(ctx context.Context, network string) (registry.Token, error)
	Fund(ctx context.Context, network, addr string, amount *big.Int) (string, error)
	Mint(ctx context.Context, network, addr string, amount *big.Int) (string, error)
}

// SetChains attaches the chain backends (balances, faucet).
func (s *Service) SetChains(c Chains) { s.chains = c }

// Assets returns a wallet's balances read from its network.
func (s *Service) Assets(ctx context.Context, p auth.Principal, id string) (Wallet, []registry.Asset, error) {
	w, err := s.Get(ctx, p, id)
	if err != nil {
		return Wallet{}, nil, err
	}
	if !keys.IsEVM(w.Network) {
		// No RPC backend exists for Bitcoin or Solana yet: report no assets rather than
		// invent a balance.
		return w, []registry.Asset{}, nil
	}
	if s.chains == nil {
		return Wallet{}, nil, errs.E(errs.Unavailable, "no chain backends are configured", nil)
	}
	as, err := s.chains.Balances(ctx, w.Network, w.Address)
	return w, as, err
}

// FaucetRequest is the body of POST /dev/faucet.
type FaucetRequest struct {
	Network  string `json:"network"`
	Address  string `json:"address"`
	Amount   string `json:"amount"`
	Contract string `json:"contract,omitempty"`
}

// ParseAmount reads a positive integer amount in the smallest unit, as a decimal string.
func ParseAmount(s string) (*big.Int, error) {
	if s == "" || len(s) > 78 || strings.TrimLeft(s, "0123456789") != "" {
		return nil, errs.E(errs.Invalid, "amount must be a positive integer string in the smallest unit", nil)
	}
	v, ok := new(big.Int).SetString(s, 10)
	if !ok || v.Sign() <= 0 || v.Cmp(maxUint256) > 0 {
		return nil, errs.E(errs.Invalid, "amount must be a positive integer string in the smallest unit", nil)
	}
	return v, nil
}

// FaucetInfo describes the dev faucet of a network.
func (s *Service) FaucetInfo(ctx context.Context, p auth.Principal, network string) (registry.Token, error) {
	if s.chains == nil {
		return registry.Token{}, errs.E(errs.Unavailable, "no chain backends are configured", nil)
	}
	return s.chains.FaucetToken(ctx, network)
}

// Faucet sends native coin, or mints the test token when r.Contract names it, on a dev chain.
func (s *Service) Faucet(ctx context.Context, p auth.Principal, r FaucetRequest) (string, error) {
	if s.chains == nil {
		return "", errs.E(errs.Unavailable, "no chain backends are configured", nil)
	}
	if r.Network == "" || r.Address == "" {
		return "", errs.E(errs.Invalid, "network and address are required", nil)
	}
	amount, err := ParseAmount(r.Amount)
	if err != nil {
		return "", err
	}
	if r.Contract == "" {
		return s.chains.Fund(ctx, r.Network, r.Address, amount)
	}
	tok, err := s.chains.FaucetToken(ctx, r.Network)
	if err != nil {
		return "", err
	}
	if !strings.EqualFold(tok.Contract, r.Contract) {
		return "", errs.E(errs.Invalid, "contract is not the dev chain's test token", nil)
	}
	return s.chains.Mint(ctx, r.Network, r.Address, amount)
}
