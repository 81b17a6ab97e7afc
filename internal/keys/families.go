package keys

import (
	"github.com/countersign/countersign/internal/chains/bitcoin"
	"github.com/countersign/countersign/internal/chains/evm"
	"github.com/countersign/countersign/internal/chains/solana"
	"github.com/countersign/countersign/internal/errs"
)

// Chain families, as the API's blockchainKind names them ("EdDSA" is a bare EdDSA key
// with no chain: raw hashes and messages).
const (
	familyEVM     = "Evm"
	familyBitcoin = "Bitcoin"
	familySolana  = "Solana"
	familyEdDSA   = "EdDSA"
)

type family struct{ name, scheme, curve string }

var families = map[string]family{
	familyEVM:     {familyEVM, SchemeECDSA, CurveSecp256k1},
	familyBitcoin: {familyBitcoin, SchemeECDSA, CurveSecp256k1},
	familySolana:  {familySolana, SchemeEdDSA, CurveEd25519},
	familyEdDSA:   {familyEdDSA, SchemeEdDSA, CurveEd25519},
}

// networkFamily is the chain family of a network name, "" when we do not know the network.
func networkFamily(network string) string {
	if _, ok := evm.Lookup(network); ok {
		return familyEVM
	}
	if _, ok := bitcoin.Lookup(network); ok {
		return familyBitcoin
	}
	if _, ok := solana.Lookup(network); ok {
		return familySolana
	}
	return ""
}

// familyOf picks the family of a signature request: the network's, else blockchainKind's,
// else the bare key's (ECDSA keys sign hashes the EVM way, EdDSA keys raw bytes).
func familyOf(network, blockchainKind, scheme string) (family, error) {
	if network != "" {
		name := networkFamily(network)
		if name == "" {
			return family{}, errs.Ef(errs.Invalid, "network %q is not supported for signatures", network)
		}
		if blockchainKind != "" && blockchainKind != name {
			return family{}, errs.Ef(errs.Invalid, "network %s is not of blockchainKind %s", network, blockchainKind)
		}
		return families[name], nil
	}
	switch blockchainKind {
	case familyEVM, familyBitcoin, familySolana:
		return families[blockchainKind], nil
	case "":
		if scheme == SchemeEdDSA {
			return families[familyEdDSA], nil
		}
		return families[familyEVM], nil
	}
	return family{}, errs.Ef(errs.Invalid, "blockchainKind %q is not supported", blockchainKind)
}

// Network is what a wallet needs of its network: the key type it uses and how an address
// is derived from the public key.
type Network struct {
	Name, Family  string
	Scheme, Curve string
	Address       func(pub []byte) (string, error)
}

// LookupNetwork returns a network wallets can be created on, by its Dfns name.
func LookupNetwork(name string) (Network, bool) {
	fam := networkFamily(name)
	if fam == "" {
		return Network{}, false
	}
	f := families[fam]
	n := Network{Name: name, Family: fam, Scheme: f.scheme, Curve: f.curve}
	switch fam {
	case familyEVM:
		n.Address = evm.Address
	case familyBitcoin:
		bn, _ := bitcoin.Lookup(name)
		n.Address = bn.Address
	case familySolana:
		n.Address = solana.Address
	}
	return n, true
}

// IsEVM reports whether network is an EVM network (the only family with RPC backends yet).
func IsEVM(network string) bool { return networkFamily(network) == familyEVM }

// prepareBitcoin prepares the Bitcoin kinds: Hash (DER-encoded), Psbt (every input of the
// key signed, BIP-143), Bip322 (a BIP-322 Simple or Full proof for the key's P2WPKH
// address). There is no Bitcoin Message kind.
func prepareBitcoin(k PubKey, network string, r SignRequest) (Prepared, error) {
	var p bitcoin.Payload
	var err error
	switch r.Kind {
	case "Hash":
		p, err = bitcoin.HashPayload(r.Hash)
	case "Psbt":
		if r.Psbt == "" {
			return Prepared{}, errs.E(errs.Invalid, "psbt is required", nil)
		}
		p, err = bitcoin.PsbtPayload(r.Psbt, k.Key)
	case "Message":
		return Prepared{}, errs.E(errs.Invalid, "Bitcoin has no Message signatures: sign messages with Bip322, transactions with Psbt", nil)
	case "Bip322":
		p, err = bitcoin.Bip322Payload(r.Message, r.Format, k.Key)
	case "":
		return Prepared{}, errs.E(errs.Invalid, "kind is required", nil)
	default:
		return Prepared{}, errs.Ef(errs.Invalid, "signature kind %q is not supported on Bitcoin", r.Kind)
	}
	if err != nil {
		return Prepared{}, err
	}
	return Prepared{Network: network, Run: func(sign func([]byte) (Signature, error)) (Result, error) {
		sigs := make([]bitcoin.Sig, 0, len(p.Digests))
		for _, d := range p.Digests {
			s, err := sign(d)
			if err != nil {
				return Result{}, err
			}
			sigs = append(sigs, bitcoin.Sig{R: s.R, S: s.S, RecID: s.RecID})
		}
		res, err := p.Finish(sigs)
		if err != nil {
			return Result{}, err
		}
		conv := func(p bitcoin.Parts) SignatureParts {
			id := p.RecID
			return SignatureParts{R: p.R, S: p.S, RecID: &id, Encoded: p.Encoded}
		}
		out := Result{SignedData: res.SignedData}
		if res.Signature != nil {
			sp := conv(*res.Signature)
			out.Signature = &sp
		}
		for _, s := range res.Signatures {
			out.Signatures = append(out.Signatures, conv(s))
		}
		return out, nil
	}}, nil
}

// prepareEdDSA prepares Ed25519 signatures: raw Hash and Message bytes for any EdDSA key,
// and serialized transactions on Solana.
func prepareEdDSA(k PubKey, network string, onSolana bool, r SignRequest) (Prepared, error) {
	var p solana.Payload
	if r.Kind == "Transaction" && onSolana {
		if r.Transaction == "" {
			return Prepared{}, errs.E(errs.Invalid, "transaction is required", nil)
		}
		var err error
		if p, err = solana.TransactionPayload(r.Transaction, k.Key); err != nil {
			return Prepared{}, err
		}
	} else {
		msg, err := eddsaPayload(r)
		if err != nil {
			return Prepared{}, err
		}
		p = solana.RawPayload(msg)
	}
	return Prepared{Network: network, Run: func(sign func([]byte) (Signature, error)) (Result, error) {
		s, err := sign(p.Message)
		if err != nil {
			return Result{}, err
		}
		res, err := p.Finish(s.Raw)
		if err != nil {
			return Result{}, err
		}
		return Result{Signature: &SignatureParts{R: res.Signature.R, S: res.Signature.S, Encoded: res.Signature.Encoded},
			SignedData: res.SignedData}, nil
	}}, nil
}
