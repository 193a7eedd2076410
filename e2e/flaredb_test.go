//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/centra-cloud/centra/e2e/framework"
	flaredb "github.com/centra-cloud/centra/flaredb/client"
)

// FlareDB data plane (issue 5): three stores, one control-plane node, tiny
// split thresholds.
const (
	fdbStrongNS   = "orders"  // strong in namespace_modes
	fdbEventualNS = "default" // eventual (the runbook's default)
	fdbKeysPerNS  = 50_000
	fdbBatch      = 250
)

// fdbStoreArgs make regions split at a few thousand keys and report fast.
var fdbStoreArgs = []string{
	"--region-max-keys", "6000", "--region-split-keys", "4000",
	"--region-split-check-interval-ms", "300", "--region-heartbeat-interval-ms", "1000",
}

func fdbKey(i int) []byte { return fmt.Appendf(nil, "key-%06d", i) }
func fdbValue(i int) []byte {
	return fmt.Appendf(nil, "value-%06d-%s", i, bytes.Repeat([]byte{'x'}, 40))
}

// pdRegions is GET /pd/api/v1/regions.
type pdRegions struct {
	Count   int `json:"count"`
	Regions []struct {
		ID       uint64 `json:"id"`
		StartKey string `json:"start_key"`
		EndKey   string `json:"end_key"`
		Peers    []struct {
			ID       uint64 `json:"id"`
			StoreID  uint64 `json:"store_id"`
			RoleName string `json:"role_name"` // Voter, Learner
		} `json:"peers"`
		Leader *struct {
			ID      uint64 `json:"id"`
			StoreID uint64 `json:"store_id"`
		} `json:"leader"`
		PendingPeers []struct {
			ID      uint64 `json:"id"`
			StoreID uint64 `json:"store_id"`
		} `json:"pending_peers"`
	} `json:"regions"`
}

func getRegions(ctx context.Context, n *framework.Node) (pdRegions, error) {
	var rs pdRegions
	code, body, err := n.Get(ctx, "/pd/api/v1/regions")
	if err != nil {
		return rs, err
	}
	if code != 200 {
		return rs, fmt.Errorf("GET /pd/api/v1/regions = %d: %s", code, body)
	}
	return rs, json.Unmarshal([]byte(body), &rs)
}

// checkRegionsTile verifies that the regions cover the key space exactly
// once: sorted by start key, the first starts at "", each ends where the
// next starts, the last ends at "" (+inf).
func checkRegionsTile(rs pdRegions) error {
	regions := rs.Regions
	sort.Slice(regions, func(i, j int) bool { return regions[i].StartKey < regions[j].StartKey })
	if len(regions) == 0 || regions[0].StartKey != "" || regions[len(regions)-1].EndKey != "" {
		return fmt.Errorf("regions do not span the whole key space: %+v", regions)
	}
	for i := 1; i < len(regions); i++ {
		if regions[i-1].EndKey != regions[i].StartKey {
			return fmt.Errorf("gap or overlap between region %d [%s, %s) and region %d [%s, %s)",
				regions[i-1].ID, regions[i-1].StartKey, regions[i-1].EndKey, regions[i].ID, regions[i].StartKey, regions[i].EndKey)
		}
	}
	return nil
}

// metricValue sums the samples of a metric whose line matches labels.
func metricValue(ctx context.Context, n *framework.Node, name, labels string) (float64, error) {
	_, body, err := n.Get(ctx, "/metrics")
	if err != nil {
		return 0, err
	}
	re := regexp.MustCompile(`(?m)^` + name + `\{[^}]*` + labels + `[^}]*\} ([0-9.e+]+)$`)
	var sum float64
	for _, m := range re.FindAllStringSubmatch(body, -1) {
		v, _ := strconv.ParseFloat(m[1], 64)
		sum += v
	}
	return sum, nil
}

func TestFlareDBRegionsSplitsAndFailover(t *testing.T) {
	c := framework.NewCluster(t, framework.WithNodes(1), framework.WithStores(3),
		framework.WithStoreArgs(fdbStoreArgs...),
		framework.WithNamespaceModes(map[string]string{fdbStrongNS: "strong"}))
	cp := c.Node(0)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	cli, err := flaredb.New(cp.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()

	// Writers: both namespaces, batches of fdbBatch keys; a batch is
	// acknowledged when BatchPut returns nil.
	type batch struct {
		ns    string
		first int
	}
	work := make(chan batch)
	var acked sync.Map // "ns/first" -> true
	var nAcked atomic.Int64
	var writeErrs []error
	var errMu sync.Mutex
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range work {
				pairs := make([]flaredb.KvPair, 0, fdbBatch)
				for i := b.first; i < b.first+fdbBatch; i++ {
					pairs = append(pairs, flaredb.KvPair{Key: fdbKey(i), Value: fdbValue(i)})
				}
				wctx, wcancel := context.WithTimeout(ctx, time.Minute)
				err := cli.BatchPut(wctx, b.ns, pairs)
				wcancel()
				if err != nil {
					errMu.Lock()
					writeErrs = append(writeErrs, fmt.Errorf("%s batch at %d: %w", b.ns, b.first, err))
					errMu.Unlock()
					continue
				}
				acked.Store(fmt.Sprintf("%s/%d", b.ns, b.first), true)
				nAcked.Add(int64(fdbBatch))
			}
		}()
	}

	// Kill -9 the store leading the most regions once a third is written,
	// restart it when two thirds are.
	var victim *framework.Node
	began := time.Now()
	for i := 0; i < fdbKeysPerNS; i += fdbBatch {
		for _, ns := range []string{fdbStrongNS, fdbEventualNS} {
			work <- batch{ns, i}
		}
		switch {
		case victim == nil && i >= fdbKeysPerNS/3:
			victim = leaderStore(t, ctx, c)
			t.Logf("kill -9 store %d (leads regions) after %d acknowledged keys", victim.StoreID(), nAcked.Load())
			if err := victim.Kill(); err != nil {
				t.Fatal(err)
			}
		case victim != nil && !victim.Running() && i >= 2*fdbKeysPerNS/3:
			t.Logf("restarting store %d", victim.StoreID())
			if err := victim.Start(); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(work)
	wg.Wait()
	t.Logf("wrote %d keys in %v", nAcked.Load(), time.Since(began).Round(time.Millisecond))
	if len(writeErrs) > 0 {
		t.Fatalf("%d batches failed (the client must ride out a store kill and splits); first: %v", len(writeErrs), writeErrs[0])
	}

	// Many regions, tiling the key space, all known to PD.
	framework.Eventually(t, func() error {
		rs, err := getRegions(ctx, cp)
		if err != nil {
			return err
		}
		if rs.Count < 10 {
			return fmt.Errorf("%d regions, want >= 10 after %d keys with split_keys 4000", rs.Count, 2*fdbKeysPerNS)
		}
		return checkRegionsTile(rs)
	}, time.Minute)
	rs, _ := getRegions(ctx, cp)
	t.Logf("PD lists %d regions", rs.Count)

	// Every acknowledged key reads back, in both namespaces (BatchGet and a
	// full scan).
	for _, ns := range []string{fdbStrongNS, fdbEventualNS} {
		for i := 0; i < fdbKeysPerNS; i += fdbBatch {
			if _, ok := acked.Load(fmt.Sprintf("%s/%d", ns, i)); !ok {
				continue
			}
			var ks [][]byte
			for j := i; j < i+fdbBatch; j++ {
				ks = append(ks, fdbKey(j))
			}
			got, err := cli.BatchGet(ctx, ns, ks)
			if err != nil {
				t.Fatalf("%s BatchGet at %d: %v", ns, i, err)
			}
			if len(got) != fdbBatch {
				t.Fatalf("%s: batch at %d: %d of %d acknowledged keys read back", ns, i, len(got), fdbBatch)
			}
			for j, p := range got {
				if !bytes.Equal(p.Key, fdbKey(i+j)) || !bytes.Equal(p.Value, fdbValue(i+j)) {
					t.Fatalf("%s: got %q=%q, want %q=%q", ns, p.Key, p.Value, fdbKey(i+j), fdbValue(i+j))
				}
			}
		}
		all, err := cli.Scan(ctx, ns, nil, nil, flaredb.ScanOptions{KeyOnly: true})
		if err != nil {
			t.Fatalf("%s scan: %v", ns, err)
		}
		if len(all) != fdbKeysPerNS {
			t.Fatalf("%s: a full scan across regions returned %d keys, want %d", ns, len(all), fdbKeysPerNS)
		}
		for j := 1; j < len(all); j++ {
			if bytes.Compare(all[j-1].Key, all[j].Key) >= 0 {
				t.Fatalf("%s: scan out of order at %d: %q then %q", ns, j, all[j-1].Key, all[j].Key)
			}
		}
	}

	// The restarted store caught up: it hosts replicas again and PD sees
	// no pending peers once every split reached it.
	framework.Eventually(t, func() error {
		_, body, err := cp.Get(ctx, "/metrics")
		if err != nil {
			return err
		}
		if m := regexp.MustCompile(`(?m)^flaredb_pending_peers_total (.*)$`).FindStringSubmatch(body); m == nil || m[1] != "0" {
			return fmt.Errorf("flaredb_pending_peers_total = %v, want 0", m)
		}
		return nil
	}, 2*time.Minute)

	// An eventual read is served by a follower: read through a client whose
	// local store follows the region of the key.
	key := fdbKey(123)
	rs, _ = getRegions(ctx, cp)
	var follower *framework.Node
	for _, r := range rs.Regions {
		if r.Leader == nil {
			continue
		}
		for _, p := range r.Peers {
			if p.StoreID != r.Leader.StoreID && regionHolds(r.StartKey, r.EndKey, fdbEventualNS, key) {
				follower = storeByID(c, p.StoreID)
			}
		}
	}
	if follower == nil {
		t.Fatalf("no follower found for %q in %+v", key, rs.Regions)
	}
	before, _ := metricValue(ctx, follower, "flaredb_reads_total", `mode="eventual",replica="follower"`)
	local, err := flaredb.New(follower.URL(), flaredb.WithLocalStore(follower.Endpoint()))
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	v, found, err := local.Get(ctx, fdbEventualNS, key)
	if err != nil || !found || !bytes.Equal(v, fdbValue(123)) {
		t.Fatalf("eventual Get via store %d = %q, %v, %v", follower.StoreID(), v, found, err)
	}
	after, _ := metricValue(ctx, follower, "flaredb_reads_total", `mode="eventual",replica="follower"`)
	if after <= before {
		t.Fatalf("store %d (a follower) did not serve the eventual read: flaredb_reads_total{mode=eventual,replica=follower} %v -> %v", follower.StoreID(), before, after)
	}
	// A strong read through the same client goes to the leader instead.
	if v, found, err := local.Get(ctx, fdbStrongNS, key); err != nil || !found || !bytes.Equal(v, fdbValue(123)) {
		t.Fatalf("strong Get = %q, %v, %v", v, found, err)
	}
	for _, s := range c.Stores() {
		if crashes := s.Crashes(); len(crashes) > 0 {
			t.Fatalf("store %d crashed: %v", s.StoreID(), crashes)
		}
	}
}

// leaderStore returns the store leading the most regions.
func leaderStore(t *testing.T, ctx context.Context, c *framework.Cluster) *framework.Node {
	t.Helper()
	// PD learns a region's leader from its first heartbeat: wait for one.
	var leader *framework.Node
	framework.Eventually(t, func() error {
		rs, err := getRegions(ctx, c.Node(0))
		if err != nil {
			return err
		}
		count := map[uint64]int{}
		for _, r := range rs.Regions {
			if r.Leader != nil {
				count[r.Leader.StoreID]++
			}
		}
		var best uint64
		for id, n := range count {
			if best == 0 || n > count[best] {
				best = id
			}
		}
		if leader = storeByID(c, best); leader == nil {
			return fmt.Errorf("no region leader in %+v", rs.Regions)
		}
		return nil
	}, 20*time.Second)
	return leader
}

func storeByID(c *framework.Cluster, id uint64) *framework.Node {
	for _, s := range c.Stores() {
		if s.StoreID() == id {
			return s
		}
	}
	return nil
}

// regionHolds reports whether the region [startHex, endHex) holds key of
// namespace ns (encoded as flaredb does: escape(ns) 0x00 0x01 key).
func regionHolds(startHex, endHex, ns string, key []byte) bool {
	enc := fmt.Sprintf("%X", append(append([]byte(ns), 0, 1), key...))
	return enc >= startHex && (endHex == "" || enc < endHex)
}
