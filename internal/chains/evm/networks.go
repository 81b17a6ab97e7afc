// Package evm knows the EVM networks by their Dfns names, derives and parses EVM
// addresses, and builds the signing payloads of the Dfns signature kinds (Hash, Message,
// Transaction, Eip712) for a secp256k1 key. It holds no keys and no rows: callers sign
// Payload.Digest with whatever custody they have and hand the signature to Payload.Finish.
package evm

import (
	"sort"
)

// Network is an EVM network by its Dfns name.
type Network struct {
	Name     string // Dfns enum, e.g. "EthereumSepolia"
	ChainID  uint64
	Symbol   string // native coin symbol: ETH, POL, BNB, AVAX, CELO, S, ...
	Decimals int    // 18 on every EVM network listed here
	Testnet  bool
}

// networks lists the Dfns network enum values (dfns-api.md §7) that are EVM chains and
// whose EIP-155 chain id we know for certain. Symbols are the native-currency symbols
// the chains publish (chainlist), which for some testnets differ from the mainnet one
// (tBNB, C2FLR, METC).
//
// Left out on purpose: XLayerSepolia and SonicTestnet (both chains replaced their
// testnet in 2025, 195→1952 and 57054→14601, and we do not know which one Dfns serves),
// the dead Goerli/Mumbai testnets, and the networks whose chain id or whose address
// format on Dfns we could not confirm (BobSepolia, Plasma, Race, Sei, Xdc, Codex, Rayls,
// Robinhood, Tempo, Arc, Tsc).
var networks = map[string]Network{}

func init() {
	for _, n := range []Network{
		{Name: "Ethereum", ChainID: 1, Symbol: "ETH"},
		{Name: "EthereumSepolia", ChainID: 11155111, Symbol: "ETH", Testnet: true},
		{Name: "EthereumHolesky", ChainID: 17000, Symbol: "ETH", Testnet: true},
		{Name: "EthereumHoodi", ChainID: 560048, Symbol: "ETH", Testnet: true},
		{Name: "Base", ChainID: 8453, Symbol: "ETH"},
		{Name: "BaseSepolia", ChainID: 84532, Symbol: "ETH", Testnet: true},
		{Name: "ArbitrumOne", ChainID: 42161, Symbol: "ETH"},
		{Name: "ArbitrumSepolia", ChainID: 421614, Symbol: "ETH", Testnet: true},
		{Name: "Optimism", ChainID: 10, Symbol: "ETH"},
		{Name: "OptimismSepolia", ChainID: 11155420, Symbol: "ETH", Testnet: true},
		{Name: "Polygon", ChainID: 137, Symbol: "POL"},
		{Name: "PolygonAmoy", ChainID: 80002, Symbol: "POL", Testnet: true},
		{Name: "Bsc", ChainID: 56, Symbol: "BNB"},
		{Name: "BscTestnet", ChainID: 97, Symbol: "tBNB", Testnet: true},
		{Name: "AvalancheC", ChainID: 43114, Symbol: "AVAX"},
		{Name: "AvalancheCFuji", ChainID: 43113, Symbol: "AVAX", Testnet: true},
		{Name: "Celo", ChainID: 42220, Symbol: "CELO"},
		{Name: "CeloAlfajores", ChainID: 44787, Symbol: "CELO", Testnet: true},
		{Name: "Berachain", ChainID: 80094, Symbol: "BERA"},
		{Name: "BerachainBepolia", ChainID: 80069, Symbol: "BERA", Testnet: true},
		{Name: "Sonic", ChainID: 146, Symbol: "S"},
		{Name: "Ink", ChainID: 57073, Symbol: "ETH"},
		{Name: "InkSepolia", ChainID: 763373, Symbol: "ETH", Testnet: true},
		{Name: "FlareC", ChainID: 14, Symbol: "FLR"},
		{Name: "FlareCCoston2", ChainID: 114, Symbol: "C2FLR", Testnet: true},
		{Name: "Plume", ChainID: 98866, Symbol: "PLUME"},
		{Name: "PlumeSepolia", ChainID: 98867, Symbol: "PLUME", Testnet: true},
		{Name: "XLayer", ChainID: 196, Symbol: "OKB"},
		{Name: "EthereumClassic", ChainID: 61, Symbol: "ETC"},
		{Name: "EthereumClassicMordor", ChainID: 63, Symbol: "METC", Testnet: true},
		{Name: "FantomOpera", ChainID: 250, Symbol: "FTM"},
		{Name: "FantomTestnet", ChainID: 4002, Symbol: "FTM", Testnet: true},
		{Name: "Bob", ChainID: 60808, Symbol: "ETH"},
		{Name: "FlowEvm", ChainID: 747, Symbol: "FLOW"},
		{Name: "FlowEvmTestnet", ChainID: 545, Symbol: "FLOW", Testnet: true},
	} {
		n.Decimals = 18
		if _, dup := networks[n.Name]; dup {
			panic("evm: duplicate network " + n.Name)
		}
		networks[n.Name] = n
	}
}

// Lookup returns the EVM network with exactly this Dfns name (case-sensitive, no
// aliases: the API rejects unknown enum values, so do we).
func Lookup(name string) (Network, bool) {
	n, ok := networks[name]
	return n, ok
}

// Networks returns every known EVM network, sorted by name.
func Networks() []Network {
	out := make([]Network, 0, len(networks))
	for _, n := range networks {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
