package wallets

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/ethereum/go-ethereum/rpc"
)

// TestCallFrameMoves walks a callTracer result: only nested CALL/CREATE/CREATE2/
// SELFDESTRUCT frames with value count, never the root, nothing under a failed frame, and
// frames keep their pre-order numbers whatever is skipped.
func TestCallFrameMoves(t *testing.T) {
	const trace = `{"type":"CALL","from":"0x00000000000000000000000000000000000000a1","to":"0x00000000000000000000000000000000000000c1","value":"0x64","calls":[
		{"type":"CALL","from":"0x00000000000000000000000000000000000000c1","to":"0x00000000000000000000000000000000000000b1","value":"0xa"},
		{"type":"CALL","from":"0x00000000000000000000000000000000000000c1","to":"0x00000000000000000000000000000000000000c2","value":"0x14","error":"execution reverted","calls":[
			{"type":"CALL","from":"0x00000000000000000000000000000000000000c2","to":"0x00000000000000000000000000000000000000b1","value":"0x14"}]},
		{"type":"DELEGATECALL","from":"0x00000000000000000000000000000000000000c1","to":"0x00000000000000000000000000000000000000c3","value":"0x64"},
		{"type":"STATICCALL","from":"0x00000000000000000000000000000000000000c1","to":"0x00000000000000000000000000000000000000c3"},
		{"type":"CALLCODE","from":"0x00000000000000000000000000000000000000c1","to":"0x00000000000000000000000000000000000000c3","value":"0x1"},
		{"type":"CALL","from":"0x00000000000000000000000000000000000000c1","to":"0x00000000000000000000000000000000000000b1","value":"0x0"},
		{"type":"CREATE2","from":"0x00000000000000000000000000000000000000c1","to":"0x00000000000000000000000000000000000000d1","value":"0x2","calls":[
			{"type":"SELFDESTRUCT","from":"0x00000000000000000000000000000000000000d1","to":"0x00000000000000000000000000000000000000b2","value":"0x2"}]},
		{"type":"SELFDESTRUCT","from":"0x00000000000000000000000000000000000000c1","to":"0x00000000000000000000000000000000000000c1","value":"0x5"}]}`
	var root callFrame
	if err := json.Unmarshal([]byte(trace), &root); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range root.moves() {
		got = append(got, fmt.Sprintf("%d %x->%x %s", m.frame, m.from[19:], m.to[19:], m.value))
	}
	want := []string{"1 c1->b1 10", "8 c1->d1 2", "9 d1->b2 2"}
	if !slices.Equal(got, want) {
		t.Fatalf("moves %q, want %q", got, want)
	}
	root.Error = "execution reverted" // the whole transaction failed
	if m := root.moves(); len(m) != 0 {
		t.Fatalf("a failed transaction moved %+v", m)
	}
}

// TestInternalEventKeys checks the keys of internal transfers: distinct from the
// transaction's own value and logs, ordered own value < frames < logs, and a wire index
// naming the frame.
func TestInternalEventKeys(t *testing.T) {
	base := HistoryEvent{BlockNumber: 7, TxIndex: 2, Direction: In, TxHash: "0xab"}
	own, f1, f12, log0 := base, base, base, base
	own.LogIndex, f1.LogIndex, f12.LogIndex, log0.LogIndex = -1, -2, -13, 0
	keys := []string{own.SortKey(), f1.SortKey(), f12.SortKey(), log0.SortKey()}
	if !slices.IsSorted(keys) || len(slices.Compact(slices.Clone(keys))) != 4 {
		t.Fatalf("sort keys out of order: %q", keys)
	}
	if own.SortKey() != "00000000000000000007.000002.0000000.In.0xab" {
		t.Fatalf("the key of a transaction's own value changed: %s", own.SortKey())
	}
	for e, want := range map[*HistoryEvent]string{&own: "2", &f1: "2:1", &f12: "2:12", &log0: "0"} {
		if e.Index() != want {
			t.Fatalf("index %q, want %q", e.Index(), want)
		}
	}
}

type codeErr struct {
	code int
	msg  string
}

func (e codeErr) Error() string  { return e.msg }
func (e codeErr) ErrorCode() int { return e.code }

func TestTraceUnsupported(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
		want bool
	}{
		{"geth-no-namespace", codeErr{-32601, "the method debug_traceBlockByHash does not exist/is not available"}, true},
		{"eip1474-not-supported", codeErr{-32004, "method not supported"}, true},
		{"provider-words", codeErr{-32000, "debug_traceBlockByHash is not allowed on this plan"}, true},
		{"http-forbidden", fmt.Errorf("wrapped: %w", rpc.HTTPError{StatusCode: 403, Status: "403 Forbidden"}), true},
		{"timeout", errors.New("context deadline exceeded"), false},
		{"missing-state", codeErr{-32000, "required historical state unavailable (reexec=128)"}, false},
		{"http-overloaded", rpc.HTTPError{StatusCode: 503, Status: "503 Service Unavailable"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := traceUnsupported(tt.err); got != tt.want {
				t.Fatalf("traceUnsupported(%v) = %v", tt.err, got)
			}
		})
	}
}
