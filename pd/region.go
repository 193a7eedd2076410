package pd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"

	"google.golang.org/protobuf/proto"

	"github.com/centra-cloud/centra/chainfire/client"
	metav1 "github.com/centra-cloud/centra/gen/centra/meta/v1"
	pdv1 "github.com/centra-cloud/centra/gen/centra/pd/v1"
	"github.com/centra-cloud/centra/pd/schedule"
)

// regionStats are the memory-only parts of a region heartbeat.
type regionStats struct {
	approximateSize uint64 // MiB
	approximateKeys uint64
	bytesWritten    uint64
	keysWritten     uint64
	bytesRead       uint64
	keysRead        uint64
	downPeers       []*pdv1.PeerStats
	pendingPeers    []*metav1.Peer
}

// regionEntry is a region in the leader's cache: the persisted record (at
// KV version ver) plus the last heartbeat's statistics.
type regionEntry struct {
	rec   *metav1.RegionRecord
	ver   uint64
	stats regionStats
}

func (e *regionEntry) region() *metav1.Region { return e.rec.GetRegion() }

// RegionInfo is a region with its leader and last heartbeat statistics.
type RegionInfo struct {
	Region          *metav1.Region
	Leader          *metav1.Peer
	DownPeers       []*pdv1.PeerStats
	PendingPeers    []*metav1.Peer
	ApproximateSize uint64 // MiB
	ApproximateKeys uint64
	BytesWritten    uint64
	KeysWritten     uint64
	BytesRead       uint64
	KeysRead        uint64
}

// unstartedPeers are the peers on Up stores whose last heartbeat did not
// list the region: the replica was not created there yet (a learner being
// added, a split the store has not applied, a replica that skipped a
// split). A store that has not heartbeated since this leader loaded tells
// nothing, and the leader runs its own peer whatever its store's last
// heartbeat said. Call with mu.
func (s *Server) unstartedPeers(e *regionEntry) []*metav1.Peer {
	var out []*metav1.Peer
	for _, p := range e.region().GetPeers() {
		if p.GetId() == e.rec.GetLeader().GetId() {
			continue
		}
		st := s.stores[p.GetStoreId()]
		if st == nil || st.hosted == nil || s.stateName(st) != StateUp {
			continue
		}
		if _, ok := st.hosted[e.region().GetId()]; !ok {
			out = append(out, p)
		}
	}
	return out
}

// downPeers are the peers the leader reported down plus the peers on
// stores that stopped heartbeating (Disconnected or Down). Call with mu.
func (s *Server) downPeers(e *regionEntry) []*pdv1.PeerStats {
	out := slices.Clone(e.stats.downPeers) // appended to below
	for _, p := range e.region().GetPeers() {
		st := s.stores[p.GetStoreId()]
		if st == nil || slices.ContainsFunc(out, func(d *pdv1.PeerStats) bool { return d.GetPeer().GetId() == p.GetId() }) {
			continue
		}
		if name := s.stateName(st); name == StateDisconnected || name == StateDown {
			out = append(out, &pdv1.PeerStats{Peer: p, DownSeconds: uint64(s.now().Sub(st.lastHeartbeat).Seconds())})
		}
	}
	return out
}

// pendingPeers are the peers that are not caught up: reported pending by
// the leader, not started on their store, or down (a replica on a dead
// store falls behind with the first write). Call with mu.
func (s *Server) pendingPeers(e *regionEntry) []*metav1.Peer {
	out := slices.Clone(e.stats.pendingPeers) // appended to below
	add := func(p *metav1.Peer) {
		if !slices.ContainsFunc(out, func(q *metav1.Peer) bool { return q.GetId() == p.GetId() }) {
			out = append(out, p)
		}
	}
	for _, p := range s.unstartedPeers(e) {
		add(p)
	}
	for _, d := range s.downPeers(e) {
		add(d.GetPeer())
	}
	return out
}

// schedRegion is the region as scheduling sees it. Call with mu.
func (s *Server) schedRegion(e *regionEntry) *schedule.Region {
	return &schedule.Region{
		Meta: e.region(), Leader: e.rec.GetLeader(), Pending: s.pendingPeers(e), Unstarted: s.unstartedPeers(e),
		Down: e.stats.downPeers, Size: e.stats.approximateSize,
	}
}

func (s *Server) regionInfo(e *regionEntry) RegionInfo {
	rec := proto.Clone(e.rec).(*metav1.RegionRecord)
	return RegionInfo{
		Region: rec.GetRegion(), Leader: rec.GetLeader(),
		DownPeers: s.downPeers(e), PendingPeers: s.pendingPeers(e),
		ApproximateSize: e.stats.approximateSize, ApproximateKeys: e.stats.approximateKeys,
		BytesWritten: e.stats.bytesWritten, KeysWritten: e.stats.keysWritten,
		BytesRead: e.stats.bytesRead, KeysRead: e.stats.keysRead,
	}
}

// regionIndex finds regions by ID and by key. Regions never overlap in it;
// sorted holds them by start key.
type regionIndex struct {
	byID   map[uint64]*regionEntry
	sorted []*regionEntry
}

func newRegionIndex() *regionIndex { return &regionIndex{byID: map[uint64]*regionEntry{}} }

// put inserts or replaces e (by ID). The caller removed overlaps first.
func (x *regionIndex) put(e *regionEntry) {
	x.remove(e.region().GetId())
	x.byID[e.region().GetId()] = e
	i := sort.Search(len(x.sorted), func(i int) bool {
		return bytes.Compare(x.sorted[i].region().GetStartKey(), e.region().GetStartKey()) >= 0
	})
	x.sorted = slices.Insert(x.sorted, i, e)
}

func (x *regionIndex) remove(id uint64) {
	if _, ok := x.byID[id]; !ok {
		return
	}
	delete(x.byID, id)
	x.sorted = slices.DeleteFunc(x.sorted, func(e *regionEntry) bool { return e.region().GetId() == id })
}

// byKey returns the region holding key, or nil.
func (x *regionIndex) byKey(key []byte) *regionEntry {
	i := sort.Search(len(x.sorted), func(i int) bool {
		return bytes.Compare(x.sorted[i].region().GetStartKey(), key) > 0
	})
	if i == 0 {
		return nil
	}
	e := x.sorted[i-1]
	if end := e.region().GetEndKey(); len(end) > 0 && bytes.Compare(key, end) >= 0 {
		return nil
	}
	return e
}

// overlapping returns the regions overlapping [start, end) (end empty:
// unbounded), in key order.
func (x *regionIndex) overlapping(start, end []byte) []*regionEntry {
	var out []*regionEntry
	for _, e := range x.sorted {
		r := e.region()
		if len(end) > 0 && bytes.Compare(r.GetStartKey(), end) >= 0 {
			break
		}
		if len(r.GetEndKey()) > 0 && bytes.Compare(r.GetEndKey(), start) <= 0 {
			continue
		}
		out = append(out, e)
	}
	return out
}

// storeRegionCount counts the regions with a peer on the store.
func (x *regionIndex) storeRegionCount(storeID uint64) int {
	n := 0
	for _, e := range x.sorted {
		for _, p := range e.region().GetPeers() {
			if p.GetStoreId() == storeID {
				n++
				break
			}
		}
	}
	return n
}

// RegionHeartbeat records a region leader's heartbeat. It returns
// ErrStaleRegion, and changes nothing, when the heartbeat is older than
// what PD knows (as TiKV PD: its version is below the stored version or
// that of an overlapping region, its conf_ver below the stored conf_ver, or
// its term below the stored term). The region is persisted only when it is
// new or its range, epoch, peers or leader changed; statistics stay in
// memory. Regions the heartbeat's range covers are replaced (a split or
// merge seen from the new side).
//
// The response carries the current step of the region's operator, if it
// has one, with the heartbeat's epoch (see DESIGN.md, "How steps reach the
// leader"); a stale heartbeat gets Stale and no step.
func (s *Server) RegionHeartbeat(ctx context.Context, req *pdv1.RegionHeartbeatRequest) (*pdv1.RegionHeartbeatResponse, error) {
	r := req.GetRegion()
	resp := &pdv1.RegionHeartbeatResponse{RegionId: r.GetId(), RegionEpoch: r.GetRegionEpoch(), TargetPeer: req.GetLeader()}
	e, err := s.recordRegionHeartbeat(ctx, req)
	switch {
	case errors.Is(err, ErrStaleRegion):
		resp.Stale = true
		return resp, err
	case err != nil:
		return nil, err
	}
	cmd, opID := s.co.Controller().Dispatch(e)
	if cmd != nil {
		resp.ChangePeer, resp.TransferLeader, resp.SplitRegion, resp.OperatorId = cmd.ChangePeer, cmd.TransferLeader, cmd.SplitRegion, opID
	}
	resp.DiskLowStores = s.diskLow.among(r.GetPeers(), s.now(), s.cfg.DisconnectAfter)
	return resp, nil
}

// recordRegionHeartbeat records the heartbeat and returns the region as
// scheduling sees it.
func (s *Server) recordRegionHeartbeat(ctx context.Context, req *pdv1.RegionHeartbeatRequest) (*schedule.Region, error) {
	r := req.GetRegion()
	if r.GetId() == 0 {
		return nil, fmt.Errorf("%w: region heartbeat without region id", ErrInvalidArgument)
	}
	if len(r.GetEndKey()) > 0 && bytes.Compare(r.GetStartKey(), r.GetEndKey()) >= 0 {
		return nil, fmt.Errorf("%w: region %d has start key %q >= end key %q", ErrInvalidArgument, r.GetId(), r.GetStartKey(), r.GetEndKey())
	}
	if sr, done, err := s.regionHeartbeatCached(ctx, req); done {
		return sr, err
	}
	// A change: writes are serialized by wmu, and mu is held only to
	// check the heartbeat and to install the result, not across the raft
	// write, so reads and other heartbeats go on meanwhile. Nothing else
	// changes the persisted part of the cache while wmu is held (every
	// mutation and every load takes it).
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	e, overlaps, changed, err := s.planRegionWrite(ctx, req)
	if changed {
		// Until installed, heartbeats of these regions take this path
		// too (behind wmu), so they are checked against the new record
		// and dispatched in order, as when mu covered the write.
		s.writing = append(s.writing[:0], r.Id)
		for _, o := range overlaps {
			s.writing = append(s.writing, o.region().GetId())
		}
	}
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if changed {
		val, err := proto.Marshal(e.rec)
		if err != nil {
			return nil, err
		}
		cmps := []client.SysCompare{{Key: regionKey(r.Id), Version: e.ver}}
		var dels [][]byte
		for _, o := range overlaps {
			cmps = append(cmps, client.SysCompare{Key: regionKey(o.region().GetId()), Version: o.ver})
			dels = append(dels, regionKey(o.region().GetId()))
		}
		ver, err := s.commit(ctx, cmps, []client.SysKV{{Key: regionKey(r.Id), Value: val}}, dels, e.ver+1)
		if err != nil {
			s.mu.Lock()
			s.writing = s.writing[:0]
			s.dropOnFailedWrite(err)
			s.mu.Unlock()
			return nil, err
		}
		e.ver = ver
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writing = s.writing[:0]
	for _, o := range overlaps {
		s.regions.remove(o.region().GetId())
	}
	s.regions.put(e)
	if changed {
		if err := s.checkStoresLocked(ctx); err != nil {
			return nil, err
		}
	}
	return s.schedRegion(e), nil
}

// planRegionWrite checks a heartbeat that the cache cannot absorb and
// returns the entry to install (at the persisted version it replaces, 0
// if none), the regions it replaces, and whether it must be written: it is
// new, replaces others, or its range, epoch, peers or leader changed. Call
// with wmu and mu exclusively.
func (s *Server) planRegionWrite(ctx context.Context, req *pdv1.RegionHeartbeatRequest) (e *regionEntry, overlaps []*regionEntry, changed bool, err error) {
	if err := s.lead(ctx); err != nil {
		return nil, nil, false, err
	}
	r, epoch := req.GetRegion(), req.GetRegion().GetRegionEpoch()
	origin := s.regions.byID[r.Id]
	if err := staleAgainst(origin, req); err != nil {
		return nil, nil, false, err
	}
	for _, o := range s.regions.overlapping(r.GetStartKey(), r.GetEndKey()) {
		if o.region().GetId() == r.Id {
			continue
		}
		if epoch.GetVersion() < o.region().GetRegionEpoch().GetVersion() {
			return nil, nil, false, fmt.Errorf("%w: region %d version %d is older than overlapping region %d version %d",
				ErrStaleRegion, r.Id, epoch.GetVersion(), o.region().GetId(), o.region().GetRegionEpoch().GetVersion())
		}
		overlaps = append(overlaps, o)
	}
	e = &regionEntry{rec: recordOf(req), stats: statsOf(req)}
	if origin != nil {
		e.ver = origin.ver
	}
	return e, overlaps, origin == nil || len(overlaps) > 0 || !sameRegion(origin.rec, e.rec), nil
}

// regionHeartbeatCached serves a heartbeat of a known region whose range,
// epoch, peers and leader PD already has (the common case) from the
// cache, without the exclusive lock or any raft round: it records the
// statistics and the term. done is false when the heartbeat needs a write
// (or is of a region PD does not know).
func (s *Server) regionHeartbeatCached(ctx context.Context, req *pdv1.RegionHeartbeatRequest) (_ *schedule.Region, done bool, err error) {
	unlock, err := s.view(ctx, true)
	if err != nil {
		return nil, true, err
	}
	defer unlock()
	origin := s.regions.byID[req.GetRegion().GetId()]
	if origin == nil || slices.Contains(s.writing, origin.region().GetId()) {
		return nil, false, nil
	}
	if err := staleAgainst(origin, req); err != nil {
		return nil, true, err
	}
	rec := recordOf(req)
	// Same range as a region in the index, which never overlaps: no other
	// region overlaps it either.
	if !sameRegion(origin.rec, rec) {
		return nil, false, nil
	}
	origin.rec, origin.stats = rec, statsOf(req)
	return s.schedRegion(origin), true, nil
}

// staleAgainst returns ErrStaleRegion when the heartbeat is older than the
// known region (nil: none): its conf_ver or version is lower, or its term.
func staleAgainst(origin *regionEntry, req *pdv1.RegionHeartbeatRequest) error {
	if origin == nil {
		return nil
	}
	r, epoch, oe := req.GetRegion(), req.GetRegion().GetRegionEpoch(), origin.region().GetRegionEpoch()
	switch {
	case epoch.GetVersion() < oe.GetVersion() || epoch.GetConfVer() < oe.GetConfVer():
		return fmt.Errorf("%w: region %d epoch (conf_ver %d, version %d) is older than the known (conf_ver %d, version %d)",
			ErrStaleRegion, r.GetId(), epoch.GetConfVer(), epoch.GetVersion(), oe.GetConfVer(), oe.GetVersion())
	case req.GetTerm() < origin.rec.GetTerm():
		return fmt.Errorf("%w: region %d term %d is older than the known term %d", ErrStaleRegion, r.GetId(), req.GetTerm(), origin.rec.GetTerm())
	}
	return nil
}

// recordOf is the record a heartbeat describes.
func recordOf(req *pdv1.RegionHeartbeatRequest) *metav1.RegionRecord {
	rec := &metav1.RegionRecord{Region: proto.Clone(req.GetRegion()).(*metav1.Region), Leader: proto.Clone(req.GetLeader()).(*metav1.Peer), Term: req.GetTerm()}
	if rec.Region.RegionEpoch == nil {
		rec.Region.RegionEpoch = &metav1.RegionEpoch{}
	}
	return rec
}

// statsOf is the memory-only part of a heartbeat.
func statsOf(req *pdv1.RegionHeartbeatRequest) regionStats {
	return regionStats{
		approximateSize: req.GetApproximateSize(), approximateKeys: req.GetApproximateKeys(),
		bytesWritten: req.GetBytesWritten(), keysWritten: req.GetKeysWritten(),
		bytesRead: req.GetBytesRead(), keysRead: req.GetKeysRead(),
		downPeers: req.GetDownPeers(), pendingPeers: req.GetPendingPeers(),
	}
}

// sameRegion reports whether two records agree on everything that is
// persisted on change: range, epoch, peers and leader (not the term).
func sameRegion(a, b *metav1.RegionRecord) bool {
	return proto.Equal(a.GetRegion(), b.GetRegion()) && proto.Equal(a.GetLeader(), b.GetLeader())
}

// GetRegionByID returns a region by ID.
func (s *Server) GetRegionByID(ctx context.Context, id uint64) (RegionInfo, error) {
	unlock, err := s.view(ctx, false)
	if err != nil {
		return RegionInfo{}, err
	}
	defer unlock()
	e := s.regions.byID[id]
	if e == nil {
		return RegionInfo{}, fmt.Errorf("%w: region %d", ErrRegionNotFound, id)
	}
	return s.regionInfo(e), nil
}

// GetRegion returns the region holding key.
func (s *Server) GetRegion(ctx context.Context, key []byte) (RegionInfo, error) {
	unlock, err := s.view(ctx, false)
	if err != nil {
		return RegionInfo{}, err
	}
	defer unlock()
	e := s.regions.byKey(key)
	if e == nil {
		return RegionInfo{}, fmt.Errorf("%w: no region holds key %q", ErrRegionNotFound, key)
	}
	return s.regionInfo(e), nil
}

// ScanRegions returns up to limit (0: all) regions overlapping [start,
// end), in key order.
func (s *Server) ScanRegions(ctx context.Context, start, end []byte, limit int) ([]RegionInfo, error) {
	unlock, err := s.view(ctx, false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	var out []RegionInfo
	for _, e := range s.regions.overlapping(start, end) {
		if limit > 0 && len(out) >= limit {
			break
		}
		out = append(out, s.regionInfo(e))
	}
	return out, nil
}
