package e2e

import (
	"context"
	"testing"

	"github.com/countersign/countersign/client"
	"github.com/countersign/countersign/internal/app/apptest"
	"github.com/countersign/countersign/internal/testutil"
)

func TestServiceAccountLifecycle(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		n := apptest.Start(t, e, apptest.Options{})
		ctx := context.Background()
		k := newKey(t, "Ed25519")
		sa, err := n.Admin.CreateServiceAccount(ctx, client.CreateTokenRequest{Name: "svc", PublicKey: k.PublicPEM})
		if err != nil {
			t.Fatal(err)
		}
		if !sa.UserInfo.IsServiceAccount || len(sa.AccessTokens) != 1 || sa.AccessTokens[0].AccessToken == "" {
			t.Fatalf("unexpected service account %+v", sa)
		}
		svc := client.New(n.URL, sa.AccessTokens[0].AccessToken, k.Signer(t, sa.AccessTokens[0].CredID))
		list, err := svc.ListServiceAccounts(ctx)
		if err != nil || len(list) != 2 {
			t.Fatalf("list: %d %v", len(list), err)
		}
		if _, err := n.Admin.DeactivateServiceAccount(ctx, sa.UserInfo.UserID); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.ListServiceAccounts(ctx); status(err) != 401 {
			t.Fatalf("deactivated token: got %v, want 401", err)
		}
	})
}
