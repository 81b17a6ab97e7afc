package httpapi

import (
	"encoding/base64"
	"net/http"

	"github.com/countersign/countersign/internal/identity"
	"github.com/countersign/countersign/internal/users"
)

// credentialJSON is the Credential object (dfns-api.md §3.1.4). publicKey is the PEM of a
// Key credential and b64u of the COSE key of a Fido2 one.
type credentialJSON struct {
	Kind           string `json:"kind"`
	CredentialID   string `json:"credentialId"`
	CredentialUUID string `json:"credentialUuid"`
	DateCreated    string `json:"dateCreated"`
	IsActive       bool   `json:"isActive"`
	Name           string `json:"name"`
	PublicKey      string `json:"publicKey"`
	RelyingPartyID string `json:"relyingPartyId"`
	Origin         string `json:"origin"`
}

func toCredential(c users.Credential) credentialJSON {
	pub := string(c.PublicKey)
	if c.Kind == identity.CredFido {
		pub = base64.RawURLEncoding.EncodeToString(c.PublicKey)
	}
	return credentialJSON{
		Kind: c.Kind, CredentialID: c.CredID, CredentialUUID: c.UUID, DateCreated: jsTime(c.CreatedAt),
		IsActive: c.Status == identity.Active, Name: c.Name, PublicKey: pub, RelyingPartyID: c.RPID, Origin: c.Origin,
	}
}

func (s *Server) toCredentialChallenge(ch users.Challenge) registrationChallengeJSON {
	out := s.toRegistrationChallenge(ch)
	out.Kind, out.ChallengeIdentifier = ch.Ceremony.CredKind, ch.Handle
	return out
}

func (s *Server) credentialInit(r *http.Request, c *call) (any, error) {
	var req struct {
		Kind string `json:"kind"`
	}
	if err := decode(c.body, &req); err != nil {
		return nil, err
	}
	ch, err := s.Users.CredentialInit(r.Context(), c.p, req.Kind)
	if err != nil {
		return nil, err
	}
	return s.toCredentialChallenge(ch), nil
}

func (s *Server) createCredential(r *http.Request, c *call) (any, error) {
	var req users.CreateCredentialRequest
	if err := decode(c.body, &req); err != nil {
		return nil, err
	}
	cred, err := s.Users.CreateCredential(r.Context(), c.p, req)
	if err != nil {
		return nil, err
	}
	return toCredential(cred), nil
}

func (s *Server) listCredentials(r *http.Request, c *call) (any, error) {
	cs, err := s.Users.ListCredentials(r.Context(), c.p)
	if err != nil {
		return nil, err
	}
	out := itemsJSON[credentialJSON]{Items: make([]credentialJSON, 0, len(cs))}
	for _, cr := range cs {
		out.Items = append(out.Items, toCredential(cr))
	}
	return out, nil
}

func (s *Server) credentialStatus(status string) handlerFunc {
	return func(r *http.Request, c *call) (any, error) {
		var req struct {
			CredentialUUID string `json:"credentialUuid"`
		}
		if err := decode(c.body, &req); err != nil {
			return nil, err
		}
		if err := s.Users.SetCredentialStatus(r.Context(), c.p, req.CredentialUUID, status); err != nil {
			return nil, err
		}
		return map[string]string{"message": "success"}, nil
	}
}

func (s *Server) createCredentialCode(r *http.Request, c *call) (any, error) {
	var req users.CodeRequest
	if err := decode(c.body, &req); err != nil {
		return nil, err
	}
	code, exp, err := s.Users.CreateCredentialCode(r.Context(), c.p, req)
	if err != nil {
		return nil, err
	}
	return map[string]string{"code": code, "expiration": jsTime(exp)}, nil
}

func (s *Server) credentialCodeInit(r *http.Request, c *call) (any, error) {
	var req users.CodeInitRequest
	if err := decode(c.body, &req); err != nil {
		return nil, err
	}
	ch, err := s.Users.CredentialCodeInit(r.Context(), req)
	if err != nil {
		return nil, err
	}
	return s.toCredentialChallenge(ch), nil
}

func (s *Server) credentialCodeVerify(r *http.Request, c *call) (any, error) {
	var req users.CreateCredentialRequest
	if err := decode(c.body, &req); err != nil {
		return nil, err
	}
	cred, err := s.Users.CredentialCodeVerify(r.Context(), req)
	if err != nil {
		return nil, err
	}
	return toCredential(cred), nil
}
