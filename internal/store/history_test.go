package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/countersign/countersign/internal/errs"
	"github.com/countersign/countersign/internal/ids"
	"github.com/countersign/countersign/internal/keys"
	"github.com/countersign/countersign/internal/store"
	"github.com/countersign/countersign/internal/wallets"
)

// historyWallet stores a wallet of f's organization on network with address addr.
func historyWallet(t *testing.T, db *store.DB, f fixture, network, addr string) wallets.Wallet {
	t.Helper()
	at := now()
	k := keys.Key{ID: ids.NewAt("key", at), OrgID: f.org.ID, Scheme: keys.SchemeECDSA, Curve: keys.CurveSecp256k1,
		PublicKey: []byte{2, 1}, Sealed: []byte{1}, Status: keys.Active, CreatedAt: at, UpdatedAt: at}
	w := wallets.Wallet{ID: ids.NewAt("wa", at), OrgID: f.org.ID, Network: network, Address: addr, Key: k,
		Status: wallets.Active, Tags: []string{}, CreatedAt: at, UpdatedAt: at}
	if err := db.CreateWallet(t.Context(), w, true); err != nil {
		t.Fatal(err)
	}
	return w
}

// event is a history event of w at block, transaction index tx and log index (-1: native).
func event(w wallets.Wallet, dir string, block uint64, tx uint, log int) wallets.HistoryEvent {
	e := wallets.HistoryEvent{WalletID: w.ID, OrgID: w.OrgID, Network: w.Network, Kind: wallets.NativeTransfer, Direction: dir,
		TxHash: fmt.Sprintf("0x%064x", block*1000+uint64(tx)), TxIndex: tx, LogIndex: log, BlockNumber: block, BlockTime: now(),
		From: "0xfrom", To: "0xto", Value: "5", Symbol: "ETH", Decimals: 18, Verified: true, CreatedAt: now()}
	if log >= 0 {
		e.Kind, e.Contract, e.Symbol, e.Decimals, e.Verified = wallets.Erc20Transfer, "0xtoken", "TEST", 6, false
	}
	if dir == wallets.Out {
		e.Fee = "21000"
	}
	return e
}

// TestHistoryRecord checks that recording is idempotent (also when raced on two nodes),
// that the hook runs once per new incoming event inside the transaction, and that a failing
// hook leaves nothing behind, the cursor included.
func TestHistoryRecord(t *testing.T) {
	forEachTopology(t, func(t *testing.T, dbs []*store.DB) {
		ctx := t.Context()
		db := dbs[0]
		f := seed(t, db)
		a := historyWallet(t, db, f, "BaseSepolia", "0xaaa")
		b := historyWallet(t, db, f, "BaseSepolia", "0xbbb")
		events := []wallets.HistoryEvent{event(a, wallets.Out, 5, 0, -1), event(b, wallets.In, 5, 0, -1),
			event(a, wallets.Out, 6, 1, 3), event(b, wallets.In, 6, 1, 3), event(a, wallets.In, 7, 0, 0)}
		cursor := wallets.ChainCursor{Network: "BaseSepolia", Block: 7, Hash: "0x07", At: now()}

		if _, err := db.GetChainCursor(ctx, "BaseSepolia"); errs.KindOf(err) != errs.NotFound {
			t.Fatalf("cursor before indexing: %v, want NotFound", err)
		}
		boom := errors.New("boom")
		before := snapshot(t, db)
		if _, err := db.RecordHistory(ctx, events, cursor, func(context.Context, *store.Tx, wallets.HistoryEvent) error { return boom }); err == nil {
			t.Fatal("a failing hook did not fail the recording")
		}
		if after := snapshot(t, db); after != before {
			t.Fatal("a failed recording left rows behind")
		}

		var mu sync.Mutex
		var hooked []string
		hook := func(ctx context.Context, tx *store.Tx, e wallets.HistoryEvent) error {
			// The event is visible inside the hook's transaction.
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM wallet_history WHERE wallet_id = $1 AND tx_hash = $2`,
				e.WalletID, e.TxHash).Scan(&n); err != nil || n != 1 {
				return fmt.Errorf("event not in the hook's transaction: %d, %v", n, err)
			}
			mu.Lock()
			hooked = append(hooked, e.WalletID+"/"+e.SortKey())
			mu.Unlock()
			return nil
		}
		var added []int
		race(6, func(i int) {
			n, err := dbs[i%len(dbs)].RecordHistory(ctx, events, cursor, hook)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			added = append(added, n)
			mu.Unlock()
		})
		slices.Sort(added)
		if want := []int{0, 0, 0, 0, 0, len(events)}; !slices.Equal(added, want) {
			t.Fatalf("added %v, want %v", added, want)
		}
		if len(hooked) != 3 {
			t.Fatalf("hook ran for %v, want the 3 incoming events once each", hooked)
		}
		got, err := db.GetChainCursor(ctx, "BaseSepolia")
		if err != nil || got.Block != 7 || got.Hash != "0x07" {
			t.Fatalf("cursor %+v, %v", got, err)
		}
		if n, err := db.RecordHistory(ctx, nil, wallets.ChainCursor{Network: "BaseSepolia", Block: 0, Hash: "0x00", At: now()}, hook); err != nil || n != 0 {
			t.Fatalf("cursor reset: %d, %v", n, err)
		}
		if got, _ := db.GetChainCursor(ctx, "BaseSepolia"); got.Block != 0 || got.Hash != "0x00" {
			t.Fatalf("cursor after reset %+v", got)
		}
	})
}

// TestHistoryList checks order, pagination, filters and organization scoping.
func TestHistoryList(t *testing.T) {
	forEachTopology(t, func(t *testing.T, dbs []*store.DB) {
		ctx := t.Context()
		db := dbs[0]
		f := seed(t, db)
		a := historyWallet(t, db, f, "BaseSepolia", "0xaaa")
		other := historyWallet(t, db, seed(t, db), "EthereumSepolia", "0xccc")
		events := []wallets.HistoryEvent{
			event(a, wallets.In, 9, 2, -1), event(a, wallets.Out, 9, 2, 4), event(a, wallets.In, 9, 2, 4),
			event(a, wallets.Out, 12, 0, -1), event(a, wallets.In, 3, 7, 1), event(other, wallets.In, 4, 0, -1),
		}
		if _, err := db.RecordHistory(ctx, events, wallets.ChainCursor{Network: "BaseSepolia", Block: 12, At: now()}, nil); err != nil {
			t.Fatal(err)
		}
		list := func(orgID, walletID string, q wallets.HistoryQuery) []wallets.HistoryEvent {
			t.Helper()
			if q.Limit == 0 {
				q.Limit = 100
			}
			es, err := db.ListHistory(ctx, orgID, walletID, q)
			if err != nil {
				t.Fatal(err)
			}
			return es
		}
		all := list(f.org.ID, a.ID, wallets.HistoryQuery{})
		keysOf := func(es []wallets.HistoryEvent) []string {
			var out []string
			for _, e := range es {
				out = append(out, fmt.Sprintf("%d/%d/%d/%s", e.BlockNumber, e.TxIndex, e.LogIndex, e.Direction))
			}
			return out
		}
		want := []string{"12/0/-1/Out", "9/2/4/Out", "9/2/4/In", "9/2/-1/In", "3/7/1/In"}
		if got := keysOf(all); !slices.Equal(got, want) {
			t.Fatalf("order %v, want %v", got, want)
		}
		if e := all[1]; e.Fee != "21000" || e.Contract != "0xtoken" || e.Symbol != "TEST" || e.Decimals != 6 || e.Verified ||
			e.Value != "5" || !e.BlockTime.Equal(events[1].BlockTime) || e.Kind != wallets.Erc20Transfer {
			t.Fatalf("stored event %+v, want %+v", e, events[1])
		}
		var paged []wallets.HistoryEvent
		after := ""
		for {
			page := list(f.org.ID, a.ID, wallets.HistoryQuery{Limit: 2, After: after})
			paged = append(paged, page...)
			if len(page) < 2 {
				break
			}
			after = page[len(page)-1].SortKey()
		}
		if got := keysOf(paged); !slices.Equal(got, want) {
			t.Fatalf("pages %v, want %v", got, want)
		}
		for _, tt := range []struct {
			name string
			q    wallets.HistoryQuery
			want int
		}{
			{"direction", wallets.HistoryQuery{Direction: wallets.In}, 3},
			{"kind", wallets.HistoryQuery{Kind: wallets.Erc20Transfer}, 3},
			{"contract-and-direction", wallets.HistoryQuery{Contract: "0xtoken", Direction: wallets.Out}, 1},
			{"unknown-contract", wallets.HistoryQuery{Contract: "0xnope"}, 0},
		} {
			if got := list(f.org.ID, a.ID, tt.q); len(got) != tt.want {
				t.Errorf("%s: %d events, want %d", tt.name, len(got), tt.want)
			}
		}
		if got := list(other.OrgID, a.ID, wallets.HistoryQuery{}); len(got) != 0 {
			t.Fatalf("another organization lists %d events of a wallet not its own", len(got))
		}
		nets, err := db.HistoryNetworks(ctx)
		if err != nil || !slices.Equal(nets, []string{"BaseSepolia", "EthereumSepolia"}) {
			t.Fatalf("networks %v, %v", nets, err)
		}
		ws, err := db.WatchedWallets(ctx, "EthereumSepolia")
		if err != nil || len(ws) != 1 || ws[0] != (wallets.Watched{ID: other.ID, OrgID: other.OrgID, Address: "0xccc"}) {
			t.Fatalf("watched %+v, %v", ws, err)
		}
	})
}
