package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/countersign/countersign/internal/app/apptest"
	"github.com/countersign/countersign/internal/bench"
	"github.com/countersign/countersign/internal/testutil"
)

// TestBenchTransfersEndToEnd runs `countersign bench --op transfer --wallets 2
// --wait-confirmed` against a node: every transfer it made is found, and Confirmed. (The
// node's clock is frozen here, so the durations are not checked.)
func TestBenchTransfersEndToEnd(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, e testutil.Engine) {
		n := apptest.Start(t, e, apptest.Options{})
		res, err := bench.Run(context.Background(), n.Admin, bench.Options{Op: "transfer", Concurrency: 4,
			Duration: time.Second, Wallets: 2, WaitConfirmed: 2 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		got := res.EndToEnd
		if res.Ops == 0 || res.Errors != 0 || got == nil {
			t.Fatalf("bench: %v", res)
		}
		// The transfers in flight when the run ended are made but not counted in Ops.
		if got.Transfers < int(res.Ops) || got.Transfers > int(res.Ops)+4 || got.Confirmed != got.Transfers ||
			got.Failed != 0 || got.Unfinished != 0 {
			t.Fatalf("end to end: %v", res)
		}
	})
}
