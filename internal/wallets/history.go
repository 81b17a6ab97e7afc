package wallets

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/countersign/countersign/internal/auth"
	"github.com/countersign/countersign/internal/chains/evm"
	"github.com/countersign/countersign/internal/chains/registry"
	"github.com/countersign/countersign/internal/errs"
)

// Wallet history (GET /wallets/{walletId}/history, dfns-api.md §4.4.1 HistoryItem): the
// native and ERC-20 transfers into and out of every EVM wallet, read from the chain by an
// indexer (IndexHistory, run by a durable job) and served from the database.

// Kinds and directions of history events.
const (
	NativeTransfer = "NativeTransfer"
	Erc20Transfer  = "Erc20Transfer"
	In             = "In"
	Out            = "Out"
)

// historyKinds are every kind Dfns defines for history; filtering on one we never record
// is valid and finds nothing.
var historyKinds = []string{"NativeTransfer", "AsaTransfer", "Erc20Transfer", "Erc721Transfer", "Tep74Transfer",
	"Trc10Transfer", "Trc20Transfer", "Trc721Transfer", "Sep41Transfer", "SplTransfer", "Spl2022Transfer", "UtxoTransfer"}

// HistoryEvent is one value movement of one wallet: a wallet-to-wallet transfer is an Out
// event of the sender and an In event of the receiver.
type HistoryEvent struct {
	WalletID    string
	OrgID       string
	Network     string
	Kind        string // NativeTransfer | Erc20Transfer
	Direction   string // In | Out
	TxHash      string
	TxIndex     uint
	LogIndex    int // -1 for a transaction's own value, -1-f for value moved by its call frame f (history_internal.go)
	BlockNumber uint64
	BlockTime   time.Time
	From, To    string // EIP-55, like wallet addresses
	Value       string // smallest unit
	Fee         string // wei, on Out events whose transaction the wallet sent and paid; else ""
	Contract    string // Erc20 only
	Symbol      string
	Decimals    int
	Verified    bool
	CreatedAt   time.Time
}

// SortKey orders a wallet's events by chain position; it is unique per wallet and serves
// as the pagination token (newest first, so a page continues below its last key). Within
// a transaction: its own value, then its internal transfers by frame ('/' sorts between
// '.' and '0'), then its logs.
func (e HistoryEvent) SortKey() string {
	if f, ok := e.frame(); ok {
		return fmt.Sprintf("%020d.%06d.%07d/%06d.%s.%s", e.BlockNumber, e.TxIndex, 0, f, e.Direction, e.TxHash)
	}
	return fmt.Sprintf("%020d.%06d.%07d.%s.%s", e.BlockNumber, e.TxIndex, e.LogIndex+1, e.Direction, e.TxHash)
}

// frame returns the call frame of an internal transfer.
func (e HistoryEvent) frame() (int, bool) {
	if e.LogIndex < -1 {
		return -1 - e.LogIndex, true
	}
	return 0, false
}

// Index is the wire "index": the log index of a token transfer, the transaction's index in
// its block for a native one, and "<transaction index>:<call frame>" for an internal one
// (frames numbered in pre-order of the transaction's call tree, 0 being the transaction).
func (e HistoryEvent) Index() string {
	if e.LogIndex >= 0 {
		return strconv.Itoa(e.LogIndex)
	}
	if f, ok := e.frame(); ok {
		return strconv.FormatUint(uint64(e.TxIndex), 10) + ":" + strconv.Itoa(f)
	}
	return strconv.FormatUint(uint64(e.TxIndex), 10)
}

// HistoryAsset is the metadata of an amount (asset or fee).
type HistoryAsset struct {
	Symbol   string `json:"symbol,omitempty"`
	Decimals int    `json:"decimals"`
	Verified bool   `json:"verified"`
}

// HistoryItem is the Dfns wire shape of an event (the SDKs' GetWalletHistoryResponse item,
// kinds NativeTransfer and Erc20Transfer). It lives here rather than in httpapi because the
// wallet.blockchainevent.detected webhook carries the same object (dfns-api.md §5.2).
type HistoryItem struct {
	WalletID    string `json:"walletId"`
	Direction   string `json:"direction"`
	Network     string `json:"network"`
	BlockNumber uint64 `json:"blockNumber"`
	TxHash      string `json:"txHash"`
	Index       string `json:"index"`
	Timestamp   string `json:"timestamp"`
	Metadata    struct {
		Asset HistoryAsset  `json:"asset"`
		Fee   *HistoryAsset `json:"fee,omitempty"`
	} `json:"metadata"`
	Kind     string `json:"kind"`
	Contract string `json:"contract,omitempty"`
	From     string `json:"from"`
	To       string `json:"to"`
	Value    string `json:"value"`
	Fee      string `json:"fee,omitempty"`
	// Deprecated by Dfns in favour of metadata.asset, still typed as present by the SDKs.
	Symbol   string `json:"symbol,omitempty"`
	Decimals int    `json:"decimals"`
	Verified bool   `json:"verified"`
}

// Item returns the wire form of e.
func (e HistoryEvent) Item() HistoryItem {
	it := HistoryItem{WalletID: e.WalletID, Direction: e.Direction, Network: e.Network, BlockNumber: e.BlockNumber,
		TxHash: e.TxHash, Index: e.Index(), Timestamp: e.BlockTime.UTC().Format("2006-01-02T15:04:05.000Z"),
		Kind: e.Kind, Contract: e.Contract, From: e.From, To: e.To, Value: e.Value, Fee: e.Fee,
		Symbol: e.Symbol, Decimals: e.Decimals, Verified: e.Verified}
	it.Metadata.Asset = HistoryAsset{Symbol: e.Symbol, Decimals: e.Decimals, Verified: e.Verified}
	if e.Fee != "" {
		if n, ok := evm.Lookup(e.Network); ok {
			it.Metadata.Fee = &HistoryAsset{Symbol: n.Symbol, Decimals: n.Decimals, Verified: true}
		}
	}
	return it
}

// HistoryQuery selects a page of a wallet's history (the query of GET …/history).
type HistoryQuery struct {
	Limit     int
	After     string // a previous page's nextPageToken
	Direction string // "" | In | Out
	Kind      string // "" or a Dfns history kind
	Contract  string // "" or a token contract
}

// Watched is a wallet the indexer looks for on chain.
type Watched struct {
	ID      string
	OrgID   string
	Address string
}

// ChainCursor is the last block of a network the indexer has read.
type ChainCursor struct {
	Network string
	Block   uint64
	Hash    string
	At      time.Time // when it was set
}

// HistoryStore persists history events and the indexer's cursors.
type HistoryStore interface {
	ListHistory(ctx context.Context, orgID, walletID string, q HistoryQuery) ([]HistoryEvent, error)
	// HistoryNetworks lists the networks that have at least one wallet.
	HistoryNetworks(ctx context.Context) ([]string, error)
	WatchedWallets(ctx context.Context, network string) ([]Watched, error)
	// GetChainCursor returns NotFound before a network is first indexed.
	GetChainCursor(ctx context.Context, network string) (ChainCursor, error)
	// RecordHistory stores the events that are not stored yet and sets the cursor, in one
	// transaction; it returns how many events were new.
	RecordHistory(ctx context.Context, events []HistoryEvent, cursor ChainCursor) (int, error)
}

// HistoryChains reads blocks (implemented by chains/registry).
type HistoryChains interface {
	Running(ctx context.Context, network string) (*registry.Backend, bool, error)
}

// history is the indexer's state.
type history struct {
	store  HistoryStore
	chains HistoryChains
	log    *slog.Logger

	mu     sync.Mutex
	tokens map[string]tokenInfo  // network/contract -> metadata, read once
	trace  map[string]traceState // network -> whether its endpoint traces (history_internal.go)
}

type tokenInfo struct {
	symbol   string
	decimals int
}

// SetHistory attaches the history store and the chains the indexer reads.
func (s *Service) SetHistory(st HistoryStore, c HistoryChains, log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s.history = &history{store: st, chains: c, log: log, tokens: map[string]tokenInfo{}, trace: map[string]traceState{}}
}

// History returns a page of a wallet's history, newest first, and the next page's token.
func (s *Service) History(ctx context.Context, p auth.Principal, walletID string, q HistoryQuery) (Wallet, []HistoryEvent, string, error) {
	switch q.Direction {
	case "", In, Out:
	default:
		return Wallet{}, nil, "", errs.E(errs.Invalid, "direction must be In or Out", nil)
	}
	if q.Kind != "" && !slices.Contains(historyKinds, q.Kind) {
		return Wallet{}, nil, "", errs.Ef(errs.Invalid, "kind %q is not a history kind", q.Kind)
	}
	if q.Contract != "" {
		a, err := evm.ParseAddress(q.Contract)
		if err != nil {
			return Wallet{}, nil, "", errs.E(errs.Invalid, "contract must be an EVM address", err)
		}
		q.Contract = a.Hex()
	}
	w, err := s.Get(ctx, p, walletID)
	if err != nil {
		return Wallet{}, nil, "", err
	}
	if s.history == nil {
		return w, []HistoryEvent{}, "", nil
	}
	if q.Limit <= 0 {
		q.Limit = 50 // the Dfns default
	}
	q.Limit = min(q.Limit, 500)
	page := q
	page.Limit++
	es, err := s.history.store.ListHistory(ctx, p.OrgID, w.ID, page)
	if err != nil {
		return Wallet{}, nil, "", err
	}
	next := ""
	if len(es) > q.Limit {
		es, next = es[:q.Limit], es[q.Limit-1].SortKey()
	}
	return w, es, next, nil
}

// Blocks read per network per IndexHistory call: enough to catch up quickly, few enough
// that one call stays well inside a job's timeout.
const (
	devBatch = 500
	rpcBatch = 50
	// rpcTraceBatch is rpcBatch when the endpoint traces blocks (history_internal.go):
	// tracing a busy public chain's block takes up to seconds.
	rpcTraceBatch = 10
)

// networkTimeout bounds the work on one network per IndexNetworks call, so a slow RPC
// endpoint cannot hold the other networks (or the job's timeout) up.
const networkTimeout = 20 * time.Second

// IndexNetworks indexes every network that has a wallet; a network that fails is logged
// and retried on the next call, without holding the others back. It returns how many
// events were new.
func (s *Service) IndexNetworks(ctx context.Context) (int, error) {
	if s.history == nil {
		return 0, nil
	}
	networks, err := s.history.store.HistoryNetworks(ctx)
	if err != nil {
		return 0, err
	}
	total := 0
	for _, n := range networks {
		if _, ok := evm.Lookup(n); !ok {
			continue // not an EVM network: another indexer's business
		}
		nctx, cancel := context.WithTimeout(ctx, networkTimeout)
		added, err := s.IndexHistory(nctx, n)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return total, ctx.Err()
			}
			s.history.log.Warn("history: indexing failed; will retry", "network", n, "err", err)
			continue
		}
		total += added
	}
	return total, nil
}

// IndexHistory reads the blocks of network that are new since its cursor (at most one
// batch) and records the transfers of every wallet on it. It is idempotent and cheap when
// there is nothing new: one head read and one cursor read.
//
// Where it starts: a dev chain from its genesis (it is local and small, and wallets are
// funded right after they are made); a configured RPC network at its confirmed head when
// the indexer first sees the network: a real chain is never scanned from genesis, so
// transfers a wallet's address received before that are not in its history.
func (s *Service) IndexHistory(ctx context.Context, network string) (int, error) {
	h := s.history
	b, ok, err := h.chains.Running(ctx, network)
	if err != nil || !ok {
		return 0, err
	}
	head, err := b.Head(ctx)
	if err != nil {
		return 0, fmt.Errorf("head: %w", err)
	}
	if head < b.Confirmations() {
		return 0, nil
	}
	target := head - b.Confirmations()
	cur, err := h.store.GetChainCursor(ctx, network)
	switch {
	case errs.Is(err, errs.NotFound):
		start := target
		if b.Dev != nil {
			start = 0
		}
		if cur, err = s.cursorAt(ctx, b, network, start); err != nil {
			return 0, err
		}
		if start == target {
			_, err := h.store.RecordHistory(ctx, nil, cur)
			return 0, err
		}
	case err != nil:
		return 0, err
	case b.Dev != nil && cur.Block > head:
		return 0, s.resetDev(ctx, b, network, fmt.Sprintf("head %d is below the cursor %d", head, cur.Block))
	}
	if cur.Block >= target {
		return 0, nil
	}
	// The wallets are read after the head: a wallet made later can only be in blocks past it.
	ws, err := h.store.WatchedWallets(ctx, network)
	if err != nil {
		return 0, err
	}
	byAddr := map[common.Address][]Watched{}
	for _, w := range ws {
		a := common.HexToAddress(w.Address)
		byAddr[a] = append(byAddr[a], w)
	}
	addrs := make([]common.Address, 0, len(byAddr))
	for a := range byAddr {
		addrs = append(addrs, a)
	}
	batch := uint64(rpcBatch)
	switch {
	case b.Dev != nil:
		batch = devBatch
	case h.traceState(network) != traceOff:
		batch = rpcTraceBatch
	}
	to := min(target, cur.Block+batch)
	scan, err := b.Transfers(ctx, cur.Block+1, to, common.HexToHash(cur.Hash), addrs)
	if errors.Is(err, registry.ErrParentMismatch) {
		if b.Dev != nil {
			return 0, s.resetDev(ctx, b, network, fmt.Sprintf("block %d does not follow the cursor's block", cur.Block+1))
		}
		// Deeper than the confirmations we wait for: keep what was recorded and go on.
		h.log.Warn("history: reorg below the cursor; continuing from it", "network", network, "block", cur.Block)
		scan, err = b.Transfers(ctx, cur.Block+1, to, common.Hash{}, addrs)
	}
	if err != nil {
		return 0, err
	}
	now := s.now().UTC().Truncate(time.Millisecond)
	var events []HistoryEvent
	for _, t := range scan.Transfers {
		e := HistoryEvent{Network: network, TxHash: t.TxHash.Hex(), TxIndex: t.TxIndex, LogIndex: t.LogIndex,
			BlockNumber: t.BlockNumber, BlockTime: t.BlockTime, From: t.From.Hex(), To: t.To.Hex(),
			Value: t.Value.String(), CreatedAt: now}
		if t.Kind == "Native" {
			e.Kind, e.Symbol, e.Decimals, e.Verified = NativeTransfer, b.Network.Symbol, b.Network.Decimals, true
		} else {
			e.Kind, e.Contract = Erc20Transfer, t.Contract.Hex()
			e.Symbol, e.Decimals = h.token(ctx, b, t.Contract)
		}
		for _, w := range byAddr[t.From] {
			out := e
			out.WalletID, out.OrgID, out.Direction = w.ID, w.OrgID, Out
			if t.Payer == t.From && t.Fee != nil {
				out.Fee = t.Fee.String()
			}
			events = append(events, out)
		}
		for _, w := range byAddr[t.To] {
			in := e
			in.WalletID, in.OrgID, in.Direction = w.ID, w.OrgID, In
			events = append(events, in)
		}
	}
	internal, err := s.internalEvents(ctx, b, network, scan.Blocks, byAddr, now)
	if err != nil {
		return 0, err
	}
	if len(internal) > 0 {
		// In chain order, so incoming webhooks are emitted in the order the chain moved the value.
		events = append(events, internal...)
		slices.SortStableFunc(events, func(x, y HistoryEvent) int {
			return cmp.Or(cmp.Compare(x.BlockNumber, y.BlockNumber), cmp.Compare(x.TxIndex, y.TxIndex))
		})
	}
	return h.store.RecordHistory(ctx, events, ChainCursor{Network: network, Block: scan.Last, Hash: scan.LastHash.Hex(), At: now})
}

// resetDev restarts a dev chain's indexing from its genesis: the chain was rebuilt (see
// devchain's package comment). Rows of the old chain stay; the new chain's transactions
// have other hashes.
func (s *Service) resetDev(ctx context.Context, b *registry.Backend, network, why string) error {
	s.history.log.Warn("history: the dev chain was rebuilt; indexing it again from genesis", "network", network, "why", why)
	cur, err := s.cursorAt(ctx, b, network, 0)
	if err != nil {
		return err
	}
	_, err = s.history.store.RecordHistory(ctx, nil, cur)
	return err
}

func (s *Service) cursorAt(ctx context.Context, b *registry.Backend, network string, n uint64) (ChainCursor, error) {
	h, err := b.BlockHash(ctx, n)
	if err != nil {
		return ChainCursor{}, fmt.Errorf("block %d: %w", n, err)
	}
	return ChainCursor{Network: network, Block: n, Hash: h.Hex(), At: s.now().UTC()}, nil
}

// token returns a token's symbol and decimals, read once per network and contract.
func (h *history) token(ctx context.Context, b *registry.Backend, contract common.Address) (string, int) {
	k := b.Network.Name + "/" + contract.Hex()
	h.mu.Lock()
	t, ok := h.tokens[k]
	h.mu.Unlock()
	if ok {
		return t.symbol, t.decimals
	}
	t.symbol, t.decimals = tokenMetadata(ctx, b, contract)
	// tokenMetadata cannot tell a failed read from a token without metadata: only a
	// token that answered is remembered.
	if t.symbol != "" || t.decimals != 0 {
		h.mu.Lock()
		h.tokens[k] = t
		h.mu.Unlock()
	}
	return t.symbol, t.decimals
}
