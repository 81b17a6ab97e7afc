package httpapi

import (
	"net/http"

	"github.com/countersign/countersign/internal/wallets"
)

// walletHistory serves GET /wallets/{id}/history (dfns-api.md §4.4; query limit,
// paginationToken, direction, kind, contract).
func (s *Server) walletHistory(r *http.Request, c *call) (any, error) {
	pg, err := page(r)
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	w, es, next, err := s.Wallets.History(r.Context(), c.p, r.PathValue("id"), wallets.HistoryQuery{Limit: pg.Limit, After: pg.After,
		Direction: q.Get("direction"), Kind: q.Get("kind"), Contract: q.Get("contract")})
	if err != nil {
		return nil, err
	}
	out := struct {
		WalletID      string                `json:"walletId"`
		Network       string                `json:"network"`
		Items         []wallets.HistoryItem `json:"items"`
		NextPageToken string                `json:"nextPageToken,omitempty"`
	}{WalletID: w.ID, Network: w.Network, Items: make([]wallets.HistoryItem, 0, len(es)), NextPageToken: next}
	for _, e := range es {
		out.Items = append(out.Items, e.Item())
	}
	return out, nil
}
