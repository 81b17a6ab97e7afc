package httpapi

import (
	"net/http"

	"github.com/countersign/countersign/internal/errs"
	"github.com/countersign/countersign/internal/wallets"
)

type assetJSON struct {
	Kind     string `json:"kind"`
	Contract string `json:"contract,omitempty"`
	Symbol   string `json:"symbol,omitempty"`
	Decimals int    `json:"decimals"`
	Verified bool   `json:"verified"`
	Balance  string `json:"balance"`
}

func (s *Server) walletAssets(r *http.Request, c *call) (any, error) {
	w, as, err := s.Wallets.Assets(r.Context(), c.p, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	out := struct {
		WalletID string      `json:"walletId"`
		Network  string      `json:"network"`
		Assets   []assetJSON `json:"assets"`
	}{WalletID: w.ID, Network: w.Network, Assets: make([]assetJSON, 0, len(as))}
	for _, a := range as {
		out.Assets = append(out.Assets, assetJSON{Kind: a.Kind, Contract: a.Contract, Symbol: a.Symbol, Decimals: a.Decimals,
			Verified: a.Kind == "Native", Balance: a.Balance.String()})
	}
	return out, nil
}

func (s *Server) faucetInfo(r *http.Request, c *call) (any, error) {
	network := r.URL.Query().Get("network")
	if network == "" {
		return nil, errs.E(errs.Invalid, "network is required", nil)
	}
	t, err := s.Wallets.FaucetInfo(r.Context(), c.p, network)
	if err != nil {
		return nil, err
	}
	return map[string]any{"network": network, "token": map[string]any{"contract": t.Contract, "symbol": t.Symbol, "decimals": t.Decimals}}, nil
}

func (s *Server) faucet(r *http.Request, c *call) (any, error) {
	var req wallets.FaucetRequest
	if err := decode(c.body, &req); err != nil {
		return nil, err
	}
	h, err := s.Wallets.Faucet(r.Context(), c.p, req)
	if err != nil {
		return nil, err
	}
	return map[string]string{"txHash": h}, nil
}
