package bitcoin

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/btcsuite/btcd/btcutil"
	"github.com/btcsuite/btcd/btcutil/psbt"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/txscript"
	"github.com/btcsuite/btcd/wire"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"

	"github.com/countersign/countersign/internal/errs"
)

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// custodySign signs like keys.Custody does: RFC 6979, low S, compact with recovery id.
func custodySign(priv *secp256k1.PrivateKey, digest []byte) Sig {
	c := ecdsa.SignCompact(priv, digest, false)
	return Sig{R: c[1:33], S: c[33:], RecID: int(c[0]) - 27}
}

func signAll(t *testing.T, priv *secp256k1.PrivateKey, p Payload) Result {
	t.Helper()
	sigs := make([]Sig, len(p.Digests))
	for i, d := range p.Digests {
		sigs[i] = custodySign(priv, d)
	}
	res, err := p.Finish(sigs)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestAddressBIP173 uses the P2WPKH vectors of BIP-173 (the generator point's key).
func TestAddressBIP173(t *testing.T) {
	pub := mustHex(t, "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798")
	for _, tt := range []struct{ network, want string }{
		{"Bitcoin", "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"},
		{"BitcoinTestnet3", "tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx"},
		{"BitcoinTestnet4", "tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx"},
		{"BitcoinSignet", "tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx"},
	} {
		n, ok := Lookup(tt.network)
		if !ok {
			t.Fatalf("%s unknown", tt.network)
		}
		got, err := n.Address(pub)
		if err != nil || got != tt.want {
			t.Errorf("%s: %q %v, want %q", tt.network, got, err, tt.want)
		}
	}
	if _, ok := Lookup("bitcoin"); ok {
		t.Error("lookup must be case-sensitive")
	}
	n, _ := Lookup("Bitcoin")
	for name, pub := range map[string][]byte{
		"uncompressed": append([]byte{4}, make([]byte, 64)...),
		"short":        pub[:32],
		"off-curve":    append([]byte{2}, bytes.Repeat([]byte{0xff}, 32)...),
		"one byte":     {2},
	} {
		if _, err := n.Address(pub); !errs.Is(err, errs.Invalid) {
			t.Errorf("%s: %v, want Invalid", name, err)
		}
	}
}

// TestPsbtBIP143 signs the native P2WPKH example of BIP-143 through a PSBT: the digest must
// be the BIP's sighash and, RFC 6979 being deterministic, the signature the BIP's.
func TestPsbtBIP143(t *testing.T) {
	unsigned := mustHex(t, "0100000002fff7f7881a8099afa6940d42d1e7f6362bec38171ea3edf433541db4e4ad969f0000000000eeffffffef51e1b804cc89d182d279655c3aa89e815b1b309fe287d9b2b55d57b90ec68a0100000000ffffffff02202cb206000000001976a9148280b37df378db99f66f85c95a783a76ac7a6d5988ac9093510d000000001976a9143bde42dbee7e4dbe6a21b2d50ce2f0167faa815988ac11000000")
	var tx wire.MsgTx
	if err := tx.DeserializeNoWitness(bytes.NewReader(unsigned)); err != nil {
		t.Fatal(err)
	}
	priv := secp256k1.PrivKeyFromBytes(mustHex(t, "619c335025c7f4012e556c2a58b2506e30b8511b53ade95ea316fd8c3286feb9"))
	pub := priv.PubKey().SerializeCompressed()
	if hex.EncodeToString(pub) != "025476c2e83188368da1ff3e292e7acafcdb3566bb0ad253f62fc70f07aeee6357" {
		t.Fatalf("pubkey %x", pub)
	}
	pk, err := psbt.NewFromUnsignedTx(&tx)
	if err != nil {
		t.Fatal(err)
	}
	// Input 0 is a P2PK output of another key (no UTXO given); input 1 is ours, 6 BTC.
	pk.Inputs[1].WitnessUtxo = wire.NewTxOut(600000000, mustHex(t, "00141d0f172a0ecb48aee1be1f2687d2963ae33f71a1"))
	p, err := PsbtPayload("0x"+encode(t, pk), pub)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Digests) != 1 || hex.EncodeToString(p.Digests[0]) != "c37af31116d1b27caf68aae9e3ac82f1477929014d5b917657d0eb49478cb670" {
		t.Fatalf("digests %x, want the BIP-143 sighash", p.Digests)
	}
	res := signAll(t, priv, p)
	const wantSig = "304402203609e17b84f6a7d30c80bfa610b5b4542f32a8a0d5447a12fb1366d7f01cc44a0220573a954c4518331561406f90300e8f3358f51928d43c212a8caed02de67eebee"
	if len(res.Signatures) != 1 || res.Signatures[0].Encoded != "0x"+wantSig {
		t.Fatalf("signatures %+v, want the BIP-143 one", res.Signatures)
	}
	if res.Signatures[0].R != "0x3609e17b84f6a7d30c80bfa610b5b4542f32a8a0d5447a12fb1366d7f01cc44a" {
		t.Errorf("r = %s", res.Signatures[0].R)
	}
	signed := decode(t, res.SignedData)
	ps := signed.Inputs[1].PartialSigs
	if len(ps) != 1 || !bytes.Equal(ps[0].PubKey, pub) || hex.EncodeToString(ps[0].Signature) != wantSig+"01" {
		t.Fatalf("partial sigs %+v", ps)
	}
	if len(signed.Inputs[0].PartialSigs) != 0 || signed.Inputs[1].FinalScriptWitness != nil {
		t.Fatal("only input 1 gets a partial signature, and nothing is finalized")
	}
}

func encode(t *testing.T, p *psbt.Packet) string {
	t.Helper()
	var b bytes.Buffer
	if err := p.Serialize(&b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b.Bytes())
}

func decode(t *testing.T, h string) *psbt.Packet {
	t.Helper()
	if !strings.HasPrefix(h, "0x") {
		t.Fatalf("signedData %q lacks 0x", h)
	}
	p, err := psbt.NewFromRawBytes(bytes.NewReader(mustHex(t, h[2:])), false)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

type utxo struct {
	op  wire.OutPoint
	out *wire.TxOut
}

// funding makes a previous transaction paying value to script, so tests can give either
// a witness UTXO or the whole non-witness UTXO.
func funding(script []byte, value int64, salt byte) (*wire.MsgTx, utxo) {
	prev := wire.NewMsgTx(2)
	prev.AddTxIn(wire.NewTxIn(wire.NewOutPoint(&chainhash.Hash{salt}, 0), nil, nil))
	prev.AddTxOut(wire.NewTxOut(1000, []byte{txscript.OP_TRUE}))
	prev.AddTxOut(wire.NewTxOut(value, script))
	h := prev.TxHash()
	return prev, utxo{*wire.NewOutPoint(&h, 1), prev.TxOut[1]}
}

// TestPsbtSpendVerifies builds a transaction spending two outputs of the wallet (one
// described by a witness UTXO, one by its whole previous transaction too, with different
// sighash types) and one of another key, signs the PSBT, finalizes it with btcd and runs
// every input through the script engine under standard policy.
func TestPsbtSpendVerifies(t *testing.T) {
	priv, _ := secp256k1.GeneratePrivateKey()
	pub := priv.PubKey().SerializeCompressed()
	other, _ := secp256k1.GeneratePrivateKey()
	otherPub := other.PubKey().SerializeCompressed()
	mine, _ := P2WPKHScript(pub)
	theirs, _ := P2WPKHScript(otherPub)

	_, u0 := funding(mine, 50_000, 1)
	prev1, u1 := funding(mine, 70_000, 2)
	_, u2 := funding(theirs, 30_000, 3)
	tx := wire.NewMsgTx(2)
	for _, u := range []utxo{u0, u1, u2} {
		tx.AddTxIn(wire.NewTxIn(&u.op, nil, nil))
	}
	tx.AddTxOut(wire.NewTxOut(140_000, theirs))
	tx.AddTxOut(wire.NewTxOut(9_000, mine))
	pk, err := psbt.NewFromUnsignedTx(tx)
	if err != nil {
		t.Fatal(err)
	}
	pk.Inputs[0].WitnessUtxo = u0.out
	pk.Inputs[1].NonWitnessUtxo = prev1
	pk.Inputs[1].WitnessUtxo = u1.out // btcd's finalizer needs it to finalize as segwit
	pk.Inputs[1].SighashType = txscript.SigHashNone | txscript.SigHashAnyOneCanPay
	pk.Inputs[2].WitnessUtxo = u2.out

	p, err := PsbtPayload(encode(t, pk), pub) // no 0x prefix: accepted too
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Digests) != 2 {
		t.Fatalf("%d digests, want 2 (the wallet's inputs only)", len(p.Digests))
	}
	res := signAll(t, priv, p)
	if len(res.Signatures) != 2 || res.Signature != nil {
		t.Fatalf("result %+v", res)
	}
	signed := decode(t, res.SignedData)
	if len(signed.Inputs[2].PartialSigs) != 0 {
		t.Fatal("the other key's input must not be signed")
	}
	// The other party signs its input (here with the same code, as another wallet would).
	p2, err := PsbtPayload(res.SignedData, otherPub)
	if err != nil {
		t.Fatal(err)
	}
	signed = decode(t, signAll(t, other, p2).SignedData)
	if len(signed.Inputs[0].PartialSigs) != 1 || len(signed.Inputs[2].PartialSigs) != 1 {
		t.Fatal("signatures of both parties must be kept")
	}
	if err := psbt.MaybeFinalizeAll(signed); err != nil {
		t.Fatal(err)
	}
	final, err := psbt.Extract(signed)
	if err != nil {
		t.Fatal(err)
	}
	prevs := txscript.NewMultiPrevOutFetcher(map[wire.OutPoint]*wire.TxOut{u0.op: u0.out, u1.op: u1.out, u2.op: u2.out})
	verify := func(tx *wire.MsgTx) error {
		hashes := txscript.NewTxSigHashes(tx, prevs)
		for i, in := range tx.TxIn {
			out := prevs.FetchPrevOutput(in.PreviousOutPoint)
			vm, err := txscript.NewEngine(out.PkScript, tx, i, txscript.StandardVerifyFlags, nil, hashes, out.Value, prevs)
			if err != nil {
				return err
			}
			if err := vm.Execute(); err != nil {
				return err
			}
		}
		return nil
	}
	if err := verify(final); err != nil {
		t.Fatalf("signed transaction does not verify: %v", err)
	}
	// BIP-143 commits to the amount: the same signatures over a lie about it must fail.
	u0.out.Value++
	if err := verify(final); err == nil {
		t.Fatal("verification must fail when the spent amount differs")
	}
}

func TestPsbtRefusals(t *testing.T) {
	priv, _ := secp256k1.GeneratePrivateKey()
	pub := priv.PubKey().SerializeCompressed()
	mine, _ := P2WPKHScript(pub)
	other, _ := secp256k1.GeneratePrivateKey()
	theirs, _ := P2WPKHScript(other.PubKey().SerializeCompressed())

	build := func(edit func(p *psbt.Packet)) string {
		_, u := funding(mine, 10_000, 9)
		tx := wire.NewMsgTx(2)
		tx.AddTxIn(wire.NewTxIn(&u.op, nil, nil))
		tx.AddTxOut(wire.NewTxOut(9_000, theirs))
		pk, err := psbt.NewFromUnsignedTx(tx)
		if err != nil {
			t.Fatal(err)
		}
		pk.Inputs[0].WitnessUtxo = u.out
		edit(pk)
		return encode(t, pk)
	}
	good := build(func(*psbt.Packet) {})
	base, err := PsbtPayload(good, pub)
	if err != nil {
		t.Fatalf("baseline: %v", err)
	}
	// The whole previous transaction alone describes the output as well.
	rightPrev, _ := funding(mine, 10_000, 9)
	p, err := PsbtPayload(build(func(p *psbt.Packet) { p.Inputs[0].WitnessUtxo, p.Inputs[0].NonWitnessUtxo = nil, rightPrev }), pub)
	if err != nil || len(p.Digests) != 1 || !bytes.Equal(p.Digests[0], base.Digests[0]) {
		t.Fatalf("non-witness UTXO only: %v", err)
	}
	wrongPrev, _ := funding(mine, 10_000, 10)
	for _, tt := range []struct{ name, psbt string }{
		{"empty", ""},
		{"0x only", "0x"},
		{"not hex", "0xzz"},
		{"odd hex", good[:len(good)-1]},
		{"not a psbt", "0x0200000001"},
		{"truncated", good[:len(good)/2]},
		{"trailing garbage", good + "00ff"},
		{"no input of the wallet", build(func(p *psbt.Packet) { p.Inputs[0].WitnessUtxo.PkScript = theirs })},
		{"no utxo info", build(func(p *psbt.Packet) { p.Inputs[0].WitnessUtxo = nil })},
		{"already finalized", build(func(p *psbt.Packet) { p.Inputs[0].FinalScriptWitness = []byte{0} })},
		{"non-witness utxo of another tx", build(func(p *psbt.Packet) { p.Inputs[0].NonWitnessUtxo = wrongPrev })},
		{"witness and non-witness utxos disagree", build(func(p *psbt.Packet) {
			p.Inputs[0].NonWitnessUtxo = rightPrev
			p.Inputs[0].WitnessUtxo.Value++
		})},
		{"negative amount", build(func(p *psbt.Packet) { p.Inputs[0].WitnessUtxo.Value = -1 })},
		{"unknown sighash", build(func(p *psbt.Packet) { p.Inputs[0].SighashType = 0x04 })},
		{"taproot sighash default", build(func(p *psbt.Packet) { p.Inputs[0].SighashType = 0x40 | txscript.SigHashAll })},
		{"single without output", build(func(p *psbt.Packet) {
			p.UnsignedTx.TxOut = nil
			p.Outputs = nil
			p.Inputs[0].SighashType = txscript.SigHashSingle
		})},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := PsbtPayload(tt.psbt, pub); !errs.Is(err, errs.Invalid) {
				t.Fatalf("got %v, want Invalid", err)
			}
		})
	}
	if _, err := PsbtPayload(good, append([]byte{4}, make([]byte, 64)...)); !errs.Is(err, errs.Invalid) {
		t.Fatalf("uncompressed key: %v, want Invalid", err)
	}
}

func TestHashPayload(t *testing.T) {
	priv, _ := secp256k1.GeneratePrivateKey()
	d := bytes.Repeat([]byte{7}, 32)
	p, err := HashPayload("0x" + hex.EncodeToString(d))
	if err != nil {
		t.Fatal(err)
	}
	res := signAll(t, priv, p)
	der := mustHex(t, strings.TrimPrefix(res.Signature.Encoded, "0x"))
	sig, err := ecdsa.ParseDERSignature(der)
	if err != nil || !sig.Verify(d, priv.PubKey()) {
		t.Fatalf("encoded is not a DER signature that verifies: %v", err)
	}
	if res.Signature.RecID != 0 && res.Signature.RecID != 1 {
		t.Fatalf("recid %d", res.Signature.RecID)
	}
	for _, h := range []string{"", "0x", "00", "0x" + strings.Repeat("zz", 32), strings.Repeat("00", 33)} {
		if _, err := HashPayload(h); !errs.Is(err, errs.Invalid) {
			t.Errorf("%q: %v, want Invalid", h, err)
		}
	}
}

// FuzzPsbtPayload checks that no input makes the payload builder panic or sign for inputs
// that are not the wallet's.
func FuzzPsbtPayload(f *testing.F) {
	priv, _ := secp256k1.GeneratePrivateKey()
	pub := priv.PubKey().SerializeCompressed()
	f.Add(fuzzSeed(pub))
	f.Add([]byte("psbt\xff"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, err := PsbtPayload(hex.EncodeToString(raw), pub)
		if err != nil {
			return
		}
		if len(p.Digests) == 0 {
			t.Fatal("a payload with nothing to sign")
		}
	})
}

// TestTestnet4 checks that testnet4 addresses are testnet ones (tb1, what testnet3 and
// signet use too) and decode back with the network's parameters, which are not testnet3's.
func TestTestnet4(t *testing.T) {
	n4, ok := Lookup("BitcoinTestnet4")
	if !ok || !n4.Testnet || n4.Decimals != 8 {
		t.Fatalf("BitcoinTestnet4: %+v %v", n4, ok)
	}
	n3, _ := Lookup("BitcoinTestnet3")
	if n4.Params == n3.Params || n4.Params.Net == n3.Params.Net || n4.Params.Name != "testnet4" || chaincfg.TestNet3Params.Name != "testnet3" {
		t.Fatal("testnet4 must have its own parameters, and testnet3's must be left alone")
	}
	priv, _ := secp256k1.GeneratePrivateKey()
	pub := priv.PubKey().SerializeCompressed()
	a, err := n4.Address(pub)
	if err != nil || !strings.HasPrefix(a, "tb1q") {
		t.Fatalf("address %q %v", a, err)
	}
	d, err := btcutil.DecodeAddress(a, n4.Params)
	if err != nil || !bytes.Equal(d.ScriptAddress(), btcutil.Hash160(pub)) {
		t.Fatalf("decode %v", err)
	}
	if len(Networks()) != 4 {
		t.Fatalf("%d networks, want 4", len(Networks()))
	}
}

// fuzzSeed is a PSBT spending one P2WPKH output of pub back to it, a seed for fuzzing.
func fuzzSeed(pub []byte) []byte {
	mine, _ := P2WPKHScript(pub)
	_, u := funding(mine, 10_000, 1)
	tx := wire.NewMsgTx(2)
	tx.AddTxIn(wire.NewTxIn(&u.op, nil, nil))
	tx.AddTxOut(wire.NewTxOut(9_000, mine))
	pk, _ := psbt.NewFromUnsignedTx(tx)
	pk.Inputs[0].WitnessUtxo = u.out
	var b bytes.Buffer
	_ = pk.Serialize(&b)
	return b.Bytes()
}
