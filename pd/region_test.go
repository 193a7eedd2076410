package pd

import (
	"errors"
	"testing"

	metav1 "github.com/centra-cloud/centra/gen/centra/meta/v1"
)

func TestRegionHeartbeatStaleIsDropped(t *testing.T) {
	n := newLeader(t)
	n.register(t, 1, 2, 3)
	ctx := ctxT(t)
	if _, err := n.s.RegionHeartbeat(ctx, heartbeat(region(10, "", "", 5, 5, 1, 2, 3), 7)); err != nil {
		t.Fatal(err)
	}
	for name, hb := range map[string]struct {
		r    *metav1.Region
		term uint64
	}{
		"lower version":  {region(10, "", "", 5, 4, 1, 2, 3), 7},
		"lower conf_ver": {region(10, "", "", 4, 5, 1, 2), 7},
		"lower term":     {region(10, "", "", 5, 5, 2, 1, 3), 6},
	} {
		if _, err := n.s.RegionHeartbeat(ctx, heartbeat(hb.r, hb.term)); !errors.Is(err, ErrStaleRegion) {
			t.Errorf("%s: err = %v, want ErrStaleRegion", name, err)
		}
	}
	info, err := n.s.GetRegionByID(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if v := info.Region.GetRegionEpoch(); v.GetVersion() != 5 || v.GetConfVer() != 5 || len(info.Region.Peers) != 3 {
		t.Fatalf("a stale heartbeat changed the region: %v", info.Region)
	}
}

func TestRegionSplitReplacesAndStaleOverlapIsDropped(t *testing.T) {
	n := newLeader(t)
	n.register(t, 1, 2, 3)
	ctx := ctxT(t)
	if _, err := n.s.RegionHeartbeat(ctx, heartbeat(region(10, "", "", 1, 1, 1, 2, 3), 1)); err != nil {
		t.Fatal(err)
	}
	id, peers, err := n.s.AskSplit(ctx, region(10, "", "", 1, 1, 1, 2, 3))
	if err != nil || id == 0 || len(peers) != 3 {
		t.Fatalf("AskSplit = %d %v %v", id, peers, err)
	}
	// The right half reports first with the new version: it replaces the
	// old region's range.
	right := region(10, "m", "", 1, 2, 1, 2, 3)
	if _, err := n.s.RegionHeartbeat(ctx, heartbeat(right, 1)); err != nil {
		t.Fatal(err)
	}
	left := region(id, "", "m", 1, 2, 1, 2, 3)
	if _, err := n.s.RegionHeartbeat(ctx, heartbeat(left, 1)); err != nil {
		t.Fatal(err)
	}
	// A late heartbeat of the unsplit region overlaps both with version 1.
	if _, err := n.s.RegionHeartbeat(ctx, heartbeat(region(10, "", "", 1, 1, 1, 2, 3), 1)); !errors.Is(err, ErrStaleRegion) {
		t.Fatalf("old unsplit heartbeat: err = %v, want ErrStaleRegion", err)
	}
	for key, want := range map[string]uint64{"a": id, "m": 10, "zzz": 10, "": id} {
		info, err := n.s.GetRegion(ctx, []byte(key))
		if err != nil || info.Region.GetId() != want {
			t.Errorf("GetRegion(%q) = %v %v, want region %d", key, info.Region, err, want)
		}
	}
	regions, err := n.s.ScanRegions(ctx, nil, nil, 0)
	if err != nil || len(regions) != 2 {
		t.Fatalf("scan = %d regions, %v", len(regions), err)
	}
	// Persisted: a new leader sees both.
	n.kv.setLeader(false)
	b := newTestNode(t, n.kv.memKV.view(true), n.clock)
	regions, err = b.s.ScanRegions(ctx, []byte("a"), []byte("n"), 0)
	if err != nil || len(regions) != 2 {
		t.Fatalf("new leader scan = %d regions, %v", len(regions), err)
	}
	if regions, _ := b.s.ScanRegions(ctx, nil, nil, 1); len(regions) != 1 {
		t.Fatalf("limit 1 gave %d", len(regions))
	}
}

func TestRegionPersistedOnlyOnChange(t *testing.T) {
	n := newLeader(t)
	ctx := ctxT(t)
	r := region(10, "", "", 1, 1, 1, 2, 3)
	if _, err := n.s.RegionHeartbeat(ctx, heartbeat(r, 1)); err != nil {
		t.Fatal(err)
	}
	v1, _ := n.kv.Get(ctx, regionKey(10))
	hb := heartbeat(r, 2) // a new term, same leader: not persisted
	hb.ApproximateSize = 500
	if _, err := n.s.RegionHeartbeat(ctx, hb); err != nil {
		t.Fatal(err)
	}
	if v, _ := n.kv.Get(ctx, regionKey(10)); v.Version != v1.Version {
		t.Fatalf("stats-only heartbeat rewrote the region: %d -> %d", v1.Version, v.Version)
	}
	if info, _ := n.s.GetRegionByID(ctx, 10); info.ApproximateSize != 500 {
		t.Fatalf("stats not kept: %d", info.ApproximateSize)
	}
	hb = heartbeat(r, 3)
	hb.Leader = r.Peers[1] // leader change: persisted
	if _, err := n.s.RegionHeartbeat(ctx, hb); err != nil {
		t.Fatal(err)
	}
	if v, _ := n.kv.Get(ctx, regionKey(10)); v.Version != v1.Version+1 {
		t.Fatalf("leader change not persisted: %d -> %d", v1.Version, v.Version)
	}
}

func TestAskSplitUnknownRegion(t *testing.T) {
	n := newLeader(t)
	if _, _, err := n.s.AskSplit(ctxT(t), region(99, "", "", 1, 1, 1)); !errors.Is(err, ErrRegionNotFound) {
		t.Fatalf("err = %v", err)
	}
}
