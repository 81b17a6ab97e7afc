package app_test

import (
	"context"
	"errors"
	"log/slog"
	"math/big"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/crypto"

	"github.com/countersign/countersign/internal/app"
	"github.com/countersign/countersign/internal/identity"
	"github.com/countersign/countersign/internal/ids"
	"github.com/countersign/countersign/internal/keys"
	"github.com/countersign/countersign/internal/store"
	"github.com/countersign/countersign/internal/testutil"
	"github.com/countersign/countersign/internal/wallets"
)

// TestOnIncomingHook checks the wiring the webhooks rely on: the indexer calls
// App.OnIncoming for each new incoming event inside the transaction that stores it, so a
// failing hook stores nothing and the next run tries again.
func TestOnIncomingHook(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		ctx := t.Context()
		a, err := app.New(ctx, cfg(t.TempDir(), e.DSN(t)), slog.New(slog.DiscardHandler), app.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { a.Close() }) // not served: the indexer runs only when called here
		at := time.Now().UTC().Truncate(time.Millisecond)
		org := identity.Org{ID: ids.New("or"), Name: "org", CreatedAt: at}
		if err := a.DB.CreateOrg(ctx, org); err != nil {
			t.Fatal(err)
		}
		pk, _ := crypto.GenerateKey()
		k := keys.Key{ID: ids.NewAt("key", at), OrgID: org.ID, Scheme: keys.SchemeECDSA, Curve: keys.CurveSecp256k1,
			PublicKey: crypto.CompressPubkey(&pk.PublicKey), Sealed: []byte{1}, Status: keys.Active, CreatedAt: at, UpdatedAt: at}
		w := wallets.Wallet{ID: ids.NewAt("wa", at), OrgID: org.ID, Network: "BaseSepolia", Key: k, Status: wallets.Active,
			Address: crypto.PubkeyToAddress(pk.PublicKey).Hex(), Tags: []string{}, CreatedAt: at, UpdatedAt: at}
		if err := a.DB.CreateWallet(ctx, w, true); err != nil {
			t.Fatal(err)
		}
		tx, err := a.Chains.Fund(ctx, w.Network, w.Address, big.NewInt(99))
		if err != nil {
			t.Fatal(err)
		}

		var seen []wallets.HistoryEvent
		fail := true
		a.OnIncoming = func(ctx context.Context, tx *store.Tx, e wallets.HistoryEvent) error {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM wallet_history WHERE wallet_id = $1`, e.WalletID).Scan(&n); err != nil || n != 1 {
				return errors.New("the event is not in the hook's transaction")
			}
			if fail {
				return errors.New("webhook outbox unavailable")
			}
			seen = append(seen, e)
			return nil
		}
		list := func() []wallets.HistoryEvent {
			es, err := a.DB.ListHistory(ctx, org.ID, w.ID, wallets.HistoryQuery{Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			return es
		}
		if n, _ := a.Wallets.IndexNetworks(ctx); n != 0 || len(list()) != 0 {
			t.Fatalf("a failing hook: %d events added, %d stored; want none", n, len(list()))
		}
		fail = false
		if n, err := a.Wallets.IndexNetworks(ctx); err != nil || n != 1 {
			t.Fatalf("indexed %d, %v; want 1", n, err)
		}
		if len(seen) != 1 || seen[0].TxHash != tx || seen[0].Direction != wallets.In || seen[0].Value != "99" {
			t.Fatalf("hook saw %+v, want the funding %s", seen, tx)
		}
		if n, _ := a.Wallets.IndexNetworks(ctx); n != 0 || len(seen) != 1 {
			t.Fatalf("a rerun added %d and called the hook %d times", n, len(seen))
		}
	})
}
