// Package client is a Go client for countersign and other Dfns-compatible APIs. It performs
// User Action Signing by itself: every write that needs it is preceded by
// POST /auth/action/init, signed with the configured Signer, exchanged at POST /auth/action,
// and sent with X-DFNS-USERACTION. It imports nothing from countersign's internals.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Client talks to one API with one bearer token.
type Client struct {
	BaseURL string       // e.g. http://127.0.0.1:8080 (no trailing slash)
	Token   string       // bearer token
	Signer  Signer       // signs user action challenges; nil means writes that need one fail
	HTTP    *http.Client // http.DefaultClient when nil
}

// New returns a client.
func New(baseURL, token string, signer Signer) *Client {
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), Token: token, Signer: signer}
}

// Error is a non-2xx answer.
type Error struct {
	Status  int
	Message string
	Body    []byte
}

func (e *Error) Error() string { return fmt.Sprintf("dfns api: %d: %s", e.Status, e.Message) }

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

// Raw sends one request as is and returns the status and body. userAction may be "".
func (c *Client) Raw(ctx context.Context, method, path string, body []byte, userAction string) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if userAction != "" {
		req.Header.Set("X-DFNS-USERACTION", userAction)
	}
	res, err := c.http().Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 10<<20))
	return res.StatusCode, b, err
}

func decodeResult(status int, b []byte, out any) error {
	if status < 200 || status > 299 {
		e := &Error{Status: status, Body: b}
		var eb struct {
			Error struct {
				Message string `json:"message"`
			} `json:"error"`
			Message string `json:"message"`
		}
		if json.Unmarshal(b, &eb) == nil {
			e.Message = eb.Error.Message
			if e.Message == "" {
				e.Message = eb.Message
			}
		}
		if e.Message == "" {
			e.Message = http.StatusText(status)
		}
		return e
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}

// Do sends a request, signing a user action first when the call needs one. body may be
// nil, []byte (sent verbatim), or a value marshalled as JSON; out may be nil.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	var raw []byte
	switch b := body.(type) {
	case nil:
		if method != http.MethodGet {
			raw = []byte("{}") // like the TS SDK: body-less writes send and sign {}
		}
	case []byte:
		raw = b
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			return err
		}
	}
	ua := ""
	if NeedsUserAction(method, path) {
		var err error
		if ua, err = c.UserAction(ctx, method, path, raw); err != nil {
			return err
		}
	}
	status, b, err := c.Raw(ctx, method, path, raw, ua)
	if err != nil {
		return err
	}
	return decodeResult(status, b, out)
}

// Challenge is the answer of POST /auth/action/init (the fields a signer needs).
type Challenge struct {
	Challenge           string `json:"challenge"`
	ChallengeIdentifier string `json:"challengeIdentifier"`
	AllowCredentials    struct {
		Key      []CredentialRef `json:"key"`
		WebAuthn []CredentialRef `json:"webauthn"`
	} `json:"allowCredentials"`
}

// CredentialRef names an allowed credential.
type CredentialRef struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// InitUserAction asks for a challenge bound to method, path and payload.
func (c *Client) InitUserAction(ctx context.Context, method, path string, payload []byte) (*Challenge, error) {
	req, _ := json.Marshal(map[string]string{
		"userActionPayload": string(payload), "userActionHttpMethod": method,
		"userActionHttpPath": path, "userActionServerKind": "Api",
	})
	status, b, err := c.Raw(ctx, http.MethodPost, "/auth/action/init", req, "")
	if err != nil {
		return nil, err
	}
	var ch Challenge
	return &ch, decodeResult(status, b, &ch)
}

// CompleteUserAction trades a signed challenge for a one-time user action token.
func (c *Client) CompleteUserAction(ctx context.Context, challengeID string, a *Assertion) (string, error) {
	req, _ := json.Marshal(map[string]any{"challengeIdentifier": challengeID, "firstFactor": a})
	status, b, err := c.Raw(ctx, http.MethodPost, "/auth/action", req, "")
	if err != nil {
		return "", err
	}
	var out struct {
		UserAction string `json:"userAction"`
	}
	return out.UserAction, decodeResult(status, b, &out)
}

// UserAction runs the whole flow and returns a token for exactly this request.
func (c *Client) UserAction(ctx context.Context, method, path string, payload []byte) (string, error) {
	if c.Signer == nil {
		return "", fmt.Errorf("dfns client: %s %s needs a user action signature but no Signer is set", method, path)
	}
	ch, err := c.InitUserAction(ctx, method, path, payload)
	if err != nil {
		return "", err
	}
	a, err := c.Signer.Sign(ctx, ch)
	if err != nil {
		return "", err
	}
	return c.CompleteUserAction(ctx, ch.ChallengeIdentifier, a)
}

// exempt are the writes that take no user action (dfns-api.md §2.7).
var exempt = map[string]bool{
	"POST /auth/action/init": true, "POST /auth/action": true,
	"POST /auth/login/init": true, "POST /auth/login": true, "POST /auth/login/code": true,
	"POST /auth/login/social": true, "POST /auth/login/sso/init": true, "POST /auth/login/sso": true,
	"PUT /auth/logout": true, "POST /auth/logout": true,
	"POST /auth/registration/init": true, "POST /auth/registration": true, "POST /auth/registration/enduser": true,
	"POST /auth/registration/social": true, "PUT /auth/registration/code": true,
	"POST /auth/recover/user/code": true, "POST /auth/recover/user/init": true, "POST /auth/recover/user": true,
	"POST /auth/credentials/init": true, "POST /auth/credentials/code/init": true, "POST /auth/credentials/code/verify": true,
	"POST /networks/read-contract": true,
}

// NeedsUserAction reports whether a call must carry X-DFNS-USERACTION.
func NeedsUserAction(method, path string) bool {
	if method == http.MethodGet || method == http.MethodHead {
		return false
	}
	p, _, _ := strings.Cut(path, "?")
	return !exempt[method+" "+p]
}
