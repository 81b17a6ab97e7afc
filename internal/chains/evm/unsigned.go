package evm

import (
	"math/big"

	"github.com/ethereum/go-ethereum/core/types"

	"github.com/countersign/countersign/internal/errs"
)

// ParseUnsigned decodes an unsigned transaction given as hex (the body of a kind
// Transaction broadcast) for the network with chainID, with the same rules as
// TransactionPayload: legacy RLP or an EIP-2718 envelope of type 0x01, 0x02 or 0x04;
// signed transactions, foreign chain ids and integers over 256 bits are refused.
func ParseUnsigned(txHex string, chainID uint64) (*types.Transaction, error) {
	if chainID == 0 {
		return nil, errs.E(errs.Internal, "evm: ParseUnsigned needs the network's chain id", nil)
	}
	b, ok := decodeHex(txHex)
	if !ok {
		return nil, errs.E(errs.Invalid, "transaction must be hex", nil)
	}
	if len(b) == 0 {
		return nil, errs.E(errs.Invalid, "transaction is empty", nil)
	}
	return decodeUnsigned(b, new(big.Int).SetUint64(chainID))
}
