package httpapi

import (
	"time"

	"github.com/countersign/countersign/internal/identity"
)

// jsTime formats like JavaScript's Date.toISOString (dfns-api.md §6.4).
func jsTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

type userJSON struct {
	UserID                string `json:"userId"`
	Username              string `json:"username"`
	Name                  string `json:"name"`
	Kind                  string `json:"kind"`
	OrgID                 string `json:"orgId"`
	CredentialUUID        string `json:"credentialUuid"`
	IsActive              bool   `json:"isActive"`
	IsServiceAccount      bool   `json:"isServiceAccount"`
	IsRegistered          bool   `json:"isRegistered"`
	ExternalID            string `json:"externalId,omitempty"`
	PermissionAssignments []any  `json:"permissionAssignments"`
}

type accessTokenJSON struct {
	AccessToken           string `json:"accessToken,omitempty"`
	TokenID               string `json:"tokenId"`
	Kind                  string `json:"kind"`
	Name                  string `json:"name"`
	OrgID                 string `json:"orgId"`
	LinkedUserID          string `json:"linkedUserId"`
	LinkedAppID           string `json:"linkedAppId"` // always "": there are no legacy applications here
	CredID                string `json:"credId"`
	PublicKey             string `json:"publicKey"`
	IsActive              bool   `json:"isActive"`
	ExternalID            string `json:"externalId,omitempty"`
	DateCreated           string `json:"dateCreated"`
	ExpiresAt             string `json:"expiresAt"`
	PermissionAssignments []any  `json:"permissionAssignments"`
}

type serviceAccountJSON struct {
	UserInfo     userJSON          `json:"userInfo"`
	AccessTokens []accessTokenJSON `json:"accessTokens"`
}

type itemsJSON[T any] struct {
	Items         []T    `json:"items"`
	NextPageToken string `json:"nextPageToken,omitempty"`
}

func toAccessToken(t identity.AccessToken) accessTokenJSON {
	return accessTokenJSON{
		AccessToken: t.Secret, TokenID: t.ID, Kind: t.Kind, Name: t.Name, OrgID: t.OrgID,
		LinkedUserID: t.UserID, CredID: t.Credential.CredID, PublicKey: string(t.Credential.PublicKey),
		IsActive: t.Status == identity.Active, ExternalID: t.ExternalID,
		DateCreated: jsTime(t.CreatedAt), ExpiresAt: jsTime(t.ExpiresAt), PermissionAssignments: []any{},
	}
}

func toServiceAccount(sa identity.ServiceAccount) serviceAccountJSON {
	out := serviceAccountJSON{
		UserInfo: userJSON{
			UserID: sa.User.ID, Username: sa.User.Username, Name: sa.User.Name, Kind: sa.User.Kind,
			OrgID: sa.User.OrgID, IsActive: sa.User.Status == identity.Active,
			IsServiceAccount: true, IsRegistered: sa.User.IsRegistered, ExternalID: sa.User.ExternalID,
			PermissionAssignments: []any{},
		},
		AccessTokens: make([]accessTokenJSON, 0, len(sa.Tokens)),
	}
	for _, t := range sa.Tokens {
		if out.UserInfo.CredentialUUID == "" {
			out.UserInfo.CredentialUUID = t.Credential.UUID
		}
		out.AccessTokens = append(out.AccessTokens, toAccessToken(t))
	}
	return out
}
