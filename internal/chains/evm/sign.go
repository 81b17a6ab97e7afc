// What Dfns returns for a signature on an EVM wallet, and therefore what Finish builds.
//
// Sources read (no code or text copied):
//   - dfns/dfns-api-docs api-docs/wallets/generate-signature-from-wallet/evm-generate-signature.md
//     (versions 16c96c69 and f7d337e1; repo HEAD 638a284, 2024-10-23): one 200-response example
//     per kind (Transaction, Message, Eip712, Hash).
//   - dfns/dfns-api-docs api-docs/wallets/get-wallet-signature-request-by-id.md and
//     list-wallet-signature-requests.md: the same Eip712 example, unredacted.
//   - dfns/dfns-api-docs .../tron-generate-signature.md (another secp256k1 chain, same layout) and
//     .../bitcoin-generate-signature.md, .../xrpledger-aka-ripple-generate-signature.md (DER
//     there): "encoded" is chain-specific, not one format for all ECDSA chains.
//   - dfns/dfns-sdk-ts packages/sdk/generated/wallets/types.ts (0.5.8): signature is
//     {r, s, recid?, encoded?}, plus signedData?: string on the request object.
//   - dfns/dfns-sdk-ts packages/lib-ethersjs6/index.ts and packages/lib-viem/index.ts: the official
//     EVM signers ignore "encoded"; they rebuild v as 27 or 28 from recid (so recid must be there),
//     and lib-ethersjs6 returns "signedData" untouched as the signed transaction (so it must be
//     ready for eth_sendRawTransaction). For Eip712 they send types without EIP712Domain and
//     without primaryType (ethers' signTypedData arguments), domain.chainId as a JSON number and
//     salt as 0x-hex.
//   - dfns/dfns-sdk-go keys/types.go: signature is an untyped map, signedData *string.
//
// Findings, for every kind on an EVM network:
//   - signature.r, signature.s: "0x" + 64 lower-case hex digits (32 bytes each, zero-padded).
//   - signature.recid: 0 or 1, the secp256k1 recovery id (the y parity of R).
//   - signature.encoded: "0x" + hex of the 65 bytes r ‖ s ‖ v with v = 27 + recid. The one
//     unredacted EVM example (Eip712, recid 1) ends in 0x1c, and Tron's (recid 1) too; the
//     Hash/Message/Transaction examples are redacted (zero tail) but have the same 65-byte length.
//     For a legacy Transaction we still use 27 + recid, not the EIP-155 v: no source shows
//     otherwise (UNCONFIRMED), and the SDK clients never read this field.
//   - signedData: only for kind Transaction, the signed transaction as "0x"-hex: the EIP-2718
//     envelope (type byte ‖ RLP with yParity = recid) for typed transactions, as in the example
//     "0x02f86a…c080a0<r>a0<s>", or the RLP list with the EIP-155 v for legacy ones. Message,
//     Eip712 and Hash responses carry no signedData.

package evm

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/ethereum/go-ethereum/accounts"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/math"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/rlp"
	"github.com/ethereum/go-ethereum/signer/core/apitypes"
	"github.com/holiman/uint256"

	"github.com/countersign/countersign/internal/errs"
)

// Address returns the EIP-55 checksummed address of a secp256k1 public key (33-byte
// compressed or 65-byte uncompressed).
func Address(pub []byte) (string, error) {
	ok := (len(pub) == 33 && (pub[0] == 2 || pub[0] == 3)) || (len(pub) == 65 && pub[0] == 4)
	if !ok {
		return "", errs.E(errs.Invalid, "public key must be a 33-byte compressed or 65-byte uncompressed secp256k1 key", nil)
	}
	key, err := secp256k1.ParsePubKey(pub)
	if err != nil {
		return "", errs.E(errs.Invalid, "public key is not a point on secp256k1", err)
	}
	// The address is the last 20 bytes of keccak256(X ‖ Y) (yellow paper, eq. 284).
	h := crypto.Keccak256(key.SerializeUncompressed()[1:])
	return common.BytesToAddress(h[12:]).Hex(), nil
}

// ParseAddress accepts "0x" + 40 hex digits. Mixed case must pass the EIP-55 checksum;
// all-lower and all-upper case carry no checksum and are accepted.
func ParseAddress(s string) (common.Address, error) {
	if len(s) != 42 || !strings.HasPrefix(s, "0x") {
		return common.Address{}, errs.E(errs.Invalid, "address must be 0x followed by 40 hex digits", nil)
	}
	b, err := hex.DecodeString(s[2:])
	if err != nil {
		return common.Address{}, errs.E(errs.Invalid, "address must be 0x followed by 40 hex digits", nil)
	}
	a := common.BytesToAddress(b)
	digits := s[2:]
	if digits != strings.ToLower(digits) && digits != strings.ToUpper(digits) && digits != a.Hex()[2:] {
		return common.Address{}, errs.E(errs.Invalid, "address has an invalid EIP-55 checksum", nil)
	}
	return a, nil
}

// Payload is what to sign for one signature request and how to finish it.
type Payload struct {
	Digest []byte // the 32 bytes the key signs
	// Finish builds the response fields from the secp256k1 signature (r, s 32 bytes each,
	// recid 0/1). It does not check that the signature is valid for Digest.
	Finish func(r, s []byte, recid int) (Result, error)
}

// Result holds the response fields of a signature request (see the findings above).
type Result struct {
	R, S       string // 0x-hex, 32 bytes each
	RecID      int
	Encoded    string // 0x-hex of r ‖ s ‖ (27+recid)
	SignedData string // the signed transaction as 0x-hex for kind Transaction, "" otherwise
}

func result(r, s []byte, recid int) (Result, error) {
	if len(r) != 32 || len(s) != 32 || (recid != 0 && recid != 1) {
		return Result{}, errs.Ef(errs.Internal, "evm: signature must be r, s of 32 bytes and recid 0 or 1 (got %d, %d, %d)", len(r), len(s), recid)
	}
	enc := make([]byte, 0, 65)
	enc = append(enc, r...)
	enc = append(enc, s...)
	enc = append(enc, byte(27+recid))
	return Result{
		R:       "0x" + hex.EncodeToString(r),
		S:       "0x" + hex.EncodeToString(s),
		RecID:   recid,
		Encoded: "0x" + hex.EncodeToString(enc),
	}, nil
}

// digestPayload signs d as is and returns no signed data.
func digestPayload(d []byte) Payload {
	return Payload{Digest: d, Finish: result}
}

// decodeHex decodes hex with an optional 0x prefix; ok is false for odd length or non-hex.
func decodeHex(s string) (b []byte, ok bool) {
	if strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X") {
		s = s[2:]
	}
	b, err := hex.DecodeString(s)
	return b, err == nil
}

// HashPayload signs a caller-chosen 32-byte digest (kind Hash).
func HashPayload(hashHex string) (Payload, error) {
	b, ok := decodeHex(hashHex)
	if !ok || len(b) != 32 {
		return Payload{}, errs.E(errs.Invalid, "hash must be 32 bytes of hex", nil)
	}
	return digestPayload(b), nil
}

// MessagePayload signs hex-encoded bytes the way personal_sign does (EIP-191 version 0x45:
// keccak256("\x19Ethereum Signed Message:\n" ‖ len ‖ message)). "0x" alone is the empty
// message, which ethers sends for signMessage("").
func MessagePayload(messageHex string) (Payload, error) {
	if messageHex == "" {
		return Payload{}, errs.E(errs.Invalid, "message is required, as hex", nil)
	}
	b, ok := decodeHex(messageHex)
	if !ok {
		return Payload{}, errs.E(errs.Invalid, "message must be hex", nil)
	}
	return digestPayload(accounts.TextHash(b)), nil
}

// Unsigned transaction layouts as ethers' unsignedSerialized and viem's serializeTransaction
// produce them. The RLP decoder is strict: canonical integers only, exact element counts
// (checked before decoding), no trailing bytes.
type (
	legacyTx struct { // 6 items, or 9 with the EIP-155 placeholders chainId, 0, 0
		Nonce    uint64
		GasPrice *big.Int
		Gas      uint64
		To       *common.Address `rlp:"nil"`
		Value    *big.Int
		Data     []byte
		V, R, S  *big.Int `rlp:"optional"`
	}
	accessListTx struct { // EIP-2930, 8 items
		ChainID    *big.Int
		Nonce      uint64
		GasPrice   *big.Int
		Gas        uint64
		To         *common.Address `rlp:"nil"`
		Value      *big.Int
		Data       []byte
		AccessList types.AccessList
	}
	dynamicFeeTx struct { // EIP-1559, 9 items
		ChainID    *big.Int
		Nonce      uint64
		GasTipCap  *big.Int
		GasFeeCap  *big.Int
		Gas        uint64
		To         *common.Address `rlp:"nil"`
		Value      *big.Int
		Data       []byte
		AccessList types.AccessList
	}
	setCodeTx struct { // EIP-7702, 10 items
		ChainID    *big.Int
		Nonce      uint64
		GasTipCap  *big.Int
		GasFeeCap  *big.Int
		Gas        uint64
		To         common.Address
		Value      *big.Int
		Data       []byte
		AccessList types.AccessList
		AuthList   []types.SetCodeAuthorization
	}
)

// TransactionPayload signs an unsigned transaction for the network with chainID (kind
// Transaction): a legacy RLP list (signed with EIP-155 replay protection), or an EIP-2718
// typed envelope of type 0x01, 0x02 or 0x04. SignedData is the signed transaction as
// 0x-hex, ready for eth_sendRawTransaction.
func TransactionPayload(txHex string, chainID uint64) (Payload, error) {
	if chainID == 0 {
		return Payload{}, errs.E(errs.Internal, "evm: TransactionPayload needs the network's chain id", nil)
	}
	b, ok := decodeHex(txHex)
	if !ok {
		return Payload{}, errs.E(errs.Invalid, "transaction must be hex", nil)
	}
	if len(b) == 0 {
		return Payload{}, errs.E(errs.Invalid, "transaction is empty", nil)
	}
	cid := new(big.Int).SetUint64(chainID)
	tx, err := decodeUnsigned(b, cid)
	if err != nil {
		return Payload{}, err
	}
	signer := types.LatestSignerForChainID(cid)
	digest := signer.Hash(tx)
	return Payload{Digest: digest[:], Finish: func(r, s []byte, recid int) (Result, error) {
		res, err := result(r, s, recid)
		if err != nil {
			return Result{}, err
		}
		sig := make([]byte, 0, 65)
		sig = append(append(append(sig, r...), s...), byte(recid))
		signed, err := tx.WithSignature(signer, sig)
		if err != nil {
			return Result{}, errs.E(errs.Internal, "evm: attaching the signature", err)
		}
		raw, err := signed.MarshalBinary()
		if err != nil {
			return Result{}, errs.E(errs.Internal, "evm: encoding the signed transaction", err)
		}
		res.SignedData = "0x" + hex.EncodeToString(raw)
		return res, nil
	}}, nil
}

var errMalformedTx = errs.E(errs.Invalid, "transaction is not a valid unsigned EVM transaction (RLP)", nil)

func malformed(cause error) error {
	return errs.E(errs.Invalid, "transaction is not a valid unsigned EVM transaction (RLP)", cause)
}

// decodeUnsigned parses the unsigned encodings and rejects signed ones, foreign chain ids
// and integers over 256 bits.
func decodeUnsigned(b []byte, chainID *big.Int) (*types.Transaction, error) {
	var body []byte
	switch {
	case b[0] >= 0xc0:
		body = b
	case b[0] == types.AccessListTxType, b[0] == types.DynamicFeeTxType, b[0] == types.SetCodeTxType:
		body = b[1:]
	case b[0] == types.BlobTxType:
		return nil, errs.E(errs.Invalid, "blob transactions (type 3) are not supported", nil)
	default:
		return nil, errs.Ef(errs.Invalid, "unknown transaction type 0x%02x", b[0])
	}
	var items []rlp.RawValue
	if err := rlp.DecodeBytes(body, &items); err != nil {
		return nil, malformed(err)
	}
	n := len(items)
	alreadySigned := errs.E(errs.Invalid, "transaction is already signed; send it unsigned", nil)
	checkChain := func(got *big.Int) error {
		if got.Cmp(chainID) != 0 {
			return errs.Ef(errs.Invalid, "transaction chainId %s does not match the network's chain id %s", got, chainID)
		}
		return nil
	}

	if b[0] >= 0xc0 {
		if n != 6 && n != 9 {
			return nil, errMalformedTx
		}
		var t legacyTx
		if err := rlp.DecodeBytes(body, &t); err != nil {
			return nil, malformed(err)
		}
		if n == 9 {
			if t.R.Sign() != 0 || t.S.Sign() != 0 {
				return nil, alreadySigned
			}
			if err := checkChain(t.V); err != nil {
				return nil, err
			}
		}
		if !fit256(t.GasPrice, t.Value) {
			return nil, errMalformedTx
		}
		return types.NewTx(&types.LegacyTx{Nonce: t.Nonce, GasPrice: t.GasPrice, Gas: t.Gas, To: t.To, Value: t.Value, Data: t.Data}), nil
	}

	var want int
	switch b[0] {
	case types.AccessListTxType:
		want = 8
	case types.DynamicFeeTxType:
		want = 9
	default:
		want = 10
	}
	if n == want+3 {
		// go-ethereum's MarshalBinary of an unsigned transaction keeps zero yParity/r/s:
		// unsigned too. Anything else there is a signature.
		for _, it := range items[want:] {
			if !bytes.Equal(it, []byte{0x80}) {
				return nil, alreadySigned
			}
		}
		enc, err := rlp.EncodeToBytes(items[:want])
		if err != nil {
			return nil, malformed(err)
		}
		body, items, n = enc, items[:want], want
	}
	if n != want {
		return nil, errMalformedTx
	}
	switch b[0] {
	case types.AccessListTxType:
		var t accessListTx
		if err := rlp.DecodeBytes(body, &t); err != nil {
			return nil, malformed(err)
		}
		if err := checkChain(t.ChainID); err != nil {
			return nil, err
		}
		if !fit256(t.GasPrice, t.Value) {
			return nil, errMalformedTx
		}
		return types.NewTx(&types.AccessListTx{ChainID: t.ChainID, Nonce: t.Nonce, GasPrice: t.GasPrice, Gas: t.Gas,
			To: t.To, Value: t.Value, Data: t.Data, AccessList: t.AccessList}), nil
	case types.DynamicFeeTxType:
		var t dynamicFeeTx
		if err := rlp.DecodeBytes(body, &t); err != nil {
			return nil, malformed(err)
		}
		if err := checkChain(t.ChainID); err != nil {
			return nil, err
		}
		if !fit256(t.GasTipCap, t.GasFeeCap, t.Value) {
			return nil, errMalformedTx
		}
		return types.NewTx(&types.DynamicFeeTx{ChainID: t.ChainID, Nonce: t.Nonce, GasTipCap: t.GasTipCap, GasFeeCap: t.GasFeeCap,
			Gas: t.Gas, To: t.To, Value: t.Value, Data: t.Data, AccessList: t.AccessList}), nil
	default:
		var t setCodeTx
		if err := rlp.DecodeBytes(body, &t); err != nil {
			return nil, malformed(err)
		}
		if err := checkChain(t.ChainID); err != nil {
			return nil, err
		}
		if !fit256(t.GasTipCap, t.GasFeeCap, t.Value) {
			return nil, errMalformedTx
		}
		if len(t.AuthList) == 0 {
			// EIP-7702: a set-code transaction with an empty authorization list is invalid.
			return nil, errs.E(errs.Invalid, "a type 4 transaction needs at least one authorization", nil)
		}
		return types.NewTx(&types.SetCodeTx{ChainID: uint256.MustFromBig(t.ChainID), Nonce: t.Nonce,
			GasTipCap: uint256.MustFromBig(t.GasTipCap), GasFeeCap: uint256.MustFromBig(t.GasFeeCap), Gas: t.Gas,
			To: t.To, Value: uint256.MustFromBig(t.Value), Data: t.Data, AccessList: t.AccessList, AuthList: t.AuthList}), nil
	}
}

func fit256(xs ...*big.Int) bool {
	for _, x := range xs {
		if x == nil || x.Sign() < 0 || x.BitLen() > 256 {
			return false
		}
	}
	return true
}

// EIP-712 (typed structured data). go-ethereum's apitypes does the hashing; before it sees
// anything we check the whole document against its types ourselves, because apitypes is
// lenient where signers must not be (it ignores fixed array lengths, integer widths of
// signed types and address checksums) and panics on some hostile inputs (a null array
// element).

const (
	eip712Domain    = "EIP712Domain"
	maxTypes        = 128 // struct types per document
	maxFields       = 128 // fields per struct type
	maxDepth        = 32  // nesting of structs and arrays
	maxIntLiteral   = 80  // characters of an integer literal
	maxName         = 64  // characters of a type or field name
	maxTypeString   = 256 // characters of a field's type, array dimensions included
	maxFixedArray   = 1 << 20
	typedDataPublic = "typed data does not match its types"
)

var (
	typeNameRe  = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)
	fieldNameRe = regexp.MustCompile(`^[A-Za-z_$][A-Za-z0-9_$]*$`)
)

// domainFields are the EIP-712 domain members in the order the EIP lists them, which is
// the order EIP712Domain is derived in (as ethers and viem do) when the body omits it.
var domainFields = []apitypes.Type{
	{Name: "name", Type: "string"},
	{Name: "version", Type: "string"},
	{Name: "chainId", Type: "uint256"},
	{Name: "verifyingContract", Type: "address"},
	{Name: "salt", Type: "bytes32"},
}

// TypedDataPayload signs EIP-712 typed data (kind Eip712) given as the JSON object
// {"types", "domain", "message", "primaryType"?}; other members are ignored (the caller
// owns the rest of the request body). As Dfns bodies come from ethers, types may omit
// EIP712Domain (it is derived from the domain members present) and primaryType (it is
// the one struct type no other type references).
func TypedDataPayload(raw json.RawMessage) (Payload, error) {
	var in struct {
		Types       json.RawMessage `json:"types"`
		Domain      json.RawMessage `json:"domain"`
		Message     json.RawMessage `json:"message"`
		PrimaryType *string         `json:"primaryType"`
	}
	if err := json.Unmarshal(raw, &in); err != nil {
		return Payload{}, errs.E(errs.Invalid, "typed data must be a JSON object with types, domain and message", nil)
	}
	if in.PrimaryType != nil && *in.PrimaryType == "" {
		in.PrimaryType = nil // an empty primaryType means "derive it"
	}
	tys, err := parseTypes(in.Types)
	if err != nil {
		return Payload{}, err
	}

	domain, err := decodeObject(in.Domain, "domain")
	if err != nil {
		return Payload{}, err
	}
	for k, v := range domain {
		if !slices.ContainsFunc(domainFields, func(f apitypes.Type) bool { return f.Name == k }) {
			return Payload{}, errs.Ef(errs.Invalid, "domain: unknown field %q", clip(k))
		}
		if v == nil {
			delete(domain, k) // ethers treats a null domain member as absent
		}
	}
	if len(domain) == 0 {
		return Payload{}, errs.E(errs.Invalid, "domain needs at least one of name, version, chainId, verifyingContract, salt", nil)
	}
	if given, ok := tys[eip712Domain]; ok {
		// EIP-712 fixes the name and type of each domain member; only the selection is free.
		for _, f := range given {
			if !slices.Contains(domainFields, f) {
				return Payload{}, errs.Ef(errs.Invalid, "types.EIP712Domain: %s %s is not an EIP-712 domain member", clip(f.Type), f.Name)
			}
		}
	} else {
		var fields []apitypes.Type
		for _, f := range domainFields {
			if _, ok := domain[f.Name]; ok {
				fields = append(fields, f)
			}
		}
		tys[eip712Domain] = fields
	}

	primary, err := primaryType(tys, in.PrimaryType)
	if err != nil {
		return Payload{}, err
	}
	message, err := decodeObject(in.Message, "message")
	if err != nil {
		return Payload{}, err
	}

	domNorm, err := normalize(tys, eip712Domain, domain, "domain", 0)
	if err != nil {
		return Payload{}, err
	}
	msgNorm, err := normalize(tys, primary, message, "message", 0)
	if err != nil {
		return Payload{}, err
	}
	digest, err := hashTypedData(tys, primary, domNorm.(map[string]any), msgNorm.(map[string]any))
	if err != nil {
		return Payload{}, err
	}
	return digestPayload(digest), nil
}

// hashTypedData returns keccak256(0x19 ‖ 0x01 ‖ domainSeparator ‖ hashStruct(message)).
func hashTypedData(tys apitypes.Types, primary string, domain, message map[string]any) (digest []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			digest, err = nil, errs.E(errs.Invalid, typedDataPublic, fmt.Errorf("apitypes panic: %v", p))
		}
	}()
	td := apitypes.TypedData{Types: tys, PrimaryType: primary, Domain: apiDomain(domain), Message: message}
	ds, err := td.HashStruct(eip712Domain, domain)
	if err != nil {
		return nil, errs.E(errs.Invalid, typedDataPublic, err)
	}
	mh, err := td.HashStruct(primary, message)
	if err != nil {
		return nil, errs.E(errs.Invalid, typedDataPublic, err)
	}
	return crypto.Keccak256([]byte{0x19, 0x01}, ds, mh), nil
}

// apiDomain fills apitypes' domain struct, which it only uses to check that the domain is
// not empty; the separator itself is hashed from the normalized map.
func apiDomain(m map[string]any) apitypes.TypedDataDomain {
	var d apitypes.TypedDataDomain
	d.Name, _ = m["name"].(string)
	d.Version, _ = m["version"].(string)
	d.VerifyingContract, _ = m["verifyingContract"].(string)
	d.Salt, _ = m["salt"].(string)
	if c, ok := m["chainId"].(*big.Int); ok {
		d.ChainId = (*math.HexOrDecimal256)(c)
	}
	return d
}

func decodeObject(raw json.RawMessage, what string) (map[string]any, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, errs.Ef(errs.Invalid, "%s is required", what)
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil || m == nil {
		return nil, errs.Ef(errs.Invalid, "%s must be a JSON object", what)
	}
	return m, nil
}

// parseTypes decodes and checks the type definitions: identifiers for names, unique field
// names, field types that are EIP-712 primitives or defined struct types with optional
// array dimensions.
func parseTypes(raw json.RawMessage) (apitypes.Types, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, errs.E(errs.Invalid, "types is required", nil)
	}
	var defs map[string]*[]struct {
		Name *string `json:"name"`
		Type *string `json:"type"`
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	if err := d.Decode(&defs); err != nil || defs == nil {
		return nil, errs.E(errs.Invalid, "types must map type names to lists of {name, type}", nil)
	}
	if len(defs) > maxTypes {
		return nil, errs.Ef(errs.Invalid, "types: at most %d types", maxTypes)
	}
	tys := make(apitypes.Types, len(defs))
	for name, fields := range defs {
		if len(name) > maxName || !typeNameRe.MatchString(name) || isPrimitive(name) {
			return nil, errs.Ef(errs.Invalid, "types: %q is not a valid struct type name", clip(name))
		}
		if fields == nil {
			return nil, errs.Ef(errs.Invalid, "types.%s must be a list of fields", name)
		}
		if len(*fields) > maxFields {
			return nil, errs.Ef(errs.Invalid, "types.%s: at most %d fields", name, maxFields)
		}
		seen := map[string]bool{}
		list := make([]apitypes.Type, 0, len(*fields))
		for i, f := range *fields {
			if f.Name == nil || f.Type == nil {
				return nil, errs.Ef(errs.Invalid, "types.%s[%d] needs name and type", name, i)
			}
			if len(*f.Name) > maxName || !fieldNameRe.MatchString(*f.Name) {
				return nil, errs.Ef(errs.Invalid, "types.%s[%d]: %q is not a valid field name", name, i, clip(*f.Name))
			}
			if seen[*f.Name] {
				return nil, errs.Ef(errs.Invalid, "types.%s: duplicate field %q", name, *f.Name)
			}
			seen[*f.Name] = true
			list = append(list, apitypes.Type{Name: *f.Name, Type: *f.Type})
		}
		tys[name] = list
	}
	for name, fields := range tys {
		for _, f := range fields {
			base, _, ok := splitArrays(f.Type)
			if !ok || len(f.Type) > maxTypeString {
				return nil, errs.Ef(errs.Invalid, "types.%s.%s: malformed type %q", name, f.Name, clip(f.Type))
			}
			if isPrimitive(base) {
				continue
			}
			if _, defined := tys[base]; !defined || base == eip712Domain {
				return nil, errs.Ef(errs.Invalid, "types.%s.%s: unknown type %q", name, f.Name, clip(f.Type))
			}
		}
	}
	if len(tys) == 0 || (len(tys) == 1 && tys[eip712Domain] != nil) {
		return nil, errs.E(errs.Invalid, "types must define the message's struct type", nil)
	}
	return tys, nil
}

// primaryType returns the explicit primaryType if given, else the one struct type that no
// other type references (EIP712Domain excluded), as ethers derives it.
func primaryType(tys apitypes.Types, explicit *string) (string, error) {
	if explicit != nil {
		p := *explicit
		if _, ok := tys[p]; !ok || p == eip712Domain {
			return "", errs.Ef(errs.Invalid, "primaryType %q is not a struct type defined in types", clip(p))
		}
		return p, nil
	}
	referenced := map[string]bool{}
	for name, fields := range tys {
		for _, f := range fields {
			if base, _, _ := splitArrays(f.Type); base != name {
				referenced[base] = true
			}
		}
	}
	var roots []string
	for name := range tys {
		if name != eip712Domain && !referenced[name] {
			roots = append(roots, name)
		}
	}
	sort.Strings(roots)
	switch len(roots) {
	case 1:
		return roots[0], nil
	case 0:
		return "", errs.E(errs.Invalid, "cannot derive primaryType: every type is referenced by another; give primaryType", nil)
	default:
		return "", errs.Ef(errs.Invalid, "cannot derive primaryType: %s are all unreferenced; give primaryType", strings.Join(roots, ", "))
	}
}

// splitArrays splits "T[2][]" into "T" and the dimensions in source order ([2, -1], -1 for
// a dynamic one).
func splitArrays(t string) (base string, dims []int, ok bool) {
	i := strings.IndexByte(t, '[')
	if i < 0 {
		return t, nil, t != ""
	}
	base, rest := t[:i], t[i:]
	if base == "" {
		return "", nil, false
	}
	for rest != "" {
		j := strings.IndexByte(rest, ']')
		if rest[0] != '[' || j < 0 {
			return "", nil, false
		}
		inner := rest[1:j]
		switch {
		case inner == "":
			dims = append(dims, -1)
		case inner[0] == '0' || len(inner) > 7:
			return "", nil, false
		default:
			n, err := strconv.Atoi(inner)
			if err != nil || n < 1 || n > maxFixedArray {
				return "", nil, false
			}
			dims = append(dims, n)
		}
		rest = rest[j+1:]
	}
	return base, dims, true
}

// isPrimitive reports whether t is an EIP-712 atomic or dynamic type. Integer and bytesN
// types need their width (uint256, not uint), as in Solidity's canonical names.
func isPrimitive(t string) bool {
	switch t {
	case "address", "bool", "string", "bytes":
		return true
	}
	if n, ok := width(t, "bytes"); ok {
		return n >= 1 && n <= 32
	}
	if n, ok := width(t, "uint"); ok {
		return n >= 8 && n <= 256 && n%8 == 0
	}
	if n, ok := width(t, "int"); ok {
		return n >= 8 && n <= 256 && n%8 == 0
	}
	return false
}

func width(t, prefix string) (int, bool) {
	s, ok := strings.CutPrefix(t, prefix)
	if !ok || s == "" || s[0] == '0' || len(s) > 3 {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

// normalize checks v against type t and returns it in the forms apitypes expects: maps for
// structs, []any for arrays, *big.Int for integers, 0x-hex strings for bytes, checksummed
// strings for addresses.
func normalize(tys apitypes.Types, t string, v any, path string, depth int) (any, error) {
	if depth > maxDepth {
		return nil, errs.Ef(errs.Invalid, "%s: nested too deeply", path)
	}
	if v == nil {
		return nil, errs.Ef(errs.Invalid, "%s: value of type %s is missing", path, t)
	}
	if k := strings.LastIndexByte(t, '['); k > 0 && strings.HasSuffix(t, "]") {
		elem, dim := t[:k], t[k+1:len(t)-1]
		arr, ok := v.([]any)
		if !ok {
			return nil, errs.Ef(errs.Invalid, "%s: want an array for %s", path, t)
		}
		if dim != "" {
			if n, _ := strconv.Atoi(dim); len(arr) != n {
				return nil, errs.Ef(errs.Invalid, "%s: %s needs exactly %s elements, got %d", path, t, dim, len(arr))
			}
		}
		out := make([]any, len(arr))
		for i, e := range arr {
			n, err := normalize(tys, elem, e, fmt.Sprintf("%s[%d]", path, i), depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = n
		}
		return out, nil
	}
	if fields, ok := tys[t]; ok {
		obj, ok := v.(map[string]any)
		if !ok {
			return nil, errs.Ef(errs.Invalid, "%s: want an object of type %s", path, t)
		}
		for k := range obj {
			if !slices.ContainsFunc(fields, func(f apitypes.Type) bool { return f.Name == k }) {
				return nil, errs.Ef(errs.Invalid, "%s: %s has no field %q", path, t, clip(k))
			}
		}
		out := make(map[string]any, len(fields))
		for _, f := range fields {
			n, err := normalize(tys, f.Type, obj[f.Name], path+"."+f.Name, depth+1)
			if err != nil {
				return nil, err
			}
			out[f.Name] = n
		}
		return out, nil
	}
	return primitive(t, v, path)
}

func primitive(t string, v any, path string) (any, error) {
	bad := func(want string) error { return errs.Ef(errs.Invalid, "%s: want %s for type %s", path, want, t) }
	switch t {
	case "bool":
		if _, ok := v.(bool); !ok {
			return nil, bad("true or false")
		}
		return v, nil
	case "string":
		if _, ok := v.(string); !ok {
			return nil, bad("a string")
		}
		return v, nil
	case "address":
		s, ok := v.(string)
		if !ok {
			return nil, bad("an address string")
		}
		a, err := ParseAddress(s)
		if err != nil {
			msg, _ := errs.Public(err)
			return nil, errs.Ef(errs.Invalid, "%s: %s", path, msg)
		}
		return a.Hex(), nil
	}
	if n, ok := width(t, "bytes"); ok || t == "bytes" {
		s, isStr := v.(string)
		if !isStr || !strings.HasPrefix(s, "0x") {
			return nil, bad("0x-hex")
		}
		b, err := hex.DecodeString(s[2:])
		if err != nil {
			return nil, bad("0x-hex")
		}
		if t != "bytes" && len(b) != n {
			return nil, bad(fmt.Sprintf("exactly %d bytes of 0x-hex", n))
		}
		return "0x" + hex.EncodeToString(b), nil
	}
	if !isPrimitive(t) {
		return nil, errs.Ef(errs.Invalid, "%s: unknown type %q", path, t)
	}
	signed := strings.HasPrefix(t, "int")
	prefix := "uint"
	if signed {
		prefix = "int"
	}
	bits, _ := width(t, prefix)
	var x *big.Int
	switch n := v.(type) {
	case json.Number:
		if len(n) <= maxIntLiteral {
			x, _ = new(big.Int).SetString(string(n), 10) // fractions and exponents fail here on purpose
		}
	case string:
		x = parseIntString(n)
	}
	if x == nil {
		return nil, bad("an integer (a JSON integer, or a decimal or 0x-hex string)")
	}
	lo, hi := new(big.Int), new(big.Int).Lsh(big.NewInt(1), uint(bits)) // [lo, hi)
	if signed {
		hi.Rsh(hi, 1)
		lo.Neg(hi)
	}
	if x.Cmp(lo) < 0 || x.Cmp(hi) >= 0 {
		return nil, errs.Ef(errs.Invalid, "%s: %s is out of range for %s", path, x, t)
	}
	return x, nil
}

// clip shortens client-supplied text quoted back in an error message.
func clip(s string) string {
	if len(s) > maxName {
		return s[:maxName] + "…"
	}
	return s
}

// parseIntString accepts [-]decimal or [-]0x-hex, as ethers' BigNumberish strings.
func parseIntString(s string) *big.Int {
	if len(s) == 0 || len(s) > maxIntLiteral {
		return nil
	}
	neg := s[0] == '-'
	if neg {
		s = s[1:]
	}
	base := 10
	if strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X") {
		s, base = s[2:], 16
	}
	if s == "" || s[0] == '+' || s[0] == '-' || strings.ContainsRune(s, '_') {
		return nil
	}
	x, ok := new(big.Int).SetString(s, base)
	if !ok {
		return nil
	}
	if neg {
		x.Neg(x)
	}
	return x
}
