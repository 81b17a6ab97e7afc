package httpapi

import (
	"net/http"

	"github.com/countersign/countersign/internal/identity"
	"github.com/countersign/countersign/internal/users"
)

func (s *Server) loginInit(r *http.Request, c *call) (any, error) {
	var req users.LoginInitRequest
	if err := decode(c.body, &req); err != nil {
		return nil, err
	}
	ch, err := s.Users.LoginInit(r.Context(), req)
	if err != nil {
		return nil, err
	}
	// The same object as a user action challenge (dfns-api.md §3.3).
	creds := make([]identity.Credential, len(ch.Credentials))
	for i, c := range ch.Credentials {
		creds[i] = c.Credential
	}
	return s.toChallenge(ch.Ceremony.Challenge, ch.Handle, creds), nil
}

func (s *Server) login(r *http.Request, c *call) (any, error) {
	var req users.LoginRequest
	if err := decode(c.body, &req); err != nil {
		return nil, err
	}
	tok, err := s.Users.Login(r.Context(), req)
	if err != nil {
		return nil, err
	}
	return map[string]string{"token": tok}, nil
}

func (s *Server) logout(r *http.Request, c *call) (any, error) {
	var req struct {
		AllSessions bool `json:"allSessions"`
	}
	if err := decode(c.body, &req); err != nil {
		return nil, err
	}
	if err := s.Users.Logout(r.Context(), c.p, req.AllSessions); err != nil {
		return nil, err
	}
	return map[string]string{"message": "success"}, nil
}
