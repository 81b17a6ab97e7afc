package httpapi

import (
	"net/http"

	"github.com/countersign/countersign/internal/auth"
	"github.com/countersign/countersign/internal/identity"
	"github.com/countersign/countersign/internal/keys"
	"github.com/countersign/countersign/internal/users"
	"github.com/countersign/countersign/internal/wallets"
)

// Delegated end users (dfns-api.md §2.9, §3.2, §3.3, §4.4, §4.5). The access rules live in
// the keys and wallets services; these handlers only translate.

func (s *Server) delegatedRoutes() {
	s.handle("POST /auth/registration/delegated", s.delegatedRegistration(false))
	s.handle("POST /auth/registration/delegated/restart", s.delegatedRegistration(true))
	s.handle("POST /auth/registration/enduser", s.registerEndUser, public) // Bearer temporaryAuthenticationToken, read by the handler
	s.handle("POST /auth/login/delegated", s.delegatedLogin)
	s.handle("POST /keys/{id}/delegate", s.delegateKey)
	s.handle("POST /wallets/{id}/delegate", s.delegateWallet)
}

func (s *Server) delegatedRegistration(restart bool) handlerFunc {
	return func(r *http.Request, c *call) (any, error) {
		var req users.DelegatedRegistrationRequest
		if err := decode(c.body, &req); err != nil {
			return nil, err
		}
		ch, err := s.Users.DelegatedRegistration(r.Context(), c.p, req, restart)
		if err != nil {
			return nil, err
		}
		out := s.toRegistrationChallenge(ch)
		out.SupportedCredentialKinds = &supportedKindsJSON{FirstFactor: []string{identity.CredFido, identity.CredKey}, SecondFactor: []string{}}
		return out, nil
	}
}

// endUserRegistrationJSON is the body of POST /auth/registration/enduser.
type endUserRegistrationJSON struct {
	users.RegisterRequest
	Wallets []wallets.CreateRequest `json:"wallets"`
}

func (s *Server) registerEndUser(r *http.Request, c *call) (any, error) {
	tok, err := bearer(r)
	if err != nil {
		return nil, err
	}
	var req endUserRegistrationJSON
	if err := decode(c.body, &req); err != nil {
		return nil, err
	}
	reg, err := s.Users.RegisterEndUser(r.Context(), tok, req.RegisterRequest, func(p auth.Principal) ([]wallets.Wallet, error) {
		return s.Wallets.PrepareEndUserWallets(p, req.Wallets) // the new end user's own, so delegated to them
	})
	if err != nil {
		return nil, err
	}
	out := struct {
		registeredJSON
		Authentication struct {
			Token string `json:"token"`
		} `json:"authentication"`
		Wallets []walletJSON `json:"wallets"`
	}{registeredJSON: toRegistered(reg.Registered), Wallets: []walletJSON{}}
	out.Authentication.Token = reg.Token
	for _, w := range reg.Wallets {
		out.Wallets = append(out.Wallets, toWallet(w))
	}
	return out, nil
}

func (s *Server) delegatedLogin(r *http.Request, c *call) (any, error) {
	var req users.DelegatedLoginRequest
	if err := decode(c.body, &req); err != nil {
		return nil, err
	}
	tok, err := s.Users.DelegatedLogin(r.Context(), c.p, req)
	if err != nil {
		return nil, err
	}
	return map[string]string{"token": tok}, nil
}

func (s *Server) delegateKey(r *http.Request, c *call) (any, error) {
	var req keys.DelegateRequest
	if err := decode(c.body, &req); err != nil {
		return nil, err
	}
	k, err := s.Keys.Delegate(r.Context(), c.p, r.PathValue("id"), req.DelegateTo)
	if err != nil {
		return nil, err
	}
	return map[string]string{"keyId": k.ID, "status": keys.DelegatedStatus}, nil
}

func (s *Server) delegateWallet(r *http.Request, c *call) (any, error) {
	var req wallets.DelegateRequest
	if err := decode(c.body, &req); err != nil {
		return nil, err
	}
	w, err := s.Wallets.Delegate(r.Context(), c.p, r.PathValue("id"), req.UserID)
	if err != nil {
		return nil, err
	}
	return map[string]string{"walletId": w.ID, "status": keys.DelegatedStatus}, nil
}
