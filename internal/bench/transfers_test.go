package bench

import (
	"testing"
	"time"
)

func TestMeasure(t *testing.T) {
	at := func(ms int) string {
		return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).Add(time.Duration(ms) * time.Millisecond).Format("2006-01-02T15:04:05.000Z")
	}
	rows := []transferRow{
		{ID: "a", Status: "Confirmed", DateRequested: at(0), DateBroadcasted: at(10), DateConfirmed: at(100)},
		{ID: "b", Status: "Confirmed", DateRequested: at(50), DateBroadcasted: at(60), DateConfirmed: at(350)},
		{ID: "c", Status: "Failed", Reason: "transaction reverted", DateRequested: at(60), DateBroadcasted: at(70), DateConfirmed: at(2060)},
		{ID: "d", Status: "Failed", Reason: "refused", DateRequested: at(70)},
		{ID: "e", Status: "Broadcasted", DateRequested: at(80), DateBroadcasted: at(90)},
	}
	e, err := measure(rows)
	if err != nil {
		t.Fatal(err)
	}
	want := EndToEnd{Transfers: 5, Confirmed: 2, Failed: 2, Unfinished: 1, FirstFail: "c: transaction reverted",
		Span: 2060 * time.Millisecond, P50: 300 * time.Millisecond, P95: 300 * time.Millisecond, P99: 300 * time.Millisecond,
		Max: 300 * time.Millisecond, BroadcastP50: 10 * time.Millisecond, BroadcastP99: 10 * time.Millisecond}
	if e != want {
		t.Fatalf("measure:\n got %+v\nwant %+v", e, want)
	}
	if r := e.PerSecond(); r < 0.97 || r > 0.98 { // 2 confirmations in 2.06 s
		t.Fatalf("rate %v", r)
	}
	if _, err := measure([]transferRow{{ID: "x", Status: "Confirmed", DateRequested: "yesterday"}}); err == nil {
		t.Fatal("a bad date was accepted")
	}
	if e, err := measure(nil); err != nil || e.Span != 0 || e.PerSecond() != 0 {
		t.Fatalf("no transfers: %+v %v", e, err)
	}
}
