package httpapi

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"time"

	"github.com/countersign/countersign/internal/audit"
	"github.com/countersign/countersign/internal/errs"
	"github.com/countersign/countersign/internal/identity"
	"github.com/countersign/countersign/internal/useraction"
)

type credentialRef struct {
	Type       string   `json:"type"`
	ID         string   `json:"id"`
	Transports []string `json:"transports,omitempty"`
}

// challengeJSON is the user action challenge (dfns-api.md §2.2). Every list is an array,
// never absent: the SDK signers map over them unconditionally.
type challengeJSON struct {
	Challenge                 string            `json:"challenge"`
	ChallengeIdentifier       string            `json:"challengeIdentifier"`
	RP                        RP                `json:"rp"`
	SupportedCredentialKinds  []credKindJSON    `json:"supportedCredentialKinds"`
	UserVerification          string            `json:"userVerification"`
	Attestation               string            `json:"attestation"`
	AllowCredentials          allowCredentialsJ `json:"allowCredentials"`
	ExternalAuthenticationURL string            `json:"externalAuthenticationUrl"`
}

type credKindJSON struct {
	Kind                 string `json:"kind"`
	Factor               string `json:"factor"`
	RequiresSecondFactor bool   `json:"requiresSecondFactor"`
}

type allowCredentialsJ struct {
	Key                  []credentialRef `json:"key"`
	PasswordProtectedKey []credentialRef `json:"passwordProtectedKey"`
	WebAuthn             []credentialRef `json:"webauthn"`
}

func (s *Server) actionInit(r *http.Request, c *call) (any, error) {
	var req useraction.InitRequest
	if err := decode(c.body, &req); err != nil {
		return nil, err
	}
	ch, err := s.UserActions.Init(r.Context(), c.p, req)
	if err != nil {
		return nil, err
	}
	return s.toChallenge(ch.Action.Challenge, ch.Action.ID, ch.Credentials), nil
}

// toChallenge is the user action challenge (and, the same object, the login challenge)
// listing the credentials that may sign it.
func (s *Server) toChallenge(challenge, id string, creds []identity.Credential) challengeJSON {
	out := challengeJSON{
		Challenge: challenge, ChallengeIdentifier: id, RP: s.RP,
		UserVerification: "required", Attestation: "none",
		AllowCredentials: allowCredentialsJ{Key: []credentialRef{}, PasswordProtectedKey: []credentialRef{}, WebAuthn: []credentialRef{}},
	}
	kinds := map[string]bool{}
	for _, cr := range creds {
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
	return out
}

func (s *Server) actionSign(r *http.Request, c *call) (any, error) {
	var req useraction.SignRequest
	if err := decode(c.body, &req); err != nil {
		return nil, err
	}
	tok, err := s.UserActions.Sign(r.Context(), c.p, req)
	if err != nil {
		return nil, err
	}
	return map[string]string{"userAction": tok}, nil
}

type auditJSON struct {
	ID                    string         `json:"id"`
	Action                string         `json:"action"`
	ActionToken           string         `json:"actionToken"`
	UserID                string         `json:"userId"`
	Username              string         `json:"username"`
	TokenID               string         `json:"tokenId"`
	DatePerformed         string         `json:"datePerformed"`
	DateFinished          string         `json:"dateFinished,omitempty"`
	Method                string         `json:"method"`
	Path                  string         `json:"path"`
	BodyHash              string         `json:"bodySha256"`
	Status                int            `json:"status"`
	FirstFactorCredential map[string]any `json:"firstFactorCredential"`
}

func toAudit(e audit.Entry) auditJSON {
	kind := e.CredentialKind
	if kind == "" { // the credential row is gone
		kind = "Key"
	}
	out := auditJSON{
		ID: e.ID, Action: e.Method + " " + e.Path, ActionToken: e.UserActionID, UserID: e.UserID,
		Username: e.Username, TokenID: e.TokenID, DatePerformed: jsTime(e.CreatedAt), Method: e.Method,
		Path: e.Path, BodyHash: e.BodyHash, Status: e.Status,
		FirstFactorCredential: map[string]any{
			"kind":           kind,
			"credentialUuid": e.CredentialUUID,
			"credentialId":   e.CredentialID,
			"clientData":     base64.RawURLEncoding.EncodeToString(e.ClientData),
			"signature":      base64.RawURLEncoding.EncodeToString(e.Signature),
		},
	}
	if !e.FinishedAt.IsZero() {
		out.DateFinished = jsTime(e.FinishedAt)
	}
	return out
}

func parseTimeParam(q, name string) (time.Time, error) {
	if q == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, q); err == nil {
		return t, nil
	}
	if n, err := strconv.ParseInt(q, 10, 64); err == nil {
		if n > 1e11 { // milliseconds
			return time.UnixMilli(n), nil
		}
		return time.Unix(n, 0), nil
	}
	return time.Time{}, errs.Ef(errs.Invalid, "%s must be an ISO-8601 date or a Unix time", name)
}

func parseLimit(q string) (int, error) {
	if q == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(q)
	if err != nil || n < 1 || n > 500 {
		return 0, errs.E(errs.Invalid, "limit must be an integer between 1 and 500", nil)
	}
	return n, nil
}

func (s *Server) listAuditLogs(r *http.Request, c *call) (any, error) {
	q := r.URL.Query()
	var f audit.Filter
	var err error
	if f.StartTime, err = parseTimeParam(q.Get("startTime"), "startTime"); err != nil {
		return nil, err
	}
	if f.EndTime, err = parseTimeParam(q.Get("endTime"), "endTime"); err != nil {
		return nil, err
	}
	if f.Limit, err = parseLimit(q.Get("limit")); err != nil {
		return nil, err
	}
	f.UserID, f.After = q.Get("userId"), q.Get("paginationToken")
	items, next, err := s.Audit.List(r.Context(), c.p, f)
	if err != nil {
		if errs.Is(err, errs.NotFound) {
			return nil, errs.E(errs.Invalid, "paginationToken is not valid", err)
		}
		return nil, err
	}
	out := itemsJSON[auditJSON]{Items: make([]auditJSON, 0, len(items)), NextPageToken: next}
	for _, e := range items {
		out.Items = append(out.Items, toAudit(e))
	}
	return out, nil
}

func (s *Server) getAuditLog(r *http.Request, c *call) (any, error) {
	e, err := s.Audit.Get(r.Context(), c.p, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	return toAudit(e), nil
}
