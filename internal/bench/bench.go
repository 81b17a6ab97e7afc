// Package bench drives a running countersign (or any Dfns-compatible API) over real HTTP
// and reports throughput and latency percentiles. A "signed-write" is the whole user
// action flow: init, sign, action, and the write itself.
package bench

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/countersign/countersign/client"
)

// Options select the load.
type Options struct {
	Op          string // signed-write | read | sign | transfer
	Concurrency int
	Duration    time.Duration
	Warmup      time.Duration
	Network     string // for transfer: an EVM network on the dev chain (default EthereumSepolia)
	// Wallets spreads transfers round-robin over this many sending wallets, each funded by
	// the faucet (default 1: one sender, the worst case, as its nonces are mined in order).
	Wallets int
	// WaitConfirmed, for transfer: after the timed run, wait up to this long until every
	// transfer the run created (warm-up included) is final, and report it end to end
	// (Result.EndToEnd). 0 does not wait.
	WaitConfirmed time.Duration
}

func (o Options) network() string {
	if o.Network == "" {
		return "EthereumSepolia"
	}
	return o.Network
}

// Result is what a run measured.
type Result struct {
	Op                 string
	Concurrency        int
	Ops, Errors        int64
	Elapsed            time.Duration
	P50, P95, P99, Max time.Duration
	FirstError         string
	EndToEnd           *EndToEnd // transfer with WaitConfirmed only
}

// PerSecond is the throughput.
func (r Result) PerSecond() float64 { return float64(r.Ops) / r.Elapsed.Seconds() }

func (r Result) String() string {
	s := fmt.Sprintf("op=%s concurrency=%d ops=%d errors=%d elapsed=%s rate=%.0f/s p50=%s p95=%s p99=%s max=%s",
		r.Op, r.Concurrency, r.Ops, r.Errors, r.Elapsed.Round(time.Millisecond), r.PerSecond(),
		r.P50.Round(time.Microsecond), r.P95.Round(time.Microsecond), r.P99.Round(time.Microsecond), r.Max.Round(time.Microsecond))
	if r.FirstError != "" {
		s += "\nfirst error: " + r.FirstError
	}
	if r.EndToEnd != nil {
		s += "\n" + r.EndToEnd.String()
	}
	return s
}

// Run drives the API that c points at. c must hold an admin token and its signer.
func Run(ctx context.Context, c *client.Client, o Options) (Result, error) {
	if o.Concurrency < 1 {
		o.Concurrency = 1
	}
	tr := &http.Transport{MaxIdleConns: o.Concurrency * 2, MaxIdleConnsPerHost: o.Concurrency * 2, IdleConnTimeout: time.Minute}
	if base, ok := http.DefaultTransport.(*http.Transport); ok {
		tr.TLSClientConfig = base.TLSClientConfig
	}
	if c.HTTP != nil {
		if t, ok := c.HTTP.Transport.(*http.Transport); ok {
			tr.TLSClientConfig = t.TLSClientConfig
		}
	}
	cc := *c
	cc.HTTP = &http.Client{Transport: tr, Timeout: 30 * time.Second}

	// A dedicated target, so the benchmark never renames anything real: a personal access
	// token of the caller (its rename is a user-action-signed write; reading it is a read).
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(pub)
	pat, err := cc.CreatePAT(ctx, client.CreateTokenRequest{
		Name: "bench-target", PublicKey: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})),
	})
	if err != nil {
		return Result{}, fmt.Errorf("bench: create target token: %w", err)
	}
	target := pat.TokenID
	defer cc.ArchivePAT(context.WithoutCancel(ctx), target)

	var op func(ctx context.Context, n int) error
	var wallets []string // transfer: the sending wallets' ids
	switch o.Op {
	case "signed-write":
		op = func(ctx context.Context, n int) error {
			name := "bench-target-" + strconv.Itoa(n)
			return cc.Do(ctx, http.MethodPut, "/auth/pats/"+target, client.UpdateRequest{Name: &name}, nil)
		}
	case "read":
		path := "/auth/pats/" + target
		op = func(ctx context.Context, _ int) error {
			status, _, err := cc.Raw(ctx, http.MethodGet, path, nil, "")
			if err == nil && status != http.StatusOK {
				err = fmt.Errorf("status %d", status)
			}
			return err
		}
	case "sign":
		// The full user action flow around POST /keys/{keyId}/signatures, kind Hash.
		var key struct {
			ID string `json:"id"`
		}
		if err := cc.Do(ctx, http.MethodPost, "/keys", map[string]string{"scheme": "ECDSA", "curve": "secp256k1", "name": "bench"}, &key); err != nil {
			return Result{}, fmt.Errorf("bench: create key: %w", err)
		}
		defer cc.Do(context.WithoutCancel(ctx), http.MethodDelete, "/keys/"+key.ID, nil, nil)
		path := "/keys/" + key.ID + "/signatures"
		op = func(ctx context.Context, n int) error {
			h := sha256.Sum256([]byte(strconv.Itoa(n)))
			return cc.Do(ctx, http.MethodPost, path, map[string]string{"kind": "Hash", "hash": "0x" + hex.EncodeToString(h[:])}, nil)
		}
	case "transfer":
		// The full user action flow around POST /wallets/{id}/transfers (Native, 1 wei) on
		// wallets funded by the dev faucet: balance check, nonce, signing, row and job. The
		// broadcast and confirmation run in the background: timed only with WaitConfirmed.
		var err error
		if wallets, err = transferWallets(ctx, &cc, o); err != nil {
			return Result{}, err
		}
		op = func(ctx context.Context, n int) error {
			path := "/wallets/" + wallets[n%len(wallets)] + "/transfers"
			return cc.Do(ctx, http.MethodPost, path, map[string]string{"kind": "Native", "to": "0x000000000000000000000000000000000000dEaD", "amount": "1"}, nil)
		}
	default:
		return Result{}, fmt.Errorf("bench: unknown op %q (signed-write, read, sign, transfer)", o.Op)
	}

	if o.Warmup > 0 {
		drive(ctx, op, o.Concurrency, o.Warmup)
	}
	lat, errsN, first, elapsed := drive(ctx, op, o.Concurrency, o.Duration)
	res := Result{Op: o.Op, Concurrency: o.Concurrency, Ops: int64(len(lat)), Errors: errsN, Elapsed: elapsed, FirstError: first}
	if len(lat) > 0 {
		slices.Sort(lat)
		q := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
		res.P50, res.P95, res.P99, res.Max = q(0.50), q(0.95), q(0.99), lat[len(lat)-1]
	}
	if o.Op == "transfer" && o.WaitConfirmed > 0 {
		e, err := waitFinal(ctx, &cc, wallets, o.WaitConfirmed)
		if err != nil {
			return res, err
		}
		res.EndToEnd = &e
	}
	return res, nil
}

// drive runs op from n workers for d and returns the latencies of the successful calls.
func drive(ctx context.Context, op func(context.Context, int) error, n int, d time.Duration) ([]time.Duration, int64, string, time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var mu sync.Mutex
	var all []time.Duration
	var errCount atomic.Int64
	var first atomic.Value
	var seq atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < n; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 4096)
			for ctx.Err() == nil {
				t0 := time.Now()
				err := op(ctx, int(seq.Add(1)))
				if ctx.Err() != nil {
					break // the run ended mid-call; neither a success nor an error
				}
				if err != nil {
					errCount.Add(1)
					first.CompareAndSwap(nil, err.Error())
					continue
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	f, _ := first.Load().(string)
	return all, errCount.Load(), f, time.Since(start)
}
