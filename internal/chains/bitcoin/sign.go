// What Dfns returns for a signature on a Bitcoin wallet, and therefore what Finish builds.
//
// Sources read (no code or text copied):
//   - dfns/dfns-api-docs api-docs/wallets/generate-signature-from-wallet/bitcoin-generate-signature.md:
//     request {"kind":"Psbt","psbt":"0x<hex>"}; the 200 response has no "signature" but a
//     "signatures" list with one {r, s, recid, encoded} per signed input, "encoded" being the
//     DER signature without the sighash byte, and "signedData" the same PSBT as "0x"-hex with
//     a BIP-174 partial signature (key 0x02‖pubkey, value DER‖sighash byte) added to the
//     input: not finalized, so the caller finalizes and extracts as with any signer.
//   - dfns/dfns-sdk-ts packages/lib-bitcoinjs/index.ts: sign(hash) uses kind Hash and reads
//     only r and s (64 bytes, what bitcoinjs wants); signPsbt sends "0x"+hex and reads back
//     Psbt.fromHex(signedData without 0x).
//   - dfns/dfns-sdk-ts packages/sdk/generated/keys/types.ts: kinds Psbt {psbt} and Bip322
//     {message, format?} exist for Bitcoin; there is no Bitcoin "Message" kind (dfns-api.md
//     §4.4.4 lists Message for EdDSA chains, EVM and Polkadot only).

package bitcoin

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/btcsuite/btcd/btcutil"
	"github.com/btcsuite/btcd/btcutil/psbt"
	"github.com/btcsuite/btcd/txscript"
	"github.com/btcsuite/btcd/wire"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"

	"github.com/countersign/countersign/internal/errs"
)

// Sig is one ECDSA signature as custody makes it: R and S 32 bytes each big-endian, S in
// the lower half of the order (BIP-62/BIP-146 LOW_S), RecID the recovery id.
type Sig struct {
	R, S  []byte
	RecID int
}

// Parts is the signature object of a response.
type Parts struct {
	R, S    string // "0x" + 64 hex digits
	RecID   int
	Encoded string // "0x" + the DER signature, without a sighash byte
}

// Result holds the response fields of a signature request.
type Result struct {
	Signature  *Parts  // kind Hash
	Signatures []Parts // kind Psbt: one per signed input, in input order
	SignedData string  // kind Psbt: the PSBT with the partial signatures, "0x"-hex
}

// Payload is what to sign for one signature request (32-byte digests, in order) and how
// to finish it with the signatures of those digests, in the same order.
type Payload struct {
	Digests [][]byte
	Finish  func(sigs []Sig) (Result, error)
}

func decodeHex(s string) ([]byte, bool) {
	b, err := hex.DecodeString(strings.TrimPrefix(s, "0x"))
	return b, err == nil
}

// parts checks a custody signature and encodes it as a response object.
func parts(s Sig) (Parts, *ecdsa.Signature, error) {
	var r, ss secp256k1.ModNScalar
	if len(s.R) != 32 || len(s.S) != 32 || r.SetByteSlice(s.R) || ss.SetByteSlice(s.S) || r.IsZero() || ss.IsZero() || ss.IsOverHalfOrder() {
		return Parts{}, nil, errs.E(errs.Internal, "signing failed", fmt.Errorf("bitcoin: custody returned a malformed signature"))
	}
	sig := ecdsa.NewSignature(&r, &ss)
	return Parts{R: "0x" + hex.EncodeToString(s.R), S: "0x" + hex.EncodeToString(s.S), RecID: s.RecID,
		Encoded: "0x" + hex.EncodeToString(sig.Serialize())}, sig, nil
}

// HashPayload signs a caller-chosen 32-byte digest (kind Hash); encoded is DER.
func HashPayload(hashHex string) (Payload, error) {
	d, ok := decodeHex(hashHex)
	if !ok || len(d) != 32 {
		return Payload{}, errs.E(errs.Invalid, "hash must be 32 bytes of hex", nil)
	}
	return Payload{Digests: [][]byte{d}, Finish: func(sigs []Sig) (Result, error) {
		if len(sigs) != 1 {
			return Result{}, errs.E(errs.Internal, "signing failed", fmt.Errorf("bitcoin: want 1 signature, got %d", len(sigs)))
		}
		p, _, err := parts(sigs[0])
		if err != nil {
			return Result{}, err
		}
		return Result{Signature: &p}, nil
	}}, nil
}

// parsePSBT reads a binary PSBT, with nothing after it. btcd's parser is written for trusted callers; a panic on
// hostile bytes is turned into a refusal of the input rather than a 500.
func parsePSBT(b []byte) (p *psbt.Packet, err error) {
	defer func() {
		if r := recover(); r != nil {
			p, err = nil, fmt.Errorf("bitcoin: psbt parser panicked: %v", r)
		}
	}()
	r := bytes.NewReader(b)
	if p, err = psbt.NewFromRawBytes(r, false); err == nil && r.Len() != 0 {
		p, err = nil, fmt.Errorf("bitcoin: %d bytes after the psbt", r.Len())
	}
	return p, err
}

// spentOutput returns the output input i of p spends, from its UTXO fields, or nil when
// the PSBT does not say. A non-witness UTXO must be the transaction the input points to.
func spentOutput(p *psbt.Packet, i int) (*wire.TxOut, error) {
	in, op := p.Inputs[i], p.UnsignedTx.TxIn[i].PreviousOutPoint
	out := in.WitnessUtxo
	if prev := in.NonWitnessUtxo; prev != nil {
		if prev.TxHash() != op.Hash || int64(op.Index) >= int64(len(prev.TxOut)) {
			return nil, errs.Ef(errs.Invalid, "psbt input %d: its non-witness UTXO is not the transaction it spends", i)
		}
		full := prev.TxOut[op.Index]
		if out != nil && (out.Value != full.Value || !bytes.Equal(out.PkScript, full.PkScript)) {
			return nil, errs.Ef(errs.Invalid, "psbt input %d: witness and non-witness UTXOs disagree", i)
		}
		out = full
	}
	if out != nil && (out.Value < 0 || out.Value > btcutil.MaxSatoshi) {
		return nil, errs.Ef(errs.Invalid, "psbt input %d: UTXO amount out of range", i)
	}
	return out, nil
}

// sighashType is the input's requested sighash type, SIGHASH_ALL by default; only the six
// standard types are accepted.
func sighashType(p *psbt.Packet, i int) (txscript.SigHashType, error) {
	t := p.Inputs[i].SighashType
	if t == 0 {
		return txscript.SigHashAll, nil
	}
	switch t &^ txscript.SigHashAnyOneCanPay {
	case txscript.SigHashAll, txscript.SigHashNone:
	case txscript.SigHashSingle:
		// Without an output of the same index, SIGHASH_SINGLE signs nothing of the outputs.
		if i >= len(p.UnsignedTx.TxOut) {
			return 0, errs.Ef(errs.Invalid, "psbt input %d: SIGHASH_SINGLE without a matching output", i)
		}
	default:
		return 0, errs.Ef(errs.Invalid, "psbt input %d: unsupported sighash type %#x", i, uint32(t))
	}
	return t, nil
}

// PsbtPayload signs, with the key pub, every input of a BIP-174 PSBT (hex, "0x" optional)
// that spends pub's P2WPKH output and is not finalized yet (kind Psbt). Each digest is the
// BIP-143 signature hash of the input, which commits to the amount of the spent output, so
// a wrong amount in the PSBT only yields a signature the network rejects. A PSBT with no
// such input is refused: there would be nothing to sign.
func PsbtPayload(psbtHex string, pub []byte) (Payload, error) {
	script, err := P2WPKHScript(pub)
	if err != nil {
		return Payload{}, err
	}
	raw, ok := decodeHex(psbtHex)
	if !ok || len(raw) == 0 {
		return Payload{}, errs.E(errs.Invalid, "psbt must be non-empty hex", nil)
	}
	p, err := parsePSBT(raw)
	if err != nil {
		return Payload{}, errs.E(errs.Invalid, "psbt is not a valid BIP-174 PSBT", err)
	}
	// Only segwit v0 inputs are signed, so the taproot midstate (which would need every
	// spent output) is never used: a zero output for all inputs keeps btcd from computing it.
	hashes := txscript.NewTxSigHashes(p.UnsignedTx, txscript.NewCannedPrevOutputFetcher(nil, 0))
	type todo struct {
		input int
		ht    txscript.SigHashType
	}
	var work []todo
	var digests [][]byte
	for i, in := range p.Inputs {
		out, err := spentOutput(p, i)
		if err != nil {
			return Payload{}, err
		}
		if out == nil || !bytes.Equal(out.PkScript, script) || len(in.FinalScriptWitness) > 0 || len(in.FinalScriptSig) > 0 {
			continue
		}
		ht, err := sighashType(p, i)
		if err != nil {
			return Payload{}, err
		}
		d, err := txscript.CalcWitnessSigHash(script, hashes, ht, p.UnsignedTx, i, out.Value)
		if err != nil {
			return Payload{}, errs.Ef(errs.Invalid, "psbt input %d: cannot compute its signature hash", i)
		}
		work = append(work, todo{i, ht})
		digests = append(digests, d)
	}
	if len(work) == 0 {
		return Payload{}, errs.E(errs.Invalid, "the psbt has no input to sign for this wallet: none spends its P2WPKH output (with a witness or non-witness UTXO) and is unfinalized", nil)
	}
	return Payload{Digests: digests, Finish: func(sigs []Sig) (Result, error) {
		if len(sigs) != len(work) {
			return Result{}, errs.E(errs.Internal, "signing failed", fmt.Errorf("bitcoin: want %d signatures, got %d", len(work), len(sigs)))
		}
		res := Result{Signatures: make([]Parts, 0, len(work))}
		for j, w := range work {
			pp, sig, err := parts(sigs[j])
			if err != nil {
				return Result{}, err
			}
			res.Signatures = append(res.Signatures, pp)
			in := &p.Inputs[w.input]
			ps := &psbt.PartialSig{PubKey: bytes.Clone(pub), Signature: append(sig.Serialize(), byte(w.ht))}
			replaced := false
			for k, old := range in.PartialSigs {
				if bytes.Equal(old.PubKey, pub) {
					in.PartialSigs[k], replaced = ps, true
				}
			}
			if !replaced {
				in.PartialSigs = append(in.PartialSigs, ps)
			}
		}
		var buf bytes.Buffer
		if err := p.Serialize(&buf); err != nil {
			return Result{}, errs.E(errs.Internal, "could not encode the signed psbt", err)
		}
		res.SignedData = "0x" + hex.EncodeToString(buf.Bytes())
		return res, nil
	}}, nil
}
