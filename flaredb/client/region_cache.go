package client

import (
	"bytes"
	"sort"
	"sync"

	metav1 "github.com/centra-cloud/centra/gen/centra/meta/v1"
)

// regionInfo is a cached region and its leader (nil when unknown). Both
// are shared and never modified: a change replaces the entry.
type regionInfo struct {
	region *metav1.Region
	leader *metav1.Peer
}

func (ri regionInfo) id() uint64 { return ri.region.GetId() }

// contains reports whether the encoded key lies in the region.
func (ri regionInfo) contains(enc []byte) bool {
	return bytes.Compare(enc, ri.region.GetStartKey()) >= 0 && !endsBefore(ri.region.GetEndKey(), enc)
}

// holdsBefore reports whether the region holds the keys just below the
// encoded key end: start < end <= region end (empty: +inf).
func (ri regionInfo) holdsBefore(end []byte) bool {
	e := ri.region.GetEndKey()
	return bytes.Compare(ri.region.GetStartKey(), end) < 0 && (len(e) == 0 || bytes.Compare(e, end) >= 0)
}

// endsBefore reports whether a range ending at end (empty: +inf) holds no
// key >= k.
func endsBefore(end, k []byte) bool {
	return len(end) > 0 && bytes.Compare(end, k) <= 0
}

// peer returns the region's peer on store storeID.
func (ri regionInfo) peer(storeID uint64) *metav1.Peer {
	for _, p := range ri.region.GetPeers() {
		if p.GetStoreId() == storeID {
			return p
		}
	}
	return nil
}

// regionCache holds regions sorted by encoded start key; their ranges never
// overlap. It is safe for concurrent use.
type regionCache struct {
	mu      sync.RWMutex
	regions []regionInfo
}

// find returns the region holding the encoded key.
func (rc *regionCache) find(enc []byte) (regionInfo, bool) {
	rc.mu.RLock()
	defer rc.mu.RUnlock()
	i := sort.Search(len(rc.regions), func(i int) bool {
		return bytes.Compare(rc.regions[i].region.GetStartKey(), enc) > 0
	}) - 1
	if i < 0 || !rc.regions[i].contains(enc) {
		return regionInfo{}, false
	}
	return rc.regions[i], true
}

// findBefore returns the region holding the keys just below the encoded
// key end: start < end <= region end.
func (rc *regionCache) findBefore(end []byte) (regionInfo, bool) {
	rc.mu.RLock()
	defer rc.mu.RUnlock()
	i := sort.Search(len(rc.regions), func(i int) bool {
		return bytes.Compare(rc.regions[i].region.GetStartKey(), end) >= 0
	}) - 1
	if i < 0 || !rc.regions[i].holdsBefore(end) {
		return regionInfo{}, false
	}
	return rc.regions[i], true
}

// overlapping returns the index range [i, j) of regions overlapping
// [start, end). Call with mu held.
func (rc *regionCache) overlapping(start, end []byte) (int, int) {
	i := sort.Search(len(rc.regions), func(i int) bool {
		e := rc.regions[i].region.GetEndKey()
		return len(e) == 0 || bytes.Compare(e, start) > 0
	})
	j := len(rc.regions)
	if len(end) > 0 {
		j = sort.Search(len(rc.regions), func(i int) bool {
			return bytes.Compare(rc.regions[i].region.GetStartKey(), end) >= 0
		})
	}
	return i, max(i, j)
}

// newer reports whether a is a later version of the key space b covers
// (or of the same region) than b. Splits and merges bump the version of
// every region they produce, membership changes the conf version.
func newer(a, b *metav1.Region) bool {
	av, bv := a.GetRegionEpoch().GetVersion(), b.GetRegionEpoch().GetVersion()
	if av != bv {
		return av > bv
	}
	return a.GetId() == b.GetId() && a.GetRegionEpoch().GetConfVer() > b.GetRegionEpoch().GetConfVer()
}

// insert caches r with its leader (nil: unknown), replacing every cached
// region it overlaps. It refuses (and returns false) when a cached
// overlapping region is newer than r: the source was behind the cache.
// A nil leader keeps the leader cached for the same region when that peer
// is still a member.
func (rc *regionCache) insert(r *metav1.Region, leader *metav1.Peer) bool {
	if r == nil {
		return false
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	i, j := rc.overlapping(r.GetStartKey(), r.GetEndKey())
	for _, old := range rc.regions[i:j] {
		if newer(old.region, r) {
			return false
		}
		if leader == nil && old.id() == r.GetId() && old.leader != nil {
			if p := (regionInfo{region: r}).peer(old.leader.GetStoreId()); p != nil && p.GetId() == old.leader.GetId() {
				leader = p
			}
		}
	}
	rc.regions = append(rc.regions[:i], append([]regionInfo{{region: r, leader: leader}}, rc.regions[j:]...)...)
	return true
}

// setLeader records the leader of the region id, if cached and the peer
// is one of its members; it returns false otherwise.
func (rc *regionCache) setLeader(id uint64, leader *metav1.Peer) bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for i, ri := range rc.regions {
		if ri.id() != id {
			continue
		}
		if leader != nil {
			p := ri.peer(leader.GetStoreId())
			if p == nil || p.GetId() != leader.GetId() {
				return false
			}
			leader = p
		}
		rc.regions[i].leader = leader
		return true
	}
	return false
}

// remove drops the region id from the cache.
func (rc *regionCache) remove(id uint64) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for i, ri := range rc.regions {
		if ri.id() == id {
			rc.regions = append(rc.regions[:i], rc.regions[i+1:]...)
			return
		}
	}
}

// len returns the number of cached regions.
func (rc *regionCache) len() int {
	rc.mu.RLock()
	defer rc.mu.RUnlock()
	return len(rc.regions)
}
