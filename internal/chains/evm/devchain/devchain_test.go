package devchain

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"log/slog"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/params"
)

func start(t *testing.T, o Options) *Chain {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Start(ctx, o)
	if err != nil {
		t.Fatalf("Start(%+v): %v", o, err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newKey(t *testing.T) (*ecdsa.PrivateKey, common.Address) {
	t.Helper()
	k, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k, crypto.PubkeyToAddress(k.PublicKey)
}

func ether(n int64) *big.Int { return new(big.Int).Mul(big.NewInt(n), big.NewInt(params.Ether)) }

func balance(t *testing.T, c *Chain, a common.Address) *big.Int {
	t.Helper()
	b, err := c.Client().BalanceAt(ctxT(t), a, nil)
	if err != nil {
		t.Fatalf("BalanceAt(%s): %v", a, err)
	}
	return b
}

// call runs a read-only TestToken method and returns its single output.
func call(t *testing.T, c *Chain, method string, args ...any) any {
	t.Helper()
	token, _, _ := c.Token()
	data, err := tokenABI.Pack(method, args...)
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.Client().CallContract(ctxT(t), ethereum.CallMsg{To: &token, Data: data}, nil)
	if err != nil {
		t.Fatalf("call %s: %v", method, err)
	}
	vs, err := tokenABI.Unpack(method, out)
	if err != nil || len(vs) != 1 {
		t.Fatalf("unpack %s: %v (%d values)", method, err, len(vs))
	}
	return vs[0]
}

func tokenBalance(t *testing.T, c *Chain, a common.Address) *big.Int {
	t.Helper()
	return call(t, c, "balanceOf", a).(*big.Int)
}

// signedTx builds an EIP-1559 transaction from key, signed the way a wallet would.
func signedTx(t *testing.T, c *Chain, key *ecdsa.PrivateKey, to common.Address, value *big.Int, data []byte) *types.Transaction {
	t.Helper()
	ctx := ctxT(t)
	from := crypto.PubkeyToAddress(key.PublicKey)
	nonce, err := c.Client().PendingNonceAt(ctx, from)
	if err != nil {
		t.Fatal(err)
	}
	tip, err := c.Client().SuggestGasTipCap(ctx)
	if err != nil {
		t.Fatal(err)
	}
	head, err := c.Client().HeaderByNumber(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	gas, err := c.Client().EstimateGas(ctx, ethereum.CallMsg{From: from, To: &to, Value: value, Data: data})
	if err != nil {
		t.Fatalf("EstimateGas: %v", err)
	}
	id := new(big.Int).SetUint64(c.ChainID())
	tx, err := types.SignTx(types.NewTx(&types.DynamicFeeTx{
		ChainID:   id,
		Nonce:     nonce,
		GasTipCap: tip,
		GasFeeCap: new(big.Int).Add(new(big.Int).Mul(head.BaseFee, big.NewInt(2)), tip),
		Gas:       gas,
		To:        &to,
		Value:     value,
		Data:      data,
	}), types.LatestSignerForChainID(id), key)
	if err != nil {
		t.Fatal(err)
	}
	return tx
}

// waitReceipt polls for the receipt every 5 ms until deadline.
func waitReceipt(ctx context.Context, c *Chain, h common.Hash) (*types.Receipt, error) {
	for {
		r, err := c.Client().TransactionReceipt(ctx, h)
		if err == nil {
			return r, nil
		}
		if !errors.Is(err, ethereum.NotFound) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func TestChain(t *testing.T) {
	c := start(t, Options{ChainID: 11155111})
	ctx := ctxT(t)

	if id, err := c.Client().ChainID(ctx); err != nil || id.Uint64() != 11155111 || c.ChainID() != 11155111 {
		t.Fatalf("ChainID = %v, %v (method %d), want 11155111", id, err, c.ChainID())
	}

	t.Run("fund", func(t *testing.T) {
		_, to := newKey(t)
		h, err := c.Fund(ctxT(t), to, ether(3))
		if err != nil {
			t.Fatal(err)
		}
		if got := balance(t, c, to); got.Cmp(ether(3)) != 0 {
			t.Fatalf("balance = %s, want %s", got, ether(3))
		}
		r, err := c.Client().TransactionReceipt(ctxT(t), h)
		if err != nil || r.Status != types.ReceiptStatusSuccessful {
			t.Fatalf("receipt of %s: %v, %+v", h, err, r)
		}
		if _, err := c.Fund(ctxT(t), to, big.NewInt(0)); err == nil {
			t.Fatal("Fund(0) succeeded")
		}
	})

	t.Run("token", func(t *testing.T) {
		addr, sym, dec := c.Token()
		if sym != "TEST" || dec != 6 {
			t.Fatalf("Token() = %s, %q, %d", addr, sym, dec)
		}
		faucet, _ := faucetKey(11155111)
		if want := crypto.CreateAddress(crypto.PubkeyToAddress(faucet.PublicKey), 0); addr != want {
			t.Fatalf("token at %s, want the faucet's nonce-0 address %s", addr, want)
		}
		if code, err := c.Client().CodeAt(ctxT(t), addr, nil); err != nil || len(code) == 0 {
			t.Fatalf("no code at the token: %v", err)
		}
		if got := call(t, c, "symbol"); got != "TEST" {
			t.Fatalf("symbol() = %v", got)
		}
		if got := call(t, c, "decimals"); got != uint8(6) {
			t.Fatalf("decimals() = %v", got)
		}

		key, alice := newKey(t)
		_, bob := newKey(t)
		amount := big.NewInt(1_500_000) // 1.5 TEST
		if _, err := c.Mint(ctxT(t), alice, amount); err != nil {
			t.Fatal(err)
		}
		if got := tokenBalance(t, c, alice); got.Cmp(amount) != 0 {
			t.Fatalf("balanceOf(alice) = %s, want %s", got, amount)
		}

		// alice pays her own gas: fund her, then transfer with a transaction she signs.
		if _, err := c.Fund(ctxT(t), alice, ether(1)); err != nil {
			t.Fatal(err)
		}
		data, err := tokenABI.Pack("transfer", bob, big.NewInt(400_000))
		if err != nil {
			t.Fatal(err)
		}
		tx := signedTx(t, c, key, addr, nil, data)
		r, err := c.Client().SendTransactionSync(ctxT(t), tx, nil)
		if err != nil || r.Status != types.ReceiptStatusSuccessful {
			t.Fatalf("transfer: %v, %+v", err, r)
		}
		if len(r.Logs) != 1 {
			t.Fatalf("transfer emitted %d logs, want 1 Transfer", len(r.Logs))
		}
		if got := tokenBalance(t, c, alice); got.Cmp(big.NewInt(1_100_000)) != 0 {
			t.Fatalf("balanceOf(alice) = %s, want 1100000", got)
		}
		if got := tokenBalance(t, c, bob); got.Cmp(big.NewInt(400_000)) != 0 {
			t.Fatalf("balanceOf(bob) = %s, want 400000", got)
		}

		// eth_getLogs works without the log index (LogNoHistory): Transfers to bob.
		logs, err := c.Client().FilterLogs(ctxT(t), ethereum.FilterQuery{
			FromBlock: big.NewInt(0),
			Addresses: []common.Address{addr},
			Topics:    [][]common.Hash{{tokenABI.Events["Transfer"].ID}, nil, {common.BytesToHash(bob.Bytes())}},
		})
		if err != nil || len(logs) != 1 || logs[0].TxHash != tx.Hash() {
			t.Fatalf("FilterLogs = %d logs, %v; want the one transfer %s", len(logs), err, tx.Hash())
		}
	})

	t.Run("eip1559-transfer-mined-promptly", func(t *testing.T) {
		key, from := newKey(t)
		_, to := newKey(t)
		if _, err := c.Fund(ctxT(t), from, ether(1)); err != nil {
			t.Fatal(err)
		}
		// Polled the way a wallet backend would: send, then poll the receipt every 5 ms.
		tx := signedTx(t, c, key, to, big.NewInt(12345), nil)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		begin := time.Now()
		if err := c.Client().SendTransaction(ctx, tx); err != nil {
			t.Fatal(err)
		}
		r, err := waitReceipt(ctx, c, tx.Hash())
		if err != nil {
			t.Fatalf("not mined within a second: %v", err)
		}
		polled := time.Since(begin)
		if r.Status != types.ReceiptStatusSuccessful || r.Type != types.DynamicFeeTxType {
			t.Fatalf("receipt %+v", r)
		}
		// And with eth_sendRawTransactionSync.
		tx = signedTx(t, c, key, to, big.NewInt(1), nil)
		begin = time.Now()
		if _, err := c.Client().SendTransactionSync(ctx, tx, nil); err != nil {
			t.Fatal(err)
		}
		synced := time.Since(begin)
		t.Logf("mined: %v (send + 5 ms receipt polls), %v (eth_sendRawTransactionSync)", polled, synced)
		if got := balance(t, c, to); got.Cmp(big.NewInt(12346)) != 0 {
			t.Fatalf("balance = %s, want 12346", got)
		}
	})

	t.Run("fee-cap-below-base-fee-waits", func(t *testing.T) {
		// The pool accepts such a transaction as executable but no block can include
		// it: sealing must stop instead of producing empty blocks forever.
		key, from := newKey(t)
		_, to := newKey(t)
		if _, err := c.Fund(ctxT(t), from, ether(1)); err != nil {
			t.Fatal(err)
		}
		id := new(big.Int).SetUint64(c.ChainID())
		tx, err := types.SignTx(types.NewTx(&types.DynamicFeeTx{
			ChainID: id, Nonce: 0, GasTipCap: big.NewInt(1), GasFeeCap: big.NewInt(2), Gas: 21000, To: &to, Value: big.NewInt(1),
		}), types.LatestSignerForChainID(id), key)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Client().SendTransaction(ctxT(t), tx); err != nil {
			t.Skipf("the pool refused it outright: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
		h1, err := c.Client().BlockNumber(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		if h2, err := c.Client().BlockNumber(ctxT(t)); err != nil || h2 != h1 {
			t.Fatalf("still sealing: head %d, then %d (%v)", h1, h2, err)
		}
		// The stuck transaction blocks only its sender.
		_, other := newKey(t)
		if _, err := c.Fund(ctxT(t), other, big.NewInt(1)); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("concurrent-faucet", func(t *testing.T) {
		// Fund and Mint share the faucet's nonce sequence.
		_, to := newKey(t)
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for i := 0; i < 4; i++ {
			wg.Add(2)
			go func() { defer wg.Done(); _, err := c.Fund(ctxT(t), to, big.NewInt(10)); errs <- err }()
			go func() { defer wg.Done(); _, err := c.Mint(ctxT(t), to, big.NewInt(10)); errs <- err }()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if got := balance(t, c, to); got.Cmp(big.NewInt(40)) != 0 {
			t.Fatalf("balance = %s, want 40", got)
		}
		if got := tokenBalance(t, c, to); got.Cmp(big.NewInt(40)) != 0 {
			t.Fatalf("token balance = %s, want 40", got)
		}
	})
}

func TestRestartKeepsChain(t *testing.T) {
	dir := t.TempDir()
	_, alice := newKey(t)

	c, err := Start(ctxT(t), Options{DataDir: dir, ChainID: 11155111})
	if err != nil {
		t.Fatal(err)
	}
	token, _, _ := c.Token()
	if _, err := c.Fund(ctxT(t), alice, ether(2)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Mint(ctxT(t), alice, big.NewInt(777)); err != nil {
		t.Fatal(err)
	}
	head, err := c.Client().BlockNumber(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	// A cancelled ctx fails the start-up checks; that must not count as damage.
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if c, err := Start(cancelled, Options{DataDir: dir, ChainID: 11155111}); err == nil {
		c.Close()
		t.Fatal("Start with a cancelled ctx succeeded")
	}

	var logs bytes.Buffer
	c = start(t, Options{DataDir: dir, ChainID: 11155111, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if got, _, _ := c.Token(); got != token {
		t.Fatalf("token moved: %s, was %s", got, token)
	}
	// >=, not ==: the simulated beacon sometimes seals an extra empty block.
	if got, err := c.Client().BlockNumber(ctxT(t)); err != nil || got < head {
		t.Fatalf("head after restart = %d, %v; want at least %d", got, err, head)
	}
	if got := balance(t, c, alice); got.Cmp(ether(2)) != 0 {
		t.Fatalf("balance after restart = %s, want %s", got, ether(2))
	}
	if got := tokenBalance(t, c, alice); got.Cmp(big.NewInt(777)) != 0 {
		t.Fatalf("token balance after restart = %s, want 777", got)
	}
	if logs.Len() > 0 {
		t.Fatalf("restart logged:\n%s", logs.String())
	}
	// The restarted chain still mines.
	if _, err := c.Mint(ctxT(t), alice, big.NewInt(1)); err != nil {
		t.Fatal(err)
	}
}

func TestWrongChainIDRefused(t *testing.T) {
	dir := t.TempDir()
	c, err := Start(ctxT(t), Options{DataDir: dir, ChainID: 8453})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	// The directory of chain 8453 put where chain 84532's belongs.
	if err := os.Rename(filepath.Join(dir, "8453"), filepath.Join(dir, "84532")); err != nil {
		t.Fatal(err)
	}
	if c, err := Start(ctxT(t), Options{DataDir: dir, ChainID: 84532}); err == nil {
		c.Close()
		t.Fatal("Start accepted the data of chain 8453 for chain 84532")
	} else if !strings.Contains(err.Error(), "chain with id 8453") {
		t.Fatalf("unexpected error: %v", err)
	}

	// A non-empty directory that is not ours is refused too, and left alone.
	other := filepath.Join(dir, "1")
	if err := os.MkdirAll(other, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(other, "precious"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if c, err := Start(ctxT(t), Options{DataDir: dir, ChainID: 1}); err == nil {
		c.Close()
		t.Fatal("Start used a foreign directory")
	}
	if _, err := os.Stat(filepath.Join(other, "precious")); err != nil {
		t.Fatalf("foreign file touched: %v", err)
	}
}

// A head below the recorded one means the database lost blocks: the chain is rebuilt.
func TestLostBlocksRebuild(t *testing.T) {
	dir := t.TempDir()
	_, alice := newKey(t)
	c, err := Start(ctxT(t), Options{DataDir: dir, ChainID: 84532})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Fund(ctxT(t), alice, ether(1)); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "84532", stateFileName)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil || st.ChainID != 84532 || st.Head < 2 {
		t.Fatalf("devchain.json = %s (%v)", b, err)
	}
	st.Head += 100
	if err := writeState(path, st, false); err != nil {
		t.Fatal(err)
	}

	var logs bytes.Buffer
	c = start(t, Options{DataDir: dir, ChainID: 84532, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "below the recorded head") {
		t.Fatalf("no warning about the rebuild:\n%s", logs.String())
	}
	if got := balance(t, c, alice); got.Sign() != 0 {
		t.Fatalf("balance after rebuild = %s, want 0", got)
	}
	token, _, _ := c.Token()
	if code, err := c.Client().CodeAt(ctxT(t), token, nil); err != nil || len(code) == 0 {
		t.Fatalf("token not redeployed: %v", err)
	}
	if n, err := c.Client().NonceAt(ctxT(t), c.faucet, nil); err != nil || n != 1 {
		t.Fatalf("faucet nonce after rebuild = %d, %v; want 1 (the token deployment)", n, err)
	}
}

// A database whose genesis differs from the one this code builds (here: chain 1's data
// relabelled as chain 2's) is rebuilt, not used and not refused.
func TestIncompatibleGenesisRebuild(t *testing.T) {
	dir := t.TempDir()
	c, err := Start(ctxT(t), Options{DataDir: dir, ChainID: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "1"), filepath.Join(dir, "2")); err != nil {
		t.Fatal(err)
	}
	if err := writeState(filepath.Join(dir, "2", stateFileName), state{ChainID: 2}, false); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	c = start(t, Options{DataDir: dir, ChainID: 2, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if !strings.Contains(logs.String(), "incompatible genesis") {
		t.Fatalf("no warning about the rebuild:\n%s", logs.String())
	}
	if id, err := c.Client().ChainID(ctxT(t)); err != nil || id.Uint64() != 2 {
		t.Fatalf("eth_chainId = %v, %v; want 2", id, err)
	}
}

// TestKill9 funds an account in a child process that then kills itself with SIGKILL,
// and checks the restarted chain still has the funds.
func TestKill9(t *testing.T) {
	if dir := os.Getenv("DEVCHAIN_KILL9_DIR"); dir != "" {
		c, err := Start(context.Background(), Options{DataDir: dir, ChainID: 11155111})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 5; i++ {
			if _, err := c.Fund(context.Background(), common.HexToAddress("0xa11ce"), big.NewInt(1000)); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(50 * time.Millisecond) // let the head watcher record the last block
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKill9$", "-test.count=1")
	cmd.Env = append(os.Environ(), "DEVCHAIN_KILL9_DIR="+dir)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die by SIGKILL: %v\n%s", err, out)
	}

	var logs bytes.Buffer
	c := start(t, Options{DataDir: dir, ChainID: 11155111, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if logs.Len() > 0 {
		t.Fatalf("restart after kill -9 logged:\n%s", logs.String())
	}
	if got := balance(t, c, common.HexToAddress("0xa11ce")); got.Cmp(big.NewInt(5000)) != 0 {
		t.Fatalf("balance after kill -9 = %s, want 5000", got)
	}
}

func TestTwoChainsAtOnce(t *testing.T) {
	dir := t.TempDir() // one parent directory for both, as the server would use
	var (
		wg     sync.WaitGroup
		chains [2]*Chain
		errs   [2]error
	)
	for i, id := range []uint64{8453, 84532} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			chains[i], errs[i] = Start(ctxT(t), Options{DataDir: dir, ChainID: id})
		}()
	}
	wg.Wait()
	for i := range chains {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		t.Cleanup(func() { chains[i].Close() })
	}
	base, sepolia := chains[0], chains[1]

	_, alice := newKey(t)
	if _, err := base.Fund(ctxT(t), alice, big.NewInt(8453)); err != nil {
		t.Fatal(err)
	}
	if _, err := sepolia.Fund(ctxT(t), alice, big.NewInt(84532)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		c    *Chain
		want int64
	}{{base, 8453}, {sepolia, 84532}} {
		id, err := tc.c.Client().ChainID(ctxT(t))
		if err != nil || id.Uint64() != tc.c.ChainID() {
			t.Fatalf("eth_chainId = %v, %v; want %d", id, err, tc.c.ChainID())
		}
		if got := balance(t, tc.c, alice); got.Int64() != tc.want {
			t.Fatalf("chain %d: balance = %s, want %d", tc.c.ChainID(), got, tc.want)
		}
	}
	// Same deployer derivation, different chain ids: different faucets and tokens.
	if a, _, _ := base.Token(); a == func() common.Address { b, _, _ := sepolia.Token(); return b }() {
		t.Fatalf("both chains have the token at %s", a)
	}
	// Also one in memory next to them.
	mem := start(t, Options{ChainID: 8453})
	if got := balance(t, mem, alice); got.Sign() != 0 {
		t.Fatalf("in-memory chain sees %s", got)
	}
}
