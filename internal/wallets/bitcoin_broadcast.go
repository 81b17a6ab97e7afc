package wallets

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/countersign/countersign/internal/auth"
	"github.com/countersign/countersign/internal/chains/bitcoin"
	"github.com/countersign/countersign/internal/errs"
	"github.com/countersign/countersign/internal/ids"
	"github.com/countersign/countersign/internal/keys"
)

// BitcoinTxStore stores a signed Bitcoin transaction and queues its broadcast in one
// database transaction (the outbox rule of EVM transactions): the job only ever sends the
// stored bytes.
type BitcoinTxStore interface {
	CreateBitcoinTransaction(ctx context.Context, t Transaction) (Transaction, error)
}

// bitcoinBroadcast is what Psbt broadcasts need: a node per network and the store.
type bitcoinBroadcast struct {
	nodes map[string]*bitcoin.RPC
	store BitcoinTxStore
}

// SetBitcoin attaches the configured Bitcoin nodes (network → JSON-RPC client) and the
// store of Bitcoin broadcasts. Networks without a node keep refusing broadcasts.
func (s *Service) SetBitcoin(nodes map[string]*bitcoin.RPC, st BitcoinTxStore) {
	s.btc = bitcoinBroadcast{nodes: nodes, store: st}
}

// broadcastPsbt is POST /wallets/{walletId}/transactions kind Psbt (dfns-api.md §4.4.3):
// the wallet's inputs of the PSBT are signed as for a Psbt signature, the PSBT is
// finalized and extracted, and the transaction is stored and queued for the wallet's
// network's node, which mines it. Nothing is stored when anything before that fails.
func (s *Service) broadcastPsbt(ctx context.Context, p auth.Principal, walletID string, body []byte, r BroadcastRequest) (Transaction, error) {
	for _, f := range []struct {
		name    string
		present bool
	}{{"transaction", r.Transaction != nil}, {"to", r.To != nil}, {"value", r.Value != nil}, {"data", r.Data != nil},
		{"nonce", len(r.Nonce) > 0 && string(r.Nonce) != "null"}, {"gasLimit", r.GasLimit != nil},
		{"maxFeePerGas", r.MaxFeePerGas != nil}, {"maxPriorityFeePerGas", r.MaxPriorityFeePerGas != nil}, {"gasPrice", r.GasPrice != nil}} {
		if f.present {
			return Transaction{}, errs.Ef(errs.Invalid, "%s is not a field of Psbt broadcasts", f.name)
		}
	}
	if r.Psbt == nil || *r.Psbt == "" {
		return Transaction{}, errs.E(errs.Invalid, "psbt is required", nil)
	}
	w, err := s.Writable(ctx, p, walletID) // the delegation rule: only a delegated wallet's end user signs
	if err != nil {
		return Transaction{}, err
	}
	if _, ok := bitcoin.Lookup(w.Network); !ok {
		return Transaction{}, errs.Ef(errs.Invalid, "broadcast kind Psbt is not supported on %s", w.Network)
	}
	node := s.btc.nodes[w.Network]
	if node == nil || s.btc.store == nil || s.txs == nil {
		return Transaction{}, errs.Ef(errs.Invalid, "no Bitcoin node configured for %s (--bitcoin-rpc): PSBTs can be signed (POST /wallets/{walletId}/signatures, kind Psbt) but not broadcast", w.Network)
	}
	if prev, replay, err := s.replayOrSignable(ctx, p, w, r.ExternalID, body); replay || err != nil {
		return prev, err
	}
	payload, err := bitcoin.PsbtPayload(*r.Psbt, w.Key.PublicKey)
	if err != nil {
		return Transaction{}, err
	}
	sigs := make([]bitcoin.Sig, 0, len(payload.Digests))
	for _, d := range payload.Digests {
		sig, err := s.keys.SignHash(ctx, w.Key, d)
		if err != nil {
			return Transaction{}, err
		}
		sigs = append(sigs, bitcoin.Sig{R: sig.R, S: sig.S, RecID: sig.RecID})
	}
	signed, err := payload.Finish(sigs)
	if err != nil {
		return Transaction{}, err
	}
	final, err := bitcoin.Finalize(signed.SignedData)
	if err != nil {
		return Transaction{}, err
	}
	now := s.now().UTC().Truncate(time.Millisecond)
	t := Transaction{ID: ids.NewAt("tx", now), OrgID: p.OrgID, WalletID: w.ID, Network: w.Network, RequesterUserID: p.UserID,
		RequesterTokenID: p.TokenID, RequestBody: json.RawMessage(bytes.Clone(body)), Status: Pending, RawTx: final.Raw,
		TxHash: final.TxID, ExternalID: r.ExternalID, CreatedAt: now}
	out, err := s.btc.store.CreateBitcoinTransaction(ctx, t)
	return s.createdOrReplay(ctx, p, w.ID, r.ExternalID, body, out, err)
}

// createdOrReplay finishes the creation of a broadcast request: when a concurrent request
// with the same externalId stored first (Conflict), its original answers this one.
func (s *Service) createdOrReplay(ctx context.Context, p auth.Principal, walletID, externalID string, body []byte, out Transaction, err error) (Transaction, error) {
	if err == nil {
		return out, nil
	}
	if errs.Is(err, errs.Conflict) && externalID != "" {
		if prev, gerr := s.txs.GetTransactionByExternalID(ctx, p.OrgID, externalID); gerr == nil {
			return replayTransaction(prev, walletID, body)
		}
	}
	return Transaction{}, err
}

// replayOrSignable answers a retried broadcast (same externalId) with its original
// (replay), or else checks that the wallet and its key may sign a new one.
func (s *Service) replayOrSignable(ctx context.Context, p auth.Principal, w Wallet, externalID string, body []byte) (Transaction, bool, error) {
	if externalID != "" {
		prev, err := s.txs.GetTransactionByExternalID(ctx, p.OrgID, externalID)
		if err == nil {
			prev, err = replayTransaction(prev, w.ID, body)
			return prev, true, err
		}
		if !errs.Is(err, errs.NotFound) {
			return Transaction{}, false, err
		}
	}
	if w.Status != Active {
		return Transaction{}, false, errs.E(errs.Invalid, "wallet is not active", nil)
	}
	if w.Key.Status != keys.Active {
		return Transaction{}, false, errs.E(errs.Invalid, "the wallet's key is archived", nil)
	}
	return Transaction{}, false, nil
}

// AdvanceBitcoinTransaction moves a Psbt broadcast on: it sends the stored transaction to
// the network's node (a transaction the node already has counts as sent), then asks the
// node about it until it is in a block (Confirmed, with the fee the PSBT pays). A send the
// node refuses for good (missing or spent inputs, policy) ends it Failed with the node's
// reason. A transaction the node forgot (a restart empties its mempool) is sent again.
// It returns ErrPending while the transaction waits to be mined.
func (s *Service) AdvanceBitcoinTransaction(ctx context.Context, id string) error {
	t, err := s.txs.LoadTransaction(ctx, id)
	if err != nil {
		return err
	}
	if t.Status == Confirmed || t.Status == Failed {
		return nil
	}
	node := s.btc.nodes[t.Network]
	if node == nil {
		return fmt.Errorf("wallets: no Bitcoin node configured for %s any more; transaction %s waits", t.Network, t.ID)
	}
	now := func() time.Time { return s.now().UTC().Truncate(time.Millisecond) }
	refused := func(err error) error {
		t.Status, t.Reason = Failed, "the network refused the transaction: "+clip(err.Error())
		return s.txs.UpdateTransactionStatus(ctx, t)
	}
	// send hands the stored bytes to the node: nil when it took them or already has the
	// transaction, a *refusedError when it refuses them for good.
	send := func() error {
		err := node.SendRawTransaction(ctx, t.RawTx)
		if err == nil || !bitcoin.Refused(err) {
			return err
		}
		if _, gerr := node.GetTransaction(ctx, t.TxHash); gerr == nil { // it has it after all
			return nil
		}
		return &refusedError{err}
	}
	var re *refusedError
	if t.Status == Pending {
		if err := send(); errors.As(err, &re) {
			return refused(re.err)
		} else if err != nil {
			return err
		}
		t.Status, t.BroadcastedAt = Broadcasted, now()
		if err := s.txs.UpdateTransactionStatus(ctx, t); err != nil {
			return err
		}
	}
	st, err := node.GetTransaction(ctx, t.TxHash)
	if errors.Is(err, bitcoin.ErrTxUnknown) { // dropped from the mempool, or replaced by a conflicting spend
		if err := send(); errors.As(err, &re) {
			return refused(re.err)
		} else if err != nil {
			return err
		}
		return ErrPending
	}
	if err != nil {
		return err
	}
	if st.Confirmations < 1 {
		return ErrPending
	}
	fee, err := psbtFee(t.RequestBody)
	if err != nil {
		return err
	}
	t.Status, t.Fee, t.ConfirmedAt = Confirmed, strconv.FormatInt(fee, 10), now()
	return s.txs.UpdateTransactionStatus(ctx, t)
}

// psbtFee is the fee of a stored Psbt broadcast: inputs − outputs of its PSBT, which
// Finalize checked before the transaction was stored.
func psbtFee(body json.RawMessage) (int64, error) {
	var r struct {
		Psbt string `json:"psbt"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return 0, err
	}
	return bitcoin.PsbtFee(r.Psbt)
}
