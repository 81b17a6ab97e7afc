package bitcoin

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/btcsuite/btcd/btcutil/psbt"
	"github.com/btcsuite/btcd/txscript"
	"github.com/btcsuite/btcd/wire"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"

	"github.com/countersign/countersign/internal/errs"
)

// TestFinalize signs a PSBT spending two outputs of the wallet, finalizes it and checks
// the transaction, its txid and its fee; then what cannot make a valid transaction.
func TestFinalize(t *testing.T) {
	priv, _ := secp256k1.GeneratePrivateKey()
	pub := priv.PubKey().SerializeCompressed()
	mine, _ := P2WPKHScript(pub)
	other, _ := secp256k1.GeneratePrivateKey()
	theirs, _ := P2WPKHScript(other.PubKey().SerializeCompressed())
	build := func(edit func(p *psbt.Packet)) string {
		_, u0 := funding(mine, 50_000, 1)
		_, u1 := funding(mine, 20_000, 2)
		tx := wire.NewMsgTx(2)
		tx.AddTxIn(wire.NewTxIn(&u0.op, nil, nil))
		tx.AddTxIn(wire.NewTxIn(&u1.op, nil, nil))
		tx.AddTxOut(wire.NewTxOut(60_000, theirs))
		tx.AddTxOut(wire.NewTxOut(9_000, mine))
		p, err := psbt.NewFromUnsignedTx(tx)
		if err != nil {
			t.Fatal(err)
		}
		p.Inputs[0].WitnessUtxo, p.Inputs[1].WitnessUtxo = u0.out, u1.out
		if edit != nil {
			edit(p)
		}
		return encode(t, p)
	}
	sign := func(h string) (string, error) {
		p, err := PsbtPayload(h, pub)
		if err != nil {
			return "", err
		}
		res := signAll(t, priv, p)
		return res.SignedData, nil
	}
	signed, err := sign(build(nil))
	if err != nil {
		t.Fatal(err)
	}
	f, err := Finalize(signed)
	if err != nil {
		t.Fatal(err)
	}
	var tx wire.MsgTx
	if err := tx.Deserialize(bytes.NewReader(f.Raw)); err != nil || tx.TxHash().String() != f.TxID || f.Fee != 1_000 {
		t.Fatalf("final %+v %v", f, err)
	}
	if len(tx.TxIn[0].Witness) != 2 || len(tx.TxIn[1].Witness) != 2 {
		t.Fatal("inputs are not finalized with a P2WPKH witness")
	}
	if fee, err := PsbtFee(build(nil)); err != nil || fee != 1_000 {
		t.Fatalf("fee %d %v", fee, err)
	}

	// Refusals, each Invalid.
	foreignOut := wire.OutPoint{Hash: [32]byte{7}}
	for _, tt := range []struct {
		name string
		edit func(p *psbt.Packet)
	}{
		{"outputs exceed inputs", func(p *psbt.Packet) { p.UnsignedTx.TxOut[0].Value = 62_000 }},
		{"no output", func(p *psbt.Packet) { p.UnsignedTx.TxOut, p.Outputs = nil, nil }},
		{"unsigned foreign input", func(p *psbt.Packet) {
			p.UnsignedTx.AddTxIn(wire.NewTxIn(&foreignOut, nil, nil))
			p.Inputs = append(p.Inputs, psbt.PInput{WitnessUtxo: wire.NewTxOut(1_000, theirs)})
		}},
		{"foreign input without utxo", func(p *psbt.Packet) {
			p.UnsignedTx.AddTxIn(wire.NewTxIn(&foreignOut, nil, nil))
			p.Inputs = append(p.Inputs, psbt.PInput{})
		}},
		{"same output twice", func(p *psbt.Packet) {
			p.UnsignedTx.AddTxIn(wire.NewTxIn(&p.UnsignedTx.TxIn[0].PreviousOutPoint, nil, nil))
			p.Inputs = append(p.Inputs, psbt.PInput{WitnessUtxo: p.Inputs[0].WitnessUtxo})
		}},
		{"foreign input finalized with garbage", func(p *psbt.Packet) {
			p.UnsignedTx.AddTxIn(wire.NewTxIn(&foreignOut, nil, nil))
			p.Inputs = append(p.Inputs, psbt.PInput{WitnessUtxo: wire.NewTxOut(1_000, theirs), FinalScriptWitness: []byte{0x01, 0x01, 0x00}})
		}},
		{"wrong amount in a foreign utxo", func(p *psbt.Packet) {
			p.UnsignedTx.AddTxIn(wire.NewTxIn(&foreignOut, nil, nil))
			p.Inputs = append(p.Inputs, psbt.PInput{WitnessUtxo: wire.NewTxOut(1_000, []byte{txscript.OP_TRUE}), FinalScriptSig: []byte{txscript.OP_FALSE}})
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			signed, err := sign(build(tt.edit))
			if err == nil {
				_, err = Finalize(signed)
			}
			if !errs.Is(err, errs.Invalid) {
				t.Fatalf("got %v, want Invalid", err)
			}
		})
	}
}

// FuzzFinalize signs whatever PSBT the payload builder accepts and finalizes it: nothing
// may panic, and a transaction that comes out decodes to its txid with a fee in range.
func FuzzFinalize(f *testing.F) {
	priv, _ := secp256k1.GeneratePrivateKey()
	pub := priv.PubKey().SerializeCompressed()
	f.Add(fuzzSeed(pub))
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, err := PsbtPayload(hex.EncodeToString(raw), pub)
		if err != nil {
			return
		}
		sigs := make([]Sig, len(p.Digests))
		for i, d := range p.Digests {
			sigs[i] = custodySign(priv, d)
		}
		res, err := p.Finish(sigs)
		if err != nil {
			return
		}
		fin, err := Finalize(res.SignedData)
		if err != nil {
			return
		}
		var tx wire.MsgTx
		if err := tx.Deserialize(bytes.NewReader(fin.Raw)); err != nil || tx.TxHash().String() != fin.TxID || fin.Fee < 0 {
			t.Fatalf("final %+v: %v", fin, err)
		}
	})
}
