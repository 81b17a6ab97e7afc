package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/countersign/countersign/internal/ids"
	"github.com/countersign/countersign/internal/keys"
	"github.com/countersign/countersign/internal/store"
	"github.com/countersign/countersign/internal/wallets"
)

// TestTransferNonces races transfers of one sender, on one handle and (PostgreSQL) on two
// handles over one database, and checks that every transfer gets its own nonce, with no gap,
// that a rolled-back transfer gives its nonce back, and that the chain's count wins when it
// is ahead.
func TestTransferNonces(t *testing.T) {
	forEachTopology(t, func(t *testing.T, dbs []*store.DB) {
		ctx := t.Context()
		f := seed(t, dbs[0])
		at := now()
		k := keys.Key{ID: ids.NewAt("key", at), OrgID: f.org.ID, Scheme: keys.SchemeECDSA, Curve: keys.CurveSecp256k1,
			PublicKey: []byte{2, 1}, Sealed: []byte{1}, Status: keys.Active, CreatedAt: at, UpdatedAt: at}
		w := wallets.Wallet{ID: ids.NewAt("wa", at), OrgID: f.org.ID, Network: "BaseSepolia", Address: "0xabc", Key: k,
			Status: wallets.Active, Tags: []string{}, CreatedAt: at, UpdatedAt: at}
		if err := dbs[0].CreateWallet(ctx, w, true); err != nil {
			t.Fatal(err)
		}
		create := func(db *store.DB, chainNonce uint64, after func(context.Context, *store.Tx) error) (wallets.Transfer, error) {
			tr := wallets.Transfer{ID: ids.New("xfr"), OrgID: f.org.ID, WalletID: w.ID, Network: w.Network,
				RequesterUserID: f.sa.User.ID, RequesterTokenID: f.tok.ID, RequestBody: []byte(`{}`), Status: wallets.Executing,
				CreatedAt: at}
			return db.CreateTransfer(ctx, tr, w.Address, chainNonce, func(nonce uint64) ([]byte, string, error) {
				return []byte{byte(nonce)}, fmt.Sprintf("0x%064x", nonce), nil
			}, after)
		}
		none := func(context.Context, *store.Tx) error { return nil }

		const n = 40
		var mu sync.Mutex
		var got []uint64
		race(n, func(i int) {
			tr, err := create(dbs[i%len(dbs)], 5, none)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			got = append(got, tr.Nonce)
			mu.Unlock()
		})
		slices.Sort(got)
		for i, v := range got {
			if v != uint64(5+i) {
				t.Fatalf("nonces %v, want 5..%d each once", got, 5+n-1)
			}
		}

		boom := errors.New("boom")
		if _, err := create(dbs[0], 0, func(context.Context, *store.Tx) error { return boom }); err == nil {
			t.Fatal("a failing queue insert did not fail the transfer")
		}
		if tr, err := create(dbs[len(dbs)-1], 0, none); err != nil || tr.Nonce != 5+n {
			t.Fatalf("after a rollback: nonce %d, %v; want %d", tr.Nonce, err, 5+n)
		}
		if tr, err := create(dbs[0], 100, none); err != nil || tr.Nonce != 100 {
			t.Fatalf("chain ahead: nonce %d, %v; want 100", tr.Nonce, err)
		}
		ts := mustList(t, dbs[0], f.org.ID, w.ID)
		i := slices.IndexFunc(ts, func(tr wallets.Transfer) bool { return tr.Nonce == 100 })
		if i < 0 {
			t.Fatal("the transfer with nonce 100 is not listed")
		}
		got2, err := dbs[0].LoadTransfer(ctx, ts[i].ID)
		if err != nil || got2.Nonce != 100 || len(got2.RawTx) != 1 || got2.RawTx[0] != 100 || got2.Status != wallets.Executing {
			t.Fatalf("stored transfer %+v, %v", got2, err)
		}
	})
}

func mustList(t *testing.T, db *store.DB, orgID, walletID string) []wallets.Transfer {
	t.Helper()
	ts, err := db.ListTransfers(t.Context(), orgID, walletID, keys.Page{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 40+2 {
		t.Fatalf("%d transfers stored, want %d", len(ts), 40+2)
	}
	return ts
}
