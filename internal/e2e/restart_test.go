package e2e

import (
	"context"
	"math/big"
	"net/http"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/countersign/countersign/internal/app/apptest"
	"github.com/countersign/countersign/internal/testutil"
)

// TestTransferSurvivesStopBeforeBroadcast: a transfer is signed and stored by a node that
// stops before any job ran (an API-only node, as if killed right after answering); a
// node started later on the same database and data directory broadcasts it exactly once.
func TestTransferSurvivesStopBeforeBroadcast(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		ctx := context.Background()
		dsn, dir := e.DSN(t), t.TempDir()
		a := apptest.Start(t, e, apptest.Options{DSN: dsn, DataDir: dir, NoJobs: true})
		var w walletResp
		if err := a.Admin.Do(ctx, http.MethodPost, "/wallets", map[string]any{"network": "EthereumSepolia"}, &w); err != nil {
			t.Fatal(err)
		}
		if err := a.Admin.Do(ctx, http.MethodPost, "/dev/faucet", map[string]any{"network": "EthereumSepolia", "address": w.Address, "amount": "1000000000000000000"}, nil); err != nil {
			t.Fatal(err)
		}
		var tr transferResp
		if err := a.Admin.Do(ctx, http.MethodPost, "/wallets/"+w.ID+"/transfers", map[string]any{"kind": "Native", "to": "0x000000000000000000000000000000000000dEaD", "amount": "12345"}, &tr); err != nil {
			t.Fatal(err)
		}
		if tr.Status != "Executing" {
			t.Fatalf("status %s, want Executing", tr.Status)
		}
		backend, err := a.App.Chains.Get(ctx, "EthereumSepolia")
		if err != nil {
			t.Fatal(err)
		}
		if n, err := backend.Client.NonceAt(ctx, common.HexToAddress(w.Address), nil); err != nil || n != 0 {
			t.Fatalf("broadcast before any job ran: nonce %d %v", n, err)
		}
		a.Stop()

		b := apptest.Start(t, e, apptest.Options{DSN: dsn, DataDir: dir})
		deadline := time.Now().Add(30 * time.Second)
		for {
			if err := b.Admin.Do(ctx, http.MethodGet, "/wallets/"+w.ID+"/transfers/"+tr.ID, nil, &tr); err != nil {
				t.Fatal(err)
			}
			if tr.Status == "Confirmed" || tr.Status == "Failed" || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if tr.Status != "Confirmed" {
			t.Fatalf("after restart: %+v", tr)
		}
		backend, err = b.App.Chains.Get(ctx, "EthereumSepolia")
		if err != nil {
			t.Fatal(err)
		}
		if n, err := backend.Client.NonceAt(ctx, common.HexToAddress(w.Address), nil); err != nil || n != 1 {
			t.Fatalf("want exactly one transaction from the wallet, nonce %d %v", n, err)
		}
		var as assetsResp
		// The dev chain came back with the node: the wallet paid 12345 wei plus the fee, once.
		if err := b.Admin.Do(ctx, http.MethodGet, "/wallets/"+w.ID+"/assets", nil, &as); err != nil || len(as.Assets) == 0 {
			t.Fatalf("assets: %+v %v", as, err)
		}
		fee, _ := new(big.Int).SetString(tr.Fee, 10)
		want := new(big.Int).Sub(big.NewInt(1e18), big.NewInt(12345))
		if want.Sub(want, fee).String() != as.Assets[0].Balance {
			t.Fatalf("balance %s, want 1e18 - 12345 - fee %s", as.Assets[0].Balance, tr.Fee)
		}
	})
}
