package bitcoin

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"testing"

	"github.com/btcsuite/btcd/btcutil"
	"github.com/btcsuite/btcd/txscript"
	"github.com/btcsuite/btcd/wire"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"

	"github.com/countersign/countersign/internal/errs"
)

// The test vectors of bip-0322.mediawiki ("Test vectors").
const (
	bip322WIF     = "L3VFeEujGtevx9w18HD1fhRbCH67Az2dpCymeRE1SoPK6XQtaN2k"
	bip322Address = "bc1q9vza2e8x573nczrlzms0wvx3gsqjx7vavgkx0l"
)

var bip322Vectors = []struct {
	message, hash, toSpend, toSign string
	sigs                           [2]string // the BIP gives two valid Simple signatures per message
}{
	{"", "c90c269c4f8fcbe6880f72a721ddfbf1914268a794cbb21cfafee13770ae19f1",
		"c5680aa69bb8d860bf82d4e9cd3504b55dde018de765a91bb566283c545a99a7",
		"1e9654e951a5ba44c8604c4de6c67fd78a27e81dcadcfe1edf638ba3aaebaed6",
		[2]string{"AkcwRAIgM2gBAQqvZX15ZiysmKmQpDrG83avLIT492QBzLnQIxYCIBaTpOaD20qRlEylyxFSeEA2ba9YOixpX8z46TSDtS40ASECx/EgAxlkQpQ9hYjgGu6EBCPMVPwVIVJqO4XCsMvViHI=",
			"AkgwRQIhAPkJ1Q4oYS0htvyuSFHLxRQpFAY56b70UvE7Dxazen0ZAiAtZfFz1S6T6I23MWI2lK/pcNTWncuyL8UL+oMdydVgzAEhAsfxIAMZZEKUPYWI4BruhAQjzFT8FSFSajuFwrDL1Yhy"}},
	{"Hello World", "f0eb03b1a75ac6d9847f55c624a99169b5dccba2a31f5b23bea77ba270de0a7a",
		"b79d196740ad5217771c1098fc4a4b51e0535c32236c71f1ea4d61a2d603352b",
		"88737ae86f2077145f93cc4b153ae9a1cb8d56afa511988c149c5c8c9d93bddf",
		[2]string{"AkcwRAIgZRfIY3p7/DoVTty6YZbWS71bc5Vct9p9Fia83eRmw2QCICK/ENGfwLtptFluMGs2KsqoNSk89pO7F29zJLUx9a/sASECx/EgAxlkQpQ9hYjgGu6EBCPMVPwVIVJqO4XCsMvViHI=",
			"AkgwRQIhAOzyynlqt93lOKJr+wmmxIens//zPzl9tqIOua93wO6MAiBi5n5EyAcPScOjf1lAqIUIQtr3zKNeavYabHyR8eGhowEhAsfxIAMZZEKUPYWI4BruhAQjzFT8FSFSajuFwrDL1Yhy"}},
}

func hexMessage(m string) json.RawMessage {
	b, _ := json.Marshal("0x" + hex.EncodeToString([]byte(m)))
	return b
}

// parseWitness decodes a consensus-encoded witness stack (a Simple signature).
func parseWitness(t *testing.T, b []byte) wire.TxWitness {
	t.Helper()
	r := bytes.NewReader(b)
	n, err := wire.ReadVarInt(r, 0)
	if err != nil {
		t.Fatal(err)
	}
	var wit wire.TxWitness
	for range n {
		item, err := wire.ReadVarBytes(r, 0, 1000, "witness item")
		if err != nil {
			t.Fatal(err)
		}
		wit = append(wit, item)
	}
	if r.Len() != 0 {
		t.Fatal("trailing bytes after the witness")
	}
	return wit
}

// verifyBip322 is an independent BIP-322 verifier for P2WPKH: it rebuilds to_spend from
// the message and the address's script, puts the witness on to_sign and runs btcd's
// script engine under standard policy.
func verifyBip322(t *testing.T, message string, script []byte, toSign *wire.MsgTx) error {
	t.Helper()
	toSpend, want := bip322Txs([]byte(message), script)
	if toSign.TxIn[0].PreviousOutPoint.Hash != toSpend.TxHash() || len(toSign.TxOut) != 1 ||
		!bytes.Equal(toSign.TxOut[0].PkScript, want.TxOut[0].PkScript) || toSign.TxOut[0].Value != 0 {
		t.Fatal("to_sign is not the BIP-322 transaction of this message")
	}
	fetcher := txscript.NewCannedPrevOutputFetcher(script, 0)
	vm, err := txscript.NewEngine(script, toSign, 0, txscript.StandardVerifyFlags, nil, txscript.NewTxSigHashes(toSign, fetcher), 0, fetcher)
	if err != nil {
		return err
	}
	return vm.Execute()
}

func TestBip322Vectors(t *testing.T) {
	wif, err := btcutil.DecodeWIF(bip322WIF)
	if err != nil {
		t.Fatal(err)
	}
	priv := secp256k1.PrivKeyFromBytes(wif.PrivKey.Serialize())
	pub := priv.PubKey().SerializeCompressed()
	n, _ := Lookup("Bitcoin")
	if a, _ := n.Address(pub); a != bip322Address {
		t.Fatalf("address %s, want %s", a, bip322Address)
	}
	script, _ := P2WPKHScript(pub)
	for _, v := range bip322Vectors {
		t.Run(v.message, func(t *testing.T) {
			h := Bip322MessageHash([]byte(v.message))
			if hex.EncodeToString(h[:]) != v.hash {
				t.Fatalf("message hash %x, want %s", h, v.hash)
			}
			toSpend, toSign := bip322Txs([]byte(v.message), script)
			if toSpend.TxHash().String() != v.toSpend || toSign.TxHash().String() != v.toSign {
				t.Fatalf("to_spend %s to_sign %s, want %s %s", toSpend.TxHash(), toSign.TxHash(), v.toSpend, v.toSign)
			}
			// Both signatures the BIP lists verify with our to_sign.
			for _, s := range v.sigs {
				raw, _ := base64.StdEncoding.DecodeString(s)
				signed := toSign.Copy()
				signed.TxIn[0].Witness = parseWitness(t, raw)
				if err := verifyBip322(t, v.message, script, signed); err != nil {
					t.Fatalf("the BIP's signature does not verify: %v", err)
				}
			}
			p, err := Bip322Payload(hexMessage(v.message), "", pub)
			if err != nil {
				t.Fatal(err)
			}
			res := signAll(t, priv, p)
			raw, err := base64.StdEncoding.DecodeString(res.SignedData)
			if err != nil {
				t.Fatalf("signedData is not base64: %v", err)
			}
			// RFC 6979 is deterministic: ours is one of the BIP's two.
			if res.SignedData != v.sigs[0] && res.SignedData != v.sigs[1] {
				t.Errorf("simple signature %s is not one of the BIP's", res.SignedData)
			}
			wit := parseWitness(t, raw)
			if len(wit) != 2 || !bytes.Equal(wit[1], pub) || wit[0][len(wit[0])-1] != byte(txscript.SigHashAll) ||
				"0x"+hex.EncodeToString(wit[0][:len(wit[0])-1]) != res.Signature.Encoded {
				t.Fatalf("witness %x, signature %+v", wit, res.Signature)
			}
			signed := toSign.Copy()
			signed.TxIn[0].Witness = wit
			if err := verifyBip322(t, v.message, script, signed); err != nil {
				t.Fatalf("our simple signature does not verify: %v", err)
			}

			// Full: the whole signed to_sign, whose txid is the vector's (the witness is not
			// part of a txid).
			p, err = Bip322Payload(hexMessage(v.message), "Full", pub)
			if err != nil {
				t.Fatal(err)
			}
			full := signAll(t, priv, p)
			raw, _ = base64.StdEncoding.DecodeString(full.SignedData)
			var tx wire.MsgTx
			if err := tx.Deserialize(bytes.NewReader(raw)); err != nil {
				t.Fatalf("full signature is not a transaction: %v", err)
			}
			if tx.TxHash().String() != v.toSign || tx.Version != 0 || tx.LockTime != 0 || tx.TxIn[0].Sequence != 0 {
				t.Fatalf("full to_sign %s v%d", tx.TxHash(), tx.Version)
			}
			if err := verifyBip322(t, v.message, script, &tx); err != nil {
				t.Fatalf("our full signature does not verify: %v", err)
			}
			// A signature is bound to its message.
			if v.message == "" {
				if err := verifyBip322(t, "Hello World", script, signedWith(&tx, "Hello World", script)); err == nil {
					t.Fatal("the signature of one message verified for another")
				}
			}
		})
	}
}

// signedWith moves tx's witness onto the to_sign of another message.
func signedWith(tx *wire.MsgTx, message string, script []byte) *wire.MsgTx {
	_, other := bip322Txs([]byte(message), script)
	other.TxIn[0].Witness = tx.TxIn[0].Witness
	return other
}

func TestBip322Random(t *testing.T) {
	priv, _ := secp256k1.GeneratePrivateKey()
	pub := priv.PubKey().SerializeCompressed()
	script, _ := P2WPKHScript(pub)
	msg := "countersign \x00\xff binary"
	p, err := Bip322Payload(json.RawMessage(`"`+hex.EncodeToString([]byte(msg))+`"`), "Simple", pub) // no 0x
	if err != nil {
		t.Fatal(err)
	}
	res := signAll(t, priv, p)
	raw, _ := base64.StdEncoding.DecodeString(res.SignedData)
	_, toSign := bip322Txs([]byte(msg), script)
	toSign.TxIn[0].Witness = parseWitness(t, raw)
	if err := verifyBip322(t, msg, script, toSign); err != nil {
		t.Fatal(err)
	}
	// A signature by another key is caught before it is handed out.
	other, _ := secp256k1.GeneratePrivateKey()
	if _, err := p.Finish([]Sig{custodySign(other, p.Digests[0])}); !errs.Is(err, errs.Internal) {
		t.Fatalf("a wrong key's signature: %v, want Internal", err)
	}
}

func TestBip322Refusals(t *testing.T) {
	priv, _ := secp256k1.GeneratePrivateKey()
	pub := priv.PubKey().SerializeCompressed()
	for _, tt := range []struct {
		name, format string
		message      json.RawMessage
	}{
		{"missing", "", nil},
		{"null", "", json.RawMessage(`null`)},
		{"not a string", "", json.RawMessage(`{"a":1}`)},
		{"not hex", "", json.RawMessage(`"Hello World"`)},
		{"odd hex", "", json.RawMessage(`"0xabc"`)},
		{"too long", "", json.RawMessage(`"` + hex.EncodeToString(make([]byte, maxBip322Message+1)) + `"`)},
		{"unknown format", "Legacy", hexMessage("x")},
		{"lower-case format", "simple", hexMessage("x")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Bip322Payload(tt.message, tt.format, pub); !errs.Is(err, errs.Invalid) {
				t.Fatalf("got %v, want Invalid", err)
			}
		})
	}
	if _, err := Bip322Payload(hexMessage("x"), "", append([]byte{4}, make([]byte, 64)...)); !errs.Is(err, errs.Invalid) {
		t.Fatalf("uncompressed key: %v", err)
	}
	// The empty message is a message.
	if _, err := Bip322Payload(json.RawMessage(`"0x"`), "", pub); err != nil {
		t.Fatal(err)
	}
	if _, err := Bip322Payload(json.RawMessage(`""`), "Full", pub); err != nil {
		t.Fatal(err)
	}
}
