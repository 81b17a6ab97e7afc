// Package auth turns a bearer token into a Principal. Tokens are EdDSA-signed JWTs carrying
// the Dfns claims that SDKs read (https://custom/app_metadata, https://custom/username);
// the server never stores a token, only the id it names, and checks that id on every
// request so deactivation takes effect at once on every node.
package auth

import "context"

// Token kinds, as written in the tokenKind claim and the AccessToken.kind field.
const (
	KindServiceAccount = "ServiceAccount"
	KindPat            = "Pat"
	KindUser           = "User" // a login session of a person (registration/login flows)
)

// Principal is who is calling: an organization, a user, and the token used.
type Principal struct {
	OrgID            string
	UserID           string
	Username         string
	UserKind         string // CustomerEmployee | EndUser
	IsServiceAccount bool
	TokenKind        string
	TokenID          string
}

type ctxKey struct{}

// WithPrincipal returns a context carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// FromContext returns the principal of an authenticated request.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(ctxKey{}).(Principal)
	return p, ok
}
