package app_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/countersign/countersign/internal/app"
)

// TestBitcoinRPCConfig checks that a bad --bitcoin-rpc stops the node from starting, with
// an error that names the problem and not the node's password.
func TestBitcoinRPCConfig(t *testing.T) {
	for _, tt := range []struct{ pair, want string }{
		{"Ethereum=http://u:hunter2@127.0.0.1:8332", "not a Bitcoin network"},
		{"BitcoinSignet=ftp://u:hunter2@127.0.0.1:8332", "must be http(s)"},
		{"BitcoinSignet", "want Network=http://user:pass@host:port"},
	} {
		c := cfg(t.TempDir(), "")
		c.BitcoinRPC = []string{tt.pair}
		a, err := app.New(context.Background(), c, slog.New(slog.DiscardHandler), app.Options{})
		if err == nil {
			a.Close()
			t.Fatalf("%q: the node started", tt.pair)
		}
		if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%q: %v", tt.pair, err)
		}
	}
	c := cfg(t.TempDir(), "")
	c.BitcoinRPC = []string{"BitcoinTestnet4=http://u:hunter2@127.0.0.1:1"} // no node needed to start
	a, err := app.New(context.Background(), c, slog.New(slog.DiscardHandler), app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
}
