package e2e

import (
	"context"
	"crypto/ecdsa"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/rlp"

	"github.com/countersign/countersign/client"
	"github.com/countersign/countersign/internal/app/apptest"
	"github.com/countersign/countersign/internal/store"
	"github.com/countersign/countersign/internal/testutil"
	"github.com/countersign/countersign/internal/wallets"
)

// transactionResp is a TransactionRequest as the SDK types it.
type transactionResp struct {
	ID          string          `json:"id"`
	WalletID    string          `json:"walletId"`
	Network     string          `json:"network"`
	RequestBody json.RawMessage `json:"requestBody"`
	Requester   struct {
		UserID  string `json:"userId"`
		TokenID string `json:"tokenId"`
	} `json:"requester"`
	Metadata        json.RawMessage `json:"metadata"`
	Status          string          `json:"status"`
	Reason          string          `json:"reason"`
	TxHash          string          `json:"txHash"`
	Fee             string          `json:"fee"`
	DateRequested   string          `json:"dateRequested"`
	DateBroadcasted string          `json:"dateBroadcasted"`
	DateConfirmed   string          `json:"dateConfirmed"`
	ExternalID      string          `json:"externalId"`
}

type transactionList struct {
	WalletID      string            `json:"walletId"`
	Items         []transactionResp `json:"items"`
	NextPageToken string            `json:"nextPageToken"`
}

// chainDigest summarizes the rows a broadcast request may write (transactions, transfers,
// nonce fillers, the nonce allocator, jobs): a refused request must leave it unchanged. The
// user action it consumed and its audit entry are recorded on purpose, so the whole-database
// Snapshot is not the right check here.
func chainDigest(t testing.TB, n *apptest.Node) string {
	t.Helper()
	var out strings.Builder
	err := n.App.DB.Tx(t.Context(), func(tx *store.Tx) error {
		for _, q := range []string{
			`SELECT COUNT(*), COALESCE(SUM(nonce), 0) FROM transactions`,
			`SELECT COUNT(*), COALESCE(SUM(nonce), 0) FROM transfers`,
			`SELECT COUNT(*), COALESCE(SUM(nonce), 0) FROM evm_nonce_fills`,
			`SELECT COUNT(*), COALESCE(SUM(next), 0) FROM evm_nonces`,
			// Not the periodic jobs: they are inserted when the node becomes River's leader,
			// which on PostgreSQL can happen in the middle of a check.
			`SELECT COUNT(*), COUNT(*) FROM river_job WHERE kind NOT IN ('purge_user_actions', 'wallet_history_index', 'purge_webhook_events')`,
			`SELECT COUNT(*), COUNT(*) FROM wallets`,
		} {
			var a, b int64
			if err := tx.QueryRowContext(t.Context(), q).Scan(&a, &b); err != nil {
				return err
			}
			fmt.Fprintf(&out, "%d/%d ", a, b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.String()
}

// unsignedHex is the unsigned serialization of tx as ethers' unsignedSerialized gives it:
// the typed envelope without signature, or for a legacy transaction the EIP-155 list
// (…, chainId, 0, 0).
func unsignedHex(t testing.TB, tx *types.Transaction, chainID *big.Int) string {
	t.Helper()
	if tx.Type() == types.LegacyTxType {
		b, err := rlp.EncodeToBytes([]any{tx.Nonce(), tx.GasPrice(), tx.Gas(), tx.To(), tx.Value(), tx.Data(), chainID, uint(0), uint(0)})
		if err != nil {
			t.Fatal(err)
		}
		return "0x" + hex.EncodeToString(b)
	}
	var fields []any
	switch tx.Type() {
	case types.DynamicFeeTxType:
		fields = []any{tx.ChainId(), tx.Nonce(), tx.GasTipCap(), tx.GasFeeCap(), tx.Gas(), tx.To(), tx.Value(), tx.Data(), tx.AccessList()}
	default:
		t.Fatalf("type %d", tx.Type())
	}
	b, err := rlp.EncodeToBytes(fields)
	if err != nil {
		t.Fatal(err)
	}
	return "0x" + hex.EncodeToString(append([]byte{tx.Type()}, b...))
}

func TestTransactions(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		n := apptest.Start(t, e, apptest.Options{})
		ctx := context.Background()
		c := n.Admin
		const network = "BaseSepolia"
		newWallet := func() walletResp { return createWallet(t, c, network) }
		backend, err := n.App.Chains.Get(ctx, network)
		if err != nil {
			t.Fatal(err)
		}
		chainID := new(big.Int).SetUint64(backend.Network.ChainID)
		balance := func(addr string) *big.Int {
			t.Helper()
			b, err := backend.Client.BalanceAt(ctx, common.HexToAddress(addr), nil)
			if err != nil {
				t.Fatal(err)
			}
			return b
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
		nextNonce := func() uint64 {
			t.Helper()
			nn, err := backend.Client.PendingNonceAt(ctx, common.HexToAddress(from.Address))
			if err != nil {
				t.Fatal(err)
			}
			return nn
		}
		wait := func(t *testing.T, id string) transactionResp {
			t.Helper()
			deadline := time.Now().Add(60 * time.Second)
			for {
				var tr transactionResp
				if err := c.Do(ctx, http.MethodGet, "/wallets/"+from.ID+"/transactions/"+id, nil, &tr); err != nil {
					t.Fatal(err)
				}
				if tr.Status == "Confirmed" || tr.Status == "Failed" || time.Now().After(deadline) {
					return tr
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		broadcast := func(t *testing.T, body map[string]any) transactionResp {
			t.Helper()
			var tr transactionResp
			if err := c.Do(ctx, http.MethodPost, "/wallets/"+from.ID+"/transactions", body, &tr); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(tr.ID, "tx-") || tr.WalletID != from.ID || tr.Network != network || tr.Requester.UserID == "" ||
				tr.Metadata != nil || tr.DateRequested == "" || (tr.Status != "Pending" && tr.Status != "Broadcasted" && tr.Status != "Confirmed") {
				t.Fatalf("transaction %+v", tr)
			}
			var echo map[string]any
			if err := json.Unmarshal(tr.RequestBody, &echo); err != nil || echo["kind"] != body["kind"] {
				t.Fatalf("requestBody %s, want the request", tr.RequestBody)
			}
			return tr
		}
		// confirmed waits for a transaction and checks that it moved exactly value plus its fee.
		confirmed := func(t *testing.T, body map[string]any, value int64) (transactionResp, *types.Receipt) {
			t.Helper()
			s0, r0 := balance(from.Address), balance(to.Address)
			tr := wait(t, broadcast(t, body).ID)
			if tr.Status != "Confirmed" || len(tr.TxHash) != 66 || tr.Fee == "" || tr.DateBroadcasted == "" || tr.DateConfirmed == "" {
				t.Fatalf("transaction %+v", tr)
			}
			fee, _ := new(big.Int).SetString(tr.Fee, 10)
			if want := new(big.Int).Sub(new(big.Int).Sub(s0, big.NewInt(value)), fee); balance(from.Address).Cmp(want) != 0 {
				t.Fatalf("sender balance %s, want %s", balance(from.Address), want)
			}
			if body["to"] == to.Address {
				if want := new(big.Int).Add(r0, big.NewInt(value)); balance(to.Address).Cmp(want) != 0 {
					t.Fatalf("receiver balance %s, want %s", balance(to.Address), want)
				}
			}
			rc, err := backend.Client.TransactionReceipt(ctx, common.HexToHash(tr.TxHash))
			if err != nil {
				t.Fatal(err)
			}
			return tr, rc
		}

		t.Run("Evm", func(t *testing.T) {
			_, rc := confirmed(t, map[string]any{"kind": "Evm", "to": to.Address, "value": "1000"}, 1000)
			if rc.Type != types.DynamicFeeTxType || rc.GasUsed != 21000 {
				t.Fatalf("receipt type %d gas %d", rc.Type, rc.GasUsed)
			}
		})

		t.Run("EvmContractCall", func(t *testing.T) {
			// transfer(address,uint256) on the test token, as hex data.
			data := "0xa9059cbb" + strings.Repeat("0", 24) + strings.ToLower(to.Address[2:]) + fmt.Sprintf("%064x", 77)
			confirmed(t, map[string]any{"kind": "Evm", "to": info.Token.Contract, "data": data}, 0)
			var as assetsResp
			if err := c.Do(ctx, http.MethodGet, "/wallets/"+to.ID+"/assets", nil, &as); err != nil {
				t.Fatal(err)
			}
			if len(as.Assets) < 2 || as.Assets[1].Balance != "77" {
				t.Fatalf("receiver assets %+v, want 77 tokens", as)
			}
		})

		t.Run("Eip1559", func(t *testing.T) {
			nonce := nextNonce()
			_, rc := confirmed(t, map[string]any{"kind": "Eip1559", "to": to.Address, "value": "0x10", "nonce": nonce,
				"gasLimit": "30000", "maxFeePerGas": "100000000000", "maxPriorityFeePerGas": "1000000000"}, 16)
			tx, _, err := backend.Client.TransactionByHash(ctx, rc.TxHash)
			if err != nil {
				t.Fatal(err)
			}
			if tx.Nonce() != nonce || tx.Gas() != 30000 || tx.GasFeeCap().String() != "100000000000" || tx.GasTipCap().String() != "1000000000" {
				t.Fatalf("sent %d %d %s %s", tx.Nonce(), tx.Gas(), tx.GasFeeCap(), tx.GasTipCap())
			}
		})

		t.Run("EvmLegacy", func(t *testing.T) {
			_, rc := confirmed(t, map[string]any{"kind": "EvmLegacy", "to": to.Address, "value": "5", "gasPrice": "3000000000",
				"nonce": fmt.Sprint(nextNonce())}, 5)
			if rc.Type != types.LegacyTxType || rc.EffectiveGasPrice.String() != "3000000000" {
				t.Fatalf("receipt type %d price %s", rc.Type, rc.EffectiveGasPrice)
			}
		})

		t.Run("TransactionKind", func(t *testing.T) {
			toAddr := common.HexToAddress(to.Address)
			for _, build := range []func() *types.Transaction{
				func() *types.Transaction {
					return types.NewTx(&types.DynamicFeeTx{ChainID: chainID, Nonce: nextNonce(), GasTipCap: big.NewInt(1e9),
						GasFeeCap: big.NewInt(50e9), Gas: 21000, To: &toAddr, Value: big.NewInt(7)})
				},
				func() *types.Transaction {
					return types.NewTx(&types.LegacyTx{Nonce: nextNonce(), GasPrice: big.NewInt(4e9), Gas: 21000, To: &toAddr, Value: big.NewInt(8)})
				},
			} {
				tx := build()
				_, rc := confirmed(t, map[string]any{"kind": "Transaction", "transaction": unsignedHex(t, tx, chainID)}, tx.Value().Int64())
				if rc.Type != tx.Type() {
					t.Fatalf("receipt type %d, want %d", rc.Type, tx.Type())
				}
			}
		})

		t.Run("Idempotency", func(t *testing.T) {
			body := map[string]any{"kind": "Evm", "to": to.Address, "value": "1", "externalId": "tx-ext-1"}
			first := broadcast(t, body)
			again := broadcast(t, map[string]any{"externalId": "tx-ext-1", "value": "1", "to": to.Address, "kind": "Evm"})
			if again.ID != first.ID {
				t.Fatalf("replay gave %s, want %s", again.ID, first.ID)
			}
			before := chainDigest(t, n)
			err := c.Do(ctx, http.MethodPost, "/wallets/"+from.ID+"/transactions", map[string]any{"kind": "Evm", "to": to.Address, "value": "2", "externalId": "tx-ext-1"}, nil)
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
			if json.Unmarshal(ce.Body, &eb) != nil || eb.Error.Details.Duplicate.ID != first.ID || eb.Error.Details.Duplicate.ExternalID != "tx-ext-1" {
				t.Fatalf("409 body %s", ce.Body)
			}
			if chainDigest(t, n) != before {
				t.Fatal("the conflicting request changed the database")
			}
			if tr := wait(t, first.ID); tr.Status != "Confirmed" || tr.ExternalID != "tx-ext-1" {
				t.Fatalf("transaction %+v", tr)
			}
		})

		t.Run("ListAndGet", func(t *testing.T) {
			var l transactionList
			if err := c.Do(ctx, http.MethodGet, "/wallets/"+from.ID+"/transactions?limit=2", nil, &l); err != nil {
				t.Fatal(err)
			}
			if l.WalletID != from.ID || len(l.Items) != 2 || l.NextPageToken == "" || l.Items[0].ID <= l.Items[1].ID {
				t.Fatalf("list %+v", l)
			}
			seen := map[string]bool{}
			for page, token := 0, ""; page < 20; page++ {
				var p transactionList
				if err := c.Do(ctx, http.MethodGet, "/wallets/"+from.ID+"/transactions?limit=2&paginationToken="+token, nil, &p); err != nil {
					t.Fatal(err)
				}
				for _, it := range p.Items {
					if seen[it.ID] {
						t.Fatalf("%s listed twice", it.ID)
					}
					seen[it.ID] = true
				}
				if token = p.NextPageToken; token == "" {
					break
				}
			}
			if len(seen) != 7 { // Evm, call, 1559, legacy, 2 × Transaction, idempotent one
				t.Fatalf("%d transactions listed, want 7", len(seen))
			}
			if err := c.Do(ctx, http.MethodGet, "/wallets/"+to.ID+"/transactions/"+l.Items[0].ID, nil, nil); status(err) != 404 {
				t.Fatalf("a transaction under another wallet: %v, want 404", err)
			}
			if err := c.Do(ctx, http.MethodGet, "/wallets/"+from.ID+"/transactions/tx-00000-00000-0000000000000000", nil, nil); status(err) != 404 {
				t.Fatalf("unknown transaction: %v, want 404", err)
			}
		})

		t.Run("Refused", func(t *testing.T) {
			toAddr := common.HexToAddress(to.Address)
			unsigned := func(cid *big.Int, nonce uint64) string {
				return unsignedHex(t, types.NewTx(&types.DynamicFeeTx{ChainID: cid, Nonce: nonce, GasTipCap: big.NewInt(1e9),
					GasFeeCap: big.NewInt(50e9), Gas: 21000, To: &toAddr, Value: big.NewInt(1)}), cid)
			}
			signedTx, err := types.SignNewTx(mustKey(), types.LatestSignerForChainID(chainID), &types.DynamicFeeTx{ChainID: chainID,
				Nonce: nextNonce(), GasTipCap: big.NewInt(1e9), GasFeeCap: big.NewInt(50e9), Gas: 21000, To: &toAddr, Value: big.NewInt(1)})
			if err != nil {
				t.Fatal(err)
			}
			signedRaw, _ := signedTx.MarshalBinary()
			empty := newWallet()
			next := nextNonce()
			for _, tt := range []struct {
				name   string
				wallet string
				body   any
				want   int
			}{
				{"fail/no-kind", from.ID, map[string]any{"to": to.Address}, 400},
				{"fail/unknown-kind", from.ID, map[string]any{"kind": "Psbt", "psbt": "00"}, 400},
				{"fail/bad-address", from.ID, map[string]any{"kind": "Evm", "to": "0x1234", "value": "1"}, 400},
				{"fail/bad-checksum", from.ID, map[string]any{"kind": "Evm", "to": flipCase(to.Address), "value": "1"}, 400},
				{"fail/negative", from.ID, map[string]any{"kind": "Evm", "to": to.Address, "value": "-1"}, 400},
				{"fail/decimal", from.ID, map[string]any{"kind": "Evm", "to": to.Address, "value": "1.5"}, 400},
				{"fail/exponent", from.ID, map[string]any{"kind": "Evm", "to": to.Address, "value": "1e18"}, 400},
				{"fail/huge", from.ID, map[string]any{"kind": "Evm", "to": to.Address, "value": "1" + strings.Repeat("0", 78)}, 400},
				{"fail/value-number", from.ID, map[string]any{"kind": "Evm", "to": to.Address, "value": 1}, 400},
				{"fail/bad-data", from.ID, map[string]any{"kind": "Evm", "to": to.Address, "data": "0xzz"}, 400},
				{"fail/no-to-no-data", from.ID, map[string]any{"kind": "Evm", "value": "1"}, 400},
				{"fail/nonce-negative", from.ID, map[string]any{"kind": "Evm", "to": to.Address, "nonce": -1}, 400},
				{"fail/nonce-fraction", from.ID, map[string]any{"kind": "Evm", "to": to.Address, "nonce": 1.5}, 400},
				{"fail/nonce-huge", from.ID, map[string]any{"kind": "Evm", "to": to.Address, "nonce": "18446744073709551616"}, 400},
				{"fail/nonce-ahead", from.ID, map[string]any{"kind": "Evm", "to": to.Address, "nonce": next + 1}, 400},
				{"fail/nonce-used", from.ID, map[string]any{"kind": "Evm", "to": to.Address, "nonce": next - 1}, 400},
				{"fail/gas-too-low", from.ID, map[string]any{"kind": "Evm", "to": to.Address, "gasLimit": "20999"}, 400},
				{"fail/gas-over-block", from.ID, map[string]any{"kind": "Evm", "to": to.Address, "gasLimit": "1000000000000"}, 400},
				{"fail/tip-over-cap", from.ID, map[string]any{"kind": "Eip1559", "to": to.Address, "maxFeePerGas": "1", "maxPriorityFeePerGas": "2"}, 400},
				{"fail/field-of-other-kind", from.ID, map[string]any{"kind": "Eip1559", "to": to.Address, "gasPrice": "1"}, 400},
				{"fail/fee-on-evm", from.ID, map[string]any{"kind": "Evm", "to": to.Address, "maxFeePerGas": "1"}, 400},
				{"fail/unknown-field", from.ID, map[string]any{"kind": "Evm", "to": to.Address, "amount": "1"}, 400},
				{"fail/reverts", from.ID, map[string]any{"kind": "Evm", "to": info.Token.Contract, "data": "0xdeadbeef"}, 400},
				{"fail/too-much", from.ID, map[string]any{"kind": "Evm", "to": to.Address, "value": "1000000000000000000000"}, 400},
				{"fail/unfunded", empty.ID, map[string]any{"kind": "Evm", "to": to.Address, "value": "1"}, 400},
				{"fail/tx-missing", from.ID, map[string]any{"kind": "Transaction"}, 400},
				{"fail/tx-not-hex", from.ID, map[string]any{"kind": "Transaction", "transaction": "0xnothex"}, 400},
				{"fail/tx-bad-rlp", from.ID, map[string]any{"kind": "Transaction", "transaction": "0x02c3c2c1"}, 400},
				{"fail/tx-garbage", from.ID, map[string]any{"kind": "Transaction", "transaction": "0x02ffffffff"}, 400},
				{"fail/tx-blob", from.ID, map[string]any{"kind": "Transaction", "transaction": "0x03c0"}, 400},
				{"fail/tx-wrong-chain", from.ID, map[string]any{"kind": "Transaction", "transaction": unsigned(big.NewInt(1), next)}, 400},
				{"fail/tx-signed", from.ID, map[string]any{"kind": "Transaction", "transaction": "0x" + hex.EncodeToString(signedRaw)}, 400},
				{"fail/tx-nonce-ahead", from.ID, map[string]any{"kind": "Transaction", "transaction": unsigned(chainID, next+5)}, 400},
				{"fail/tx-with-to", from.ID, map[string]any{"kind": "Transaction", "transaction": unsigned(chainID, next), "to": to.Address}, 400},
				{"fail/not-json-object", from.ID, []any{1, 2}, 400},
				{"fail/unknown-wallet", "wa-00000-00000-0000000000000000", map[string]any{"kind": "Evm", "to": to.Address}, 404},
			} {
				t.Run(tt.name, func(t *testing.T) {
					body, _ := json.Marshal(tt.body)
					path := "/wallets/" + tt.wallet + "/transactions"
					ua, err := c.UserAction(ctx, http.MethodPost, path, body)
					if err != nil {
						t.Fatal(err)
					}
					before := chainDigest(t, n)
					code, resp, err := c.Raw(ctx, http.MethodPost, path, body, ua)
					if err != nil || code != tt.want {
						t.Fatalf("got %d %s %v, want %d", code, resp, err, tt.want)
					}
					if tnMessage(resp) == "" {
						t.Fatalf("no error message in %s", resp)
					}
					if after := chainDigest(t, n); after != before {
						t.Fatalf("the refused request changed the database: %s -> %s", before, after)
					}
				})
			}
			t.Run("fail/no-user-action", func(t *testing.T) {
				before := chainDigest(t, n)
				body := []byte(`{"kind":"Evm","to":"` + to.Address + `","value":"1"}`)
				code, resp, err := c.Raw(ctx, http.MethodPost, "/wallets/"+from.ID+"/transactions", body, "")
				if err != nil || code != http.StatusForbidden {
					t.Fatalf("without a user action: %d %s %v, want 403", code, resp, err)
				}
				if chainDigest(t, n) != before {
					t.Fatal("the refused request changed the database")
				}
			})
			t.Run("fail/other-org", func(t *testing.T) {
				org2 := newOrg(t, n)
				before := chainDigest(t, n)
				body := map[string]any{"kind": "Evm", "to": to.Address, "value": "1"}
				if err := org2.Client.Do(ctx, http.MethodPost, "/wallets/"+from.ID+"/transactions", body, nil); status(err) != 404 {
					t.Fatalf("broadcast from another org's wallet: %v, want 404", err)
				}
				if err := org2.Client.Do(ctx, http.MethodGet, "/wallets/"+from.ID+"/transactions", nil, nil); status(err) != 404 {
					t.Fatalf("list another org's transactions: %v, want 404", err)
				}
				if chainDigest(t, n) != before {
					t.Fatal("the refused request changed the database")
				}
			})
			// The refusals left the allocator alone: the next broadcast takes the next nonce.
			_, rc := confirmed(t, map[string]any{"kind": "Evm", "to": to.Address, "value": "3", "nonce": next}, 3)
			if tx, _, err := backend.Client.TransactionByHash(ctx, rc.TxHash); err != nil || tx.Nonce() != next {
				t.Fatalf("nonce after refusals: %v %v, want %d", tx.Nonce(), err, next)
			}
		})
	})
}

func mustKey() *ecdsa.PrivateKey {
	k, err := crypto.GenerateKey()
	if err != nil {
		panic(err)
	}
	return k
}

// TestNonceGapFilled: two overspends are signed while the chain still shows the full
// balance (an API-only node, so nothing is sent yet); the network mines the first and
// refuses the second for lack of funds. The second ends Failed with the reason, its nonce
// is filled by a 0-value self-transfer, and a later transfer (next nonce) is mined instead
// of waiting forever behind the gap.
func TestNonceGapFilled(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		ctx := context.Background()
		const network = "EthereumSepolia"
		dsn, dir := e.DSN(t), t.TempDir()
		a := apptest.Start(t, e, apptest.Options{DSN: dsn, DataDir: dir, NoJobs: true})
		var w, sink walletResp
		for _, x := range []*walletResp{&w, &sink} {
			if err := a.Admin.Do(ctx, http.MethodPost, "/wallets", map[string]any{"network": network}, x); err != nil {
				t.Fatal(err)
			}
		}
		if err := a.Admin.Do(ctx, http.MethodPost, "/dev/faucet", map[string]any{"network": network, "address": w.Address, "amount": "1000000000000000000"}, nil); err != nil {
			t.Fatal(err)
		}
		const spend = "600000000000000000" // 0.6 ETH, twice, from 1 ETH
		var first transferResp
		if err := a.Admin.Do(ctx, http.MethodPost, "/wallets/"+w.ID+"/transfers", map[string]any{"kind": "Native", "to": sink.Address, "amount": spend}, &first); err != nil {
			t.Fatal(err)
		}
		var second transactionResp
		if err := a.Admin.Do(ctx, http.MethodPost, "/wallets/"+w.ID+"/transactions", map[string]any{"kind": "Evm", "to": sink.Address, "value": spend}, &second); err != nil {
			t.Fatal(err)
		}
		// Broadcast in nonce order, as the jobs of a busy node might.
		if err := a.App.Wallets.Advance(ctx, first.ID); err != nil && !errors.Is(err, wallets.ErrPending) {
			t.Fatal(err)
		}
		if err := a.App.Wallets.AdvanceTransaction(ctx, second.ID); err != nil {
			t.Fatal(err)
		}
		if err := a.Admin.Do(ctx, http.MethodGet, "/wallets/"+w.ID+"/transactions/"+second.ID, nil, &second); err != nil {
			t.Fatal(err)
		}
		if second.Status != "Failed" || !strings.Contains(second.Reason, "funds") || !strings.Contains(second.Reason, "nonce 1 is filled") ||
			second.DateBroadcasted != "" {
			t.Fatalf("refused transaction %+v", second)
		}
		addr := common.HexToAddress(w.Address).Hex()
		fill, err := a.App.DB.LoadFill(ctx, network, addr, 1)
		if err != nil || fill.Replaces != second.ID || fill.Status != "Pending" {
			t.Fatalf("filler %+v %v", fill, err)
		}
		// Running the refused job again (at least once) keeps the one filler.
		if err := a.App.Wallets.AdvanceTransaction(ctx, second.ID); err != nil {
			t.Fatal(err)
		}
		a.Stop()

		b := apptest.Start(t, e, apptest.Options{DSN: dsn, DataDir: dir})
		var third transferResp
		if err := b.Admin.Do(ctx, http.MethodPost, "/wallets/"+w.ID+"/transfers", map[string]any{"kind": "Native", "to": sink.Address, "amount": "12345"}, &third); err != nil {
			t.Fatal(err)
		}
		waitTransfer := func(id string) transferResp {
			deadline := time.Now().Add(60 * time.Second)
			for {
				var tr transferResp
				if err := b.Admin.Do(ctx, http.MethodGet, "/wallets/"+w.ID+"/transfers/"+id, nil, &tr); err != nil {
					t.Fatal(err)
				}
				if tr.Status == "Confirmed" || tr.Status == "Failed" || time.Now().After(deadline) {
					return tr
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		first, third = waitTransfer(first.ID), waitTransfer(third.ID)
		if first.Status != "Confirmed" || third.Status != "Confirmed" {
			t.Fatalf("first %+v\nthird %+v", first, third)
		}
		backend, err := b.App.Chains.Get(ctx, network)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := backend.Client.NonceAt(ctx, common.HexToAddress(w.Address), nil); err != nil || n != 3 {
			t.Fatalf("mined nonce %d %v, want 3 (transfer, filler, transfer)", n, err)
		}
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			// The filler is mined (the third transfer is), but its job may not have looked yet.
			if fill, err = b.App.DB.LoadFill(ctx, network, addr, 1); err != nil || fill.Status == "Confirmed" || time.Now().After(deadline) {
				break
			}
		}
		if err != nil || fill.Status != "Confirmed" {
			t.Fatalf("filler %+v %v", fill, err)
		}
		rc, err := backend.Client.TransactionReceipt(ctx, common.HexToHash(fill.TxHash))
		if err != nil || rc.Status != types.ReceiptStatusSuccessful {
			t.Fatalf("filler receipt %+v %v", rc, err)
		}
		fillFee := new(big.Int).Mul(new(big.Int).SetUint64(rc.GasUsed), rc.EffectiveGasPrice)
		f1, _ := new(big.Int).SetString(first.Fee, 10)
		f3, _ := new(big.Int).SetString(third.Fee, 10)
		s, _ := new(big.Int).SetString(spend, 10)
		want := new(big.Int).Sub(big.NewInt(1e18), s)
		want.Sub(want, big.NewInt(12345)).Sub(want, f1).Sub(want, f3).Sub(want, fillFee)
		if got, err := backend.Client.BalanceAt(ctx, common.HexToAddress(w.Address), nil); err != nil || got.Cmp(want) != 0 {
			t.Fatalf("balance %s %v, want %s", got, err, want)
		}
		if got, err := backend.Client.BalanceAt(ctx, common.HexToAddress(sink.Address), nil); err != nil || got.Cmp(new(big.Int).Add(s, big.NewInt(12345))) != 0 {
			t.Fatalf("sink balance %s %v", got, err)
		}
	})
}

// TestNonceFillerWaitsForFunds: when the wallet cannot even pay the filler's gas, the
// filler waits (ErrPending: its job snoozes, using up no attempt) and goes out once the
// wallet is funded; the nonce after it is then mined.
func TestNonceFillerWaitsForFunds(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		ctx := context.Background()
		const network = "BaseSepolia"
		n := apptest.Start(t, e, apptest.Options{NoJobs: true}) // jobs are run by hand, in order
		var w walletResp
		if err := n.Admin.Do(ctx, http.MethodPost, "/wallets", map[string]any{"network": network}, &w); err != nil {
			t.Fatal(err)
		}
		const funds = 1_000_000_000_000_000 // 0.001 ETH
		if err := n.Admin.Do(ctx, http.MethodPost, "/dev/faucet", map[string]any{"network": network, "address": w.Address, "amount": fmt.Sprint(funds)}, nil); err != nil {
			t.Fatal(err)
		}
		// Each spends everything its worst-case gas leaves: the first is mined and leaves
		// 21000 × (2 gwei - base - 1 gwei), less than any filler (21000 × (2 base + 1 gwei)).
		body := map[string]any{"kind": "Eip1559", "to": "0x000000000000000000000000000000000000dEaD",
			"value": fmt.Sprint(funds - 21000*2_000_000_000), "gasLimit": "21000", "maxFeePerGas": "2000000000", "maxPriorityFeePerGas": "1000000000"}
		var first, second transactionResp
		for _, tr := range []*transactionResp{&first, &second} {
			if err := n.Admin.Do(ctx, http.MethodPost, "/wallets/"+w.ID+"/transactions", body, tr); err != nil {
				t.Fatal(err)
			}
		}
		if err := n.App.Wallets.AdvanceTransaction(ctx, first.ID); err != nil && !errors.Is(err, wallets.ErrPending) {
			t.Fatal(err)
		}
		if err := n.App.Wallets.AdvanceTransaction(ctx, second.ID); err != nil {
			t.Fatal(err)
		}
		addr := common.HexToAddress(w.Address).Hex()
		for range 2 {
			if err := n.App.Wallets.AdvanceFill(ctx, network, addr, 1); !errors.Is(err, wallets.ErrPending) {
				t.Fatalf("unfunded filler: %v, want ErrPending", err)
			}
		}
		if f, err := n.App.DB.LoadFill(ctx, network, addr, 1); err != nil || f.Status != "Pending" {
			t.Fatalf("unfunded filler %+v %v", f, err)
		}
		if err := n.Admin.Do(ctx, http.MethodPost, "/dev/faucet", map[string]any{"network": network, "address": w.Address, "amount": fmt.Sprint(funds)}, nil); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			err := n.App.Wallets.AdvanceFill(ctx, network, addr, 1)
			if err == nil {
				break
			}
			if !errors.Is(err, wallets.ErrPending) || time.Now().After(deadline) {
				t.Fatalf("funded filler: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if f, err := n.App.DB.LoadFill(ctx, network, addr, 1); err != nil || f.Status != "Confirmed" {
			t.Fatalf("funded filler %+v %v", f, err)
		}
		var third transferResp
		if err := n.Admin.Do(ctx, http.MethodPost, "/wallets/"+w.ID+"/transfers", map[string]any{"kind": "Native", "to": "0x000000000000000000000000000000000000dEaD", "amount": "1"}, &third); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			err := n.App.Wallets.Advance(ctx, third.ID)
			if err == nil {
				break
			}
			if !errors.Is(err, wallets.ErrPending) || time.Now().After(deadline) {
				t.Fatalf("transfer after the filler: %v", err)
			}
		}
		backend, err := n.App.Chains.Get(ctx, network)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := backend.Client.NonceAt(ctx, common.HexToAddress(w.Address), nil); err != nil || got != 3 {
			t.Fatalf("mined nonce %d %v, want 3", got, err)
		}
	})
}

// TestDroppedThenRefused: a transaction the network accepted and later dropped (here: a
// Broadcasted row whose bytes no node knows) is sent again by its job; refused for good
// then (no funds left), it ends Failed and its nonce is filled.
func TestDroppedThenRefused(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		ctx := context.Background()
		const network = "BaseSepolia"
		n := apptest.Start(t, e, apptest.Options{NoJobs: true})
		var w walletResp
		if err := n.Admin.Do(ctx, http.MethodPost, "/wallets", map[string]any{"network": network}, &w); err != nil {
			t.Fatal(err)
		}
		if err := n.Admin.Do(ctx, http.MethodPost, "/dev/faucet", map[string]any{"network": network, "address": w.Address, "amount": "1000000000000000000"}, nil); err != nil {
			t.Fatal(err)
		}
		body := map[string]any{"kind": "Evm", "to": "0x000000000000000000000000000000000000dEaD", "value": "600000000000000000"}
		var first, second transactionResp
		for _, tr := range []*transactionResp{&first, &second} {
			if err := n.Admin.Do(ctx, http.MethodPost, "/wallets/"+w.ID+"/transactions", body, tr); err != nil {
				t.Fatal(err)
			}
		}
		if err := n.App.Wallets.AdvanceTransaction(ctx, first.ID); err != nil && !errors.Is(err, wallets.ErrPending) {
			t.Fatal(err)
		}
		if err := n.App.DB.Tx(ctx, func(tx *store.Tx) error {
			_, err := tx.ExecContext(ctx, `UPDATE transactions SET status = 'Broadcasted', broadcasted_at = created_at WHERE id = $1`, second.ID)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			if err := n.App.Wallets.AdvanceTransaction(ctx, second.ID); err != nil && !errors.Is(err, wallets.ErrPending) {
				t.Fatal(err)
			}
			if err := n.Admin.Do(ctx, http.MethodGet, "/wallets/"+w.ID+"/transactions/"+second.ID, nil, &second); err != nil {
				t.Fatal(err)
			}
			if second.Status != "Broadcasted" || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if second.Status != "Failed" || !strings.Contains(second.Reason, "refused") || !strings.Contains(second.Reason, "nonce 1 is filled") {
			t.Fatalf("dropped, then refused: %+v", second)
		}
		if f, err := n.App.DB.LoadFill(ctx, network, common.HexToAddress(w.Address).Hex(), 1); err != nil || f.Replaces != second.ID {
			t.Fatalf("filler %+v %v", f, err)
		}
	})
}
