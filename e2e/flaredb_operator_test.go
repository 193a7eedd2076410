//go:build e2e

package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/centra-cloud/centra/e2e/framework"
	flaredb "github.com/centra-cloud/centra/flaredb/client"
)

// TestFlareDBOperatorSurvivesKills (issue 10, store side with PD's
// operator controller): an admin transfer-region moves region 1 from
// stores 1-3 to stores 2-4 (add learner on 4 by snapshot, promote, remove
// 1) while the new learner's store and then the region's leader store are
// killed with -9 mid-operator; the region converges to stores 2-4, store 1
// destroys its replica and data, PD's pending peers return to 0 and every
// key reads back from store 4's replica.
func TestFlareDBOperatorSurvivesKills(t *testing.T) {
	c := framework.NewCluster(t, framework.WithNodes(1), framework.WithStores(4),
		framework.WithStoreArgs("--region-heartbeat-interval-ms", "500", "--region-peer-check-interval-ms", "300"))
	cp := c.Node(0)
	ctx := testCtx(t, 6*time.Minute)
	if code, _ := pdDo(t, ctx, cp, http.MethodGet, "/operators/records", ""); code != http.StatusOK {
		t.Skip("this build's PD does not run operators (no /operators/records): the store side needs issue 10's operator controller")
	}
	for _, s := range []string{"balance-region-scheduler", "balance-leader-scheduler"} {
		pdDo(t, ctx, cp, http.MethodDelete, "/schedulers/"+s, "")
	}
	cli, err := flaredb.New(cp.URL())
	must(t, err)
	defer cli.Close()
	const n = 3000
	for i := 0; i < n; i += 250 {
		var pairs []flaredb.KvPair
		for j := i; j < i+250; j++ {
			pairs = append(pairs, flaredb.KvPair{Key: fdbKey(j), Value: fdbValue(j)})
		}
		must(t, cli.BatchPut(ctx, "default", pairs))
	}
	region := func() (stores []uint64, leader uint64, id uint64) {
		rs, err := getRegions(ctx, cp)
		if err != nil || len(rs.Regions) != 1 {
			t.Fatalf("regions: %+v, %v", rs, err)
		}
		r := rs.Regions[0]
		for _, p := range r.Peers {
			stores = append(stores, p.StoreID)
		}
		slices.Sort(stores)
		if r.Leader != nil {
			leader = r.Leader.StoreID
		}
		return stores, leader, r.ID
	}
	_, _, id := region()
	op := fmt.Sprintf(`{"name":"transfer-region","region_id":%d,"to_store_ids":[2,3,4]}`, id)
	if code, body := pdDo(t, ctx, cp, http.MethodPost, "/operators", op); code != 200 {
		t.Fatalf("POST transfer-region: %d %s", code, body)
	}
	// Kill -9 store 4 as soon as PD shows its peer (the learner waiting for
	// or applying its snapshot), restart it.
	framework.Eventually(t, func() error {
		if stores, _, _ := region(); !slices.Contains(stores, 4) {
			return fmt.Errorf("no peer on store 4 yet: %v", stores)
		}
		return nil
	}, time.Minute)
	s4 := storeByID(c, 4)
	must(t, s4.Kill())
	time.Sleep(2 * time.Second)
	must(t, s4.Start())
	// Kill -9 the leader store while the operator still runs, restart it.
	if stores, leader, _ := region(); leader != 0 && !slices.Equal(stores, []uint64{2, 3, 4}) {
		victim := storeByID(c, leader)
		t.Logf("kill -9 leader store %d (peers on %v)", leader, stores)
		must(t, victim.Kill())
		time.Sleep(2 * time.Second)
		must(t, victim.Start())
	}
	framework.Eventually(t, func() error {
		stores, _, _ := region()
		if !slices.Equal(stores, []uint64{2, 3, 4}) {
			// The operator may have timed out while stores were down:
			// ask again (refused while one is running).
			pdDo(t, ctx, cp, http.MethodPost, "/operators", op)
			return fmt.Errorf("peers on stores %v", stores)
		}
		if v, err := plainMetric(ctx, cp, "flaredb_pending_peers_total"); err != nil || v != "0" {
			return fmt.Errorf("pending peers %q (%v)", v, err)
		}
		if v, err := plainMetric(ctx, storeByID(c, 1), "flaredb_region_count"); err != nil || v != "0" {
			return fmt.Errorf("store 1 still runs %q regions (%v)", v, err)
		}
		return nil
	}, 3*time.Minute)
	local, err := flaredb.New(s4.URL(), flaredb.WithLocalStore(s4.Endpoint()))
	must(t, err)
	defer local.Close()
	all, err := local.Scan(ctx, "default", nil, nil, flaredb.ScanOptions{})
	must(t, err)
	if len(all) != n {
		t.Fatalf("scan via store 4: %d keys, want %d", len(all), n)
	}
	for i, p := range all {
		if !bytes.Equal(p.Value, fdbValue(i)) {
			t.Fatalf("key %d: %q", i, p.Value)
		}
	}
	for _, s := range c.Stores() {
		if crashes := s.Crashes(); len(crashes) > 0 {
			t.Fatalf("store %d crashed: %v", s.StoreID(), crashes)
		}
	}
}
