package solana

import (
	"bytes"
	"crypto/ed25519"

	"github.com/countersign/countersign/internal/errs"
)

// Transaction is a parsed wire transaction: a compact-array of 64-byte signatures followed
// by the message they sign (legacy, or versioned v0 with address table lookups).
type Transaction struct {
	raw        []byte
	sigOffset  int      // where the first signature starts in raw
	Signatures [][]byte // sub-slices of raw
	Message    []byte   // sub-slice of raw: the signed bytes
	Version    int      // -1 for a legacy message, else the version (only 0 exists)
	Signers    [][]byte // the first numRequiredSignatures account keys, in slot order
	Accounts   [][]byte // every static account key
}

// malformed is the one refusal for bytes that are not a transaction; cause says where.
func malformed(what string) error {
	return errs.E(errs.Invalid, "transaction is not a valid serialized Solana transaction: "+what, nil)
}

// instruction is what the index checks need of a compiled instruction.
type instruction struct {
	program  int
	accounts []byte
}

// reader walks the wire format; every read checks the bounds.
type reader struct {
	b   []byte
	pos int
	bad string
}

func (r *reader) fail(what string) {
	if r.bad == "" {
		r.bad = what
	}
}

func (r *reader) bytes(n int, what string) []byte {
	if r.bad != "" || n < 0 || n > len(r.b)-r.pos {
		r.fail(what + " is truncated")
		return nil
	}
	out := r.b[r.pos : r.pos+n]
	r.pos += n
	return out
}

func (r *reader) byte1(what string) int {
	b := r.bytes(1, what)
	if b == nil {
		return 0
	}
	return int(b[0])
}

// shortvec reads a compact-u16 length: 7 bits per byte, low groups first, the high bit of
// a byte saying another follows; at most 3 bytes, the value must fit in 16 bits and must be
// in its shortest form (Solana's decoder refuses aliases, so must we, or two encodings of
// one length would both be accepted).
func (r *reader) shortvec(what string) int {
	v := 0
	for i := 0; i < 3; i++ {
		c := r.byte1(what)
		if r.bad != "" {
			return 0
		}
		if i > 0 && c == 0 {
			r.fail(what + " has a non-canonical length")
			return 0
		}
		v |= (c & 0x7f) << (7 * i)
		if c&0x80 == 0 {
			if v > 0xffff {
				r.fail(what + " length overflows 16 bits")
				return 0
			}
			return v
		}
	}
	r.fail(what + " length overflows 16 bits")
	return 0
}

// ParseTransaction reads a serialized transaction and checks its structure the way the
// runtime's sanitizer does for what we rely on: one signature per required signer, the
// fee payer writable, every index in range and no trailing bytes.
func ParseTransaction(b []byte) (*Transaction, error) {
	r := &reader{b: b}
	tx := &Transaction{raw: b, Version: -1}
	nsig := r.shortvec("signature count")
	tx.sigOffset = r.pos
	for i := 0; i < nsig && r.bad == ""; i++ {
		tx.Signatures = append(tx.Signatures, r.bytes(ed25519.SignatureSize, "signature"))
	}
	msgStart := r.pos
	first := r.byte1("message")
	if r.bad == "" && first&0x80 != 0 {
		tx.Version = first & 0x7f
		if tx.Version != 0 {
			r.fail("unsupported message version")
		}
		first = r.byte1("message header")
	}
	numReq, roSigned, roUnsigned := first, r.byte1("message header"), r.byte1("message header")
	nkeys := r.shortvec("account keys")
	for i := 0; i < nkeys && r.bad == ""; i++ {
		tx.Accounts = append(tx.Accounts, r.bytes(ed25519.PublicKeySize, "account key"))
	}
	r.bytes(32, "recent blockhash")
	var ixs []instruction
	nix := r.shortvec("instructions")
	for i := 0; i < nix && r.bad == ""; i++ {
		prog := r.byte1("instruction")
		accts := r.bytes(r.shortvec("instruction accounts"), "instruction accounts")
		r.bytes(r.shortvec("instruction data"), "instruction data")
		ixs = append(ixs, instruction{prog, accts})
	}
	looked := 0
	if tx.Version == 0 {
		nl := r.shortvec("address table lookups")
		for i := 0; i < nl && r.bad == ""; i++ {
			r.bytes(32, "lookup table address")
			w := len(r.bytes(r.shortvec("lookup writable indexes"), "lookup writable indexes"))
			ro := len(r.bytes(r.shortvec("lookup readonly indexes"), "lookup readonly indexes"))
			if w+ro == 0 {
				r.fail("an address table lookup loads no account")
			}
			looked += w + ro
		}
	}
	if r.bad != "" {
		return nil, malformed(r.bad)
	}
	if r.pos != len(b) {
		return nil, malformed("trailing bytes after the message")
	}
	switch {
	case numReq == 0:
		return nil, malformed("no required signer (a fee payer is needed)")
	case nsig != numReq:
		return nil, malformed("the signature count differs from the message's required signers")
	case roSigned >= numReq:
		return nil, malformed("the fee payer is read-only")
	case numReq+roUnsigned > nkeys:
		return nil, malformed("the header counts more accounts than the message lists")
	case nkeys+looked > 256:
		return nil, malformed("more than 256 accounts")
	}
	for _, in := range ixs {
		if in.program >= nkeys || in.program == 0 { // programs are static keys, never the fee payer
			return nil, malformed("an instruction's program index is out of range")
		}
		for _, a := range in.accounts {
			if int(a) >= nkeys+looked {
				return nil, malformed("an instruction's account index is out of range")
			}
		}
	}
	tx.Message = b[msgStart:]
	tx.Signers = tx.Accounts[:numReq]
	return tx, nil
}

// SignerIndex is pub's signature slot, or -1 when pub is not a required signer.
func (t *Transaction) SignerIndex(pub []byte) int {
	for i, k := range t.Signers {
		if bytes.Equal(k, pub) {
			return i
		}
	}
	return -1
}

// WithSignature returns a copy of the serialized transaction with sig in slot i.
func (t *Transaction) WithSignature(i int, sig []byte) []byte {
	out := bytes.Clone(t.raw)
	copy(out[t.sigOffset+i*ed25519.SignatureSize:], sig)
	return out
}
