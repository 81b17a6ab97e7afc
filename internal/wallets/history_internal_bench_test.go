package wallets_test

import (
	"context"
	"crypto/rand"
	"math/big"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/countersign/countersign/internal/chains/registry"
	"github.com/countersign/countersign/internal/testutil"
	"github.com/countersign/countersign/internal/wallets"
)

// BenchmarkIndexHistory is one indexing of benchBlocks dev-chain blocks from genesis (the
// cursor is reset before each), on SQLite, with one watched wallet that none of them
// touches:
//   - plain: each block holds one native transfer between accounts without code, which
//     needs no trace (a batched code read of the recipients decides it);
//   - contract: each block holds one call to the test token, which is traced.
//
// Run: go test -run '^$' -bench BenchmarkIndexHistory -benchtime 5x ./internal/wallets/
func BenchmarkIndexHistory(b *testing.B) {
	const benchBlocks = 200
	for _, kind := range []string{"plain", "contract"} {
		b.Run(kind, func(b *testing.B) {
			ctx := context.Background()
			f := newHistoryFixture(b, testutil.Engines(b)[0])
			f.wallet(b)
			db, reg, svc := f.db, f.reg, f.svc
			if _, err := reg.Get(ctx, historyNetwork); err != nil {
				b.Fatal(err)
			}
			var err error
			for range benchBlocks {
				var raw [20]byte
				rand.Read(raw[:])
				to := common.BytesToAddress(raw[:]).Hex() // an account nobody watches, without code
				if kind == "plain" {
					_, err = reg.Fund(ctx, historyNetwork, to, big.NewInt(1))
				} else {
					_, err = reg.Mint(ctx, historyNetwork, to, big.NewInt(1))
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				if _, err := db.RecordHistory(ctx, nil, wallets.ChainCursor{Network: historyNetwork, Block: 0,
					Hash: genesisHash(ctx, b, reg), At: time.Now()}, nil); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if _, err := svc.IndexNetworks(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(benchBlocks*b.N)/b.Elapsed().Seconds(), "blocks/s")
		})
	}
}

func genesisHash(ctx context.Context, b *testing.B, reg *registry.Registry) string {
	bk, err := reg.Get(ctx, historyNetwork)
	if err != nil {
		b.Fatal(err)
	}
	h, err := bk.BlockHash(ctx, 0)
	if err != nil {
		b.Fatal(err)
	}
	return h.Hex()
}
