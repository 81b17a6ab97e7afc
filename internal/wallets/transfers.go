package wallets

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/countersign/countersign/internal/auth"
	"github.com/countersign/countersign/internal/chains/evm"
	"github.com/countersign/countersign/internal/chains/registry"
	"github.com/countersign/countersign/internal/errs"
	"github.com/countersign/countersign/internal/ids"
	"github.com/countersign/countersign/internal/keys"
)

// Statuses of transfers (dfns-api.md §4.4.1).
const (
	Executing   = "Executing"
	Broadcasted = "Broadcasted"
	Confirmed   = "Confirmed"
	Failed      = "Failed"
)

// Transfer is one transfer request and the signed transaction that carries it.
type Transfer struct {
	ID               string
	OrgID            string
	WalletID         string
	Network          string
	RequesterUserID  string
	RequesterTokenID string
	RequestBody      json.RawMessage
	AssetSymbol      string
	AssetDecimals    int
	AssetVerified    bool
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
	ReplacementID    string // newest speed-up or cancel of this transfer (replace.go)
}

// TransferStore persists transfers.
type TransferStore interface {
	// CreateTransfer allocates the sender's next nonce (at least chainNonce), calls sign
	// with it, stores the transfer with the signed transaction and queues its broadcast,
	// all in one transaction.
	CreateTransfer(ctx context.Context, t Transfer, sender string, chainNonce uint64,
		sign func(nonce uint64) (raw []byte, hash string, err error)) (Transfer, error)
	GetTransfer(ctx context.Context, orgID, id string) (Transfer, error)
	GetTransferByExternalID(ctx context.Context, orgID, externalID string) (Transfer, error)
	ListTransfers(ctx context.Context, orgID, walletID string, page keys.Page) ([]Transfer, error)
	// LoadTransfer returns a transfer by id alone (for the broadcast job).
	LoadTransfer(ctx context.Context, id string) (Transfer, error)
	// UpdateTransferStatus records broadcast and confirmation (or failure).
	UpdateTransferStatus(ctx context.Context, t Transfer) error
}

// SetTransfers attaches the transfer store.
func (s *Service) SetTransfers(ts TransferStore) { s.transfers = ts }

// TransferRequest is the body of POST /wallets/{walletId}/transfers (§4.4.2, EVM kinds).
type TransferRequest struct {
	Kind       string `json:"kind"`
	To         string `json:"to"`
	Amount     string `json:"amount"`
	Contract   string `json:"contract,omitempty"`
	Priority   string `json:"priority,omitempty"`
	ExternalID string `json:"externalId,omitempty"`
}

// erc20TransferSelector is keccak256("transfer(address,uint256)")[:4].
var erc20TransferSelector = []byte{0xa9, 0x05, 0x9c, 0xbb}

// Transfer moves native coin or an ERC-20 token out of a wallet. body is the exact request
// body: it is echoed as requestBody and decides idempotency (§6.4).
func (s *Service) Transfer(ctx context.Context, p auth.Principal, walletID string, body []byte) (Transfer, error) {
	var r TransferRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return Transfer{}, errs.E(errs.Invalid, "malformed transfer body", err)
	}
	if len(r.ExternalID) > 256 || !utf8.ValidString(r.ExternalID) {
		return Transfer{}, errs.E(errs.Invalid, "externalId must be valid text of at most 256 bytes", nil)
	}
	w, err := s.Writable(ctx, p, walletID)
	if err != nil {
		return Transfer{}, err
	}
	if s.btc.nodes[w.Network] != nil { // bitcoin_broadcast.go
		return Transfer{}, errs.Ef(errs.Invalid, "transfers on %s are not supported (choosing coins needs a UTXO index): build a PSBT and broadcast it with kind Psbt", w.Network)
	}
	if !keys.IsEVM(w.Network) {
		return Transfer{}, errs.Ef(errs.Invalid, "no RPC configured for %s: transfers on this network cannot be built or broadcast", w.Network)
	}
	to, err := evm.ParseAddress(r.To)
	if err != nil {
		return Transfer{}, err
	}
	amount, err := ParseAmount(r.Amount)
	if err != nil {
		return Transfer{}, err
	}
	if !isPriority(r.Priority) {
		return Transfer{}, errs.E(errs.Invalid, "priority must be Slow, Standard or Fast", nil)
	}
	var token common.Address
	switch r.Kind {
	case "Native":
		if r.Contract != "" {
			return Transfer{}, errs.E(errs.Invalid, "contract is not a field of Native transfers", nil)
		}
	case "Erc20":
		if r.Contract == "" {
			return Transfer{}, errs.E(errs.Invalid, "contract is required", nil)
		}
		if token, err = evm.ParseAddress(r.Contract); err != nil {
			return Transfer{}, err
		}
	case "":
		return Transfer{}, errs.E(errs.Invalid, "kind is required", nil)
	default:
		return Transfer{}, errs.Ef(errs.Invalid, "transfer kind %q is not supported", r.Kind)
	}
	if r.ExternalID != "" {
		prev, err := s.transfers.GetTransferByExternalID(ctx, p.OrgID, r.ExternalID)
		if err == nil {
			return replayTransfer(prev, w.ID, body)
		}
		if !errs.Is(err, errs.NotFound) {
			return Transfer{}, err
		}
	}
	if w.Status != Active {
		return Transfer{}, errs.E(errs.Invalid, "wallet is not active", nil)
	}
	if w.Key.Status != keys.Active {
		return Transfer{}, errs.E(errs.Invalid, "the wallet's key is archived", nil)
	}
	if s.chains == nil || s.transfers == nil {
		return Transfer{}, errs.E(errs.Unavailable, "no chain backends are configured", nil)
	}
	b, err := s.chains.Get(ctx, w.Network)
	if err != nil {
		return Transfer{}, err
	}
	from := common.HexToAddress(w.Address)
	unavailable := func(err error) error { return errs.E(errs.Unavailable, "could not read from the network", err) }
	fees, err := feesOf(ctx, b) // the offers GET /networks/fees shows (networks.go)
	if err != nil {
		return Transfer{}, err
	}
	fee := fees.For(r.Priority)
	tipCap, feeCap := fee.MaxPriorityFeePerGas, fee.MaxFeePerGas
	t := Transfer{OrgID: p.OrgID, WalletID: w.ID, Network: w.Network, RequesterUserID: p.UserID,
		RequesterTokenID: p.TokenID, RequestBody: json.RawMessage(bytes.Clone(body)), Status: Executing, ExternalID: r.ExternalID}
	var txTo common.Address
	var value *big.Int
	var data []byte
	var gas uint64
	if r.Kind == "Native" {
		txTo, value, gas = to, amount, 21000
		// A contract recipient may run code on receipt, which 21000 gas does not cover.
		code, err := b.Client.CodeAt(ctx, to, nil)
		if err != nil {
			return Transfer{}, unavailable(err)
		}
		if len(code) > 0 {
			est, err := b.Client.EstimateGas(ctx, ethereum.CallMsg{From: from, To: &to, Value: amount})
			if err != nil {
				return Transfer{}, errs.E(errs.Invalid, "the recipient contract refuses the transfer", err)
			}
			gas = est + est/5
		}
		t.AssetSymbol, t.AssetDecimals, t.AssetVerified = b.Network.Symbol, b.Network.Decimals, true
	} else {
		bal, err := s.tokenBalance(ctx, b, token, from)
		if err != nil {
			return Transfer{}, err
		}
		if bal.Cmp(amount) < 0 {
			return Transfer{}, errs.E(errs.Invalid, "insufficient funds", nil)
		}
		txTo, value = token, new(big.Int)
		data = append(append(bytes.Clone(erc20TransferSelector), common.LeftPadBytes(to.Bytes(), 32)...), common.LeftPadBytes(amount.Bytes(), 32)...)
		est, err := b.Client.EstimateGas(ctx, ethereum.CallMsg{From: from, To: &token, Data: data})
		if err != nil {
			return Transfer{}, errs.E(errs.Invalid, "the token transfer would fail", err)
		}
		gas = est + est/5
		t.AssetSymbol, t.AssetDecimals = tokenMetadata(ctx, b, token)
	}
	nativeBal, err := b.Client.BalanceAt(ctx, from, nil)
	if err != nil {
		return Transfer{}, unavailable(err)
	}
	need := new(big.Int).Add(value, new(big.Int).Mul(new(big.Int).SetUint64(gas), feeCap))
	if nativeBal.Cmp(need) < 0 {
		return Transfer{}, errs.E(errs.Invalid, "insufficient funds", nil)
	}
	chainNonce, err := b.Client.PendingNonceAt(ctx, from)
	if err != nil {
		return Transfer{}, unavailable(err)
	}
	chainID := new(big.Int).SetUint64(b.Network.ChainID)
	now := s.now().UTC().Truncate(time.Millisecond)
	t.ID, t.CreatedAt = ids.NewAt("xfr", now), now
	sign := func(nonce uint64) ([]byte, string, error) {
		return s.signEVM(ctx, w.Key, chainID, types.NewTx(&types.DynamicFeeTx{ChainID: chainID, Nonce: nonce,
			GasTipCap: tipCap, GasFeeCap: feeCap, Gas: gas, To: &txTo, Value: value, Data: data}))
	}
	out, err := s.transfers.CreateTransfer(ctx, t, from.Hex(), chainNonce, sign)
	if err != nil {
		if errs.Is(err, errs.Conflict) && r.ExternalID != "" { // a concurrent request with the same externalId won
			if prev, gerr := s.transfers.GetTransferByExternalID(ctx, p.OrgID, r.ExternalID); gerr == nil {
				return replayTransfer(prev, w.ID, body)
			}
		}
		return Transfer{}, err
	}
	return out, nil
}

func (s *Service) tokenBalance(ctx context.Context, b *registry.Backend, token, owner common.Address) (*big.Int, error) {
	data := append([]byte{0x70, 0xa0, 0x82, 0x31}, common.LeftPadBytes(owner.Bytes(), 32)...) // balanceOf(address)
	res, err := b.Client.CallContract(ctx, ethereum.CallMsg{To: &token, Data: data}, nil)
	if err != nil {
		return nil, errs.E(errs.Unavailable, "could not read the token balance", err)
	}
	if len(res) != 32 {
		return nil, errs.E(errs.Invalid, "contract is not an ERC-20 token", nil)
	}
	return new(big.Int).SetBytes(res), nil
}

// replayTransfer answers a retried request (same externalId) with the original, or 409 when
// the retry is not the same request (dfns-api.md §6.4).
func replayTransfer(prev Transfer, walletID string, body []byte) (Transfer, error) {
	if err := sameRequest("transfer", prev.ID, prev.ExternalID, prev.WalletID, prev.RequestBody, walletID, body); err != nil {
		return Transfer{}, err
	}
	return prev, nil
}

// GetTransfer returns a transfer of a wallet of the caller's organization.
func (s *Service) GetTransfer(ctx context.Context, p auth.Principal, walletID, id string) (Transfer, error) {
	return walletItem(ctx, s, p, walletID, "transfer", s.transfers != nil,
		func() (Transfer, error) { return s.transfers.GetTransfer(ctx, p.OrgID, id) },
		func(t Transfer) string { return t.WalletID })
}

// ListTransfers returns a page of a wallet's transfers, newest first.
func (s *Service) ListTransfers(ctx context.Context, p auth.Principal, walletID string, page keys.Page) ([]Transfer, string, error) {
	return walletItems(ctx, s, p, walletID, page, s.transfers != nil,
		func(pg keys.Page) ([]Transfer, error) { return s.transfers.ListTransfers(ctx, p.OrgID, walletID, pg) },
		func(t Transfer) string { return t.ID })
}

// ErrPending is returned by Advance while a broadcast transaction has no receipt yet.
var ErrPending = errors.New("wallets: transaction not yet mined")

// Advance moves a transfer on: it broadcasts the stored signed transaction, then records
// its receipt. It is idempotent: it only ever resends the same bytes. It returns ErrPending
// while the transaction waits to be mined (the caller checks again later). See advance for
// what happens when the network refuses the transaction for good.
func (s *Service) Advance(ctx context.Context, id string) error {
	t, err := s.transfers.LoadTransfer(ctx, id)
	if err != nil {
		return err
	}
	o := outgoing{ID: t.ID, OrgID: t.OrgID, WalletID: t.WalletID, Network: t.Network, Status: t.Status, Reason: t.Reason,
		Fee: t.Fee, Nonce: t.Nonce, RawTx: t.RawTx, TxHash: t.TxHash, BroadcastedAt: t.BroadcastedAt, ConfirmedAt: t.ConfirmedAt}
	return s.advance(ctx, &o, func() error {
		t.Status, t.Reason, t.Fee, t.BroadcastedAt, t.ConfirmedAt = o.Status, o.Reason, o.Fee, o.BroadcastedAt, o.ConfirmedAt
		return s.transfers.UpdateTransferStatus(ctx, t)
	})
}

// alreadySent reports whether a send error means our very transaction is known to the node.
func alreadySent(ctx context.Context, b *registry.Backend, hash common.Hash, err error) bool {
	msg := strings.ToLower(err.Error())
	if strings.Contains(msg, "already known") || strings.Contains(msg, "already imported") {
		return true
	}
	if strings.Contains(msg, "nonce too low") {
		_, _, gerr := b.Client.TransactionByHash(ctx, hash)
		return gerr == nil
	}
	return false
}

// permanent reports send errors that retrying the same bytes cannot fix.
func permanent(err error) bool {
	msg := strings.ToLower(err.Error())
	if strings.Contains(msg, "replacement transaction underpriced") {
		return false // another transaction holds the nonce in the pool: wait for it to be mined or dropped
	}
	for _, s := range []string{"nonce too low", "insufficient funds", "intrinsic gas too low", "exceeds block gas limit",
		"invalid sender", "overdraft", "underpriced", "below minimum", "higher than max fee", "tip above fee cap",
		"gas limit too low", "oversized data"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

func clip(s string) string {
	if len(s) > 200 {
		return s[:200]
	}
	return s
}

// tokenMetadata reads an ERC-20's symbol() and decimals(), best effort: both are optional
// in EIP-20, so a token without them is reported with an empty symbol and 0 decimals.
func tokenMetadata(ctx context.Context, b *registry.Backend, token common.Address) (symbol string, decimals int) {
	if b.Dev != nil {
		if tok, sym, dec := b.Dev.Token(); tok == token {
			return sym, int(dec)
		}
	}
	call := func(selector []byte) []byte {
		res, err := b.Client.CallContract(ctx, ethereum.CallMsg{To: &token, Data: selector}, nil)
		if err != nil {
			return nil
		}
		return res
	}
	if res := call([]byte{0x31, 0x3c, 0xe5, 0x67}); len(res) == 32 { // decimals()
		if d := new(big.Int).SetBytes(res); d.IsInt64() && d.Int64() <= 255 {
			decimals = int(d.Int64())
		}
	}
	if res := call([]byte{0x95, 0xd8, 0x9b, 0x41}); len(res) >= 96 { // symbol() as an ABI string
		off, n := new(big.Int).SetBytes(res[:32]), new(big.Int).SetBytes(res[32:64])
		if off.Cmp(big.NewInt(32)) == 0 && n.IsInt64() && n.Int64() <= 32 && 64+n.Int64() <= int64(len(res)) {
			if sym := string(res[64 : 64+n.Int64()]); utf8.ValidString(sym) {
				symbol = sym
			}
		}
	}
	return symbol, decimals
}
