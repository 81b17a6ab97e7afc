package bitcoin

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestParseRPC(t *testing.T) {
	nodes, err := ParseRPC([]string{"BitcoinSignet=http://u:secret@127.0.0.1:38332", "Bitcoin=https://node.example/rpc"})
	if err != nil || len(nodes) != 2 {
		t.Fatalf("%v %v", nodes, err)
	}
	if s := nodes["BitcoinSignet"].String(); s != "http://127.0.0.1:38332" || nodes["BitcoinSignet"].user != "u" || nodes["BitcoinSignet"].pass != "secret" {
		t.Fatalf("client %s %+v", s, nodes["BitcoinSignet"])
	}
	for _, bad := range []string{"BitcoinSignet", "BitcoinSignet=", "Ethereum=http://x:1", "Litecoin=http://x:1",
		"Bitcoin=ftp://x", "Bitcoin=127.0.0.1:8332", "Bitcoin=http://u:secret@"} {
		_, err := ParseRPC([]string{bad})
		if err == nil {
			t.Errorf("%q accepted", bad)
		} else if strings.Contains(err.Error(), "secret") {
			t.Errorf("%q: the error shows the password: %v", bad, err)
		}
	}
}

// fakeNode answers JSON-RPC like bitcoind (HTTP 500 or 404 with a JSON-RPC error) or btcd
// (HTTP 200 with the error), checking basic auth.
func fakeNode(t *testing.T, status int, answer map[string]any) *RPC {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "u" || p != "p" {
			http.Error(w, "401 Unauthorized.", http.StatusUnauthorized)
			return
		}
		var req struct {
			Method string `json:"method"`
			Params []any  `json:"params"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			t.Error(err)
		}
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(answer)
	}))
	t.Cleanup(srv.Close)
	c, err := NewRPC("http://u:p@" + strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRPCErrors(t *testing.T) {
	ctx := t.Context()
	rpcErr := func(code int, msg string) map[string]any {
		return map[string]any{"result": nil, "error": map[string]any{"code": code, "message": msg}, "id": 1}
	}
	for _, tt := range []struct {
		name          string
		status        int
		answer        map[string]any
		sent, refused bool
	}{
		{"ok", 200, map[string]any{"result": "ab", "error": nil}, true, false},
		{"bitcoind/in-mempool", 500, rpcErr(-26, "txn-already-in-mempool"), true, false},
		{"bitcoind/in-chain", 500, rpcErr(-27, "Transaction already in block chain"), true, false},
		{"btcd/in-mempool", 200, rpcErr(-26, "TX rejected: already have transaction abc"), true, false},
		{"bitcoind/missing-inputs", 500, rpcErr(-25, "bad-txns-inputs-missingorspent"), false, true},
		{"btcd/orphan", 200, rpcErr(-25, "TX rejected: orphan transaction abc references outputs of unknown or fully-spent transaction def"), false, true},
		{"policy", 500, rpcErr(-26, "min relay fee not met"), false, true},
		{"decode", 500, rpcErr(-22, "TX decode failed"), false, true},
		{"warming-up", 500, rpcErr(-28, "Loading block index..."), false, false},
		{"http-error", 502, nil, false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := fakeNode(t, tt.status, tt.answer)
			err := c.SendRawTransaction(ctx, []byte{1, 2})
			if (err == nil) != tt.sent || Refused(err) != tt.refused {
				t.Fatalf("err %v: sent %v refused %v", err, err == nil, Refused(err))
			}
		})
	}
	c := fakeNode(t, 404, rpcErr(-5, "No such mempool or blockchain transaction"))
	if _, err := c.GetTransaction(ctx, "00"); !errors.Is(err, ErrTxUnknown) {
		t.Fatalf("unknown transaction: %v", err)
	}
	c = fakeNode(t, 200, map[string]any{"result": map[string]any{"confirmations": 3, "blockhash": "bb"}, "error": nil})
	if st, err := c.GetTransaction(ctx, "00"); err != nil || st.Confirmations != 3 || st.BlockHash != "bb" {
		t.Fatalf("%+v %v", st, err)
	}
	bad, _ := NewRPC(strings.Replace(c.url, "http://", "http://u:wrong@", 1))
	if err := bad.Call(ctx, "getblockcount", nil, nil); err == nil || Refused(err) || !strings.Contains(err.Error(), "401") {
		t.Fatalf("bad credentials: %v", err)
	}
}
