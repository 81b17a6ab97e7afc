package httpapi

import (
	"net/http"

	"github.com/countersign/countersign/internal/errs"
)

func (s *Server) routes() {
	s.handle("GET /healthz", s.healthz, public)

	s.handle("POST /auth/action/init", s.actionInit, noUA)
	s.handle("POST /auth/action", s.actionSign, noUA)
	s.handle("GET /auth/action/logs", s.listAuditLogs)
	s.handle("GET /auth/action/logs/{id}", s.getAuditLog)

	s.handle("GET /auth/service-accounts", s.listServiceAccounts)
	s.handle("POST /auth/service-accounts", s.createServiceAccount)
	s.handle("GET /auth/service-accounts/{id}", s.getServiceAccount)
	s.handle("PUT /auth/service-accounts/{id}", s.updateServiceAccount)
	s.handle("PUT /auth/service-accounts/{id}/activate", s.serviceAccountStatus("Active"))
	s.handle("PUT /auth/service-accounts/{id}/deactivate", s.serviceAccountStatus("Inactive"))
	s.handle("DELETE /auth/service-accounts/{id}", s.serviceAccountStatus("Archived"))

	s.handle("GET /auth/pats", s.listPATs)
	s.handle("POST /auth/pats", s.createPAT)
	s.handle("GET /auth/pats/{id}", s.getPAT)
	s.handle("PUT /auth/pats/{id}", s.updatePAT)
	s.handle("PUT /auth/pats/{id}/activate", s.patStatus("Active"))
	s.handle("PUT /auth/pats/{id}/deactivate", s.patStatus("Inactive"))
	s.handle("DELETE /auth/pats/{id}", s.patStatus("Archived"))

	s.handle("POST /keys", s.createKey)
	s.handle("GET /keys", s.listKeys)
	s.handle("GET /keys/{id}", s.getKey)
	s.handle("PUT /keys/{id}", s.updateKey)
	s.handle("DELETE /keys/{id}", s.deleteKey)
	s.handle("POST /keys/{id}/signatures", s.keySign)
	s.handle("GET /keys/{id}/signatures", s.listSignatures("id", ""))
	s.handle("GET /keys/{id}/signatures/{sigId}", s.getSignature("id", ""))

	s.handle("POST /wallets", s.createWallet)
	s.handle("GET /wallets", s.listWallets)
	s.handle("GET /wallets/{id}", s.getWallet)
	s.handle("PUT /wallets/{id}", s.updateWallet)
	s.handle("PUT /wallets/{id}/tags", s.tagWallet(true))
	s.handle("DELETE /wallets/{id}/tags", s.tagWallet(false))
	s.handle("GET /wallets/{id}/assets", s.walletAssets)
	s.handle("POST /wallets/{id}/signatures", s.walletSign)
	s.handle("POST /wallets/{id}/transfers", s.createTransfer)
	s.handle("GET /wallets/{id}/transfers", s.listTransfers)
	s.handle("GET /wallets/{id}/transfers/{transferId}", s.getTransfer)
	s.handle("GET /wallets/{id}/signatures", s.listSignatures("", "id"))
	s.handle("GET /wallets/{id}/signatures/{sigId}", s.getSignature("", "id"))

	s.handle("POST /webhooks", s.createWebhook)
	s.handle("GET /webhooks", s.listWebhooks)
	s.handle("GET /webhooks/{id}", s.getWebhook)
	s.handle("PUT /webhooks/{id}", s.updateWebhook)
	s.handle("DELETE /webhooks/{id}", s.deleteWebhook)
	s.handle("POST /webhooks/{id}/ping", s.pingWebhook)
	s.handle("GET /webhooks/{id}/events", s.listWebhookEvents)
	s.handle("GET /webhooks/{id}/events/{eventId}", s.getWebhookEvent)

	// Dev-only faucet: bearer auth, no user action (it moves only dev-chain play money).
	s.handle("GET /dev/faucet", s.faucetInfo)
	s.handle("POST /dev/faucet", s.faucet, noUA)

	// Anything else is a JSON 404, never the mux's plain-text page (the TS SDK parses errors as JSON).
	s.handle("/", func(r *http.Request, _ *call) (any, error) {
		return nil, errs.Ef(errs.NotFound, "no route for %s %s", r.Method, r.URL.Path)
	}, public)
}

func (s *Server) healthz(r *http.Request, _ *call) (any, error) {
	if s.Health != nil {
		if err := s.Health(r.Context()); err != nil {
			return nil, errs.E(errs.Unavailable, "database unavailable", err)
		}
	}
	return map[string]string{"status": "ok"}, nil
}
