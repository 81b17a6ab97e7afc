package httpapi

import (
	"net/http"
	"strings"

	"github.com/countersign/countersign/internal/credentials/fido2"
	"github.com/countersign/countersign/internal/errs"
	"github.com/countersign/countersign/internal/identity"
	"github.com/countersign/countersign/internal/users"
)

type webauthnUserJSON struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	DisplayName string `json:"displayName"`
}

type credParamJSON struct {
	Type string `json:"type"`
	Alg  int64  `json:"alg"`
}

type authenticatorSelectionJSON struct {
	ResidentKey        string `json:"residentKey"`
	RequireResidentKey bool   `json:"requireResidentKey"`
	UserVerification   string `json:"userVerification"`
}

type recoveryCredJSON struct {
	ID                   string `json:"id"`
	EncryptedRecoveryKey string `json:"encryptedRecoveryKey"`
}

// registrationChallengeJSON is the credential-creation challenge (dfns-api.md §3.1.1),
// also used, with kind and challengeIdentifier, for new credentials. Every list is an array.
type registrationChallengeJSON struct {
	Kind                         string                     `json:"kind,omitempty"`
	User                         webauthnUserJSON           `json:"user"`
	TemporaryAuthenticationToken string                     `json:"temporaryAuthenticationToken"`
	ChallengeIdentifier          string                     `json:"challengeIdentifier,omitempty"`
	Challenge                    string                     `json:"challenge"`
	RP                           RP                         `json:"rp"`
	SupportedCredentialKinds     *supportedKindsJSON        `json:"supportedCredentialKinds,omitempty"`
	AuthenticatorSelection       authenticatorSelectionJSON `json:"authenticatorSelection"`
	Attestation                  string                     `json:"attestation"`
	PubKeyCredParams             []credParamJSON            `json:"pubKeyCredParams"`
	ExcludeCredentials           []credentialRef            `json:"excludeCredentials"`
	OtpURL                       string                     `json:"otpUrl"`
	AllowedRecoveryCredentials   []recoveryCredJSON         `json:"allowedRecoveryCredentials,omitempty"`
}

type supportedKindsJSON struct {
	FirstFactor  []string `json:"firstFactor"`
	SecondFactor []string `json:"secondFactor"`
}

func (s *Server) toRegistrationChallenge(ch users.Challenge) registrationChallengeJSON {
	out := registrationChallengeJSON{
		User:                         webauthnUserJSON{ID: ch.User.ID, Name: ch.User.Username, DisplayName: ch.User.Username},
		TemporaryAuthenticationToken: ch.Handle,
		Challenge:                    ch.Ceremony.Challenge,
		RP:                           s.RP,
		AuthenticatorSelection:       authenticatorSelectionJSON{ResidentKey: "required", RequireResidentKey: true, UserVerification: "required"},
		Attestation:                  "none",
		ExcludeCredentials:           []credentialRef{},
	}
	for _, alg := range fido2.Algorithms() {
		out.PubKeyCredParams = append(out.PubKeyCredParams, credParamJSON{Type: "public-key", Alg: alg})
	}
	for _, c := range ch.Credentials {
		if c.Kind == identity.CredFido && c.Status != identity.Archived {
			out.ExcludeCredentials = append(out.ExcludeCredentials, credentialRef{Type: "public-key", ID: c.CredID})
		}
	}
	for _, c := range ch.Recovery {
		out.AllowedRecoveryCredentials = append(out.AllowedRecoveryCredentials, recoveryCredJSON{ID: c.CredID, EncryptedRecoveryKey: c.EncryptedPrivateKey})
	}
	return out
}

func (s *Server) registrationInit(r *http.Request, c *call) (any, error) {
	var req users.RegistrationInitRequest
	if err := decode(c.body, &req); err != nil {
		return nil, err
	}
	ch, err := s.Users.RegistrationInit(r.Context(), req)
	if err != nil {
		return nil, err
	}
	out := s.toRegistrationChallenge(ch)
	out.SupportedCredentialKinds = &supportedKindsJSON{FirstFactor: []string{identity.CredFido, identity.CredKey}, SecondFactor: []string{}}
	return out, nil
}

// bearer returns the token of the Authorization header of a route that takes a
// temporaryAuthenticationToken instead of an access token.
func bearer(r *http.Request) (string, error) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return "", errs.E(errs.Unauthenticated, "the temporaryAuthenticationToken is required as Bearer token", nil)
	}
	return strings.TrimSpace(tok), nil
}

type registeredJSON struct {
	Credential struct {
		UUID           string `json:"uuid"`
		Kind           string `json:"kind"`
		CredentialKind string `json:"credentialKind"`
		Name           string `json:"name"`
	} `json:"credential"`
	User struct {
		ID       string `json:"id"`
		Username string `json:"username"`
		OrgID    string `json:"orgId"`
	} `json:"user"`
}

func toRegistered(reg users.Registered) registeredJSON {
	var out registeredJSON
	out.Credential.UUID, out.Credential.Kind, out.Credential.CredentialKind, out.Credential.Name =
		reg.Credential.UUID, reg.Credential.Kind, reg.Credential.Kind, reg.Credential.Name
	out.User.ID, out.User.Username, out.User.OrgID = reg.User.ID, reg.User.Username, reg.User.OrgID
	return out
}

func (s *Server) register(r *http.Request, c *call) (any, error) {
	tok, err := bearer(r)
	if err != nil {
		return nil, err
	}
	var req users.RegisterRequest
	if err := decode(c.body, &req); err != nil {
		return nil, err
	}
	reg, err := s.Users.Register(r.Context(), tok, req)
	if err != nil {
		return nil, err
	}
	return toRegistered(reg), nil
}

func (s *Server) resendRegistrationCode(r *http.Request, c *call) (any, error) {
	var req struct {
		Username string `json:"username"`
		OrgID    string `json:"orgId"`
	}
	if err := decode(c.body, &req); err != nil {
		return nil, err
	}
	if err := s.Users.ResendRegistrationCode(r.Context(), req.OrgID, req.Username); err != nil {
		return nil, err
	}
	return map[string]string{"message": "success"}, nil
}
