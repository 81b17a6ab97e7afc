package wallets_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
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

// historyStore adapts the store to wallets.HistoryStore, with no hook.
type historyStore struct{ *store.DB }

func (s historyStore) RecordHistory(ctx context.Context, es []wallets.HistoryEvent, c wallets.ChainCursor) (int, error) {
	return s.DB.RecordHistory(ctx, es, c, nil)
}

type historyFixture struct {
	db     *store.DB
	reg    *registry.Registry
	svc    *wallets.Service
	org    string
	chain  *registry.Backend
	signer types.Signer
}

const historyNetwork = "BaseSepolia"

func newHistoryFixture(t testing.TB, e testutil.Engine) *historyFixture {
	t.Helper()
	ctx := t.Context()
	kek := make([]byte, 32)
	rand.Read(kek)
	ring, err := secrets.NewRing([]secrets.KEK{{ID: "k1", Key: kek}})
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(ctx, e.DSN(t), ring)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx, nil); err != nil {
		t.Fatal(err)
	}
	org := identity.Org{ID: ids.New("or"), Name: "org", CreatedAt: time.Now().UTC()}
	if err := db.CreateOrg(ctx, org); err != nil {
		t.Fatal(err)
	}
	reg := registry.New(nil, "", nil)
	t.Cleanup(func() { reg.Close() })
	svc := wallets.NewService(db, nil, db, time.Now)
	svc.SetHistory(historyStore{db}, reg, nil)
	return &historyFixture{db: db, reg: reg, svc: svc, org: org.ID}
}

// wallet stores a wallet whose address is that of a fresh key the test holds, so the test
// can send transactions from it.
func (f *historyFixture) wallet(t testing.TB) (wallets.Wallet, *ecdsa.PrivateKey) {
	t.Helper()
	pk, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC().Truncate(time.Millisecond)
	k := keys.Key{ID: ids.NewAt("key", at), OrgID: f.org, Scheme: keys.SchemeECDSA, Curve: keys.CurveSecp256k1,
		PublicKey: crypto.CompressPubkey(&pk.PublicKey), Sealed: []byte{1}, Status: keys.Active, CreatedAt: at, UpdatedAt: at}
	w := wallets.Wallet{ID: ids.NewAt("wa", at), OrgID: f.org, Network: historyNetwork, Address: crypto.PubkeyToAddress(pk.PublicKey).Hex(),
		Key: k, Status: wallets.Active, Tags: []string{}, CreatedAt: at, UpdatedAt: at}
	if err := f.db.CreateWallet(t.Context(), w, true); err != nil {
		t.Fatal(err)
	}
	return w, pk
}

// send signs and sends a transaction from key and waits for its receipt.
func (f *historyFixture) send(t *testing.T, key *ecdsa.PrivateKey, to common.Address, value *big.Int, data []byte) *types.Receipt {
	t.Helper()
	ctx := t.Context()
	c := f.chain.Client
	from := crypto.PubkeyToAddress(key.PublicKey)
	nonce, err := c.PendingNonceAt(ctx, from)
	if err != nil {
		t.Fatal(err)
	}
	head, err := c.HeaderByNumber(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	tip := big.NewInt(1e9)
	tx, err := types.SignNewTx(key, f.signer, &types.DynamicFeeTx{ChainID: f.signer.ChainID(), Nonce: nonce, GasTipCap: tip,
		GasFeeCap: new(big.Int).Add(new(big.Int).Mul(head.BaseFee, big.NewInt(2)), tip), Gas: 500000, To: &to, Value: value, Data: data})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SendTransaction(ctx, tx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		rc, err := c.TransactionReceipt(ctx, tx.Hash())
		if err == nil {
			return rc
		}
		if time.Now().After(deadline) {
			t.Fatalf("transaction %s not mined: %v", tx.Hash(), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (f *historyFixture) history(t *testing.T, w wallets.Wallet) []string {
	t.Helper()
	es, err := f.db.ListHistory(t.Context(), w.OrgID, w.ID, wallets.HistoryQuery{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		s := fmt.Sprintf("%s %s %s %s->%s", e.Direction, e.Kind, e.Value, e.From, e.To)
		if e.Fee != "" {
			s += " fee"
		}
		out = append(out, s)
	}
	return out
}

func (f *historyFixture) index(t *testing.T) int {
	t.Helper()
	n, err := f.svc.IndexNetworks(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestIndexHistory drives the indexer over a real dev chain: faucet funding and minting,
// a self-transfer, a token transfer sent by the wallet's own key, a reverted transfer, a
// rerun and a rebuilt chain.
func TestIndexHistory(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		ctx := t.Context()
		f := newHistoryFixture(t, e)
		a, keyA := f.wallet(t)
		b, _ := f.wallet(t)

		// A dev chain nobody has started cannot have changed: the indexer does not start it.
		if n := f.index(t); n != 0 {
			t.Fatalf("indexed %d events before the chain ran", n)
		}
		if _, ok, _ := f.reg.Running(ctx, historyNetwork); ok {
			t.Fatal("the indexer started a dev chain")
		}

		var err error
		if f.chain, err = f.reg.Get(ctx, historyNetwork); err != nil {
			t.Fatal(err)
		}
		f.signer = types.LatestSignerForChainID(new(big.Int).SetUint64(f.chain.Network.ChainID))
		tok, _ := f.reg.FaucetToken(ctx, historyNetwork)
		token := common.HexToAddress(tok.Contract)
		if _, err := f.reg.Fund(ctx, historyNetwork, a.Address, big.NewInt(1e18)); err != nil {
			t.Fatal(err)
		}
		if _, err := f.reg.Mint(ctx, historyNetwork, a.Address, big.NewInt(1000)); err != nil {
			t.Fatal(err)
		}
		addrA, addrB := common.HexToAddress(a.Address), common.HexToAddress(b.Address)
		self := f.send(t, keyA, addrA, big.NewInt(42), nil)
		transfer := func(to common.Address, amount int64) []byte { // EIP-20 transfer(address,uint256)
			return append(append([]byte{0xa9, 0x05, 0x9c, 0xbb}, common.LeftPadBytes(to.Bytes(), 32)...),
				common.LeftPadBytes(big.NewInt(amount).Bytes(), 32)...)
		}
		sent := f.send(t, keyA, token, nil, transfer(addrB, 300))
		reverted := f.send(t, keyA, token, nil, transfer(addrB, 1_000_000))
		if self.Status != 1 || sent.Status != 1 || reverted.Status != 0 {
			t.Fatalf("receipt statuses %d %d %d (gas %d %d), want 1 1 0", self.Status, sent.Status, reverted.Status, sent.GasUsed, reverted.GasUsed)
		}

		if n := f.index(t); n != 6 {
			t.Fatalf("indexed %d events, want 6", n)
		}
		zero := common.Address{}.Hex()
		wantA := []string{
			"Out Erc20Transfer 300 " + a.Address + "->" + b.Address + " fee",
			"Out NativeTransfer 42 " + a.Address + "->" + a.Address + " fee",
			"In NativeTransfer 42 " + a.Address + "->" + a.Address,
			"In Erc20Transfer 1000 " + zero + "->" + a.Address,
		}
		gotA := f.history(t, a)
		if len(gotA) != 5 || !slices.Equal(gotA[:4], wantA) || !strings.HasPrefix(gotA[4], "In NativeTransfer 1000000000000000000 ") || !strings.HasSuffix(gotA[4], "->"+a.Address) {
			t.Fatalf("history of A:\n%q\nwant\n%q\n+ the faucet's funding", gotA, wantA)
		}
		if gotB := f.history(t, b); !slices.Equal(gotB, []string{"In Erc20Transfer 300 " + a.Address + "->" + b.Address}) {
			t.Fatalf("history of B: %q", gotB)
		}
		es, _ := f.db.ListHistory(ctx, a.OrgID, a.ID, wallets.HistoryQuery{Limit: 1})
		fee := new(big.Int).Mul(new(big.Int).SetUint64(sent.GasUsed), sent.EffectiveGasPrice)
		if es[0].Fee != fee.String() || es[0].TxHash != sent.TxHash.Hex() || es[0].BlockNumber != sent.BlockNumber.Uint64() ||
			es[0].LogIndex != int(sent.Logs[0].Index) || es[0].Symbol != tok.Symbol || es[0].Decimals != tok.Decimals {
			t.Fatalf("token transfer event %+v, want fee %s, tx %s", es[0], fee, sent.TxHash)
		}

		// Nothing new: nothing added, and the cursor is at the head (a loaded dev chain may
		// seal an empty block meanwhile).
		head, _ := f.chain.Head(ctx)
		if n := f.index(t); n != 0 {
			t.Fatalf("a rerun indexed %d events", n)
		}
		if cur, err := f.db.GetChainCursor(ctx, historyNetwork); err != nil || cur.Block < head {
			t.Fatalf("cursor %+v, %v; want block %d or later", cur, err, head)
		}

		// A chain rebuilt under the cursor (devchain wipes a damaged data directory): the
		// next block does not follow the cursor, so indexing starts again from genesis and
		// finds the same events, which are already stored.
		if _, err := f.reg.Fund(ctx, historyNetwork, b.Address, big.NewInt(5)); err != nil {
			t.Fatal(err)
		}
		rebuilt := func(why string, block uint64, hash common.Hash, wantAfter int) {
			t.Helper()
			if _, err := f.db.RecordHistory(ctx, nil, wallets.ChainCursor{Network: historyNetwork, Block: block,
				Hash: hash.Hex(), At: time.Now()}, nil); err != nil {
				t.Fatal(err)
			}
			if n := f.index(t); n != 0 {
				t.Fatalf("%s: the reset indexed %d events", why, n)
			}
			if cur, _ := f.db.GetChainCursor(ctx, historyNetwork); cur.Block != 0 {
				t.Fatalf("%s: cursor %+v, want genesis", why, cur)
			}
			if n := f.index(t); n != wantAfter {
				t.Fatalf("%s: reindexing from genesis added %d events, want %d", why, n, wantAfter)
			}
		}
		rebuilt("next block does not follow the cursor", head, common.Hash{1}, 1) // only B's new funding is new
		rebuilt("head below the cursor", head+100, common.Hash{2}, 0)
	})
}

// rpcChains serves a network through a backend without a dev chain handle, as a configured
// RPC endpoint is served: the indexer then waits for confirmations and starts at the head.
type rpcChains struct{ b *registry.Backend }

func (c rpcChains) Running(context.Context, string) (*registry.Backend, bool, error) {
	return c.b, true, nil
}

// TestIndexHistoryRPC checks the configured-RPC rules over a real chain: nothing is read
// before the chain has RPCConfirmations blocks, the first run starts at the confirmed head
// (never at genesis), and a block is read only once it is confirmed.
func TestIndexHistoryRPC(t *testing.T) {
	e := testutil.Engines(t)[0] // the chain rules are under test, not the database
	ctx := t.Context()
	f := newHistoryFixture(t, e)
	a, _ := f.wallet(t)
	dev, err := f.reg.Get(ctx, historyNetwork)
	if err != nil {
		t.Fatal(err)
	}
	f.chain = &registry.Backend{Network: dev.Network, Client: dev.Client}
	f.svc.SetHistory(historyStore{f.db}, rpcChains{f.chain}, nil)
	fund := func(n int) {
		t.Helper()
		for range n {
			if _, err := f.reg.Fund(ctx, historyNetwork, a.Address, big.NewInt(7)); err != nil {
				t.Fatal(err)
			}
		}
	}
	cursor := func() uint64 {
		t.Helper()
		c, err := f.db.GetChainCursor(ctx, historyNetwork)
		if err != nil {
			t.Fatal(err)
		}
		return c.Block
	}
	fund(2) // blocks 2 and 3 (the test token is block 1)
	if n := f.index(t); n != 0 {
		t.Fatalf("indexed %d events before any block was confirmed", n)
	}
	if _, err := f.db.GetChainCursor(ctx, historyNetwork); err == nil {
		t.Fatal("a cursor was set before any block was confirmed")
	}
	fund(registry.RPCConfirmations + 2) // head 3+14 = 17
	head, _ := f.chain.Head(ctx)
	if n := f.index(t); n != 0 {
		t.Fatalf("the first run indexed %d events; it must start at the head", n)
	}
	if got, now := cursor(), func() uint64 { h, _ := f.chain.Head(ctx); return h }(); got < head-registry.RPCConfirmations ||
		got > now-registry.RPCConfirmations {
		t.Fatalf("first cursor %d, want the confirmed head (%d..%d)", got, head-registry.RPCConfirmations, now-registry.RPCConfirmations)
	}
	// More fundings confirm more blocks (a loaded dev chain may also seal empty ones, so a
	// newly confirmed block can hold no funding: fund until one is indexed): exactly the
	// fundings in the newly confirmed blocks are indexed.
	first := cursor()
	n := 0
	for round := 0; n == 0 && round < 10; round++ {
		fund(1)
		n += f.index(t)
	}
	last := cursor()
	if now, _ := f.chain.Head(ctx); last <= first || last+registry.RPCConfirmations > now {
		t.Fatalf("cursor %d -> %d with head %d: want it to advance to a confirmed block", first, last, now)
	}
	txs := 0
	for b := first + 1; b <= last; b++ {
		blk, err := f.chain.Client.BlockByNumber(ctx, new(big.Int).SetUint64(b))
		if err != nil {
			t.Fatal(err)
		}
		txs += len(blk.Transactions())
	}
	es, _ := f.db.ListHistory(ctx, a.OrgID, a.ID, wallets.HistoryQuery{Limit: 100})
	if n < 1 || n != txs || len(es) != n {
		t.Fatalf("indexed %d events (%d stored) for %d fundings in blocks %d..%d", n, len(es), txs, first+1, last)
	}
	for _, e := range es {
		if e.BlockNumber <= first || e.BlockNumber > last || e.Direction != wallets.In {
			t.Fatalf("event %+v outside the newly confirmed blocks %d..%d", e, first+1, last)
		}
	}
}
