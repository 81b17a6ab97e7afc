package registry

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
)

// Reading blocks for the wallet history indexer (internal/wallets/history.go).

// RPCConfirmations is how many blocks a configured RPC network's head must be past a block
// before the indexer reads it. A reorg shallower than this never reaches the history; a
// deeper one is noticed (the next block does not name the cursor as parent) and logged, and
// the rows already written stay. A dev chain has one sealer and no reorgs: it is read up to
// its head.
const RPCConfirmations = 12

// erc20TransferTopic is keccak256("Transfer(address,address,uint256)"), topic 0 of the
// EIP-20 Transfer event (ERC-721 uses the same signature with a third indexed topic).
var erc20TransferTopic = crypto.Keccak256Hash([]byte("Transfer(address,address,uint256)"))

// ChainTransfer is a value movement found on chain that touches a watched address.
type ChainTransfer struct {
	Kind        string // Native | Erc20
	TxHash      common.Hash
	TxIndex     uint
	LogIndex    int // -1 for Native
	BlockNumber uint64
	BlockTime   time.Time
	From, To    common.Address
	Value       *big.Int
	Contract    common.Address // Erc20 only
	// Payer sent the carrying transaction and paid Fee for it; Fee is nil when the payer
	// is not watched (nobody asked what it paid).
	Payer common.Address
	Fee   *big.Int
}

// Scan is what one read of a block range found.
type Scan struct {
	Transfers []ChainTransfer // in chain order
	Last      uint64          // the last block read
	LastHash  common.Hash
	Blocks    []*types.Block // every block read, in order (the indexer traces some of them)
}

// ErrParentMismatch means the first block of a range does not name the expected parent:
// the chain below the cursor changed.
var ErrParentMismatch = errors.New("registry: the chain changed below the cursor")

// Running returns the backend of network if it is served: a configured RPC endpoint
// (dialled if needed) or a dev chain this process has already started. A dev chain that
// is not running cannot have changed (it lives in this process), so the indexer never
// starts one just to find nothing.
func (r *Registry) Running(ctx context.Context, network string) (*Backend, bool, error) {
	if _, ok := r.rpc[network]; ok {
		b, err := r.Get(ctx, network)
		return b, err == nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	b, ok := r.clients[network]
	return b, ok, nil
}

// Confirmations is how far behind the head the indexer stays on b.
func (b *Backend) Confirmations() uint64 {
	if b.Dev != nil {
		return 0
	}
	return RPCConfirmations
}

// Head returns the number of the newest block.
func (b *Backend) Head(ctx context.Context) (uint64, error) { return b.Client.BlockNumber(ctx) }

// BlockHash returns the hash of block n.
func (b *Backend) BlockHash(ctx context.Context, n uint64) (common.Hash, error) {
	h, err := b.Client.HeaderByNumber(ctx, new(big.Int).SetUint64(n))
	if err != nil {
		return common.Hash{}, err
	}
	return h.Hash(), nil
}

// Transfers reads blocks from..to and returns the successful native transfers (value > 0,
// from or to a watched address) and the EIP-20 Transfer logs (from or to a watched address)
// in them. parent is the hash block from-1 must have (zero skips the check). Value moved by
// contract internals (internal calls) is not seen here: the wallet history indexer traces
// the blocks in Scan.Blocks for it (internal/wallets/history_internal.go).
func (b *Backend) Transfers(ctx context.Context, from, to uint64, parent common.Hash, watched []common.Address) (Scan, error) {
	watch := make(map[common.Address]bool, len(watched))
	for _, a := range watched {
		watch[a] = true
	}
	type txInfo struct {
		payer common.Address
		index uint
		fee   *big.Int
	}
	txs := map[common.Hash]txInfo{}
	blocks := map[uint64]*types.Block{}
	var out Scan
	receipt := func(h common.Hash) (*types.Receipt, error) {
		rc, err := b.Client.TransactionReceipt(ctx, h)
		if err != nil {
			return nil, fmt.Errorf("receipt %s: %w", h, err)
		}
		return rc, nil
	}
	for n := from; n <= to; n++ {
		blk, err := b.Client.BlockByNumber(ctx, new(big.Int).SetUint64(n))
		if err != nil {
			return Scan{}, fmt.Errorf("block %d: %w", n, err)
		}
		if parent != (common.Hash{}) && blk.ParentHash() != parent {
			if n == from {
				return Scan{}, ErrParentMismatch
			}
			return Scan{}, fmt.Errorf("block %d: the chain changed during the scan", n)
		}
		parent, blocks[n] = blk.Hash(), blk
		out.Blocks = append(out.Blocks, blk)
		at := time.Unix(int64(blk.Time()), 0).UTC()
		for i, tx := range blk.Transactions() {
			sender, err := b.Client.TransactionSender(ctx, tx, blk.Hash(), uint(i))
			if err != nil {
				return Scan{}, fmt.Errorf("block %d tx %d: sender: %w", n, i, err)
			}
			dest := tx.To()
			native := tx.Value().Sign() > 0 && (watch[sender] || (dest != nil && watch[*dest]))
			if !native && !watch[sender] {
				continue
			}
			rc, err := receipt(tx.Hash())
			if err != nil {
				return Scan{}, err
			}
			info := txInfo{payer: sender, index: uint(i), fee: fee(rc)}
			txs[tx.Hash()] = info
			if native && rc.Status == types.ReceiptStatusSuccessful {
				recipient := rc.ContractAddress // a contract creation endows the new contract
				if dest != nil {
					recipient = *dest
				}
				out.Transfers = append(out.Transfers, ChainTransfer{Kind: "Native", TxHash: tx.Hash(), TxIndex: uint(i),
					LogIndex: -1, BlockNumber: n, BlockTime: at, From: sender, To: recipient, Value: tx.Value(),
					Payer: sender, Fee: info.fee})
			}
		}
	}
	logs, err := b.transferLogs(ctx, from, to, watched)
	if err != nil {
		return Scan{}, err
	}
	for _, l := range logs {
		blk := blocks[l.BlockNumber]
		if blk == nil || blk.Hash() != l.BlockHash {
			return Scan{}, fmt.Errorf("block %d: the chain changed during the scan", l.BlockNumber)
		}
		info, ok := txs[l.TxHash]
		if !ok { // sent by someone unwatched: its payer and fee are not ours to report
			if int(l.TxIndex) >= len(blk.Transactions()) {
				return Scan{}, fmt.Errorf("block %d: log of unknown transaction %s", l.BlockNumber, l.TxHash)
			}
			tx := blk.Transactions()[l.TxIndex]
			sender, err := b.Client.TransactionSender(ctx, tx, blk.Hash(), l.TxIndex)
			if err != nil {
				return Scan{}, fmt.Errorf("block %d tx %d: sender: %w", l.BlockNumber, l.TxIndex, err)
			}
			info = txInfo{payer: sender, index: l.TxIndex}
		}
		out.Transfers = append(out.Transfers, ChainTransfer{Kind: "Erc20", TxHash: l.TxHash, TxIndex: info.index,
			LogIndex: int(l.Index), BlockNumber: l.BlockNumber, BlockTime: time.Unix(int64(blk.Time()), 0).UTC(),
			From: common.BytesToAddress(l.Topics[1].Bytes()), To: common.BytesToAddress(l.Topics[2].Bytes()),
			Value: new(big.Int).SetBytes(l.Data), Contract: l.Address, Payer: info.payer, Fee: info.fee})
	}
	sortTransfers(out.Transfers)
	out.Last, out.LastHash = to, parent
	return out, nil
}

// watchChunk bounds the addresses in one eth_getLogs topic list (providers cap request sizes).
const watchChunk = 200

// transferLogs returns the EIP-20 Transfer logs of blocks from..to whose sender or
// recipient is watched, each once, in chain order.
func (b *Backend) transferLogs(ctx context.Context, from, to uint64, watched []common.Address) ([]types.Log, error) {
	seen := map[[2]uint64]bool{}
	var out []types.Log
	for start := 0; start < len(watched); start += watchChunk {
		chunk := watched[start:min(start+watchChunk, len(watched))]
		topics := make([]common.Hash, len(chunk))
		for i, a := range chunk {
			topics[i] = common.BytesToHash(a.Bytes())
		}
		for _, q := range [][][]common.Hash{{{erc20TransferTopic}, topics}, {{erc20TransferTopic}, nil, topics}} {
			logs, err := b.Client.FilterLogs(ctx, ethereum.FilterQuery{
				FromBlock: new(big.Int).SetUint64(from), ToBlock: new(big.Int).SetUint64(to), Topics: q})
			if err != nil {
				return nil, fmt.Errorf("logs %d-%d: %w", from, to, err)
			}
			for _, l := range logs {
				// ERC-721 Transfer has the same topic 0 but a third indexed topic and no data.
				if l.Removed || len(l.Topics) != 3 || len(l.Data) != 32 || seen[[2]uint64{l.BlockNumber, uint64(l.Index)}] {
					continue
				}
				seen[[2]uint64{l.BlockNumber, uint64(l.Index)}] = true
				out = append(out, l)
			}
		}
	}
	return out, nil
}

func fee(rc *types.Receipt) *big.Int {
	price := rc.EffectiveGasPrice
	if price == nil {
		price = new(big.Int)
	}
	return new(big.Int).Mul(new(big.Int).SetUint64(rc.GasUsed), price)
}

// sortTransfers orders by block, transaction, then native before logs, then log index.
func sortTransfers(ts []ChainTransfer) {
	slices.SortStableFunc(ts, func(a, b ChainTransfer) int {
		return cmp.Or(cmp.Compare(a.BlockNumber, b.BlockNumber), cmp.Compare(a.TxIndex, b.TxIndex), cmp.Compare(a.LogIndex, b.LogIndex))
	})
}
