package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/countersign/countersign/client"
	"github.com/countersign/countersign/internal/app/apptest"
	"github.com/countersign/countersign/internal/store"
	"github.com/countersign/countersign/internal/testutil"
)

// historyItem is a GetWalletHistoryResponse item as the Dfns SDKs type it.
type historyItem struct {
	WalletID    string `json:"walletId"`
	Direction   string `json:"direction"`
	Network     string `json:"network"`
	BlockNumber int64  `json:"blockNumber"`
	TxHash      string `json:"txHash"`
	Index       string `json:"index"`
	Timestamp   string `json:"timestamp"`
	Metadata    struct {
		Asset struct {
			Symbol   string `json:"symbol"`
			Decimals int    `json:"decimals"`
			Verified bool   `json:"verified"`
		} `json:"asset"`
		Fee *struct {
			Symbol   string `json:"symbol"`
			Decimals int    `json:"decimals"`
		} `json:"fee"`
	} `json:"metadata"`
	Kind     string `json:"kind"`
	Contract string `json:"contract"`
	From     string `json:"from"`
	To       string `json:"to"`
	Value    string `json:"value"`
	Fee      string `json:"fee"`
	Symbol   string `json:"symbol"`
	Decimals int    `json:"decimals"`
}

type historyList struct {
	WalletID      string        `json:"walletId"`
	Network       string        `json:"network"`
	Items         []historyItem `json:"items"`
	NextPageToken string        `json:"nextPageToken"`
}

// TestWalletHistory funds wallet A from the faucet (native and the test token), sends both
// to wallet B, and checks that the indexer job puts every movement in both histories, in
// the Dfns shape, once, whatever reruns.
func TestWalletHistory(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		n := apptest.Start(t, e, apptest.Options{})
		ctx := context.Background()
		c := n.Admin
		const network = "BaseSepolia"
		newWallet := func() walletResp { return createWallet(t, c, network) }
		info := faucetInfo(t, c, network)
		a, b := newWallet(), newWallet()
		faucet := func(body map[string]any) string {
			t.Helper()
			var r struct {
				TxHash string `json:"txHash"`
			}
			if err := c.Do(ctx, http.MethodPost, "/dev/faucet", body, &r); err != nil {
				t.Fatal(err)
			}
			return r.TxHash
		}
		fundTx := faucet(map[string]any{"network": network, "address": a.Address, "amount": "1000000000000000000"})
		mintTx := faucet(map[string]any{"network": network, "address": a.Address, "amount": "1000000", "contract": info.Token.Contract})

		send := func(body map[string]any) transferResp {
			t.Helper()
			return requestConfirmed(t, c, "/wallets/"+a.ID+"/transfers", body,
				func(r *transferResp) (string, string) { return r.ID, r.Status })
		}
		native := send(map[string]any{"kind": "Native", "to": b.Address, "amount": "12345"})
		token := send(map[string]any{"kind": "Erc20", "contract": info.Token.Contract, "to": b.Address, "amount": "777"})

		list := func(t *testing.T, cl *client.Client, walletID, query string) (historyList, error) {
			t.Helper()
			var l historyList
			err := cl.Do(ctx, http.MethodGet, "/wallets/"+walletID+"/history"+query, nil, &l)
			return l, err
		}
		// The indexer runs every couple of seconds; give a loaded machine plenty of time.
		await := func(walletID string, want int) historyList {
			t.Helper()
			deadline := time.Now().Add(90 * time.Second)
			for {
				l, err := list(t, c, walletID, "")
				if err != nil {
					t.Fatal(err)
				}
				if len(l.Items) >= want || time.Now().After(deadline) {
					if len(l.Items) != want {
						t.Fatalf("history of %s has %d items, want %d: %+v", walletID, len(l.Items), want, l.Items)
					}
					return l
				}
				time.Sleep(250 * time.Millisecond)
			}
		}
		histA, histB := await(a.ID, 4), await(b.ID, 2)

		zero := "0x0000000000000000000000000000000000000000"
		type want struct {
			kind, direction, tx, from, to, value string
			fee                                  bool
		}
		check := func(t *testing.T, l historyList, w walletResp, wants []want) {
			t.Helper()
			if l.WalletID != w.ID || l.Network != network || l.NextPageToken != "" {
				t.Fatalf("list header %q %q %q", l.WalletID, l.Network, l.NextPageToken)
			}
			for i, it := range l.Items {
				wt := wants[i]
				if it.Kind != wt.kind || it.Direction != wt.direction || it.TxHash != wt.tx || it.Value != wt.value ||
					(wt.from != "" && it.From != wt.from) || it.To != wt.to || it.WalletID != w.ID || it.Network != network {
					t.Fatalf("item %d = %+v, want %+v", i, it, wt)
				}
				if _, err := time.Parse("2006-01-02T15:04:05.000Z", it.Timestamp); err != nil || it.BlockNumber <= 0 || it.Index == "" {
					t.Fatalf("item %d: timestamp %q, block %d, index %q", i, it.Timestamp, it.BlockNumber, it.Index)
				}
				if i > 0 && it.BlockNumber > l.Items[i-1].BlockNumber {
					t.Fatalf("items are not newest first: %+v", l.Items)
				}
				asset := it.Metadata.Asset
				switch it.Kind {
				case "NativeTransfer":
					if asset.Symbol != "ETH" || asset.Decimals != 18 || !asset.Verified || it.Symbol != "ETH" || it.Decimals != 18 || it.Contract != "" {
						t.Fatalf("native item %d metadata %+v", i, it)
					}
				case "Erc20Transfer":
					if asset.Symbol != info.Token.Symbol || asset.Decimals != info.Token.Decimals || it.Decimals != info.Token.Decimals ||
						!strings.EqualFold(it.Contract, info.Token.Contract) {
						t.Fatalf("token item %d metadata %+v", i, it)
					}
				}
				if wt.fee != (it.Fee != "") || wt.fee != (it.Metadata.Fee != nil) {
					t.Fatalf("item %d fee %q / %+v, want fee %v", i, it.Fee, it.Metadata.Fee, wt.fee)
				}
			}
		}
		check(t, histA, a, []want{
			{"Erc20Transfer", "Out", token.TxHash, a.Address, b.Address, "777", true},
			{"NativeTransfer", "Out", native.TxHash, a.Address, b.Address, "12345", true},
			{"Erc20Transfer", "In", mintTx, zero, a.Address, "1000000", false},
			{"NativeTransfer", "In", fundTx, "", a.Address, "1000000000000000000", false},
		})
		check(t, histB, b, []want{
			{"Erc20Transfer", "In", token.TxHash, a.Address, b.Address, "777", false},
			{"NativeTransfer", "In", native.TxHash, a.Address, b.Address, "12345", false},
		})
		if histA.Items[0].Fee != token.Fee || histA.Items[1].Fee != native.Fee || histA.Items[1].Metadata.Fee.Symbol != "ETH" {
			t.Fatalf("fees %q %q, want the transfers' %q %q", histA.Items[0].Fee, histA.Items[1].Fee, token.Fee, native.Fee)
		}

		t.Run("wire", func(t *testing.T) {
			var raw struct {
				Items []map[string]any `json:"items"`
			}
			if err := c.Do(ctx, http.MethodGet, "/wallets/"+a.ID+"/history", nil, &raw); err != nil {
				t.Fatal(err)
			}
			it := raw.Items[0]
			if _, ok := it["blockNumber"].(float64); !ok {
				t.Fatalf("blockNumber is %T, want a number", it["blockNumber"])
			}
			if _, ok := it["index"].(string); !ok {
				t.Fatalf("index is %T, want a string", it["index"])
			}
			if _, ok := it["decimals"].(float64); !ok {
				t.Fatalf("decimals is %T, want a number", it["decimals"])
			}
			if _, ok := raw.Items[2]["fee"]; ok {
				t.Fatal("an incoming item carries a fee")
			}
		})

		t.Run("pagination", func(t *testing.T) {
			var got []historyItem
			token := ""
			for pages := 0; ; pages++ {
				if pages > 4 {
					t.Fatal("pagination does not end")
				}
				q := "?limit=1"
				if token != "" {
					q += "&paginationToken=" + url.QueryEscape(token)
				}
				l, err := list(t, c, a.ID, q)
				if err != nil {
					t.Fatal(err)
				}
				if len(l.Items) != 1 {
					t.Fatalf("page %d has %d items", pages, len(l.Items))
				}
				got = append(got, l.Items...)
				if token = l.NextPageToken; token == "" {
					break
				}
			}
			if len(got) != 4 || !slices.EqualFunc(got, histA.Items, func(x, y historyItem) bool {
				return x.TxHash == y.TxHash && x.Direction == y.Direction && x.Kind == y.Kind
			}) {
				t.Fatalf("pages gave %+v, want %+v", got, histA.Items)
			}
			if l, err := list(t, c, a.ID, "?limit=3"); err != nil || len(l.Items) != 3 || l.NextPageToken == "" {
				t.Fatalf("limit=3: %d items, next %q, %v", len(l.Items), l.NextPageToken, err)
			}
		})

		t.Run("filters", func(t *testing.T) {
			for _, tt := range []struct {
				name, query string
				want        int
			}{
				{"out", "?direction=Out", 2},
				{"in", "?direction=In", 2},
				{"erc20", "?kind=Erc20Transfer", 2},
				{"native-in", "?kind=NativeTransfer&direction=In", 1},
				{"contract", "?contract=" + strings.ToLower(info.Token.Contract), 2},
				{"other-kind", "?kind=SplTransfer", 0},
			} {
				t.Run(tt.name, func(t *testing.T) {
					l, err := list(t, c, a.ID, tt.query)
					if err != nil || len(l.Items) != tt.want {
						t.Fatalf("%d items, %v; want %d", len(l.Items), err, tt.want)
					}
				})
			}
		})

		t.Run("refused", func(t *testing.T) {
			org2 := newOrg(t, n)
			for _, tt := range []struct {
				name   string
				cl     *client.Client
				wallet string
				query  string
				want   int
			}{
				{"fail/other-org", org2.Client, a.ID, "", 404},
				{"fail/unknown-wallet", c, "wa-00000-00000-0000000000000000", "", 404},
				{"fail/direction", c, a.ID, "?direction=Sideways", 400},
				{"fail/kind", c, a.ID, "?kind=Erc20", 400},
				{"fail/contract", c, a.ID, "?contract=0x12", 400},
				{"fail/limit", c, a.ID, "?limit=0", 400},
			} {
				t.Run(tt.name, func(t *testing.T) {
					if _, err := list(t, tt.cl, tt.wallet, tt.query); status(err) != tt.want {
						t.Fatalf("got %v, want %d", err, tt.want)
					}
				})
			}
		})

		t.Run("rerun", func(t *testing.T) {
			if added, err := n.App.Wallets.IndexNetworks(ctx); err != nil || added != 0 {
				t.Fatalf("rerun added %d, %v", added, err)
			}
			// Forget the cursor: the whole chain is read again, and still nothing is added.
			if before, after := reindexFromGenesis(t, n); after != before || before != 6 {
				t.Fatalf("%d history rows after reruns, %d before, want 6", after, before)
			}
			// The indexer is one job for the whole node (cluster), however often it was inserted.
			var jobs int
			if err := n.App.DB.Tx(ctx, func(tx *store.Tx) error {
				return tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM river_job WHERE kind = 'wallet_history_index'`).Scan(&jobs)
			}); err != nil || jobs != 1 {
				t.Fatalf("%d indexer jobs, %v; want 1", jobs, err)
			}
			raw, _ := json.Marshal(histA.Items)
			if l, err := list(t, c, a.ID, ""); err != nil || len(l.Items) != 4 {
				t.Fatalf("history after reruns: %d items, %v (before: %s)", len(l.Items), err, raw)
			}
		})
	})
}

// reindexFromGenesis forgets every network's cursor and indexes the whole chain again,
// three times; each run must add nothing. It returns the history rows before and after.
func reindexFromGenesis(t testing.TB, n *apptest.Node) (before, after int) {
	t.Helper()
	ctx := context.Background()
	count := func() int {
		t.Helper()
		var k int
		if err := n.App.DB.Tx(ctx, func(tx *store.Tx) error {
			return tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM wallet_history`).Scan(&k)
		}); err != nil {
			t.Fatal(err)
		}
		return k
	}
	before = count()
	if err := n.App.DB.Tx(ctx, func(tx *store.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM chain_cursors`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if added, err := n.App.Wallets.IndexNetworks(ctx); err != nil || added != 0 {
			t.Fatalf("reindex from genesis added %d, %v", added, err)
		}
	}
	return before, count()
}
