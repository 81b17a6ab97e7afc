package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/btcsuite/btcd/btcutil"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/txscript"
	"github.com/btcsuite/btcd/wire"

	"github.com/countersign/countersign/client"
	"github.com/countersign/countersign/internal/app/apptest"
	"github.com/countersign/countersign/internal/testutil"
)

// bip322ToSign builds BIP-322's unsigned to_sign for message m and output script, written
// here from the BIP's text, independently of the server's code.
func bip322ToSign(m, script []byte) *wire.MsgTx {
	tag := sha256.Sum256([]byte("BIP0322-signed-message"))
	h := sha256.Sum256(append(append(append([]byte{}, tag[:]...), tag[:]...), m...))
	sigScript := append([]byte{txscript.OP_0, txscript.OP_DATA_32}, h[:]...)
	toSpend := &wire.MsgTx{Version: 0}
	toSpend.TxIn = []*wire.TxIn{{PreviousOutPoint: wire.OutPoint{Index: 0xffffffff}, SignatureScript: sigScript}}
	toSpend.TxOut = []*wire.TxOut{{Value: 0, PkScript: script}}
	toSign := &wire.MsgTx{Version: 0}
	toSign.TxIn = []*wire.TxIn{{PreviousOutPoint: wire.OutPoint{Hash: toSpend.TxHash()}}}
	toSign.TxOut = []*wire.TxOut{{Value: 0, PkScript: []byte{txscript.OP_RETURN}}}
	return toSign
}

// verifyBip322Proof checks a BIP-322 proof (signedData, base64) of message by the P2WPKH
// key pub: a Simple proof is a witness stack put on to_sign, a Full one is to_sign itself
// and must be exactly the expected transaction; then btcd's script engine runs it.
func verifyBip322Proof(t *testing.T, pub []byte, message []byte, format, proof string) error {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(proof)
	if err != nil {
		t.Fatalf("signedData %q is not base64: %v", proof, err)
	}
	script, _ := txscript.NewScriptBuilder().AddOp(txscript.OP_0).AddData(btcutil.Hash160(pub)).Script()
	want := bip322ToSign(message, script)
	tx := want.Copy()
	if format == "Full" {
		tx = new(wire.MsgTx)
		if err := tx.Deserialize(bytes.NewReader(raw)); err != nil {
			t.Fatalf("full proof is not a transaction: %v", err)
		}
		if tx.TxHash() != want.TxHash() {
			t.Fatalf("full proof is to_sign %s, want %s", tx.TxHash(), want.TxHash())
		}
	} else {
		r := bytes.NewReader(raw)
		n, err := wire.ReadVarInt(r, 0)
		if err != nil || n != 2 {
			t.Fatalf("simple proof: %d witness items %v", n, err)
		}
		for range n {
			item, err := wire.ReadVarBytes(r, 0, 520, "item")
			if err != nil {
				t.Fatal(err)
			}
			tx.TxIn[0].Witness = append(tx.TxIn[0].Witness, item)
		}
		if r.Len() != 0 {
			t.Fatal("trailing bytes in the simple proof")
		}
	}
	fetch := txscript.NewCannedPrevOutputFetcher(script, 0)
	vm, err := txscript.NewEngine(script, tx, 0, txscript.StandardVerifyFlags, nil, txscript.NewTxSigHashes(tx, fetch), 0, fetch)
	if err != nil {
		return err
	}
	return vm.Execute()
}

// TestBitcoinBip322 signs BIP-322 messages through wallets (BitcoinTestnet4 and Bitcoin)
// and keys, in both formats, verifies every proof with an independent verifier, and
// checks that malformed requests are refused with nothing stored.
func TestBitcoinBip322(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		n := apptest.Start(t, e, apptest.Options{})
		ctx := context.Background()
		c := n.Admin
		for _, network := range []string{"BitcoinTestnet4", "Bitcoin"} {
			var w walletResp
			if err := c.Do(ctx, http.MethodPost, "/wallets", map[string]any{"network": network}, &w); err != nil {
				t.Fatal(err)
			}
			if w.Network != network || (network == "BitcoinTestnet4") != strings.HasPrefix(w.Address, "tb1q") {
				t.Fatalf("wallet %+v", w)
			}
			pub := mustHex(t, w.SigningKey.PublicKey)
			for _, tt := range []struct {
				message []byte
				format  string // as sent; "" = absent (Simple)
			}{
				{[]byte("I love Dfns"), ""},
				{[]byte("Hello World"), "Full"},
				{nil, "Simple"},
				{[]byte{0, 0xff, 0x10}, "Full"},
			} {
				body := map[string]any{"kind": "Bip322", "message": "0x" + hex.EncodeToString(tt.message)}
				if tt.format != "" {
					body["format"] = tt.format
				}
				var sr sigResp
				if err := c.Do(ctx, http.MethodPost, "/wallets/"+w.ID+"/signatures", body, &sr); err != nil {
					t.Fatalf("%s %q: %v", network, tt.message, err)
				}
				if sr.Status != "Signed" || sr.Network != network || sr.Signature.R == "" || sr.Signature.Encoded == "" || sr.Signature.RecID == nil {
					t.Fatalf("response %+v", sr)
				}
				if err := verifyBip322Proof(t, pub, tt.message, tt.format, sr.SignedData); err != nil {
					t.Fatalf("%s %q %s: the proof does not verify: %v", network, tt.message, tt.format, err)
				}
				if tt.format != "Full" {
					// The proof is bound to its message.
					if err := verifyBip322Proof(t, pub, append(tt.message, '!'), tt.format, sr.SignedData); err == nil {
						t.Fatal("a proof verified for another message")
					}
				}
				var again sigResp
				if err := c.Do(ctx, http.MethodGet, "/wallets/"+w.ID+"/signatures/"+sr.ID, nil, &again); err != nil || again.SignedData != sr.SignedData {
					t.Fatalf("stored request %+v %v", again, err)
				}
			}
			// Through the key, naming the network.
			var kr sigResp
			msg := []byte("through the key")
			if err := c.Do(ctx, http.MethodPost, "/keys/"+w.SigningKey.ID+"/signatures",
				map[string]any{"kind": "Bip322", "message": "0x" + hex.EncodeToString(msg), "network": network, "format": "Full"}, &kr); err != nil {
				t.Fatal(err)
			}
			if err := verifyBip322Proof(t, pub, msg, "Full", kr.SignedData); err != nil {
				t.Fatalf("key proof: %v", err)
			}

			for _, tt := range []struct {
				name string
				body map[string]any
				msg  string
			}{
				{"no-message", map[string]any{"kind": "Bip322"}, "message is required"},
				{"text-message", map[string]any{"kind": "Bip322", "message": "Hello World"}, ""},
				{"number-message", map[string]any{"kind": "Bip322", "message": 12}, "message must be a hex string"},
				{"bad-format", map[string]any{"kind": "Bip322", "message": "0x01", "format": "Legacy"}, ""},
			} {
				t.Run(network+"/"+tt.name, func(t *testing.T) {
					before := walletTablesDigest(t, n)
					err := c.Do(ctx, http.MethodPost, "/wallets/"+w.ID+"/signatures", tt.body, nil)
					var ce *client.Error
					if !errors.As(err, &ce) || ce.Status != 400 {
						t.Fatalf("got %v, want 400", err)
					}
					if tt.msg != "" && ce.Message != tt.msg {
						t.Errorf("message %q, want %q", ce.Message, tt.msg)
					}
					if walletTablesDigest(t, n) != before {
						t.Error("the refused request changed keys, wallets or signatures")
					}
				})
			}
		}
		// A chainhash sanity check that the independent builder is right: the BIP's to_sign
		// txid for "Hello World" and its test address.
		addr, err := btcutil.DecodeAddress("bc1q9vza2e8x573nczrlzms0wvx3gsqjx7vavgkx0l", &chaincfg.MainNetParams)
		if err != nil {
			t.Fatal(err)
		}
		script, _ := txscript.PayToAddrScript(addr)
		want, _ := chainhash.NewHashFromStr("88737ae86f2077145f93cc4b153ae9a1cb8d56afa511988c149c5c8c9d93bddf")
		if got := bip322ToSign([]byte("Hello World"), script).TxHash(); got != *want {
			t.Fatalf("independent to_sign %s, want the BIP's %s", got, want)
		}
	})
}
