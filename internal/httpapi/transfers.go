package httpapi

import (
	"encoding/json"
	"net/http"

	"github.com/countersign/countersign/internal/wallets"
)

type transferAssetJSON struct {
	Symbol   string `json:"symbol,omitempty"`
	Decimals int    `json:"decimals"`
	Verified bool   `json:"verified"`
}

// transferJSON is a TransferRequest (dfns-api.md §4.4.1).
type transferJSON struct {
	ID          string          `json:"id"`
	WalletID    string          `json:"walletId"`
	Network     string          `json:"network"`
	Requester   requesterJSON   `json:"requester"`
	RequestBody json.RawMessage `json:"requestBody"`
	Metadata    struct {
		Asset transferAssetJSON `json:"asset"`
	} `json:"metadata"`
	Status          string `json:"status"`
	Reason          string `json:"reason,omitempty"`
	TxHash          string `json:"txHash,omitempty"`
	Fee             string `json:"fee,omitempty"`
	DateRequested   string `json:"dateRequested"`
	DateBroadcasted string `json:"dateBroadcasted,omitempty"`
	DateConfirmed   string `json:"dateConfirmed,omitempty"`
	ExternalID      string `json:"externalId,omitempty"`
	ReplacementID   string `json:"replacementId,omitempty"`
}

func toTransfer(t wallets.Transfer) transferJSON {
	out := transferJSON{ID: t.ID, WalletID: t.WalletID, Network: t.Network,
		Requester:   requesterJSON{UserID: t.RequesterUserID, TokenID: t.RequesterTokenID},
		RequestBody: t.RequestBody, Status: t.Status, Reason: t.Reason, Fee: t.Fee, ExternalID: t.ExternalID,
		DateRequested:   jsTime(t.CreatedAt),
		DateBroadcasted: optTime(t.BroadcastedAt),
		DateConfirmed:   optTime(t.ConfirmedAt), ReplacementID: t.ReplacementID}
	// The hash is known from signing, but reported once the transaction is on its way.
	if t.Status != wallets.Executing {
		out.TxHash = t.TxHash
	}
	out.Metadata.Asset = transferAssetJSON{Symbol: t.AssetSymbol, Decimals: t.AssetDecimals, Verified: t.AssetVerified}
	return out
}

func (s *Server) createTransfer(r *http.Request, c *call) (any, error) {
	if err := signBody(c.body); err != nil {
		return nil, err
	}
	t, err := s.Wallets.Transfer(r.Context(), c.p, r.PathValue("id"), c.body)
	if err != nil {
		return nil, err
	}
	return toTransfer(t), nil
}

func (s *Server) listTransfers(r *http.Request, c *call) (any, error) {
	pg, err := page(r)
	if err != nil {
		return nil, err
	}
	walletID := r.PathValue("id")
	ts, next, err := s.Wallets.ListTransfers(r.Context(), c.p, walletID, pg)
	if err != nil {
		return nil, err
	}
	return toWalletItems(walletID, ts, next, toTransfer), nil
}

// walletItems is the answer of a wallet's list endpoints.
type walletItems[J any] struct {
	WalletID      string `json:"walletId"`
	Items         []J    `json:"items"`
	NextPageToken string `json:"nextPageToken,omitempty"`
}

func toWalletItems[T, J any](walletID string, ts []T, next string, conv func(T) J) walletItems[J] {
	out := walletItems[J]{WalletID: walletID, Items: make([]J, 0, len(ts)), NextPageToken: next}
	for _, t := range ts {
		out.Items = append(out.Items, conv(t))
	}
	return out
}

func (s *Server) getTransfer(r *http.Request, c *call) (any, error) {
	t, err := s.Wallets.GetTransfer(r.Context(), c.p, r.PathValue("id"), r.PathValue("transferId"))
	if err != nil {
		return nil, err
	}
	return toTransfer(t), nil
}
