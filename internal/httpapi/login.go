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
	out := challengeJSON{
		Challenge: ch.Ceremony.Challenge, ChallengeIdentifier: ch.Handle, RP: s.RP,
		UserVerification: "required", Attestation: "none", SupportedCredentialKinds: []credKindJSON{},
		AllowCredentials: allowCredentialsJ{Key: []credentialRef{}, PasswordProtectedKey: []credentialRef{}, WebAuthn: []credentialRef{}},
	}
	kinds := map[string]bool{}
	for _, cr := range ch.Credentials {
		switch cr.Kind {
		case identity.CredKey:
			out.AllowCredentials.Key = append(out.AllowCredentials.Key, credentialRef{Type: "public-key", ID: cr.CredID})
		case identity.CredFido:
			out.AllowCredentials.WebAuthn = append(out.AllowCredentials.WebAuthn, credentialRef{Type: "public-key", ID: cr.CredID})
		}
		if !kinds[cr.Kind] {
			kinds[cr.Kind] = true
			out.SupportedCredentialKinds = append(out.SupportedCredentialKinds, credKindJSON{Kind: cr.Kind, Factor: "first"})
		}
	}
	return out, nil
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
