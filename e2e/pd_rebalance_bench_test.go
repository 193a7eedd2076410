//go:build e2e

package e2e

import (
	"context"
	"flag"
	"fmt"
	"testing"
	"time"

	"github.com/centra-cloud/centra/e2e/framework"
	flaredb "github.com/centra-cloud/centra/flaredb/client"
)

var (
	rebalanceRegions   = flag.Int("rebalance-regions", 12, "BenchmarkPDRebalance: regions on the 3 first stores")
	rebalanceRegionMiB = flag.Int("rebalance-region-mib", 4, "BenchmarkPDRebalance: MiB of data in each region")
)

// BenchmarkPDRebalance measures how fast PD moves replicas onto a new
// store (issue 10): 3 stores (and one control-plane node) hold N regions
// of S MiB each (-rebalance-regions, -rebalance-region-mib; the key space
// is pre-split and regions do not split further); a fourth store starts
// and the clock runs until it holds a region count within 20% of the mean
// and its leader count within 25%, with no operator left running. It
// reports the seconds that took and the MiB/s of the replicas that moved
// onto the new store. Not part of `make test`; run it with
//
//	go test -tags e2e -run '^$' -bench PDRebalance -benchtime 1x ./e2e/ -centra-bin=$PWD/bin/centra -rebalance-regions 12 -rebalance-region-mib 4
func BenchmarkPDRebalance(b *testing.B) {
	n, mib := *rebalanceRegions, *rebalanceRegionMiB
	for range b.N {
		b.StopTimer()
		secs, moved := rebalanceOnce(b, n, mib)
		b.ReportMetric(secs, "s/rebalance")
		b.ReportMetric(float64(moved)/secs, "MiB/s")
		b.ReportMetric(float64(moved), "MiB-moved")
	}
}

// rebalanceOnce runs one rebalance onto a new store and returns how long
// it took and how many MiB of replicas the new store received.
func rebalanceOnce(b *testing.B, regions, mib int) (float64, int64) {
	c := framework.NewCluster(b, framework.WithNodes(1), framework.WithStores(3), framework.WithLogLevel("warn"),
		framework.WithStoreArgs("--region-max-keys", "100000000", "--region-split-keys", "90000000",
			"--region-max-size", fmt.Sprint(int64(mib)<<22), "--region-split-size", fmt.Sprint(int64(mib)<<21),
			"--region-heartbeat-interval-ms", "1000", "--region-peer-check-interval-ms", "500"))
	cp := c.Node(0)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	cli, err := flaredb.New(cp.URL())
	if err != nil {
		b.Fatal(err)
	}
	defer cli.Close()
	key := func(region, i int) []byte { return fmt.Appendf(nil, "r%05d/%08d", region, i) }
	for r := 1; r < regions; r++ {
		if err := cli.SplitAt(ctx, "", fmt.Appendf(nil, "r%05d", r)); err != nil {
			b.Fatal(err)
		}
	}
	// S MiB per region in 64 KiB values, 1 MiB per BatchPut.
	value := make([]byte, 64<<10)
	for i := range value {
		value[i] = byte('a' + i%26)
	}
	for r := range regions {
		for m := range mib {
			pairs := make([]flaredb.KvPair, 16)
			for j := range pairs {
				pairs[j] = flaredb.KvPair{Key: key(r, m*16+j), Value: value}
			}
			if err := cli.BatchPut(ctx, "", pairs); err != nil {
				b.Fatal(err)
			}
		}
	}
	// PD knows every region's size (region heartbeats) before the clock
	// starts, so balance-region scores real sizes.
	want := int64(3 * regions * mib * 9 / 10)
	framework.Eventually(b, func() error {
		st, err := pdStoreStatus(ctx, cp)
		if err != nil {
			return err
		}
		var size int64
		for _, s := range st {
			size += s.RegionSize
		}
		if size < want {
			return fmt.Errorf("PD counts %d MiB of replicas, want >= %d", size, want)
		}
		return nil
	}, 5*time.Minute)

	b.StartTimer()
	began := time.Now()
	s4, err := c.PrepareStore()
	if err != nil {
		b.Fatal(err)
	}
	if err := s4.Start(); err != nil {
		b.Fatal(err)
	}
	framework.Eventually(b, func() error {
		if err := storeShare(ctx, cp, s4.StoreID()); err != nil {
			return err
		}
		var ops []any
		if err := cp.PDGetJSON(ctx, "/operators", &ops); err != nil {
			return err
		}
		if len(ops) > 0 {
			return fmt.Errorf("%d operators still running", len(ops))
		}
		return nil
	}, 20*time.Minute)
	secs := time.Since(began).Seconds()
	b.StopTimer()
	st, err := pdStoreStatus(ctx, cp)
	if err != nil {
		b.Fatal(err)
	}
	s := st[s4.StoreID()]
	b.Logf("%d regions of %d MiB: store %d received %d replicas (%d MiB) in %.1f s: %s",
		regions, mib, s4.StoreID(), s.RegionCount, s.RegionSize, secs, storesSummary(ctx, cp))
	return secs, s.RegionSize
}
