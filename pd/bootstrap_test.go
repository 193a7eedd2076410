package pd

import (
	"testing"
)

func TestBootstrapFirstRegionOnceWithMaxReplicas(t *testing.T) {
	n := newLeader(t)
	ctx := ctxT(t)
	n.register(t, 5, 4)
	if rs, _ := n.s.ScanRegions(ctx, nil, nil, 0); len(rs) != 0 {
		t.Fatalf("a region was created with 2 stores and max-replicas 3: %v", rs)
	}
	n.register(t, 9) // the third store: bootstrap happens now
	n.register(t, 1)
	rs, err := n.s.ScanRegions(ctx, nil, nil, 0)
	if err != nil || len(rs) != 1 {
		t.Fatalf("ScanRegions = %v, %v; want the bootstrap region", rs, err)
	}
	r := rs[0].Region
	if len(r.GetStartKey()) != 0 || len(r.GetEndKey()) != 0 || r.GetRegionEpoch().GetVersion() != 1 || r.GetRegionEpoch().GetConfVer() != 1 {
		t.Fatalf("bootstrap region = %v, want the whole key space at epoch 1/1", r)
	}
	var stores []uint64
	for _, p := range r.GetPeers() {
		stores = append(stores, p.GetStoreId())
		if p.GetId() <= r.GetId() {
			t.Errorf("peer ID %d not allocated after region ID %d", p.GetId(), r.GetId())
		}
	}
	if len(stores) != 3 || stores[0] != 4 || stores[1] != 5 || stores[2] != 9 {
		t.Fatalf("peers on stores %v, want the Up stores in ID order [4 5 9]", stores)
	}
	// Stores that host nothing yet report no region IDs: every peer is
	// pending until its store lists the region.
	for _, id := range []uint64{4, 9} {
		st := stats(id)
		st.RegionIds = nil
		if _, err := n.s.StoreHeartbeat(ctx, st, nil); err != nil {
			t.Fatal(err)
		}
	}
	info, _ := n.s.GetRegionByID(ctx, r.GetId())
	if len(info.PendingPeers) != 2 {
		t.Fatalf("pending peers = %v, want the peers on stores 4 and 9", info.PendingPeers)
	}
	// A reload (new PD leader) must not bootstrap again.
	unlock := n.s.lockWrite()
	n.s.invalidate()
	unlock()
	n.register(t, 10)
	if rs, _ := n.s.ScanRegions(ctx, nil, nil, 0); len(rs) != 1 || rs[0].Region.GetId() != r.GetId() {
		t.Fatalf("regions after reload = %v, want only region %d", rs, r.GetId())
	}
}
