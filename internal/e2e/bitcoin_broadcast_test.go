package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcutil"
	"github.com/btcsuite/btcd/btcutil/psbt"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/btcsuite/btcd/txscript"
	"github.com/btcsuite/btcd/wire"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"

	"github.com/countersign/countersign/client"
	"github.com/countersign/countersign/internal/app/apptest"
	"github.com/countersign/countersign/internal/chains/bitcoin"
	"github.com/countersign/countersign/internal/testutil"
)

// btcdVersion is the btcd release the broadcast tests run as a real regtest node. It is
// built from the Go module proxy (the same module countersign already depends on) into
// the user cache, once per machine.
const btcdVersion = "v0.24.2"

var btcdBuild = sync.OnceValues(func() (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "countersign-test", "btcd-"+btcdVersion)
	bin := filepath.Join(dir, "btcd")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.Command("go", "install", "github.com/btcsuite/btcd@"+btcdVersion)
	cmd.Dir = tmp // outside any module: go install pkg@version builds the release as published
	cmd.Env = append(os.Environ(), "GOBIN="+tmp, "GOFLAGS=", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go install github.com/btcsuite/btcd@%s: %v\n%s", btcdVersion, err, out)
	}
	if err := os.Rename(filepath.Join(tmp, "btcd"), bin); err != nil {
		return "", err
	}
	return bin, nil
})

// btcNode is a btcd regtest node on loopback, started by the test and killed when it ends.
type btcNode struct {
	rpc  *bitcoin.RPC
	args []string
	bin  string
	cmd  *exec.Cmd
	log  *bytes.Buffer
}

// freePort picks a free loopback port.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startBtcd runs btcd on a private test network (net: "--regtest" or "--simnet") with
// --txindex, RPC on port (loopback, no TLS, user/pass), no p2p listener and no peers,
// paying mined coinbases to miningAddr (encoded for that network). Skips the test when
// btcd cannot be built here, except in CI, where it fails.
func startBtcd(t *testing.T, net string, port int, miningAddr string) *btcNode {
	t.Helper()
	bin, err := btcdBuild()
	if err != nil {
		if os.Getenv("CI") == "true" { // CI must test against a real node, not skip
			t.Fatalf("btcd %s is required in CI and could not be built: %v", btcdVersion, err)
		}
		t.Skipf("btcd %s could not be built, so there is no real Bitcoin node to test against: %v", btcdVersion, err)
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "btcd.conf") // an empty config file, so btcd writes none into $HOME
	if err := os.WriteFile(conf, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	rpc, err := bitcoin.NewRPC("http://countersign:regtest@" + listen)
	if err != nil {
		t.Fatal(err)
	}
	b := &btcNode{rpc: rpc, bin: bin, log: new(bytes.Buffer), args: []string{"--configfile=" + conf,
		"--datadir=" + filepath.Join(dir, "data"), "--logdir=" + filepath.Join(dir, "logs"),
		net, "--txindex", "--notls", "--rpclisten=" + listen, "--rpcuser=countersign", "--rpcpass=regtest",
		"--nolisten", "--nodnsseed", "--miningaddr=" + miningAddr}}
	t.Cleanup(func() {
		b.stop()
		if t.Failed() {
			t.Logf("btcd log:\n%s", b.log.String())
		}
	})
	b.start(t)
	return b
}

// start runs the node on its data directory and waits for its RPC.
func (b *btcNode) start(t *testing.T) {
	t.Helper()
	b.cmd = exec.Command(b.bin, b.args...)
	b.cmd.Stdout, b.cmd.Stderr = b.log, b.log
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var height int64
		err := b.rpc.Call(t.Context(), "getblockcount", nil, &height)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("btcd did not answer: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop shuts the node down (SIGINT, as an operator would; SIGKILL after 20 s). Its chain
// stays on disk, but btcd neither keeps its mempool nor, on regtest, its chain.
func (b *btcNode) stop() {
	if b.cmd == nil || b.cmd.Process == nil {
		return
	}
	b.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { b.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		b.cmd.Process.Kill()
		<-done
	}
	b.cmd = nil
}

// activateSegwit mines until segwit is active: btcd's regtest and simnet activate it by
// BIP-9 signalling (bitcoind's regtest has it from genesis), which takes three windows.
// It returns the hashes of the blocks mined, from height 1.
func (b *btcNode) activateSegwit(t *testing.T) []string {
	t.Helper()
	var blocks []string
	for range 6 {
		blocks = append(blocks, b.generate(t, 144)...)
		var info struct {
			Forks map[string]struct {
				Status string `json:"status"`
			} `json:"bip9_softforks"`
		}
		if err := b.rpc.Call(t.Context(), "getblockchaininfo", nil, &info); err != nil {
			t.Fatal(err)
		}
		if info.Forks["segwit"].Status == "active" {
			return blocks
		}
	}
	t.Fatal("segwit did not activate on the test node")
	return nil
}

func (b *btcNode) generate(t *testing.T, n int) []string {
	t.Helper()
	var hashes []string
	if err := b.rpc.Call(t.Context(), "generate", []any{n}, &hashes); err != nil || len(hashes) != n {
		t.Fatalf("generate %d: %v", n, err)
	}
	return hashes
}

// rawTx reads a transaction from the node (verbose 0: the hex).
func (b *btcNode) rawTx(t *testing.T, txid string) *wire.MsgTx {
	t.Helper()
	var h string
	if err := b.rpc.Call(t.Context(), "getrawtransaction", []any{txid, 0}, &h); err != nil {
		t.Fatal(err)
	}
	var tx wire.MsgTx
	if err := tx.Deserialize(bytes.NewReader(mustHex(t, h))); err != nil {
		t.Fatal(err)
	}
	return &tx
}

// coinbase returns the outpoint and output of the wallet's coinbase at block hash.
func (b *btcNode) coinbase(t *testing.T, blockHash string, script []byte) (wire.OutPoint, *wire.TxOut) {
	t.Helper()
	var blk struct {
		Tx []string `json:"tx"`
	}
	if err := b.rpc.Call(t.Context(), "getblock", []any{blockHash}, &blk); err != nil || len(blk.Tx) == 0 {
		t.Fatalf("getblock: %v", err)
	}
	tx := b.rawTx(t, blk.Tx[0])
	for i, out := range tx.TxOut {
		if bytes.Equal(out.PkScript, script) {
			return wire.OutPoint{Hash: tx.TxHash(), Index: uint32(i)}, out
		}
	}
	t.Fatal("the coinbase does not pay the wallet")
	return wire.OutPoint{}, nil
}

// spendPSBT spends op (worth prev) to a fresh address: amount to it, the rest minus fee
// back to change.
func spendPSBT(t *testing.T, op wire.OutPoint, prev *wire.TxOut, amount, fee int64, change []byte) *psbt.Packet {
	t.Helper()
	other, _ := secp256k1.GeneratePrivateKey()
	to, _ := txscript.NewScriptBuilder().AddOp(txscript.OP_0).AddData(btcutil.Hash160(other.PubKey().SerializeCompressed())).Script()
	tx := wire.NewMsgTx(2)
	tx.AddTxIn(wire.NewTxIn(&op, nil, nil))
	tx.AddTxOut(wire.NewTxOut(amount, to))
	tx.AddTxOut(wire.NewTxOut(prev.Value-amount-fee, change))
	p, err := psbt.NewFromUnsignedTx(tx)
	if err != nil {
		t.Fatal(err)
	}
	p.Inputs[0].WitnessUtxo = prev
	return p
}

// waitTx polls a broadcast request until cond holds.
func waitTx(t *testing.T, c *client.Client, walletID, id string, cond func(transactionResp) bool) transactionResp {
	t.Helper()
	var tr transactionResp
	deadline := time.Now().Add(60 * time.Second)
	for {
		if err := c.Do(t.Context(), http.MethodGet, "/wallets/"+walletID+"/transactions/"+id, nil, &tr); err != nil {
			t.Fatal(err)
		}
		if cond(tr) {
			return tr
		}
		if time.Now().After(deadline) {
			t.Fatalf("transaction %s stuck: %+v", id, tr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestBitcoinPsbtBroadcast broadcasts PSBTs through a real btcd regtest node. The node
// serves the wallet's network (BitcoinSignet here: which Dfns network a node serves is a
// configuration detail, and P2WPKH scripts are the same on every network); it mines a
// matured coinbase to the wallet, whose PSBT spend is signed, finalized, stored with its
// job, sent, mined and reported Confirmed with the PSBT's fee. A double spend ends Failed
// with the node's reason; malformed PSBTs and a network without a node are refused (400)
// with nothing stored.
func TestBitcoinPsbtBroadcast(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		port := freePort(t)
		rpcURL := fmt.Sprintf("http://countersign:regtest@127.0.0.1:%d", port)
		n := apptest.Start(t, e, apptest.Options{BitcoinRPC: []string{"BitcoinSignet=" + rpcURL}})
		ctx := context.Background()
		c := n.Admin
		var w, noNode walletResp
		if err := c.Do(ctx, http.MethodPost, "/wallets", map[string]any{"network": "BitcoinSignet"}, &w); err != nil {
			t.Fatal(err)
		}
		if err := c.Do(ctx, http.MethodPost, "/wallets", map[string]any{"network": "BitcoinTestnet3"}, &noNode); err != nil {
			t.Fatal(err)
		}
		pub := mustHex(t, w.SigningKey.PublicKey)
		script, _ := txscript.NewScriptBuilder().AddOp(txscript.OP_0).AddData(btcutil.Hash160(pub)).Script()
		regtestAddr, err := btcutil.NewAddressWitnessPubKeyHash(btcutil.Hash160(pub), &chaincfg.RegressionNetParams)
		if err != nil {
			t.Fatal(err)
		}
		node := startBtcd(t, "--regtest", port, regtestAddr.EncodeAddress()) // bcrt1q…: the wallet's witness program
		blocks := node.activateSegwit(t)                                     // 432 blocks: block 1's coinbase is long mature too
		op, prev := node.coinbase(t, blocks[0], script)
		op2, prev2 := node.coinbase(t, blocks[1], script)
		op3, prev3 := node.coinbase(t, blocks[2], script)

		broadcast := func(body map[string]any) (transactionResp, error) {
			var tr transactionResp
			err := c.Do(ctx, http.MethodPost, "/wallets/"+w.ID+"/transactions", body, &tr)
			return tr, err
		}

		t.Run("refused", func(t *testing.T) {
			good := psbtHex(t, spendPSBT(t, op, prev, 1_000_000, 10_000, script))
			// Another key's input, unsigned: the transaction cannot be finalized.
			foreign := spendPSBT(t, op, prev, 1_000_000, 10_000, script)
			other, _ := secp256k1.GeneratePrivateKey()
			otherScript, _ := txscript.NewScriptBuilder().AddOp(txscript.OP_0).AddData(btcutil.Hash160(other.PubKey().SerializeCompressed())).Script()
			fop := wire.OutPoint{Hash: [32]byte{9}, Index: 0}
			foreign.UnsignedTx.AddTxIn(wire.NewTxIn(&fop, nil, nil))
			foreign.Inputs = append(foreign.Inputs, psbt.PInput{WitnessUtxo: wire.NewTxOut(5_000, otherScript)})
			overspend := spendPSBT(t, op, prev, 1_000_000, 10_000, script)
			overspend.UnsignedTx.TxOut[1].Value = prev.Value // outputs exceed the input
			noUtxo := spendPSBT(t, op, prev, 1_000_000, 10_000, script)
			noUtxo.Inputs[0].WitnessUtxo = nil
			for _, tt := range []struct {
				name   string
				wallet string
				body   map[string]any
				msg    string
			}{
				{"missing-psbt", w.ID, map[string]any{"kind": "Psbt"}, "psbt is required"},
				{"not-hex", w.ID, map[string]any{"kind": "Psbt", "psbt": "0xzz"}, "psbt must be non-empty hex"},
				{"not-a-psbt", w.ID, map[string]any{"kind": "Psbt", "psbt": "0x0200000001"}, ""},
				{"evm-field", w.ID, map[string]any{"kind": "Psbt", "psbt": good, "to": "0x01"}, "to is not a field of Psbt broadcasts"},
				{"psbt-on-evm-kind", w.ID, map[string]any{"kind": "Evm", "psbt": good}, "psbt is not a field of Evm broadcasts"},
				{"foreign-input-unsigned", w.ID, map[string]any{"kind": "Psbt", "psbt": psbtHex(t, foreign)}, ""},
				{"outputs-exceed-inputs", w.ID, map[string]any{"kind": "Psbt", "psbt": psbtHex(t, overspend)}, ""},
				{"no-utxo", w.ID, map[string]any{"kind": "Psbt", "psbt": psbtHex(t, noUtxo)}, ""},
				{"no-node", noNode.ID, map[string]any{"kind": "Psbt", "psbt": good},
					"no Bitcoin node configured for BitcoinTestnet3 (--bitcoin-rpc): PSBTs can be signed (POST /wallets/{walletId}/signatures, kind Psbt) but not broadcast"},
				{"other-bitcoin-kind", w.ID, map[string]any{"kind": "Transaction", "transaction": "0x01"}, "broadcasting is not supported on BitcoinSignet"},
			} {
				t.Run(tt.name, func(t *testing.T) {
					before := chainDigest(t, n) + tablesDigest(t, n, "transactions", "signature_requests", "webhook_events")
					err := c.Do(ctx, http.MethodPost, "/wallets/"+tt.wallet+"/transactions", tt.body, nil)
					var ce *client.Error
					if !errors.As(err, &ce) || ce.Status != 400 {
						t.Fatalf("got %v, want 400", err)
					}
					if tt.msg != "" && ce.Message != tt.msg {
						t.Errorf("message %q, want %q", ce.Message, tt.msg)
					}
					if chainDigest(t, n)+tablesDigest(t, n, "transactions", "signature_requests", "webhook_events") != before {
						t.Error("the refused broadcast changed transactions, jobs or signatures")
					}
				})
			}
		})

		t.Run("native-transfer", func(t *testing.T) {
			before := chainDigest(t, n)
			err := c.Do(ctx, http.MethodPost, "/wallets/"+w.ID+"/transfers", map[string]any{"kind": "Native", "to": w.Address, "amount": "1000"}, nil)
			var ce *client.Error
			if !errors.As(err, &ce) || ce.Status != 400 || !strings.Contains(ce.Message, "build a PSBT and broadcast it with kind Psbt") {
				t.Fatalf("got %v, want 400", err)
			}
			if chainDigest(t, n) != before {
				t.Error("the refused transfer changed something")
			}
		})

		t.Run("confirmed", func(t *testing.T) {
			const fee = 12_345
			p := spendPSBT(t, op, prev, 1_000_000_000, fee, script)
			want := p.UnsignedTx.TxHash().String() // segwit: the txid does not cover the witness
			body := map[string]any{"kind": "Psbt", "psbt": psbtHex(t, p), "externalId": "btc-1"}
			tr, err := broadcast(body)
			if err != nil {
				t.Fatal(err)
			}
			if tr.Network != "BitcoinSignet" || tr.TxHash != "" || tr.Fee != "" || tr.Status != "Pending" {
				t.Fatalf("response %+v, want txHash %s", tr, want)
			}
			if again, err := broadcast(body); err != nil || again.ID != tr.ID {
				t.Fatalf("retry with the same externalId: %+v %v", again, err)
			}
			tr = waitTx(t, c, w.ID, tr.ID, func(tr transactionResp) bool { return tr.Status == "Broadcasted" })
			if tr.DateBroadcasted == "" || tr.TxHash != want {
				t.Fatalf("broadcasted without a date: %+v", tr)
			}
			st, err := node.rpc.GetTransaction(ctx, want)
			if err != nil || st.Confirmations != 0 {
				t.Fatalf("the node's mempool: %+v %v", st, err)
			}
			node.generate(t, 1)
			tr = waitTx(t, c, w.ID, tr.ID, func(tr transactionResp) bool { return tr.Status != "Broadcasted" })
			if tr.Status != "Confirmed" || tr.Fee != fmt.Sprint(fee) || tr.TxHash != want || tr.DateConfirmed == "" || tr.Reason != "" {
				t.Fatalf("final %+v, want Confirmed with fee %d", tr, fee)
			}
			mined := node.rawTx(t, want)
			if len(mined.TxIn[0].Witness) != 2 || !bytes.Equal(mined.TxIn[0].Witness[1], pub) {
				t.Fatal("the mined transaction is not spent by the wallet's key")
			}
		})

		t.Run("double-spend", func(t *testing.T) {
			// The same coinbase output again, to other outputs: the node has it spent.
			p := spendPSBT(t, op, prev, 2_000_000_000, 5_000, script)
			tr, err := broadcast(map[string]any{"kind": "Psbt", "psbt": psbtHex(t, p)})
			if err != nil {
				t.Fatal(err)
			}
			tr = waitTx(t, c, w.ID, tr.ID, func(tr transactionResp) bool { return tr.Status == "Failed" || tr.Status == "Confirmed" })
			if tr.Status != "Failed" || !strings.HasPrefix(tr.Reason, "the network refused the transaction: ") || tr.DateBroadcasted != "" {
				t.Fatalf("double spend: %+v", tr)
			}
			t.Logf("double spend refused: %s", tr.Reason)
		})

		t.Run("invalid-for-the-node", func(t *testing.T) {
			// Valid by itself, but it spends an output the node has never seen.
			missing := wire.OutPoint{Hash: [32]byte{0xde, 0xad}, Index: 3}
			p := spendPSBT(t, missing, wire.NewTxOut(1_000_000, script), 500_000, 1_000, script)
			tr, err := broadcast(map[string]any{"kind": "Psbt", "psbt": psbtHex(t, p)})
			if err != nil {
				t.Fatal(err)
			}
			tr = waitTx(t, c, w.ID, tr.ID, func(tr transactionResp) bool { return tr.Status == "Failed" || tr.Status == "Confirmed" })
			if tr.Status != "Failed" || !strings.HasPrefix(tr.Reason, "the network refused the transaction: ") {
				t.Fatalf("unknown input: %+v", tr)
			}
		})

		t.Run("second-coinbase", func(t *testing.T) {
			// Block 2's coinbase, with a larger fee this time.
			p := spendPSBT(t, op2, prev2, 100_000, 100_000, script)
			tr, err := broadcast(map[string]any{"kind": "Psbt", "psbt": psbtHex(t, p)})
			if err != nil {
				t.Fatal(err)
			}
			waitTx(t, c, w.ID, tr.ID, func(tr transactionResp) bool { return tr.Status == "Broadcasted" })
			node.generate(t, 1)
			tr = waitTx(t, c, w.ID, tr.ID, func(tr transactionResp) bool { return tr.Status != "Broadcasted" })
			if tr.Status != "Confirmed" || tr.Fee != "100000" {
				t.Fatalf("final %+v", tr)
			}
		})

		t.Run("mempool-conflict", func(t *testing.T) {
			// Two broadcasts spend the same output; the node takes the first and refuses
			// the second, which ends Failed while the first is mined.
			first, err := broadcast(map[string]any{"kind": "Psbt", "psbt": psbtHex(t, spendPSBT(t, op3, prev3, 700_000, 3_000, script))})
			if err != nil {
				t.Fatal(err)
			}
			waitTx(t, c, w.ID, first.ID, func(tr transactionResp) bool { return tr.Status == "Broadcasted" })
			second, err := broadcast(map[string]any{"kind": "Psbt", "psbt": psbtHex(t, spendPSBT(t, op3, prev3, 800_000, 4_000, script))})
			if err != nil {
				t.Fatal(err)
			}
			second = waitTx(t, c, w.ID, second.ID, func(tr transactionResp) bool { return tr.Status == "Failed" || tr.Status == "Broadcasted" })
			if second.Status != "Failed" || !strings.Contains(second.Reason, "already spent") {
				t.Fatalf("conflicting spend: %+v", second)
			}
			node.generate(t, 1)
			if tr := waitTx(t, c, w.ID, first.ID, func(tr transactionResp) bool { return tr.Status != "Broadcasted" }); tr.Status != "Confirmed" || tr.Fee != "3000" {
				t.Fatalf("first spend: %+v", tr)
			}
		})
	})
}

// TestBitcoinPsbtResend checks that a broadcast survives its node losing its mempool: the
// node restarts after the transaction was sent, the job finds it unknown, sends the same
// bytes again and follows them to their block. btcd wipes its regtest chain at every start,
// so this node runs simnet (whose chain persists), serving BitcoinTestnet3 here.
func TestBitcoinPsbtResend(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		port := freePort(t)
		n := apptest.Start(t, e, apptest.Options{BitcoinRPC: []string{fmt.Sprintf("BitcoinTestnet3=http://countersign:regtest@127.0.0.1:%d", port)}})
		ctx := context.Background()
		c := n.Admin
		var w walletResp
		if err := c.Do(ctx, http.MethodPost, "/wallets", map[string]any{"network": "BitcoinTestnet3"}, &w); err != nil {
			t.Fatal(err)
		}
		pub := mustHex(t, w.SigningKey.PublicKey)
		script, _ := txscript.NewScriptBuilder().AddOp(txscript.OP_0).AddData(btcutil.Hash160(pub)).Script()
		simAddr, err := btcutil.NewAddressWitnessPubKeyHash(btcutil.Hash160(pub), &chaincfg.SimNetParams)
		if err != nil {
			t.Fatal(err)
		}
		node := startBtcd(t, "--simnet", port, simAddr.EncodeAddress()) // sb1q…
		blocks := node.activateSegwit(t)
		op, prev := node.coinbase(t, blocks[0], script)

		p := spendPSBT(t, op, prev, 300_000, 2_000, script)
		var tr transactionResp
		if err := c.Do(ctx, http.MethodPost, "/wallets/"+w.ID+"/transactions", map[string]any{"kind": "Psbt", "psbt": psbtHex(t, p)}, &tr); err != nil {
			t.Fatal(err)
		}
		tr = waitTx(t, c, w.ID, tr.ID, func(tr transactionResp) bool { return tr.Status == "Broadcasted" })
		var height int64
		if err := node.rpc.Call(ctx, "getblockcount", nil, &height); err != nil {
			t.Fatal(err)
		}
		node.stop()
		node.start(t)
		var after int64
		if err := node.rpc.Call(ctx, "getblockcount", nil, &after); err != nil || after != height {
			t.Fatalf("the restarted node is at height %d, was %d (%v)", after, height, err)
		}
		deadline := time.Now().Add(60 * time.Second)
		for { // in the mempool again, sent anew by the job
			if st, err := node.rpc.GetTransaction(ctx, tr.TxHash); err == nil && st.Confirmations == 0 {
				break
			}
			if time.Now().After(deadline) {
				var now transactionResp
				c.Do(ctx, http.MethodGet, "/wallets/"+w.ID+"/transactions/"+tr.ID, nil, &now)
				t.Fatalf("the job did not send the transaction again to the restarted node: status %s %s", now.Status, now.Reason)
			}
			time.Sleep(100 * time.Millisecond)
		}
		node.generate(t, 1)
		tr = waitTx(t, c, w.ID, tr.ID, func(tr transactionResp) bool { return tr.Status != "Broadcasted" })
		if tr.Status != "Confirmed" || tr.Fee != "2000" {
			t.Fatalf("final %+v", tr)
		}
	})
}
