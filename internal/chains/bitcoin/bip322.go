// BIP-322 generic signed messages for P2WPKH wallets (signature kind Bip322, dfns-api.md
// §4.4.4: {"kind":"Bip322","message":"0x<hex>","format"?:"Simple"|"Full"}).
//
// The message is hex, as in Dfns' own example ("message":"0x49206c6f76652044666e73", i.e.
// "I love Dfns", docs.dfns.co generate-signature). BIP-322 has no hex: it signs the bytes.
// The response carries the ECDSA signature object like kind Hash (encoded = DER) and, in
// signedData, the proof in BIP-322's own encoding, base64: for Simple the consensus-encoded
// witness stack, for Full the whole signed to_sign transaction. Dfns does not document what
// its signedData holds for Bip322 (UNCONFIRMED); base64 is what every BIP-322 verifier
// reads.

package bitcoin

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/txscript"
	"github.com/btcsuite/btcd/wire"

	"github.com/countersign/countersign/internal/errs"
)

// bip322Tag is the BIP-340 tag of BIP-322 message hashes.
const bip322Tag = "BIP0322-signed-message"

// maxBip322Message bounds the message: it is hashed once, but it is also echoed in the
// stored request body.
const maxBip322Message = 64 << 10

// Bip322MessageHash is sha256_tag(m) with the BIP-322 tag.
func Bip322MessageHash(m []byte) chainhash.Hash {
	return *chainhash.TaggedHash([]byte(bip322Tag), m)
}

// bip322Txs builds BIP-322's virtual transactions for message m and the output script
// being proven: to_spend (its only output pays 0 to script, its only input is the
// impossible 000…000:ffffffff with scriptSig OP_0 PUSH32[message_hash]) and the unsigned
// to_sign (version 0, lock time 0, sequence 0, spending to_spend:0 to a single OP_RETURN).
func bip322Txs(m, script []byte) (toSpend, toSign *wire.MsgTx) {
	h := Bip322MessageHash(m)
	sigScript, _ := txscript.NewScriptBuilder().AddOp(txscript.OP_0).AddData(h[:]).Script()
	toSpend = wire.NewMsgTx(0)
	in := wire.NewTxIn(wire.NewOutPoint(&chainhash.Hash{}, wire.MaxPrevOutIndex), sigScript, nil)
	in.Sequence = 0
	toSpend.AddTxIn(in)
	toSpend.AddTxOut(wire.NewTxOut(0, script))

	toSign = wire.NewMsgTx(0)
	spendHash := toSpend.TxHash()
	in = wire.NewTxIn(wire.NewOutPoint(&spendHash, 0), nil, nil)
	in.Sequence = 0
	toSign.AddTxIn(in)
	toSign.AddTxOut(wire.NewTxOut(0, []byte{txscript.OP_RETURN}))
	return toSpend, toSign
}

// Bip322Payload signs message (a JSON string of hex, "0x" optional, "" for the empty
// message) in BIP-322 format "Simple" (the default) or "Full" with the P2WPKH key pub:
// the one digest is the BIP-143 SIGHASH_ALL hash of to_sign's input (BIP-322 requires
// SIGHASH_ALL). Finish assembles the witness [DER‖0x01, pub], checks it with btcd's script
// engine under standard policy (so a bad signature from custody is never handed out) and
// encodes the proof.
func Bip322Payload(message json.RawMessage, format string, pub []byte) (Payload, error) {
	script, err := P2WPKHScript(pub)
	if err != nil {
		return Payload{}, err
	}
	if len(message) == 0 || string(message) == "null" {
		return Payload{}, errs.E(errs.Invalid, "message is required", nil)
	}
	var msgHex string
	if err := json.Unmarshal(message, &msgHex); err != nil {
		return Payload{}, errs.E(errs.Invalid, "message must be a hex string", nil)
	}
	m, ok := decodeHex(msgHex)
	if !ok {
		return Payload{}, errs.E(errs.Invalid, "message must be hex (the bytes to sign, 0x optional)", nil)
	}
	if len(m) > maxBip322Message {
		return Payload{}, errs.Ef(errs.Invalid, "message must be at most %d bytes", maxBip322Message)
	}
	full := false
	switch format {
	case "", "Simple":
	case "Full":
		full = true
	default:
		return Payload{}, errs.Ef(errs.Invalid, "format must be Simple or Full, not %q", clipText(format))
	}
	_, toSign := bip322Txs(m, script)
	fetcher := txscript.NewCannedPrevOutputFetcher(script, 0)
	hashes := txscript.NewTxSigHashes(toSign, fetcher)
	digest, err := txscript.CalcWitnessSigHash(script, hashes, txscript.SigHashAll, toSign, 0, 0)
	if err != nil {
		return Payload{}, errs.E(errs.Internal, "could not compute the BIP-322 signature hash", err)
	}
	return Payload{Digests: [][]byte{digest}, Finish: func(sigs []Sig) (Result, error) {
		if len(sigs) != 1 {
			return Result{}, errs.E(errs.Internal, "signing failed", fmt.Errorf("bitcoin: want 1 signature, got %d", len(sigs)))
		}
		p, sig, err := parts(sigs[0])
		if err != nil {
			return Result{}, err
		}
		signed := toSign.Copy()
		signed.TxIn[0].Witness = wire.TxWitness{append(sig.Serialize(), byte(txscript.SigHashAll)), bytes.Clone(pub)}
		vm, err := txscript.NewEngine(script, signed, 0, txscript.StandardVerifyFlags, nil, hashes, 0, fetcher)
		if err == nil {
			err = vm.Execute()
		}
		if err != nil {
			return Result{}, errs.E(errs.Internal, "signing failed", fmt.Errorf("bitcoin: BIP-322 proof does not verify: %w", err))
		}
		var buf bytes.Buffer
		if full {
			err = signed.Serialize(&buf)
		} else {
			err = writeWitness(&buf, signed.TxIn[0].Witness)
		}
		if err != nil {
			return Result{}, errs.E(errs.Internal, "could not encode the BIP-322 proof", err)
		}
		return Result{Signature: &p, SignedData: base64.StdEncoding.EncodeToString(buf.Bytes())}, nil
	}}, nil
}

// writeWitness consensus-encodes a witness stack: the item count, then each item with its
// length (BIP-144), which is BIP-322's Simple signature before base64.
func writeWitness(w *bytes.Buffer, wit wire.TxWitness) error {
	if err := wire.WriteVarInt(w, 0, uint64(len(wit))); err != nil {
		return err
	}
	for _, item := range wit {
		if err := wire.WriteVarBytes(w, 0, item); err != nil {
			return err
		}
	}
	return nil
}

// clipText keeps client text echoed in an error short.
func clipText(s string) string {
	if len(s) > 40 {
		return strings.ToValidUTF8(s[:40], "") + "…"
	}
	return s
}
