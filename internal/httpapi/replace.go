package httpapi

import (
	"context"
	"net/http"

	"github.com/countersign/countersign/internal/auth"
	"github.com/countersign/countersign/internal/wallets"
)

// Speed-up and cancel (dfns-api.md §4.4; internal/wallets/replace.go): the body is empty or
// {} (the Go SDK sends none, the TS SDK {}); the answer is the replacement, a
// TransactionRequest, for transfers as for transactions.

func (s *Server) speedUpTransfer(r *http.Request, c *call) (any, error) {
	return s.replace(r, c, "transferId", (*wallets.Service).SpeedUpTransfer)
}

func (s *Server) cancelTransfer(r *http.Request, c *call) (any, error) {
	return s.replace(r, c, "transferId", (*wallets.Service).CancelTransfer)
}

func (s *Server) speedUpTransaction(r *http.Request, c *call) (any, error) {
	return s.replace(r, c, "transactionId", (*wallets.Service).SpeedUpTransaction)
}

func (s *Server) cancelTransaction(r *http.Request, c *call) (any, error) {
	return s.replace(r, c, "transactionId", (*wallets.Service).CancelTransaction)
}

func (s *Server) replace(r *http.Request, c *call, param string,
	f func(w *wallets.Service, ctx context.Context, p auth.Principal, walletID, id string) (wallets.Transaction, error)) (any, error) {
	if err := signBody(c.body); err != nil {
		return nil, err
	}
	t, err := f(s.Wallets, r.Context(), c.p, r.PathValue("id"), r.PathValue(param))
	if err != nil {
		return nil, err
	}
	return toTransaction(t), nil
}
