package httpapi

import (
	"net/http"

	"github.com/countersign/countersign/internal/users"
)

func (s *Server) recoveryCode(r *http.Request, c *call) (any, error) {
	var req users.RecoveryCodeRequest
	if err := decode(c.body, &req); err != nil {
		return nil, err
	}
	if err := s.Users.SendRecoveryCode(r.Context(), req); err != nil {
		return nil, err
	}
	return map[string]string{"message": "success"}, nil
}

func (s *Server) recoveryInit(r *http.Request, c *call) (any, error) {
	var req users.RecoveryInitRequest
	if err := decode(c.body, &req); err != nil {
		return nil, err
	}
	ch, err := s.Users.RecoveryInit(r.Context(), req)
	if err != nil {
		return nil, err
	}
	return s.toRegistrationChallenge(ch), nil
}

func (s *Server) recover(r *http.Request, c *call) (any, error) {
	tok, err := bearer(r)
	if err != nil {
		return nil, err
	}
	var req users.RecoverRequest
	if err := decode(c.body, &req); err != nil {
		return nil, err
	}
	reg, err := s.Users.Recover(r.Context(), tok, req)
	if err != nil {
		return nil, err
	}
	return toRegistered(reg), nil
}
