//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/centra-cloud/centra/e2e/framework"
	flaredb "github.com/centra-cloud/centra/flaredb/client"
)

// TestFlareDBSkippedSplitRepaired (issue 10, store side): a store killed
// with -9 while its regions split and their raft logs are compacted comes
// back by snapshots of the parents (taken after the splits), so it never
// applies those splits; it starts the split-born replicas it is a peer of
// from PD's view, each catches up by its own snapshot, and PD's
// flaredb_pending_peers_total returns to 0 with every key readable.
func TestFlareDBSkippedSplitRepaired(t *testing.T) {
	c := framework.NewCluster(t, framework.WithNodes(1), framework.WithStores(3),
		framework.WithStoreArgs("--region-max-keys", "600", "--region-split-keys", "400",
			"--region-split-check-interval-ms", "200", "--region-heartbeat-interval-ms", "500",
			"--region-peer-check-interval-ms", "300",
			"--raft-snapshot-entries", "20", "--raft-compaction-overhead", "5"))
	cp := c.Node(0)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cli, err := flaredb.New(cp.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	const ns, total, batch = "default", 6000, 100
	put := func(from, to int) {
		t.Helper()
		for i := from; i < to; i += batch {
			var pairs []flaredb.KvPair
			for j := i; j < min(i+batch, to); j++ {
				pairs = append(pairs, flaredb.KvPair{Key: fdbKey(j), Value: fdbValue(j)})
			}
			wctx, wcancel := context.WithTimeout(ctx, time.Minute)
			err := cli.BatchPut(wctx, ns, pairs)
			wcancel()
			if err != nil {
				t.Fatalf("BatchPut at %d: %v", i, err)
			}
		}
	}
	put(0, 300)
	victim := c.Store(2)
	if err := victim.Kill(); err != nil {
		t.Fatal(err)
	}
	put(300, total)
	var rs pdRegions
	framework.Eventually(t, func() error {
		var err error
		if rs, err = getRegions(ctx, cp); err == nil && rs.Count < 3 {
			err = fmt.Errorf("%d regions after %d keys, want splits while store %d is down", rs.Count, total, victim.StoreID())
		}
		return err
	}, time.Minute)
	t.Logf("%d regions while store %d was down; restarting it", rs.Count, victim.StoreID())
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, func() error {
		if v, err := plainMetric(ctx, cp, "flaredb_pending_peers_total"); err != nil || v != "0" {
			_, regions, _ := cp.Get(ctx, "/pd/api/v1/regions")
			return fmt.Errorf("flaredb_pending_peers_total = %q (%v), want 0; regions %s", v, err, regions)
		}
		rs, err := getRegions(ctx, cp)
		if err != nil {
			return err
		}
		if n, err := plainMetric(ctx, victim, "flaredb_region_count"); err != nil || n != strconv.Itoa(rs.Count) {
			return fmt.Errorf("store %d runs %q regions (%v), PD has %d", victim.StoreID(), n, err, rs.Count)
		}
		return nil
	}, 2*time.Minute)
	got, err := metricValue(ctx, victim, "flaredb_snapshots_total", `direction="receiving"`)
	if err != nil || got < 2 {
		t.Fatalf("store %d received %v snapshots (%v), want the parent's and the skipped children's", victim.StoreID(), got, err)
	}
	// Every key reads back through a client preferring the restarted store
	// (eventual reads are served by its replicas).
	local, err := flaredb.New(victim.URL(), flaredb.WithLocalStore(victim.Endpoint()))
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	all, err := local.Scan(ctx, ns, nil, nil, flaredb.ScanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != total {
		t.Fatalf("scan returned %d keys, want %d", len(all), total)
	}
	for i, p := range all {
		if !bytes.Equal(p.Key, fdbKey(i)) || !bytes.Equal(p.Value, fdbValue(i)) {
			t.Fatalf("key %d: got %q=%q", i, p.Key, p.Value)
		}
	}
	for _, s := range c.Stores() {
		if crashes := s.Crashes(); len(crashes) > 0 {
			t.Fatalf("store %d crashed: %v", s.StoreID(), crashes)
		}
	}
}

// plainMetric returns the value of an unlabelled metric as exported.
func plainMetric(ctx context.Context, n *framework.Node, name string) (string, error) {
	_, body, err := n.Get(ctx, "/metrics")
	if err != nil {
		return "", err
	}
	m := regexp.MustCompile(`(?m)^` + name + ` (.*)$`).FindStringSubmatch(body)
	if m == nil {
		return "", fmt.Errorf("%s not exported", name)
	}
	return m[1], nil
}
