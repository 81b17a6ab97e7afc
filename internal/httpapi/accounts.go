package httpapi

import (
	"net/http"

	"github.com/countersign/countersign/internal/identity"
)

func (s *Server) listServiceAccounts(r *http.Request, c *call) (any, error) {
	sas, err := s.Identity.ListServiceAccounts(r.Context(), c.p)
	if err != nil {
		return nil, err
	}
	out := itemsJSON[serviceAccountJSON]{Items: make([]serviceAccountJSON, 0, len(sas))}
	for _, sa := range sas {
		out.Items = append(out.Items, toServiceAccount(sa))
	}
	return out, nil
}

func (s *Server) createServiceAccount(r *http.Request, c *call) (any, error) {
	var req identity.CreateTokenRequest
	if err := decode(c.body, &req); err != nil {
		return nil, err
	}
	sa, err := s.Identity.CreateServiceAccount(r.Context(), c.p, req)
	if err != nil {
		return nil, err
	}
	return toServiceAccount(sa), nil
}

func (s *Server) getServiceAccount(r *http.Request, c *call) (any, error) {
	sa, err := s.Identity.GetServiceAccount(r.Context(), c.p, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	return toServiceAccount(sa), nil
}

func (s *Server) updateServiceAccount(r *http.Request, c *call) (any, error) {
	var req identity.UpdateRequest
	if err := decode(c.body, &req); err != nil {
		return nil, err
	}
	sa, err := s.Identity.UpdateServiceAccount(r.Context(), c.p, r.PathValue("id"), req)
	if err != nil {
		return nil, err
	}
	return toServiceAccount(sa), nil
}

func (s *Server) serviceAccountStatus(status string) handlerFunc {
	return func(r *http.Request, c *call) (any, error) {
		sa, err := s.Identity.SetServiceAccountStatus(r.Context(), c.p, r.PathValue("id"), status)
		if err != nil {
			return nil, err
		}
		return toServiceAccount(sa), nil
	}
}

func (s *Server) listPATs(r *http.Request, c *call) (any, error) {
	ts, err := s.Identity.ListPATs(r.Context(), c.p)
	if err != nil {
		return nil, err
	}
	out := itemsJSON[accessTokenJSON]{Items: make([]accessTokenJSON, 0, len(ts))}
	for _, t := range ts {
		out.Items = append(out.Items, toAccessToken(t))
	}
	return out, nil
}

func (s *Server) createPAT(r *http.Request, c *call) (any, error) {
	var req identity.CreateTokenRequest
	if err := decode(c.body, &req); err != nil {
		return nil, err
	}
	t, err := s.Identity.CreatePAT(r.Context(), c.p, req)
	if err != nil {
		return nil, err
	}
	return toAccessToken(t), nil
}

func (s *Server) getPAT(r *http.Request, c *call) (any, error) {
	t, err := s.Identity.GetPAT(r.Context(), c.p, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	return toAccessToken(t), nil
}

func (s *Server) updatePAT(r *http.Request, c *call) (any, error) {
	var req identity.UpdateRequest
	if err := decode(c.body, &req); err != nil {
		return nil, err
	}
	t, err := s.Identity.UpdatePAT(r.Context(), c.p, r.PathValue("id"), req)
	if err != nil {
		return nil, err
	}
	return toAccessToken(t), nil
}

func (s *Server) patStatus(status string) handlerFunc {
	return func(r *http.Request, c *call) (any, error) {
		t, err := s.Identity.SetPATStatus(r.Context(), c.p, r.PathValue("id"), status)
		if err != nil {
			return nil, err
		}
		return toAccessToken(t), nil
	}
}
