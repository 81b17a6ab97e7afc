package wallets

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/rpc"

	"github.com/countersign/countersign/internal/auth"
	"github.com/countersign/countersign/internal/chains/evm"
	"github.com/countersign/countersign/internal/chains/registry"
	"github.com/countersign/countersign/internal/errs"
	"github.com/countersign/countersign/internal/ids"
	"github.com/countersign/countersign/internal/keys"
)

// Pending is the status of a broadcast request whose transaction is signed and stored but
// not yet sent (Dfns reports new TransactionRequests as Pending, dfns-api.md §4.4.1).
const Pending = "Pending"

// Superseded is the final status of a nonce filler whose nonce another transaction took.
const Superseded = "Superseded"

// Transaction is one broadcast request (POST /wallets/{walletId}/transactions, dfns-api.md
// §4.4.3): an EVM transaction the caller describes or gives unsigned, signed with the
// wallet's key, stored, then sent by a job exactly like a transfer.
type Transaction struct {
	ID               string
	OrgID            string
	WalletID         string
	Network          string
	RequesterUserID  string
	RequesterTokenID string
	RequestBody      json.RawMessage
	Status           string
	Reason           string
	Nonce            uint64
	RawTx            []byte
	TxHash           string
	Fee              string
	ExternalID       string
	CreatedAt        time.Time
	BroadcastedAt    time.Time
	ConfirmedAt      time.Time
	ReplacementID    string // newest speed-up or cancel of this transaction (replace.go)
	Replaces         string // for a speed-up or cancel: the transfer or transaction it replaces
}

// TransactionStore persists broadcast requests.
type TransactionStore interface {
	// CreateTransaction allocates the sender's next nonce (at least chainNonce), calls sign
	// with it, stores the transaction with the signed bytes and queues its broadcast, all
	// in one transaction; an error from sign rolls everything back.
	CreateTransaction(ctx context.Context, t Transaction, sender string, chainNonce uint64,
		sign func(nonce uint64) (raw []byte, hash string, err error)) (Transaction, error)
	GetTransaction(ctx context.Context, orgID, id string) (Transaction, error)
	GetTransactionByExternalID(ctx context.Context, orgID, externalID string) (Transaction, error)
	ListTransactions(ctx context.Context, orgID, walletID string, page keys.Page) ([]Transaction, error)
	// LoadTransaction returns a transaction by id alone (for the broadcast job).
	LoadTransaction(ctx context.Context, id string) (Transaction, error)
	// UpdateTransactionStatus records broadcast and confirmation (or failure).
	UpdateTransactionStatus(ctx context.Context, t Transaction) error
}

// NonceFill is a signed 0-value self-transfer that takes the nonce of a transfer or
// transaction the network refused for good. Without it every later nonce of the sender
// would wait forever: EVM nodes only mine a sender's transactions in nonce order.
type NonceFill struct {
	Network     string
	Address     string
	Nonce       uint64
	Replaces    string // id of the refused transfer or transaction
	RawTx       []byte
	TxHash      string
	Status      string // Pending, Broadcasted, Confirmed or Superseded
	CreatedAt   time.Time
	ConfirmedAt time.Time
}

// FillStore persists nonce fillers.
type FillStore interface {
	// FailAndFill, in one transaction, ends the transfer or transaction with id replaces
	// as Failed with reason (unless already final) and stores f and queues its broadcast
	// (unless that nonce already has a filler).
	FailAndFill(ctx context.Context, replaces, reason string, f NonceFill) error
	LoadFill(ctx context.Context, network, address string, nonce uint64) (NonceFill, error)
	UpdateFill(ctx context.Context, f NonceFill) error
}

// SetTransactions attaches the broadcast-request and nonce-filler stores.
func (s *Service) SetTransactions(ts TransactionStore, fs FillStore) { s.txs, s.fills = ts, fs }

// SetAfterSend installs a hook run right after a transaction was handed to the network and
// before that is recorded. It exists for fault injection (a crash in exactly that window);
// production nodes never set it.
func (s *Service) SetAfterSend(f func(ctx context.Context, network, txHash string)) { s.afterSend = f }

// BroadcastRequest is the body of POST /wallets/{walletId}/transactions for EVM wallets.
// Pointers tell an absent field from an empty one; which fields a kind allows follows the
// SDK's BroadcastTransactionBody union.
type BroadcastRequest struct {
	Kind                 string          `json:"kind"`
	Transaction          *string         `json:"transaction"`
	To                   *string         `json:"to"`
	Value                *string         `json:"value"`
	Data                 *string         `json:"data"`
	Nonce                json.RawMessage `json:"nonce"`
	GasLimit             *string         `json:"gasLimit"`
	MaxFeePerGas         *string         `json:"maxFeePerGas"`
	MaxPriorityFeePerGas *string         `json:"maxPriorityFeePerGas"`
	GasPrice             *string         `json:"gasPrice"`
	Psbt                 *string         `json:"psbt"` // kind Psbt, Bitcoin wallets (bitcoin_broadcast.go)
	ExternalID           string          `json:"externalId,omitempty"`
}

// txPlan is a validated broadcast request: what the caller fixed (nil/zero = the server
// chooses).
type txPlan struct {
	unsigned *types.Transaction // kind Transaction: everything is fixed
	legacy   bool
	to       *common.Address
	value    *big.Int
	data     []byte
	nonce    *uint64
	gas      uint64
	tipCap   *big.Int
	feeCap   *big.Int
	gasPrice *big.Int
}

// maxUint256 is 2^256-1: no amount or quantity on an EVM chain is larger.
var maxUint256 = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 256), big.NewInt(1))

// parseQuantity reads a non-negative integer as a decimal or 0x-hex string (the SDK types
// these fields as strings of an integer); it refuses signs, fractions, exponents and
// values over max.
func parseQuantity(field, s string, max *big.Int) (*big.Int, error) {
	bad := errs.Ef(errs.Invalid, "%s must be a non-negative integer string (decimal or 0x-hex)", field)
	if s == "" || len(s) > 80 {
		return nil, bad
	}
	digits, base := s, 10
	if strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X") {
		digits, base = s[2:], 16
		if digits == "" || strings.TrimLeft(strings.ToLower(digits), "0123456789abcdef") != "" {
			return nil, bad
		}
	} else if strings.TrimLeft(digits, "0123456789") != "" {
		return nil, bad
	}
	v, ok := new(big.Int).SetString(digits, base)
	if !ok {
		return nil, bad
	}
	if v.Cmp(max) > 0 {
		return nil, errs.Ef(errs.Invalid, "%s is too large", field)
	}
	return v, nil
}

var maxUint64 = new(big.Int).SetUint64(^uint64(0))

// parseNonce reads the nonce: a JSON integer or an integer string. 2^64-1 is refused, as
// EIP-2681 caps nonces below it.
func parseNonce(raw json.RawMessage) (*uint64, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	bad := errs.E(errs.Invalid, "nonce must be a non-negative integer", nil)
	var v *big.Int
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, bad
		}
		x, err := parseQuantity("nonce", s, maxUint64)
		if err != nil {
			return nil, err
		}
		v = x
	} else {
		s := string(raw)
		if strings.TrimLeft(s, "0123456789") != "" || len(s) > 20 {
			return nil, bad
		}
		x, ok := new(big.Int).SetString(s, 10)
		if !ok || x.Cmp(maxUint64) > 0 {
			return nil, bad
		}
		v = x
	}
	if v.Cmp(maxUint64) >= 0 {
		return nil, errs.E(errs.Invalid, "nonce is too large", nil)
	}
	n := v.Uint64()
	return &n, nil
}

// parseBroadcast checks the shape of a request; the chain-dependent checks (chain id of
// an unsigned transaction, gas against the block limit) come later.
func parseBroadcast(r BroadcastRequest) (txPlan, error) {
	var p txPlan
	allowed := map[string]bool{}
	switch r.Kind {
	case "Transaction":
		allowed["transaction"] = true
	case "Evm":
		allowed["to"], allowed["value"], allowed["data"], allowed["nonce"], allowed["gasLimit"] = true, true, true, true, true
	case "Eip1559":
		allowed["to"], allowed["value"], allowed["data"], allowed["nonce"], allowed["gasLimit"] = true, true, true, true, true
		allowed["maxFeePerGas"], allowed["maxPriorityFeePerGas"] = true, true
	case "EvmLegacy":
		allowed["to"], allowed["value"], allowed["data"], allowed["nonce"], allowed["gasLimit"] = true, true, true, true, true
		allowed["gasPrice"], p.legacy = true, true
	case "":
		return p, errs.E(errs.Invalid, "kind is required", nil)
	case "Psbt", "SignDocDirect", "UserOperations":
		return p, errs.Ef(errs.Invalid, "broadcast kind %s is not supported on EVM networks", r.Kind)
	default:
		return p, errs.Ef(errs.Invalid, "broadcast kind %q is not supported", clip(r.Kind))
	}
	present := map[string]bool{"transaction": r.Transaction != nil, "to": r.To != nil, "value": r.Value != nil,
		"data": r.Data != nil, "nonce": len(r.Nonce) > 0 && string(r.Nonce) != "null", "gasLimit": r.GasLimit != nil,
		"maxFeePerGas": r.MaxFeePerGas != nil, "maxPriorityFeePerGas": r.MaxPriorityFeePerGas != nil, "gasPrice": r.GasPrice != nil}
	for _, f := range []string{"transaction", "to", "value", "data", "nonce", "gasLimit", "maxFeePerGas", "maxPriorityFeePerGas", "gasPrice"} {
		if present[f] && !allowed[f] {
			return p, errs.Ef(errs.Invalid, "%s is not a field of %s broadcasts", f, r.Kind)
		}
	}
	if r.Kind == "Transaction" {
		if r.Transaction == nil || *r.Transaction == "" {
			return p, errs.E(errs.Invalid, "transaction is required", nil)
		}
		return p, nil // decoded once the network's chain id is known
	}
	var err error
	if r.To != nil && *r.To != "" {
		to, err := evm.ParseAddress(*r.To)
		if err != nil {
			return p, err
		}
		p.to = &to
	}
	p.value = new(big.Int)
	if r.Value != nil {
		if p.value, err = parseQuantity("value", *r.Value, maxUint256); err != nil {
			return p, err
		}
	}
	if r.Data != nil && *r.Data != "" {
		d := *r.Data
		if strings.HasPrefix(d, "0x") || strings.HasPrefix(d, "0X") {
			d = d[2:]
		}
		if p.data, err = hex.DecodeString(d); err != nil {
			return p, errs.E(errs.Invalid, "data must be hex", nil)
		}
	}
	if p.to == nil && len(p.data) == 0 {
		return p, errs.E(errs.Invalid, "to is required (or data, to deploy a contract)", nil)
	}
	if p.nonce, err = parseNonce(r.Nonce); err != nil {
		return p, err
	}
	if r.GasLimit != nil {
		g, err := parseQuantity("gasLimit", *r.GasLimit, maxUint64)
		if err != nil {
			return p, err
		}
		if p.gas = g.Uint64(); p.gas < 21000 {
			return p, errs.E(errs.Invalid, "gasLimit must be at least 21000", nil)
		}
	}
	fee := func(field string, s *string) (*big.Int, error) {
		if s == nil {
			return nil, nil
		}
		return parseQuantity(field, *s, maxUint256)
	}
	if p.feeCap, err = fee("maxFeePerGas", r.MaxFeePerGas); err != nil {
		return p, err
	}
	if p.tipCap, err = fee("maxPriorityFeePerGas", r.MaxPriorityFeePerGas); err != nil {
		return p, err
	}
	if p.feeCap != nil && p.tipCap != nil && p.tipCap.Cmp(p.feeCap) > 0 {
		return p, errs.E(errs.Invalid, "maxPriorityFeePerGas must not exceed maxFeePerGas", nil)
	}
	if p.gasPrice, err = fee("gasPrice", r.GasPrice); err != nil {
		return p, err
	}
	return p, nil
}

// Broadcast signs and queues the transaction a broadcast request describes. body is the
// exact request body: it is echoed as requestBody and decides idempotency (§6.4).
//
// Nonces. The server allocates every nonce of a wallet (store: evm_nonces), in the same
// database transaction that stores the signed bytes. A caller-given nonce (the nonce field,
// or the nonce inside an unsigned Transaction) is accepted only when it is exactly the
// nonce the allocator hands out next, and is then consumed like an allocated one. A lower
// nonce would collide with a transaction already signed or mined (and could silently
// replace a pending transfer); a higher one would leave a gap that blocks every later
// transaction of the wallet. Both are refused with 400, naming the expected nonce, and
// the allocator is left untouched (the refusal rolls the allocation back).
func (s *Service) Broadcast(ctx context.Context, p auth.Principal, walletID string, body []byte) (Transaction, error) {
	var r BroadcastRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return Transaction{}, errs.E(errs.Invalid, "malformed broadcast body", err)
	}
	if dec.More() {
		return Transaction{}, errs.E(errs.Invalid, "malformed broadcast body: trailing data", nil)
	}
	if len(r.ExternalID) > 256 || !utf8.ValidString(r.ExternalID) {
		return Transaction{}, errs.E(errs.Invalid, "externalId must be valid text of at most 256 bytes", nil)
	}
	if r.Kind == "Psbt" {
		return s.broadcastPsbt(ctx, p, walletID, body, r)
	}
	if r.Psbt != nil {
		return Transaction{}, errs.Ef(errs.Invalid, "psbt is not a field of %s broadcasts", clip(r.Kind))
	}
	plan, err := parseBroadcast(r)
	if err != nil {
		return Transaction{}, err
	}
	w, err := s.Writable(ctx, p, walletID) // the delegation rule: only a delegated wallet's end user signs
	if err != nil {
		return Transaction{}, err
	}
	if s.txs == nil || s.chains == nil {
		return Transaction{}, errs.E(errs.Unavailable, "no chain backends are configured", nil)
	}
	if prev, replay, err := s.replayOrSignable(ctx, p, w, r.ExternalID, body); replay || err != nil {
		return prev, err
	}
	if _, ok := evm.Lookup(w.Network); !ok {
		return Transaction{}, errs.Ef(errs.Invalid, "broadcasting is not supported on %s", w.Network)
	}
	b, err := s.chains.Get(ctx, w.Network)
	if err != nil {
		return Transaction{}, err
	}
	chainID := new(big.Int).SetUint64(b.Network.ChainID)
	if r.Kind == "Transaction" {
		if plan.unsigned, err = evm.ParseUnsigned(*r.Transaction, b.Network.ChainID); err != nil {
			return Transaction{}, err
		}
		n := plan.unsigned.Nonce()
		plan.nonce = &n
	}
	from := common.HexToAddress(w.Address)
	unavailable := func(err error) error { return errs.E(errs.Unavailable, "could not read from the network", err) }
	head, err := b.Client.HeaderByNumber(ctx, nil)
	if err != nil {
		return Transaction{}, unavailable(err)
	}
	base := head.BaseFee
	if base == nil {
		base = new(big.Int)
	}
	build := func(nonce uint64) *types.Transaction { return plan.unsigned }
	var tx *types.Transaction // the transaction as it will be signed, with a provisional nonce
	if plan.unsigned != nil {
		tx = plan.unsigned
		if tx.GasTipCapIntCmp(tx.GasFeeCap()) > 0 {
			return Transaction{}, errs.E(errs.Invalid, "the transaction's priority fee exceeds its max fee", nil)
		}
	} else {
		defaultTip := tipOf(Standard)
		if plan.legacy {
			if plan.gasPrice == nil {
				plan.gasPrice = capOver(base, defaultTip)
			}
		} else {
			if plan.tipCap == nil {
				plan.tipCap = defaultTip
				if plan.feeCap != nil && plan.feeCap.Cmp(plan.tipCap) < 0 {
					plan.tipCap = new(big.Int).Set(plan.feeCap)
				}
			}
			if plan.feeCap == nil {
				plan.feeCap = capOver(base, plan.tipCap)
			}
		}
		if plan.gas == 0 {
			if plan.gas, err = s.estimateGas(ctx, b, from, plan); err != nil {
				return Transaction{}, err
			}
		}
		build = func(nonce uint64) *types.Transaction {
			if plan.legacy {
				return types.NewTx(&types.LegacyTx{Nonce: nonce, GasPrice: plan.gasPrice, Gas: plan.gas, To: plan.to,
					Value: plan.value, Data: plan.data})
			}
			return types.NewTx(&types.DynamicFeeTx{ChainID: chainID, Nonce: nonce, GasTipCap: plan.tipCap,
				GasFeeCap: plan.feeCap, Gas: plan.gas, To: plan.to, Value: plan.value, Data: plan.data})
		}
		tx = build(0)
	}
	if tx.Gas() < 21000 {
		return Transaction{}, errs.E(errs.Invalid, "the transaction's gas limit must be at least 21000", nil)
	}
	if tx.Gas() > head.GasLimit {
		return Transaction{}, errs.Ef(errs.Invalid, "the transaction's gas limit exceeds the block gas limit %d", head.GasLimit)
	}
	bal, err := b.Client.BalanceAt(ctx, from, nil)
	if err != nil {
		return Transaction{}, unavailable(err)
	}
	if bal.Cmp(tx.Cost()) < 0 { // value + gas × max price
		return Transaction{}, errs.E(errs.Invalid, "insufficient funds", nil)
	}
	chainNonce, err := b.Client.PendingNonceAt(ctx, from)
	if err != nil {
		return Transaction{}, unavailable(err)
	}
	now := s.now().UTC().Truncate(time.Millisecond)
	t := Transaction{ID: ids.NewAt("tx", now), OrgID: p.OrgID, WalletID: w.ID, Network: w.Network, RequesterUserID: p.UserID,
		RequesterTokenID: p.TokenID, RequestBody: json.RawMessage(bytes.Clone(body)), Status: Pending, ExternalID: r.ExternalID,
		CreatedAt: now}
	sign := func(nonce uint64) ([]byte, string, error) {
		if plan.nonce != nil && *plan.nonce != nonce {
			return nil, "", nonceRefused(*plan.nonce, nonce)
		}
		return s.signEVM(ctx, w.Key, chainID, build(nonce))
	}
	out, err := s.txs.CreateTransaction(ctx, t, from.Hex(), chainNonce, sign)
	return s.createdOrReplay(ctx, p, w.ID, r.ExternalID, body, out, err)
}

// nonceRefused explains why a caller-given nonce is not the allocator's next one.
func nonceRefused(given, next uint64) error {
	why := "a higher nonce would leave a gap that blocks every later transaction"
	if given < next {
		why = "a lower nonce is already taken by a transaction signed or mined before"
	}
	return errs.WithDetails(errs.Ef(errs.Invalid, "nonce %d is not the wallet's next nonce %d: %s", given, next, why),
		map[string]any{"nonce": given, "nextNonce": next})
}

// estimateGas asks the network how much gas the planned call needs, plus a fifth for
// state that changes before it is mined; a plain payment to an account without code is
// exactly 21000.
func (s *Service) estimateGas(ctx context.Context, b *registry.Backend, from common.Address, p txPlan) (uint64, error) {
	if p.to != nil && len(p.data) == 0 {
		code, err := b.Client.CodeAt(ctx, *p.to, nil)
		if err != nil {
			return 0, errs.E(errs.Unavailable, "could not read from the network", err)
		}
		if len(code) == 0 {
			return 21000, nil
		}
	}
	est, err := b.Client.EstimateGas(ctx, ethereum.CallMsg{From: from, To: p.to, Value: p.value, Data: p.data})
	if err != nil {
		return 0, errs.E(errs.Invalid, "the transaction would fail: "+clip(err.Error()), err)
	}
	return est + est/5, nil
}

// signEVM signs tx for chainID with the wallet key and returns its encoding and hash.
func (s *Service) signEVM(ctx context.Context, k keys.Key, chainID *big.Int, tx *types.Transaction) ([]byte, string, error) {
	signer := types.LatestSignerForChainID(chainID)
	sig, err := s.keys.SignHash(ctx, k, signer.Hash(tx).Bytes())
	if err != nil {
		return nil, "", err
	}
	rsv := append(append(append([]byte{}, common.LeftPadBytes(sig.R, 32)...), common.LeftPadBytes(sig.S, 32)...), byte(sig.RecID))
	signed, err := tx.WithSignature(signer, rsv)
	if err != nil {
		return nil, "", errs.E(errs.Internal, "could not assemble the signed transaction", err)
	}
	raw, err := signed.MarshalBinary()
	if err != nil {
		return nil, "", errs.E(errs.Internal, "could not encode the signed transaction", err)
	}
	return raw, signed.Hash().Hex(), nil
}

// replayTransaction answers a retried request (same externalId) with the original, or 409
// when the retry is not the same request (dfns-api.md §6.4).
func replayTransaction(prev Transaction, walletID string, body []byte) (Transaction, error) {
	if err := sameRequest("transaction", prev.ID, prev.ExternalID, prev.WalletID, prev.RequestBody, walletID, body); err != nil {
		return Transaction{}, err
	}
	return prev, nil
}

// sameRequest checks that a request reusing an externalId repeats the original (same
// wallet, same JSON body); otherwise it is the 409 of dfns-api.md §6.4, naming the original.
func sameRequest(what, prevID, prevExternalID, prevWalletID string, prevBody []byte, walletID string, body []byte) error {
	if prevWalletID == walletID && keys.JSONEqual(prevBody, body) {
		return nil
	}
	return errs.WithDetails(errs.Ef(errs.Conflict, "Conflicting %s with same externalId", what),
		map[string]any{"duplicate": map[string]string{"id": prevID, "externalId": prevExternalID}})
}

// pageOf reads one page of a list, newest first: it asks list for one item more than the
// page holds, so it knows whether a next page (whose token is the last id) exists.
func pageOf[T any](page keys.Page, list func(keys.Page) ([]T, error), id func(T) string) ([]T, string, error) {
	if page.Limit <= 0 {
		page.Limit = 100
	}
	page.Limit = min(page.Limit, 500)
	items, err := list(keys.Page{Limit: page.Limit + 1, After: page.After})
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(items) > page.Limit {
		items, next = items[:page.Limit], id(items[page.Limit-1])
	}
	return items, next, nil
}

// GetTransaction returns a broadcast request of a wallet of the caller's organization.
func (s *Service) GetTransaction(ctx context.Context, p auth.Principal, walletID, id string) (Transaction, error) {
	return walletItem(ctx, s, p, walletID, "transaction", s.txs != nil,
		func() (Transaction, error) { return s.txs.GetTransaction(ctx, p.OrgID, id) },
		func(t Transaction) string { return t.WalletID })
}

// ListTransactions returns a page of a wallet's broadcast requests, newest first.
func (s *Service) ListTransactions(ctx context.Context, p auth.Principal, walletID string, page keys.Page) ([]Transaction, string, error) {
	return walletItems(ctx, s, p, walletID, page, s.txs != nil,
		func(pg keys.Page) ([]Transaction, error) { return s.txs.ListTransactions(ctx, p.OrgID, walletID, pg) },
		func(t Transaction) string { return t.ID })
}

// walletItem reads one request (a transfer, a transaction) of a wallet the caller can see;
// what names it in errors, wired says whether its store is attached, walletOf whose it is.
// A request of another wallet is not found, as one of another organization.
func walletItem[T any](ctx context.Context, s *Service, p auth.Principal, walletID, what string, wired bool,
	load func() (T, error), walletOf func(T) string) (T, error) {
	var zero T
	if _, err := s.Get(ctx, p, walletID); err != nil {
		return zero, err
	}
	if !wired {
		return zero, errs.E(errs.NotFound, what+" not found", nil)
	}
	t, err := load()
	if err == nil && walletOf(t) != walletID {
		err = errs.E(errs.NotFound, "not found", nil)
	}
	if errs.Is(err, errs.NotFound) {
		return zero, errs.E(errs.NotFound, what+" not found", err)
	}
	return t, err
}

// walletItems reads a page of a wallet's requests, newest first, for a caller who can see
// the wallet.
func walletItems[T any](ctx context.Context, s *Service, p auth.Principal, walletID string, page keys.Page, wired bool,
	list func(keys.Page) ([]T, error), id func(T) string) ([]T, string, error) {
	if _, err := s.Get(ctx, p, walletID); err != nil {
		return nil, "", err
	}
	if !wired {
		return []T{}, "", nil
	}
	return pageOf(page, list, id)
}

// AdvanceTransaction moves a broadcast request on, like Advance does a transfer.
func (s *Service) AdvanceTransaction(ctx context.Context, id string) error {
	t, err := s.txs.LoadTransaction(ctx, id)
	if err != nil {
		return err
	}
	if t.Replaces != "" { // a speed-up or cancel (replace.go)
		return s.advanceReplacement(ctx, t)
	}
	o := outgoing{ID: t.ID, OrgID: t.OrgID, WalletID: t.WalletID, Network: t.Network, Status: t.Status, Reason: t.Reason,
		Fee: t.Fee, Nonce: t.Nonce, RawTx: t.RawTx, TxHash: t.TxHash, BroadcastedAt: t.BroadcastedAt, ConfirmedAt: t.ConfirmedAt}
	return s.advance(ctx, &o, func() error {
		t.Status, t.Reason, t.Fee, t.BroadcastedAt, t.ConfirmedAt = o.Status, o.Reason, o.Fee, o.BroadcastedAt, o.ConfirmedAt
		return s.txs.UpdateTransactionStatus(ctx, t)
	})
}

// stored returns a network's backend and a signed transaction as it was stored, which is
// all a broadcast job (advance, advanceReplacement, AdvanceFill) ever sends.
func (s *Service) stored(ctx context.Context, network string, raw []byte) (*registry.Backend, *types.Transaction, error) {
	b, err := s.chains.Get(ctx, network)
	if err != nil {
		return nil, nil, err
	}
	tx := new(types.Transaction)
	if err := tx.UnmarshalBinary(raw); err != nil {
		return nil, nil, err
	}
	return b, tx, nil
}

// outgoing is what the broadcast job needs of a transfer or a transaction.
type outgoing struct {
	ID, OrgID, WalletID, Network string
	Status, Reason, Fee          string
	Nonce                        uint64
	RawTx                        []byte
	TxHash                       string
	BroadcastedAt, ConfirmedAt   time.Time
}

// advance broadcasts o's stored signed transaction, then records its receipt; save
// persists o. It is idempotent: it only ever (re)sends the same bytes. It returns
// ErrPending while the transaction waits to be mined.
//
// A send the network refuses for good ends o Failed. Unless the refusal was "nonce too
// low" (the nonce is already used, so there is no gap), the nonce is then filled with a
// signed 0-value self-transfer (FailAndFill, in the same database transaction as the
// status), so later nonces of the wallet are not blocked forever.
func (s *Service) advance(ctx context.Context, o *outgoing, save func() error) error {
	if o.Status == Confirmed || o.Status == Failed {
		return nil
	}
	b, tx, err := s.stored(ctx, o.Network, o.RawTx)
	if err != nil {
		return err
	}
	hash := common.HexToHash(o.TxHash)
	if o.Status == Executing || o.Status == Pending {
		sent := s.now().UTC().Truncate(time.Millisecond) // a dev chain send returns once mined
		mined, err := s.send(ctx, b, tx)
		if err != nil && !alreadySent(ctx, b, hash, err) {
			if permanent(err) {
				return s.refused(ctx, b, o, err, save) // never broadcast, so no dateBroadcasted or dateConfirmed
			}
			return err
		}
		if s.afterSend != nil {
			s.afterSend(ctx, o.Network, o.TxHash)
		}
		o.Status, o.BroadcastedAt = Broadcasted, sent
		// Broadcasted is written even when the receipt is already in hand: it is the state
		// (and the webhook event) subscribers see before the final one. Recording both in
		// one update instead, with the broadcasted event emitted on the way, measured no
		// cheaper (docs/benchmarks.md, "Transfers end to end").
		if err := save(); err != nil {
			return err
		}
		if mined != nil {
			return s.mined(o, mined, save)
		}
		if err == nil {
			// Just handed to a network whose blocks take seconds (or a dev chain that did
			// not seal it within the wait): its receipt is looked for on the job's next run.
			// A resend the node already knew goes on to the receipt now.
			return ErrPending
		}
	}
	if done, err := s.replaced(ctx, b, o); done { // sped up or cancelled: replace.go settles the nonce
		return err
	}
	rc, err := s.receipt(ctx, b, tx)
	var re *refusedError
	if errors.Is(err, errNonceTaken) || errors.As(err, &re) {
		if done, err := s.replaced(ctx, b, o); done { // replaced meanwhile, and the replacement was mined
			return err
		}
	}
	if errors.As(err, &re) { // dropped by the network, then refused when sent again
		return s.refused(ctx, b, o, re.err, save)
	}
	if errors.Is(err, errNonceTaken) {
		o.Status, o.Reason = Failed, "another transaction took nonce "+fmt.Sprint(o.Nonce)
		o.ConfirmedAt = s.now().UTC().Truncate(time.Millisecond)
		return save()
	}
	if err != nil {
		return err
	}
	return s.mined(o, rc, save)
}

// mined records o's receipt: Confirmed with its fee, or Failed when it reverted.
func (s *Service) mined(o *outgoing, rc *types.Receipt, save func() error) error {
	price := rc.EffectiveGasPrice
	if price == nil {
		price = new(big.Int)
	}
	o.Fee = new(big.Int).Mul(new(big.Int).SetUint64(rc.GasUsed), price).String()
	o.ConfirmedAt = s.now().UTC().Truncate(time.Millisecond)
	if rc.Status == types.ReceiptStatusSuccessful {
		o.Status = Confirmed
	} else {
		o.Status, o.Reason = Failed, "transaction reverted"
	}
	return save()
}

// devSendWait bounds how long a send to a dev chain waits for its receipt; past it the
// transaction is recorded Broadcasted and its job checks back later, as for any network.
// A dev chain seals a block as soon as a transaction enters its pool, so this is only
// reached when the sender's earlier nonces are missing or the chain is very busy.
const devSendWait = 2 * time.Second

// send hands tx to the network. On a dev chain (which seals as soon as a transaction
// arrives) it waits for the receipt in the same call (eth_sendRawTransactionSync), so one
// job run broadcasts and confirms, and returns it; it returns a nil receipt when the wait
// ran out with the transaction in the pool. Other networks (configured RPCs, where a block
// takes seconds) are sent to without waiting, and the job polls for the receipt.
func (s *Service) send(ctx context.Context, b *registry.Backend, tx *types.Transaction) (*types.Receipt, error) {
	if b.Dev == nil || s.asyncDev {
		return nil, b.Client.SendTransaction(ctx, tx)
	}
	wait := devSendWait
	rc, err := b.Client.SendTransactionSync(ctx, tx, &wait)
	var re rpc.Error
	if errors.As(err, &re) && re.ErrorCode() == rpcTxSyncTimeout {
		return nil, nil // in the pool, not mined yet
	}
	if err != nil {
		return nil, err
	}
	// Report it mined only once the pool has caught up too, so a transaction sent right
	// after this one is confirmed (say, from the account it paid) meets the new state.
	if err := b.Dev.Settle(ctx, tx.Hash()); err != nil {
		return nil, nil // mined: the job records it from the receipt on its next run
	}
	return rc, nil
}

// SetAsyncDevSends makes sends to dev chains behave as sends to a configured RPC do (no
// wait for the receipt; the job polls), for tests that need a transaction the database
// still holds as Broadcasted after it was mined. Call it before the jobs start.
func (s *Service) SetAsyncDevSends(on bool) { s.asyncDev = on }

// rpcTxSyncTimeout is the JSON-RPC error code of eth_sendRawTransactionSync when the
// transaction was accepted into the pool but not mined within the wait (EIP-7966).
const rpcTxSyncTimeout = 4

var errNonceTaken = errors.New("wallets: another transaction took the nonce")

// refusedError is a send the network refused for good (see permanent).
type refusedError struct{ err error }

func (e *refusedError) Error() string { return "the network refused the transaction: " + e.err.Error() }

// refused ends o Failed after the network refused it for good and, unless the refusal
// means its nonce is already used, fills the nonce (see advance).
func (s *Service) refused(ctx context.Context, b *registry.Backend, o *outgoing, err error, save func() error) error {
	reason := "the network refused the transaction: " + clip(err.Error())
	if nonceTooLow(err) || s.fills == nil {
		o.Status, o.Reason = Failed, reason
		return save()
	}
	return s.failAndFill(ctx, b, o, reason)
}

// receipt returns the receipt of a sent transaction, ErrPending while it is not mined, or
// errNonceTaken when another transaction was mined with its nonce. A node that no longer
// knows the transaction (a restarted node loses its pool; a pool evicts a transaction its
// sender can no longer pay for) is given the same bytes again; a refusal for good then is
// a *refusedError.
func (s *Service) receipt(ctx context.Context, b *registry.Backend, tx *types.Transaction) (*types.Receipt, error) {
	rc, err := b.Client.TransactionReceipt(ctx, tx.Hash())
	if err == nil || !errors.Is(err, ethereum.NotFound) {
		return rc, err
	}
	if _, _, err := b.Client.TransactionByHash(ctx, tx.Hash()); !errors.Is(err, ethereum.NotFound) {
		return nil, ErrPending // known to the node (or the node could not say): wait
	}
	from, err := types.Sender(types.LatestSignerForChainID(tx.ChainId()), tx)
	if err != nil {
		return nil, err
	}
	mined, err := b.Client.NonceAt(ctx, from, nil)
	if err != nil {
		return nil, err
	}
	if mined > tx.Nonce() {
		// Mined between the two reads, or replaced.
		if rc, err := b.Client.TransactionReceipt(ctx, tx.Hash()); err == nil {
			return rc, nil
		}
		return nil, errNonceTaken
	}
	if err := b.Client.SendTransaction(ctx, tx); err != nil && !alreadySent(ctx, b, tx.Hash(), err) {
		if permanent(err) {
			return nil, &refusedError{err}
		}
		return nil, err
	}
	return nil, ErrPending
}

// nonceTooLow reports the refusal that means the nonce is already used.
func nonceTooLow(err error) bool {
	return strings.Contains(strings.ToLower(err.Error()), "nonce too low")
}

// fillTip is the priority fee of nonce fillers: 1 gwei.
var fillTip = big.NewInt(1e9)

// failAndFill ends o Failed with reason and fills its nonce (see advance).
func (s *Service) failAndFill(ctx context.Context, b *registry.Backend, o *outgoing, reason string) error {
	w, err := s.store.GetWallet(ctx, o.OrgID, o.WalletID)
	if err != nil {
		return err
	}
	head, err := b.Client.HeaderByNumber(ctx, nil)
	if err != nil {
		return err
	}
	base := head.BaseFee
	if base == nil {
		base = new(big.Int)
	}
	from := common.HexToAddress(w.Address)
	chainID := new(big.Int).SetUint64(b.Network.ChainID)
	fill := types.NewTx(&types.DynamicFeeTx{ChainID: chainID, Nonce: o.Nonce, GasTipCap: fillTip,
		GasFeeCap: capOver(base, fillTip), Gas: 21000, To: &from, Value: new(big.Int)})
	raw, hash, err := s.signEVM(ctx, w.Key, chainID, fill)
	if err != nil {
		return err
	}
	now := s.now().UTC().Truncate(time.Millisecond)
	reason += fmt.Sprintf("; nonce %d is filled by a 0-value self-transfer %s so later transactions are not blocked", o.Nonce, hash)
	return s.fills.FailAndFill(ctx, o.ID, reason, NonceFill{Network: o.Network, Address: from.Hex(), Nonce: o.Nonce,
		Replaces: o.ID, RawTx: raw, TxHash: hash, Status: Pending, CreatedAt: now})
}

// AdvanceFill broadcasts a nonce filler and follows it until it is mined. A filler the
// network refuses for lack of funds returns ErrPending, so its job keeps checking back
// without running out of attempts: the wallet's later transactions wait for it, and
// funding the wallet unblocks them.
func (s *Service) AdvanceFill(ctx context.Context, network, address string, nonce uint64) error {
	f, err := s.fills.LoadFill(ctx, network, address, nonce)
	if err != nil {
		return err
	}
	if f.Status == Confirmed || f.Status == Superseded {
		return nil
	}
	b, tx, err := s.stored(ctx, f.Network, f.RawTx)
	if err != nil {
		return err
	}
	if f.Status == Pending {
		if err := b.Client.SendTransaction(ctx, tx); err != nil && !alreadySent(ctx, b, tx.Hash(), err) {
			if nonceTooLow(err) { // the nonce is used after all: nothing to fill
				f.Status = Superseded
				return s.fills.UpdateFill(ctx, f)
			}
			if permanent(err) {
				// Most likely the wallet cannot pay the filler's gas: wait (without using up
				// the job's attempts) until someone funds it.
				return fmt.Errorf("nonce filler %s refused (%v): %w", f.TxHash, err, ErrPending)
			}
			return fmt.Errorf("nonce filler %s: %w", f.TxHash, err)
		}
		f.Status = Broadcasted
		if err := s.fills.UpdateFill(ctx, f); err != nil {
			return err
		}
	}
	_, err = s.receipt(ctx, b, tx)
	var re *refusedError
	switch {
	case errors.As(err, &re) && nonceTooLow(re.err), errors.Is(err, errNonceTaken):
		f.Status = Superseded
	case errors.As(err, &re):
		return fmt.Errorf("nonce filler %s refused (%v): %w", f.TxHash, re.err, ErrPending)
	case err != nil:
		return err
	default:
		f.Status = Confirmed
	}
	f.ConfirmedAt = s.now().UTC().Truncate(time.Millisecond)
	return s.fills.UpdateFill(ctx, f)
}
