package client

import (
	"fmt"
	"strings"
	"testing"

	metav1 "github.com/centra-cloud/centra/gen/centra/meta/v1"
)

func reg(id uint64, start, end string, version uint64) *metav1.Region {
	return &metav1.Region{Id: id, StartKey: []byte(start), EndKey: []byte(end), RegionEpoch: &metav1.RegionEpoch{ConfVer: 1, Version: version},
		Peers: []*metav1.Peer{{Id: id*10 + 1, StoreId: 1}, {Id: id*10 + 2, StoreId: 2}}}
}

func cacheLayout(rc *regionCache) string {
	var parts []string
	for _, ri := range rc.regions {
		parts = append(parts, fmt.Sprintf("%d[%s,%s)", ri.id(), ri.region.StartKey, ri.region.EndKey))
	}
	return strings.Join(parts, " ")
}

func TestRegionCacheInsertReplacesOverlaps(t *testing.T) {
	var rc regionCache
	rc.insert(reg(1, "", "g", 1), nil)
	rc.insert(reg(2, "g", "p", 1), &metav1.Peer{Id: 21, StoreId: 1})
	rc.insert(reg(3, "p", "", 1), nil)
	if got := cacheLayout(&rc); got != "1[,g) 2[g,p) 3[p,)" {
		t.Fatalf("layout %s", got)
	}
	// A split of region 2 at k: the children replace it.
	rc.insert(reg(2, "g", "k", 2), nil)
	if got := cacheLayout(&rc); got != "1[,g) 2[g,k) 3[p,)" {
		t.Fatalf("layout %s", got)
	}
	if ri, _ := rc.find([]byte("h")); ri.leader.GetId() != 21 {
		t.Fatal("the leader of region 2 was lost although still a member")
	}
	if _, ok := rc.find([]byte("m")); ok {
		t.Fatal("found a region for m in the gap")
	}
	rc.insert(reg(4, "k", "p", 2), nil)
	// A stale answer (region 2 before the split) is refused.
	if rc.insert(reg(2, "g", "p", 1), nil) {
		t.Fatal("stale region accepted")
	}
	// A merge (newer version) replaces both halves.
	rc.insert(reg(5, "a", "z", 3), nil)
	if got := cacheLayout(&rc); got != "5[a,z)" {
		t.Fatalf("layout %s", got)
	}
}

func TestRegionCacheFind(t *testing.T) {
	var rc regionCache
	rc.insert(reg(1, "", "g", 1), nil)
	rc.insert(reg(2, "g", "p", 1), nil)
	rc.insert(reg(3, "p", "", 1), nil)
	for _, tc := range []struct {
		key        string
		find, back uint64
	}{
		{"a", 1, 1}, {"g", 2, 1}, {"h", 2, 2}, {"p", 3, 2}, {"zz", 3, 3},
	} {
		if ri, _ := rc.find([]byte(tc.key)); ri.id() != tc.find {
			t.Errorf("find(%q) = %d, want %d", tc.key, ri.id(), tc.find)
		}
		if ri, _ := rc.findBefore([]byte(tc.key)); ri.id() != tc.back {
			t.Errorf("findBefore(%q) = %d, want %d", tc.key, ri.id(), tc.back)
		}
	}
	if _, ok := rc.findBefore([]byte("")); ok {
		t.Error("findBefore(\"\") found a region")
	}
	if !rc.setLeader(2, &metav1.Peer{Id: 22, StoreId: 2}) || rc.setLeader(2, &metav1.Peer{Id: 99, StoreId: 9}) {
		t.Error("setLeader accepted a non-member or refused a member")
	}
	rc.remove(2)
	if _, ok := rc.find([]byte("h")); ok || rc.len() != 2 {
		t.Error("remove left region 2")
	}
}
