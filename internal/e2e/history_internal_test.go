package e2e

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/countersign/countersign/internal/app/apptest"
	"github.com/countersign/countersign/internal/testutil"
)

// Hand-assembled test contracts (there is no compiler in the build). Each is deployed with
// initCode, which copies the runtime after it to memory and returns it:
//
//	PUSH1 len DUP1 PUSH1 0x0b PUSH1 0 CODECOPY PUSH1 0 RETURN
const (
	// forwarderRuntime sends CALLVALUE to the address in calldata word 0, with the rest of
	// the calldata as the call's input, and ignores the call's outcome:
	//
	//	PUSH1 32 CALLDATASIZE SUB PUSH1 32 PUSH1 0 CALLDATACOPY           ; mem[0:] = calldata[32:]
	//	PUSH1 0 PUSH1 0 PUSH1 32 CALLDATASIZE SUB PUSH1 0 CALLVALUE        ; ret 0,0; args 0,len; value
	//	PUSH1 0 CALLDATALOAD GAS CALL POP STOP                              ; to = word 0
	forwarderRuntime = "60203603602060003760006000602036036000346000355af15000"
	// splitterRuntime sends half of CALLVALUE (rounded down) to calldata word 0 and the rest
	// to word 1, and reverts if either call fails:
	//
	//	0x00 PUSH1 0 ×4 PUSH1 2 CALLVALUE DIV PUSH1 0 CALLDATALOAD GAS CALL ISZERO PUSH1 0x2d JUMPI
	//	0x15 PUSH1 0 ×4 PUSH1 2 CALLVALUE DIV CALLVALUE SUB PUSH1 32 CALLDATALOAD GAS CALL ISZERO PUSH1 0x2d JUMPI STOP
	//	0x2d JUMPDEST PUSH1 0 PUSH1 0 REVERT
	splitterRuntime = "6000600060006000600234046000355af115602d57" +
		"60006000600060006002340434036020355af115602d5700" + "5b60006000fd"
	// reverterRuntime sends CALLVALUE to calldata word 0, then reverts whatever happened:
	//
	//	PUSH1 0 ×4 CALLVALUE PUSH1 0 CALLDATALOAD GAS CALL POP PUSH1 0 PUSH1 0 REVERT
	reverterRuntime = "6000600060006000346000355af15060006000fd"
)

// initCode returns the creation code that deploys runtime (hex).
func initCode(runtime string) string {
	n := len(runtime) / 2
	return "0x60" + hex.EncodeToString([]byte{byte(n)}) + "80600b6000396000f3" + runtime
}

// word is an address as a 32-byte calldata word (hex, no 0x).
func word(addr string) string {
	return strings.Repeat("0", 24) + strings.ToLower(strings.TrimPrefix(addr, "0x"))
}

// TestHistoryInternal checks that native value moved inside contract calls (internal
// transfers, found by tracing the dev chain's blocks) reaches the receiving wallet's
// history and webhooks, once: a forward, a split into two moves to one wallet, and a
// forward whose inner call reverted (none).
func TestHistoryInternal(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		n := apptest.Start(t, e, apptest.Options{WebhooksAllowPrivate: true, WebhookRetrySchedule: "1s,2s,4s"})
		ctx := context.Background()
		c := n.Admin
		const network = "BaseSepolia"
		hooks := newWHReceiver(t, nil)
		whCreate(t, c, map[string]any{"url": hooks.srv.URL, "events": []string{"wallet.blockchainevent.detected"}})

		a, b := createWallet(t, c, network), createWallet(t, c, network)
		var funded struct {
			TxHash string `json:"txHash"`
		}
		if err := c.Do(ctx, http.MethodPost, "/dev/faucet", map[string]any{"network": network, "address": a.Address,
			"amount": "5000000000000000000"}, &funded); err != nil {
			t.Fatal(err)
		}
		backend, err := n.App.Chains.Get(ctx, network)
		if err != nil {
			t.Fatal(err)
		}
		send := func(body map[string]any) transactionResp {
			t.Helper()
			return requestConfirmed(t, c, "/wallets/"+a.ID+"/transactions", body,
				func(r *transactionResp) (string, string) { return r.ID, r.Status })
		}
		deploy := func(runtime string) string {
			t.Helper()
			tr := send(map[string]any{"kind": "Evm", "data": initCode(runtime)})
			rc, err := backend.Client.TransactionReceipt(ctx, common.HexToHash(tr.TxHash))
			if err != nil || rc.Status != 1 {
				t.Fatalf("deploy: %+v %v", rc, err)
			}
			code, err := backend.Client.CodeAt(ctx, rc.ContractAddress, nil)
			if err != nil || hex.EncodeToString(code) != runtime {
				t.Fatalf("deployed code %x, %v; want %s", code, err, runtime)
			}
			return rc.ContractAddress.Hex()
		}
		forwarder, splitter, reverter := deploy(forwarderRuntime), deploy(splitterRuntime), deploy(reverterRuntime)
		balanceB := func() *big.Int {
			t.Helper()
			v, err := backend.Client.BalanceAt(ctx, common.HexToAddress(b.Address), nil)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}

		// 1 ETH through the forwarder to B; 1001 wei split 500/501 to B twice in one
		// transaction; 777 wei through the forwarder to the reverter, which pays B and reverts.
		fwd := send(map[string]any{"kind": "Evm", "to": forwarder, "value": "1000000000000000000", "data": "0x" + word(b.Address)})
		split := send(map[string]any{"kind": "Evm", "to": splitter, "value": "1001", "data": "0x" + word(b.Address) + word(b.Address)})
		rev := send(map[string]any{"kind": "Evm", "to": forwarder, "value": "777", "data": "0x" + word(reverter) + word(b.Address)})
		if got := balanceB(); got.String() != "1000000000000001001" {
			t.Fatalf("B's balance %s: the contracts did not move what the test expects", got)
		}
		if v, _ := backend.Client.BalanceAt(ctx, common.HexToAddress(forwarder), nil); v.Int64() != 777 {
			t.Fatalf("forwarder balance %s, want the 777 the reverted inner call left", v)
		}

		list := func(walletID string) historyList {
			t.Helper()
			var l historyList
			if err := c.Do(ctx, http.MethodGet, "/wallets/"+walletID+"/history", nil, &l); err != nil {
				t.Fatal(err)
			}
			return l
		}
		await := func(walletID string, want int) historyList {
			t.Helper()
			deadline := time.Now().Add(90 * time.Second)
			for {
				l := list(walletID)
				if len(l.Items) >= want || time.Now().After(deadline) {
					if len(l.Items) != want {
						t.Fatalf("history of %s has %d items, want %d: %+v", walletID, len(l.Items), want, l.Items)
					}
					return l
				}
				time.Sleep(250 * time.Millisecond)
			}
		}
		// A: the funding, and its own three value-carrying transactions (deployments carry none).
		histA := await(a.ID, 4)
		// Everything is indexed once A's last transaction is: B's history is complete.
		histB := await(b.ID, 3)

		type want struct{ direction, tx, from, to, value string }
		check := func(who string, got []historyItem, wants []want) {
			t.Helper()
			if len(got) != len(wants) {
				t.Fatalf("%s: %d items, want %d: %+v", who, len(got), len(wants), got)
			}
			indexes := map[string]bool{}
			for i, it := range got {
				w := wants[i]
				if it.Kind != "NativeTransfer" || it.Direction != w.direction || it.TxHash != w.tx || it.Value != w.value ||
					(w.from != "" && it.From != w.from) || it.To != w.to || it.Network != network ||
					it.Metadata.Asset.Symbol != "ETH" || it.Metadata.Asset.Decimals != 18 || !it.Metadata.Asset.Verified {
					t.Fatalf("%s item %d = %+v, want %+v", who, i, it, w)
				}
				if _, err := time.Parse("2006-01-02T15:04:05.000Z", it.Timestamp); err != nil || it.BlockNumber <= 0 || it.Index == "" {
					t.Fatalf("%s item %d: timestamp %q, block %d, index %q", who, i, it.Timestamp, it.BlockNumber, it.Index)
				}
				if indexes[it.TxHash+"/"+it.Index] {
					t.Fatalf("%s: two items of %s share index %q", who, it.TxHash, it.Index)
				}
				indexes[it.TxHash+"/"+it.Index] = true
				if (it.Direction == "In") != (it.Fee == "") {
					t.Fatalf("%s item %d: fee %q on a %s item", who, i, it.Fee, it.Direction)
				}
			}
		}
		check("B", histB.Items, []want{
			{"In", split.TxHash, splitter, b.Address, "501"},
			{"In", split.TxHash, splitter, b.Address, "500"},
			{"In", fwd.TxHash, forwarder, b.Address, "1000000000000000000"},
		})
		// A's value went to the contracts: one Out each, at the top level, never repeated.
		check("A", histA.Items, []want{
			{"Out", rev.TxHash, a.Address, forwarder, "777"},
			{"Out", split.TxHash, a.Address, splitter, "1001"},
			{"Out", fwd.TxHash, a.Address, forwarder, "1000000000000000000"},
			{"In", funded.TxHash, "", a.Address, "5000000000000000000"},
		})
		if histB.Items[0].Index == histB.Items[1].Index || !strings.Contains(histB.Items[0].Index, ":") {
			t.Fatalf("split indexes %q %q", histB.Items[0].Index, histB.Items[1].Index)
		}

		// One webhook per incoming event: B's three and A's funding, each once.
		ds := hooks.waitFor(t, "4 blockchain events", func(ds []whDelivery) bool { return len(ds) >= 4 })
		time.Sleep(time.Second) // nothing more may arrive
		ds = hooks.deliveries()
		var got []string
		for _, d := range ds {
			var ev historyItem
			if err := json.Unmarshal(d.env.Data["blockchainEvent"], &ev); err != nil || d.env.Kind != "wallet.blockchainevent.detected" {
				t.Fatalf("delivery %s: %v", d.body, err)
			}
			got = append(got, ev.WalletID+" "+ev.Direction+" "+ev.TxHash+" "+ev.Value)
		}
		slices.Sort(got)
		wantHooks := []string{a.ID + " In " + funded.TxHash + " 5000000000000000000", b.ID + " In " + fwd.TxHash + " 1000000000000000000",
			b.ID + " In " + split.TxHash + " 500", b.ID + " In " + split.TxHash + " 501"}
		slices.Sort(wantHooks)
		if !slices.Equal(got, wantHooks) {
			t.Fatalf("webhooks\n%q\nwant\n%q", got, wantHooks)
		}

		// Reindexing the whole chain finds the same moves under the same keys: nothing new.
		if before, after := reindexFromGenesis(t, n); after != before || before != 7 {
			t.Fatalf("%d history rows after reindexing, %d before, want 7", after, before)
		}
		if l := list(b.ID); len(l.Items) != 3 {
			t.Fatalf("B's history after reindexing: %+v", l.Items)
		}
		if len(hooks.deliveries()) != 4 {
			t.Fatalf("reindexing sent webhooks again: %d deliveries", len(hooks.deliveries()))
		}
	})
}
