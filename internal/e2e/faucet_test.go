package e2e

import (
	"context"
	"net/http"
	"testing"

	"github.com/countersign/countersign/internal/app/apptest"
	"github.com/countersign/countersign/internal/testutil"
)

type assetsResp struct {
	WalletID string `json:"walletId"`
	Network  string `json:"network"`
	Assets   []struct {
		Kind     string `json:"kind"`
		Contract string `json:"contract"`
		Symbol   string `json:"symbol"`
		Decimals int    `json:"decimals"`
		Balance  string `json:"balance"`
	} `json:"assets"`
}

func TestFaucetAndAssets(t *testing.T) {
	e := testutil.Engines(t)[0] // the dev chain, not the database, is under test here
	n := apptest.Start(t, e, apptest.Options{})
	ctx := context.Background()
	c := n.Admin
	var w walletResp
	if err := c.Do(ctx, http.MethodPost, "/wallets", map[string]any{"network": "BaseSepolia"}, &w); err != nil {
		t.Fatal(err)
	}
	var info struct {
		Network string `json:"network"`
		Token   struct {
			Contract string `json:"contract"`
			Symbol   string `json:"symbol"`
			Decimals int    `json:"decimals"`
		} `json:"token"`
	}
	if err := c.Do(ctx, http.MethodGet, "/dev/faucet?network=BaseSepolia", nil, &info); err != nil || info.Token.Contract == "" {
		t.Fatalf("faucet info: %+v %v", info, err)
	}
	var tx struct {
		TxHash string `json:"txHash"`
	}
	if err := c.Do(ctx, http.MethodPost, "/dev/faucet", map[string]any{"network": "BaseSepolia", "address": w.Address, "amount": "1000000000000000000"}, &tx); err != nil || len(tx.TxHash) != 66 {
		t.Fatalf("fund: %+v %v", tx, err)
	}
	if err := c.Do(ctx, http.MethodPost, "/dev/faucet", map[string]any{"network": "BaseSepolia", "address": w.Address, "amount": "5000", "contract": info.Token.Contract}, &tx); err != nil {
		t.Fatalf("mint: %v", err)
	}
	var as assetsResp
	if err := c.Do(ctx, http.MethodGet, "/wallets/"+w.ID+"/assets", nil, &as); err != nil {
		t.Fatal(err)
	}
	if as.WalletID != w.ID || len(as.Assets) != 2 || as.Assets[0].Kind != "Native" || as.Assets[0].Balance != "1000000000000000000" ||
		as.Assets[0].Symbol != "ETH" || as.Assets[1].Kind != "Erc20" || as.Assets[1].Balance != "5000" {
		t.Fatalf("assets %+v", as)
	}
	for _, tt := range []struct {
		name string
		body map[string]any
		want int
	}{
		{"fail/negative", map[string]any{"network": "BaseSepolia", "address": w.Address, "amount": "-1"}, 400},
		{"fail/decimal", map[string]any{"network": "BaseSepolia", "address": w.Address, "amount": "1.5"}, 400},
		{"fail/huge", map[string]any{"network": "BaseSepolia", "address": w.Address, "amount": "1" + string(make([]byte, 0)) + "0000000000000000000000000000000000000000000000000000000000000000000000000000000"}, 400},
		{"fail/bad-address", map[string]any{"network": "BaseSepolia", "address": "0x1234", "amount": "1"}, 400},
		{"fail/unknown-network", map[string]any{"network": "Narnia", "address": w.Address, "amount": "1"}, 400},
		{"fail/other-contract", map[string]any{"network": "BaseSepolia", "address": w.Address, "amount": "1", "contract": "0x000000000000000000000000000000000000dEaD"}, 400},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := c.Do(ctx, http.MethodPost, "/dev/faucet", tt.body, nil); status(err) != tt.want {
				t.Fatalf("got %v, want %d", err, tt.want)
			}
		})
	}
}
