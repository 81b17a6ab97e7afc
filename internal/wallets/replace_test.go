package wallets

import (
	"math/big"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/countersign/countersign/internal/errs"
)

func TestBump(t *testing.T) {
	for _, tt := range []struct{ in, want int64 }{
		{0, 1}, {1, 2}, {9, 10}, {10, 11}, {11, 13}, {100, 110}, {101, 112}, {3e9, 3.3e9},
	} {
		if got := bump(big.NewInt(tt.in)); got.Int64() != tt.want {
			t.Errorf("bump(%d) = %v, want %d", tt.in, got, tt.want)
		}
	}
}

// geth's pool takes a replacement when its tip and fee cap are both above the old ones
// and at least 110 % of them (integer division, as in legacypool).
func acceptedAsReplacement(old, repl *types.Transaction) bool {
	pct := func(x *big.Int) *big.Int {
		return new(big.Int).Div(new(big.Int).Mul(x, big.NewInt(110)), big.NewInt(100))
	}
	return repl.GasFeeCap().Cmp(old.GasFeeCap()) > 0 && repl.GasTipCap().Cmp(old.GasTipCap()) > 0 &&
		repl.GasFeeCap().Cmp(pct(old.GasFeeCap())) >= 0 && repl.GasTipCap().Cmp(pct(old.GasTipCap())) >= 0
}

func TestReplacementTx(t *testing.T) {
	chainID := big.NewInt(84532)
	self, to := common.HexToAddress("0x1111111111111111111111111111111111111111"), common.HexToAddress("0x2222222222222222222222222222222222222222")
	base := big.NewInt(1e9)
	dyn := func(tip, cap int64) *types.Transaction {
		return types.NewTx(&types.DynamicFeeTx{ChainID: chainID, Nonce: 7, GasTipCap: big.NewInt(tip), GasFeeCap: big.NewInt(cap),
			Gas: 50000, To: &to, Value: big.NewInt(5), Data: []byte{1, 2}})
	}
	t.Run("speed-up/cheap-original-gets-the-fast-fee", func(t *testing.T) {
		orig := dyn(1, 1)
		r, err := replacementTx(orig, orig, base, chainID, self, false)
		if err != nil {
			t.Fatal(err)
		}
		if r.Nonce() != 7 || *r.To() != to || r.Value().Int64() != 5 || r.Gas() != 50000 || string(r.Data()) != "\x01\x02" || r.Type() != types.DynamicFeeTxType {
			t.Fatalf("payload changed: %+v", r)
		}
		if r.GasTipCap().Cmp(fastTip) != 0 || r.GasFeeCap().Cmp(new(big.Int).Add(new(big.Int).Mul(base, big.NewInt(2)), fastTip)) != 0 {
			t.Fatalf("fees %v %v", r.GasTipCap(), r.GasFeeCap())
		}
	})
	t.Run("speed-up/twice-bumps-again", func(t *testing.T) {
		orig := dyn(1, 1)
		r1, _ := replacementTx(orig, orig, base, chainID, self, false)
		r2, err := replacementTx(orig, r1, base, chainID, self, false) // same base fee: only the bump raises it
		if err != nil {
			t.Fatal(err)
		}
		if !acceptedAsReplacement(r1, r2) || !acceptedAsReplacement(orig, r1) {
			t.Fatalf("not enough: %v/%v then %v/%v", r1.GasTipCap(), r1.GasFeeCap(), r2.GasTipCap(), r2.GasFeeCap())
		}
	})
	t.Run("speed-up/expensive-original-bumped-10-percent", func(t *testing.T) {
		orig := dyn(50e9, 100e9)
		r, _ := replacementTx(orig, orig, base, chainID, self, false)
		if r.GasTipCap().Int64() != 55e9 || r.GasFeeCap().Int64() != 110e9 || !acceptedAsReplacement(orig, r) {
			t.Fatalf("fees %v %v", r.GasTipCap(), r.GasFeeCap())
		}
	})
	t.Run("cancel", func(t *testing.T) {
		orig := dyn(2e9, 10e9)
		r, err := replacementTx(orig, orig, base, chainID, self, true)
		if err != nil {
			t.Fatal(err)
		}
		if r.Nonce() != 7 || *r.To() != self || r.Value().Sign() != 0 || r.Gas() != 21000 || len(r.Data()) != 0 || !acceptedAsReplacement(orig, r) {
			t.Fatalf("cancel %+v", r)
		}
	})
	t.Run("legacy", func(t *testing.T) {
		orig := types.NewTx(&types.LegacyTx{Nonce: 3, GasPrice: big.NewInt(20e9), Gas: 21000, To: &to, Value: big.NewInt(9)})
		r, err := replacementTx(orig, orig, base, chainID, self, false)
		if err != nil {
			t.Fatal(err)
		}
		if r.Type() != types.LegacyTxType || r.GasPrice().Int64() != 22e9 || r.Nonce() != 3 || r.Value().Int64() != 9 {
			t.Fatalf("legacy speed-up %v %v", r.Type(), r.GasPrice())
		}
		c, _ := replacementTx(orig, r, base, chainID, self, true)
		if c.Type() != types.LegacyTxType || c.GasPrice().Int64() != 24.2e9 || *c.To() != self {
			t.Fatalf("legacy cancel %v %v", c.Type(), c.GasPrice())
		}
	})
	t.Run("fail/blob", func(t *testing.T) {
		orig := types.NewTx(&types.BlobTx{Nonce: 1})
		if _, err := replacementTx(orig, orig, base, chainID, self, false); !errs.Is(err, errs.Invalid) {
			t.Fatalf("%v, want Invalid", err)
		}
	})
}
