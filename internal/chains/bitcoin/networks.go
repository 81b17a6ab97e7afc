// Package bitcoin knows the Bitcoin networks by their Dfns names, derives the native segwit
// (P2WPKH) address of a secp256k1 key, and builds the signing payloads of the Dfns
// signature kinds for Bitcoin wallets (Hash and Psbt). Like internal/chains/evm it holds no
// keys and no rows: callers sign Payload.Digests with whatever custody they have and hand
// the signatures to Payload.Finish.
package bitcoin

import (
	"sort"

	"github.com/btcsuite/btcd/btcutil"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/btcsuite/btcd/txscript"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"

	"github.com/countersign/countersign/internal/errs"
)

// Network is a Bitcoin network by its Dfns name.
type Network struct {
	Name     string // Dfns enum, e.g. "BitcoinTestnet3"
	Params   *chaincfg.Params
	Symbol   string
	Decimals int
	Testnet  bool
}

// networks lists the Dfns network enum values (dfns-api.md §7) that are Bitcoin proper.
// Litecoin, Dogecoin and Bitcoin Cash have other address formats and are not handled here.
var networks = map[string]Network{
	"Bitcoin":         {Name: "Bitcoin", Params: &chaincfg.MainNetParams, Symbol: "BTC", Decimals: 8},
	"BitcoinTestnet3": {Name: "BitcoinTestnet3", Params: &chaincfg.TestNet3Params, Symbol: "BTC", Decimals: 8, Testnet: true},
	"BitcoinTestnet4": {Name: "BitcoinTestnet4", Params: testNet4Params(), Symbol: "BTC", Decimals: 8, Testnet: true},
	"BitcoinSignet":   {Name: "BitcoinSignet", Params: &chaincfg.SigNetParams, Symbol: "BTC", Decimals: 8, Testnet: true},
}

// testNet4Params describes testnet4 (BIP-94) as far as countersign needs it. btcd v0.24.2
// has no TestNet4Params; what an address needs is the same as on testnet3: bech32 prefix
// "tb" (BIP-173 gives it to every test network), version bytes 0x6f/0xc4 and WIF 0xef. The
// p2p magic and port are testnet4's (BIP-94); the genesis block and checkpoints are left as
// testnet3's and must not be used: countersign never runs a p2p node from these parameters,
// it only encodes addresses and talks JSON-RPC to a configured node.
func testNet4Params() *chaincfg.Params {
	p := chaincfg.TestNet3Params
	p.Name = "testnet4"
	p.Net = 0x283f161c // message start 1c 16 3f 28 (BIP-94)
	p.DefaultPort = "48333"
	p.DNSSeeds = nil
	p.Checkpoints = nil
	return &p
}

// Lookup returns the Bitcoin network with exactly this Dfns name.
func Lookup(name string) (Network, bool) {
	n, ok := networks[name]
	return n, ok
}

// Networks returns every known Bitcoin network, sorted by name.
func Networks() []Network {
	out := make([]Network, 0, len(networks))
	for _, n := range networks {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// compressed checks that pub is a 33-byte compressed point on secp256k1: segwit v0 outputs
// must commit to a compressed key (BIP-143 "Restrictions on public key type"), or the
// coins sent there could never be spent under standard policy.
func compressed(pub []byte) error {
	if len(pub) != 33 || (pub[0] != 2 && pub[0] != 3) {
		return errs.E(errs.Invalid, "Bitcoin wallets need a 33-byte compressed secp256k1 public key", nil)
	}
	if _, err := secp256k1.ParsePubKey(pub); err != nil {
		return errs.E(errs.Invalid, "public key is not a point on secp256k1", err)
	}
	return nil
}

// Address returns the P2WPKH (BIP-141 native segwit v0, BIP-173 bech32) address of a
// compressed secp256k1 public key on network n: bc1q… on mainnet, tb1q… on the testnets.
func (n Network) Address(pub []byte) (string, error) {
	if err := compressed(pub); err != nil {
		return "", err
	}
	a, err := btcutil.NewAddressWitnessPubKeyHash(btcutil.Hash160(pub), n.Params)
	if err != nil {
		return "", errs.E(errs.Internal, "could not encode the address", err)
	}
	return a.EncodeAddress(), nil
}

// P2WPKHScript is the output script that pays to pub's P2WPKH address:
// OP_0 <20-byte HASH160(pub)>. It does not depend on the network.
func P2WPKHScript(pub []byte) ([]byte, error) {
	if err := compressed(pub); err != nil {
		return nil, err
	}
	s, err := txscript.NewScriptBuilder().AddOp(txscript.OP_0).AddData(btcutil.Hash160(pub)).Script()
	if err != nil {
		return nil, errs.E(errs.Internal, "could not build the output script", err)
	}
	return s, nil
}
