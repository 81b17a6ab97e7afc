package keys

import (
	"encoding/json"

	"github.com/countersign/countersign/internal/chains/evm"
	"github.com/countersign/countersign/internal/errs"
)

// ChainSet prepares signatures for the chain families countersign knows: EVM, Bitcoin and
// Solana networks by name (or blockchainKind), and chain-agnostic hashes and messages of
// bare keys.
type ChainSet struct{}

// Prepare implements Chains: the network (else blockchainKind, else the key's scheme)
// picks the chain family, whose key type the key must have.
func (ChainSet) Prepare(k PubKey, network, blockchainKind string, r SignRequest) (Prepared, error) {
	fam, err := familyOf(network, blockchainKind, k.Scheme)
	if err != nil {
		return Prepared{}, err
	}
	if k.Scheme != fam.scheme || k.Curve != fam.curve {
		return Prepared{}, errs.Ef(errs.Invalid, "%s signatures need an %s/%s key", fam.name, fam.scheme, fam.curve)
	}
	switch fam.name {
	case familyBitcoin:
		return prepareBitcoin(k, network, r)
	case familySolana, familyEdDSA:
		return prepareEdDSA(k, network, fam.name == familySolana, r)
	}
	return prepareEVM(network, blockchainKind, r)
}

// prepareEVM prepares secp256k1 signatures of EVM networks and chain-agnostic hashes.
func prepareEVM(network, blockchainKind string, r SignRequest) (Prepared, error) {
	var chainID uint64
	switch {
	case network != "":
		n, ok := evm.Lookup(network)
		if !ok {
			return Prepared{}, errs.Ef(errs.Invalid, "network %q is not supported for signatures", network)
		}
		chainID = n.ChainID
	case blockchainKind == "" || blockchainKind == "Evm":
	default:
		return Prepared{}, errs.Ef(errs.Invalid, "blockchainKind %q is not supported", blockchainKind)
	}
	evmContext := network != "" || blockchainKind == "Evm"
	var p evm.Payload
	var err error
	switch r.Kind {
	case "Hash":
		p, err = evm.HashPayload(r.Hash)
	case "Message":
		if !evmContext {
			return Prepared{}, errs.E(errs.Invalid, "kind Message needs a network (or blockchainKind Evm) for ECDSA keys", nil)
		}
		var msg string
		if err := json.Unmarshal(r.Message, &msg); err != nil {
			return Prepared{}, errs.E(errs.Invalid, "message must be a hex string", nil)
		}
		p, err = evm.MessagePayload(msg)
	case "Transaction":
		if network == "" {
			return Prepared{}, errs.E(errs.Invalid, "kind Transaction needs a network: the chain id is part of what is signed", nil)
		}
		p, err = evm.TransactionPayload(r.Transaction, chainID)
	case "Eip712":
		if !evmContext {
			return Prepared{}, errs.E(errs.Invalid, "kind Eip712 needs a network (or blockchainKind Evm)", nil)
		}
		raw, _ := json.Marshal(struct {
			Types       json.RawMessage `json:"types"`
			Domain      json.RawMessage `json:"domain"`
			Message     json.RawMessage `json:"message"`
			PrimaryType string          `json:"primaryType,omitempty"`
		}{r.Types, r.Domain, r.Message, r.PrimaryType})
		p, err = evm.TypedDataPayload(raw)
	case "":
		return Prepared{}, errs.E(errs.Invalid, "kind is required", nil)
	default:
		return Prepared{}, errs.Ef(errs.Invalid, "signature kind %q is not supported here", r.Kind)
	}
	if err != nil {
		return Prepared{}, err
	}
	return Prepared{Network: network, Digest: p.Digest, Finish: func(rr, ss []byte, recid int) (SignatureParts, string, error) {
		res, err := p.Finish(rr, ss, recid)
		if err != nil {
			return SignatureParts{}, "", err
		}
		id := res.RecID
		return SignatureParts{R: res.R, S: res.S, RecID: &id, Encoded: res.Encoded}, res.SignedData, nil
	}}, nil
}
