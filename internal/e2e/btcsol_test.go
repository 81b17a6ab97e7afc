package e2e

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/btcsuite/btcd/btcutil"
	"github.com/btcsuite/btcd/btcutil/base58"
	"github.com/btcsuite/btcd/btcutil/psbt"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/txscript"
	"github.com/btcsuite/btcd/wire"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"

	"github.com/countersign/countersign/client"
	"github.com/countersign/countersign/internal/app/apptest"
	"github.com/countersign/countersign/internal/testutil"
)

// btcsolSig is a signature request with the Psbt list of signatures too.
type btcsolSig struct {
	sigResp
	Signatures []struct {
		R       string `json:"r"`
		S       string `json:"s"`
		RecID   *int   `json:"recid"`
		Encoded string `json:"encoded"`
	} `json:"signatures"`
}

// walletTablesDigest digests the rows a refused wallet request must leave alone (the user
// action it consumed and its audit entry are recorded on purpose).
func walletTablesDigest(t testing.TB, n *apptest.Node) string {
	return tablesDigest(t, n, "keys", "wallets", "signature_requests", "transfers", "evm_nonces")
}

// p2wpkhPSBT builds a PSBT spending a P2WPKH output of pub (witness UTXO given), paying
// to another key; with extraForeign it also spends an output of another key.
func p2wpkhPSBT(t *testing.T, pub []byte, amount int64, extraForeign bool) (*psbt.Packet, map[wire.OutPoint]*wire.TxOut) {
	t.Helper()
	script, err := txscript.NewScriptBuilder().AddOp(txscript.OP_0).AddData(btcutil.Hash160(pub)).Script()
	if err != nil {
		t.Fatal(err)
	}
	other, _ := secp256k1.GeneratePrivateKey()
	otherScript, _ := txscript.NewScriptBuilder().AddOp(txscript.OP_0).AddData(btcutil.Hash160(other.PubKey().SerializeCompressed())).Script()
	prevs := map[wire.OutPoint]*wire.TxOut{}
	tx := wire.NewMsgTx(2)
	add := func(s []byte, v int64, salt byte) {
		op := wire.OutPoint{Hash: chainhash.Hash{salt, 0xc5}, Index: uint32(salt)}
		prevs[op] = wire.NewTxOut(v, s)
		tx.AddTxIn(wire.NewTxIn(&op, nil, nil))
	}
	add(script, amount, 1)
	if extraForeign {
		add(otherScript, amount, 2)
	}
	tx.AddTxOut(wire.NewTxOut(amount-500, otherScript))
	p, err := psbt.NewFromUnsignedTx(tx)
	if err != nil {
		t.Fatal(err)
	}
	for i, in := range tx.TxIn {
		p.Inputs[i].WitnessUtxo = prevs[in.PreviousOutPoint]
	}
	return p, prevs
}

func psbtHex(t *testing.T, p *psbt.Packet) string {
	t.Helper()
	var b bytes.Buffer
	if err := p.Serialize(&b); err != nil {
		t.Fatal(err)
	}
	return "0x" + hex.EncodeToString(b.Bytes())
}

// verifySpend finalizes a signed PSBT and runs its inputs through btcd's script engine.
func verifySpend(t *testing.T, signedData string, prevs map[wire.OutPoint]*wire.TxOut) {
	t.Helper()
	p, err := psbt.NewFromRawBytes(bytes.NewReader(mustHex(t, signedData)), false)
	if err != nil {
		t.Fatalf("signedData is not a PSBT: %v", err)
	}
	if err := psbt.MaybeFinalizeAll(p); err != nil {
		t.Fatalf("finalize: %v", err)
	}
	tx, err := psbt.Extract(p)
	if err != nil {
		t.Fatal(err)
	}
	fetch := txscript.NewMultiPrevOutFetcher(prevs)
	hashes := txscript.NewTxSigHashes(tx, fetch)
	for i, in := range tx.TxIn {
		out := prevs[in.PreviousOutPoint]
		vm, err := txscript.NewEngine(out.PkScript, tx, i, txscript.StandardVerifyFlags, nil, hashes, out.Value, fetch)
		if err != nil {
			t.Fatal(err)
		}
		if err := vm.Execute(); err != nil {
			t.Fatalf("input %d does not verify: %v", i, err)
		}
	}
}

// solanaTx builds an unsigned legacy transfer: signers first (the first pays), then a
// recipient and the System Program.
func solanaTx(signers ...[]byte) []byte {
	keys := append(append([][]byte{}, signers...), bytes.Repeat([]byte{0x42}, 32), make([]byte, 32))
	msg := []byte{byte(len(signers)), 0, 1, byte(len(keys))}
	for _, k := range keys {
		msg = append(msg, k...)
	}
	msg = append(msg, bytes.Repeat([]byte{0xbb}, 32)...)                                                     // recent blockhash
	msg = append(msg, 1, byte(len(keys)-1), 2, 0, byte(len(keys)-2), 12, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0) // transfer 1 lamport
	tx := []byte{byte(len(signers))}
	tx = append(tx, make([]byte, 64*len(signers))...)
	return append(tx, msg...)
}

// TestBitcoinSolanaWallets creates wallets on every Bitcoin and Solana network, signs
// PSBTs, hashes, messages and transactions through them and checks every signature with
// an independent verifier; then it tries what must be refused and checks nothing changed.
func TestBitcoinSolanaWallets(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		n := apptest.Start(t, e, apptest.Options{})
		ctx := context.Background()
		c := n.Admin
		w := map[string]walletResp{}
		for _, tt := range []struct {
			network, scheme, curve string
			params                 *chaincfg.Params
		}{
			{"Bitcoin", "ECDSA", "secp256k1", &chaincfg.MainNetParams},
			{"BitcoinTestnet3", "ECDSA", "secp256k1", &chaincfg.TestNet3Params},
			{"BitcoinTestnet4", "ECDSA", "secp256k1", &chaincfg.TestNet3Params}, // same address encoding (tb1)
			{"BitcoinSignet", "ECDSA", "secp256k1", &chaincfg.SigNetParams},
			{"Solana", "EdDSA", "ed25519", nil},
			{"SolanaDevnet", "EdDSA", "ed25519", nil},
		} {
			var got walletResp
			if err := c.Do(ctx, http.MethodPost, "/wallets", map[string]any{"network": tt.network, "name": tt.network}, &got); err != nil {
				t.Fatalf("%s: %v", tt.network, err)
			}
			if got.Network != tt.network || got.SigningKey.Scheme != tt.scheme || got.SigningKey.Curve != tt.curve || got.Status != "Active" {
				t.Fatalf("%s wallet: %+v", tt.network, got)
			}
			pub := mustHex(t, got.SigningKey.PublicKey)
			if tt.params != nil {
				a, _ := btcutil.NewAddressWitnessPubKeyHash(btcutil.Hash160(pub), tt.params)
				prefix := map[bool]string{true: "bc1q", false: "tb1q"}[tt.network == "Bitcoin"]
				if got.Address != a.EncodeAddress() || !strings.HasPrefix(got.Address, prefix) || len(pub) != 33 {
					t.Fatalf("%s address %q, want %q (%s…)", tt.network, got.Address, a.EncodeAddress(), prefix)
				}
			} else if !bytes.Equal(base58.Decode(got.Address), pub) || len(pub) != 32 {
				t.Fatalf("%s address %q is not base58 of the public key", tt.network, got.Address)
			}
			var as struct {
				Assets []any `json:"assets"`
			}
			if err := c.Do(ctx, http.MethodGet, "/wallets/"+got.ID+"/assets", nil, &as); err != nil || as.Assets == nil || len(as.Assets) != 0 {
				t.Fatalf("%s assets: %+v %v, want an empty list", tt.network, as, err)
			}
			w[tt.network] = got
		}

		t.Run("bitcoin/psbt", func(t *testing.T) {
			bw := w["BitcoinTestnet3"]
			pub := mustHex(t, bw.SigningKey.PublicKey)
			p, prevs := p2wpkhPSBT(t, pub, 100_000, false)
			var sr btcsolSig
			if err := c.Do(ctx, http.MethodPost, "/wallets/"+bw.ID+"/signatures", map[string]any{"kind": "Psbt", "psbt": psbtHex(t, p)}, &sr); err != nil {
				t.Fatal(err)
			}
			if sr.Status != "Signed" || sr.Network != "BitcoinTestnet3" || len(sr.Signatures) != 1 || sr.Signature.R != "" {
				t.Fatalf("response %+v", sr)
			}
			der := mustHex(t, sr.Signatures[0].Encoded)
			if _, err := ecdsa.ParseDERSignature(der); err != nil || sr.Signatures[0].RecID == nil {
				t.Fatalf("signatures[0] %+v: %v", sr.Signatures[0], err)
			}
			verifySpend(t, sr.SignedData, prevs)
			var again btcsolSig
			if err := c.Do(ctx, http.MethodGet, "/wallets/"+bw.ID+"/signatures/"+sr.ID, nil, &again); err != nil ||
				again.SignedData != sr.SignedData || len(again.Signatures) != 1 || again.Signatures[0].Encoded != sr.Signatures[0].Encoded {
				t.Fatalf("stored request %+v %v", again, err)
			}
			// Through the key, with blockchainKind: the script does not depend on the network.
			p2, _ := p2wpkhPSBT(t, pub, 7_000, true)
			var kr btcsolSig
			if err := c.Do(ctx, http.MethodPost, "/keys/"+bw.SigningKey.ID+"/signatures",
				map[string]any{"kind": "Psbt", "psbt": psbtHex(t, p2), "blockchainKind": "Bitcoin"}, &kr); err != nil {
				t.Fatal(err)
			}
			signed, err := psbt.NewFromRawBytes(bytes.NewReader(mustHex(t, kr.SignedData)), false)
			if err != nil || len(kr.Signatures) != 1 || len(signed.Inputs[0].PartialSigs) != 1 || len(signed.Inputs[1].PartialSigs) != 0 {
				t.Fatalf("key signature: %+v %v", kr, err)
			}
		})

		t.Run("bitcoin/hash", func(t *testing.T) {
			bw := w["Bitcoin"]
			h := sha256.Sum256([]byte("bitcoin hash"))
			var sr sigResp
			if err := c.Do(ctx, http.MethodPost, "/wallets/"+bw.ID+"/signatures", map[string]any{"kind": "Hash", "hash": "0x" + hex.EncodeToString(h[:])}, &sr); err != nil {
				t.Fatal(err)
			}
			pub, _ := secp256k1.ParsePubKey(mustHex(t, bw.SigningKey.PublicKey))
			sig, err := ecdsa.ParseDERSignature(mustHex(t, sr.Signature.Encoded))
			if err != nil || !sig.Verify(h[:], pub) || sr.Signature.RecID == nil {
				t.Fatalf("hash signature %+v: %v", sr.Signature, err)
			}
			var r, s secp256k1.ModNScalar
			r.SetByteSlice(mustHex(t, sr.Signature.R))
			s.SetByteSlice(mustHex(t, sr.Signature.S))
			if !ecdsa.NewSignature(&r, &s).Verify(h[:], pub) {
				t.Fatal("r and s do not verify")
			}
		})

		t.Run("solana/message-and-transaction", func(t *testing.T) {
			sw := w["SolanaDevnet"]
			pub := mustHex(t, sw.SigningKey.PublicKey)
			msg := []byte("solana message")
			var sr sigResp
			if err := c.Do(ctx, http.MethodPost, "/wallets/"+sw.ID+"/signatures", map[string]any{"kind": "Message", "message": "0x" + hex.EncodeToString(msg)}, &sr); err != nil {
				t.Fatal(err)
			}
			if !ed25519.Verify(pub, msg, mustHex(t, sr.Signature.Encoded)) || sr.Signature.R+sr.Signature.S[2:] != sr.Signature.Encoded || sr.Network != "SolanaDevnet" {
				t.Fatalf("message signature %+v", sr)
			}
			payer, _, _ := ed25519.GenerateKey(nil)
			raw := solanaTx(payer, pub) // the wallet signs second
			var tr sigResp
			if err := c.Do(ctx, http.MethodPost, "/wallets/"+sw.ID+"/signatures", map[string]any{"kind": "Transaction", "transaction": "0x" + hex.EncodeToString(raw)}, &tr); err != nil {
				t.Fatal(err)
			}
			signed := mustHex(t, tr.SignedData)
			message := raw[1+128:]
			if len(signed) != len(raw) || !bytes.Equal(signed[1+128:], message) || !bytes.Equal(signed[1:65], make([]byte, 64)) {
				t.Fatal("signedData must be the transaction with only the wallet's slot filled")
			}
			if !ed25519.Verify(pub, message, signed[65:129]) || !bytes.Equal(signed[65:129], mustHex(t, tr.Signature.Encoded)) {
				t.Fatal("the wallet's slot must hold its signature over the message")
			}
			// A bare EdDSA key signs a Solana transaction with blockchainKind Solana.
			var kr sigResp
			if err := c.Do(ctx, http.MethodPost, "/keys/"+sw.SigningKey.ID+"/signatures",
				map[string]any{"kind": "Transaction", "transaction": hex.EncodeToString(solanaTx(pub)), "blockchainKind": "Solana"}, &kr); err != nil {
				t.Fatal(err)
			}
			if s := mustHex(t, kr.SignedData); !ed25519.Verify(pub, s[65:], s[1:65]) {
				t.Fatal("key signature over a transaction does not verify")
			}
		})

		t.Run("keys-across-networks", func(t *testing.T) {
			var ew walletResp
			if err := c.Do(ctx, http.MethodPost, "/wallets", map[string]any{"network": "EthereumSepolia"}, &ew); err != nil {
				t.Fatal(err)
			}
			var bw walletResp
			if err := c.Do(ctx, http.MethodPost, "/wallets", map[string]any{"network": "BitcoinSignet", "signingKey": map[string]string{"id": ew.SigningKey.ID}}, &bw); err != nil {
				t.Fatalf("an ECDSA key reused on Bitcoin: %v", err)
			}
			if bw.SigningKey.ID != ew.SigningKey.ID || !strings.HasPrefix(bw.Address, "tb1q") {
				t.Fatalf("reused wallet %+v", bw)
			}
			var ek struct{ ID, PublicKey string }
			if err := c.Do(ctx, http.MethodPost, "/keys", map[string]any{"scheme": "EdDSA", "curve": "ed25519"}, &ek); err != nil {
				t.Fatal(err)
			}
			var sw walletResp
			if err := c.Do(ctx, http.MethodPost, "/wallets", map[string]any{"network": "Solana", "signingKey": map[string]string{"id": ek.ID}}, &sw); err != nil {
				t.Fatalf("an EdDSA key reused on Solana: %v", err)
			}
			if base58.Encode(mustHex(t, ek.PublicKey)) != sw.Address {
				t.Fatalf("address %s", sw.Address)
			}
			w["ecdsaKey"] = ew
			w["eddsaKey"] = walletResp{SigningKey: sw.SigningKey}
		})

		t.Run("refused", func(t *testing.T) {
			bw, sw := w["BitcoinTestnet3"], w["Solana"]
			bpub, spub := mustHex(t, bw.SigningKey.PublicKey), mustHex(t, sw.SigningKey.PublicKey)
			other, _ := secp256k1.GeneratePrivateKey()
			notOurs, _ := p2wpkhPSBT(t, other.PubKey().SerializeCompressed(), 5_000, false)
			good, _ := p2wpkhPSBT(t, bpub, 5_000, false)
			goodHex := psbtHex(t, good)
			stranger, _, _ := ed25519.GenerateKey(nil)
			sigs := func(wa walletResp) string { return "/wallets/" + wa.ID + "/signatures" }
			for _, tt := range []struct {
				name, path string
				body       map[string]any
				want       int
				msg        string
			}{
				{"psbt/not-hex", sigs(bw), map[string]any{"kind": "Psbt", "psbt": "0xnothex"}, 400, "psbt must be non-empty hex"},
				{"psbt/missing", sigs(bw), map[string]any{"kind": "Psbt"}, 400, "psbt is required"},
				{"psbt/not-a-psbt", sigs(bw), map[string]any{"kind": "Psbt", "psbt": "0x0200000001"}, 400, ""},
				{"psbt/truncated", sigs(bw), map[string]any{"kind": "Psbt", "psbt": goodHex[:len(goodHex)/2]}, 400, ""},
				{"psbt/trailing-bytes", sigs(bw), map[string]any{"kind": "Psbt", "psbt": goodHex + "00"}, 400, ""},
				{"psbt/no-input-of-the-wallet", sigs(bw), map[string]any{"kind": "Psbt", "psbt": psbtHex(t, notOurs)}, 400, ""},
				{"psbt/on-solana", sigs(sw), map[string]any{"kind": "Psbt", "psbt": goodHex}, 400, ""},
				{"bitcoin/message", sigs(bw), map[string]any{"kind": "Message", "message": "0x01"}, 400, ""},
				{"bitcoin/transaction", sigs(bw), map[string]any{"kind": "Transaction", "transaction": "0x01"}, 400, ""},
				{"bitcoin/eip712", sigs(bw), map[string]any{"kind": "Eip712", "types": map[string]any{}, "domain": map[string]any{}, "message": map[string]any{}}, 400, ""},
				{"bitcoin/other-network", sigs(bw), map[string]any{"kind": "Hash", "hash": strings.Repeat("11", 32), "network": "Bitcoin"}, 400, ""},
				{"solana/tx-not-hex", sigs(sw), map[string]any{"kind": "Transaction", "transaction": "0xzz"}, 400, ""},
				{"solana/tx-malformed", sigs(sw), map[string]any{"kind": "Transaction", "transaction": hex.EncodeToString(solanaTx(spub)[:100])}, 400, ""},
				{"solana/tx-trailing", sigs(sw), map[string]any{"kind": "Transaction", "transaction": hex.EncodeToString(append(solanaTx(spub), 0))}, 400, ""},
				{"solana/not-a-signer", sigs(sw), map[string]any{"kind": "Transaction", "transaction": hex.EncodeToString(solanaTx(stranger))}, 400, "the wallet is not a required signer of this transaction"},
				{"solana/eip712", sigs(sw), map[string]any{"kind": "Eip712", "types": map[string]any{}, "domain": map[string]any{}, "message": map[string]any{}}, 400, ""},
				{"key/ecdsa-as-solana", "/keys/" + w["ecdsaKey"].SigningKey.ID + "/signatures", map[string]any{"kind": "Message", "message": "0x01", "blockchainKind": "Solana"}, 400, "Solana signatures need an EdDSA/ed25519 key"},
				{"key/eddsa-as-bitcoin", "/keys/" + w["eddsaKey"].SigningKey.ID + "/signatures", map[string]any{"kind": "Psbt", "psbt": goodHex, "network": "Bitcoin"}, 400, "Bitcoin signatures need an ECDSA/secp256k1 key"},
				{"key/eddsa-on-evm", "/keys/" + w["eddsaKey"].SigningKey.ID + "/signatures", map[string]any{"kind": "Message", "message": "0x01", "network": "Ethereum"}, 400, ""},
				{"key/kind-mismatch", "/keys/" + w["ecdsaKey"].SigningKey.ID + "/signatures", map[string]any{"kind": "Hash", "hash": strings.Repeat("11", 32), "network": "Bitcoin", "blockchainKind": "Evm"}, 400, ""},
				{"wallet/ecdsa-key-on-solana", "/wallets", map[string]any{"network": "SolanaDevnet", "signingKey": map[string]string{"id": w["ecdsaKey"].SigningKey.ID}}, 400, "SolanaDevnet wallets use EdDSA/ed25519 keys"},
				{"wallet/eddsa-key-on-bitcoin", "/wallets", map[string]any{"network": "Bitcoin", "signingKey": map[string]string{"id": w["eddsaKey"].SigningKey.ID}}, 400, "Bitcoin wallets use ECDSA/secp256k1 keys"},
				{"wallet/eddsa-scheme-on-bitcoin", "/wallets", map[string]any{"network": "Bitcoin", "signingKey": map[string]string{"scheme": "EdDSA", "curve": "ed25519"}}, 400, ""},
				{"wallet/ecdsa-scheme-on-solana", "/wallets", map[string]any{"network": "Solana", "signingKey": map[string]string{"scheme": "ECDSA", "curve": "secp256k1"}}, 400, ""},
				{"transfer/bitcoin", "/wallets/" + bw.ID + "/transfers", map[string]any{"kind": "Native", "to": "tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx", "amount": "1000"}, 400, "no RPC configured for BitcoinTestnet3: transfers on this network cannot be built or broadcast"},
				{"transfer/solana", "/wallets/" + sw.ID + "/transfers", map[string]any{"kind": "Native", "to": base58.Encode(stranger), "amount": "1"}, 400, "no RPC configured for Solana: transfers on this network cannot be built or broadcast"},
			} {
				t.Run(tt.name, func(t *testing.T) {
					before := walletTablesDigest(t, n)
					err := c.Do(ctx, http.MethodPost, tt.path, tt.body, nil)
					var ce *client.Error
					if !errors.As(err, &ce) || ce.Status != tt.want {
						t.Fatalf("got %v, want %d", err, tt.want)
					}
					if tt.msg != "" && ce.Message != tt.msg {
						t.Errorf("message %q, want %q", ce.Message, tt.msg)
					}
					if walletTablesDigest(t, n) != before {
						t.Error("the refused request changed keys, wallets, signatures or transfers")
					}
				})
			}
		})
	})
}
