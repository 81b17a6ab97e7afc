package keys

import (
	"crypto/ed25519"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/countersign/countersign/internal/errs"
)

// TestChainSetFamilies checks which family a request goes to and that the key type must
// match it, with real custody keys.
func TestChainSetFamilies(t *testing.T) {
	c := NewCustody(custodyRing(t, "kek-1"))
	ecRef, ecPub := custodyKey(t, c, "or-1", "key-ec", SchemeECDSA, CurveSecp256k1)
	edRef, edPub := custodyKey(t, c, "or-1", "key-ed", SchemeEdDSA, CurveEd25519)
	ec := PubKey{Scheme: SchemeECDSA, Curve: CurveSecp256k1, Key: ecPub}
	ed := PubKey{Scheme: SchemeEdDSA, Curve: CurveEd25519, Key: edPub}
	hash := strings.Repeat("ab", 32)
	for _, tt := range []struct {
		name                    string
		key                     PubKey
		network, blockchainKind string
		req                     SignRequest
		wantNetwork, wantErr    string // wantErr: a substring of the refusal
	}{
		{"ecdsa/hash/bare", ec, "", "", SignRequest{Kind: "Hash", Hash: hash}, "", ""},
		{"ecdsa/hash/bitcoin", ec, "Bitcoin", "", SignRequest{Kind: "Hash", Hash: hash}, "Bitcoin", ""},
		{"ecdsa/hash/kind-bitcoin", ec, "", "Bitcoin", SignRequest{Kind: "Hash", Hash: hash}, "", ""},
		{"ecdsa/hash/evm", ec, "Base", "", SignRequest{Kind: "Hash", Hash: hash}, "Base", ""},
		{"ecdsa/message/bitcoin", ec, "BitcoinSignet", "", SignRequest{Kind: "Message", Message: []byte(`"0x01"`)}, "", "no Message"},
		{"ecdsa/bip322", ec, "Bitcoin", "", SignRequest{Kind: "Bip322", Message: []byte(`"0x01"`)}, "Bitcoin", ""},
		{"ecdsa/bip322/full", ec, "BitcoinTestnet4", "", SignRequest{Kind: "Bip322", Message: []byte(`"0x01"`), Format: "Full"}, "BitcoinTestnet4", ""},
		{"ecdsa/bip322/format", ec, "Bitcoin", "", SignRequest{Kind: "Bip322", Message: []byte(`"0x01"`), Format: "Legacy"}, "", "format must be Simple or Full"},
		{"ecdsa/bip322/no-message", ec, "Bitcoin", "", SignRequest{Kind: "Bip322"}, "", "message is required"},
		{"ecdsa/solana", ec, "Solana", "", SignRequest{Kind: "Hash", Hash: hash}, "", "need an EdDSA/ed25519 key"},
		{"ecdsa/kind-solana", ec, "", "Solana", SignRequest{Kind: "Hash", Hash: hash}, "", "need an EdDSA/ed25519 key"},
		{"ecdsa/network-vs-kind", ec, "Bitcoin", "Evm", SignRequest{Kind: "Hash", Hash: hash}, "", "not of blockchainKind"},
		{"ecdsa/unknown-network", ec, "Dogecoin", "", SignRequest{Kind: "Hash", Hash: hash}, "", "not supported"},
		{"ecdsa/unknown-kind", ec, "", "Tron", SignRequest{Kind: "Hash", Hash: hash}, "", "not supported"},
		{"eddsa/message/bare", ed, "", "", SignRequest{Kind: "Message", Message: []byte(`"0x0102"`)}, "", ""},
		{"eddsa/hash/solana", ed, "SolanaDevnet", "", SignRequest{Kind: "Hash", Hash: hash}, "SolanaDevnet", ""},
		{"eddsa/transaction/bare", ed, "", "", SignRequest{Kind: "Transaction", Transaction: "0x01"}, "", "not supported for EdDSA keys"},
		{"eddsa/transaction/empty", ed, "Solana", "", SignRequest{Kind: "Transaction"}, "", "transaction is required"},
		{"eddsa/evm", ed, "Ethereum", "", SignRequest{Kind: "Message", Message: []byte(`"0x01"`)}, "", "need an ECDSA/secp256k1 key"},
		{"eddsa/bitcoin", ed, "", "Bitcoin", SignRequest{Kind: "Hash", Hash: hash}, "", "need an ECDSA/secp256k1 key"},
		{"eddsa/psbt/solana", ed, "Solana", "", SignRequest{Kind: "Psbt", Psbt: "0x70"}, "", "not supported for EdDSA keys"},
		{"ecdsa/psbt/empty", ec, "Bitcoin", "", SignRequest{Kind: "Psbt"}, "", "psbt is required"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ChainSet{}.Prepare(tt.key, tt.network, tt.blockchainKind, tt.req)
			if tt.wantErr != "" {
				if !errs.Is(err, errs.Invalid) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, want Invalid containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Network != tt.wantNetwork {
				t.Errorf("network %q, want %q", p.Network, tt.wantNetwork)
			}
			ref := ecRef
			if tt.key.Scheme == SchemeEdDSA {
				ref = edRef
			}
			res, err := p.run(func(payload []byte) (Signature, error) { return custodySign(c, ref, payload) })
			if err != nil || res.Signature == nil {
				t.Fatalf("run: %+v %v", res, err)
			}
			if tt.key.Scheme == SchemeEdDSA {
				msg := []byte{1, 2}
				if tt.req.Kind == "Hash" {
					msg, _ = hex.DecodeString(hash)
				}
				if !ed25519.Verify(edPub, msg, custodyHex(t, res.Signature.Encoded[2:])) {
					t.Fatal("Ed25519 signature does not verify over the raw bytes")
				}
			}
		})
	}
}
