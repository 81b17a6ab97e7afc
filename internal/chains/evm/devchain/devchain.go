// Package devchain runs an Ethereum dev chain inside the process: a go-ethereum node in
// dev mode (what `geth --dev` does) for one chain id, so that the server can offer an EVM
// network that has no RPC endpoint configured, fully offline. A simulated beacon seals a
// block as soon as a transaction enters the pool, so a transaction is mined within
// milliseconds. The node opens no port: no p2p listener, no HTTP, WebSocket, IPC or
// engine API; Client talks to it in process.
//
// Every chain has a faucet account, prefunded in the genesis block, and a test ERC-20
// (TestToken, symbol "TEST", 6 decimals like USDC) that the faucet deploys at nonce 0 of
// a fresh chain, so its address is the same on every fresh chain with the same id. Fund
// and Mint spend from the faucet. The faucet key is derived from the chain id alone
// (keccak256("countersign devchain faucet" || chainID)): anyone who reads this source
// knows it. It is a dev-only secret, good for nothing but these throw-away chains, which
// is also why TestToken lets anyone mint.
//
// Persistence. With Options.DataDir set, the chain lives in DataDir/<chainID>/ and
// survives Close and a restart. The directory holds devchain.json, which records the
// chain id (a restart with another id refuses to start, because geth itself silently
// accepts a database made for another chain id) and the latest head seen. The database
// is leveldb with the hash state scheme and no pruning: in our measurements that lost no
// block over repeated kill -9, where pebble or the path scheme lost blocks or the whole
// state. The chain is nevertheless treated as rebuildable: if at start the head is below
// the recorded one, the head state or the test token is missing, or the stored genesis
// no longer matches the one this code builds, the directory is wiped, a fresh chain
// (balances gone, token redeployed at the same address) is started, and a warning is
// logged. Power loss was not tested; leveldb does not fsync every write.
//
// Several chains may run in one process, one per chain id: nothing is global (no ports,
// per-chain directories, geth's process-wide logger and slog.Default are left alone).
//
// Client also serves geth's tracing API (debug_traceBlockByNumber, debug_traceTransaction
// with the native tracers such as callTracer): the wallet history indexer traces blocks to
// find native value moved inside contract calls. The chain is an archive (no pruning), so
// any block can be traced.
package devchain

//go:generate sh -c "cd ../../../../contracts && npm ci --no-audit --no-fund && node compile.mjs"

import (
	"context"
	"crypto/ecdsa"
	_ "embed"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core"
	"github.com/ethereum/go-ethereum/core/rawdb"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/eth"
	"github.com/ethereum/go-ethereum/eth/catalyst"
	"github.com/ethereum/go-ethereum/eth/ethconfig"
	"github.com/ethereum/go-ethereum/eth/filters"
	"github.com/ethereum/go-ethereum/eth/tracers"
	// The native tracers (callTracer among them) register themselves on import; the
	// history indexer asks debug_traceBlockByNumber for callTracer (internal transfers).
	_ "github.com/ethereum/go-ethereum/eth/tracers/native"
	"github.com/ethereum/go-ethereum/ethclient"
	"github.com/ethereum/go-ethereum/event"
	"github.com/ethereum/go-ethereum/log"
	"github.com/ethereum/go-ethereum/node"
	"github.com/ethereum/go-ethereum/p2p"
	"github.com/ethereum/go-ethereum/params"
	"github.com/ethereum/go-ethereum/rpc"
)

const (
	// nodeName names geth's instance subdirectory; fixed, because geth defaults it to
	// the executable's name, which would give a test binary and the server different chains.
	nodeName      = "countersign-devchain"
	stateFileName = "devchain.json"

	tokenName     = "Countersign Test Token"
	tokenSymbol   = "TEST"
	tokenDecimals = 6

	// txTimeout bounds the wait for a faucet transaction when ctx has no deadline.
	txTimeout = 20 * time.Second
)

// TestToken.abi and TestToken.bin are compiled from contracts/TestToken.sol by
// contracts/compile.mjs (see the go:generate line above).
var (
	//go:embed TestToken.abi
	tokenABIJSON string
	//go:embed TestToken.bin
	tokenBinHex string

	tokenABI = mustParseABI(tokenABIJSON)
)

func mustParseABI(s string) abi.ABI {
	a, err := abi.JSON(strings.NewReader(s))
	if err != nil {
		panic("devchain: embedded TestToken.abi: " + err.Error())
	}
	return a
}

// faucetBalance is the faucet's genesis balance: 10^30 wei (10^12 ETH), plenty for any
// dev use yet far from 2^256, so that sums of balances cannot overflow a uint256.
func faucetBalance() *big.Int {
	return new(big.Int).Exp(big.NewInt(10), big.NewInt(30), nil)
}

// Options configures Start.
type Options struct {
	// DataDir is the parent directory of the chain's database, which lives in
	// DataDir/<ChainID>/. "" keeps the chain in memory (tests): it is gone after Close.
	DataDir string
	ChainID uint64
	Log     *slog.Logger // may be nil
}

// Chain is one in-process dev chain (a geth dev-mode node) for one chain id.
type Chain struct {
	id     uint64
	dir    string // DataDir/<id>, "" in memory
	log    *slog.Logger
	key    *ecdsa.PrivateKey // the faucet's: a dev-only secret, see the package comment
	faucet common.Address
	token  common.Address
	signer types.Signer

	stack  *node.Node
	eth    *eth.Ethereum
	client *ethclient.Client

	txMu sync.Mutex // one faucet transaction at a time: they share one nonce sequence

	stopMining chan struct{}   // closed to stop mineLoop
	miningDone []chan struct{} // closed when mineLoop's goroutines have returned

	stateMu  sync.Mutex // serialises writes of devchain.json
	headSub  event.Subscription
	headDone chan struct{}

	closeOnce sync.Once
	closeErr  error
}

// Start starts the dev chain for o.ChainID, deploying the test token on a fresh chain.
// Run at most one Chain per chain id and DataDir at a time (a second one on the same
// directory fails: geth locks it). ctx bounds the start-up checks and the deployment.
func Start(ctx context.Context, o Options) (*Chain, error) {
	if o.ChainID == 0 {
		return nil, errors.New("devchain: chain id 0 is not valid")
	}
	logger := o.Log
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("chain_id", o.ChainID)
	key, err := faucetKey(o.ChainID)
	if err != nil {
		return nil, err
	}
	dir := ""
	if o.DataDir != "" {
		dir = filepath.Join(o.DataDir, strconv.FormatUint(o.ChainID, 10))
	}

	var recorded uint64
	if dir != "" {
		st, err := prepareDir(dir, o.ChainID)
		if err != nil {
			return nil, err
		}
		recorded = st.Head
	}
	c, err := open(dir, o.ChainID, key, logger)
	var reason string
	switch {
	case err != nil:
		var mismatch *core.GenesisMismatchError
		if dir == "" || !errors.As(err, &mismatch) {
			return nil, fmt.Errorf("devchain %d: start node: %w", o.ChainID, err)
		}
		reason = err.Error()
	case dir != "":
		reason = c.damage(ctx, recorded)
		if reason != "" || ctx.Err() != nil {
			if err := errors.Join(ctx.Err(), c.closeNode()); err != nil {
				// A cancelled ctx fails the checks: never wipe a chain for that.
				return nil, fmt.Errorf("devchain %d: check stored chain: %w", o.ChainID, err)
			}
		}
	}
	if reason != "" {
		logger.Warn("devchain: stored chain is damaged or incompatible; wiping it and starting a fresh chain",
			"dir", dir, "reason", reason)
		if err := os.RemoveAll(dir); err != nil {
			return nil, fmt.Errorf("devchain %d: wipe %s: %w", o.ChainID, dir, err)
		}
		if _, err := prepareDir(dir, o.ChainID); err != nil {
			return nil, err
		}
		if c, err = open(dir, o.ChainID, key, logger); err != nil {
			return nil, fmt.Errorf("devchain %d: start node: %w", o.ChainID, err)
		}
	}

	if err := c.ensureToken(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("devchain %d: %w", o.ChainID, err), c.closeNode())
	}
	if dir != "" {
		if err := c.saveHead(c.eth.BlockChain().CurrentBlock().Number.Uint64()); err != nil {
			return nil, errors.Join(err, c.closeNode())
		}
		c.watchHead()
	}
	return c, nil
}

// open builds and starts the node. The caller owns dir (already prepared).
func open(dir string, id uint64, key *ecdsa.PrivateKey, logger *slog.Logger) (*Chain, error) {
	faucet := crypto.PubkeyToAddress(key.PublicKey)
	stack, err := node.New(&node.Config{
		Name:    nodeName,
		DataDir: dir,
		// Dev mode: no networking at all. node.DefaultConfig.P2P would listen on :30303
		// with NAT and discovery. No HTTP/WS/IPC/auth endpoint is configured either.
		P2P:      p2p.Config{NoDiscovery: true, NoDial: true, MaxPeers: 0, ListenAddr: ""},
		DBEngine: "leveldb",
		// Only the node and p2p layers log through this, and only their errors (their
		// warnings include "P2P server will be useless", which is the point here). The
		// rest of geth logs to its root logger, which discards by default.
		// log.SetDefault is never called: it would also replace slog.Default.
		Logger: log.NewLogger(errorsOnly{logger.Handler()}),
	})
	if err != nil {
		return nil, err
	}

	cfg := ethconfig.Defaults // a copy; pointer fields are replaced, never written through
	cfg.Genesis = genesis(id, faucet)
	cfg.NetworkId = id
	cfg.SyncMode = ethconfig.FullSync
	// leveldb + hash scheme + archive: the combination that survived kill -9 (see the
	// package comment). The caches are sized for a dev chain, not mainnet (2 GB+).
	cfg.StateScheme = rawdb.HashScheme
	cfg.NoPruning = true
	cfg.DatabaseCache = 64
	cfg.DatabaseHandles = 64
	cfg.TrieCleanCache = 16
	cfg.TrieDirtyCache = 16
	cfg.SnapshotCache = 16
	cfg.FilterLogCacheSize = 8
	// No log index: eth_getLogs scans blocks (bloom first), which is fast on a dev
	// chain, while the index cost seconds at every start and stop (it reloads and
	// rewrites its maps), most of a restart under -race.
	cfg.LogNoHistory = true
	// The miner's minimum tip equals the pool's (1 wei), as in geth --dev; with the
	// default (0.001 gwei) the pool would accept transactions no block includes.
	cfg.Miner.GasPrice = big.NewInt(1)
	// No local-transaction tracker: with it, a transaction the pool refuses for a
	// "temporary" reason is reported as sent and retried later, and every sent
	// transaction is journaled and held in memory for a minute. Here the caller gets the
	// pool's answer, as from a public RPC endpoint.
	cfg.TxPool.NoLocals = true
	cfg.TxPool.Journal = ""
	// One sender may have many transactions in flight: the server's broadcast jobs send a
	// wallet's nonces concurrently, so some arrive ahead of a lower one. geth keeps at most
	// AccountQueue (64) such gapped transactions per sender and silently drops the rest,
	// which their jobs only notice and resend seconds later (a burst from one wallet then
	// drained at a tenth of the rate). A dev chain has memory to spare for more.
	cfg.TxPool.AccountQueue = 4096
	cfg.TxPool.GlobalQueue = 16384
	cfg.Miner.PendingFeeRecipient = faucet

	backend, err := eth.New(stack, &cfg)
	if err != nil {
		return nil, errors.Join(err, stack.Close())
	}
	filterSystem := filters.NewFilterSystem(backend.APIBackend, filters.Config{})
	stack.RegisterAPIs([]rpc.API{{Namespace: "eth", Service: filters.NewFilterAPI(filterSystem)}})
	// The debug namespace's tracing methods (debug_traceBlockByNumber, …), as geth
	// registers them; the node opens no endpoint, so only Client reaches them.
	stack.RegisterAPIs(tracers.APIs(backend.APIBackend))
	// Period 0: the beacon seals only when asked (Commit); mineLoop asks whenever a
	// transaction enters the pool.
	beacon, err := catalyst.NewSimulatedBeacon(0, faucet, backend)
	if err != nil {
		return nil, errors.Join(err, stack.Close())
	}
	if err := stack.Start(); err != nil {
		return nil, errors.Join(err, stack.Close())
	}
	c := &Chain{
		id:     id,
		dir:    dir,
		log:    logger,
		key:    key,
		faucet: faucet,
		token:  crypto.CreateAddress(faucet, 0),
		signer: types.LatestSignerForChainID(new(big.Int).SetUint64(id)),
		stack:  stack,
		eth:    backend,
		client: ethclient.NewClient(stack.Attach()),
	}
	c.mineLoop(beacon)
	return c, nil
}

// mineLoop seals a block whenever transactions enter the pool, until closeNode.
//
// It replaces catalyst.RegisterSimulatedBeaconAPIs, whose loop does the same (that is
// what geth --dev uses) but cannot be waited for: a seal still running while the node
// closes dereferences a nil block and crashes the process (seen once in 20 test runs
// under -race). It also bounds the re-sealing: geth's loop seals again for as long as
// the pool has executable transactions, so one whose fee cap stays below the base fee
// would make it seal empty blocks forever.
//
// As in geth's loop, one goroutine only reads the pool's events and another seals: the
// pool's event feed blocks until every subscriber has received, and sealing waits for
// the pool (Sync), so a sealer that also read the events could deadlock.
func (c *Chain) mineLoop(beacon *catalyst.SimulatedBeacon) {
	pool := c.eth.TxPool()
	txs := make(chan core.NewTxsEvent, 16)
	sub := pool.SubscribeTransactions(txs, true)
	kick := make(chan struct{}, 1)
	c.stopMining = make(chan struct{})
	readDone, sealDone := make(chan struct{}), make(chan struct{})
	c.miningDone = []chan struct{}{readDone, sealDone}
	go func() {
		defer close(readDone)
		defer sub.Unsubscribe()
		for {
			select {
			case <-c.stopMining:
				return
			case <-sub.Err():
				return
			case <-txs:
				select {
				case kick <- struct{}{}:
				default: // a seal is already due; it will take these too
				}
			}
		}
	}()
	go func() {
		defer close(sealDone)
		for {
			select {
			case <-c.stopMining:
				return
			case <-kick:
			}
			// Seal until the pool has nothing executable left, or sealing stops helping.
			left := -1
			for range 16 {
				beacon.Commit()
				if err := pool.Sync(); err != nil {
					return // the pool is closing
				}
				n, _ := pool.Stats()
				if n == 0 || (left >= 0 && n >= left) {
					break
				}
				left = n
			}
		}
	}()
}

// genesis is geth's dev genesis (every fork through Osaka active at block 0, merged at
// genesis) for chain id, with the system contracts those forks call and the faucet.
func genesis(id uint64, faucet common.Address) *core.Genesis {
	config := *params.AllDevChainProtocolChanges // copy: the original is a shared global
	config.ChainID = new(big.Int).SetUint64(id)
	alloc := core.SystemContractAllocs()
	alloc[faucet] = types.Account{Balance: faucetBalance()}
	return &core.Genesis{
		Config:     &config,
		Alloc:      alloc,
		GasLimit:   ethconfig.Defaults.Miner.GasCeil,
		BaseFee:    big.NewInt(params.InitialBaseFee),
		Difficulty: big.NewInt(0),
	}
}

// faucetKey derives the faucet's key from the chain id, so it is stable across
// restarts without being stored. Dev-only: see the package comment.
func faucetKey(id uint64) (*ecdsa.PrivateKey, error) {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], id)
	key, err := crypto.ToECDSA(crypto.Keccak256([]byte("countersign devchain faucet"), b[:]))
	if err != nil {
		return nil, fmt.Errorf("devchain %d: derive faucet key: %w", id, err)
	}
	return key, nil
}

// damage reports why a restarted chain cannot be trusted, or "" if it can.
func (c *Chain) damage(ctx context.Context, recordedHead uint64) string {
	bc := c.eth.BlockChain()
	head := bc.CurrentBlock()
	if n := head.Number.Uint64(); n < recordedHead {
		return fmt.Sprintf("head %d is below the recorded head %d", n, recordedHead)
	}
	if !bc.HasState(head.Root) {
		return fmt.Sprintf("the state of head %d is missing", head.Number.Uint64())
	}
	code, err := c.client.CodeAt(ctx, c.token, nil)
	if err != nil {
		return "read test token code: " + err.Error()
	}
	nonce, err := c.client.NonceAt(ctx, c.faucet, nil)
	if err != nil {
		return "read faucet nonce: " + err.Error()
	}
	if len(code) == 0 && nonce > 0 {
		return "the test token is missing"
	}
	return ""
}

// ensureToken deploys the test token if this is a fresh chain (damage ruled out the
// other case: no token although the faucet already used nonce 0).
func (c *Chain) ensureToken(ctx context.Context) error {
	code, err := c.client.CodeAt(ctx, c.token, nil)
	if err != nil {
		return fmt.Errorf("read test token code: %w", err)
	}
	if len(code) > 0 {
		return nil
	}
	args, err := tokenABI.Pack("", tokenName, tokenSymbol, uint8(tokenDecimals))
	if err != nil {
		return fmt.Errorf("pack TestToken constructor: %w", err)
	}
	data := append(common.FromHex(strings.TrimSpace(tokenBinHex)), args...)
	r, err := c.send(ctx, nil, nil, data)
	if err != nil {
		return fmt.Errorf("deploy test token: %w", err)
	}
	if r.ContractAddress != c.token {
		return fmt.Errorf("test token deployed at %s, want %s (faucet nonce was not 0)", r.ContractAddress, c.token)
	}
	c.log.Info("devchain: deployed test token", "address", c.token, "symbol", tokenSymbol, "decimals", tokenDecimals)
	return nil
}

// Close stops the chain; with a DataDir it persists and can be started again. Calling
// it more than once is safe.
func (c *Chain) Close() error {
	c.closeOnce.Do(func() {
		if c.headSub != nil {
			c.headSub.Unsubscribe()
			<-c.headDone
			// The head the node has now is the one it persists on close.
			c.closeErr = c.saveHead(c.eth.BlockChain().CurrentBlock().Number.Uint64())
		}
		c.closeErr = errors.Join(c.closeErr, c.closeNode())
	})
	return c.closeErr
}

func (c *Chain) closeNode() error {
	close(c.stopMining)
	for _, done := range c.miningDone {
		<-done // no seal may run while the node closes
	}
	c.client.Close()
	return c.stack.Close()
}

// Client returns an RPC client connected to the chain in process (no TCP port).
func (c *Chain) Client() *ethclient.Client { return c.client }

// ChainID returns the chain's EIP-155 chain id.
func (c *Chain) ChainID() uint64 { return c.id }

// Token returns the built-in test ERC-20: its address (deterministic: the faucet's
// contract at nonce 0), symbol and decimals.
func (c *Chain) Token() (addr common.Address, symbol string, decimals uint8) {
	return c.token, tokenSymbol, tokenDecimals
}

// Fund sends amount wei of native coin from the faucet to to, waits until it is mined
// (and until the transaction pool sees the new balance, so that to can spend it at
// once) and returns the transaction hash.
func (c *Chain) Fund(ctx context.Context, to common.Address, amount *big.Int) (common.Hash, error) {
	if amount == nil || amount.Sign() <= 0 {
		return common.Hash{}, errors.New("devchain: fund amount must be positive")
	}
	r, err := c.send(ctx, &to, amount, nil)
	if err != nil {
		return common.Hash{}, fmt.Errorf("devchain %d: fund %s: %w", c.id, to, err)
	}
	return r.TxHash, nil
}

// Mint mints amount (in the token's smallest unit) of the test token to to, waits until
// it is mined and returns the transaction hash.
func (c *Chain) Mint(ctx context.Context, to common.Address, amount *big.Int) (common.Hash, error) {
	if amount == nil || amount.Sign() <= 0 {
		return common.Hash{}, errors.New("devchain: mint amount must be positive")
	}
	data, err := tokenABI.Pack("mint", to, amount)
	if err != nil {
		return common.Hash{}, fmt.Errorf("devchain: pack mint: %w", err)
	}
	r, err := c.send(ctx, &c.token, nil, data)
	if err != nil {
		return common.Hash{}, fmt.Errorf("devchain %d: mint to %s: %w", c.id, to, err)
	}
	return r.TxHash, nil
}

// send signs an EIP-1559 transaction from the faucet and returns its receipt once mined
// (eth_sendRawTransactionSync: the receipt comes back as soon as the block is sealed,
// with no polling). A mined but reverted transaction is an error.
func (c *Chain) send(ctx context.Context, to *common.Address, value *big.Int, data []byte) (*types.Receipt, error) {
	c.txMu.Lock()
	defer c.txMu.Unlock()
	if value == nil {
		value = new(big.Int)
	}
	nonce, err := c.client.PendingNonceAt(ctx, c.faucet)
	if err != nil {
		return nil, fmt.Errorf("faucet nonce: %w", err)
	}
	head, err := c.client.HeaderByNumber(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("head: %w", err)
	}
	gas, err := c.client.EstimateGas(ctx, ethereum.CallMsg{From: c.faucet, To: to, Value: value, Data: data})
	if err != nil {
		return nil, fmt.Errorf("estimate gas: %w", err)
	}
	tip := big.NewInt(params.GWei)
	feeCap := new(big.Int).Add(new(big.Int).Mul(head.BaseFee, big.NewInt(2)), tip)
	tx, err := types.SignTx(types.NewTx(&types.DynamicFeeTx{
		ChainID:   new(big.Int).SetUint64(c.id),
		Nonce:     nonce,
		GasTipCap: tip,
		GasFeeCap: feeCap,
		Gas:       gas,
		To:        to,
		Value:     value,
		Data:      data,
	}), c.signer, c.key)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, txTimeout)
		defer cancel()
	}
	d, _ := ctx.Deadline()
	timeout := time.Until(d)
	r, err := c.client.SendTransactionSync(ctx, tx, &timeout)
	if err != nil {
		return nil, fmt.Errorf("send %s: %w", tx.Hash(), err)
	}
	if r.Status != types.ReceiptStatusSuccessful {
		return r, fmt.Errorf("transaction %s reverted", r.TxHash)
	}
	// The account just funded must not be refused for "insufficient funds" by a pool
	// still on the old state (seen in tests).
	return r, c.Settle(ctx, tx.Hash())
}

// state is devchain.json.
type state struct {
	ChainID uint64         `json:"chain_id"`
	Head    uint64         `json:"head"`  // the latest head seen; a lower head at start means lost blocks
	Token   common.Address `json:"token"` // informational: it is always the faucet's nonce-0 contract
}

// prepareDir creates dir with a fresh devchain.json, or checks the existing one and
// returns it. It refuses a devchain.json for another chain id, and a non-empty
// directory without one (not ours: never wiped).
func prepareDir(dir string, id uint64) (state, error) {
	path := filepath.Join(dir, stateFileName)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		var st state
		if err := json.Unmarshal(b, &st); err != nil {
			return state{}, fmt.Errorf("devchain %d: %s is unreadable (%v); delete %s to start a fresh chain", id, path, err, dir)
		}
		if st.ChainID != id {
			return state{}, fmt.Errorf("devchain %d: %s holds the chain with id %d, not %d", id, dir, st.ChainID, id)
		}
		return st, nil
	case !errors.Is(err, os.ErrNotExist):
		return state{}, fmt.Errorf("devchain %d: %w", id, err)
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return state{}, fmt.Errorf("devchain %d: %s is not empty and has no %s; refusing to use it", id, dir, stateFileName)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return state{}, fmt.Errorf("devchain %d: %w", id, err)
	}
	faucet, err := faucetKey(id)
	if err != nil {
		return state{}, err
	}
	st := state{ChainID: id, Token: crypto.CreateAddress(crypto.PubkeyToAddress(faucet.PublicKey), 0)}
	if err := writeState(path, st, true); err != nil {
		return state{}, fmt.Errorf("devchain %d: %w", id, err)
	}
	return st, nil
}

// writeState replaces path atomically (write, rename), so a kill leaves the old or the
// new file, never a torn one. sync adds an fsync, used once when the file is created.
func writeState(path string, st state, sync bool) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil && sync {
		err = f.Sync()
	}
	if err = errors.Join(err, f.Close()); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// saveHead records head in devchain.json.
func (c *Chain) saveHead(head uint64) error {
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	st := state{ChainID: c.id, Head: head, Token: c.token}
	if err := writeState(filepath.Join(c.dir, stateFileName), st, false); err != nil {
		return fmt.Errorf("devchain %d: record head: %w", c.id, err)
	}
	return nil
}

// watchHead records every new head, after geth has written the block, so the recorded
// head never runs ahead of what the database holds unless the database lost writes.
func (c *Chain) watchHead() {
	ch := make(chan core.ChainHeadEvent, 16)
	c.headSub = c.eth.BlockChain().SubscribeChainHeadEvent(ch)
	c.headDone = make(chan struct{})
	go func() {
		defer close(c.headDone)
		for {
			select {
			case ev := <-ch:
				head := ev.Header.Number.Uint64()
			drain: // a burst of blocks needs one write
				for {
					select {
					case ev := <-ch:
						head = ev.Header.Number.Uint64()
					default:
						break drain
					}
				}
				if err := c.saveHead(head); err != nil {
					c.log.Warn("devchain: cannot record the head", "err", err)
				}
			case <-c.headSub.Err(): // closed by Unsubscribe
				return
			}
		}
	}()
}

// errorsOnly passes geth's errors on and drops the rest.
type errorsOnly struct{ slog.Handler }

func (h errorsOnly) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelError && h.Handler.Enabled(ctx, l)
}
func (h errorsOnly) WithAttrs(as []slog.Attr) slog.Handler {
	return errorsOnly{h.Handler.WithAttrs(as)}
}
func (h errorsOnly) WithGroup(n string) slog.Handler { return errorsOnly{h.Handler.WithGroup(n)} }
