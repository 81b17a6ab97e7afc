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

	// People: users API, registration, login, credentials, recovery (dfns-api.md §3, §4.1).
	s.handle("GET /auth/users", s.listUsers)
	s.handle("POST /auth/users", s.createUser)
	s.handle("GET /auth/users/{id}", s.getUser)
	s.handle("PUT /auth/users/{id}/activate", s.userStatus("Active"))
	s.handle("PUT /auth/users/{id}/deactivate", s.userStatus("Inactive"))
	s.handle("DELETE /auth/users/{id}", s.userStatus("Archived"))
	s.handle("POST /auth/registration/init", s.registrationInit, public)
	s.handle("POST /auth/registration", s.register, public) // Bearer temporaryAuthenticationToken, read by the handler
	s.handle("PUT /auth/registration/code", s.resendRegistrationCode, public)
	s.handle("POST /auth/login/init", s.loginInit, public)
	s.handle("POST /auth/login", s.login, public)
	s.handle("PUT /auth/logout", s.logout, noUA)
	s.handle("POST /auth/logout", s.logout, noUA)
	s.handle("POST /auth/credentials/init", s.credentialInit, noUA)
	s.handle("POST /auth/credentials", s.createCredential)
	s.handle("GET /auth/credentials", s.listCredentials)
	s.handle("PUT /auth/credentials/activate", s.credentialStatus("Active"))
	s.handle("PUT /auth/credentials/deactivate", s.credentialStatus("Inactive"))
	s.handle("POST /auth/credentials/code", s.createCredentialCode)
	s.handle("POST /auth/credentials/code/init", s.credentialCodeInit, public)
	s.handle("POST /auth/credentials/code/verify", s.credentialCodeVerify, public)
	s.handle("POST /auth/recover/user/code", s.recoveryCode, public)
	s.handle("POST /auth/recover/user/init", s.recoveryInit, public)
	s.handle("POST /auth/recover/user", s.recover, public) // Bearer temporaryAuthenticationToken, read by the handler

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
	s.handle("GET /wallets/{id}/history", s.walletHistory)
	s.handle("POST /wallets/{id}/signatures", s.walletSign)
	s.handle("POST /wallets/{id}/transfers", s.createTransfer)
	s.handle("GET /wallets/{id}/transfers", s.listTransfers)
	s.handle("GET /wallets/{id}/transfers/{transferId}", s.getTransfer)
	s.handle("POST /wallets/{id}/transactions", s.createTransaction)
	s.handle("GET /wallets/{id}/transactions", s.listTransactions)
	s.handle("GET /wallets/{id}/transactions/{transactionId}", s.getTransaction)
	s.handle("POST /wallets/{id}/transfers/{transferId}/speed-up", s.speedUpTransfer)
	s.handle("POST /wallets/{id}/transfers/{transferId}/cancel", s.cancelTransfer)
	s.handle("POST /wallets/{id}/transactions/{transactionId}/speed-up", s.speedUpTransaction)
	s.handle("POST /wallets/{id}/transactions/{transactionId}/cancel", s.cancelTransaction)
	s.handle("GET /wallets/{id}/signatures", s.listSignatures("", "id"))
	s.handle("GET /wallets/{id}/signatures/{sigId}", s.getSignature("", "id"))

	s.delegatedRoutes() // delegated end users: registration, login, delegateTo, delegate (delegated.go)
	s.handle("POST /webhooks", s.createWebhook)
	s.handle("GET /webhooks", s.listWebhooks)
	s.handle("GET /webhooks/{id}", s.getWebhook)
	s.handle("PUT /webhooks/{id}", s.updateWebhook)
	s.handle("DELETE /webhooks/{id}", s.deleteWebhook)
	s.handle("POST /webhooks/{id}/ping", s.pingWebhook)
	s.handle("GET /webhooks/{id}/events", s.listWebhookEvents)
	s.handle("GET /webhooks/{id}/events/{eventId}", s.getWebhookEvent)

	// Networks (dfns-api.md §4.7). read-contract is a read: the TS SDK sends it without a
	// user action (simpleFetch in generated/networks/client.ts), so it takes none.
	s.handle("GET /networks/fees", s.networkFees)
	s.handle("POST /networks/read-contract", s.readContract, noUA)

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
