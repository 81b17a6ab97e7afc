package wallets

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/countersign/countersign/internal/errs"
)

func str(s string) *string { return &s }

func TestParseQuantity(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want string // "" = refused
	}{
		{"0", "0"}, {"1000", "1000"}, {"0x10", "16"}, {"0X1f", "31"}, {"007", "7"},
		{"", ""}, {"-1", ""}, {"+1", ""}, {"1.5", ""}, {"1e18", ""}, {"0x", ""}, {"0xg", ""}, {" 1", ""}, {"1_000", ""},
		{strings.Repeat("9", 81), ""},
		{"115792089237316195423570985008687907853269984665640564039457584007913129639935", "115792089237316195423570985008687907853269984665640564039457584007913129639935"},
		{"115792089237316195423570985008687907853269984665640564039457584007913129639936", ""},
	} {
		got, err := parseQuantity("value", tt.in, maxUint256)
		switch {
		case tt.want == "" && !errs.Is(err, errs.Invalid):
			t.Errorf("%q: %v %v, want Invalid", tt.in, got, err)
		case tt.want != "" && (err != nil || got.String() != tt.want):
			t.Errorf("%q: %v %v, want %s", tt.in, got, err, tt.want)
		}
	}
}

func TestParseNonce(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64 // -1 absent, -2 refused, -3 the largest nonce 2^64-2
	}{
		{``, -1}, {`null`, -1}, {`0`, 0}, {`7`, 7}, {`"7"`, 7}, {`"0x7"`, 7}, {`18446744073709551614`, -3}, {`"0xfffffffffffffffe"`, -3},
		{`-1`, -2}, {`1.5`, -2}, {`1e3`, -2}, {`"abc"`, -2}, {`18446744073709551615`, -2}, {`18446744073709551616`, -2},
		{`true`, -2}, {`{}`, -2}, {`"-1"`, -2},
	} {
		got, err := parseNonce(json.RawMessage(tt.in))
		switch tt.want {
		case -1:
			if got != nil || err != nil {
				t.Errorf("%s: %v %v, want absent", tt.in, got, err)
			}
		case -2:
			if !errs.Is(err, errs.Invalid) {
				t.Errorf("%s: %v %v, want Invalid", tt.in, got, err)
			}
		case -3:
			if err != nil || got == nil || *got != ^uint64(0)-1 {
				t.Errorf("%s: %v %v, want 2^64-2", tt.in, got, err)
			}
		default:
			if err != nil || got == nil || *got != uint64(tt.want) {
				t.Errorf("%s: %v %v, want %d", tt.in, got, err, tt.want)
			}
		}
	}
}

func TestParseBroadcast(t *testing.T) {
	to := "0x000000000000000000000000000000000000dEaD"
	for _, tt := range []struct {
		name string
		r    BroadcastRequest
		ok   bool
	}{
		{"ok/evm", BroadcastRequest{Kind: "Evm", To: &to, Value: str("1")}, true},
		{"ok/deploy", BroadcastRequest{Kind: "Evm", Data: str("0x6000")}, true},
		{"ok/1559", BroadcastRequest{Kind: "Eip1559", To: &to, MaxFeePerGas: str("10"), MaxPriorityFeePerGas: str("10")}, true},
		{"ok/legacy", BroadcastRequest{Kind: "EvmLegacy", To: &to, GasPrice: str("10"), GasLimit: str("21000")}, true},
		{"ok/transaction", BroadcastRequest{Kind: "Transaction", Transaction: str("0x02c0")}, true},
		{"fail/no-kind", BroadcastRequest{To: &to}, false},
		{"fail/psbt", BroadcastRequest{Kind: "Psbt"}, false},
		{"fail/other-kind", BroadcastRequest{Kind: "Native", To: &to}, false},
		{"fail/nothing", BroadcastRequest{Kind: "Evm"}, false},
		{"fail/tx-missing", BroadcastRequest{Kind: "Transaction"}, false},
		{"fail/tx-with-value", BroadcastRequest{Kind: "Transaction", Transaction: str("0x02c0"), Value: str("1")}, false},
		{"fail/evm-gasPrice", BroadcastRequest{Kind: "Evm", To: &to, GasPrice: str("1")}, false},
		{"fail/1559-gasPrice", BroadcastRequest{Kind: "Eip1559", To: &to, GasPrice: str("1")}, false},
		{"fail/legacy-maxFee", BroadcastRequest{Kind: "EvmLegacy", To: &to, MaxFeePerGas: str("1")}, false},
		{"fail/tip-over-cap", BroadcastRequest{Kind: "Eip1559", To: &to, MaxFeePerGas: str("1"), MaxPriorityFeePerGas: str("2")}, false},
		{"fail/gas-low", BroadcastRequest{Kind: "Evm", To: &to, GasLimit: str("20999")}, false},
		{"fail/gas-huge", BroadcastRequest{Kind: "Evm", To: &to, GasLimit: str("18446744073709551616")}, false},
		{"fail/bad-to", BroadcastRequest{Kind: "Evm", To: str("0xdead")}, false},
		{"fail/bad-data", BroadcastRequest{Kind: "Evm", To: &to, Data: str("0x123")}, false},
		{"fail/bad-value", BroadcastRequest{Kind: "Evm", To: &to, Value: str("-5")}, false},
		{"fail/bad-nonce", BroadcastRequest{Kind: "Evm", To: &to, Nonce: json.RawMessage(`"x"`)}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseBroadcast(tt.r)
			if tt.ok && err != nil {
				t.Fatal(err)
			}
			if !tt.ok && !errs.Is(err, errs.Invalid) {
				t.Fatalf("got %v, want Invalid", err)
			}
		})
	}
}

func TestNonceRefused(t *testing.T) {
	for _, tt := range []struct {
		given, next uint64
		want        string
	}{
		{3, 5, "nonce 3 is not the wallet's next nonce 5: a lower nonce"},
		{9, 5, "nonce 9 is not the wallet's next nonce 5: a higher nonce"},
	} {
		err := nonceRefused(tt.given, tt.next)
		if !errs.Is(err, errs.Invalid) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%d/%d: %v, want Invalid containing %q", tt.given, tt.next, err, tt.want)
		}
	}
}

func TestPermanent(t *testing.T) {
	for _, tt := range []struct {
		msg  string
		want bool
	}{
		{"insufficient funds for gas * price + value", true},
		{"nonce too low: next nonce 5, tx nonce 4", true},
		{"transaction would cause overdraft", true},
		{"transaction underpriced", true},
		{"replacement transaction underpriced", false},
		{"connection refused", false},
		{"context deadline exceeded", false},
	} {
		if got := permanent(errors.New(tt.msg)); got != tt.want {
			t.Errorf("%q: %v, want %v", tt.msg, got, tt.want)
		}
	}
}
