package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/countersign/countersign/internal/errs"
	"github.com/countersign/countersign/internal/ids"
)

const (
	issuer   = "countersign"
	audience = "dfns:api"
	// leeway absorbs clock skew between nodes.
	leeway = 5 * time.Second
)

// AppMetadata is the https://custom/app_metadata claim (dfns-api.md §1.4).
type AppMetadata struct {
	OrgID     string `json:"orgId"`
	UserID    string `json:"userId"`
	TokenKind string `json:"tokenKind"`
	TokenID   string `json:"tokenId"`
}

// Claims is the payload of every token we issue.
type Claims struct {
	jwt.RegisteredClaims
	Username string      `json:"https://custom/username"`
	App      AppMetadata `json:"https://custom/app_metadata"`
}

// SigningKey is a server signing key as stored (private part sealed by the caller).
type SigningKey struct {
	ID         string
	PublicKey  ed25519.PublicKey
	PrivateKey ed25519.PrivateKey // nil when only verification is possible
	CreatedAt  time.Time
}

// KeyStore persists server signing keys. Implementations seal the private key at rest.
type KeyStore interface {
	SigningKeys(ctx context.Context, purpose string) ([]SigningKey, error)
	// CreateSigningKey inserts k unless a key with the same id exists (then it is a no-op).
	CreateSigningKey(ctx context.Context, purpose string, k SigningKey) error
}

const jwtPurpose = "jwt"

// Keyring holds the JWT signing keys: the newest signs, all verify.
type Keyring struct {
	mu    sync.RWMutex
	keys  map[string]SigningKey
	sign  SigningKey
	store KeyStore
}

// LoadKeyring loads the JWT keys, creating the first one if there is none. Several nodes
// starting at once agree on one key because the first key's id is fixed.
func LoadKeyring(ctx context.Context, st KeyStore) (*Keyring, error) {
	kr := &Keyring{store: st}
	if err := kr.reload(ctx); err != nil {
		return nil, err
	}
	if kr.sign.PrivateKey == nil {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		k := SigningKey{ID: "jwt-1", PublicKey: pub, PrivateKey: priv, CreatedAt: time.Now()}
		if err := st.CreateSigningKey(ctx, jwtPurpose, k); err != nil {
			return nil, fmt.Errorf("auth: create JWT signing key: %w", err)
		}
		if err := kr.reload(ctx); err != nil {
			return nil, err
		}
		if kr.sign.PrivateKey == nil {
			return nil, errors.New("auth: no usable JWT signing key")
		}
	}
	return kr, nil
}

func (kr *Keyring) reload(ctx context.Context) error {
	keys, err := kr.store.SigningKeys(ctx, jwtPurpose)
	if err != nil {
		return err
	}
	m := make(map[string]SigningKey, len(keys))
	var newest SigningKey
	for _, k := range keys {
		m[k.ID] = k
		if k.PrivateKey != nil && (newest.PrivateKey == nil || k.CreatedAt.After(newest.CreatedAt)) {
			newest = k
		}
	}
	kr.mu.Lock()
	kr.keys, kr.sign = m, newest
	kr.mu.Unlock()
	return nil
}

func (kr *Keyring) key(id string) (SigningKey, bool) {
	kr.mu.RLock()
	defer kr.mu.RUnlock()
	k, ok := kr.keys[id]
	return k, ok
}

// Issue signs a token for p that expires at exp.
func (kr *Keyring) Issue(p Principal, now, exp time.Time) (string, error) {
	kr.mu.RLock()
	k := kr.sign
	kr.mu.RUnlock()
	c := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    issuer,
			Subject:   p.UserID,
			Audience:  jwt.ClaimStrings{audience},
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(exp),
			ID:        ids.Secret(12),
		},
		Username: p.Username,
		App:      AppMetadata{OrgID: p.OrgID, UserID: p.UserID, TokenKind: p.TokenKind, TokenID: p.TokenID},
	}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	t.Header["kid"] = k.ID
	return t.SignedString(k.PrivateKey)
}

// verify checks a token's signature and standard claims at time now.
func (kr *Keyring) verify(token string, now time.Time) (*Claims, error) {
	var c Claims
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{"EdDSA"}),
		jwt.WithIssuer(issuer),
		jwt.WithAudience(audience),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
	_, err := p.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		k, ok := kr.key(kid)
		if !ok {
			return nil, errors.New("unknown signing key")
		}
		return k.PublicKey, nil
	})
	if err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) {
			return nil, errs.E(errs.Unauthenticated, "authentication token has expired", err)
		}
		return nil, errs.E(errs.Unauthenticated, "authentication token is missing or invalid", err)
	}
	if c.App.OrgID == "" || c.App.UserID == "" || c.App.TokenID == "" || c.App.TokenKind == "" {
		return nil, errs.E(errs.Unauthenticated, "authentication token is missing or invalid", errors.New("incomplete claims"))
	}
	return &c, nil
}

// tokenHash keys the verified-token cache: a hit means exactly these bytes verified.
func tokenHash(token string) [32]byte { return sha256.Sum256([]byte(token)) }
