package bitcoin

import (
	"bytes"
	"fmt"

	"github.com/btcsuite/btcd/btcutil"
	"github.com/btcsuite/btcd/btcutil/psbt"
	"github.com/btcsuite/btcd/txscript"
	"github.com/btcsuite/btcd/wire"

	"github.com/countersign/countersign/internal/errs"
)

// Final is a transaction ready to broadcast: its network serialization (with witnesses),
// its txid and its fee, which the PSBT decides (inputs − outputs).
type Final struct {
	Raw  []byte
	TxID string
	Fee  int64
}

// Finalize turns a signed PSBT (as Payload.Finish returns it, "0x"-hex) into the network
// transaction (BIP-174 finalizer and extractor roles). Every input must then be complete:
// the wallet's inputs were just signed, anyone else's must come signed or finalized. Each
// input must say which output it spends (a witness or non-witness UTXO), so the fee is
// known and every input is run through the script engine under standard policy before
// anything is stored or sent: a PSBT that cannot make a valid transaction is the caller's
// error (Invalid), not a broadcast that fails later.
func Finalize(signedPSBT string) (Final, error) {
	raw, ok := decodeHex(signedPSBT)
	if !ok {
		return Final{}, errs.E(errs.Internal, "could not read the signed psbt", nil)
	}
	p, err := parsePSBT(raw)
	if err != nil {
		return Final{}, errs.E(errs.Internal, "could not read the signed psbt", err)
	}
	prevs, fee, err := amounts(p)
	if err != nil {
		return Final{}, err
	}
	if err := finalizeAll(p); err != nil {
		return Final{}, err
	}
	tx, err := psbt.Extract(p)
	if err != nil {
		return Final{}, errs.E(errs.Invalid, "the psbt cannot be finalized into a transaction", err)
	}
	fetch := txscript.NewMultiPrevOutFetcher(prevs)
	hashes := txscript.NewTxSigHashes(tx, fetch)
	for i, txIn := range tx.TxIn {
		out := prevs[txIn.PreviousOutPoint]
		vm, err := txscript.NewEngine(out.PkScript, tx, i, txscript.StandardVerifyFlags, nil, hashes, out.Value, fetch)
		if err == nil {
			err = vm.Execute()
		}
		if err != nil {
			return Final{}, errs.Ef(errs.Invalid, "psbt input %d does not verify once finalized: %s", i, clipText(err.Error()))
		}
	}
	var buf bytes.Buffer
	if err := tx.Serialize(&buf); err != nil {
		return Final{}, errs.E(errs.Internal, "could not encode the transaction", err)
	}
	return Final{Raw: buf.Bytes(), TxID: tx.TxHash().String(), Fee: fee}, nil
}

// PsbtFee is the fee a PSBT (hex, "0x" optional) pays: the amounts of the outputs its
// inputs spend, minus its outputs.
func PsbtFee(psbtHex string) (int64, error) {
	raw, ok := decodeHex(psbtHex)
	if !ok {
		return 0, errs.E(errs.Invalid, "psbt must be hex", nil)
	}
	p, err := parsePSBT(raw)
	if err != nil {
		return 0, errs.E(errs.Invalid, "psbt is not a valid BIP-174 PSBT", err)
	}
	_, fee, err := amounts(p)
	return fee, err
}

// amounts returns the output each input of p spends and the fee (inputs − outputs); every
// input must say what it spends, no output may be spent twice and the outputs must not
// exceed the inputs.
func amounts(p *psbt.Packet) (map[wire.OutPoint]*wire.TxOut, int64, error) {
	prevs := map[wire.OutPoint]*wire.TxOut{}
	var in int64
	for i, txIn := range p.UnsignedTx.TxIn {
		out, err := spentOutput(p, i)
		if err != nil {
			return nil, 0, err
		}
		if out == nil {
			return nil, 0, errs.Ef(errs.Invalid, "psbt input %d does not say which output it spends (no witness or non-witness UTXO): the fee cannot be checked", i)
		}
		if _, dup := prevs[txIn.PreviousOutPoint]; dup {
			return nil, 0, errs.Ef(errs.Invalid, "psbt input %d spends the same output as an earlier input", i)
		}
		prevs[txIn.PreviousOutPoint] = out
		in += out.Value
	}
	if len(p.UnsignedTx.TxOut) == 0 {
		return nil, 0, errs.E(errs.Invalid, "the psbt's transaction has no output", nil)
	}
	var outs int64
	for _, o := range p.UnsignedTx.TxOut {
		if o.Value < 0 || o.Value > btcutil.MaxSatoshi {
			return nil, 0, errs.E(errs.Invalid, "psbt output amount out of range", nil)
		}
		outs += o.Value
	}
	if in > btcutil.MaxSatoshi || outs > in {
		return nil, 0, errs.Ef(errs.Invalid, "the psbt's outputs (%d sat) exceed its inputs (%d sat)", outs, in)
	}
	return prevs, in - outs, nil
}

// finalizeAll finalizes every input that is not final yet, naming the first that cannot
// be (typically another signer's input that carries no signature).
func finalizeAll(p *psbt.Packet) (err error) {
	defer func() { // btcd's finalizer is written for trusted packets
		if r := recover(); r != nil {
			err = errs.E(errs.Invalid, "the psbt cannot be finalized", fmt.Errorf("bitcoin: finalizer panicked: %v", r))
		}
	}()
	for i := range p.Inputs {
		if p.IsComplete() {
			break
		}
		if len(p.Inputs[i].FinalScriptWitness) > 0 || len(p.Inputs[i].FinalScriptSig) > 0 {
			continue
		}
		if ferr := psbt.Finalize(p, i); ferr != nil {
			return errs.Ef(errs.Invalid, "psbt input %d cannot be finalized (it needs every signature it requires; only the wallet's own P2WPKH inputs are signed here): %s", i, clipText(ferr.Error()))
		}
	}
	return nil
}
