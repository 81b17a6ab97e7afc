// Package registry gives the rest of countersign one RPC client per EVM network: a
// configured endpoint when there is one, otherwise an embedded dev chain with that
// network's chain id, started on first use, so everything works offline and the same
// application code runs against countersign and against a hosted service.
package registry

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"

	"github.com/ethereum/go-ethereum/ethclient"

	"github.com/countersign/countersign/internal/chains/evm"
	"github.com/countersign/countersign/internal/chains/evm/devchain"
	"github.com/countersign/countersign/internal/errs"
)

// Registry maps networks to backends.
type Registry struct {
	rpc     map[string]string // network -> RPC URL
	dataDir string            // dev chains live in <dataDir>/devchain
	log     *slog.Logger

	mu      sync.Mutex
	clients map[string]*Backend
}

// Backend is one network's RPC client; Dev is set when it is an embedded dev chain.
type Backend struct {
	Network evm.Network
	Client  *ethclient.Client
	Dev     *devchain.Chain
}

// ParseRPC reads "Network=URL" pairs (the --evm-rpc flag).
func ParseRPC(pairs []string) (map[string]string, error) {
	out := map[string]string{}
	for _, p := range pairs {
		name, url, ok := strings.Cut(p, "=")
		if !ok || url == "" {
			return nil, fmt.Errorf("--evm-rpc %q: want Network=URL", p)
		}
		if _, ok := evm.Lookup(name); !ok {
			return nil, fmt.Errorf("--evm-rpc %q: %s is not an EVM network", p, name)
		}
		if !strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://") && !strings.HasPrefix(url, "ws://") && !strings.HasPrefix(url, "wss://") {
			return nil, fmt.Errorf("--evm-rpc %q: the URL must be http(s) or ws(s)", p)
		}
		out[name] = url
	}
	return out, nil
}

// New returns a registry. rpc maps network names to RPC URLs; every other EVM network is
// served by a dev chain under dataDir ("" keeps dev chains in memory, for tests).
func New(rpc map[string]string, dataDir string, log *slog.Logger) *Registry {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Registry{rpc: rpc, dataDir: dataDir, log: log, clients: map[string]*Backend{}}
}

// Get returns the backend of a network, starting its dev chain if needed.
func (r *Registry) Get(ctx context.Context, network string) (*Backend, error) {
	n, ok := evm.Lookup(network)
	if !ok {
		return nil, errs.Ef(errs.Invalid, "network %q is not supported", network)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if b, ok := r.clients[network]; ok {
		return b, nil
	}
	b := &Backend{Network: n}
	if url, ok := r.rpc[network]; ok {
		c, err := ethclient.DialContext(ctx, url)
		if err != nil {
			return nil, errs.E(errs.Unavailable, "the network's RPC endpoint is unreachable", err)
		}
		b.Client = c
	} else {
		dir := ""
		if r.dataDir != "" {
			dir = filepath.Join(r.dataDir, "devchain")
		}
		dc, err := devchain.Start(ctx, devchain.Options{DataDir: dir, ChainID: n.ChainID, Log: r.log})
		if err != nil {
			return nil, errs.E(errs.Unavailable, "could not start the dev chain", err)
		}
		r.log.Info("started embedded dev chain", "network", network, "chainId", n.ChainID)
		b.Client, b.Dev = dc.Client(), dc
	}
	r.clients[network] = b
	return b, nil
}

// Dev returns the dev chain of a network, or Invalid when the network has an RPC endpoint.
func (r *Registry) Dev(ctx context.Context, network string) (*devchain.Chain, error) {
	b, err := r.Get(ctx, network)
	if err != nil {
		return nil, err
	}
	if b.Dev == nil {
		return nil, errs.Ef(errs.Invalid, "%s is served by a configured RPC endpoint, not the dev chain", network)
	}
	return b.Dev, nil
}

// Close stops every dev chain and client.
func (r *Registry) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var first error
	for _, b := range r.clients {
		if b.Dev != nil {
			if err := b.Dev.Close(); err != nil && first == nil {
				first = err
			}
		} else {
			b.Client.Close()
		}
	}
	r.clients = map[string]*Backend{}
	return first
}
