// Package solana knows the Solana networks by their Dfns names, derives the address of an
// Ed25519 key, and builds the signing payloads of the Dfns signature kinds for Solana
// wallets (Message and Transaction). It holds no keys: callers sign Payload.Message with
// whatever custody they have and hand the signature to Payload.Finish.
//
// What Dfns returns (sources read, no code or text copied):
//   - dfns/dfns-api-docs api-docs/wallets/generate-signature-from-wallet/solana-generate-signature.md:
//     request {"kind":"Transaction","transaction":"0x<hex of a serialized transaction whose
//     signature slots are zero>"}; the response has signature {r, s, encoded = r‖s} (no
//     recid) and signedData "0x"-hex: the same transaction with the signature in its slot.
//   - dfns/dfns-sdk-ts packages/lib-solana/index.ts: signs a transaction's message bytes
//     with kind Message and reads signature r‖s as the 64-byte Ed25519 signature.
package solana

import (
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"

	"github.com/btcsuite/btcd/btcutil/base58"

	"github.com/countersign/countersign/internal/errs"
)

// Network is a Solana cluster by its Dfns name.
type Network struct {
	Name     string
	Symbol   string
	Decimals int
	Testnet  bool
}

var networks = map[string]Network{
	"Solana":       {Name: "Solana", Symbol: "SOL", Decimals: 9},
	"SolanaDevnet": {Name: "SolanaDevnet", Symbol: "SOL", Decimals: 9, Testnet: true},
}

// Lookup returns the Solana network with exactly this Dfns name.
func Lookup(name string) (Network, bool) {
	n, ok := networks[name]
	return n, ok
}

// Networks returns every known Solana network, sorted by name.
func Networks() []Network {
	out := make([]Network, 0, len(networks))
	for _, n := range networks {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Address is the base58 (Bitcoin alphabet) encoding of the 32-byte Ed25519 public key: a
// Solana account address is the public key itself.
func Address(pub []byte) (string, error) {
	if len(pub) != ed25519.PublicKeySize {
		return "", errs.E(errs.Invalid, "Solana wallets need a 32-byte Ed25519 public key", nil)
	}
	return base58.Encode(pub), nil
}

// Parts is the signature object of a response.
type Parts struct {
	R, S, Encoded string // "0x"-hex: R (32 bytes), S (32 bytes), R‖S
}

// Result holds the response fields of a signature request.
type Result struct {
	Signature  Parts
	SignedData string // kind Transaction only
}

// Payload is what to sign (pure Ed25519 over Message) and how to finish with the signature.
type Payload struct {
	Message []byte
	Finish  func(sig []byte) (Result, error)
}

func partsOf(sig []byte) (Parts, error) {
	if len(sig) != ed25519.SignatureSize {
		return Parts{}, errs.E(errs.Internal, "signing failed", fmt.Errorf("solana: custody returned a %d-byte signature", len(sig)))
	}
	return Parts{R: "0x" + hex.EncodeToString(sig[:32]), S: "0x" + hex.EncodeToString(sig[32:]),
		Encoded: "0x" + hex.EncodeToString(sig)}, nil
}

func decodeHex(s string) ([]byte, bool) {
	b, err := hex.DecodeString(strings.TrimPrefix(s, "0x"))
	return b, err == nil
}

// RawPayload signs raw bytes (kinds Message and Hash: the official web3.js adapter sends a
// transaction's serialized message as a Message).
func RawPayload(msg []byte) Payload {
	return Payload{Message: msg, Finish: func(sig []byte) (Result, error) {
		p, err := partsOf(sig)
		return Result{Signature: p}, err
	}}
}

// TransactionPayload signs a serialized transaction (kind Transaction, hex, "0x"
// optional) for the signer pub: it signs the transaction's message and returns the
// transaction with the signature in pub's slot. Other slots are left as they are, so
// several signers can sign in turn. Refused when pub is not a required signer.
func TransactionPayload(txHex string, pub []byte) (Payload, error) {
	if len(pub) != ed25519.PublicKeySize {
		return Payload{}, errs.E(errs.Invalid, "Solana wallets need a 32-byte Ed25519 public key", nil)
	}
	raw, ok := decodeHex(txHex)
	if !ok || len(raw) == 0 {
		return Payload{}, errs.E(errs.Invalid, "transaction must be non-empty hex", nil)
	}
	tx, err := ParseTransaction(raw)
	if err != nil {
		return Payload{}, err
	}
	slot := tx.SignerIndex(pub)
	if slot < 0 {
		return Payload{}, errs.E(errs.Invalid, "the wallet is not a required signer of this transaction", nil)
	}
	return Payload{Message: tx.Message, Finish: func(sig []byte) (Result, error) {
		p, err := partsOf(sig)
		if err != nil {
			return Result{}, err
		}
		signed := tx.WithSignature(slot, sig)
		return Result{Signature: p, SignedData: "0x" + hex.EncodeToString(signed)}, nil
	}}, nil
}
