package evm

import (
	"sort"
	"testing"
)

func TestLookup(t *testing.T) {
	tests := []struct {
		name    string
		chainID uint64
		symbol  string
		testnet bool
	}{
		{"Ethereum", 1, "ETH", false},
		{"EthereumSepolia", 11155111, "ETH", true},
		{"EthereumHolesky", 17000, "ETH", true},
		{"EthereumHoodi", 560048, "ETH", true},
		{"Base", 8453, "ETH", false},
		{"BaseSepolia", 84532, "ETH", true},
		{"ArbitrumOne", 42161, "ETH", false},
		{"ArbitrumSepolia", 421614, "ETH", true},
		{"Optimism", 10, "ETH", false},
		{"OptimismSepolia", 11155420, "ETH", true},
		{"Polygon", 137, "POL", false},
		{"PolygonAmoy", 80002, "POL", true},
		{"Bsc", 56, "BNB", false},
		{"BscTestnet", 97, "tBNB", true},
		{"AvalancheC", 43114, "AVAX", false},
		{"AvalancheCFuji", 43113, "AVAX", true},
		{"Celo", 42220, "CELO", false},
		{"CeloAlfajores", 44787, "CELO", true},
		{"Berachain", 80094, "BERA", false},
		{"BerachainBepolia", 80069, "BERA", true},
		{"Sonic", 146, "S", false},
		{"Ink", 57073, "ETH", false},
		{"InkSepolia", 763373, "ETH", true},
		{"FlareC", 14, "FLR", false},
		{"FlareCCoston2", 114, "C2FLR", true},
		{"Plume", 98866, "PLUME", false},
		{"PlumeSepolia", 98867, "PLUME", true},
		{"XLayer", 196, "OKB", false},
		{"EthereumClassic", 61, "ETC", false},
		{"EthereumClassicMordor", 63, "METC", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, ok := Lookup(tt.name)
			if !ok {
				t.Fatalf("Lookup(%q) not found", tt.name)
			}
			if n.Name != tt.name || n.ChainID != tt.chainID || n.Symbol != tt.symbol || n.Testnet != tt.testnet || n.Decimals != 18 {
				t.Errorf("Lookup(%q) = %+v", tt.name, n)
			}
		})
	}
	for _, name := range []string{"", "ethereum", "ETHEREUM", "Avalanche", "EthereumGoerli", "Bitcoin", "KeyECDSA", " Ethereum"} {
		if n, ok := Lookup(name); ok {
			t.Errorf("Lookup(%q) = %+v, want not found", name, n)
		}
	}
}

func TestNetworks(t *testing.T) {
	all := Networks()
	if len(all) != len(networks) {
		t.Fatalf("Networks() has %d, want %d", len(all), len(networks))
	}
	if !sort.SliceIsSorted(all, func(i, j int) bool { return all[i].Name < all[j].Name }) {
		t.Error("Networks() is not sorted by name")
	}
	ids := map[uint64]string{}
	for _, n := range all {
		if other, dup := ids[n.ChainID]; dup {
			t.Errorf("chain id %d used by %s and %s", n.ChainID, other, n.Name)
		}
		ids[n.ChainID] = n.Name
		if n.ChainID == 0 || n.Symbol == "" || n.Decimals != 18 {
			t.Errorf("incomplete network %+v", n)
		}
	}
	all[0].Name = "changed"
	if Networks()[0].Name == "changed" {
		t.Error("Networks() shares its backing array")
	}
}
