package wallets

import (
	"context"
	"encoding/hex"
	"errors"
	"math/big"
	"strings"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/rpc"

	"github.com/countersign/countersign/internal/chains/bitcoin"
	"github.com/countersign/countersign/internal/chains/evm"
	"github.com/countersign/countersign/internal/chains/registry"
	"github.com/countersign/countersign/internal/chains/solana"
	"github.com/countersign/countersign/internal/errs"
)

// The Networks API (dfns-api.md §4.7): fee estimates and read-only contract calls. It lives
// here because the fee offers are the ones transfers pay (Transfer calls feesOf too), so
// GET /networks/fees shows exactly what a transfer of each priority is signed with.

// Transfer priorities (dfns-api.md §4.4.2 "priority"; "" means Standard).
const (
	Slow     = "Slow"
	Standard = "Standard"
	Fast     = "Fast"
)

// tips are the priority fees per priority, in tenths of a gwei (so 1.5 gwei stays exact).
// They are fixed rather than percentiles of recent rewards (eth_feeHistory's reward field,
// what Dfns documents): a dev chain has no fee market, its rewards are our own tips, and a
// fixed tip keeps "the fee shown is the fee paid" true between two calls on one block.
var tips = map[string]int64{Slow: 10, Standard: 15, Fast: 30}

// isPriority reports whether p is a transfer priority ("" included: Standard).
func isPriority(p string) bool {
	_, ok := tips[p]
	return ok || p == ""
}

// Fee is an EIP-1559 fee offer per gas, in wei.
type Fee struct {
	MaxPriorityFeePerGas *big.Int
	MaxFeePerGas         *big.Int
}

// Fees are a network's fee offers at one block.
type Fees struct {
	Network     string
	BlockNumber uint64   // the head they were computed at
	BaseFee     *big.Int // the base fee of the next block, as the node computes it
	Slow        Fee
	Standard    Fee
	Fast        Fee
}

// For returns the offer of a priority ("" is Standard).
func (f Fees) For(priority string) Fee {
	switch priority {
	case Slow:
		return f.Slow
	case Fast:
		return f.Fast
	}
	return f.Standard
}

// feesAt builds the offers on a base fee: the priority's tip, and a cap of twice the base
// fee plus the tip. The base fee grows by at most 12.5% a block (EIP-1559), so the cap still
// covers it after five full blocks in a row; the sender pays only base + tip.
func feesAt(network string, block uint64, base *big.Int) Fees {
	if base == nil {
		base = new(big.Int)
	}
	offer := func(p string) Fee {
		tip := tipOf(p)
		return Fee{MaxPriorityFeePerGas: tip, MaxFeePerGas: capOver(base, tip)}
	}
	return Fees{Network: network, BlockNumber: block, BaseFee: new(big.Int).Set(base),
		Slow: offer(Slow), Standard: offer(Standard), Fast: offer(Fast)}
}

// tipOf is the tip of a priority (Slow, Standard or Fast) in wei.
func tipOf(priority string) *big.Int {
	return new(big.Int).Mul(big.NewInt(tips[priority]), big.NewInt(1e8)) // tips are in tenths of a gwei
}

// capOver is the fee cap countersign signs with over a base fee when none is given: twice
// the base fee plus the tip (see feesAt). Transfers, default broadcast fees, replacements
// and nonce fillers all use it.
func capOver(base, tip *big.Int) *big.Int { return new(big.Int).Add(new(big.Int).Lsh(base, 1), tip) }

// feesOf reads a network's head and next base fee (eth_feeHistory over the last block:
// the node applies its own chain's base fee rules) and returns the offers. It is the one
// fee computation of countersign: Transfer signs with it, GET /networks/fees shows it.
func feesOf(ctx context.Context, b *registry.Backend) (Fees, error) {
	h, err := b.Client.FeeHistory(ctx, 1, nil, []float64{}) // [] not null: geth requires the argument
	if err != nil {
		return Fees{}, errs.E(errs.Unavailable, "could not read fees from the network", err)
	}
	if h.OldestBlock == nil || len(h.GasUsedRatio) == 0 || !h.OldestBlock.IsUint64() {
		return Fees{}, errs.E(errs.Unavailable, "could not read fees from the network", errors.New("eth_feeHistory: empty answer"))
	}
	var next *big.Int
	if n := len(h.BaseFee); n > 0 {
		next = h.BaseFee[n-1] // one entry per block plus the next block's
	}
	return feesAt(b.Network.Name, h.OldestBlock.Uint64()+uint64(len(h.GasUsedRatio))-1, next), nil
}

// evmNetwork checks that network names an EVM network we serve, for an endpoint that works
// on EVM networks only.
func evmNetwork(network, what string) error {
	if network == "" {
		return errs.E(errs.Invalid, "network is required", nil)
	}
	if _, ok := evm.Lookup(network); ok {
		return nil
	}
	_, btc := bitcoin.Lookup(network)
	_, sol := solana.Lookup(network)
	if btc || sol {
		// 400, not 503: nothing transient is missing. Dfns documents these endpoints as
		// EVM-only ("Get Fee only works on EVM chains currently", api-docs/networks/
		// estimate-fees.md; read-contract.md likewise), and countersign has no Bitcoin or
		// Solana node to read from (transfers refuse these networks the same way).
		return errs.Ef(errs.Invalid, "%s works on EVM networks only: countersign has no %s node to read from", what, network)
	}
	return errs.Ef(errs.Invalid, "network %q is not supported", network)
}

// NetworkFees returns the fee offers of an EVM network (GET /networks/fees).
func (s *Service) NetworkFees(ctx context.Context, network string) (Fees, error) {
	if err := evmNetwork(network, "fee estimation"); err != nil {
		return Fees{}, err
	}
	if s.chains == nil {
		return Fees{}, errs.E(errs.Unavailable, "no chain backends are configured", nil)
	}
	b, err := s.chains.Get(ctx, network)
	if err != nil {
		return Fees{}, err
	}
	return feesOf(ctx, b)
}

// ReadContractRequest is the body of POST /networks/read-contract (dfns-api.md §4.7).
type ReadContractRequest struct {
	Kind     string `json:"kind"`
	Network  string `json:"network"`
	Contract string `json:"contract"`
	Data     string `json:"data"`
}

// parse checks the request and returns the contract and call data.
func (r ReadContractRequest) parse() (common.Address, []byte, error) {
	switch r.Kind {
	case "Evm":
	case "":
		return common.Address{}, nil, errs.E(errs.Invalid, "kind is required", nil)
	default:
		return common.Address{}, nil, errs.Ef(errs.Invalid, "kind %q is not supported (only Evm)", r.Kind)
	}
	if err := evmNetwork(r.Network, "read-contract"); err != nil {
		return common.Address{}, nil, err
	}
	if r.Contract == "" {
		return common.Address{}, nil, errs.E(errs.Invalid, "contract is required", nil)
	}
	to, err := evm.ParseAddress(r.Contract)
	if err != nil {
		msg, _ := errs.Public(err)
		return common.Address{}, nil, errs.E(errs.Invalid, "contract: "+msg, nil)
	}
	if r.Data == "" {
		return common.Address{}, nil, errs.E(errs.Invalid, "data is required", nil)
	}
	digits, ok := strings.CutPrefix(r.Data, "0x")
	data, err := hex.DecodeString(digits)
	if !ok || err != nil {
		return common.Address{}, nil, errs.E(errs.Invalid, "data must be 0x followed by an even number of hex digits", nil)
	}
	return to, data, nil
}

// ReadContract runs an eth_call of data on contract at the latest block and returns what the
// call returned. No state changes: it is a read, so it takes no user action (the TS SDK
// sends it with simpleFetch).
func (s *Service) ReadContract(ctx context.Context, r ReadContractRequest) ([]byte, error) {
	to, data, err := r.parse()
	if err != nil {
		return nil, err
	}
	if s.chains == nil {
		return nil, errs.E(errs.Unavailable, "no chain backends are configured", nil)
	}
	b, err := s.chains.Get(ctx, r.Network)
	if err != nil {
		return nil, err
	}
	out, err := b.Client.CallContract(ctx, ethereum.CallMsg{To: &to, Data: data}, nil)
	if err != nil {
		if e := reverted(err); e != nil {
			return nil, e
		}
		return nil, errs.E(errs.Unavailable, "could not call the contract on the network", err)
	}
	return out, nil
}

// reverted turns a node's "execution reverted" answer into a 400 that carries the revert
// data (and the Error(string) reason when there is one); it returns nil for other errors.
func reverted(err error) error {
	var re rpc.Error
	if !errors.As(err, &re) || !strings.Contains(re.Error(), "execution reverted") {
		return nil
	}
	details := map[string]any{}
	var de rpc.DataError
	if errors.As(err, &de) {
		if s, ok := de.ErrorData().(string); ok && strings.HasPrefix(s, "0x") {
			details["data"] = s
			if raw, derr := hex.DecodeString(s[2:]); derr == nil {
				if reason, uerr := abi.UnpackRevert(raw); uerr == nil {
					details["reason"] = reason
				}
			}
		}
	}
	return errs.WithDetails(errs.E(errs.Invalid, "the contract call reverted", err), details)
}
