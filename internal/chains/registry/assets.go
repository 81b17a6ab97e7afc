package registry

import (
	"context"
	"math/big"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"

	"github.com/countersign/countersign/internal/chains/evm"
	"github.com/countersign/countersign/internal/chains/evm/devchain"
	"github.com/countersign/countersign/internal/errs"
)

// Asset is a balance of a wallet on its network.
type Asset struct {
	Kind     string // Native | Erc20
	Contract string // Erc20 only
	Symbol   string
	Decimals int
	Balance  *big.Int
}

// Token describes the dev chain's built-in test ERC-20.
type Token struct {
	Contract string
	Symbol   string
	Decimals int
}

// balanceOfSelector is keccak256("balanceOf(address)")[:4].
var balanceOfSelector = []byte{0x70, 0xa0, 0x82, 0x31}

// Balances reads the native balance of addr on network and, on a dev chain, its balance
// of the test token. (Other ERC-20 balances need an indexer and come with history.)
func (r *Registry) Balances(ctx context.Context, network, addr string) ([]Asset, error) {
	b, err := r.Get(ctx, network)
	if err != nil {
		return nil, err
	}
	a, err := evm.ParseAddress(addr)
	if err != nil {
		return nil, err
	}
	bal, err := b.Client.BalanceAt(ctx, a, nil)
	if err != nil {
		return nil, errs.E(errs.Unavailable, "could not read the balance from the network", err)
	}
	out := []Asset{{Kind: "Native", Symbol: b.Network.Symbol, Decimals: b.Network.Decimals, Balance: bal}}
	if b.Dev != nil {
		tok, sym, dec := b.Dev.Token()
		tb, err := erc20Balance(ctx, b, tok, a)
		if err != nil {
			return nil, err
		}
		out = append(out, Asset{Kind: "Erc20", Contract: tok.Hex(), Symbol: sym, Decimals: int(dec), Balance: tb})
	}
	return out, nil
}

func erc20Balance(ctx context.Context, b *Backend, token, owner common.Address) (*big.Int, error) {
	data := append(append([]byte{}, balanceOfSelector...), common.LeftPadBytes(owner.Bytes(), 32)...)
	res, err := b.Client.CallContract(ctx, ethereum.CallMsg{To: &token, Data: data}, nil)
	if err != nil {
		return nil, errs.E(errs.Unavailable, "could not read the token balance", err)
	}
	if len(res) != 32 {
		return nil, errs.E(errs.Unavailable, "unexpected token balance answer", nil)
	}
	return new(big.Int).SetBytes(res), nil
}

// FaucetToken returns the dev chain's test token of network.
func (r *Registry) FaucetToken(ctx context.Context, network string) (Token, error) {
	dc, err := r.Dev(ctx, network)
	if err != nil {
		return Token{}, err
	}
	tok, sym, dec := dc.Token()
	return Token{Contract: tok.Hex(), Symbol: sym, Decimals: int(dec)}, nil
}

// Fund sends native coin on a dev chain and returns the transaction hash once mined.
func (r *Registry) Fund(ctx context.Context, network, addr string, amount *big.Int) (string, error) {
	return r.faucet(ctx, network, addr, "the faucet could not send", func(dc *devchain.Chain, a common.Address) (common.Hash, error) {
		return dc.Fund(ctx, a, amount)
	})
}

// Mint mints the test token on a dev chain and returns the transaction hash once mined.
func (r *Registry) Mint(ctx context.Context, network, addr string, amount *big.Int) (string, error) {
	return r.faucet(ctx, network, addr, "the faucet could not mint", func(dc *devchain.Chain, a common.Address) (common.Hash, error) {
		return dc.Mint(ctx, a, amount)
	})
}

func (r *Registry) faucet(ctx context.Context, network, addr, failure string, send func(*devchain.Chain, common.Address) (common.Hash, error)) (string, error) {
	dc, err := r.Dev(ctx, network)
	if err != nil {
		return "", err
	}
	a, err := evm.ParseAddress(addr)
	if err != nil {
		return "", err
	}
	h, err := send(dc, a)
	if err != nil {
		return "", errs.E(errs.Unavailable, failure, err)
	}
	return h.Hex(), nil
}
