package wallets_test

import (
	"context"
	"crypto/rand"
	"math/big"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/countersign/countersign/internal/chains/registry"
	"github.com/countersign/countersign/internal/identity"
	"github.com/countersign/countersign/internal/ids"
	"github.com/countersign/countersign/internal/keys"
	"github.com/countersign/countersign/internal/secrets"
	"github.com/countersign/countersign/internal/store"
	"github.com/countersign/countersign/internal/testutil"
	"github.com/countersign/countersign/internal/wallets"
)

// BenchmarkIndexHistory is one indexing of benchBlocks dev-chain blocks from genesis (the
// cursor is reset before each), on SQLite, with one watched wallet that none of them
// touches:
//   - plain: each block holds one native transfer between accounts without code, which
//     needs no trace (one code read per recipient decides it);
//   - contract: each block holds one call to the test token, which is traced.
//
// Run: go test -run '^$' -bench BenchmarkIndexHistory -benchtime 5x ./internal/wallets/
func BenchmarkIndexHistory(b *testing.B) {
	const benchBlocks = 200
	for _, kind := range []string{"plain", "contract"} {
		b.Run(kind, func(b *testing.B) {
			ctx := context.Background()
			e := testutil.Engines(b)[0]
			kek := make([]byte, 32)
			rand.Read(kek)
			ring, err := secrets.NewRing([]secrets.KEK{{ID: "k1", Key: kek}})
			if err != nil {
				b.Fatal(err)
			}
			db, err := store.Open(ctx, e.DSN(b), ring)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			if err := db.Migrate(ctx, nil); err != nil {
				b.Fatal(err)
			}
			org := identity.Org{ID: ids.New("or"), Name: "org", CreatedAt: time.Now().UTC()}
			if err := db.CreateOrg(ctx, org); err != nil {
				b.Fatal(err)
			}
			pk, _ := crypto.GenerateKey()
			at := time.Now().UTC().Truncate(time.Millisecond)
			k := keys.Key{ID: ids.NewAt("key", at), OrgID: org.ID, Scheme: keys.SchemeECDSA, Curve: keys.CurveSecp256k1,
				PublicKey: crypto.CompressPubkey(&pk.PublicKey), Sealed: []byte{1}, Status: keys.Active, CreatedAt: at, UpdatedAt: at}
			w := wallets.Wallet{ID: ids.NewAt("wa", at), OrgID: org.ID, Network: historyNetwork, Address: crypto.PubkeyToAddress(pk.PublicKey).Hex(),
				Key: k, Status: wallets.Active, Tags: []string{}, CreatedAt: at, UpdatedAt: at}
			if err := db.CreateWallet(ctx, w, true); err != nil {
				b.Fatal(err)
			}
			reg := registry.New(nil, "", nil)
			defer reg.Close()
			svc := wallets.NewService(db, nil, db, time.Now)
			svc.SetHistory(historyStore{db}, reg, nil)
			if _, err := reg.Get(ctx, historyNetwork); err != nil {
				b.Fatal(err)
			}
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
