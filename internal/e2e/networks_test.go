package e2e

import (
	"context"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/common"

	"github.com/countersign/countersign/client"
	"github.com/countersign/countersign/internal/app/apptest"
	"github.com/countersign/countersign/internal/testutil"
)

// TestNetworks drives GET /networks/fees and POST /networks/read-contract (dfns-api.md §4.7)
// over HTTP against the embedded dev chain: the fees shown are the ones a transfer pays,
// read-contract reads what the faucet minted, and bad input is refused with nothing changed.
func TestNetworks(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		n := apptest.Start(t, e, apptest.Options{})
		ctx := context.Background()
		c := n.Admin
		const network = "EthereumSepolia"
		info := faucetInfo(t, c, network)
		from, to := createWallet(t, c, network), createWallet(t, c, network)
		const minted = 4242
		for _, body := range []map[string]any{
			{"network": network, "address": from.Address, "amount": "1000000000000000000"},
			{"network": network, "address": from.Address, "amount": fmt.Sprint(minted), "contract": info.Token.Contract},
		} {
			if err := c.Do(ctx, http.MethodPost, "/dev/faucet", body, nil); err != nil {
				t.Fatal(err)
			}
		}
		backend, err := n.App.Chains.Get(ctx, network)
		if err != nil {
			t.Fatal(err)
		}
		num := func(t *testing.T, what, s string) *big.Int {
			t.Helper()
			v, ok := new(big.Int).SetString(s, 10)
			if !ok || v.Sign() < 0 {
				t.Fatalf("%s = %q, want a decimal integer", what, s)
			}
			return v
		}
		fees := func(t *testing.T) *client.NetworkFees {
			t.Helper()
			f, err := c.GetNetworkFees(ctx, network)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}

		t.Run("Fees", func(t *testing.T) {
			// The wire types: strings for the offers and baseFeePerGas, numbers for
			// blockNumber and estimatedBaseFee (TS SDK generated/networks/types.ts).
			code, raw, err := c.Raw(ctx, http.MethodGet, "/networks/fees?network="+network, nil, "")
			if err != nil || code != 200 {
				t.Fatalf("GET /networks/fees: %d %v %s", code, err, raw)
			}
			var m map[string]any
			decodeJSON(t, raw, &m)
			if m["kind"] != "Eip1559" || m["network"] != network {
				t.Fatalf("fees %s", raw)
			}
			for _, k := range []string{"blockNumber", "estimatedBaseFee"} {
				if _, ok := m[k].(float64); !ok {
					t.Fatalf("%s is %T, want a number: %s", k, m[k], raw)
				}
			}
			if _, ok := m["baseFeePerGas"].(string); !ok {
				t.Fatalf("baseFeePerGas is %T, want a string: %s", m["baseFeePerGas"], raw)
			}
			for _, p := range []string{"slow", "standard", "fast"} {
				o, _ := m[p].(map[string]any)
				for _, k := range []string{"maxPriorityFeePerGas", "maxFeePerGas"} {
					if _, ok := o[k].(string); !ok {
						t.Fatalf("%s.%s is %T, want a string: %s", p, k, o[k], raw)
					}
				}
			}

			f := fees(t)
			head, err := backend.Client.HeaderByNumber(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if f.BlockNumber != head.Number.Uint64() {
				t.Fatalf("blockNumber %d, chain head %d", f.BlockNumber, head.Number)
			}
			base := num(t, "baseFeePerGas", f.BaseFeePerGas)
			if f.EstimatedBaseFee.String() != f.BaseFeePerGas || base.Sign() == 0 {
				t.Fatalf("estimatedBaseFee %s, baseFeePerGas %s", f.EstimatedBaseFee, f.BaseFeePerGas)
			}
			// The next block's base fee is within 12.5% of the head's (EIP-1559).
			lo, hi := new(big.Int).Div(new(big.Int).Mul(head.BaseFee, big.NewInt(7)), big.NewInt(8)),
				new(big.Int).Div(new(big.Int).Mul(head.BaseFee, big.NewInt(9)), big.NewInt(8))
			if base.Cmp(lo) < 0 || base.Cmp(hi) > 0 {
				t.Fatalf("estimated base fee %s, head base fee %s", base, head.BaseFee)
			}
			var prevTip, prevMax *big.Int
			for _, o := range []struct {
				name string
				fee  client.FeeOffer
			}{{"slow", f.Slow}, {"standard", f.Standard}, {"fast", f.Fast}} {
				tip, maxFee := num(t, o.name+".maxPriorityFeePerGas", o.fee.MaxPriorityFeePerGas), num(t, o.name+".maxFeePerGas", o.fee.MaxFeePerGas)
				if tip.Sign() == 0 || maxFee.Cmp(new(big.Int).Add(base, tip)) < 0 {
					t.Fatalf("%s: maxFeePerGas %s < baseFee %s + tip %s", o.name, maxFee, base, tip)
				}
				if prevTip != nil && (tip.Cmp(prevTip) < 0 || maxFee.Cmp(prevMax) < 0) {
					t.Fatalf("%s offers less than the priority below it: %+v", o.name, f)
				}
				prevTip, prevMax = tip, maxFee
			}
			if f.Slow == f.Fast {
				t.Fatalf("slow and fast offer the same: %+v", f)
			}
		})

		t.Run("TransferPaysTheFeeShown", func(t *testing.T) {
			for _, priority := range []string{"Fast", "Slow"} {
				t.Run(priority, func(t *testing.T) {
					f := fees(t)
					offer := map[string]client.FeeOffer{"Fast": f.Fast, "Slow": f.Slow}[priority]
					var tr transferResp
					if err := c.Do(ctx, http.MethodPost, "/wallets/"+from.ID+"/transfers",
						map[string]any{"kind": "Native", "to": to.Address, "amount": "1000", "priority": priority}, &tr); err != nil {
						t.Fatal(err)
					}
					tr = waitTransfer(t, n, c.Token, from.ID, tr.ID)
					if tr.Status != "Confirmed" {
						t.Fatalf("transfer %+v", tr)
					}
					tx, _, err := backend.Client.TransactionByHash(ctx, common.HexToHash(tr.TxHash))
					if err != nil {
						t.Fatal(err)
					}
					if tx.GasTipCap().String() != offer.MaxPriorityFeePerGas || tx.GasFeeCap().String() != offer.MaxFeePerGas {
						t.Fatalf("signed tx caps tip %s max %s, %s offer %+v", tx.GasTipCap(), tx.GasFeeCap(), priority, offer)
					}
					rc, err := backend.Client.TransactionReceipt(ctx, tx.Hash())
					if err != nil {
						t.Fatal(err)
					}
					if rc.BlockNumber.Uint64() != f.BlockNumber+1 {
						t.Fatalf("mined in block %d, fees were for head %d: another block came in between", rc.BlockNumber, f.BlockNumber)
					}
					// It paid the estimated base fee plus the tip shown, per gas.
					perGas := new(big.Int).Add(num(t, "baseFeePerGas", f.BaseFeePerGas), num(t, "tip", offer.MaxPriorityFeePerGas))
					if want := new(big.Int).Mul(perGas, big.NewInt(21000)); tr.Fee != want.String() {
						t.Fatalf("transfer fee %s, want %s (21000 × (base %s + tip %s))", tr.Fee, want, f.BaseFeePerGas, offer.MaxPriorityFeePerGas)
					}
				})
			}
		})

		balanceOf := "0x70a08231" + strings.Repeat("0", 24) + strings.ToLower(from.Address[2:])
		t.Run("ReadContract", func(t *testing.T) {
			got, err := c.ReadContract(ctx, client.ReadContractRequest{Kind: "Evm", Network: network, Contract: info.Token.Contract, Data: balanceOf})
			if err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf("0x%064x", minted); got != want {
				t.Fatalf("balanceOf = %s, want %s", got, want)
			}
			// decimals() with a lower-case contract address; and no user action is needed:
			// a bare request with the bearer token only, as the TS SDK sends it.
			body := mustJSON(t, map[string]any{"kind": "Evm", "network": network, "contract": strings.ToLower(info.Token.Contract), "data": "0x313ce567"})
			code, raw, err := c.Raw(ctx, http.MethodPost, "/networks/read-contract", body, "")
			if err != nil {
				t.Fatal(err)
			}
			checkStatus(t, "read-contract without a user action", code, raw, 200)
			var out struct{ Kind, Data string }
			decodeJSON(t, raw, &out)
			if want := fmt.Sprintf("0x%064x", info.Token.Decimals); out.Kind != "Evm" || out.Data != want {
				t.Fatalf("decimals: %s, want data %s", raw, want)
			}
			// An address without code returns nothing.
			if got, err := c.ReadContract(ctx, client.ReadContractRequest{Kind: "Evm", Network: network, Contract: to.Address, Data: "0x313ce567"}); err != nil || got != "0x" {
				t.Fatalf("call to an account: %q %v", got, err)
			}
		})

		t.Run("Refused", func(t *testing.T) {
			before := snapshot(t, n)
			anon := client.New(n.URL, "", nil)
			// transfer(to, 1) from the zero address (eth_call's default sender) reverts with
			// OpenZeppelin's ERC20InvalidSender(address), selector 96c6fd1e.
			transferData := "0xa9059cbb" + strings.Repeat("0", 24) + strings.ToLower(to.Address[2:]) + fmt.Sprintf("%064x", 1)
			rc := func(kind, network, contract, data any) []byte {
				m := map[string]any{}
				for k, v := range map[string]any{"kind": kind, "network": network, "contract": contract, "data": data} {
					if v != nil {
						m[k] = v
					}
				}
				return mustJSON(t, m)
			}
			tok := info.Token.Contract
			for _, tt := range []struct {
				name   string
				c      *client.Client
				method string
				path   string
				body   []byte
				want   int
			}{
				{"fail/fees-no-network", c, "GET", "/networks/fees", nil, 400},
				{"fail/fees-empty-network", c, "GET", "/networks/fees?network=", nil, 400},
				{"fail/fees-unknown-network", c, "GET", "/networks/fees?network=Narnia", nil, 400},
				{"fail/fees-wrong-case", c, "GET", "/networks/fees?network=ethereumsepolia", nil, 400},
				{"fail/fees-twice", c, "GET", "/networks/fees?network=EthereumSepolia&network=Base", nil, 400},
				{"fail/fees-bitcoin", c, "GET", "/networks/fees?network=Bitcoin", nil, 400},
				{"fail/fees-solana", c, "GET", "/networks/fees?network=Solana", nil, 400},
				{"fail/fees-no-token", anon, "GET", "/networks/fees?network=" + network, nil, 401},
				{"fail/read-no-kind", c, "POST", "/networks/read-contract", rc(nil, network, tok, balanceOf), 400},
				{"fail/read-bad-kind", c, "POST", "/networks/read-contract", rc("Solana", network, tok, balanceOf), 400},
				{"fail/read-no-network", c, "POST", "/networks/read-contract", rc("Evm", nil, tok, balanceOf), 400},
				{"fail/read-unknown-network", c, "POST", "/networks/read-contract", rc("Evm", "Narnia", tok, balanceOf), 400},
				{"fail/read-bitcoin", c, "POST", "/networks/read-contract", rc("Evm", "Bitcoin", tok, balanceOf), 400},
				{"fail/read-no-contract", c, "POST", "/networks/read-contract", rc("Evm", network, nil, balanceOf), 400},
				{"fail/read-short-contract", c, "POST", "/networks/read-contract", rc("Evm", network, "0x1234", balanceOf), 400},
				{"fail/read-bad-checksum", c, "POST", "/networks/read-contract", rc("Evm", network, flipCase(tok), balanceOf), 400},
				{"fail/read-no-data", c, "POST", "/networks/read-contract", rc("Evm", network, tok, nil), 400},
				{"fail/read-data-not-hex", c, "POST", "/networks/read-contract", rc("Evm", network, tok, "0xzz"), 400},
				{"fail/read-data-no-prefix", c, "POST", "/networks/read-contract", rc("Evm", network, tok, balanceOf[2:]), 400},
				{"fail/read-data-odd", c, "POST", "/networks/read-contract", rc("Evm", network, tok, balanceOf+"0"), 400},
				{"fail/read-data-number", c, "POST", "/networks/read-contract", rc("Evm", network, tok, 12), 400},
				{"fail/read-not-json", c, "POST", "/networks/read-contract", []byte("kind=Evm"), 400},
				{"fail/read-reverts", c, "POST", "/networks/read-contract", rc("Evm", network, tok, transferData), 400},
				{"fail/read-no-token", anon, "POST", "/networks/read-contract", rc("Evm", network, tok, balanceOf), 401},
			} {
				t.Run(tt.name, func(t *testing.T) {
					code, raw, err := tt.c.Raw(ctx, tt.method, tt.path, tt.body, "")
					if err != nil {
						t.Fatal(err)
					}
					checkStatus(t, tt.name, code, raw, tt.want)
					if tt.name == "fail/read-reverts" {
						var e struct {
							Error struct {
								Message string            `json:"message"`
								Details map[string]string `json:"details"`
							} `json:"error"`
						}
						decodeJSON(t, raw, &e)
						if !strings.Contains(e.Error.Message, "reverted") || !strings.HasPrefix(e.Error.Details["data"], "0x96c6fd1e") {
							t.Fatalf("revert answer %s", raw)
						}
					}
				})
			}
			if after := snapshot(t, n); after != before {
				t.Fatal("refused networks calls changed the database")
			}
		})
	})
}
