package evm

import (
	"bytes"
	"crypto/ecdsa"
	"encoding/hex"
	"encoding/json"
	"math/big"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/accounts"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/rlp"
	"github.com/ethereum/go-ethereum/signer/core/apitypes"
	"github.com/holiman/uint256"

	"github.com/countersign/countersign/internal/errs"
)

// testKey returns a fresh key and its address as Address derives it, after checking that
// Address agrees with go-ethereum for both public key encodings.
func testKey(t testing.TB) (*ecdsa.PrivateKey, string) {
	t.Helper()
	key, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	want := crypto.PubkeyToAddress(key.PublicKey).Hex()
	for _, pub := range [][]byte{crypto.CompressPubkey(&key.PublicKey), crypto.FromECDSAPub(&key.PublicKey)} {
		got, err := Address(pub)
		if err != nil || got != want {
			t.Fatalf("Address(%d bytes) = %q, %v; want %q", len(pub), got, err, want)
		}
	}
	return key, want
}

// signPayload signs p.Digest with key, finishes it, and checks the response fields: their
// format, and that the signature recovers to addr.
func signPayload(t testing.TB, key *ecdsa.PrivateKey, addr string, p Payload) Result {
	t.Helper()
	if len(p.Digest) != 32 {
		t.Fatalf("digest has %d bytes", len(p.Digest))
	}
	sig, err := crypto.Sign(p.Digest, key)
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.Finish(sig[:32], sig[32:64], int(sig[64]))
	if err != nil {
		t.Fatalf("Finish: %v", err)
	}
	if res.R != "0x"+hex.EncodeToString(sig[:32]) || res.S != "0x"+hex.EncodeToString(sig[32:64]) || res.RecID != int(sig[64]) {
		t.Errorf("r, s, recid = %s, %s, %d; signature %x", res.R, res.S, res.RecID, sig)
	}
	enc, err := hex.DecodeString(strings.TrimPrefix(res.Encoded, "0x"))
	if err != nil || !strings.HasPrefix(res.Encoded, "0x") || len(enc) != 65 || !bytes.Equal(enc[:64], sig[:64]) || enc[64] != 27+sig[64] {
		t.Errorf("encoded = %s, want 0x r‖s‖%x", res.Encoded, 27+sig[64])
	}
	// What a contract's ecrecover or ethers' verifyMessage does with "encoded": v-27.
	rsv := append(append([]byte{}, enc[:64]...), enc[64]-27)
	pub, err := crypto.SigToPub(p.Digest, rsv)
	if err != nil || crypto.PubkeyToAddress(*pub).Hex() != addr {
		t.Fatalf("signature recovers to %v (%v), want %s", pub, err, addr)
	}
	if raw, err := crypto.Ecrecover(p.Digest, sig); err != nil || !bytes.Equal(raw, crypto.FromECDSAPub(&key.PublicKey)) {
		t.Fatalf("Ecrecover: %v", err)
	}
	return res
}

func wantInvalid(t testing.TB, err error) {
	t.Helper()
	if !errs.Is(err, errs.Invalid) {
		t.Fatalf("err = %v, want kind Invalid", err)
	}
	t.Log(err) // go test -v shows why each bad input was refused
}

func TestAddress(t *testing.T) {
	// Private key 1: its address is a well-known constant.
	one := make([]byte, 32)
	one[31] = 1
	key, err := crypto.ToECDSA(one)
	if err != nil {
		t.Fatal(err)
	}
	for _, pub := range [][]byte{crypto.CompressPubkey(&key.PublicKey), crypto.FromECDSAPub(&key.PublicKey)} {
		got, err := Address(pub)
		if err != nil || got != "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf" {
			t.Errorf("Address(key 1, %d bytes) = %q, %v", len(pub), got, err)
		}
	}
	testKey(t)

	good := crypto.CompressPubkey(&key.PublicKey)
	uncompressed := crypto.FromECDSAPub(&key.PublicKey)
	notOnCurve := append([]byte{2}, bytes.Repeat([]byte{0xff}, 32)...) // x ≥ p
	bad := map[string][]byte{
		"empty":                    nil,
		"32 bytes":                 good[1:],
		"64 bytes (no prefix)":     uncompressed[1:],
		"compressed with 04":       append([]byte{4}, good[1:]...),
		"uncompressed with 02":     append([]byte{2}, uncompressed[1:]...),
		"hybrid 06":                append([]byte{6}, uncompressed[1:]...),
		"x not on curve":           notOnCurve,
		"uncompressed y corrupted": append(append([]byte{}, uncompressed[:64]...), uncompressed[64]^1),
	}
	for name, pub := range bad {
		t.Run("fail/"+name, func(t *testing.T) {
			_, err := Address(pub)
			wantInvalid(t, err)
		})
	}
}

func TestParseAddress(t *testing.T) {
	tests := []struct {
		name, in string
		ok       bool
	}{
		// EIP-55 test vectors.
		{"ok/eip55-1", "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", true},
		{"ok/eip55-2", "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359", true},
		{"ok/eip55-3", "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB", true},
		{"ok/eip55-4", "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb", true},
		{"ok/all-lower", "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed", true},
		{"ok/all-upper", "0x5AAEB6053F3E94C9B9A09F33669435E7EF1BEAED", true},
		{"ok/digits-only", "0x0000000000000000000000000000000000000000", true},
		{"fail/bad-checksum", "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD", false},
		{"fail/bad-checksum-2", "0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", false},
		{"fail/no-prefix", "5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", false},
		{"fail/upper-prefix", "0X5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", false},
		{"fail/short", "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeA", false},
		{"fail/long", "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed00", false},
		{"fail/non-hex", "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeg", false},
		{"fail/empty", "", false},
		{"fail/space", " 0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAe", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := ParseAddress(tt.in)
			if !tt.ok {
				wantInvalid(t, err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.EqualFold(a.Hex(), tt.in) {
				t.Errorf("ParseAddress(%q) = %s", tt.in, a.Hex())
			}
		})
	}
}

func TestHashPayload(t *testing.T) {
	key, addr := testKey(t)
	h := crypto.Keccak256([]byte("countersign"))
	for _, in := range []string{hex.EncodeToString(h), "0x" + hex.EncodeToString(h), "0x" + strings.ToUpper(hex.EncodeToString(h))} {
		p, err := HashPayload(in)
		if err != nil {
			t.Fatalf("HashPayload(%q): %v", in, err)
		}
		if !bytes.Equal(p.Digest, h) {
			t.Fatalf("digest = %x, want the hash itself", p.Digest)
		}
		if res := signPayload(t, key, addr, p); res.SignedData != "" {
			t.Errorf("signedData = %q for kind Hash", res.SignedData)
		}
	}
	bad := map[string]string{
		"31 bytes":   hex.EncodeToString(h[:31]),
		"33 bytes":   hex.EncodeToString(append(h, 0)),
		"non-hex":    strings.Repeat("zz", 32),
		"odd length": hex.EncodeToString(h)[1:],
		"empty":      "",
		"0x only":    "0x",
		"spaces":     " " + hex.EncodeToString(h),
		"double 0x":  "0x0x" + hex.EncodeToString(h)[4:],
	}
	for name, in := range bad {
		t.Run("fail/"+name, func(t *testing.T) {
			_, err := HashPayload(in)
			wantInvalid(t, err)
		})
	}
}

func TestMessagePayload(t *testing.T) {
	key, addr := testKey(t)
	tests := []struct {
		name, in string
		msg      []byte
	}{
		{"hello", "0x" + hex.EncodeToString([]byte("Hello, world")), []byte("Hello, world")},
		{"dfns-docs", "0x49206c6f76652044666e73", []byte("I love Dfns")},
		{"no-prefix", hex.EncodeToString([]byte{0, 1, 2, 0xff}), []byte{0, 1, 2, 0xff}},
		{"empty", "0x", []byte{}},
		{"32-bytes", "0x" + strings.Repeat("ab", 32), bytes.Repeat([]byte{0xab}, 32)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := MessagePayload(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if want := accounts.TextHash(tt.msg); !bytes.Equal(p.Digest, want) {
				t.Fatalf("digest = %x, want accounts.TextHash = %x", p.Digest, want)
			}
			// And by hand, EIP-191 version 0x45.
			manual := crypto.Keccak256([]byte("\x19Ethereum Signed Message:\n" + itoa(len(tt.msg)) + string(tt.msg)))
			if !bytes.Equal(p.Digest, manual) {
				t.Fatalf("digest = %x, want %x", p.Digest, manual)
			}
			if res := signPayload(t, key, addr, p); res.SignedData != "" {
				t.Errorf("signedData = %q for kind Message", res.SignedData)
			}
		})
	}
	for name, in := range map[string]string{"empty": "", "non-hex": "0xzz", "odd": "0x123", "text": "hello"} {
		t.Run("fail/"+name, func(t *testing.T) {
			_, err := MessagePayload(in)
			wantInvalid(t, err)
		})
	}
}

func itoa(n int) string { return big.NewInt(int64(n)).String() }

func TestFinishRejectsBadSignatures(t *testing.T) {
	p, err := HashPayload(strings.Repeat("11", 32))
	if err != nil {
		t.Fatal(err)
	}
	r, s := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	for _, c := range []struct {
		r, s  []byte
		recid int
	}{{r[:31], s, 0}, {r, append(s, 0), 0}, {r, s, 2}, {r, s, -1}, {nil, nil, 0}} {
		if _, err := p.Finish(c.r, c.s, c.recid); err == nil {
			t.Errorf("Finish(%d, %d, %d) accepted", len(c.r), len(c.s), c.recid)
		}
	}
}

// The unredacted Eip712 response in the Dfns docs: recid 1 gives encoded r‖s‖1c.
func TestEncodedMatchesDfnsDocs(t *testing.T) {
	r, _ := hex.DecodeString("b23c2cfb6d409f5a55ced08f89ae70f3fe89403a5ba907c367545499874f1c7f")
	s, _ := hex.DecodeString("49992f242a21ae0692c24b43393336744ddc08459d936b6a70542d79df4f66f0")
	res, err := result(r, s, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := "0xb23c2cfb6d409f5a55ced08f89ae70f3fe89403a5ba907c367545499874f1c7f49992f242a21ae0692c24b43393336744ddc08459d936b6a70542d79df4f66f01c"
	if res.Encoded != want || res.R != "0x"+hex.EncodeToString(r) || res.S != "0x"+hex.EncodeToString(s) || res.RecID != 1 {
		t.Errorf("result = %+v", res)
	}
}

// mailEIP is the example of EIP-712 itself (eth_signTypedData v4 form).
const mailEIP = `{
  "types": {
    "EIP712Domain": [
      {"name": "name", "type": "string"},
      {"name": "version", "type": "string"},
      {"name": "chainId", "type": "uint256"},
      {"name": "verifyingContract", "type": "address"}
    ],
    "Person": [{"name": "name", "type": "string"}, {"name": "wallet", "type": "address"}],
    "Mail": [{"name": "from", "type": "Person"}, {"name": "to", "type": "Person"}, {"name": "contents", "type": "string"}]
  },
  "primaryType": "Mail",
  "domain": {"name": "Ether Mail", "version": "1", "chainId": 1, "verifyingContract": "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"},
  "message": {
    "from": {"name": "Cow", "wallet": "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},
    "to": {"name": "Bob", "wallet": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},
    "contents": "Hello, Bob!"
  }
}`

// mailDfns is the same document as ethers' signTypedData sends it through the Dfns SDK:
// no EIP712Domain, no primaryType, plus the other members of the request body.
const mailDfns = `{
  "kind": "Eip712",
  "types": {
    "Person": [{"name": "name", "type": "string"}, {"name": "wallet", "type": "address"}],
    "Mail": [{"name": "from", "type": "Person"}, {"name": "to", "type": "Person"}, {"name": "contents", "type": "string"}]
  },
  "domain": {"name": "Ether Mail", "version": "1", "chainId": 1, "verifyingContract": "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"},
  "message": {
    "from": {"name": "Cow", "wallet": "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},
    "to": {"name": "Bob", "wallet": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},
    "contents": "Hello, Bob!"
  }
}`

// dfnsDocsEip712 is the request of the Dfns docs' Eip712 example (with a salt).
const dfnsDocsEip712 = `{
  "types": {
    "Person": [{ "name": "name", "type": "string" }, { "name": "wallet", "type": "address" }],
    "Mail": [{ "name": "from", "type": "Person" }, { "name": "to", "type": "Person" }, { "name": "contents", "type": "string" }]
  },
  "domain": {
    "name": "Ether Mail", "version": "1", "chainId": 1,
    "verifyingContract": "0x1b352de7a926ebd1bf52194dab487c2cb0793a9b",
    "salt": "0xf2d857f4a3edcb9b78b4d503bfe733db1e3f6cdc2b7971ee739626c97e86a558"
  },
  "message": {
    "from": { "name": "Chris", "wallet": "0x00e3495cf6af59008f22ffaf32d4c92ac33dac47" },
    "to": { "name": "Bob", "wallet": "0xcc0ee1a1c5e788b61916c8f1c96c960f9a9d3db7" },
    "contents": "Hello, Bob!"
  }
}`

const mailDigest = "be609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2"

func TestTypedDataPayload(t *testing.T) {
	key, addr := testKey(t)
	tests := []struct {
		name, doc, digest string
	}{
		{"eip-712-mail", mailEIP, mailDigest},
		{"dfns-body-derives-domain-and-primary", mailDfns, mailDigest},
		{"chainId-as-decimal-string", strings.Replace(mailDfns, `"chainId": 1`, `"chainId": "1"`, 1), mailDigest},
		{"chainId-as-hex-string", strings.Replace(mailDfns, `"chainId": 1`, `"chainId": "0x1"`, 1), mailDigest},
		{"lower-case-addresses", strings.Replace(mailDfns, "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826", "0xcd2a3d9f938e13cd947ec05abc7fe734df8dd826", 1), mailDigest},
		{"null-domain-member-is-absent", strings.Replace(mailDfns, `"version": "1",`, `"version": "1", "salt": null,`, 1), mailDigest},
		{"explicit-primary-without-domain-type", strings.Replace(mailDfns, `"kind": "Eip712",`, `"primaryType": "Mail",`, 1), mailDigest},
		{"dfns-docs-example-with-salt", dfnsDocsEip712, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := TypedDataPayload(json.RawMessage(tt.doc))
			if err != nil {
				t.Fatal(err)
			}
			if tt.digest != "" && hex.EncodeToString(p.Digest) != tt.digest {
				t.Fatalf("digest = %x, want %s", p.Digest, tt.digest)
			}
			if res := signPayload(t, key, addr, p); res.SignedData != "" {
				t.Errorf("signedData = %q for kind Eip712", res.SignedData)
			}
		})
	}

	// Cross-check the derived EIP712Domain (with salt) against go-ethereum given it in full.
	t.Run("salt-domain-matches-geth", func(t *testing.T) {
		var td apitypes.TypedData
		full := strings.Replace(dfnsDocsEip712, `"types": {`, `"primaryType": "Mail", "types": {
		  "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
		    {"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"}, {"name": "salt", "type": "bytes32"}],`, 1)
		if err := json.Unmarshal([]byte(full), &td); err != nil {
			t.Fatal(err)
		}
		want, _, err := apitypes.TypedDataAndHash(td)
		if err != nil {
			t.Fatal(err)
		}
		p, err := TypedDataPayload(json.RawMessage(dfnsDocsEip712))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(p.Digest, want) {
			t.Fatalf("digest = %x, go-ethereum says %x", p.Digest, want)
		}
	})

	t.Run("arrays-and-integers", func(t *testing.T) {
		doc := `{"types": {
		    "Order": [{"name": "ids", "type": "uint256[]"}, {"name": "pair", "type": "int8[2]"},
		              {"name": "grid", "type": "uint16[2][]"}, {"name": "tags", "type": "bytes32[]"},
		              {"name": "blob", "type": "bytes"}, {"name": "ok", "type": "bool"}, {"name": "items", "type": "Item[]"}],
		    "Item": [{"name": "who", "type": "address"}, {"name": "amount", "type": "uint128"}]},
		  "domain": {"chainId": 137},
		  "message": {"ids": [1, "2", "0x3"], "pair": [-128, 127], "grid": [[1, 2], [65535, 0]],
		    "tags": ["0x` + strings.Repeat("00", 32) + `"], "blob": "0x", "ok": true,
		    "items": [{"who": "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "amount": "340282366920938463463374607431768211455"}]}}`
		p, err := TypedDataPayload(json.RawMessage(doc))
		if err != nil {
			t.Fatal(err)
		}
		signPayload(t, key, addr, p)
	})
}

func TestTypedDataPayloadRejects(t *testing.T) {
	mail := func(old, new string) string {
		if !strings.Contains(mailDfns, old) {
			t.Fatalf("test bug: %q not in mailDfns", old)
		}
		return strings.Replace(mailDfns, old, new, 1)
	}
	order := func(fieldType, value string) string {
		return `{"types": {"T": [{"name": "v", "type": "` + fieldType + `"}]}, "domain": {"name": "x"}, "message": {"v": ` + value + `}}`
	}
	tests := map[string]string{
		"not-json":                  `{"types":`,
		"array":                     `[]`,
		"null":                      `null`,
		"missing-types":             `{"domain": {"name": "x"}, "message": {}}`,
		"types-null":                mail(`"types": {`, `"types": null, "x": {`),
		"types-not-object":          `{"types": [], "domain": {"name": "x"}, "message": {}}`,
		"types-empty":               `{"types": {}, "domain": {"name": "x"}, "message": {}}`,
		"only-domain-type":          `{"types": {"EIP712Domain": [{"name": "name", "type": "string"}]}, "domain": {"name": "x"}, "message": {}}`,
		"type-fields-null":          mail(`"Person": [{"name": "name", "type": "string"}, {"name": "wallet", "type": "address"}]`, `"Person": null`),
		"field-without-type":        mail(`{"name": "wallet", "type": "address"}`, `{"name": "wallet"}`),
		"field-extra-member":        mail(`{"name": "wallet", "type": "address"}`, `{"name": "wallet", "type": "address", "x": 1}`),
		"duplicate-field":           mail(`{"name": "wallet", "type": "address"}`, `{"name": "name", "type": "address"}`),
		"bad-field-name":            mail(`{"name": "wallet", "type": "address"}`, `{"name": "wal let", "type": "address"}`),
		"bad-type-name":             mail(`"Person": [`, `"Per(son": [`),
		"primitive-type-name":       mail(`"Person": [`, `"uint256": [`),
		"missing-referenced-type":   mail(`{"name": "to", "type": "Person"}`, `{"name": "to", "type": "Persona"}`),
		"unsized-uint":              mail(`{"name": "contents", "type": "string"}`, `{"name": "contents", "type": "uint"}`),
		"uint7":                     order("uint7", "1"),
		"bytes33":                   order("bytes33", `"0x00"`),
		"malformed-array-type":      order("uint8[", "[]"),
		"zero-length-array-type":    order("uint8[0]", "[]"),
		"unknown-primary-type":      strings.Replace(mailEIP, `"primaryType": "Mail"`, `"primaryType": "Letter"`, 1),
		"primary-is-domain":         strings.Replace(mailEIP, `"primaryType": "Mail"`, `"primaryType": "EIP712Domain"`, 1),
		"ambiguous-primary":         mail(`"Person": [`, `"Extra": [{"name": "a", "type": "bool"}], "Person": [`),
		"no-root-type":              `{"types": {"A": [{"name": "b", "type": "B"}], "B": [{"name": "a", "type": "A"}]}, "domain": {"name": "x"}, "message": {}}`,
		"missing-domain":            `{"types": {"T": []}, "message": {}}`,
		"domain-not-object":         `{"types": {"T": []}, "domain": "x", "message": {}}`,
		"domain-empty":              `{"types": {"T": []}, "domain": {}, "message": {}}`,
		"domain-all-null":           `{"types": {"T": []}, "domain": {"name": null}, "message": {}}`,
		"domain-unknown-field":      mail(`"version": "1",`, `"version": "1", "owner": "me",`),
		"domain-chainId-float":      mail(`"chainId": 1`, `"chainId": 1.5`),
		"domain-chainId-negative":   mail(`"chainId": 1`, `"chainId": -1`),
		"domain-chainId-bool":       mail(`"chainId": 1`, `"chainId": true`),
		"domain-bad-contract":       mail(`0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC`, `0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCccccccCC`),
		"domain-short-salt":         mail(`"version": "1",`, `"version": "1", "salt": "0x1234",`),
		"missing-message":           `{"types": {"T": []}, "domain": {"name": "x"}}`,
		"message-not-object":        `{"types": {"T": []}, "domain": {"name": "x"}, "message": [1]}`,
		"message-missing-field":     mail(`"to": {"name": "Bob", "wallet": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},`, ``),
		"message-extra-field":       mail(`"contents": "Hello, Bob!"`, `"contents": "Hello, Bob!", "cc": "Alice"`),
		"message-null-field":        mail(`"contents": "Hello, Bob!"`, `"contents": null`),
		"address-bad-checksum":      mail(`0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826`, `0xcD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826`),
		"address-not-hex":           mail(`0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826`, `0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD82g`),
		"address-number":            mail(`"0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"`, `5`),
		"struct-given-string":       mail(`"to": {"name": "Bob", "wallet": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"}`, `"to": "Bob"`),
		"string-given-number":       mail(`"contents": "Hello, Bob!"`, `"contents": 5`),
		"uint8-overflow":            order("uint8", "256"),
		"uint8-negative":            order("uint8", "-1"),
		"int8-underflow":            order("int8", "-129"),
		"int8-overflow-string":      order("int8", `"128"`),
		"uint256-overflow":          order("uint256", `"0x1`+strings.Repeat("0", 64)+`"`),
		"int-float":                 order("uint64", "1.5"),
		"int-exponent":              order("uint64", "1e3"),
		"int-bad-string":            order("uint64", `"12abc"`),
		"int-empty-string":          order("uint64", `""`),
		"int-plus-string":           order("uint64", `"+1"`),
		"int-huge-literal":          order("uint256", strings.Repeat("9", 100)),
		"bool-as-string":            order("bool", `"true"`),
		"bytes-no-prefix":           order("bytes", `"00"`),
		"bytes-odd":                 order("bytes", `"0x0"`),
		"bytes4-wrong-length":       order("bytes4", `"0x0102"`),
		"fixed-array-wrong-length":  order("uint8[2]", "[1]"),
		"array-given-object":        order("uint8[]", "{}"),
		"array-null-element":        order("string[]", `["a", null]`),
		"nested-array-null-element": order("uint8[][]", `[[1], null]`),
		"struct-array-null-element": `{"types": {"T": [{"name": "v", "type": "U[]"}], "U": [{"name": "x", "type": "bool"}]}, "domain": {"name": "x"}, "message": {"v": [null]}}`,
		"too-deep":                  `{"types": {"T": [{"name": "v", "type": "uint8` + strings.Repeat("[]", 40) + `"}]}, "domain": {"name": "x"}, "message": {"v": ` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}}`,
		"primary-type-number":       strings.Replace(mailEIP, `"primaryType": "Mail"`, `"primaryType": 5`, 1),
		"domain-type-wrong-type":    strings.Replace(mailEIP, `{"name": "chainId", "type": "uint256"}`, `{"name": "chainId", "type": "uint64"}`, 1),
		"domain-type-struct-member": strings.Replace(mailEIP, `{"name": "version", "type": "string"}`, `{"name": "version", "type": "Person"}`, 1),
		"domain-type-missing-value": strings.Replace(mailEIP, `"version": "1", `, ``, 1),
	}
	for name, doc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := TypedDataPayload(json.RawMessage(doc))
			wantInvalid(t, err)
		})
	}
}

// Unsigned encodings as ethers and viem produce them, built from go-ethereum types.

func unsignedLegacy(tx *types.LegacyTx, chainID *big.Int) []byte {
	fields := []any{tx.Nonce, tx.GasPrice, tx.Gas, tx.To, tx.Value, tx.Data}
	if chainID != nil {
		fields = append(fields, chainID, uint(0), uint(0))
	}
	b, err := rlp.EncodeToBytes(fields)
	if err != nil {
		panic(err)
	}
	return b
}

func unsignedTyped(typ byte, fields ...any) []byte {
	b, err := rlp.EncodeToBytes(fields)
	if err != nil {
		panic(err)
	}
	return append([]byte{typ}, b...)
}

func unsigned1559(tx *types.DynamicFeeTx) []byte {
	return unsignedTyped(types.DynamicFeeTxType, tx.ChainID, tx.Nonce, tx.GasTipCap, tx.GasFeeCap, tx.Gas, tx.To, tx.Value, tx.Data, tx.AccessList)
}

func TestTransactionPayload(t *testing.T) {
	key, addr := testKey(t)
	const chainID = 11155111
	cid := big.NewInt(chainID)
	to := common.HexToAddress("0xa238b6008Bc2FBd9E386A5d4784511980cE504Cd")
	gwei := big.NewInt(1_000_000_000)
	legacy := &types.LegacyTx{Nonce: 7, GasPrice: new(big.Int).Mul(gwei, big.NewInt(20)), Gas: 21000, To: &to, Value: big.NewInt(1), Data: nil}
	create := &types.LegacyTx{Nonce: 0, GasPrice: gwei, Gas: 100000, To: nil, Value: new(big.Int), Data: []byte{0x60, 0x80, 0x60, 0x40}}
	dyn := &types.DynamicFeeTx{ChainID: cid, Nonce: 3, GasTipCap: new(big.Int).Mul(gwei, big.NewInt(5)), GasFeeCap: new(big.Int).Mul(gwei, big.NewInt(20)),
		Gas: 21000, To: &to, Value: big.NewInt(1), AccessList: types.AccessList{{Address: to, StorageKeys: []common.Hash{{1}}}}}
	al := &types.AccessListTx{ChainID: cid, Nonce: 9, GasPrice: gwei, Gas: 50000, To: &to, Value: big.NewInt(2), Data: []byte{1, 2, 3},
		AccessList: types.AccessList{{Address: to}}}
	authKey, _ := crypto.GenerateKey()
	auth, err := types.SignSetCode(authKey, types.SetCodeAuthorization{ChainID: *uint256.NewInt(chainID), Address: to, Nonce: 1})
	if err != nil {
		t.Fatal(err)
	}
	setCode := &types.SetCodeTx{ChainID: uint256.NewInt(chainID), Nonce: 4, GasTipCap: uint256.NewInt(1), GasFeeCap: uint256.NewInt(2), Gas: 80000,
		To: to, Value: uint256.NewInt(0), AuthList: []types.SetCodeAuthorization{auth}}

	tests := []struct {
		name string
		raw  []byte
		want *types.Transaction // unsigned, for field comparison
	}{
		{"legacy-pre-eip155-form", unsignedLegacy(legacy, nil), types.NewTx(legacy)},
		{"legacy-eip155-form", unsignedLegacy(legacy, cid), types.NewTx(legacy)},
		{"legacy-contract-creation", unsignedLegacy(create, cid), types.NewTx(create)},
		{"eip1559", unsigned1559(dyn), types.NewTx(dyn)},
		{"eip2930", unsignedTyped(types.AccessListTxType, al.ChainID, al.Nonce, al.GasPrice, al.Gas, al.To, al.Value, al.Data, al.AccessList), types.NewTx(al)},
		{"eip7702", unsignedTyped(types.SetCodeTxType, setCode.ChainID, setCode.Nonce, setCode.GasTipCap, setCode.GasFeeCap, setCode.Gas,
			setCode.To, setCode.Value, setCode.Data, setCode.AccessList, setCode.AuthList), types.NewTx(setCode)},
	}
	signer := types.LatestSignerForChainID(cid)
	for _, tt := range tests {
		for _, prefix := range []string{"0x", ""} {
			t.Run(tt.name+"/"+map[string]string{"0x": "0x", "": "bare"}[prefix], func(t *testing.T) {
				p, err := TransactionPayload(prefix+hex.EncodeToString(tt.raw), chainID)
				if err != nil {
					t.Fatal(err)
				}
				if want := signer.Hash(tt.want); !bytes.Equal(p.Digest, want[:]) {
					t.Fatalf("digest = %x, want signer hash %x", p.Digest, want)
				}
				res := signPayload(t, key, addr, p)
				if !strings.HasPrefix(res.SignedData, "0x") {
					t.Fatalf("signedData = %q", res.SignedData)
				}
				raw, err := hex.DecodeString(res.SignedData[2:])
				if err != nil {
					t.Fatal(err)
				}
				var got types.Transaction
				if err := got.UnmarshalBinary(raw); err != nil {
					t.Fatalf("UnmarshalBinary(signedData): %v", err)
				}
				from, err := types.Sender(types.LatestSignerForChainID(cid), &got)
				if err != nil || from.Hex() != addr {
					t.Fatalf("sender = %s, %v; want %s", from.Hex(), err, addr)
				}
				w := tt.want
				if got.Type() != w.Type() || got.Nonce() != w.Nonce() || got.Gas() != w.Gas() || got.Value().Cmp(w.Value()) != 0 ||
					!bytes.Equal(got.Data(), w.Data()) || (got.To() == nil) != (w.To() == nil) || (got.To() != nil && *got.To() != *w.To()) ||
					got.GasPrice().Cmp(w.GasPrice()) != 0 || got.GasTipCap().Cmp(w.GasTipCap()) != 0 || len(got.AccessList()) != len(w.AccessList()) ||
					len(got.SetCodeAuthorizations()) != len(w.SetCodeAuthorizations()) {
					t.Errorf("signed tx differs from the unsigned one: %s", res.SignedData)
				}
				if got.ChainId().Cmp(cid) != 0 || !got.Protected() {
					t.Errorf("chain id %s, protected %v", got.ChainId(), got.Protected())
				}
			})
		}
	}
}

// The Transaction example of the Dfns docs: same unsigned tx, r, s and recid 0 must give
// the documented signedData (whose last 8 bytes the docs redact with zeros).
func TestTransactionPayloadDfnsDocs(t *testing.T) {
	p, err := TransactionPayload("0x02e783aa36a71603850cbab1770382520894e5a2ebc128e262ab1e3bd02bffbe16911adfbffb0180c0", 11155111)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := hex.DecodeString("05e365d4304eaa78516eb309bff91f8c12e5445a431e3f2428239678d0150c6c")
	s, _ := hex.DecodeString("47e0765c439fb42d57767910865d240964b7b09f2b2f74d8f14a63da7ce5a1fe")
	res, err := p.Finish(r, s, 0)
	if err != nil {
		t.Fatal(err)
	}
	doc := "0x02f86a83aa36a71603850cbab1770382520894e5a2ebc128e262ab1e3bd02bffbe16911adfbffb0180c080a005e365d4304eaa78516eb309bff91f8c12e5445a431e3f2428239678d0150c6ca047e0765c439fb42d57767910865d240964b7b09f2b2f74d80000000000000000"
	if len(res.SignedData) != len(doc) || !strings.HasPrefix(res.SignedData, doc[:len(doc)-16]) {
		t.Errorf("signedData = %s\n       docs = %s", res.SignedData, doc)
	}
}

func TestTransactionPayloadRejects(t *testing.T) {
	const chainID = 11155111
	cid := big.NewInt(chainID)
	to := common.HexToAddress("0xa238b6008Bc2FBd9E386A5d4784511980cE504Cd")
	key, _ := crypto.GenerateKey()
	legacy := &types.LegacyTx{Nonce: 1, GasPrice: big.NewInt(1), Gas: 21000, To: &to, Value: big.NewInt(1)}
	dyn := &types.DynamicFeeTx{ChainID: cid, Nonce: 1, GasTipCap: big.NewInt(1), GasFeeCap: big.NewInt(2), Gas: 21000, To: &to, Value: big.NewInt(1)}
	signedHex := func(inner types.TxData) string {
		tx, err := types.SignNewTx(key, types.LatestSignerForChainID(cid), inner)
		if err != nil {
			t.Fatal(err)
		}
		b, err := tx.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		return hex.EncodeToString(b)
	}
	// Pre-EIP-155 signed legacy: v = 27/28 in the 9-item form.
	homestead, err := types.SignNewTx(key, types.HomesteadSigner{}, legacy)
	if err != nil {
		t.Fatal(err)
	}
	homesteadRaw, _ := homestead.MarshalBinary()
	good1559 := unsigned1559(dyn)
	otherChain := *dyn
	otherChain.ChainID = big.NewInt(1)
	over256 := new(big.Int).Lsh(big.NewInt(1), 256)

	tests := map[string]string{
		"empty":                   "",
		"0x-only":                 "0x",
		"non-hex":                 "0xzz",
		"odd-length":              hex.EncodeToString(good1559)[1:],
		"malformed-rlp":           "c5010203",
		"not-a-list":              "8401020304",
		"truncated":               hex.EncodeToString(good1559[:len(good1559)-3]),
		"trailing-bytes":          hex.EncodeToString(append(append([]byte{}, good1559...), 0)),
		"type-byte-only":          "02",
		"blob-type":               "03" + hex.EncodeToString(good1559[1:]),
		"unknown-type":            "05" + hex.EncodeToString(good1559[1:]),
		"legacy-7-items":          hex.EncodeToString(mustRLP([]any{uint(1), uint(1), uint(21000), to, uint(1), []byte{}, uint(1)})),
		"legacy-5-items":          hex.EncodeToString(mustRLP([]any{uint(1), uint(1), uint(21000), to, uint(1)})),
		"legacy-bad-to":           hex.EncodeToString(mustRLP([]any{uint(1), uint(1), uint(21000), []byte{1, 2, 3}, uint(1), []byte{}})),
		"legacy-non-canonical":    hex.EncodeToString(mustRLP([]any{uint(1), []byte{0, 1}, uint(21000), to, uint(1), []byte{}})),
		"legacy-value-over-256":   hex.EncodeToString(mustRLP([]any{uint(1), uint(1), uint(21000), to, over256, []byte{}})),
		"legacy-signed-eip155":    signedHex(legacy),
		"legacy-signed-homestead": hex.EncodeToString(homesteadRaw),
		"legacy-wrong-chain":      hex.EncodeToString(unsignedLegacy(legacy, big.NewInt(1))),
		"eip1559-signed":          signedHex(dyn),
		"eip1559-wrong-chain":     hex.EncodeToString(unsigned1559(&otherChain)),
		"eip1559-8-items":         hex.EncodeToString(unsignedTyped(2, cid, uint(1), uint(1), uint(2), uint(21000), to, uint(1), []byte{})),
		"eip1559-fee-over-256":    hex.EncodeToString(unsignedTyped(2, cid, uint(1), uint(1), over256, uint(21000), to, uint(1), []byte{}, types.AccessList{})),
		"eip1559-bad-access-list": hex.EncodeToString(unsignedTyped(2, cid, uint(1), uint(1), uint(2), uint(21000), to, uint(1), []byte{}, []any{uint(5)})),
		"eip2930-wrong-chain":     hex.EncodeToString(unsignedTyped(1, big.NewInt(1), uint(1), uint(1), uint(21000), to, uint(1), []byte{}, types.AccessList{})),
		"eip7702-empty-auth-list": hex.EncodeToString(unsignedTyped(4, cid, uint(1), uint(1), uint(2), uint(21000), to, uint(0), []byte{}, types.AccessList{}, []types.SetCodeAuthorization{})),
		"eip7702-no-to":           hex.EncodeToString(unsignedTyped(4, cid, uint(1), uint(1), uint(2), uint(21000), []byte{}, uint(0), []byte{}, types.AccessList{}, []types.SetCodeAuthorization{{}})),
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := TransactionPayload(in, chainID)
			wantInvalid(t, err)
		})
	}
	if _, err := TransactionPayload(hex.EncodeToString(good1559), 0); err == nil || errs.Is(err, errs.Invalid) {
		t.Errorf("chain id 0: err = %v, want an internal error", err)
	}
}

func mustRLP(v any) []byte {
	b, err := rlp.EncodeToBytes(v)
	if err != nil {
		panic(err)
	}
	return b
}

// fuzzKey is fixed so that fuzzing is deterministic.
var fuzzKey, _ = crypto.ToECDSA(bytes.Repeat([]byte{0x42}, 32))

func FuzzTransactionPayload(f *testing.F) {
	to := common.HexToAddress("0xa238b6008Bc2FBd9E386A5d4784511980cE504Cd")
	cid := big.NewInt(11155111)
	f.Add("0x02e783aa36a71603850cbab1770382520894e5a2ebc128e262ab1e3bd02bffbe16911adfbffb0180c0", uint64(11155111))
	f.Add(hex.EncodeToString(unsignedLegacy(&types.LegacyTx{Nonce: 1, GasPrice: big.NewInt(1), Gas: 21000, To: &to, Value: big.NewInt(1)}, nil)), uint64(1))
	f.Add(hex.EncodeToString(unsignedLegacy(&types.LegacyTx{Nonce: 1, GasPrice: big.NewInt(1), Gas: 21000, Value: big.NewInt(1), Data: []byte{1}}, cid)), uint64(11155111))
	f.Add(hex.EncodeToString(unsignedTyped(1, cid, uint(1), uint(1), uint(21000), to, uint(1), []byte{}, types.AccessList{{Address: to, StorageKeys: []common.Hash{{2}}}})), uint64(11155111))
	f.Add(hex.EncodeToString(unsignedTyped(4, cid, uint(1), uint(1), uint(2), uint(21000), to, uint(0), []byte{}, types.AccessList{}, []types.SetCodeAuthorization{{}})), uint64(11155111))
	f.Add("c0", uint64(1))
	f.Add("0x", uint64(1))
	addr := crypto.PubkeyToAddress(fuzzKey.PublicKey)
	f.Fuzz(func(t *testing.T, txHex string, chainID uint64) {
		p, err := TransactionPayload(txHex, chainID)
		if err != nil {
			if chainID != 0 && !errs.Is(err, errs.Invalid) {
				t.Fatalf("error of kind %v: %v", errs.KindOf(err), err)
			}
			return
		}
		sig, err := crypto.Sign(p.Digest, fuzzKey)
		if err != nil {
			t.Fatal(err)
		}
		res, err := p.Finish(sig[:32], sig[32:64], int(sig[64]))
		if err != nil {
			t.Fatalf("Finish: %v", err)
		}
		raw, err := hex.DecodeString(strings.TrimPrefix(res.SignedData, "0x"))
		if err != nil {
			t.Fatal(err)
		}
		var tx types.Transaction
		if err := tx.UnmarshalBinary(raw); err != nil {
			t.Fatalf("signedData does not decode: %v", err)
		}
		from, err := types.Sender(types.LatestSignerForChainID(new(big.Int).SetUint64(chainID)), &tx)
		if err != nil || from != addr {
			t.Fatalf("sender %s, %v", from, err)
		}
	})
}

func FuzzTypedDataPayload(f *testing.F) {
	for _, seed := range []string{mailEIP, mailDfns, dfnsDocsEip712,
		`{"types": {"T": [{"name": "v", "type": "uint8[2][]"}]}, "domain": {"chainId": "0x1"}, "message": {"v": [[1, 2]]}}`,
		`{"types": {"T": [{"name": "v", "type": "bytes"}, {"name": "w", "type": "int256"}]}, "domain": {"salt": "0x` + strings.Repeat("ab", 32) + `"}, "message": {"v": "0x00", "w": "-5"}}`,
		`{"types": {"T": [{"name": "v", "type": "U[]"}], "U": [{"name": "x", "type": "bool"}]}, "domain": {"name": "x"}, "message": {"v": [{"x": true}]}}`,
		`{"types": {"A": [{"name": "a", "type": "A[]"}]}, "domain": {"name": "x"}, "message": {"a": [{"a": []}]}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, err := TypedDataPayload(json.RawMessage(raw))
		if err != nil {
			if !errs.Is(err, errs.Invalid) {
				t.Fatalf("error of kind %v: %v", errs.KindOf(err), err)
			}
			return
		}
		if len(p.Digest) != 32 {
			t.Fatalf("digest of %d bytes", len(p.Digest))
		}
	})
}
