package store_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/countersign/countersign/internal/errs"
	"github.com/countersign/countersign/internal/ids"
	"github.com/countersign/countersign/internal/keys"
	"github.com/countersign/countersign/internal/store"
	"github.com/countersign/countersign/internal/wallets"
)

// TestTransactionsShareNonces: broadcast requests and transfers of one sender draw from one
// allocator; a request refused inside the transaction (a caller-given nonce that is not
// the next one) leaves the allocator and the tables as they were; the externalId is
// unique per organization; FailAndFill keeps one filler per nonce however often it runs.
func TestTransactionsShareNonces(t *testing.T) {
	forEachTopology(t, func(t *testing.T, dbs []*store.DB) {
		ctx := t.Context()
		db := dbs[0]
		f := seed(t, db)
		at := now()
		k := keys.Key{ID: ids.NewAt("key", at), OrgID: f.org.ID, Scheme: keys.SchemeECDSA, Curve: keys.CurveSecp256k1,
			PublicKey: []byte{2, 1}, Sealed: []byte{1}, Status: keys.Active, CreatedAt: at, UpdatedAt: at}
		w := wallets.Wallet{ID: ids.NewAt("wa", at), OrgID: f.org.ID, Network: "BaseSepolia", Address: "0xabc", Key: k,
			Status: wallets.Active, Tags: []string{}, CreatedAt: at, UpdatedAt: at}
		if err := db.CreateWallet(ctx, w, true); err != nil {
			t.Fatal(err)
		}
		none := func(context.Context, *store.Tx) error { return nil }
		sign := func(want *uint64) func(uint64) ([]byte, string, error) {
			return func(nonce uint64) ([]byte, string, error) {
				if want != nil && *want != nonce {
					return nil, "", errs.Ef(errs.Invalid, "nonce %d is not the next nonce %d", *want, nonce)
				}
				return []byte{byte(nonce)}, fmt.Sprintf("0x%064x", nonce), nil
			}
		}
		newTx := func(externalID string) wallets.Transaction {
			return wallets.Transaction{ID: ids.New("tx"), OrgID: f.org.ID, WalletID: w.ID, Network: w.Network,
				RequesterUserID: f.sa.User.ID, RequesterTokenID: f.tok.ID, RequestBody: []byte(`{}`), Status: wallets.Pending,
				ExternalID: externalID, CreatedAt: at}
		}
		tx0, err := db.CreateTransaction(ctx, newTx("ext-1"), w.Address, 3, sign(nil), none)
		if err != nil || tx0.Nonce != 3 {
			t.Fatalf("first: nonce %d %v, want 3", tx0.Nonce, err)
		}
		xfr, err := db.CreateTransfer(ctx, wallets.Transfer{ID: ids.New("xfr"), OrgID: f.org.ID, WalletID: w.ID, Network: w.Network,
			RequesterUserID: f.sa.User.ID, RequesterTokenID: f.tok.ID, RequestBody: []byte(`{}`), Status: wallets.Executing, CreatedAt: at},
			w.Address, 0, sign(nil), none)
		if err != nil || xfr.Nonce != 4 {
			t.Fatalf("transfer after a transaction: nonce %d %v, want 4", xfr.Nonce, err)
		}
		before, err := db.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, given := range []uint64{4, 9} {
			if _, err := db.CreateTransaction(ctx, newTx(""), w.Address, 0, sign(&given), none); !errs.Is(err, errs.Invalid) {
				t.Fatalf("nonce %d: %v, want Invalid", given, err)
			}
		}
		if _, err := db.CreateTransaction(ctx, newTx("ext-1"), w.Address, 0, sign(nil), none); !errs.Is(err, errs.Conflict) {
			t.Fatalf("same externalId: %v, want Conflict", err)
		}
		if after, err := db.Snapshot(ctx); err != nil || after != before {
			t.Fatalf("refused requests changed the database (%v)", err)
		}
		five := uint64(5)
		tx1, err := db.CreateTransaction(ctx, newTx(""), w.Address, 0, sign(&five), none)
		if err != nil || tx1.Nonce != 5 {
			t.Fatalf("the next nonce, given: %d %v", tx1.Nonce, err)
		}

		got, err := db.GetTransactionByExternalID(ctx, f.org.ID, "ext-1")
		if err != nil || got.ID != tx0.ID || got.Nonce != 3 || string(got.RawTx) != "\x03" {
			t.Fatalf("by externalId: %+v %v", got, err)
		}
		if _, err := db.GetTransaction(ctx, "or-other", tx0.ID); !errs.Is(err, errs.NotFound) {
			t.Fatalf("another org's transaction: %v, want NotFound", err)
		}
		list, err := db.ListTransactions(ctx, f.org.ID, w.ID, keys.Page{Limit: 1})
		if err != nil || len(list) != 1 || list[0].ID != tx1.ID {
			t.Fatalf("first page %+v %v", list, err)
		}
		if list, err = db.ListTransactions(ctx, f.org.ID, w.ID, keys.Page{Limit: 10, After: tx1.ID}); err != nil || len(list) != 1 || list[0].ID != tx0.ID {
			t.Fatalf("second page %+v %v", list, err)
		}

		// The transfer is refused for good: Failed, and one filler for its nonce.
		fill := wallets.NonceFill{Network: w.Network, Address: w.Address, Nonce: xfr.Nonce, Replaces: xfr.ID, RawTx: []byte{9},
			TxHash: "0xfill", Status: wallets.Pending, CreatedAt: at}
		queued := 0
		count := func(context.Context, *store.Tx) error { queued++; return nil }
		for range 2 {
			if err := dbs[len(dbs)-1].FailAndFill(ctx, xfr.ID, "refused", fill, count); err != nil {
				t.Fatal(err)
			}
		}
		if queued != 1 {
			t.Fatalf("filler jobs queued %d times, want once", queued)
		}
		if got, err := db.LoadTransfer(ctx, xfr.ID); err != nil || got.Status != wallets.Failed || got.Reason != "refused" {
			t.Fatalf("refused transfer %+v %v", got, err)
		}
		f2, err := db.LoadFill(ctx, w.Network, w.Address, xfr.Nonce)
		if err != nil || f2.Replaces != xfr.ID || f2.Status != wallets.Pending || f2.TxHash != "0xfill" {
			t.Fatalf("filler %+v %v", f2, err)
		}
		f2.Status, f2.ConfirmedAt = wallets.Confirmed, at
		if err := db.UpdateFill(ctx, f2); err != nil {
			t.Fatal(err)
		}
		f2.Status = wallets.Pending // a final status stays
		if err := db.UpdateFill(ctx, f2); err != nil {
			t.Fatal(err)
		}
		if f3, err := db.LoadFill(ctx, w.Network, w.Address, xfr.Nonce); err != nil || f3.Status != wallets.Confirmed || f3.ConfirmedAt.IsZero() {
			t.Fatalf("filler after updates %+v %v", f3, err)
		}
		if _, err := db.LoadFill(ctx, w.Network, w.Address, 99); !errs.Is(err, errs.NotFound) {
			t.Fatalf("no filler: %v, want NotFound", err)
		}
	})
}
