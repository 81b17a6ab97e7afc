package solana

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/btcsuite/btcd/btcutil/base58"

	"github.com/countersign/countersign/internal/errs"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.TrimPrefix(s, "0x"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAddress(t *testing.T) {
	for _, tt := range []struct {
		pub  []byte
		want string
	}{
		{make([]byte, 32), "11111111111111111111111111111111"}, // the System Program's id
		{append(make([]byte, 31), 1), "11111111111111111111111111111112"},
	} {
		got, err := Address(tt.pub)
		if err != nil || got != tt.want {
			t.Errorf("Address(%x) = %q %v, want %q", tt.pub, got, err, tt.want)
		}
	}
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	a, err := Address(pub)
	if err != nil || !bytes.Equal(base58.Decode(a), pub) || len(a) < 32 || len(a) > 44 {
		t.Fatalf("round trip: %q %v", a, err)
	}
	for _, n := range []int{0, 31, 33, 65} {
		if _, err := Address(make([]byte, n)); !errs.Is(err, errs.Invalid) {
			t.Errorf("%d-byte key: %v, want Invalid", n, err)
		}
	}
	for _, name := range []string{"Solana", "SolanaDevnet"} {
		if n, ok := Lookup(name); !ok || n.Decimals != 9 || n.Symbol != "SOL" {
			t.Errorf("Lookup(%s) = %+v %v", name, n, ok)
		}
	}
}

// The request and response of dfns-api-docs solana-generate-signature.md: a v0 transfer
// from b25c8c46… with its one signature slot zeroed, and the same transaction signed.
const (
	docsUnsigned = "01000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000008001000103b25c8c464080ab2835a166d2b3f13195c2ff3c8f281c7ebe492f0d45d830ff4824a8b38a94b73d2756f2be68655a49706be9b1dc900978984d6eeaf65ab62e900000000000000000000000000000000000000000000000000000000000000000ed589eed2559d935c834cd6d6cbee12970423ad37853618d39e632032aa4c51201020200010c02000000010000000000000000"
	docsSig      = "87e2fafa916877495baed6adb66283fcecd6166c73b1bb5812441045fc52b5ac52f5216e39945db8a1fc7a19778813ed30e4cb84787ff9fe7a1e4f1d7976d70f"
	docsSigned   = "0187e2fafa916877495baed6adb66283fcecd6166c73b1bb5812441045fc52b5ac52f5216e39945db8a1fc7a19778813ed30e4cb84787ff9fe7a1e4f1d7976d70f8001000103b25c8c464080ab2835a166d2b3f13195c2ff3c8f281c7ebe492f0d45d830ff4824a8b38a94b73d2756f2be68655a49706be9b1dc900978984d6eeaf65ab62e900000000000000000000000000000000000000000000000000000000000000000ed589eed2559d935c834cd6d6cbee12970423ad37853618d39e632032aa4c51201020200010c02000000010000000000000000"
	docsSigner   = "b25c8c464080ab2835a166d2b3f13195c2ff3c8f281c7ebe492f0d45d830ff48"
)

func TestDocsVector(t *testing.T) {
	tx, err := ParseTransaction(mustHex(t, docsUnsigned))
	if err != nil {
		t.Fatal(err)
	}
	if tx.Version != 0 || len(tx.Signers) != 1 || hex.EncodeToString(tx.Signers[0]) != docsSigner || len(tx.Accounts) != 3 {
		t.Fatalf("parsed %+v", tx)
	}
	signer := mustHex(t, docsSigner)
	if !ed25519.Verify(signer, tx.Message, mustHex(t, docsSig)) {
		t.Fatal("the documented signature must verify over the message we extract")
	}
	p, err := TransactionPayload("0x"+docsUnsigned, signer)
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.Finish(mustHex(t, docsSig))
	if err != nil {
		t.Fatal(err)
	}
	if res.SignedData != "0x"+docsSigned {
		t.Fatalf("signedData %s, want the documented one", res.SignedData)
	}
	if res.Signature.Encoded != "0x"+docsSig || res.Signature.R != "0x"+docsSig[:64] || res.Signature.S != "0x"+docsSig[64:] {
		t.Fatalf("signature %+v", res.Signature)
	}
}

// shortvec encodes a compact-u16.
func shortvec(n int) []byte {
	var out []byte
	for {
		b := byte(n & 0x7f)
		n >>= 7
		if n == 0 {
			return append(out, b)
		}
		out = append(out, b|0x80)
	}
}

// legacyTx builds an unsigned legacy transaction: signers sign, then readonly accounts;
// one instruction of program (the last key) over every account.
func legacyTx(signers [][]byte, others [][]byte, roSigned, roUnsigned int) []byte {
	var msg []byte
	keys := append(append([][]byte{}, signers...), others...)
	msg = append(msg, byte(len(signers)), byte(roSigned), byte(roUnsigned))
	msg = append(msg, shortvec(len(keys))...)
	for _, k := range keys {
		msg = append(msg, k...)
	}
	msg = append(msg, bytes.Repeat([]byte{0xbb}, 32)...) // recent blockhash
	msg = append(msg, shortvec(1)...)
	msg = append(msg, byte(len(keys)-1))
	msg = append(msg, shortvec(len(keys)-1)...)
	for i := 0; i < len(keys)-1; i++ {
		msg = append(msg, byte(i))
	}
	msg = append(msg, shortvec(12)...)
	msg = append(msg, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0)
	tx := shortvec(len(signers))
	tx = append(tx, make([]byte, 64*len(signers))...)
	return append(tx, msg...)
}

func TestTransactionPayloadSignsItsSlot(t *testing.T) {
	payer, payerPriv, _ := ed25519.GenerateKey(rand.Reader)
	wallet, walletPriv, _ := ed25519.GenerateKey(rand.Reader)
	program := make([]byte, 32)
	bystander := bytes.Repeat([]byte{9}, 32)
	raw := legacyTx([][]byte{payer, wallet}, [][]byte{bystander, program}, 0, 1)
	p, err := TransactionPayload(hex.EncodeToString(raw), wallet)
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.Finish(ed25519.Sign(walletPriv, p.Message))
	if err != nil {
		t.Fatal(err)
	}
	signed, err := ParseTransaction(mustHex(t, res.SignedData))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(signed.Message, p.Message) || signed.Version != -1 {
		t.Fatal("signing must not change the message")
	}
	if !ed25519.Verify(wallet, signed.Message, signed.Signatures[1]) {
		t.Fatal("slot 1 must hold the wallet's signature over the message")
	}
	if !bytes.Equal(signed.Signatures[0], make([]byte, 64)) {
		t.Fatal("the fee payer's slot must be left alone")
	}
	// The fee payer signs next; the wallet's signature stays.
	p2, err := TransactionPayload(res.SignedData, payer)
	if err != nil {
		t.Fatal(err)
	}
	res2, _ := p2.Finish(ed25519.Sign(payerPriv, p2.Message))
	both, _ := ParseTransaction(mustHex(t, res2.SignedData))
	if !ed25519.Verify(payer, both.Message, both.Signatures[0]) || !ed25519.Verify(wallet, both.Message, both.Signatures[1]) {
		t.Fatal("both signatures must verify")
	}
	// An account that is not a signer cannot sign.
	if _, err := TransactionPayload(hex.EncodeToString(raw), bystander); !errs.Is(err, errs.Invalid) {
		t.Fatalf("non-signer: %v, want Invalid", err)
	}
}

func TestParseRefusals(t *testing.T) {
	a, b := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	good := legacyTx([][]byte{a}, [][]byte{b}, 0, 1)
	if _, err := ParseTransaction(good); err != nil {
		t.Fatalf("baseline: %v", err)
	}
	edit := func(f func([]byte) []byte) []byte { return f(bytes.Clone(good)) }
	msgAt := 1 + 64
	for _, tt := range []struct {
		name string
		raw  []byte
	}{
		{"empty", nil},
		{"count only", []byte{1}},
		{"truncated", good[:len(good)-1]},
		{"trailing byte", append(bytes.Clone(good), 0)},
		{"signature count differs", edit(func(x []byte) []byte { return append([]byte{2}, append(make([]byte, 64), x[1:]...)...) })},
		{"non-canonical count", append([]byte{0x81, 0x00}, good[1:]...)},
		{"count overflow", append([]byte{0xff, 0xff, 0x7f}, good[1:]...)},
		{"no required signer", edit(func(x []byte) []byte { x[0], x[msgAt] = 0, 0; return append(x[:1], x[65:]...) })},
		{"read-only fee payer", edit(func(x []byte) []byte { x[msgAt+1] = 1; return x })},
		{"header counts too many", edit(func(x []byte) []byte { x[msgAt+2] = 5; return x })},
		{"message version 1", append(append([]byte{1}, make([]byte, 64)...), append([]byte{0x81}, good[msgAt:]...)...)},
		{"v0 without lookup section", append(append([]byte{1}, make([]byte, 64)...), append([]byte{0x80}, good[msgAt:]...)...)},
		{"program index is the payer", edit(func(x []byte) []byte { x[msgAt+3+1+64+32+1] = 0; return x })},
		{"program index out of range", edit(func(x []byte) []byte { x[msgAt+3+1+64+32+1] = 7; return x })},
		{"account index out of range", edit(func(x []byte) []byte { x[msgAt+3+1+64+32+3] = 9; return x })},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseTransaction(tt.raw); !errs.Is(err, errs.Invalid) {
				t.Fatalf("got %v, want Invalid", err)
			}
		})
	}
	// A v0 message with an address table lookup may index the looked-up accounts.
	v0 := append(append([]byte{1}, make([]byte, 64)...), 0x80)
	v0 = append(v0, good[msgAt:]...)
	v0 = append(v0, 1)                              // one lookup
	v0 = append(v0, bytes.Repeat([]byte{3}, 32)...) // table address
	v0 = append(v0, 1, 0, 1, 5)                     // writable [0], readonly [5]
	v0[msgAt+1+3+1+64+32+3] = 3                     // account index 3 = the second looked-up one
	if tx, err := ParseTransaction(v0); err != nil || tx.Version != 0 {
		t.Fatalf("v0 with lookups: %v", err)
	}
	for _, h := range []string{"", "0x", "zz", "0x0"} {
		if _, err := TransactionPayload(h, a); !errs.Is(err, errs.Invalid) {
			t.Errorf("%q: %v, want Invalid", h, err)
		}
	}
}

func FuzzParseTransaction(f *testing.F) {
	f.Add(mustHex(f, docsUnsigned))
	f.Add(legacyTx([][]byte{bytes.Repeat([]byte{1}, 32)}, [][]byte{make([]byte, 32)}, 0, 1))
	f.Fuzz(func(t *testing.T, raw []byte) {
		tx, err := ParseTransaction(raw)
		if err != nil {
			return
		}
		if len(tx.Signatures) != len(tx.Signers) || len(tx.Signers) == 0 {
			t.Fatal("accepted a transaction whose slots do not match its signers")
		}
		out := tx.WithSignature(len(tx.Signers)-1, bytes.Repeat([]byte{7}, 64))
		again, err := ParseTransaction(out)
		if err != nil || !bytes.Equal(again.Message, tx.Message) {
			t.Fatal("placing a signature must keep the transaction valid and its message unchanged")
		}
	})
}
