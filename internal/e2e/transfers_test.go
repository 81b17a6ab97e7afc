package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/countersign/countersign/client"
	"github.com/countersign/countersign/internal/app/apptest"
	"github.com/countersign/countersign/internal/store"
	"github.com/countersign/countersign/internal/testutil"
)

type transferResp struct {
	ID          string          `json:"id"`
	WalletID    string          `json:"walletId"`
	Network     string          `json:"network"`
	RequestBody json.RawMessage `json:"requestBody"`
	Requester   struct {
		UserID string `json:"userId"`
	} `json:"requester"`
	Metadata struct {
		Asset struct {
			Symbol   string `json:"symbol"`
			Decimals int    `json:"decimals"`
			Verified bool   `json:"verified"`
		} `json:"asset"`
	} `json:"metadata"`
	Status          string `json:"status"`
	Reason          string `json:"reason"`
	TxHash          string `json:"txHash"`
	Fee             string `json:"fee"`
	DateRequested   string `json:"dateRequested"`
	DateBroadcasted string `json:"dateBroadcasted"`
	DateConfirmed   string `json:"dateConfirmed"`
	ExternalID      string `json:"externalId"`
}

type transferList struct {
	WalletID      string         `json:"walletId"`
	Items         []transferResp `json:"items"`
	NextPageToken string         `json:"nextPageToken"`
}

// requestConfirmed POSTs body to path (a wallet's transfers or transactions) and polls the
// request it answers until it is Confirmed; Failed, or no confirmation within a minute, fails t.
func requestConfirmed[T any](t testing.TB, c *client.Client, path string, body any, state func(*T) (id, status string)) T {
	t.Helper()
	ctx := context.Background()
	var r T
	if err := c.Do(ctx, http.MethodPost, path, body, &r); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		id, status := state(&r)
		if status == "Confirmed" {
			return r
		}
		if status == "Failed" || time.Now().After(deadline) {
			t.Fatalf("%s: %+v", path, r)
		}
		if err := c.Do(ctx, http.MethodGet, path+"/"+id, nil, &r); err != nil {
			t.Fatal(err)
		}
	}
}

// faucetInfoResp is GET /dev/faucet: the test token of a dev-chain network.
type faucetInfoResp struct {
	Network string `json:"network"`
	Token   struct {
		Contract string `json:"contract"`
		Symbol   string `json:"symbol"`
		Decimals int    `json:"decimals"`
	} `json:"token"`
}

// faucetInfo reads the dev faucet's test token on network.
func faucetInfo(t testing.TB, c *client.Client, network string) faucetInfoResp {
	t.Helper()
	var info faucetInfoResp
	if err := c.Do(context.Background(), http.MethodGet, "/dev/faucet?network="+network, nil, &info); err != nil {
		t.Fatal(err)
	}
	return info
}

// createWallet creates a wallet of the admin's organization on network.
func createWallet(t testing.TB, c *client.Client, network string) walletResp {
	t.Helper()
	var w walletResp
	if err := c.Do(context.Background(), http.MethodPost, "/wallets", map[string]any{"network": network}, &w); err != nil {
		t.Fatal(err)
	}
	return w
}

func TestTransfers(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		n := apptest.Start(t, e, apptest.Options{})
		ctx := context.Background()
		c := n.Admin
		const network = "BaseSepolia"
		newWallet := func() walletResp { return createWallet(t, c, network) }
		balances := func(id string) (native, token *big.Int) {
			t.Helper()
			var as assetsResp
			if err := c.Do(ctx, http.MethodGet, "/wallets/"+id+"/assets", nil, &as); err != nil {
				t.Fatal(err)
			}
			native, _ = new(big.Int).SetString(as.Assets[0].Balance, 10)
			token, _ = new(big.Int).SetString(as.Assets[1].Balance, 10)
			return native, token
		}
		info := faucetInfo(t, c, network)
		from, to := newWallet(), newWallet()
		for _, body := range []map[string]any{
			{"network": network, "address": from.Address, "amount": "1000000000000000000"},
			{"network": network, "address": from.Address, "amount": "1000000", "contract": info.Token.Contract},
		} {
			if err := c.Do(ctx, http.MethodPost, "/dev/faucet", body, nil); err != nil {
				t.Fatal(err)
			}
		}
		wait := func(t *testing.T, walletID, id string) transferResp {
			t.Helper()
			deadline := time.Now().Add(20 * time.Second)
			for {
				var tr transferResp
				if err := c.Do(ctx, http.MethodGet, "/wallets/"+walletID+"/transfers/"+id, nil, &tr); err != nil {
					t.Fatal(err)
				}
				if tr.Status == "Confirmed" || tr.Status == "Failed" || time.Now().After(deadline) {
					return tr
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		transfer := func(t *testing.T, body map[string]any) transferResp {
			t.Helper()
			var tr transferResp
			if err := c.Do(ctx, http.MethodPost, "/wallets/"+from.ID+"/transfers", body, &tr); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(tr.ID, "xfr-") || tr.WalletID != from.ID || tr.Network != network || tr.Requester.UserID == "" ||
				(tr.Status != "Executing" && tr.Status != "Broadcasted" && tr.Status != "Confirmed") || tr.DateRequested == "" {
				t.Fatalf("transfer %+v", tr)
			}
			return tr
		}
		count := func() int {
			t.Helper()
			var l transferList
			if err := c.Do(ctx, http.MethodGet, "/wallets/"+from.ID+"/transfers?limit=500", nil, &l); err != nil {
				t.Fatal(err)
			}
			return len(l.Items)
		}

		t.Run("Native", func(t *testing.T) {
			n0, _ := balances(from.ID)
			r0, _ := balances(to.ID)
			tr := transfer(t, map[string]any{"kind": "Native", "to": to.Address, "amount": "12345", "priority": "Fast"})
			tr = wait(t, from.ID, tr.ID)
			if tr.Status != "Confirmed" || len(tr.TxHash) != 66 || tr.Fee == "" || tr.DateBroadcasted == "" || tr.DateConfirmed == "" ||
				tr.Metadata.Asset.Symbol != "ETH" || tr.Metadata.Asset.Decimals != 18 || !tr.Metadata.Asset.Verified {
				t.Fatalf("transfer %+v", tr)
			}
			fee, _ := new(big.Int).SetString(tr.Fee, 10)
			n1, _ := balances(from.ID)
			r1, _ := balances(to.ID)
			if want := new(big.Int).Sub(new(big.Int).Sub(n0, big.NewInt(12345)), fee); n1.Cmp(want) != 0 {
				t.Fatalf("sender balance %s, want %s", n1, want)
			}
			if want := new(big.Int).Add(r0, big.NewInt(12345)); r1.Cmp(want) != 0 {
				t.Fatalf("receiver balance %s, want %s", r1, want)
			}

			// The job runs at least once: replaying it from the start (as after a crash between
			// the send and the status update) resends the same bytes and ends in the same state.
			if err := n.App.DB.Tx(ctx, func(tx *store.Tx) error {
				_, err := tx.ExecContext(ctx, `UPDATE transfers SET status = 'Executing', fee = NULL, broadcasted_at = NULL,
					confirmed_at = NULL WHERE id = $1`, tr.ID)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			for range 2 {
				if err := n.App.Wallets.Advance(ctx, tr.ID); err != nil {
					t.Fatal(err)
				}
			}
			again := wait(t, from.ID, tr.ID)
			if again.Status != "Confirmed" || again.TxHash != tr.TxHash || again.Fee != tr.Fee {
				t.Fatalf("replayed job: %+v, want %+v", again, tr)
			}
			if n2, _ := balances(from.ID); n2.Cmp(n1) != 0 {
				t.Fatalf("sender balance %s after the replayed job, want %s", n2, n1)
			}
		})

		t.Run("Erc20", func(t *testing.T) {
			n0, t0 := balances(from.ID)
			_, r0 := balances(to.ID)
			tr := transfer(t, map[string]any{"kind": "Erc20", "contract": info.Token.Contract, "to": to.Address, "amount": "777"})
			tr = wait(t, from.ID, tr.ID)
			if tr.Status != "Confirmed" || tr.Metadata.Asset.Symbol != info.Token.Symbol || tr.Metadata.Asset.Decimals != info.Token.Decimals {
				t.Fatalf("transfer %+v", tr)
			}
			fee, _ := new(big.Int).SetString(tr.Fee, 10)
			n1, t1 := balances(from.ID)
			_, r1 := balances(to.ID)
			if want := new(big.Int).Sub(t0, big.NewInt(777)); t1.Cmp(want) != 0 {
				t.Fatalf("sender tokens %s, want %s", t1, want)
			}
			if want := new(big.Int).Add(r0, big.NewInt(777)); r1.Cmp(want) != 0 {
				t.Fatalf("receiver tokens %s, want %s", r1, want)
			}
			if want := new(big.Int).Sub(n0, fee); n1.Cmp(want) != 0 {
				t.Fatalf("sender native %s, want %s (fee %s)", n1, want, fee)
			}
		})

		t.Run("Idempotency", func(t *testing.T) {
			body := map[string]any{"kind": "Native", "to": to.Address, "amount": "1", "externalId": "xfr-ext-1"}
			first := transfer(t, body)
			again := transfer(t, map[string]any{"externalId": "xfr-ext-1", "amount": "1", "to": to.Address, "kind": "Native"})
			if again.ID != first.ID {
				t.Fatalf("replay gave %s, want %s", again.ID, first.ID)
			}
			err := c.Do(ctx, http.MethodPost, "/wallets/"+from.ID+"/transfers", map[string]any{"kind": "Native", "to": to.Address, "amount": "2", "externalId": "xfr-ext-1"}, nil)
			var ce *client.Error
			if !errors.As(err, &ce) || ce.Status != 409 {
				t.Fatalf("different body: %v, want 409", err)
			}
			var eb struct {
				Error struct {
					Details struct {
						Duplicate struct {
							ID         string `json:"id"`
							ExternalID string `json:"externalId"`
						} `json:"duplicate"`
					} `json:"details"`
				} `json:"error"`
			}
			if json.Unmarshal(ce.Body, &eb) != nil || eb.Error.Details.Duplicate.ID != first.ID || eb.Error.Details.Duplicate.ExternalID != "xfr-ext-1" {
				t.Fatalf("409 body %s", ce.Body)
			}
			if tr := wait(t, from.ID, first.ID); tr.Status != "Confirmed" || tr.ExternalID != "xfr-ext-1" {
				t.Fatalf("transfer %+v", tr)
			}
		})

		t.Run("Concurrent", func(t *testing.T) {
			const k = 50
			_, r0 := balances(to.ID)
			ids := make([]string, k)
			var wg sync.WaitGroup
			errc := make(chan error, k)
			for i := range k {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var tr transferResp
					body := map[string]any{"kind": "Erc20", "contract": info.Token.Contract, "to": to.Address, "amount": fmt.Sprint(i + 1)}
					if err := c.Do(ctx, http.MethodPost, "/wallets/"+from.ID+"/transfers", body, &tr); err != nil {
						errc <- err
						return
					}
					ids[i] = tr.ID
				}()
			}
			wg.Wait()
			close(errc)
			for err := range errc {
				t.Fatal(err)
			}
			// Two transactions of one sender with the same nonce cannot both be mined, so
			// k confirmed transfers with k distinct hashes had k distinct nonces.
			hashes := map[string]bool{}
			for _, id := range ids {
				tr := wait(t, from.ID, id)
				if tr.Status != "Confirmed" || hashes[tr.TxHash] {
					t.Fatalf("transfer %+v", tr)
				}
				hashes[tr.TxHash] = true
			}
			_, r1 := balances(to.ID)
			if want := new(big.Int).Add(r0, big.NewInt(k*(k+1)/2)); r1.Cmp(want) != 0 {
				t.Fatalf("receiver tokens %s, want %s", r1, want)
			}
		})

		t.Run("List", func(t *testing.T) {
			var l transferList
			if err := c.Do(ctx, http.MethodGet, "/wallets/"+from.ID+"/transfers?limit=2", nil, &l); err != nil {
				t.Fatal(err)
			}
			if l.WalletID != from.ID || len(l.Items) != 2 || l.NextPageToken == "" || l.Items[0].ID <= l.Items[1].ID {
				t.Fatalf("list %+v", l)
			}
			var l2 transferList
			if err := c.Do(ctx, http.MethodGet, "/wallets/"+from.ID+"/transfers?limit=2&paginationToken="+l.NextPageToken, nil, &l2); err != nil {
				t.Fatal(err)
			}
			if len(l2.Items) == 0 || l2.Items[0].ID >= l.Items[1].ID {
				t.Fatalf("page 2 %+v", l2)
			}
		})

		t.Run("Refused", func(t *testing.T) {
			before := count()
			empty := newWallet()
			for _, tt := range []struct {
				name   string
				wallet string
				body   map[string]any
				want   int
			}{
				{"fail/bad-address", from.ID, map[string]any{"kind": "Native", "to": "0x1234", "amount": "1"}, 400},
				{"fail/bad-checksum", from.ID, map[string]any{"kind": "Native", "to": flipCase(to.Address), "amount": "1"}, 400},
				{"fail/decimal", from.ID, map[string]any{"kind": "Native", "to": to.Address, "amount": "1.5"}, 400},
				{"fail/negative", from.ID, map[string]any{"kind": "Native", "to": to.Address, "amount": "-1"}, 400},
				{"fail/zero", from.ID, map[string]any{"kind": "Native", "to": to.Address, "amount": "0"}, 400},
				{"fail/huge", from.ID, map[string]any{"kind": "Native", "to": to.Address, "amount": "1" + strings.Repeat("0", 80)}, 400},
				{"fail/number", from.ID, map[string]any{"kind": "Native", "to": to.Address, "amount": 1}, 400},
				{"fail/unknown-kind", from.ID, map[string]any{"kind": "Erc721", "to": to.Address, "amount": "1"}, 400},
				{"fail/no-kind", from.ID, map[string]any{"to": to.Address, "amount": "1"}, 400},
				{"fail/missing-contract", from.ID, map[string]any{"kind": "Erc20", "to": to.Address, "amount": "1"}, 400},
				{"fail/bad-priority", from.ID, map[string]any{"kind": "Native", "to": to.Address, "amount": "1", "priority": "Ludicrous"}, 400},
				{"fail/too-much-native", from.ID, map[string]any{"kind": "Native", "to": to.Address, "amount": "1000000000000000000000"}, 400},
				{"fail/too-much-token", from.ID, map[string]any{"kind": "Erc20", "contract": info.Token.Contract, "to": to.Address, "amount": "1000000000"}, 400},
				{"fail/contract-refuses-coin", from.ID, map[string]any{"kind": "Native", "to": info.Token.Contract, "amount": "1"}, 400},
				{"fail/not-a-token", from.ID, map[string]any{"kind": "Erc20", "contract": to.Address, "to": to.Address, "amount": "1"}, 400},
				{"fail/unknown-field", from.ID, map[string]any{"kind": "Native", "to": to.Address, "amount": "1", "tokenId": "1"}, 400},
				{"fail/unfunded", empty.ID, map[string]any{"kind": "Native", "to": to.Address, "amount": "1"}, 400},
				{"fail/unknown-wallet", "wa-00000-00000-0000000000000000", map[string]any{"kind": "Native", "to": to.Address, "amount": "1"}, 404},
			} {
				t.Run(tt.name, func(t *testing.T) {
					if err := c.Do(ctx, http.MethodPost, "/wallets/"+tt.wallet+"/transfers", tt.body, nil); status(err) != tt.want {
						t.Fatalf("got %v, want %d", err, tt.want)
					}
				})
			}
			t.Run("fail/other-org", func(t *testing.T) {
				org2 := newOrg(t, n)
				body := map[string]any{"kind": "Native", "to": to.Address, "amount": "1"}
				if err := org2.Client.Do(ctx, http.MethodPost, "/wallets/"+from.ID+"/transfers", body, nil); status(err) != 404 {
					t.Fatalf("transfer from another org's wallet: %v, want 404", err)
				}
				if err := org2.Client.Do(ctx, http.MethodGet, "/wallets/"+from.ID+"/transfers", nil, nil); status(err) != 404 {
					t.Fatalf("list another org's transfers: %v, want 404", err)
				}
			})
			if after := count(); after != before {
				t.Fatalf("%d transfers after refused requests, want %d", after, before)
			}
		})
	})
}

// flipCase changes the case of the first letter of a checksummed address, breaking its
// EIP-55 checksum while keeping it mixed-case.
func flipCase(addr string) string {
	b := []byte(addr)
	for i := 2; i < len(b); i++ {
		switch {
		case b[i] >= 'a' && b[i] <= 'f':
			b[i] -= 'a' - 'A'
			return string(b)
		case b[i] >= 'A' && b[i] <= 'F':
			b[i] += 'a' - 'A'
			return string(b)
		}
	}
	return addr
}
