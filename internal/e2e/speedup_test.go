package e2e

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/countersign/countersign/client"
	"github.com/countersign/countersign/internal/app/apptest"
	"github.com/countersign/countersign/internal/store"
	"github.com/countersign/countersign/internal/testutil"
	"github.com/countersign/countersign/internal/wallets"
)

// replTx is a TransactionRequest with the fields of speed-up and cancel.
type replTx struct {
	transactionResp
	ReplacementID string `json:"replacementId"`
}

// replXfr is a TransferRequest with the fields of speed-up and cancel.
type replXfr struct {
	transferResp
	ReplacementID string `json:"replacementId"`
}

// replBody is the requestBody of a replacement.
type replBody struct {
	Kind     string `json:"kind"`
	TxHash   string `json:"txHash"`
	SignedTx string `json:"signedTx"`
}

func (r replTx) body(t testing.TB) (replBody, *types.Transaction) {
	t.Helper()
	var b replBody
	if err := json.Unmarshal(r.RequestBody, &b); err != nil {
		t.Fatal(err)
	}
	raw, err := hex.DecodeString(strings.TrimPrefix(b.SignedTx, "0x"))
	if err != nil {
		t.Fatal(err)
	}
	var tx types.Transaction
	if err := tx.UnmarshalBinary(raw); err != nil {
		t.Fatalf("signedTx: %v", err)
	}
	return b, &tx
}

// getRequest reads a transfer or transaction into out.
func getRequest(t testing.TB, c *client.Client, path string, out any) {
	t.Helper()
	if err := c.Do(t.Context(), http.MethodGet, path, nil, out); err != nil {
		t.Fatal(err)
	}
}

// replaceDigest digests what a speed-up or cancel may write: every transfer and
// transaction with its status, hash and replacement, the nonce allocator, the jobs.
func replaceDigest(t testing.TB, n *apptest.Node) string {
	t.Helper()
	var out strings.Builder
	err := n.App.DB.Tx(t.Context(), func(tx *store.Tx) error {
		for _, q := range []string{
			`SELECT id || status || tx_hash || COALESCE(replacement_id, '') || COALESCE(replaces, '') || COALESCE(fee, '') FROM transactions ORDER BY id`,
			`SELECT id || status || tx_hash || COALESCE(replacement_id, '') || COALESCE(fee, '') FROM transfers ORDER BY id`,
			`SELECT network || address || CAST(next AS TEXT) FROM evm_nonces ORDER BY address`,
			`SELECT CAST(COUNT(*) AS TEXT) FROM river_job WHERE kind IN ('transaction_broadcast', 'transfer_broadcast', 'nonce_fill')`,
			`SELECT CAST(COUNT(*) AS TEXT) FROM webhook_events`,
		} {
			rows, err := tx.QueryContext(t.Context(), q)
			if err != nil {
				return err
			}
			for rows.Next() {
				var s string
				if err := rows.Scan(&s); err != nil {
					rows.Close()
					return err
				}
				out.WriteString(s + "\n")
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.String()
}

// TestSpeedUpCancel drives speed-up and cancel of transfers and broadcast requests over
// HTTP on the dev chain. A transaction whose fee cap (1 wei) is below the base fee stays
// in the pool and is never mined, and every later nonce of its wallet waits behind it:
// that is how the test gets transactions that are broadcast but not mined.
func TestSpeedUpCancel(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		n := apptest.Start(t, e, apptest.Options{})
		ctx := context.Background()
		c := n.Admin
		const network = "BaseSepolia"
		backend, err := n.App.Chains.Get(ctx, network)
		if err != nil {
			t.Fatal(err)
		}
		balance := func(addr string) *big.Int {
			t.Helper()
			b, err := backend.Client.BalanceAt(ctx, common.HexToAddress(addr), nil)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		// Every event goes to a webhook (never delivered: the events table is what we read).
		if err := c.Do(ctx, http.MethodPost, "/webhooks", map[string]any{"url": "https://example.invalid/hook", "events": []string{"*"}}, nil); err != nil {
			t.Fatal(err)
		}
		from, sink := createWallet(t, c, network), createWallet(t, c, network)
		funded := big.NewInt(1e18)
		if err := c.Do(ctx, http.MethodPost, "/dev/faucet", map[string]any{"network": network, "address": from.Address, "amount": funded.String()}, nil); err != nil {
			t.Fatal(err)
		}
		for balance(from.Address).Sign() == 0 {
			time.Sleep(20 * time.Millisecond)
		}
		getTx := func(id string) (r replTx) { getRequest(t, c, "/wallets/"+from.ID+"/transactions/"+id, &r); return r }
		getXfr := func(id string) (r replXfr) { getRequest(t, c, "/wallets/"+from.ID+"/transfers/"+id, &r); return r }
		waitFor := func(what string, read func() (string, string)) {
			t.Helper()
			for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				st, want := read()
				if st == want {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: status %s, want %s", what, st, want)
				}
			}
		}
		waitTx := func(id, want string) replTx {
			t.Helper()
			var r replTx
			waitFor(id, func() (string, string) { r = getTx(id); return r.Status, want })
			return r
		}
		waitXfr := func(id, want string) replXfr {
			t.Helper()
			var r replXfr
			waitFor(id, func() (string, string) { r = getXfr(id); return r.Status, want })
			return r
		}
		stuck := func(value string) replTx {
			t.Helper()
			var r replTx
			body := map[string]any{"kind": "Eip1559", "to": sink.Address, "value": value, "gasLimit": "21000",
				"maxFeePerGas": "1", "maxPriorityFeePerGas": "1"}
			if err := c.Do(ctx, http.MethodPost, "/wallets/"+from.ID+"/transactions", body, &r); err != nil {
				t.Fatal(err)
			}
			return waitTx(r.ID, "Broadcasted")
		}
		transfer := func(amount string) replXfr {
			t.Helper()
			var r replXfr
			if err := c.Do(ctx, http.MethodPost, "/wallets/"+from.ID+"/transfers", map[string]any{"kind": "Native", "to": sink.Address, "amount": amount}, &r); err != nil {
				t.Fatal(err)
			}
			return r
		}
		notMined := func(hash string) {
			t.Helper()
			if _, err := backend.Client.TransactionReceipt(ctx, common.HexToHash(hash)); !errors.Is(err, ethereum.NotFound) {
				t.Fatalf("receipt of %s: %v, want not found", hash, err)
			}
		}
		mined := func(hash string) *types.Receipt {
			t.Helper()
			rc, err := backend.Client.TransactionReceipt(ctx, common.HexToHash(hash))
			if err != nil {
				t.Fatalf("receipt of %s: %v", hash, err)
			}
			return rc
		}
		fee := func(s string) *big.Int {
			t.Helper()
			f, ok := new(big.Int).SetString(s, 10)
			if !ok {
				t.Fatalf("fee %q", s)
			}
			return f
		}
		spent := new(big.Int) // fees paid by from, from the API's answers
		sent := new(big.Int)  // value that reached sink

		// A transaction whose fee cap is below the base fee stays in the pool.
		a := stuck("1000")
		time.Sleep(1500 * time.Millisecond)
		if a = getTx(a.ID); a.Status != "Broadcasted" {
			t.Fatalf("stuck transaction: %s %s", a.Status, a.Reason)
		}
		notMined(a.TxHash)
		if head, err := backend.Client.HeaderByNumber(ctx, nil); err != nil || head.BaseFee.Cmp(big.NewInt(1)) <= 0 {
			t.Fatalf("base fee %v (%v): the stuck transaction could be mined", head.BaseFee, err)
		}
		var aNonce uint64
		if tx, pending, err := backend.Client.TransactionByHash(ctx, common.HexToHash(a.TxHash)); err != nil || !pending {
			t.Fatalf("stuck transaction in the pool: %v %v", pending, err)
		} else {
			aNonce = tx.Nonce()
		}

		t.Run("speed-up/transaction", func(t *testing.T) {
			var r replTx
			if err := c.SpeedUpTransaction(ctx, from.ID, a.ID, &r); err != nil {
				t.Fatal(err)
			}
			b, tx := r.body(t)
			if !strings.HasPrefix(r.ID, "tx-") || r.WalletID != from.ID || b.Kind != "SpeedUpTransaction" || b.TxHash != a.TxHash ||
				tx.Nonce() != aNonce || tx.To().Hex() != common.HexToAddress(sink.Address).Hex() || tx.Value().Int64() != 1000 {
				t.Fatalf("replacement %+v %+v nonce %d", r, b, tx.Nonce())
			}
			if tx.GasTipCap().Cmp(big.NewInt(3e9)) < 0 || tx.GasFeeCap().Cmp(tx.GasTipCap()) < 0 {
				t.Fatalf("replacement fees: tip %v cap %v, want at least the Fast fee", tx.GasTipCap(), tx.GasFeeCap())
			}
			if got := getTx(a.ID); got.ReplacementID != r.ID {
				t.Fatalf("replacementId %q, want %q", got.ReplacementID, r.ID)
			}
			done := waitTx(a.ID, "Confirmed")
			rr := waitTx(r.ID, "Confirmed")
			if done.TxHash != rr.TxHash || done.TxHash != tx.Hash().Hex() || done.Fee != rr.Fee || done.Fee == "" || done.DateConfirmed == "" {
				t.Fatalf("sped-up transaction %+v, replacement %+v", done, rr)
			}
			rc := mined(rr.TxHash)
			if want := new(big.Int).Mul(new(big.Int).SetUint64(rc.GasUsed), rc.EffectiveGasPrice); want.String() != done.Fee {
				t.Fatalf("fee %s, want %s", done.Fee, want)
			}
			notMined(a.TxHash)
			spent.Add(spent, fee(done.Fee))
			sent.Add(sent, big.NewInt(1000))
			if got, want := balance(sink.Address), sent; got.Cmp(want) != 0 {
				t.Fatalf("sink balance %v, want %v", got, want)
			}
			if got, want := balance(from.Address), new(big.Int).Sub(new(big.Int).Sub(funded, sent), spent); got.Cmp(want) != 0 {
				t.Fatalf("wallet balance %v, want %v", got, want)
			}
		})

		// b is stuck; the transfers x and y wait behind it in the pool (broadcast, not mined).
		b := stuck("1500")
		x := waitXfr(transfer("2000").ID, "Broadcasted")
		y := waitXfr(transfer("3000").ID, "Broadcasted")
		var xc, y1, y2 replTx
		t.Run("cancel/transfer-queued", func(t *testing.T) {
			if err := c.CancelTransfer(ctx, from.ID, x.ID, &xc); err != nil {
				t.Fatal(err)
			}
			body, tx := xc.body(t)
			if body.Kind != "CancelTransaction" || body.TxHash != x.TxHash || tx.Value().Sign() != 0 ||
				tx.To().Hex() != common.HexToAddress(from.Address).Hex() || tx.Gas() != 21000 || len(tx.Data()) != 0 {
				t.Fatalf("cancel %+v: to %v value %v gas %d", body, tx.To(), tx.Value(), tx.Gas())
			}
			if got := getXfr(x.ID); got.ReplacementID != xc.ID || got.Status != "Broadcasted" {
				t.Fatalf("cancelled transfer before mining: %+v", got)
			}
			// A transfer being cancelled is not sped up.
			if err := c.SpeedUpTransfer(ctx, from.ID, x.ID, nil); status(err) != 400 {
				t.Fatalf("speed-up of a cancelled transfer: %v, want 400", err)
			}
		})
		t.Run("speed-up/twice-bumps-again", func(t *testing.T) {
			if err := c.SpeedUpTransfer(ctx, from.ID, y.ID, &y1); err != nil {
				t.Fatal(err)
			}
			// The first is in the pool before the second is made, so the pool judges the bump.
			waitTx(y1.ID, "Broadcasted")
			if err := c.SpeedUpTransfer(ctx, from.ID, y.ID, &y2); err != nil {
				t.Fatal(err)
			}
			_, t1 := y1.body(t)
			_, t2 := y2.body(t)
			ten := func(x *big.Int) *big.Int {
				return new(big.Int).Div(new(big.Int).Mul(x, big.NewInt(110)), big.NewInt(100))
			}
			if t2.GasTipCap().Cmp(ten(t1.GasTipCap())) < 0 || t2.GasFeeCap().Cmp(ten(t1.GasFeeCap())) < 0 || t2.Nonce() != t1.Nonce() {
				t.Fatalf("second speed-up tip %v cap %v, first tip %v cap %v: want +10%% on both", t2.GasTipCap(), t2.GasFeeCap(), t1.GasTipCap(), t1.GasFeeCap())
			}
			if got := getXfr(y.ID); got.ReplacementID != y2.ID {
				t.Fatalf("replacementId %q, want the newest %q", got.ReplacementID, y2.ID)
			}
			// The pool took the second in place of the first: the bump is enough.
			waitTx(y2.ID, "Broadcasted")
		})
		// Speeding b up unblocks everything behind it: x's cancel and y's second speed-up.
		var bs replTx
		if err := c.SpeedUpTransaction(ctx, from.ID, b.ID, &bs); err != nil {
			t.Fatal(err)
		}
		bDone := waitTx(b.ID, "Confirmed")
		spent.Add(spent, fee(bDone.Fee))
		sent.Add(sent, big.NewInt(1500))
		t.Run("cancel/transfer-mined", func(t *testing.T) {
			got := waitXfr(x.ID, "Failed")
			if !strings.Contains(got.Reason, "cancelled") || !strings.Contains(got.Reason, xc.ID) || got.TxHash != x.TxHash {
				t.Fatalf("cancelled transfer %+v", got)
			}
			cc := waitTx(xc.ID, "Confirmed")
			rc := mined(cc.TxHash)
			if rc.Status != types.ReceiptStatusSuccessful {
				t.Fatal("cancel reverted")
			}
			notMined(x.TxHash)
			spent.Add(spent, fee(cc.Fee))
		})
		t.Run("speed-up/newest-mined", func(t *testing.T) {
			got := waitXfr(y.ID, "Confirmed")
			r2 := waitTx(y2.ID, "Confirmed")
			r1 := waitTx(y1.ID, "Failed")
			if got.TxHash != r2.TxHash || got.Fee != r2.Fee || !strings.Contains(r1.Reason, y2.ID) {
				t.Fatalf("transfer %+v, speed-ups %+v %+v", got, r1, r2)
			}
			mined(r2.TxHash)
			notMined(y.TxHash)
			notMined(r1.TxHash)
			spent.Add(spent, fee(got.Fee))
			sent.Add(sent, big.NewInt(3000))
		})
		t.Run("cancel/transaction", func(t *testing.T) {
			s := stuck("4000")
			var r replTx
			// As the Dfns Go SDK sends it: no body at all (and a user action over no payload).
			if err := c.Do(ctx, http.MethodPost, "/wallets/"+from.ID+"/transactions/"+s.ID+"/cancel", []byte{}, &r); err != nil {
				t.Fatal(err)
			}
			got := waitTx(s.ID, "Failed")
			rr := waitTx(r.ID, "Confirmed")
			if !strings.Contains(got.Reason, "cancelled") || got.ReplacementID != r.ID {
				t.Fatalf("cancelled transaction %+v", got)
			}
			notMined(s.TxHash)
			spent.Add(spent, fee(rr.Fee))
			// The nonce is used by the cancel: the next transfer is mined (no gap).
			z := waitXfr(transfer("5000").ID, "Confirmed")
			spent.Add(spent, fee(z.Fee))
			sent.Add(sent, big.NewInt(5000))
		})
		t.Run("balances", func(t *testing.T) {
			if got := balance(sink.Address); got.Cmp(sent) != 0 {
				t.Fatalf("sink balance %v, want %v", got, sent)
			}
			if got, want := balance(from.Address), new(big.Int).Sub(new(big.Int).Sub(funded, sent), spent); got.Cmp(want) != 0 {
				t.Fatalf("wallet balance %v, want %v (fees %v)", got, want, spent)
			}
			pn, err := backend.Client.PendingNonceAt(ctx, common.HexToAddress(from.Address))
			nn, err2 := backend.Client.NonceAt(ctx, common.HexToAddress(from.Address), nil)
			if err != nil || err2 != nil || pn != nn || nn != aNonce+6 {
				t.Fatalf("nonces: pending %d mined %d (%v %v), want %d", pn, nn, err, err2, aNonce+6)
			}
		})
		t.Run("webhooks", func(t *testing.T) {
			kinds := map[string]int{}
			var xFailed string
			err := n.App.DB.Tx(ctx, func(tx *store.Tx) error {
				rows, err := tx.QueryContext(ctx, `SELECT kind, data FROM webhook_events`)
				if err != nil {
					return err
				}
				defer rows.Close()
				for rows.Next() {
					var k, d string
					if err := rows.Scan(&k, &d); err != nil {
						return err
					}
					kinds[k]++
					if k == "wallet.transfer.failed" && strings.Contains(d, x.ID) {
						xFailed = d
					}
				}
				return rows.Err()
			})
			if err != nil {
				t.Fatal(err)
			}
			// Requested: a, b, the stuck s, and 6 replacements (a, x, y twice, b, s).
			if kinds["wallet.transaction.requested"] != 9 || kinds["wallet.transfer.failed"] != 1 || !strings.Contains(xFailed, "cancelled") ||
				kinds["wallet.transfer.confirmed"] != 2 || kinds["wallet.transaction.failed"] != 2 {
				t.Fatalf("events %v", kinds)
			}
		})

		// Refusals change nothing.
		refuse := func(t *testing.T, want int, call func() error) {
			t.Helper()
			before := replaceDigest(t, n)
			if err := call(); status(err) != want {
				t.Fatalf("%v, want %d", err, want)
			}
			if replaceDigest(t, n) != before {
				t.Fatal("the refused request changed the database")
			}
		}
		org2 := newOrg(t, n)
		btc := createWallet(t, c, "BitcoinTestnet3")
		for _, tc := range []struct {
			name string
			want int
			call func() error
		}{
			{"confirmed-transaction", 400, func() error { return c.SpeedUpTransaction(ctx, from.ID, a.ID, nil) }},
			{"confirmed-transfer", 400, func() error { return c.CancelTransfer(ctx, from.ID, y.ID, nil) }},
			{"failed-transfer", 400, func() error { return c.SpeedUpTransfer(ctx, from.ID, x.ID, nil) }},
			{"a-replacement", 400, func() error { return c.CancelTransaction(ctx, from.ID, y2.ID, nil) }},
			{"unknown-transfer", 404, func() error { return c.SpeedUpTransfer(ctx, from.ID, "xfr-00000-00000-0000000000000000", nil) }},
			{"unknown-transaction", 404, func() error { return c.CancelTransaction(ctx, from.ID, "tx-00000-00000-0000000000000000", nil) }},
			{"transfer-as-transaction", 404, func() error { return c.SpeedUpTransaction(ctx, from.ID, y.ID, nil) }},
			{"other-wallet", 404, func() error { return c.SpeedUpTransfer(ctx, sink.ID, y.ID, nil) }},
			{"other-org", 404, func() error { return org2.Client.SpeedUpTransfer(ctx, from.ID, y.ID, nil) }},
			{"other-org-cancel", 404, func() error { return org2.Client.CancelTransaction(ctx, from.ID, a.ID, nil) }},
			{"not-evm", 400, func() error { return c.SpeedUpTransfer(ctx, btc.ID, y.ID, nil) }},
			{"not-evm-transaction", 400, func() error { return c.CancelTransaction(ctx, btc.ID, a.ID, nil) }},
			{"body-not-object", 400, func() error {
				return c.Do(ctx, http.MethodPost, "/wallets/"+from.ID+"/transfers/"+y.ID+"/speed-up", []byte(`[]`), nil)
			}},
		} {
			t.Run("fail/"+tc.name, func(t *testing.T) { refuse(t, tc.want, tc.call) })
		}
		t.Run("delegated", func(t *testing.T) {
			// The delegation rule: the organization does not replace its end user's
			// transactions (403 before the transfer is even looked up); the end user may.
			alice, reg := signUpEndUser(t, n, adminActor(t, n), "alice@example.co", map[string]string{"network": network})
			path := "/wallets/" + reg.Wallets[0].ID + "/transfers/xfr-00000-00000-0000000000000000/speed-up"
			before := replaceDigest(t, n)
			admin := adminActor(t, n)
			if st, body := admin.signed(t, "POST", path, []byte(`{}`)); st != 403 {
				t.Fatalf("admin speeds up a delegated wallet's transfer: %d %s, want 403", st, body)
			}
			if st, body := alice.signed(t, "POST", path, []byte(`{}`)); st != 404 {
				t.Fatalf("end user, unknown transfer: %d %s, want 404", st, body)
			}
			if replaceDigest(t, n) != before {
				t.Fatal("the refused requests changed the database")
			}
		})
		t.Run("fail/without-user-action", func(t *testing.T) {
			before := replaceDigest(t, n)
			code, resp, err := c.Raw(ctx, http.MethodPost, "/wallets/"+from.ID+"/transfers/"+y.ID+"/speed-up", []byte(`{}`), "")
			if err != nil || code != http.StatusForbidden && code != http.StatusUnauthorized {
				t.Fatalf("%d %s %v, want 401/403", code, resp, err)
			}
			if replaceDigest(t, n) != before {
				t.Fatal("the refused request changed the database")
			}
		})
	})
}

// TestSpeedUpByHand runs the broadcast jobs by hand (a node without job workers), to reach
// the orders a busy node only sometimes takes: a request not broadcast yet, an original
// mined before its replacement is sent, the original's own job settling a legacy speed-up.
func TestSpeedUpByHand(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		ctx := context.Background()
		const network = "BaseSepolia"
		n := apptest.Start(t, e, apptest.Options{NoJobs: true})
		c := n.Admin
		backend, err := n.App.Chains.Get(ctx, network)
		if err != nil {
			t.Fatal(err)
		}
		w, sink := createWallet(t, c, network), createWallet(t, c, network)
		if err := c.Do(ctx, http.MethodPost, "/dev/faucet", map[string]any{"network": network, "address": w.Address, "amount": "1000000000000000000"}, nil); err != nil {
			t.Fatal(err)
		}
		// until runs step until it returns nil (final), at most 60 s.
		until := func(step func() error) {
			t.Helper()
			for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				err := step()
				if err == nil {
					return
				}
				if !errors.Is(err, wallets.ErrPending) || time.Now().After(deadline) {
					t.Fatal(err)
				}
			}
		}
		getTx := func(id string) (r replTx) { getRequest(t, c, "/wallets/"+w.ID+"/transactions/"+id, &r); return r }
		getXfr := func(id string) (r replXfr) { getRequest(t, c, "/wallets/"+w.ID+"/transfers/"+id, &r); return r }
		transfer := func() replXfr {
			t.Helper()
			var r replXfr
			if err := c.Do(ctx, http.MethodPost, "/wallets/"+w.ID+"/transfers", map[string]any{"kind": "Native", "to": sink.Address, "amount": "7"}, &r); err != nil {
				t.Fatal(err)
			}
			return r
		}

		t.Run("fail/not-broadcast", func(t *testing.T) {
			x := transfer() // Executing: its job has not run
			for _, call := range []func() error{
				func() error { return c.SpeedUpTransfer(ctx, w.ID, x.ID, nil) },
				func() error { return c.CancelTransfer(ctx, w.ID, x.ID, nil) },
			} {
				before := replaceDigest(t, n)
				if err := call(); status(err) != 400 || !strings.Contains(err.Error(), "not broadcast") {
					t.Fatalf("%v, want 400 not broadcast", err)
				}
				if replaceDigest(t, n) != before {
					t.Fatal("the refused request changed the database")
				}
			}
			until(func() error { return n.App.Wallets.Advance(ctx, x.ID) })
		})

		t.Run("original-mined-first", func(t *testing.T) {
			// Find a transfer whose job saw it sent but not yet mined (the dev chain mines in ms):
			// sends that wait for the receipt would record it mined at once.
			n.App.Wallets.SetAsyncDevSends(true)
			defer n.App.Wallets.SetAsyncDevSends(false)
			var x replXfr
			for i := 0; ; i++ {
				x = transfer()
				err := n.App.Wallets.Advance(ctx, x.ID)
				if errors.Is(err, wallets.ErrPending) {
					x = getXfr(x.ID) // the hash is reported once broadcast
					break
				}
				if err != nil || i == 10 {
					t.Fatalf("no transfer was seen pending in 10 tries (%v)", err)
				}
			}
			for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(10 * time.Millisecond) { // mined, still Broadcasted in the database
				if _, err := backend.Client.TransactionReceipt(ctx, common.HexToHash(x.TxHash)); err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("transfer %+v not mined", x)
				}
			}
			var r replTx
			if err := c.SpeedUpTransfer(ctx, w.ID, x.ID, &r); err != nil {
				t.Fatal(err)
			}
			until(func() error { return n.App.Wallets.AdvanceTransaction(ctx, r.ID) }) // refused "nonce too low", then settled
			got, rr := getXfr(x.ID), getTx(r.ID)
			if got.Status != "Confirmed" || got.TxHash != x.TxHash || got.ReplacementID != r.ID || got.Fee == "" {
				t.Fatalf("original %+v", got)
			}
			if rr.Status != "Failed" || !strings.Contains(rr.Reason, "mined first") || rr.Fee != "" {
				t.Fatalf("replacement %+v", rr)
			}
			if err := n.App.Wallets.Advance(ctx, x.ID); err != nil {
				t.Fatalf("the original's job after settling: %v", err)
			}
		})

		t.Run("concurrent-speed-ups", func(t *testing.T) {
			var a replTx
			body := map[string]any{"kind": "Eip1559", "to": sink.Address, "value": "13", "gasLimit": "21000", "maxFeePerGas": "1", "maxPriorityFeePerGas": "1"}
			if err := c.Do(ctx, http.MethodPost, "/wallets/"+w.ID+"/transactions", body, &a); err != nil {
				t.Fatal(err)
			}
			if err := n.App.Wallets.AdvanceTransaction(ctx, a.ID); !errors.Is(err, wallets.ErrPending) {
				t.Fatalf("a fee cap of 1 wei is mined: %v", err)
			}
			// Four at once: each either bumps over the one before it, or is refused (409)
			// because another changed the transaction meanwhile; none bumps the same fees twice.
			const k = 4
			results := make(chan replTx, k)
			codes := make(chan int, k)
			for range k {
				go func() {
					var r replTx
					err := c.SpeedUpTransaction(ctx, w.ID, a.ID, &r)
					codes <- status(err)
					if err == nil {
						results <- r
					}
				}()
			}
			var ok []*types.Transaction
			newest := map[string]string{}
			for range k {
				switch code := <-codes; code {
				case 0:
					r := <-results
					_, tx := r.body(t)
					ok = append(ok, tx)
					newest[tx.Hash().Hex()] = r.ID
				case 409:
				default:
					t.Fatalf("concurrent speed-up: %d", code)
				}
			}
			if len(ok) == 0 {
				t.Fatal("no speed-up succeeded")
			}
			t.Logf("%d of %d concurrent speed-ups succeeded, the others were refused with 409", len(ok), k)
			slices.SortFunc(ok, func(x, y *types.Transaction) int { return x.GasFeeCap().Cmp(y.GasFeeCap()) })
			for i := 1; i < len(ok); i++ {
				p, q := ok[i-1], ok[i]
				if q.GasTipCap().Cmp(new(big.Int).Div(new(big.Int).Mul(p.GasTipCap(), big.NewInt(110)), big.NewInt(100))) < 0 ||
					q.GasFeeCap().Cmp(new(big.Int).Div(new(big.Int).Mul(p.GasFeeCap(), big.NewInt(110)), big.NewInt(100))) < 0 {
					t.Fatalf("two speed-ups bumped the same fees: %v/%v and %v/%v", p.GasTipCap(), p.GasFeeCap(), q.GasTipCap(), q.GasFeeCap())
				}
			}
			top := ok[len(ok)-1]
			if got := getTx(a.ID); got.ReplacementID != newest[top.Hash().Hex()] {
				t.Fatalf("replacementId %s, want the highest-priced %s", got.ReplacementID, newest[top.Hash().Hex()])
			}
			// Sent in price order (a job per replacement): the first sent is mined at once (the
			// dev chain seals on arrival); it decides for all.
			for _, tx := range ok {
				if err := n.App.Wallets.AdvanceTransaction(ctx, newest[tx.Hash().Hex()]); err != nil && !errors.Is(err, wallets.ErrPending) {
					t.Fatal(err)
				}
			}
			until(func() error { return n.App.Wallets.AdvanceTransaction(ctx, a.ID) })
			got, confirmed := getTx(a.ID), 0
			for _, tx := range ok {
				r := getTx(newest[tx.Hash().Hex()])
				switch {
				case r.Status == "Confirmed" && r.TxHash == got.TxHash && r.Fee == got.Fee:
					confirmed++
				case r.Status != "Failed":
					t.Fatalf("replacement %+v", r)
				}
			}
			if got.Status != "Confirmed" || confirmed != 1 {
				t.Fatalf("original %+v, %d replacements confirmed with its hash, want 1", got, confirmed)
			}
		})

		t.Run("legacy-settled-by-the-original", func(t *testing.T) {
			var a replTx
			body := map[string]any{"kind": "EvmLegacy", "to": sink.Address, "value": "11", "gasLimit": "21000", "gasPrice": "1"}
			if err := c.Do(ctx, http.MethodPost, "/wallets/"+w.ID+"/transactions", body, &a); err != nil {
				t.Fatal(err)
			}
			if err := n.App.Wallets.AdvanceTransaction(ctx, a.ID); !errors.Is(err, wallets.ErrPending) {
				t.Fatalf("a gas price of 1 wei is mined: %v", err)
			}
			var r replTx
			if err := c.SpeedUpTransaction(ctx, w.ID, a.ID, &r); err != nil {
				t.Fatal(err)
			}
			_, tx := r.body(t)
			if tx.Type() != types.LegacyTxType || tx.GasPrice().Cmp(big.NewInt(3e9)) < 0 || tx.Value().Int64() != 11 {
				t.Fatalf("legacy speed-up: type %d price %v", tx.Type(), tx.GasPrice())
			}
			// Only the replacement's send runs as a job; the original's job decides.
			if err := n.App.Wallets.AdvanceTransaction(ctx, r.ID); err != nil && !errors.Is(err, wallets.ErrPending) {
				t.Fatal(err)
			}
			until(func() error { return n.App.Wallets.AdvanceTransaction(ctx, a.ID) })
			got, rr := getTx(a.ID), getTx(r.ID)
			if got.Status != "Confirmed" || got.TxHash != tx.Hash().Hex() || rr.Status != "Confirmed" || got.Fee != rr.Fee {
				t.Fatalf("original %+v replacement %+v", got, rr)
			}
		})
	})
}

// TestSpeedUpSurvivesRestart: a node restart empties the dev chain's pool. The job of a
// sped-up transfer then sends its newest replacement again (not the replaced original),
// and the replacement is what is mined once the nonce before it is unblocked.
func TestSpeedUpSurvivesRestart(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		ctx := context.Background()
		const network = "EthereumSepolia"
		dsn, dir := e.DSN(t), t.TempDir()
		a := apptest.Start(t, e, apptest.Options{DSN: dsn, DataDir: dir, NoJobs: true}) // jobs run by hand
		w := createWallet(t, a.Admin, network)
		if err := a.Admin.Do(ctx, http.MethodPost, "/dev/faucet", map[string]any{"network": network, "address": w.Address, "amount": "1000000000000000000"}, nil); err != nil {
			t.Fatal(err)
		}
		pending := func(err error) {
			t.Helper()
			if !errors.Is(err, wallets.ErrPending) {
				t.Fatalf("%v, want pending", err)
			}
		}
		var stuck replTx
		body := map[string]any{"kind": "Eip1559", "to": w.Address, "value": "0", "gasLimit": "21000", "maxFeePerGas": "1", "maxPriorityFeePerGas": "1"}
		if err := a.Admin.Do(ctx, http.MethodPost, "/wallets/"+w.ID+"/transactions", body, &stuck); err != nil {
			t.Fatal(err)
		}
		pending(a.App.Wallets.AdvanceTransaction(ctx, stuck.ID))
		var x replXfr
		if err := a.Admin.Do(ctx, http.MethodPost, "/wallets/"+w.ID+"/transfers", map[string]any{"kind": "Native", "to": "0x000000000000000000000000000000000000dEaD", "amount": "77"}, &x); err != nil {
			t.Fatal(err)
		}
		pending(a.App.Wallets.Advance(ctx, x.ID)) // queued behind the stuck nonce
		var xs replTx
		if err := a.Admin.SpeedUpTransfer(ctx, w.ID, x.ID, &xs); err != nil {
			t.Fatal(err)
		}
		pending(a.App.Wallets.AdvanceTransaction(ctx, xs.ID))
		getRequest(t, a.Admin, "/wallets/"+w.ID+"/transfers/"+x.ID, &x)
		xsHash := mustHash(t, xs) // not reported while the speed-up is Pending
		a.Stop()

		b := apptest.Start(t, e, apptest.Options{DSN: dsn, DataDir: dir, NoJobs: true})
		backend, err := b.App.Chains.Get(ctx, network)
		if err != nil {
			t.Fatal(err)
		}
		known := func(hash string) bool {
			_, _, err := backend.Client.TransactionByHash(ctx, common.HexToHash(hash))
			return err == nil
		}
		if known(x.TxHash) || known(xsHash) {
			t.Fatal("the restarted node's pool still holds the transfer")
		}
		pending(b.App.Wallets.Advance(ctx, x.ID)) // the transfer's job: none of its transactions is known
		if !known(xsHash) || known(x.TxHash) {
			t.Fatalf("after the transfer's job: speed-up known %v, original known %v; want only the speed-up sent again", known(xsHash), known(x.TxHash))
		}
		pending(b.App.Wallets.AdvanceTransaction(ctx, stuck.ID)) // sent again too, still stuck
		var ss replTx
		if err := b.Admin.SpeedUpTransaction(ctx, w.ID, stuck.ID, &ss); err != nil {
			t.Fatal(err)
		}
		for _, step := range []func() error{
			func() error { return b.App.Wallets.AdvanceTransaction(ctx, ss.ID) },
			func() error { return b.App.Wallets.Advance(ctx, x.ID) },
		} {
			for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				err := step()
				if err == nil {
					break
				}
				if !errors.Is(err, wallets.ErrPending) || time.Now().After(deadline) {
					t.Fatal(err)
				}
			}
		}
		var got replXfr
		getRequest(t, b.Admin, "/wallets/"+w.ID+"/transfers/"+x.ID, &got)
		if got.Status != "Confirmed" || got.TxHash != xsHash {
			t.Fatalf("transfer after restart %+v, want Confirmed with the speed-up's hash", got)
		}
	})
}

// mustHash is the hash of a replacement's signed transaction.
func mustHash(t testing.TB, r replTx) string {
	t.Helper()
	_, tx := r.body(t)
	return tx.Hash().Hex()
}
