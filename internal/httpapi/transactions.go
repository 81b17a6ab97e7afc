package httpapi

import (
	"encoding/json"
	"net/http"

	"github.com/countersign/countersign/internal/wallets"
)

// transactionJSON is a TransactionRequest: a TransferRequest without metadata
// (dfns-api.md §4.4.1; the SDK's BroadcastTransactionResponse).
type transactionJSON struct {
	ID              string          `json:"id"`
	WalletID        string          `json:"walletId"`
	Network         string          `json:"network"`
	Requester       requesterJSON   `json:"requester"`
	RequestBody     json.RawMessage `json:"requestBody"`
	Status          string          `json:"status"`
	Reason          string          `json:"reason,omitempty"`
	TxHash          string          `json:"txHash,omitempty"`
	Fee             string          `json:"fee,omitempty"`
	DateRequested   string          `json:"dateRequested"`
	DateBroadcasted string          `json:"dateBroadcasted,omitempty"`
	DateConfirmed   string          `json:"dateConfirmed,omitempty"`
	ExternalID      string          `json:"externalId,omitempty"`
	ReplacementID   string          `json:"replacementId,omitempty"`
}

func toTransaction(t wallets.Transaction) transactionJSON {
	out := transactionJSON{ID: t.ID, WalletID: t.WalletID, Network: t.Network,
		Requester:   requesterJSON{UserID: t.RequesterUserID, TokenID: t.RequesterTokenID},
		RequestBody: t.RequestBody, Status: t.Status, Reason: t.Reason, Fee: t.Fee, ExternalID: t.ExternalID,
		DateRequested:   jsTime(t.CreatedAt),
		DateBroadcasted: optTime(t.BroadcastedAt),
		DateConfirmed:   optTime(t.ConfirmedAt), ReplacementID: t.ReplacementID}
	// As for transfers: the hash is known from signing, but reported once the transaction is on its way.
	if t.Status != wallets.Pending {
		out.TxHash = t.TxHash
	}
	return out
}

func (s *Server) createTransaction(r *http.Request, c *call) (any, error) {
	if err := signBody(c.body); err != nil {
		return nil, err
	}
	t, err := s.Wallets.Broadcast(r.Context(), c.p, r.PathValue("id"), c.body)
	if err != nil {
		return nil, err
	}
	return toTransaction(t), nil
}

func (s *Server) listTransactions(r *http.Request, c *call) (any, error) {
	pg, err := page(r)
	if err != nil {
		return nil, err
	}
	walletID := r.PathValue("id")
	ts, next, err := s.Wallets.ListTransactions(r.Context(), c.p, walletID, pg)
	if err != nil {
		return nil, err
	}
	return toWalletItems(walletID, ts, next, toTransaction), nil
}

func (s *Server) getTransaction(r *http.Request, c *call) (any, error) {
	t, err := s.Wallets.GetTransaction(r.Context(), c.p, r.PathValue("id"), r.PathValue("transactionId"))
	if err != nil {
		return nil, err
	}
	return toTransaction(t), nil
}
