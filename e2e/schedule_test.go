//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/centra-cloud/centra/e2e/framework"
	flaredb "github.com/centra-cloud/centra/flaredb/client"
)

// schedKeys is how many distinct keys the writers write: with
// schedStoreArgs at least 40 regions (splits leave 1000-1500 keys each).
const schedKeys = 80_000

// schedStoreArgs split regions at 1000 keys and report every second, so a
// few tens of thousands of keys make tens of regions.
var schedStoreArgs = []string{
	"--region-max-keys", "1500", "--region-split-keys", "1000",
	"--region-split-check-interval-ms", "300", "--region-heartbeat-interval-ms", "1000",
}

// TestPDScheduling is issue 10's end-to-end proof; it needs the store
// side (region leaders executing PD's steps). On 3 stores holding >= 40
// regions under continuous writes:
//  1. a fourth store gets a share of peers within 20% of the mean and of
//     leaders within 25%, within 3 minutes;
//  2. evict-leader-scheduler empties a store of leaders within 30 s;
//  3. kill -9 of a store with max-store-down-time 30s: every region is
//     back to 3 replicas on Up stores within 2 minutes of the store
//     turning Down, pending peers 0;
//  4. DELETE /store of a live store: it drains to Tombstone;
//
// and every acknowledged key reads back.
func TestPDScheduling(t *testing.T) {
	c := framework.NewCluster(t, framework.WithNodes(1), framework.WithStores(3), framework.WithStoreArgs(schedStoreArgs...))
	cp := c.Node(0)
	ctx := testCtx(t, 15*time.Minute)
	cli, err := flaredb.New(cp.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if code, body := pdDo(t, ctx, cp, http.MethodPost, "/config/schedule", `{"max-store-down-time": "30s"}`); code != 200 {
		t.Fatalf("config: %d %s", code, body)
	}

	// Writers run through the whole test; a key is acknowledged when its
	// BatchPut returned nil. A batch may fail while a store dies, but the
	// writer retries it: no write fails for good.
	const batchSize = 200
	var acked sync.Map
	var next, nAcked atomic.Int64
	var failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	write := func(first int) error {
		pairs := make([]flaredb.KvPair, 0, batchSize)
		for i := first; i < first+batchSize; i++ {
			pairs = append(pairs, flaredb.KvPair{Key: fdbKey(i), Value: fdbValue(i)})
		}
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		return cli.BatchPut(wctx, "default", pairs)
	}
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				// New keys until there are enough for 40 regions, then
				// rewrites of written batches: writes go on without
				// splitting the cluster away from the balance under test.
				first := int(next.Load())
				if first < schedKeys {
					first = int(next.Add(batchSize) - batchSize)
				} else {
					first = rand.IntN(schedKeys/batchSize) * batchSize
					time.Sleep(100 * time.Millisecond)
				}
				for attempt := 0; ; attempt++ {
					err := write(first)
					if err == nil {
						if _, loaded := acked.LoadOrStore(first, true); !loaded {
							nAcked.Add(batchSize)
						}
						break
					}
					if attempt == 5 {
						failed.Add(1)
						t.Errorf("batch at %d failed for good: %v", first, err)
						break
					}
					time.Sleep(time.Second) // retry after a region or store change
				}
			}
		}()
	}
	stopWriters := sync.OnceFunc(func() {
		close(stop)
		wg.Wait()
	})
	defer stopWriters()

	framework.Eventually(t, func() error {
		rs, err := getRegions(ctx, cp)
		if err != nil {
			return err
		}
		if rs.Count < 40 {
			return fmt.Errorf("%d regions, want >= 40 (%d keys acknowledged)", rs.Count, nAcked.Load())
		}
		return nil
	}, 4*time.Minute)

	t.Run("scale-out: store 4 gets its share", func(t *testing.T) {
		s4, err := c.PrepareStore()
		if err != nil {
			t.Fatal(err)
		}
		must(t, s4.Start())
		began := time.Now()
		framework.Eventually(t, func() error { return balanced(ctx, cp, []uint64{1, 2, 3, 4}) }, 3*time.Minute)
		t.Logf("balanced onto store 4 after %v", time.Since(began).Round(time.Second))
	})

	t.Run("evict-leader empties a store of leaders", func(t *testing.T) {
		if code, body := pdDo(t, ctx, cp, http.MethodPost, "/schedulers", `{"name":"evict-leader-scheduler","store_id":1}`); code != 200 {
			t.Fatalf("add evict-leader: %d %s", code, body)
		}
		began := time.Now()
		framework.Eventually(t, func() error {
			rs, err := getRegions(ctx, cp)
			if err != nil {
				return err
			}
			n := 0
			for _, r := range rs.Regions {
				if r.Leader != nil && r.Leader.StoreID == 1 {
					n++
				}
			}
			if n > 0 {
				return fmt.Errorf("store 1 still leads %d regions", n)
			}
			return nil
		}, 30*time.Second)
		t.Logf("store 1 led nothing after %v", time.Since(began).Round(time.Second))
		if code, body := pdDo(t, ctx, cp, http.MethodDelete, "/schedulers/evict-leader-scheduler", ""); code != 200 {
			t.Fatalf("remove evict-leader: %d %s", code, body)
		}
	})

	t.Run("a killed store's replicas are rebuilt", func(t *testing.T) {
		victim := c.Store(1) // store 2
		must(t, victim.Kill())
		waitStoreState(t, ctx, c, victim.StoreID(), "Down", 90*time.Second)
		began := time.Now()
		framework.Eventually(t, func() error {
			if err := replicated(ctx, cp, map[uint64]bool{victim.StoreID(): true}); err != nil {
				return err
			}
			return pendingZero(ctx, cp)
		}, 2*time.Minute)
		t.Logf("every region back to 3 replicas on Up stores %v after store %d turned Down", time.Since(began).Round(time.Second), victim.StoreID())
	})

	t.Run("DELETE /store drains to Tombstone", func(t *testing.T) {
		// Up: 1, 3, 4 (2 is dead): a fifth store lets one leave.
		s5, err := c.PrepareStore()
		if err != nil {
			t.Fatal(err)
		}
		must(t, s5.Start())
		waitStoreState(t, ctx, c, s5.StoreID(), "Up", 30*time.Second)
		if code, body := pdDo(t, ctx, cp, http.MethodDelete, "/store/3", ""); code != 200 {
			t.Fatalf("DELETE /store/3: %d %s", code, body)
		}
		waitStoreState(t, ctx, c, 3, "Tombstone", 3*time.Minute)
		if err := replicated(ctx, cp, map[uint64]bool{2: true, 3: true}); err != nil {
			t.Fatal(err)
		}
	})

	stopWriters()
	if f := failed.Load(); f > 0 {
		t.Fatalf("%d batches failed for good", f)
	}
	var missing int
	acked.Range(func(k, _ any) bool {
		first := k.(int)
		keys := make([][]byte, 0, batchSize)
		for i := first; i < first+batchSize; i++ {
			keys = append(keys, fdbKey(i))
		}
		got, err := cli.BatchGet(ctx, "default", keys)
		if err != nil {
			t.Fatalf("BatchGet at %d: %v", first, err)
		}
		for j, p := range got {
			if !bytes.Equal(p.Value, fdbValue(first+j)) {
				missing++
			}
		}
		missing += batchSize - len(got)
		return true
	})
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged keys did not read back", missing, nAcked.Load())
	}
	t.Logf("%d acknowledged keys read back", nAcked.Load())
}

// balanced checks that every store holds a peer count within 20% of the
// mean and a leader count within 25% of the mean.
func balanced(ctx context.Context, cp *framework.Node, stores []uint64) error {
	rs, err := getRegions(ctx, cp)
	if err != nil {
		return err
	}
	peers, leaders := map[uint64]int{}, map[uint64]int{}
	total := 0
	for _, r := range rs.Regions {
		for _, p := range r.Peers {
			peers[p.StoreID]++
			total++
		}
		if r.Leader != nil {
			leaders[r.Leader.StoreID]++
		}
	}
	meanPeers, meanLeaders := float64(total)/float64(len(stores)), float64(rs.Count)/float64(len(stores))
	var bad []string
	for _, s := range stores {
		if math.Abs(float64(peers[s])-meanPeers) > 0.2*meanPeers {
			bad = append(bad, fmt.Sprintf("store %d holds %d peers (mean %.1f)", s, peers[s], meanPeers))
		}
		if math.Abs(float64(leaders[s])-meanLeaders) > 0.25*meanLeaders {
			bad = append(bad, fmt.Sprintf("store %d leads %d regions (mean %.1f)", s, leaders[s], meanLeaders))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%s", strings.Join(bad, "; "))
	}
	return nil
}

// replicated checks that every region has 3 peers, none on a gone store.
func replicated(ctx context.Context, cp *framework.Node, gone map[uint64]bool) error {
	rs, err := getRegions(ctx, cp)
	if err != nil {
		return err
	}
	for _, r := range rs.Regions {
		n := 0
		for _, p := range r.Peers {
			if gone[p.StoreID] {
				return fmt.Errorf("region %d still has a peer on store %d", r.ID, p.StoreID)
			}
			n++
		}
		if n != 3 {
			return fmt.Errorf("region %d has %d peers", r.ID, n)
		}
	}
	return nil
}

// pendingZero checks flaredb_pending_peers_total and /stats/region.
func pendingZero(ctx context.Context, cp *framework.Node) error {
	_, metrics, err := cp.Get(ctx, "/metrics")
	if err != nil {
		return err
	}
	if m := regexp.MustCompile(`(?m)^flaredb_pending_peers_total (.*)$`).FindStringSubmatch(metrics); m == nil || m[1] != "0" {
		return fmt.Errorf("flaredb_pending_peers_total = %v, want 0", m)
	}
	_, body, err := cp.Get(ctx, "/pd/api/v1/stats/region")
	if err != nil {
		return err
	}
	if !strings.Contains(body, `"pending_peers": 0`) {
		return fmt.Errorf("stats/region: %s", body)
	}
	return nil
}
