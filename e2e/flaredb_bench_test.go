//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/centra-cloud/centra/e2e/framework"
	flaredb "github.com/centra-cloud/centra/flaredb/client"
)

// BenchmarkFlareDBWrite measures FlareDB write throughput on 3 stores (and
// one control-plane node) with the key space pre-split into 1, 4 and 16
// regions: concurrent single-key Puts of 256-byte values over 16-byte keys
// spread evenly across the regions, through flaredb/client. Not part of
// `make test`; run it with
//
//	go test -tags e2e -run '^$' -bench FlareDBWrite -benchtime 20000x ./e2e/ -centra-bin=$PWD/bin/centra
//
// It reports puts/s next to ns/op.
func BenchmarkFlareDBWrite(b *testing.B) {
	for _, regions := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("regions=%d", regions), func(b *testing.B) {
			c := framework.NewCluster(b, framework.WithNodes(1), framework.WithStores(3), framework.WithLogLevel("warn"))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			cli, err := flaredb.New(c.Node(0).URL())
			if err != nil {
				b.Fatal(err)
			}
			defer cli.Close()
			// Keys are "k" + 15 digits; split at even fractions of the range.
			const space = 1_000_000_000
			key := func(n uint64) []byte { return fmt.Appendf(nil, "k%015d", n) }
			for i := 1; i < regions; i++ {
				if err := cli.SplitAt(ctx, "", key(uint64(i*space/regions))); err != nil {
					b.Fatal(err)
				}
			}
			framework.Eventually(b, func() error {
				rs, err := getRegions(ctx, c.Node(0))
				if err != nil {
					return err
				}
				led := 0
				for _, r := range rs.Regions {
					if r.Leader != nil {
						led++
					}
				}
				if rs.Count != regions || led != regions {
					return fmt.Errorf("%d regions (%d with a leader), want %d", rs.Count, led, regions)
				}
				return nil
			}, time.Minute)
			value := make([]byte, 256)
			var failed atomic.Int64
			b.SetParallelism(32) // 32 writers per core
			b.ResetTimer()
			began := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := cli.Put(ctx, "", key(rand.Uint64N(space)), value); err != nil {
						failed.Add(1)
					}
				}
			})
			elapsed := time.Since(began)
			b.StopTimer()
			if n := failed.Load(); n > 0 {
				b.Fatalf("%d of %d puts failed", n, b.N)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "puts/s")
		})
	}
}
