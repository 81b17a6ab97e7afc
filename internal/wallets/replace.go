package wallets

// Speed-up and cancel of EVM transfers and broadcast requests.
//
// The API (dfns-api.md §4.4; the Dfns Go SDK's WalletsClient.SpeedUpTransfer, CancelTransfer,
// SpeedUpTransaction, CancelTransaction; @dfns/sdk 0.8.21 speedUpTransfer, cancelTransfer,
// speedUpTransaction, cancelTransaction): POST /wallets/{walletId}/transfers/{transferId}/speed-up
// or …/cancel, and the same under /transactions/{transactionId}/, with an empty body ({}),
// behind a user action. Both SDKs type the answer as a TransactionRequest (no asset metadata,
// even for a transfer): the replacement, a broadcast request of its own (id tx-…) whose
// requestBody is {kind: "SpeedUpTransaction" | "CancelTransaction", txHash, signedTx}. The
// replaced request keeps its id and status and gains replacementId (the SDK: "the id of the
// replacement transaction (cancel or speed-up) issued for this transfer"). Dfns has no
// Cancelled status (Pending, Executing, Broadcasted, Confirmed, Failed, Rejected), so a
// cancelled request ends Failed with a reason saying so.
//
// What we do (EVM only):
//   - Only a request that is Broadcasted (sent, not mined) can be replaced; one not yet
//     sent, or already Confirmed or Failed, or on another network family is refused (400)
//     and nothing changes. A speed-up or cancel is itself not replaced: its original is.
//   - A speed-up is the same transaction (same nonce, recipient, value, data, gas) with
//     higher fees; a cancel is a 0-value self-transfer (21000 gas) with the same nonce and
//     higher fees. Fees rise over the newest competitor for the nonce (the original or its
//     newest replacement) by at least a tenth plus 1 wei on the tip and on the fee cap
//     (geth refuses a replacement below +10 % on either), and to at least the Fast fee
//     (3 gwei tip, twice the base fee plus the tip as cap). So every speed-up bumps again.
//   - The replacement is signed by custody like any transaction, and stored with the
//     replaced request's replacementId and its own broadcast job in one database
//     transaction (the outbox rule). A replacement is refused (409) when the replaced
//     request changed meanwhile, so two concurrent replacements never bump the same fees.
//   - Every job of the nonce (the original's and each replacement's) follows all their
//     hashes; the first receipt found decides, for all of them at once (settle): original
//     mined → it is Confirmed as usual, replacements Failed; speed-up mined → it and the
//     original are Confirmed with its hash and fee; cancel mined → the cancel is Confirmed
//     (it paid the fee) and the original Failed ("cancelled …"). Each status change emits its
//     wallet.transfer.* or wallet.transaction.* event in the same database transaction.

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

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

// Kinds of replacement requests (their requestBody.kind, as the SDK types them).
const (
	SpeedUpKind = "SpeedUpTransaction"
	CancelKind  = "CancelTransaction"
)

// Settled is the final state of one request whose nonce was decided (see SettleReplaced).
type Settled struct {
	ID            string
	Status        string
	Reason        string
	Fee           string
	TxHash        string    // "" keeps the stored hash
	BroadcastedAt time.Time // zero keeps the stored date
	ConfirmedAt   time.Time
}

// ReplaceStore persists speed-ups and cancels.
type ReplaceStore interface {
	// CreateReplacement stores r (a broadcast request with Replaces set), sets the replaced
	// request's replacementId to r.ID and queues r's broadcast, in one transaction; Conflict
	// unless the replaced request is still Broadcasted with newest replacement prev.
	CreateReplacement(ctx context.Context, r Transaction, prev string) error
	// Replacements lists the replacements of a request, oldest first.
	Replacements(ctx context.Context, id string) ([]Transaction, error)
	// SettleReplaced records the outcome of a nonce for every request in ss that is not
	// final yet, in one transaction, with their status events.
	SettleReplaced(ctx context.Context, ss []Settled) error
}

// SetReplacements attaches the store of speed-ups and cancels.
func (s *Service) SetReplacements(rs ReplaceStore) { s.repl = rs }

// replacementBody is the requestBody of a replacement: the hash of the replaced request's
// transaction and the signed replacement.
type replacementBody struct {
	Kind     string `json:"kind"`
	TxHash   string `json:"txHash"`
	SignedTx string `json:"signedTx"`
}

// SpeedUpTransfer replaces a broadcast transfer's transaction by the same one with higher fees.
func (s *Service) SpeedUpTransfer(ctx context.Context, p auth.Principal, walletID, id string) (Transaction, error) {
	return s.replace(ctx, p, walletID, id, "transfer", SpeedUpKind)
}

// CancelTransfer replaces a broadcast transfer's transaction by a 0-value self-transfer.
func (s *Service) CancelTransfer(ctx context.Context, p auth.Principal, walletID, id string) (Transaction, error) {
	return s.replace(ctx, p, walletID, id, "transfer", CancelKind)
}

// SpeedUpTransaction replaces a broadcast request's transaction by the same one with higher fees.
func (s *Service) SpeedUpTransaction(ctx context.Context, p auth.Principal, walletID, id string) (Transaction, error) {
	return s.replace(ctx, p, walletID, id, "transaction", SpeedUpKind)
}

// CancelTransaction replaces a broadcast request's transaction by a 0-value self-transfer.
func (s *Service) CancelTransaction(ctx context.Context, p auth.Principal, walletID, id string) (Transaction, error) {
	return s.replace(ctx, p, walletID, id, "transaction", CancelKind)
}

// replaced is what replacing needs of a transfer or a transaction.
type replacedReq struct {
	ID, Status, TxHash, ReplacementID string
	Nonce                             uint64
	RawTx                             []byte
}

// replace builds, signs and stores a speed-up or cancel (kind) of the transfer or
// transaction (what) id of wallet walletID.
func (s *Service) replace(ctx context.Context, p auth.Principal, walletID, id, what, kind string) (Transaction, error) {
	w, err := s.Writable(ctx, p, walletID) // the delegation rule, as for every wallet write
	if err != nil {
		return Transaction{}, err
	}
	if _, ok := evm.Lookup(w.Network); !ok || !keys.IsEVM(w.Network) {
		return Transaction{}, errs.Ef(errs.Invalid, "speed-up and cancel exist only on EVM networks, not on %s", w.Network)
	}
	if s.repl == nil || s.chains == nil {
		return Transaction{}, errs.E(errs.Unavailable, "no chain backends are configured", nil)
	}
	var r replacedReq
	if what == "transfer" {
		t, err := s.GetTransfer(ctx, p, walletID, id)
		if err != nil {
			return Transaction{}, err
		}
		r = replacedReq{ID: t.ID, Status: t.Status, TxHash: t.TxHash, ReplacementID: t.ReplacementID, Nonce: t.Nonce, RawTx: t.RawTx}
	} else {
		t, err := s.GetTransaction(ctx, p, walletID, id)
		if err != nil {
			return Transaction{}, err
		}
		if t.Replaces != "" {
			return Transaction{}, errs.Ef(errs.Invalid, "transaction %s is itself a replacement of %s: speed up or cancel %s instead",
				t.ID, t.Replaces, t.Replaces)
		}
		r = replacedReq{ID: t.ID, Status: t.Status, TxHash: t.TxHash, ReplacementID: t.ReplacementID, Nonce: t.Nonce, RawTx: t.RawTx}
	}
	switch r.Status {
	case Broadcasted:
	case Executing, Pending:
		return Transaction{}, errs.Ef(errs.Invalid, "%s %s is not broadcast yet (status %s): there is nothing to replace", what, r.ID, r.Status)
	default:
		return Transaction{}, errs.Ef(errs.Invalid, "%s %s is already %s: only a broadcast transaction that is not mined can be replaced",
			what, r.ID, r.Status)
	}
	if w.Status != Active {
		return Transaction{}, errs.E(errs.Invalid, "wallet is not active", nil)
	}
	if w.Key.Status != keys.Active {
		return Transaction{}, errs.E(errs.Invalid, "the wallet's key is archived", nil)
	}
	var orig types.Transaction
	if err := orig.UnmarshalBinary(r.RawTx); err != nil {
		return Transaction{}, errs.E(errs.Internal, "could not decode the stored transaction", err)
	}
	// The fees to beat are those of the newest competitor for the nonce.
	basis := &orig
	if r.ReplacementID != "" {
		prev, err := s.txs.LoadTransaction(ctx, r.ReplacementID)
		if err != nil {
			return Transaction{}, err
		}
		var pb replacementBody
		if json.Unmarshal(prev.RequestBody, &pb) == nil && pb.Kind == CancelKind && kind == SpeedUpKind && prev.Status != Failed {
			return Transaction{}, errs.Ef(errs.Invalid, "%s %s is being cancelled (%s): it cannot be sped up", what, r.ID, prev.ID)
		}
		var ptx types.Transaction
		if err := ptx.UnmarshalBinary(prev.RawTx); err != nil {
			return Transaction{}, errs.E(errs.Internal, "could not decode the stored replacement", err)
		}
		basis = &ptx
	}
	b, err := s.chains.Get(ctx, w.Network)
	if err != nil {
		return Transaction{}, err
	}
	unavailable := func(err error) error { return errs.E(errs.Unavailable, "could not read from the network", err) }
	head, err := b.Client.HeaderByNumber(ctx, nil)
	if err != nil {
		return Transaction{}, unavailable(err)
	}
	from := common.HexToAddress(w.Address)
	chainID := new(big.Int).SetUint64(b.Network.ChainID)
	tx, err := replacementTx(&orig, basis, head.BaseFee, chainID, from, kind == CancelKind)
	if err != nil {
		return Transaction{}, err
	}
	bal, err := b.Client.BalanceAt(ctx, from, nil)
	if err != nil {
		return Transaction{}, unavailable(err)
	}
	if bal.Cmp(tx.Cost()) < 0 {
		return Transaction{}, errs.WithDetails(errs.E(errs.Invalid, "insufficient funds for the replacement's fees", nil),
			map[string]any{"required": tx.Cost().String(), "balance": bal.String()})
	}
	raw, hash, err := s.signEVM(ctx, w.Key, chainID, tx)
	if err != nil {
		return Transaction{}, err
	}
	body, err := json.Marshal(replacementBody{Kind: kind, TxHash: r.TxHash, SignedTx: "0x" + hex.EncodeToString(raw)})
	if err != nil {
		return Transaction{}, err
	}
	now := s.now().UTC().Truncate(time.Millisecond)
	out := Transaction{ID: ids.NewAt("tx", now), OrgID: w.OrgID, WalletID: w.ID, Network: w.Network, RequesterUserID: p.UserID,
		RequesterTokenID: p.TokenID, RequestBody: body, Status: Pending, Nonce: r.Nonce, RawTx: raw, TxHash: hash,
		CreatedAt: now, Replaces: r.ID}
	if err := s.repl.CreateReplacement(ctx, out, r.ReplacementID); err != nil {
		return Transaction{}, err
	}
	return out, nil
}

// fastTip is the priority fee of the Fast priority.
var fastTip = tipOf(Fast)

// bump is x raised by a tenth (rounded up), and by at least 1: geth's pool takes a
// replacement only if both its tip and its fee cap are above the old ones by 10 % or more.
func bump(x *big.Int) *big.Int {
	tenth := new(big.Int).Div(new(big.Int).Add(x, big.NewInt(9)), big.NewInt(10))
	if tenth.Sign() == 0 {
		tenth.SetInt64(1)
	}
	return tenth.Add(tenth, x)
}

func maxBig(a, b *big.Int) *big.Int {
	if a.Cmp(b) >= 0 {
		return new(big.Int).Set(a)
	}
	return new(big.Int).Set(b)
}

// replacementTx is the unsigned speed-up (cancel=false) or cancel of orig, priced over basis
// (the newest transaction holding the nonce: orig or its newest replacement) and the
// current Fast fee. Legacy and access-list transactions are replaced by legacy ones
// (gas price only), dynamic-fee ones by dynamic-fee ones.
func replacementTx(orig, basis *types.Transaction, baseFee, chainID *big.Int, self common.Address, cancel bool) (*types.Transaction, error) {
	if baseFee == nil {
		baseFee = new(big.Int)
	}
	to, value, data, gas, access := orig.To(), orig.Value(), orig.Data(), orig.Gas(), orig.AccessList()
	if cancel {
		to, value, data, gas, access = &self, new(big.Int), nil, 21000, nil
	}
	fastCap := capOver(baseFee, fastTip)
	switch orig.Type() {
	case types.LegacyTxType, types.AccessListTxType:
		price := maxBig(bump(basis.GasFeeCap()), fastCap) // a legacy price is both its tip and its cap
		if orig.Type() == types.AccessListTxType && !cancel {
			return types.NewTx(&types.AccessListTx{ChainID: chainID, Nonce: orig.Nonce(), GasPrice: price, Gas: gas, To: to,
				Value: value, Data: data, AccessList: access}), nil
		}
		return types.NewTx(&types.LegacyTx{Nonce: orig.Nonce(), GasPrice: price, Gas: gas, To: to, Value: value, Data: data}), nil
	case types.DynamicFeeTxType:
		tip := maxBig(bump(basis.GasTipCap()), fastTip)
		feeCap := maxBig(bump(basis.GasFeeCap()), capOver(baseFee, tip))
		return types.NewTx(&types.DynamicFeeTx{ChainID: chainID, Nonce: orig.Nonce(), GasTipCap: tip, GasFeeCap: feeCap, Gas: gas,
			To: to, Value: value, Data: data, AccessList: access}), nil
	default:
		return nil, errs.Ef(errs.Invalid, "transactions of type %d cannot be sped up or cancelled", orig.Type())
	}
}

// replaced is advance's hook before it reads a receipt: when o has speed-ups or cancels,
// settle decides o's nonce for all of them (done is true); otherwise advance goes on.
func (s *Service) replaced(ctx context.Context, b *registry.Backend, o *outgoing) (done bool, err error) {
	if s.repl == nil {
		return false, nil
	}
	reps, err := s.repl.Replacements(ctx, o.ID)
	if err != nil || len(reps) == 0 {
		return err != nil, err
	}
	return true, s.settle(ctx, b, replacedReq{ID: o.ID, TxHash: o.TxHash, Nonce: o.Nonce, RawTx: o.RawTx}, reps)
}

// advanceReplacement is the broadcast job of a speed-up or cancel: it sends the stored
// bytes once, then settles the nonce with the replaced request and its other replacements.
func (s *Service) advanceReplacement(ctx context.Context, t Transaction) error {
	if t.Status == Confirmed || t.Status == Failed || s.repl == nil {
		return nil
	}
	b, tx, err := s.stored(ctx, t.Network, t.RawTx)
	if err != nil {
		return err
	}
	if t.Status == Pending {
		err := b.Client.SendTransaction(ctx, tx)
		switch {
		case err == nil || alreadySent(ctx, b, tx.Hash(), err):
			t.Status, t.BroadcastedAt = Broadcasted, s.now().UTC().Truncate(time.Millisecond)
			if err := s.txs.UpdateTransactionStatus(ctx, t); err != nil {
				return err
			}
		case nonceTooLow(err): // the nonce is mined: settle finds by which transaction
		case permanent(err) || strings.Contains(strings.ToLower(err.Error()), "underpriced"):
			// A newer replacement (sent first) or a foreign transaction holds the nonce with
			// higher fees, or the wallet cannot pay: this replacement will never be mined.
			t.Status, t.Reason = Failed, "the network refused the replacement: "+clip(err.Error())
			t.ConfirmedAt = s.now().UTC().Truncate(time.Millisecond)
			return s.txs.UpdateTransactionStatus(ctx, t)
		default:
			return err
		}
	}
	r, err := s.loadReplaced(ctx, t.Replaces)
	if err != nil {
		return err
	}
	reps, err := s.repl.Replacements(ctx, r.ID)
	if err != nil {
		return err
	}
	return s.settle(ctx, b, r, reps)
}

// loadReplaced reads the transfer or transaction a replacement replaces.
func (s *Service) loadReplaced(ctx context.Context, id string) (replacedReq, error) {
	if strings.HasPrefix(id, "xfr-") {
		t, err := s.transfers.LoadTransfer(ctx, id)
		return replacedReq{ID: t.ID, Status: t.Status, TxHash: t.TxHash, ReplacementID: t.ReplacementID, Nonce: t.Nonce, RawTx: t.RawTx}, err
	}
	t, err := s.txs.LoadTransaction(ctx, id)
	return replacedReq{ID: t.ID, Status: t.Status, TxHash: t.TxHash, ReplacementID: t.ReplacementID, Nonce: t.Nonce, RawTx: t.RawTx}, err
}

// competitor is one transaction competing for a nonce.
type competitor struct {
	id, kind, hash string // kind "" for the replaced request itself
	raw            []byte
	refused        bool // a replacement the network refused: never to be sent again
}

// settle decides the nonce that r and its replacements reps compete for: it returns
// ErrPending while none of their transactions is mined, and otherwise records the outcome
// of all of them at once (see the package comment of this file).
func (s *Service) settle(ctx context.Context, b *registry.Backend, r replacedReq, reps []Transaction) error {
	cs := []competitor{{id: r.ID, hash: r.TxHash, raw: r.RawTx}}
	for _, t := range reps {
		var body replacementBody
		_ = json.Unmarshal(t.RequestBody, &body)
		cs = append(cs, competitor{id: t.ID, kind: body.Kind, hash: t.TxHash, raw: t.RawTx, refused: t.Status == Failed})
	}
	winner, rc, err := s.minedCompetitor(ctx, b, cs)
	if err != nil {
		return err
	}
	now := s.now().UTC().Truncate(time.Millisecond)
	ss := make([]Settled, 0, len(cs))
	if winner == nil {
		// The nonce is used, but by none of ours (signed elsewhere with the same key).
		for _, c := range cs {
			ss = append(ss, Settled{ID: c.id, Status: Failed, Reason: fmt.Sprintf("another transaction took nonce %d", r.Nonce), ConfirmedAt: now})
		}
		return s.repl.SettleReplaced(ctx, ss)
	}
	price := rc.EffectiveGasPrice
	if price == nil {
		price = new(big.Int)
	}
	fee := new(big.Int).Mul(new(big.Int).SetUint64(rc.GasUsed), price).String()
	status, reason := Confirmed, ""
	if rc.Status != types.ReceiptStatusSuccessful {
		status, reason = Failed, "transaction reverted"
	}
	for _, c := range cs {
		switch {
		case c.id == winner.id:
			ss = append(ss, Settled{ID: c.id, Status: status, Reason: reason, Fee: fee, BroadcastedAt: now, ConfirmedAt: now})
		case c.kind == "" && winner.kind == SpeedUpKind: // the original, sped up: it is done, by the faster transaction
			ss = append(ss, Settled{ID: c.id, Status: status, Reason: reason, Fee: fee, TxHash: winner.hash, ConfirmedAt: now})
		case c.kind == "" && winner.kind == CancelKind:
			ss = append(ss, Settled{ID: c.id, Status: Failed, ConfirmedAt: now, Reason: fmt.Sprintf(
				"cancelled: the 0-value self-transfer %s (%s) took nonce %d", winner.id, winner.hash, r.Nonce)})
		case winner.kind == "":
			ss = append(ss, Settled{ID: c.id, Status: Failed, ConfirmedAt: now, Reason: fmt.Sprintf(
				"not mined: the replaced transaction %s was mined first", winner.hash)})
		default:
			ss = append(ss, Settled{ID: c.id, Status: Failed, ConfirmedAt: now, Reason: fmt.Sprintf(
				"not mined: replacement %s (%s) took nonce %d", winner.id, winner.hash, r.Nonce)})
		}
	}
	return s.repl.SettleReplaced(ctx, ss)
}

// minedCompetitor returns the competitor whose transaction is mined, with its receipt;
// (nil, nil, nil) when the nonce is used by another transaction; ErrPending while the
// nonce is not used. When the node knows none of the competitors (a restarted node loses
// its pool), the newest one the network did not refuse is sent again.
func (s *Service) minedCompetitor(ctx context.Context, b *registry.Backend, cs []competitor) (*competitor, *types.Receipt, error) {
	find := func() (*competitor, *types.Receipt, error) {
		for i := range cs {
			rc, err := b.Client.TransactionReceipt(ctx, common.HexToHash(cs[i].hash))
			if err == nil {
				return &cs[i], rc, nil
			}
			if !errors.Is(err, ethereum.NotFound) {
				return nil, nil, err
			}
		}
		return nil, nil, nil
	}
	if c, rc, err := find(); c != nil || err != nil {
		return c, rc, err
	}
	last := len(cs) - 1
	for last > 0 && cs[last].refused {
		last--
	}
	var newest types.Transaction
	if err := newest.UnmarshalBinary(cs[last].raw); err != nil {
		return nil, nil, err
	}
	from, err := types.Sender(types.LatestSignerForChainID(newest.ChainId()), &newest)
	if err != nil {
		return nil, nil, err
	}
	mined, err := b.Client.NonceAt(ctx, from, nil)
	if err != nil {
		return nil, nil, err
	}
	if mined > newest.Nonce() {
		return find() // mined between the reads, or taken by another transaction (nil)
	}
	for i := range cs {
		if _, _, err := b.Client.TransactionByHash(ctx, common.HexToHash(cs[i].hash)); !errors.Is(err, ethereum.NotFound) {
			return nil, nil, ErrPending // known to the node (or it could not say): wait
		}
	}
	if err := b.Client.SendTransaction(ctx, &newest); err != nil && !alreadySent(ctx, b, newest.Hash(), err) {
		return nil, nil, fmt.Errorf("resending %s: %v: %w", newest.Hash().Hex(), err, ErrPending)
	}
	return nil, nil, ErrPending
}
