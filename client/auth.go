package client

import (
	"context"
	"net/http"
	"net/url"
)

// User is a user or a service account's userInfo.
type User struct {
	UserID           string `json:"userId"`
	Username         string `json:"username"`
	Name             string `json:"name"`
	Kind             string `json:"kind"`
	OrgID            string `json:"orgId"`
	CredentialUUID   string `json:"credentialUuid"`
	IsActive         bool   `json:"isActive"`
	IsServiceAccount bool   `json:"isServiceAccount"`
	IsRegistered     bool   `json:"isRegistered"`
	ExternalID       string `json:"externalId,omitempty"`
}

// AccessToken is a service-account token or PAT; AccessToken is set only when created.
type AccessToken struct {
	AccessToken  string `json:"accessToken,omitempty"`
	TokenID      string `json:"tokenId"`
	Kind         string `json:"kind"`
	Name         string `json:"name"`
	OrgID        string `json:"orgId"`
	LinkedUserID string `json:"linkedUserId"`
	CredID       string `json:"credId"`
	PublicKey    string `json:"publicKey"`
	IsActive     bool   `json:"isActive"`
	ExternalID   string `json:"externalId,omitempty"`
	DateCreated  string `json:"dateCreated"`
	ExpiresAt    string `json:"expiresAt"`
}

// ServiceAccount is a service account with its tokens.
type ServiceAccount struct {
	UserInfo     User          `json:"userInfo"`
	AccessTokens []AccessToken `json:"accessTokens"`
}

// CreateTokenRequest creates a service account or a PAT.
type CreateTokenRequest struct {
	Name         string `json:"name"`
	PublicKey    string `json:"publicKey"`
	ExternalID   string `json:"externalId,omitempty"`
	DaysValid    int    `json:"daysValid,omitempty"`
	SecondsValid int    `json:"secondsValid,omitempty"`
}

// UpdateRequest renames a service account or PAT.
type UpdateRequest struct {
	Name       *string `json:"name,omitempty"`
	ExternalID *string `json:"externalId,omitempty"`
}

type items[T any] struct {
	Items         []T    `json:"items"`
	NextPageToken string `json:"nextPageToken,omitempty"`
}

// CreateServiceAccount creates a service account; its token is in AccessTokens[0].
func (c *Client) CreateServiceAccount(ctx context.Context, r CreateTokenRequest) (*ServiceAccount, error) {
	var out ServiceAccount
	return &out, c.Do(ctx, http.MethodPost, "/auth/service-accounts", r, &out)
}

// ListServiceAccounts lists the organization's service accounts.
func (c *Client) ListServiceAccounts(ctx context.Context) ([]ServiceAccount, error) {
	var out items[ServiceAccount]
	return out.Items, c.Do(ctx, http.MethodGet, "/auth/service-accounts", nil, &out)
}

// GetServiceAccount returns a service account.
func (c *Client) GetServiceAccount(ctx context.Context, id string) (*ServiceAccount, error) {
	var out ServiceAccount
	return &out, c.Do(ctx, http.MethodGet, "/auth/service-accounts/"+url.PathEscape(id), nil, &out)
}

// UpdateServiceAccount renames a service account.
func (c *Client) UpdateServiceAccount(ctx context.Context, id string, r UpdateRequest) (*ServiceAccount, error) {
	var out ServiceAccount
	return &out, c.Do(ctx, http.MethodPut, "/auth/service-accounts/"+url.PathEscape(id), r, &out)
}

// ActivateServiceAccount activates a service account.
func (c *Client) ActivateServiceAccount(ctx context.Context, id string) (*ServiceAccount, error) {
	var out ServiceAccount
	return &out, c.Do(ctx, http.MethodPut, "/auth/service-accounts/"+url.PathEscape(id)+"/activate", nil, &out)
}

// DeactivateServiceAccount deactivates a service account; its tokens stop working at once.
func (c *Client) DeactivateServiceAccount(ctx context.Context, id string) (*ServiceAccount, error) {
	var out ServiceAccount
	return &out, c.Do(ctx, http.MethodPut, "/auth/service-accounts/"+url.PathEscape(id)+"/deactivate", nil, &out)
}

// ArchiveServiceAccount deletes (archives) a service account.
func (c *Client) ArchiveServiceAccount(ctx context.Context, id string) (*ServiceAccount, error) {
	var out ServiceAccount
	return &out, c.Do(ctx, http.MethodDelete, "/auth/service-accounts/"+url.PathEscape(id), nil, &out)
}

// CreatePAT creates a personal access token for the caller.
func (c *Client) CreatePAT(ctx context.Context, r CreateTokenRequest) (*AccessToken, error) {
	var out AccessToken
	return &out, c.Do(ctx, http.MethodPost, "/auth/pats", r, &out)
}

// ListPATs lists the caller's personal access tokens.
func (c *Client) ListPATs(ctx context.Context) ([]AccessToken, error) {
	var out items[AccessToken]
	return out.Items, c.Do(ctx, http.MethodGet, "/auth/pats", nil, &out)
}

// GetPAT returns one of the caller's personal access tokens.
func (c *Client) GetPAT(ctx context.Context, id string) (*AccessToken, error) {
	var out AccessToken
	return &out, c.Do(ctx, http.MethodGet, "/auth/pats/"+url.PathEscape(id), nil, &out)
}

// SetPATActive activates or deactivates a personal access token.
func (c *Client) SetPATActive(ctx context.Context, id string, active bool) (*AccessToken, error) {
	op := "/deactivate"
	if active {
		op = "/activate"
	}
	var out AccessToken
	return &out, c.Do(ctx, http.MethodPut, "/auth/pats/"+url.PathEscape(id)+op, nil, &out)
}

// ArchivePAT deletes (archives) a personal access token.
func (c *Client) ArchivePAT(ctx context.Context, id string) (*AccessToken, error) {
	var out AccessToken
	return &out, c.Do(ctx, http.MethodDelete, "/auth/pats/"+url.PathEscape(id), nil, &out)
}
