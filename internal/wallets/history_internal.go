package wallets

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/rpc"

	"github.com/countersign/countersign/internal/chains/registry"
)

// Internal transfers: native coin moved by a call frame inside a transaction (a contract
// forwarding what it received, a multisig paying out, a router refunding). Neither the
// transaction's own value nor a log shows them, so the indexer re-executes the blocks that
// may hold some with geth's callTracer (debug_traceBlockByHash) and records every nested
// frame that moved value from or to a wallet as a NativeTransfer.
//
// Which blocks: a transaction can only run code, hence move value internally, if it
// creates a contract, sets EIP-7702 delegations, or is sent to an address that has code
// (a contract, or an EOA delegated by EIP-7702). A block of plain transfers between
// accounts without code is never traced. The recipients' code is read in one JSON-RPC
// batch per range of blocks (codeAtEnd).
//
// Which frames: CALL, CREATE, CREATE2 and SELFDESTRUCT with a value above zero, below the
// root frame (the transaction's own value is recorded from the transaction, as before).
// DELEGATECALL and STATICCALL move nothing, and CALLCODE sends the value to the caller
// itself. A frame that failed (error set) was reverted with every frame below it, so none
// of them counts, even those that succeeded themselves.
//
// Row identity: frame f (numbered in pre-order over the whole trace, the root being 0) is
// stored with LogIndex -1-f, so the root would be the -1 of the transaction's own value,
// and two moves of one transaction to one wallet are two rows. Tracing is deterministic:
// a rerun finds the same frames under the same numbers, and the rows are not duplicated.
//
// Configured RPC endpoints: many public ones do not serve the debug namespace. The first
// trace tells; an endpoint that refuses it (method not found, not allowed) is logged once
// and the network is indexed without internal transfers, as before. A failed trace for
// another reason fails the batch, which is retried on the next run. While an endpoint may
// trace, the indexer reads fewer blocks per run from it (rpcTraceBatch).

// traceState is what the indexer knows of a network's tracing support.
type traceState int

const (
	traceUnknown traceState = iota
	traceOn
	traceOff
)

// callFrame is one frame of the callTracer's result (go-ethereum eth/tracers/native/call.go).
type callFrame struct {
	Type  string          `json:"type"`
	From  common.Address  `json:"from"`
	To    *common.Address `json:"to"`
	Value *hexutil.Big    `json:"value"`
	Error string          `json:"error"`
	Calls []callFrame     `json:"calls"`
}

// internalMove is a value move of a nested frame that was not reverted.
type internalMove struct {
	frame    int // pre-order index in the trace; the root is 0
	from, to common.Address
	value    *big.Int
}

// moves returns the value moves of the frames below root that were not reverted, in
// execution order.
func (root *callFrame) moves() []internalMove {
	var out []internalMove
	n := 0
	var walk func(f *callFrame, reverted bool)
	walk = func(f *callFrame, reverted bool) {
		i := n
		n++ // every frame is numbered, reverted or not, so the numbers depend on the trace alone
		reverted = reverted || f.Error != ""
		if i > 0 && !reverted && f.To != nil && *f.To != f.From && f.Value != nil && f.Value.ToInt().Sign() > 0 {
			switch f.Type {
			case "CALL", "CREATE", "CREATE2", "SELFDESTRUCT":
				out = append(out, internalMove{frame: i, from: f.From, to: *f.To, value: new(big.Int).Set(f.Value.ToInt())})
			}
		}
		for k := range f.Calls {
			walk(&f.Calls[k], reverted)
		}
	}
	walk(root, false)
	return out
}

// traceResult is one transaction's entry in debug_traceBlockByHash's answer.
type traceResult struct {
	TxHash common.Hash `json:"txHash"`
	Result *callFrame  `json:"result"`
	Error  string      `json:"error"`
}

// internalEvents returns the history events of the internal transfers in blocks that
// touch a wallet of byAddr.
func (s *Service) internalEvents(ctx context.Context, b *registry.Backend, network string, blocks []*types.Block,
	byAddr map[common.Address][]Watched, now time.Time) ([]HistoryEvent, error) {
	h := s.history
	if len(byAddr) == 0 || h.traceState(network) == traceOff {
		return nil, nil
	}
	hasCode, err := codeAtEnd(ctx, b, blocks)
	if err != nil {
		return nil, err
	}
	var events []HistoryEvent
	seenCode := map[common.Address]bool{} // block by block: code seldom goes away, and if it did a block is traced for nothing
	for _, blk := range blocks {
		need := hasCode == nil // nil: decide block by block
		if need {
			if need, err = needsTrace(ctx, b, blk, seenCode); err != nil {
				return nil, err
			}
		} else {
			for _, tx := range blk.Transactions() {
				need = need || tx.To() == nil || hasCode[*tx.To()]
			}
		}
		if !need {
			continue
		}
		var res []traceResult
		err = b.Client.Client().CallContext(ctx, &res, "debug_traceBlockByHash", blk.Hash(), map[string]any{"tracer": "callTracer"})
		if err != nil {
			if traceUnsupported(err) {
				h.setTraceState(network, traceOff, err)
				return nil, nil
			}
			return nil, fmt.Errorf("trace block %d: %w", blk.NumberU64(), err)
		}
		h.setTraceState(network, traceOn, nil)
		txs := blk.Transactions()
		if len(res) != len(txs) {
			return nil, fmt.Errorf("trace block %d: %d results for %d transactions", blk.NumberU64(), len(res), len(txs))
		}
		at := time.Unix(int64(blk.Time()), 0).UTC()
		for i, r := range res {
			hash := txs[i].Hash()
			if r.TxHash != (common.Hash{}) && r.TxHash != hash {
				return nil, fmt.Errorf("trace block %d: result %d is for %s, not %s", blk.NumberU64(), i, r.TxHash, hash)
			}
			if r.Error != "" || r.Result == nil {
				// A tracer timeout on one transaction must not hold the network's history up.
				h.log.Warn("history: a transaction could not be traced; its internal transfers are not recorded",
					"network", network, "tx", hash, "err", r.Error)
				continue
			}
			for _, m := range r.Result.moves() {
				e := HistoryEvent{Network: network, Kind: NativeTransfer, TxHash: hash.Hex(), TxIndex: uint(i),
					LogIndex: -1 - m.frame, BlockNumber: blk.NumberU64(), BlockTime: at, From: m.from.Hex(), To: m.to.Hex(),
					Value: m.value.String(), Symbol: b.Network.Symbol, Decimals: b.Network.Decimals, Verified: true, CreatedAt: now}
				for _, w := range byAddr[m.from] {
					out := e
					out.WalletID, out.OrgID, out.Direction = w.ID, w.OrgID, Out
					events = append(events, out)
				}
				for _, w := range byAddr[m.to] {
					in := e
					in.WalletID, in.OrgID, in.Direction = w.ID, w.OrgID, In
					events = append(events, in)
				}
			}
		}
	}
	return events, nil
}

// codeChunk bounds the eth_getCode calls of one JSON-RPC batch.
const codeChunk = 100

// codeAtEnd returns which recipients of the transactions in blocks have code at the end of
// the last block, read in batches. An account that has code during a block has it at the
// end of the range too, unless the range unsets an EIP-7702 delegation (post-Cancun,
// SELFDESTRUCT removes code only in the transaction that created it, and no other
// transaction can call it meanwhile); so with a 7702 transaction in the range, or if the
// endpoint refuses the batch, it returns nil, and each block is decided on its own
// (needsTrace). Code that appears within
// the range makes blocks before it traced for nothing, which is harmless.
func codeAtEnd(ctx context.Context, b *registry.Backend, blocks []*types.Block) (map[common.Address]bool, error) {
	if len(blocks) == 0 {
		return map[common.Address]bool{}, nil
	}
	var ask []common.Address
	seen := map[common.Address]bool{}
	for _, blk := range blocks {
		for _, tx := range blk.Transactions() {
			if tx.Type() == types.SetCodeTxType {
				return nil, nil
			}
			if to := tx.To(); to != nil && !seen[*to] {
				seen[*to] = true
				ask = append(ask, *to)
			}
		}
	}
	last := hexutil.EncodeBig(blocks[len(blocks)-1].Number())
	hasCode := map[common.Address]bool{}
	for start := 0; start < len(ask); start += codeChunk {
		chunk := ask[start:min(start+codeChunk, len(ask))]
		codes := make([]hexutil.Bytes, len(chunk))
		batch := make([]rpc.BatchElem, len(chunk))
		for i, a := range chunk {
			batch[i] = rpc.BatchElem{Method: "eth_getCode", Args: []any{a, last}, Result: &codes[i]}
		}
		err := b.Client.Client().BatchCallContext(ctx, batch)
		for i := range chunk {
			err = cmp.Or(err, batch[i].Error)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			// Some endpoints refuse or cap batches: ask one by one, block by block.
			return nil, nil
		}
		for i, a := range chunk {
			hasCode[a] = len(codes[i]) > 0
		}
	}
	return hasCode, nil
}

// needsTrace reports whether a transaction of blk may run code: a contract creation, an
// EIP-7702 transaction, or one sent to an address that has code at the end of the block
// (code added during the block counts; post-Cancun, code leaves an address only in the
// transaction that created it).
func needsTrace(ctx context.Context, b *registry.Backend, blk *types.Block, hasCode map[common.Address]bool) (bool, error) {
	txs := blk.Transactions()
	for _, tx := range txs {
		if tx.To() == nil || tx.Type() == types.SetCodeTxType || hasCode[*tx.To()] {
			return true, nil
		}
	}
	asked := map[common.Address]bool{}
	for _, tx := range txs {
		to := *tx.To()
		if asked[to] {
			continue
		}
		asked[to] = true
		code, err := b.Client.CodeAt(ctx, to, blk.Number())
		if err != nil {
			return false, fmt.Errorf("block %d: code of %s: %w", blk.NumberU64(), to, err)
		}
		if len(code) > 0 {
			hasCode[to] = true
			return true, nil
		}
	}
	return false, nil
}

// traceUnsupported tells an endpoint that does not serve tracing (EIP-1474 "method not
// found" or "method not supported", an HTTP refusal, or a provider's own words for it)
// from a failure worth retrying.
func traceUnsupported(err error) bool {
	var re rpc.Error
	if errors.As(err, &re) && (re.ErrorCode() == -32601 || re.ErrorCode() == -32004) {
		return true
	}
	var he rpc.HTTPError
	if errors.As(err, &he) {
		switch he.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusNotImplemented:
			return true
		}
	}
	msg := strings.ToLower(err.Error())
	for _, s := range []string{"method not found", "does not exist", "not available", "not supported", "unsupported method",
		"not allowed", "not whitelisted", "not enabled"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

func (h *history) traceState(network string) traceState {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.trace[network]
}

// setTraceState records what a trace showed, and logs the first refusal of a network.
func (h *history) setTraceState(network string, st traceState, err error) {
	h.mu.Lock()
	was := h.trace[network]
	h.trace[network] = st
	h.mu.Unlock()
	if was == st {
		return
	}
	switch st {
	case traceOff:
		h.log.Warn("history: the network's RPC endpoint does not serve debug tracing; internal transfers (value moved inside contract calls) will not be in wallet histories",
			"network", network, "err", err)
	case traceOn:
		h.log.Info("history: tracing blocks for internal transfers", "network", network)
	}
}
