// Package identity owns organizations, users, their credentials, and the token-bearing
// identities built on them: service accounts and personal access tokens (dfns-api.md §3.6,
// §4.1). A token's key credential is what signs its user actions.
package identity

import (
	"time"
)

// Statuses shared by users, credentials and tokens.
const (
	Active   = "Active"
	Inactive = "Inactive"
	Archived = "Archived"
)

// User kinds (Dfns). Service accounts are users of kind CustomerEmployee with IsServiceAccount.
const (
	CustomerEmployee = "CustomerEmployee"
	EndUser          = "EndUser"
)

// Credential kinds (Dfns).
const (
	CredKey  = "Key"
	CredFido = "Fido2"
)

// Org is a tenant; every row belongs to exactly one.
type Org struct {
	ID        string
	Name      string
	CreatedAt time.Time
}

// User is a person or a service account.
type User struct {
	ID               string
	OrgID            string
	Username         string
	Name             string
	Kind             string
	IsServiceAccount bool
	Status           string
	IsRegistered     bool
	ExternalID       string
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

// Credential is a public key able to sign user actions (and, for people, log in).
type Credential struct {
	UUID      string // cr-…
	OrgID     string
	UserID    string
	CredID    string // the id clients send in assertions
	Kind      string
	Name      string
	PublicKey []byte // PEM text for Key credentials
	Algorithm string
	Status    string
	CreatedAt time.Time
}

// AccessToken is a long-lived service-account token or PAT. The token string itself is
// never stored: it is only returned once, in Secret, by the call that creates it.
type AccessToken struct {
	ID         string // to-…
	OrgID      string
	UserID     string
	Kind       string // auth.KindServiceAccount | auth.KindPat
	Name       string
	ExternalID string
	Status     string
	CreatedAt  time.Time
	UpdatedAt  time.Time
	ExpiresAt  time.Time
	Credential Credential
	Secret     string
}

// ServiceAccount is a user with its tokens.
type ServiceAccount struct {
	User   User
	Tokens []AccessToken
}
