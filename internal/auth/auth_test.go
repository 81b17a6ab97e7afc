package auth_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/countersign/countersign/internal/auth"
	"github.com/countersign/countersign/internal/errs"
	"github.com/countersign/countersign/internal/identity"
	"github.com/countersign/countersign/internal/secrets"
	"github.com/countersign/countersign/internal/store"
	"github.com/countersign/countersign/internal/testutil"
)

type fixture struct {
	db    *store.DB
	keys  *auth.Keyring
	authn *auth.Authenticator
	clock *testutil.Clock
	token string
	sa    identity.ServiceAccount
}

func setup(t testing.TB, e testutil.Engine) *fixture {
	ctx := context.Background()
	ring, err := secrets.NewRing([]secrets.KEK{{ID: "k1", Key: make([]byte, 32)}})
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(ctx, e.DSN(t), ring)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx, nil); err != nil {
		t.Fatal(err)
	}
	f := &fixture{db: db, clock: testutil.NewClock()}
	if f.keys, err = auth.LoadKeyring(ctx, db); err != nil {
		t.Fatal(err)
	}
	f.authn = auth.NewAuthenticator(f.keys, db, f.clock.Now)
	idsvc := identity.NewService(db, f.keys, f.clock.Now)
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	org := identity.Org{ID: "or-aaaaa-aaaaa-aaaaaaaaaaaaaaaa", Name: "t", CreatedAt: f.clock.Now()}
	f.sa, err = idsvc.NewServiceAccount(org.ID, identity.CreateTokenRequest{Name: "svc", PublicKey: pemOf(t, pub), DaysValid: ptr(1)})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := db.Bootstrap(ctx, org, f.sa); err != nil || !ok {
		t.Fatal(ok, err)
	}
	f.token = f.sa.Tokens[0].Secret
	return f
}

func ptr[T any](v T) *T { return &v }

func TestAuthenticate(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		f := setup(t, e)
		ctx := context.Background()
		p, err := f.authn.Authenticate(ctx, "Bearer "+f.token)
		if err != nil {
			t.Fatal(err)
		}
		if p.UserID != f.sa.User.ID || p.TokenID != f.sa.Tokens[0].ID || p.TokenKind != auth.KindServiceAccount || !p.IsServiceAccount {
			t.Fatalf("principal %+v", p)
		}
		parts := strings.Split(f.token, ".")
		_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
		forged := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{"iss": "countersign", "aud": "dfns:api",
			"exp": time.Now().Add(time.Hour).Unix(), "https://custom/app_metadata": map[string]string{
				"orgId": p.OrgID, "userId": p.UserID, "tokenKind": p.TokenKind, "tokenId": p.TokenID}})
		forged.Header["kid"] = "jwt-1"
		forgedS, _ := forged.SignedString(otherPriv)
		none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."
		hs := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": "countersign", "aud": "dfns:api", "exp": time.Now().Add(time.Hour).Unix()})
		hsS, _ := hs.SignedString([]byte("secret"))
		tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"https://custom/app_metadata":{"orgId":"or-x"}}`)) + "." + parts[2]
		for _, tt := range []struct{ name, header string }{
			{"fail/missing", ""},
			{"fail/not-bearer", "Basic abc"},
			{"fail/empty-bearer", "Bearer "},
			{"fail/garbage", "Bearer not.a.jwt"},
			{"fail/two-segments", "Bearer " + parts[0] + "." + parts[1]},
			{"fail/alg-none", "Bearer " + none},
			{"fail/hs256", "Bearer " + hsS},
			{"fail/forged-signature", "Bearer " + forgedS},
			{"fail/tampered-payload", "Bearer " + tampered},
			{"fail/oversized", "Bearer " + strings.Repeat("a", 9000)},
		} {
			t.Run(tt.name, func(t *testing.T) {
				if _, err := f.authn.Authenticate(ctx, tt.header); errs.KindOf(err) != errs.Unauthenticated {
					t.Fatalf("got %v, want Unauthenticated", err)
				}
			})
		}
		// Revocation is seen on the very next call, cached signature or not.
		if err := f.db.SetAccessTokenStatus(ctx, p.OrgID, p.TokenID, identity.Inactive, f.clock.Now()); err != nil {
			t.Fatal(err)
		}
		if _, err := f.authn.Authenticate(ctx, "Bearer "+f.token); errs.KindOf(err) != errs.Unauthenticated {
			t.Fatalf("revoked token: %v", err)
		}
		if err := f.db.SetAccessTokenStatus(ctx, p.OrgID, p.TokenID, identity.Active, f.clock.Now()); err != nil {
			t.Fatal(err)
		}
		if _, err := f.authn.Authenticate(ctx, "Bearer "+f.token); err != nil {
			t.Fatalf("reactivated token: %v", err)
		}
		// Expiry (daysValid 1) applies to a cached token too.
		f.clock.Advance(25 * time.Hour)
		if _, err := f.authn.Authenticate(ctx, "Bearer "+f.token); errs.KindOf(err) != errs.Unauthenticated {
			t.Fatalf("expired token: %v", err)
		}
	})
}

func FuzzAuthenticateHeader(f *testing.F) {
	fx := setup(f, testutil.Engines(f)[0])
	f.Add("Bearer a.b.c")
	f.Add("Bearer eyJhbGciOiJFZERTQSJ9.eyJ9.")
	f.Add("bearer x")
	f.Add("Bearer " + fx.token[:len(fx.token)-2])
	f.Fuzz(func(t *testing.T, h string) {
		if h == "Bearer "+fx.token || h == "Bearer "+fx.token+" " {
			return
		}
		if _, err := fx.authn.Authenticate(context.Background(), h); err == nil || errs.KindOf(err) != errs.Unauthenticated {
			t.Fatalf("header %q: %v", h, err)
		}
	})
}
