package e2e

import (
	"context"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/countersign/countersign/client"
	"github.com/countersign/countersign/internal/app/apptest"
	"github.com/countersign/countersign/internal/testutil"
)

// benchNode starts a node and a PAT of the admin to act on (see internal/bench).
func benchNode(b *testing.B, e testutil.Engine) (*client.Client, string) {
	n := apptest.Start(b, e, apptest.Options{})
	k := newKey(b, "Ed25519")
	pat, err := n.Admin.CreatePAT(context.Background(), client.CreateTokenRequest{Name: "bench", PublicKey: k.PublicPEM})
	if err != nil {
		b.Fatal(err)
	}
	c := *n.Admin
	c.HTTP = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	return &c, pat.TokenID
}

// BenchmarkSignedWrite is one full user-action-signed write over loopback HTTP: init,
// sign, action, and PUT /auth/pats/{id}. Client and server share the CPU.
func BenchmarkSignedWrite(b *testing.B) {
	for _, e := range testutil.Engines(b) {
		b.Run(e.Name, func(b *testing.B) {
			c, id := benchNode(b, e)
			var n atomic.Int64
			b.SetParallelism(4)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					name := "bench-" + strconv.FormatInt(n.Add(1), 10)
					if err := c.Do(context.Background(), http.MethodPut, "/auth/pats/"+id, client.UpdateRequest{Name: &name}, nil); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkRead is one authenticated GET /auth/pats/{id} over loopback HTTP.
func BenchmarkRead(b *testing.B) {
	for _, e := range testutil.Engines(b) {
		b.Run(e.Name, func(b *testing.B) {
			c, id := benchNode(b, e)
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if st, _, err := c.Raw(context.Background(), http.MethodGet, "/auth/pats/"+id, nil, ""); err != nil || st != 200 {
						b.Errorf("status %d: %v", st, err)
						return
					}
				}
			})
		})
	}
}
