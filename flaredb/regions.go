package flaredb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/lni/dragonboat/v4"
	"github.com/lni/dragonboat/v4/statemachine"

	"github.com/centra-cloud/centra/flaredb/internal/keys"
	raftcmdv1 "github.com/centra-cloud/centra/gen/centra/flaredb/raftcmd/v1"
	metav1 "github.com/centra-cloud/centra/gen/centra/meta/v1"
	pdv1 "github.com/centra-cloud/centra/gen/centra/pd/v1"
	"github.com/centra-cloud/centra/shared/loop"
	"github.com/centra-cloud/centra/shared/raftnode"
)

// SplitConfig is when a leader splits a region (config [region]).
type SplitConfig struct {
	MaxSize, SplitSize uint64 // approximate bytes of keys and values
	MaxKeys, SplitKeys uint64
	CheckInterval      time.Duration
}

// regionSet is the store's local replicas by region ID.
type regionSet struct {
	mu   sync.RWMutex
	byID map[uint64]*region
	// sizes are the last split check's measurements (leader only), reported
	// in region heartbeats.
	sizes map[uint64]regionSize
}

type regionSize struct{ bytes, keys uint64 }

func (s *regionSet) get(id uint64) *region {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.byID[id]
}

func (s *regionSet) all() []*region {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Collect(maps.Values(s.byID))
}

// overlapping returns the local regions whose range overlaps the encoded
// range [start, end), in key order: what a client with a stale epoch is told
// about (EpochNotMatch).
func (s *regionSet) overlapping(start, end []byte) []*metav1.Region {
	var out []*metav1.Region
	for _, r := range s.all() {
		d := r.desc()
		if d == nil {
			continue // starting: not loaded yet
		}
		if _, _, ok := keys.Clamp(start, end, d.GetStartKey(), d.GetEndKey()); ok {
			out = append(out, d)
		}
	}
	slices.SortFunc(out, func(a, b *metav1.Region) int { return bytes.Compare(a.GetStartKey(), b.GetStartKey()) })
	return out
}

// peerOf returns this store's peer in d.
func (s *Store) peerOf(d *metav1.Region) *metav1.Peer {
	for _, p := range d.GetPeers() {
		if p.GetStoreId() == s.cfg.ID {
			return p
		}
	}
	return nil
}

// storeInfo returns a store's metadata from the cache, asking PD on a miss.
func (s *Store) storeInfo(ctx context.Context, id uint64) (*metav1.Store, error) {
	s.storesMu.Lock()
	st := s.stores[id]
	s.storesMu.Unlock()
	if st != nil {
		return st, nil
	}
	resp, err := s.cfg.PD.GetStore(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("flaredb: look up store %d in PD: %w", id, err)
	}
	s.storesMu.Lock()
	s.stores[id] = resp.GetStore()
	s.storesMu.Unlock()
	return resp.GetStore(), nil
}

// PeerName names the store whose raft address is addr ("store2"), among the
// stores this one has looked up (the peers of its regions); it is the
// raft node's PeerNamer.
func (s *Store) PeerName(addr string) (string, bool) {
	s.storesMu.Lock()
	defer s.storesMu.Unlock()
	for id, st := range s.stores {
		if st.GetPeerAddress() == addr {
			return fmt.Sprintf("store%d", id), true
		}
	}
	return "", false
}

// cachedStoreAddress returns a store's API address if it is cached (the
// request path never waits for PD).
func (s *Store) cachedStoreAddress(id uint64) string {
	s.storesMu.Lock()
	defer s.storesMu.Unlock()
	return s.stores[id].GetAddress()
}

// loadRegions restarts the replicas this store hosted: every shard in the
// state DB with a region descriptor.
func (s *Store) loadRegions(ctx context.Context) error {
	ids, err := raftnode.ShardIDs(s.cfg.DB, raftnode.MetadataShardID+1)
	if err != nil {
		return fmt.Errorf("flaredb: list local regions: %w", err)
	}
	for _, id := range ids {
		d, err := readDescriptor(s.cfg.DB, raftnode.ShardKeyspace(id))
		if err != nil {
			return err
		}
		if d == nil {
			continue
		}
		if destroying, err := s.hasLocal(destroyingKey(id)); err != nil {
			return err
		} else if destroying {
			// A crash interrupted destroyRegion: finish it.
			if err := s.destroyRegion(ctx, id, s.peerOf(d).GetId(), "interrupted by a restart", nil); err != nil {
				return err
			}
			continue
		}
		err = s.startRegion(ctx, d)
		if errors.Is(err, dragonboat.ErrReplicaRemoved) {
			err = s.destroyRegion(ctx, id, s.peerOf(d).GetId(), "raft says this replica was removed", nil)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// startRegion starts this store's replica of d, whose descriptor is in the
// state DB. A new replica (no raft data yet) bootstraps with every peer of d
// as an initial member: how the first region and split-born regions start.
func (s *Store) startRegion(ctx context.Context, d *metav1.Region) error {
	self := s.peerOf(d)
	if self == nil {
		return fmt.Errorf("flaredb: region %d has no peer on store %d (peers %v)", d.GetId(), s.cfg.ID, d.GetPeers())
	}
	return s.startReplica(ctx, self.GetId(), d, false)
}

// startReplica starts peer peerID of region d.Id. Without raft data it
// bootstraps with d's peers as initial members, or, with join, joins the
// region (d is then PD's view; the replica has no descriptor until its
// first snapshot). A replica this store started with join restarts
// non-voting until its promotion snapshot (DESIGN.md "Membership changes").
func (s *Store) startReplica(ctx context.Context, peerID uint64, d *metav1.Region, join bool) error {
	id := d.GetId()
	s.regions.mu.Lock()
	if s.regions.byID[id] != nil {
		s.regions.mu.Unlock()
		return nil
	}
	r := &region{
		id: id, peerID: peerID, joined: join, db: s.cfg.DB, ks: raftnode.ShardKeyspace(id),
		onSplit: s.onSplit, onConfChange: s.onConfChange, onLoad: s.onRegionLoaded, onUninitializedApply: s.onUninitializedApply,
		applyDur: s.m.observeApply, checked: ^uint64(0),
	}
	s.regions.byID[id] = r
	s.regions.mu.Unlock()
	fail := func(err error) error {
		s.forget(id)
		return err
	}
	applied, err := raftnode.ReadAppliedIndex(s.cfg.DB, r.ks)
	if err != nil {
		return fail(err)
	}
	nonVoting, err := s.hasLocal(joinedKey(id))
	if err != nil {
		return fail(err)
	}
	sc := raftnode.ShardConfig{ShardID: id, ReplicaID: peerID, StateAppliedIndex: applied, NonVoting: nonVoting}
	switch {
	case s.cfg.Node.NodeHost().HasNodeInfo(id, peerID):
	case join:
		sc.Join = true
	default:
		sc.InitialMembers = map[uint64]string{}
		for _, p := range d.GetPeers() {
			st, err := s.storeInfo(ctx, p.GetStoreId())
			if err != nil {
				return fail(err)
			}
			sc.InitialMembers[p.GetId()] = st.GetPeerAddress()
		}
	}
	ingest := filepath.Join(s.cfg.DataDir, "snap-ingest")
	if err := os.MkdirAll(ingest, 0o700); err != nil {
		return fail(fmt.Errorf("flaredb: create %s: %w", ingest, err))
	}
	create := func(uint64, uint64) statemachine.IOnDiskStateMachine {
		sm := raftnode.NewRangeStateMachine(s.cfg.DB, r.ks, r)
		sm.IngestDir = ingest
		sm.Limits = s.snaps
		return sm
	}
	if err := s.cfg.Node.StartShard(sc, create); err != nil {
		return fail(fmt.Errorf("flaredb: start region %d: %w", id, err))
	}
	s.log.Info("Region replica started", "region_id", id, "peer_id", peerID,
		"start_key", fmt.Sprintf("%q", d.GetStartKey()), "end_key", fmt.Sprintf("%q", d.GetEndKey()),
		"bootstrap", sc.InitialMembers != nil, "join", sc.Join, "non_voting", sc.NonVoting)
	return nil
}

func (s *Store) forget(id uint64) {
	s.regions.mu.Lock()
	delete(s.regions.byID, id)
	s.regions.mu.Unlock()
}

// onSplit starts the replica of a region a split just created (called from
// the parent's apply path, on a goroutine of its own).
func (s *Store) onSplit(child *metav1.Region) {
	ctx, cancel := context.WithTimeout(s.ctx, time.Minute)
	defer cancel()
	for {
		err := s.startRegion(ctx, child)
		if err == nil || errors.Is(err, raftnode.ErrClosed) || ctx.Err() != nil {
			if err != nil && ctx.Err() != nil {
				s.log.Error("Could not start the replica of a new region; it starts on the next restart", "region_id", child.GetId(), "err", err)
			}
			break
		}
		s.log.Warn("Starting the replica of a new region failed, retrying...", "region_id", child.GetId(), "err", err)
		if sleep(ctx, time.Second) != nil {
			break
		}
	}
	s.heartbeatSoon(child.GetId())
}

// reconcile starts replicas PD assigns to this store that it does not run
// yet. Only the bootstrap region (epoch 1/1, whole key space) is created
// this way: any other region gets its replicas from its parent's split. It
// reports done once PD has regions and every replica of the bootstrap
// region meant for this store runs: there is nothing left to poll PD for.
func (s *Store) reconcile(ctx context.Context) (done bool, err error) {
	rs, err := s.cfg.PD.ScanRegions(ctx, nil, nil, 0)
	if err != nil {
		return false, err
	}
	for _, rw := range rs {
		d := rw.GetRegion()
		if s.peerOf(d) == nil || s.regions.get(d.GetId()) != nil {
			continue
		}
		e := d.GetRegionEpoch()
		if e.GetVersion() != 1 || e.GetConfVer() != 1 || len(d.GetStartKey()) > 0 || len(d.GetEndKey()) > 0 {
			continue
		}
		existing, err := readDescriptor(s.cfg.DB, raftnode.ShardKeyspace(d.GetId()))
		if err != nil {
			return false, err
		}
		if existing == nil {
			if err := s.persistDescriptor(d); err != nil {
				return false, err
			}
			existing = d
		}
		if err := s.startRegion(ctx, existing); err != nil {
			return false, err
		}
	}
	return len(rs) > 0, nil
}

// persistDescriptor writes a region's descriptor, synced, before its
// replica starts.
func (s *Store) persistDescriptor(d *metav1.Region) error {
	b := s.cfg.DB.NewBatch()
	defer b.Close()
	if err := writeDescriptor(b, d); err != nil {
		return err
	}
	return b.Commit(pebble.Sync)
}

// isLeader reports whether this store's replica leads region r.
func (s *Store) isLeader(r *region) (leaderPeer uint64, term uint64, self bool) {
	leader, term, ok := s.cfg.Node.Leader(r.id)
	if !ok {
		return 0, 0, false
	}
	p := s.peerOf(r.desc())
	return leader, term, p != nil && p.GetId() == leader
}

// heartbeatSoon asks the heartbeat loop to report region id now.
func (s *Store) heartbeatSoon(id uint64) {
	select {
	case s.hbNow <- id:
	default:
	}
}

// storeHeartbeatSoon asks for a store heartbeat now (one is enough for
// any number of asks in between), so PD sees the regions this store runs
// without waiting for the next HeartbeatInterval.
func (s *Store) storeHeartbeatSoon() {
	select {
	case s.storeHbNow <- struct{}{}:
	default:
	}
}

// runRegionLoops runs region heartbeats and split checks until ctx ends,
// and reconcile until it is done (polling PD every 200 ms until the first
// region exists), then the peer check.
func (s *Store) runRegionLoops(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(2)
	go func() { defer wg.Done(); s.heartbeatLoop(ctx) }()
	go func() { defer wg.Done(); s.splitLoop(ctx) }()
	for {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		done, err := s.reconcile(rctx)
		cancel()
		if done || ctx.Err() != nil {
			break
		}
		if err != nil {
			s.log.Warn("Could not fetch this store's regions from PD, retrying...", "err", err)
		}
		if sleep(ctx, 200*time.Millisecond) != nil {
			break
		}
	}
	s.peerCheckLoop(ctx)
}

// heartbeatLoop reports the regions this store leads to PD: all of them
// every RegionHeartbeatInterval, one at once on leader change or split.
func (s *Store) heartbeatLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.RegionHeartbeatInterval)
	defer t.Stop()
	for {
		var ids []uint64
		select {
		case <-ctx.Done():
			return
		case id := <-s.hbNow:
			ids = []uint64{id}
		case <-t.C:
			for _, r := range s.regions.all() {
				ids = append(ids, r.id)
			}
		}
		for _, id := range ids {
			if err := s.sendRegionHeartbeat(ctx, id); err != nil && ctx.Err() == nil {
				s.log.Warn("Region heartbeat to PD failed, retrying...", "region_id", id, "err", err)
			}
		}
	}
}

func (s *Store) sendRegionHeartbeat(ctx context.Context, id uint64) error {
	r := s.regions.get(id)
	if r == nil {
		return nil
	}
	leader, term, self := s.isLeader(r)
	if !self {
		return nil
	}
	d := r.desc()
	var lp *metav1.Peer
	for _, p := range d.GetPeers() {
		if p.GetId() == leader {
			lp = p
		}
	}
	// Before PD learns of this leader, its log must not hold entry 1: a
	// store starts a replica PD lists only once the region has a leader.
	hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := s.ensureCompacted(hctx, r); err != nil {
		return err
	}
	s.regions.mu.RLock()
	size := s.regions.sizes[id]
	s.regions.mu.RUnlock()
	req := &pdv1.RegionHeartbeatRequest{Region: d, Leader: lp, Term: term, ApproximateSize: size.bytes >> 20, ApproximateKeys: size.keys,
		PendingPeers: s.pendingPeers(hctx, r)}
	resp, err := s.cfg.PD.HeartbeatRegion(hctx, req)
	if err != nil {
		return err
	}
	if hasStep(resp) {
		s.log.Debug("Operator step from PD", "region_id", id, "operator_id", resp.GetOperatorId(), "step", resp.String())
	}
	if low := resp.GetDiskLowStores(); len(low) > 0 || r.diskLow.Load() != nil {
		if len(low) == 0 {
			r.diskLow.Store(nil)
		} else {
			r.diskLow.Store(&low)
		}
	}
	// Every heartbeat also reconciles raft membership with the descriptor.
	s.leaderWork(r, resp)
	return nil
}

// splitLoop checks the regions this store leads every CheckInterval.
func (s *Store) splitLoop(ctx context.Context) {
	loop.Every(ctx, s.cfg.Split.CheckInterval, func(time.Time) {
		for _, r := range s.regions.all() {
			if _, _, self := s.isLeader(r); !self {
				continue
			}
			// Only a region written since its last check can have grown;
			// every replica is checked once after it starts (checked starts
			// at an impossible count), e.g. a new region still too large.
			if w := r.writes.Load(); w == r.checked {
				continue
			} else {
				r.checked = w
			}
			if err := s.checkSplit(ctx, r); err != nil && ctx.Err() == nil {
				s.log.Warn("Region split failed; retrying at the next check", "region_id", r.id, "err", err)
			}
		}
	})
}

// checkSplit measures region r (keys and key+value bytes, reading at most
// up to the split limits) and, when it exceeds MaxSize or MaxKeys, splits it
// at the first key where SplitSize or SplitKeys is reached.
func (s *Store) checkSplit(ctx context.Context, r *region) error {
	d := r.desc()
	cfg := s.cfg.Split
	var splitKey []byte
	n, size, err := s.scanRegion(d, func(key []byte, n, size uint64) bool {
		if splitKey == nil && (n > cfg.SplitKeys || size > cfg.SplitSize) {
			splitKey = bytes.Clone(key)
		}
		return n <= cfg.MaxKeys && size <= cfg.MaxSize
	})
	if err != nil {
		return err
	}
	s.regions.mu.Lock()
	s.regions.sizes[r.id] = regionSize{bytes: size, keys: n}
	s.regions.mu.Unlock()
	if (n <= cfg.MaxKeys && size <= cfg.MaxSize) || splitKey == nil || bytes.Equal(splitKey, d.GetStartKey()) {
		return nil
	}
	if l := learnerOf(d); l != nil {
		s.log.Debug("Region split deferred: a learner is being added", "region_id", r.id, "peer_id", l.GetId())
		return nil
	}
	return s.split(ctx, r, d, splitKey)
}

// learnerOf returns a learner of d, or nil. A region with a learner does
// not split: a split-born region bootstraps its raft group with the
// parent's peers as voters (dragonboat has no non-voting initial members),
// so a learner still waiting for its snapshot would be a voter of the
// child that its store does not run, and with one more store down the
// child could never elect a leader. The split waits for the promotion (a
// ChangePeer in between makes a proposed split stale anyway).
func learnerOf(d *metav1.Region) *metav1.Peer {
	for _, p := range d.GetPeers() {
		if p.GetRole() == metav1.PeerRole_PEER_ROLE_LEARNER {
			return p
		}
	}
	return nil
}

// splitForPD runs PD's split-region step on region r (descriptor d): at
// the first of its keys strictly inside the region (USE_KEY), or where the
// region's data halves by size (HALFWAY).
func (s *Store) splitForPD(ctx context.Context, r *region, d *metav1.Region, sp *pdv1.SplitRegion) error {
	if l := learnerOf(d); l != nil {
		return fmt.Errorf("region %d has learner %d: it splits after the promotion", r.id, l.GetId())
	}
	var key []byte
	switch sp.GetPolicy() {
	case pdv1.SplitPolicy_SPLIT_POLICY_USE_KEY:
		for _, k := range sp.GetKeys() {
			if keys.InRange(k, d.GetStartKey(), d.GetEndKey()) && !bytes.Equal(k, d.GetStartKey()) {
				key = k
				break
			}
		}
		if key == nil {
			return fmt.Errorf("none of PD's split keys lies inside region %d [%q, %q)", r.id, d.GetStartKey(), d.GetEndKey())
		}
	case pdv1.SplitPolicy_SPLIT_POLICY_HALFWAY_UNSPECIFIED:
		var err error
		if key, err = s.halfwayKey(d); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown split policy %v from PD; upgrade this store", sp.GetPolicy())
	}
	return s.split(ctx, r, d, key)
}

// scanRegion walks d's data in key order, calling visit with each key
// (region-relative, valid only during the call) and the count and size
// (keys and values) of the data up to and including it, until visit
// returns false; it returns the count and size walked.
func (s *Store) scanRegion(d *metav1.Region, visit func(key []byte, n, size uint64) bool) (n, size uint64, err error) {
	lo, hi := keys.DataRange(d.GetStartKey(), d.GetEndKey())
	it, err := s.cfg.DB.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return 0, 0, err
	}
	for ok := it.First(); ok; ok = it.Next() {
		n++
		size += uint64(len(it.Key()) - 1 + len(it.Value()))
		if !visit(it.Key()[1:], n, size) {
			break
		}
	}
	return n, size, errors.Join(it.Error(), it.Close())
}

// halfwayKey is the first key of d's range at which the data before it
// reaches half of the range's size (keys and values).
func (s *Store) halfwayKey(d *metav1.Region) ([]byte, error) {
	_, total, err := s.scanRegion(d, func([]byte, uint64, uint64) bool { return true })
	if err != nil {
		return nil, err
	}
	var key []byte
	half := false // the data walked so far reaches half: the next key splits
	if _, _, err := s.scanRegion(d, func(k []byte, _, size uint64) bool {
		if half {
			key = bytes.Clone(k)
			return false
		}
		half = size >= total/2 && size > 0
		return true
	}); err != nil {
		return nil, err
	}
	if key == nil {
		return nil, fmt.Errorf("region %d holds too little data to split halfway (%d bytes)", d.GetId(), total)
	}
	return key, nil
}

// split asks PD for the new region's IDs and proposes the split.
func (s *Store) split(ctx context.Context, r *region, d *metav1.Region, splitKey []byte) error {
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	newID, peerIDs, err := s.cfg.PD.AskSplit(sctx, d)
	if err != nil {
		return fmt.Errorf("ask PD for split IDs: %w", err)
	}
	cmd := &raftcmdv1.Command{Epoch: d.GetRegionEpoch(),
		Cmd: &raftcmdv1.Command_Split{Split: &raftcmdv1.Split{SplitKey: splitKey, NewRegionId: newID, NewPeerIds: peerIDs}}}
	if _, err := s.propose(sctx, r, cmd); err != nil {
		return fmt.Errorf("split: %w", err)
	}
	s.m.splits.Inc()
	s.log.Info("Region split", "region_id", r.id, "new_region_id", newID, "split_key", fmt.Sprintf("%q", splitKey))
	s.heartbeatSoon(r.id)
	return nil
}
