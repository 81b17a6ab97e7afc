package devchain

import (
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
)

// TestTraceAPI checks that the in-process client serves debug_traceBlockByNumber with the
// native callTracer (the history indexer's source of internal transfers).
func TestTraceAPI(t *testing.T) {
	c := start(t, Options{ChainID: 1337})
	ctx := ctxT(t)
	_, to := newKey(t)
	h, err := c.Mint(ctx, to, common.Big1)
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.Client().TransactionReceipt(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	var res []struct {
		TxHash common.Hash `json:"txHash"`
		Result struct {
			Type  string         `json:"type"`
			From  common.Address `json:"from"`
			To    common.Address `json:"to"`
			Calls []any          `json:"calls"`
			Error string         `json:"error"`
			Input hexutil.Bytes  `json:"input"`
			Value *hexutil.Big   `json:"value"`
		} `json:"result"`
	}
	err = c.Client().Client().CallContext(ctx, &res, "debug_traceBlockByNumber", hexutil.EncodeBig(r.BlockNumber),
		map[string]any{"tracer": "callTracer"})
	if err != nil {
		t.Fatal(err)
	}
	token, _, _ := c.Token()
	if len(res) != 1 || res[0].TxHash != h || res[0].Result.Type != "CALL" || res[0].Result.From != c.faucet ||
		res[0].Result.To != token || res[0].Result.Error != "" {
		t.Fatalf("trace %+v", res)
	}
}
