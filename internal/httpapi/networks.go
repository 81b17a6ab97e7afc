package httpapi

import (
	"encoding/json"
	"net/http"

	"github.com/ethereum/go-ethereum/common/hexutil"

	"github.com/countersign/countersign/internal/errs"
	"github.com/countersign/countersign/internal/wallets"
)

// feeJSON is one priority's offer; wei amounts as decimal strings.
type feeJSON struct {
	MaxPriorityFeePerGas string `json:"maxPriorityFeePerGas"`
	MaxFeePerGas         string `json:"maxFeePerGas"`
}

// feesJSON is the Eip1559 answer of GET /networks/fees (dfns-api.md §4.7). The next block's
// base fee is given twice: as estimatedBaseFee, a JSON number (the 0.5.x TS SDK types and
// the Dfns docs), and as baseFeePerGas, a decimal string (the 0.8.x TS SDK types).
type feesJSON struct {
	Kind             string      `json:"kind"`
	Network          string      `json:"network"`
	BlockNumber      uint64      `json:"blockNumber"`
	Slow             feeJSON     `json:"slow"`
	Standard         feeJSON     `json:"standard"`
	Fast             feeJSON     `json:"fast"`
	EstimatedBaseFee json.Number `json:"estimatedBaseFee"`
	BaseFeePerGas    string      `json:"baseFeePerGas"`
}

func (s *Server) networkFees(r *http.Request, _ *call) (any, error) {
	q := r.URL.Query()
	if len(q["network"]) > 1 {
		return nil, errs.E(errs.Invalid, "network must be given once", nil)
	}
	f, err := s.Wallets.NetworkFees(r.Context(), q.Get("network"))
	if err != nil {
		return nil, err
	}
	offer := func(o wallets.Fee) feeJSON {
		return feeJSON{MaxPriorityFeePerGas: o.MaxPriorityFeePerGas.String(), MaxFeePerGas: o.MaxFeePerGas.String()}
	}
	return feesJSON{Kind: "Eip1559", Network: f.Network, BlockNumber: f.BlockNumber,
		Slow: offer(f.Slow), Standard: offer(f.Standard), Fast: offer(f.Fast),
		EstimatedBaseFee: json.Number(f.BaseFee.String()), BaseFeePerGas: f.BaseFee.String()}, nil
}

func (s *Server) readContract(r *http.Request, c *call) (any, error) {
	var req wallets.ReadContractRequest
	if err := decode(c.body, &req); err != nil {
		return nil, err
	}
	out, err := s.Wallets.ReadContract(r.Context(), req)
	if err != nil {
		return nil, err
	}
	return map[string]string{"kind": "Evm", "data": hexutil.Encode(out)}, nil
}
