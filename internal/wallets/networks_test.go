package wallets

import (
	"errors"
	"math/big"
	"testing"

	"github.com/ethereum/go-ethereum/rpc"

	"github.com/countersign/countersign/internal/errs"
)

func TestFeesAt(t *testing.T) {
	gwei := big.NewInt(1e9)
	for _, base := range []*big.Int{nil, big.NewInt(0), big.NewInt(7), new(big.Int).Mul(gwei, big.NewInt(30))} {
		f := feesAt("EthereumSepolia", 12, base)
		b := f.BaseFee
		for _, tt := range []struct {
			priority string
			tip      int64 // in 1e8 wei
		}{{"", 15}, {Standard, 15}, {Slow, 10}, {Fast, 30}} {
			o := f.For(tt.priority)
			tip := new(big.Int).Mul(big.NewInt(tt.tip), big.NewInt(1e8))
			if o.MaxPriorityFeePerGas.Cmp(tip) != 0 {
				t.Errorf("base %v %q: tip %v, want %v", base, tt.priority, o.MaxPriorityFeePerGas, tip)
			}
			if want := new(big.Int).Add(new(big.Int).Mul(b, big.NewInt(2)), tip); o.MaxFeePerGas.Cmp(want) != 0 {
				t.Errorf("base %v %q: max fee %v, want %v", base, tt.priority, o.MaxFeePerGas, want)
			}
		}
		if f.Slow.MaxFeePerGas.Cmp(f.Standard.MaxFeePerGas) >= 0 || f.Standard.MaxFeePerGas.Cmp(f.Fast.MaxFeePerGas) >= 0 {
			t.Errorf("base %v: offers not increasing: %+v", base, f)
		}
	}
	if !isPriority("") || !isPriority(Fast) || isPriority("fast") || isPriority("Ludicrous") {
		t.Error("isPriority")
	}
}

func TestReadContractRequest(t *testing.T) {
	const tok = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
	for _, tt := range []struct {
		name string
		r    ReadContractRequest
		ok   bool
	}{
		{"ok", ReadContractRequest{"Evm", "EthereumSepolia", tok, "0x313ce567"}, true},
		{"ok/lower-case", ReadContractRequest{"Evm", "Base", "0x5fbdb2315678afecb367f032d93f642f64180aa3", "0x"}, true},
		{"fail/no-kind", ReadContractRequest{"", "EthereumSepolia", tok, "0x313ce567"}, false},
		{"fail/kind", ReadContractRequest{"evm", "EthereumSepolia", tok, "0x313ce567"}, false},
		{"fail/no-network", ReadContractRequest{"Evm", "", tok, "0x313ce567"}, false},
		{"fail/bitcoin", ReadContractRequest{"Evm", "Bitcoin", tok, "0x313ce567"}, false},
		{"fail/solana", ReadContractRequest{"Evm", "SolanaDevnet", tok, "0x313ce567"}, false},
		{"fail/unknown-network", ReadContractRequest{"Evm", "Narnia", tok, "0x313ce567"}, false},
		{"fail/no-contract", ReadContractRequest{"Evm", "EthereumSepolia", "", "0x313ce567"}, false},
		{"fail/checksum", ReadContractRequest{"Evm", "EthereumSepolia", "0x5FbDB2315678afecb367f032d93F642f64180aA3", "0x313ce567"}, false},
		{"fail/no-data", ReadContractRequest{"Evm", "EthereumSepolia", tok, ""}, false},
		{"fail/no-prefix", ReadContractRequest{"Evm", "EthereumSepolia", tok, "313ce567"}, false},
		{"fail/odd", ReadContractRequest{"Evm", "EthereumSepolia", tok, "0x313ce56"}, false},
		{"fail/not-hex", ReadContractRequest{"Evm", "EthereumSepolia", tok, "0x313ce5zz"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := tt.r.parse()
			if tt.ok != (err == nil) || (err != nil && !errs.Is(err, errs.Invalid)) {
				t.Fatalf("parse: %v", err)
			}
		})
	}
}

// rpcErr is a JSON-RPC error as the geth client returns it.
type rpcErr struct {
	msg  string
	code int
	data any
}

func (e rpcErr) Error() string  { return e.msg }
func (e rpcErr) ErrorCode() int { return e.code }
func (e rpcErr) ErrorData() any { return e.data }

var _ rpc.DataError = rpcErr{}

func TestReverted(t *testing.T) {
	// Error(string) "no" (selector 08c379a0, offset 0x20, length 2, "no").
	reason := "0x08c379a0" + "0000000000000000000000000000000000000000000000000000000000000020" +
		"0000000000000000000000000000000000000000000000000000000000000002" +
		"6e6f000000000000000000000000000000000000000000000000000000000000"
	err := reverted(rpcErr{"execution reverted: no", 3, reason})
	if !errs.Is(err, errs.Invalid) {
		t.Fatalf("revert with reason: %v", err)
	}
	if _, d := errs.Public(err); d["reason"] != "no" || d["data"] != reason {
		t.Fatalf("details %v", d)
	}
	if err := reverted(rpcErr{"execution reverted", -32000, nil}); !errs.Is(err, errs.Invalid) {
		t.Fatalf("bare revert: %v", err)
	}
	for _, e := range []error{rpcErr{"header not found", -32000, nil}, errors.New("execution reverted"), errors.New("dial tcp: refused")} {
		if got := reverted(e); got != nil {
			t.Fatalf("%v: %v, want nil (not a revert answered by the node)", e, got)
		}
	}
}
