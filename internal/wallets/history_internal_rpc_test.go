package wallets_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/ethereum/go-ethereum/ethclient"

	"github.com/countersign/countersign/internal/chains/registry"
	"github.com/countersign/countersign/internal/testutil"
	"github.com/countersign/countersign/internal/wallets"
)

// noDebugProxy is a JSON-RPC endpoint in front of a dev chain that refuses the debug
// namespace the way geth does when it is not enabled, as most public endpoints do. It
// counts the methods asked.
type noDebugProxy struct {
	mu    sync.Mutex
	calls map[string]int
}

func (p *noDebugProxy) count(method string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[method]
}

func (p *noDebugProxy) serve(t *testing.T, upstream *ethclient.Client) *ethclient.Client {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req struct {
			ID     json.RawMessage   `json:"id"`
			Method string            `json:"method"`
			Params []json.RawMessage `json:"params"`
		}
		if err := json.Unmarshal(body, &req); err != nil {
			http.Error(w, "batches are not served here", http.StatusBadRequest)
			return
		}
		p.mu.Lock()
		p.calls[req.Method]++
		p.mu.Unlock()
		resp := map[string]any{"jsonrpc": "2.0", "id": req.ID}
		if strings.HasPrefix(req.Method, "debug_") {
			resp["error"] = map[string]any{"code": -32601, "message": "the method " + req.Method + " does not exist/is not available"}
		} else {
			args := make([]any, len(req.Params))
			for i, a := range req.Params {
				args[i] = a
			}
			var res json.RawMessage
			if err := upstream.Client().CallContext(r.Context(), &res, req.Method, args...); err != nil {
				resp["error"] = map[string]any{"code": -32000, "message": err.Error()}
			} else {
				resp["result"] = res
			}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(resp)
	}))
	t.Cleanup(srv.Close)
	c, err := ethclient.Dial(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// TestIndexHistoryNoTracing serves the dev chain through an endpoint without the debug
// namespace: the indexer learns it from the first trace, logs it once, never asks again
// (nor reads code to decide what to trace), and indexes the rest as before.
func TestIndexHistoryNoTracing(t *testing.T) {
	e := testutil.Engines(t)[0] // the RPC behaviour is under test, not the database
	ctx := t.Context()
	f := newHistoryFixture(t, e)
	a, _ := f.wallet(t)
	dev, err := f.reg.Get(ctx, historyNetwork)
	if err != nil {
		t.Fatal(err)
	}
	proxy := &noDebugProxy{calls: map[string]int{}}
	// Dev is kept so the dev-chain rules apply (start at genesis, no confirmations): the
	// tracing refusal is under test, not the RPC rules.
	f.chain = &registry.Backend{Network: dev.Network, Client: proxy.serve(t, dev.Client), Dev: dev.Dev}
	var logs bytes.Buffer
	f.svc.SetHistory(historyStore{f.db}, rpcChains{f.chain}, slog.New(slog.NewTextHandler(&logs, nil)))

	step := func(mint bool) {
		t.Helper()
		if _, err := f.reg.Fund(ctx, historyNetwork, a.Address, big.NewInt(3)); err != nil {
			t.Fatal(err)
		}
		if mint { // a call to the token contract: a block worth tracing
			if _, err := f.reg.Mint(ctx, historyNetwork, a.Address, big.NewInt(4)); err != nil {
				t.Fatal(err)
			}
		}
	}
	step(true)
	if n := f.index(t); n != 2 {
		t.Fatalf("indexed %d events, want the funding and the mint", n)
	}
	codeReads := proxy.count("eth_getCode")
	step(true)
	step(false)
	if n := f.index(t); n != 3 {
		t.Fatalf("indexed %d events, want two fundings and a mint", n)
	}
	if got := proxy.count("debug_traceBlockByHash"); got != 1 {
		t.Fatalf("%d trace requests, want 1", got)
	}
	if got := proxy.count("eth_getCode"); got != codeReads {
		t.Fatalf("code was read %d more times after tracing was refused", got-codeReads)
	}
	if got := strings.Count(logs.String(), "does not serve debug tracing"); got != 1 {
		t.Fatalf("the refusal was logged %d times:\n%s", got, logs.String())
	}
	es, _ := f.db.ListHistory(ctx, a.OrgID, a.ID, wallets.HistoryQuery{Limit: 100})
	if len(es) != 5 {
		t.Fatalf("%d events stored, want 5", len(es))
	}
}
