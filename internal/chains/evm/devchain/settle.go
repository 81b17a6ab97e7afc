package devchain

import (
	"context"
	"fmt"
	"time"

	"github.com/ethereum/go-ethereum/common"
)

// Settle waits until the transaction pool has caught up with the block that mined hash.
// A receipt (from eth_sendRawTransactionSync or a poll) is there as soon as the block is
// written, but the pool moves to the new head on its own goroutine and until then judges
// new transactions against the old state: an account that was just paid would be refused
// for "insufficient funds". The pool drops a mined transaction in the same locked step that
// installs the new state, so its absence means the pool is current.
func (c *Chain) Settle(ctx context.Context, hash common.Hash) error {
	for pool := c.eth.TxPool(); pool.Has(hash); {
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for the transaction pool: %w", ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
	return nil
}
