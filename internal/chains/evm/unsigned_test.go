package evm

import (
	"encoding/hex"
	"math/big"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
)

func TestParseUnsigned(t *testing.T) {
	const chainID = 84532
	cid := big.NewInt(chainID)
	to := common.HexToAddress("0xa238b6008Bc2FBd9E386A5d4784511980cE504Cd")
	dyn := &types.DynamicFeeTx{ChainID: cid, Nonce: 4, GasTipCap: big.NewInt(1), GasFeeCap: big.NewInt(2), Gas: 21000, To: &to, Value: big.NewInt(5)}
	legacy := &types.LegacyTx{Nonce: 6, GasPrice: big.NewInt(3), Gas: 21000, To: &to, Value: big.NewInt(7)}
	for _, tt := range []struct {
		name  string
		hex   string
		nonce uint64
		typ   byte
		ok    bool
	}{
		{"ok/1559", "0x" + hex.EncodeToString(unsigned1559(dyn)), 4, types.DynamicFeeTxType, true},
		{"ok/legacy-155", hex.EncodeToString(unsignedLegacy(legacy, cid)), 6, types.LegacyTxType, true},
		{"fail/other-chain", "0x" + hex.EncodeToString(unsigned1559(&types.DynamicFeeTx{ChainID: big.NewInt(1), Gas: 21000, To: &to,
			GasTipCap: big.NewInt(1), GasFeeCap: big.NewInt(1), Value: big.NewInt(0)})), 0, 0, false},
		{"fail/legacy-other-chain", hex.EncodeToString(unsignedLegacy(legacy, big.NewInt(1))), 0, 0, false},
		{"fail/empty", "0x", 0, 0, false},
		{"fail/odd", "0x021", 0, 0, false},
		{"fail/type", "0x7f00", 0, 0, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tx, err := ParseUnsigned(tt.hex, chainID)
			if !tt.ok {
				if err == nil {
					t.Fatalf("accepted %s", tt.hex)
				}
				wantInvalid(t, err)
				return
			}
			if err != nil || tx.Nonce() != tt.nonce || tx.Type() != tt.typ || *tx.To() != to {
				t.Fatalf("%v %v", tx, err)
			}
		})
	}
	if _, err := ParseUnsigned("0x02c0", 0); err == nil {
		t.Fatal("chain id 0 accepted")
	}
}
