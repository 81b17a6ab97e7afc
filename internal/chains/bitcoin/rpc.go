package bitcoin

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// RPC is a small JSON-RPC 1.0 client of a Bitcoin node (bitcoind or btcd): just the three
// calls broadcasting needs. The node's credentials come from the URL's user info and are
// sent as HTTP basic auth; String never shows them.
type RPC struct {
	url        string // without user info
	user, pass string
	http       *http.Client
	id         atomic.Uint64
}

// RPCError is an error the node answered (the JSON-RPC "error" member).
type RPCError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (e *RPCError) Error() string { return fmt.Sprintf("%s (code %d)", e.Message, e.Code) }

// Bitcoin Core's RPC error codes (src/rpc/protocol.h), which btcd shares.
const (
	rpcInvalidAddressOrKey  = -5  // getrawtransaction: no such transaction
	rpcDeserialization      = -22 // the transaction does not decode
	rpcVerifyError          = -25 // inputs missing or spent, other verification errors
	rpcVerifyRejected       = -26 // refused by consensus or policy
	rpcVerifyAlreadyInChain = -27
)

// NewRPC returns a client of the node at rawURL, http(s)://[user:pass@]host:port[/path].
func NewRPC(rawURL string) (*RPC, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("the URL must be http(s)://[user:pass@]host:port")
	}
	c := &RPC{http: &http.Client{Timeout: 30 * time.Second}}
	if u.User != nil {
		c.user = u.User.Username()
		c.pass, _ = u.User.Password()
		u.User = nil
	}
	c.url = u.String()
	return c, nil
}

// String is the endpoint without credentials, for logs.
func (c *RPC) String() string { return c.url }

// Call runs method with params and decodes its result into out (when not nil). An error
// answered by the node is an *RPCError; anything else (transport, HTTP status without a
// JSON-RPC answer) is a plain error, worth retrying.
func (c *RPC) Call(ctx context.Context, method string, params []any, out any) error {
	body, err := json.Marshal(map[string]any{"jsonrpc": "1.0", "id": c.id.Add(1), "method": method, "params": params})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.user != "" || c.pass != "" {
		req.SetBasicAuth(c.user, c.pass)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("bitcoin rpc %s: %w", method, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return fmt.Errorf("bitcoin rpc %s: %w", method, err)
	}
	// bitcoind answers errors with HTTP 500 (404 for unknown transactions) and a JSON-RPC
	// body, btcd with 200: the body decides, the status only when there is no answer.
	var r struct {
		Result json.RawMessage `json:"result"`
		Error  *RPCError       `json:"error"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return fmt.Errorf("bitcoin rpc %s: HTTP %d: %s", method, resp.StatusCode, clipText(strings.TrimSpace(string(raw))))
	}
	if r.Error != nil {
		return r.Error
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("bitcoin rpc %s: HTTP %d", method, resp.StatusCode)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(r.Result, out)
}

// SendRawTransaction hands a signed transaction to the node. A transaction the node
// already has (in its mempool or its chain) counts as sent: resending is idempotent.
func (c *RPC) SendRawTransaction(ctx context.Context, raw []byte) error {
	err := c.Call(ctx, "sendrawtransaction", []any{hex.EncodeToString(raw)}, nil)
	if AlreadyKnown(err) {
		return nil
	}
	return err
}

// TxStatus is what getrawtransaction says of a transaction the node knows.
type TxStatus struct {
	Confirmations int64  `json:"confirmations"` // 0 (or absent) while in the mempool
	BlockHash     string `json:"blockhash"`
}

// ErrTxUnknown is returned by GetTransaction when the node knows no such transaction (not
// in its mempool, and not in its chain: confirmed transactions need -txindex).
var ErrTxUnknown = errors.New("bitcoin: the node does not know the transaction")

// GetTransaction asks the node about txid (getrawtransaction, verbose). The verbose flag is
// sent as the integer 1: btcd only takes an integer, bitcoind takes both.
func (c *RPC) GetTransaction(ctx context.Context, txid string) (TxStatus, error) {
	var st TxStatus
	err := c.Call(ctx, "getrawtransaction", []any{txid, 1}, &st)
	var re *RPCError
	if errors.As(err, &re) && re.Code == rpcInvalidAddressOrKey {
		return TxStatus{}, ErrTxUnknown
	}
	return st, err
}

// AlreadyKnown reports a send refused only because the node already has the transaction.
func AlreadyKnown(err error) bool {
	var re *RPCError
	if !errors.As(err, &re) {
		return false
	}
	msg := strings.ToLower(re.Message)
	return re.Code == rpcVerifyAlreadyInChain || strings.Contains(msg, "already have transaction") || // btcd
		strings.Contains(msg, "txn-already-in-mempool") || strings.Contains(msg, "txn-already-known") || // bitcoind
		strings.Contains(msg, "transaction already in block chain") || strings.Contains(msg, "transaction already exists")
}

// Refused reports a send the node refused for good: the transaction does not decode,
// spends outputs that are missing or already spent (a double spend), or breaks consensus
// or policy rules. Sending the same bytes again would be refused again.
func Refused(err error) bool {
	var re *RPCError
	if !errors.As(err, &re) || AlreadyKnown(err) {
		return false
	}
	switch re.Code {
	case rpcDeserialization, rpcVerifyError, rpcVerifyRejected:
		return true
	}
	return false
}

// ParseRPC reads "Network=URL" pairs (the --bitcoin-rpc flag) into one client per
// network, refusing names that are not Bitcoin networks and URLs that are not http(s).
func ParseRPC(pairs []string) (map[string]*RPC, error) {
	out := map[string]*RPC{}
	for _, p := range pairs {
		name, u, ok := strings.Cut(p, "=")
		if !ok || u == "" {
			return nil, fmt.Errorf("--bitcoin-rpc %q: want Network=http://user:pass@host:port", redact(p))
		}
		if _, ok := Lookup(name); !ok {
			return nil, fmt.Errorf("--bitcoin-rpc %q: %s is not a Bitcoin network", redact(p), name)
		}
		c, err := NewRPC(u)
		if err != nil {
			return nil, fmt.Errorf("--bitcoin-rpc %q: %v", redact(p), err)
		}
		out[name] = c
	}
	return out, nil
}

// redact hides the password of a URL inside s, for error messages.
func redact(s string) string {
	name, raw, ok := strings.Cut(s, "=")
	if !ok {
		return s
	}
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		return name + "=" + u.Redacted()
	}
	return s
}
