package pd

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	metav1 "github.com/centra-cloud/centra/gen/centra/meta/v1"
	pdv1 "github.com/centra-cloud/centra/gen/centra/pd/v1"
)

// Derived store state names, as TiKV PD shows them in state_name.
const (
	StateUp           = "Up"
	StateDisconnected = "Disconnected"
	StateDown         = "Down"
	StateOffline      = "Offline"
	StateTombstone    = "Tombstone"
)

// storeEntry is a store in the leader's cache: the persisted metadata (at
// KV version ver) plus memory-only heartbeat facts.
type storeEntry struct {
	meta          *metav1.Store
	ver           uint64
	stats         *pdv1.StoreStats
	lastHeartbeat time.Time
	// hosted is stats.RegionIds as a set, built once per heartbeat for the
	// pending-peer checks of region lookups.
	hosted map[uint64]struct{}
}

// setStats records a heartbeat's statistics.
func (e *storeEntry) setStats(st *pdv1.StoreStats) {
	e.stats = st
	e.hosted = make(map[uint64]struct{}, len(st.GetRegionIds()))
	for _, id := range st.GetRegionIds() {
		e.hosted[id] = struct{}{}
	}
}

// StoreInfo is a store with its last statistics and derived state.
type StoreInfo struct {
	Store         *metav1.Store
	Stats         *pdv1.StoreStats
	StateName     string
	LastHeartbeat time.Time
	Weight        StoreWeight
}

// stateName derives Up/Disconnected/Down/Offline/Tombstone. Call with mu.
func (s *Server) stateName(e *storeEntry) string {
	switch e.meta.GetState() {
	case metav1.StoreState_STORE_STATE_OFFLINE:
		return StateOffline
	case metav1.StoreState_STORE_STATE_TOMBSTONE:
		return StateTombstone
	}
	age := s.now().Sub(e.lastHeartbeat)
	switch {
	case age > s.schedule.MaxStoreDownTime.Duration:
		return StateDown
	case age > s.cfg.DisconnectAfter:
		return StateDisconnected
	}
	return StateUp
}

func (s *Server) info(e *storeEntry) StoreInfo {
	st := proto.Clone(e.meta).(*metav1.Store)
	st.LastHeartbeat = e.lastHeartbeat.UnixNano()
	var stats *pdv1.StoreStats
	if e.stats != nil {
		stats = proto.Clone(e.stats).(*pdv1.StoreStats)
	}
	return StoreInfo{Store: st, Stats: stats, StateName: s.stateName(e), LastHeartbeat: e.lastHeartbeat, Weight: s.weightOf(st.GetId())}
}

// PutStore registers a store or updates its metadata and counts as a
// heartbeat. A store_id bound to another address, or an address bound to
// another live store_id, is refused with a *StoreConflictError; a
// tombstone's ID is refused with ErrStoreTombstone. The same address keeps
// its ID across restarts.
func (s *Server) PutStore(ctx context.Context, st *metav1.Store) (*metav1.Store, error) {
	defer s.lockWrite()()
	if err := s.lead(ctx); err != nil {
		return nil, err
	}
	e, err := s.putStoreLocked(ctx, st)
	if err != nil {
		return nil, err
	}
	s.tryBootstrapLocked(ctx)
	return s.info(e).Store, nil
}

func (s *Server) putStoreLocked(ctx context.Context, st *metav1.Store) (*storeEntry, error) {
	same, err := s.checkStore(st)
	if err != nil {
		return nil, err
	}
	now := s.now()
	if same != nil {
		same.lastHeartbeat = now
		return same, nil
	}
	old := s.stores[st.Id]
	next := nextStore(st, old)
	var ver uint64
	if old != nil {
		ver = old.ver
	}
	next.LastHeartbeat = now.UnixNano()
	val, err := proto.Marshal(next)
	if err != nil {
		return nil, err
	}
	newVer, err := s.putCAS(ctx, storeKey(next.Id), ver, val)
	if err != nil {
		return nil, err
	}
	e := &storeEntry{meta: next, ver: newVer, lastHeartbeat: now}
	if old != nil {
		e.stats, e.hosted = old.stats, old.hosted
	} else {
		s.log.Info(fmt.Sprintf("Store registered, store_id=%d", next.Id), "store_id", next.Id, "address", next.Address)
	}
	s.stores[next.Id] = e
	return e, nil
}

// checkStore refuses st as putStoreLocked does and returns the store's
// entry when st changes nothing persisted (nil when it needs a write).
// It only reads: call with mu, shared or exclusive.
func (s *Server) checkStore(st *metav1.Store) (*storeEntry, error) {
	if st.GetId() == 0 {
		return nil, fmt.Errorf("%w: store id must not be 0", ErrInvalidArgument)
	}
	if st.GetAddress() == "" {
		return nil, fmt.Errorf("%w: store %d has no address", ErrInvalidArgument, st.GetId())
	}
	old := s.stores[st.Id]
	if old != nil {
		if old.meta.GetState() == metav1.StoreState_STORE_STATE_TOMBSTONE {
			return nil, fmt.Errorf("%w: store_id %d (%s) was removed and cannot register again: give this store a new store_id and wipe its data dir",
				ErrStoreTombstone, st.Id, old.meta.GetAddress())
		}
		if old.meta.GetAddress() != st.Address {
			return nil, s.refuse(&StoreConflictError{StoreID: st.Id, Address: st.Address, ExistingID: st.Id, ExistingAddress: old.meta.GetAddress()})
		}
	}
	for id, o := range s.stores {
		if id != st.Id && o.meta.GetAddress() == st.Address && o.meta.GetState() != metav1.StoreState_STORE_STATE_TOMBSTONE {
			return nil, s.refuse(&StoreConflictError{StoreID: st.Id, Address: st.Address, ExistingID: id, ExistingAddress: o.meta.GetAddress()})
		}
	}
	if old == nil {
		return nil, nil
	}
	cur := proto.Clone(old.meta).(*metav1.Store)
	cur.LastHeartbeat = 0
	if proto.Equal(cur, nextStore(st, old)) {
		return old, nil
	}
	return nil, nil
}

// nextStore is st as it would be persisted over old (nil: a new store):
// PD owns the state fields, and LastHeartbeat is left 0.
func nextStore(st *metav1.Store, old *storeEntry) *metav1.Store {
	next := proto.Clone(st).(*metav1.Store)
	next.LastHeartbeat = 0
	if old == nil {
		next.State = metav1.StoreState_STORE_STATE_UP_UNSPECIFIED
		next.NodeState = metav1.NodeState_NODE_STATE_SERVING
		return next
	}
	next.State = old.meta.GetState()
	next.NodeState = old.meta.GetNodeState()
	next.PhysicallyDestroyed = old.meta.GetPhysicallyDestroyed()
	return next
}

// StoreHeartbeat records a store's statistics and heartbeat time. With
// st set it first registers or updates the store as PutStore does; without
// it the store must be registered.
func (s *Server) StoreHeartbeat(ctx context.Context, stats *pdv1.StoreStats, st *metav1.Store) (_ *pdv1.StoreHeartbeatResponse, err error) {
	start := time.Now()
	defer func() { s.m.observeHeartbeat(time.Since(start), err) }()
	if stats == nil || stats.StoreId == 0 {
		return nil, fmt.Errorf("%w: heartbeat without store_id", ErrInvalidArgument)
	}
	if st != nil && st.Id != stats.StoreId {
		return nil, fmt.Errorf("%w: heartbeat for store %d carries metadata of store %d", ErrInvalidArgument, stats.StoreId, st.Id)
	}
	if resp, done, err := s.storeHeartbeatCached(ctx, stats, st); done {
		return resp, err
	}
	defer s.lockWrite()()
	if err := s.lead(ctx); err != nil {
		return nil, err
	}
	var e *storeEntry
	if st != nil {
		if e, err = s.putStoreLocked(ctx, st); err != nil {
			return nil, err
		}
	} else if e, err = s.registeredStore(stats.StoreId); err != nil {
		return nil, err
	}
	resp := s.recordStoreHeartbeat(e, stats)
	s.tryBootstrapLocked(ctx)
	return resp, nil
}

// storeHeartbeatCached serves a heartbeat that changes nothing persisted
// (the common case: same metadata, cluster bootstrapped) from the cache,
// without the exclusive lock or any raft round. done is false when the
// heartbeat needs a write.
func (s *Server) storeHeartbeatCached(ctx context.Context, stats *pdv1.StoreStats, st *metav1.Store) (_ *pdv1.StoreHeartbeatResponse, done bool, err error) {
	unlock, err := s.view(ctx, true)
	if err != nil {
		return nil, true, err
	}
	defer unlock()
	if !s.bootstrapped {
		return nil, false, nil
	}
	var e *storeEntry
	if st != nil {
		if e, err = s.checkStore(st); e == nil {
			return nil, err != nil, err
		}
	} else if e, err = s.registeredStore(stats.StoreId); err != nil {
		return nil, true, err
	}
	return s.recordStoreHeartbeat(e, stats), true, nil
}

// registeredStore is the entry of a heartbeat without metadata: the store
// must be registered and not a tombstone. Call with mu.
func (s *Server) registeredStore(id uint64) (*storeEntry, error) {
	e := s.stores[id]
	if e == nil {
		return nil, fmt.Errorf("%w: store_id %d is not registered: call PutStore first", ErrStoreNotFound, id)
	}
	if e.meta.GetState() == metav1.StoreState_STORE_STATE_TOMBSTONE {
		return nil, fmt.Errorf("%w: store_id %d (%s) was removed", ErrStoreTombstone, id, e.meta.GetAddress())
	}
	return e, nil
}

// recordStoreHeartbeat stores the heartbeat's memory-only facts. Call with
// mu exclusive, or mu shared and hbMu exclusive.
func (s *Server) recordStoreHeartbeat(e *storeEntry, stats *pdv1.StoreStats) *pdv1.StoreHeartbeatResponse {
	e.setStats(proto.Clone(stats).(*pdv1.StoreStats))
	e.lastHeartbeat = s.now()
	s.diskLow.record(e.meta.GetId(), stats.GetDiskLow(), e.lastHeartbeat)
	return &pdv1.StoreHeartbeatResponse{ClusterVersion: s.cfg.ClusterVersion, State: e.meta.GetState()}
}

// GetStore returns one store.
func (s *Server) GetStore(ctx context.Context, id uint64) (StoreInfo, error) {
	unlock, err := s.view(ctx, false)
	if err != nil {
		return StoreInfo{}, err
	}
	defer unlock()
	e := s.stores[id]
	if e == nil {
		return StoreInfo{}, fmt.Errorf("%w: store %d", ErrStoreNotFound, id)
	}
	return s.info(e), nil
}

// Stores returns every store, by ID.
func (s *Server) Stores(ctx context.Context) ([]StoreInfo, error) {
	unlock, err := s.view(ctx, false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	ids := make([]uint64, 0, len(s.stores))
	for id := range s.stores {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	out := make([]StoreInfo, 0, len(ids))
	for _, id := range ids {
		out = append(out, s.info(s.stores[id]))
	}
	return out, nil
}

// Result messages of DeleteStore.
const msgStoreOffline = "The store is set as Offline."

// DeleteStore takes a store offline (TiKV PD's DELETE /store/{id}). It is
// refused with ErrTooFewStores when fewer than max-replicas Up stores would
// remain, unless force (the store is physically destroyed and may never
// return). A store holding no region becomes Tombstone at once. Repeating
// the call is a no-op.
func (s *Server) DeleteStore(ctx context.Context, id uint64, force bool) error {
	defer s.lockWrite()()
	if err := s.lead(ctx); err != nil {
		return err
	}
	e := s.stores[id]
	if e == nil {
		return fmt.Errorf("%w: store %d", ErrStoreNotFound, id)
	}
	switch e.meta.GetState() {
	case metav1.StoreState_STORE_STATE_TOMBSTONE:
		return fmt.Errorf("%w: store %d", ErrStoreTombstone, id)
	case metav1.StoreState_STORE_STATE_OFFLINE:
		if !force || e.meta.GetPhysicallyDestroyed() {
			return nil
		}
	default:
		if !force {
			up := 0
			for oid, o := range s.stores {
				if oid != id && o.meta.GetState() == metav1.StoreState_STORE_STATE_UP_UNSPECIFIED {
					up++
				}
			}
			if uint64(up) < s.replication.MaxReplicas {
				return fmt.Errorf("%w: removing store %d would leave %d Up stores, fewer than max-replicas %d: add a store first, or use ?force if the store is gone for good",
					ErrTooFewStores, id, up, s.replication.MaxReplicas)
			}
		}
	}
	next := proto.Clone(e.meta).(*metav1.Store)
	next.State = metav1.StoreState_STORE_STATE_OFFLINE
	next.NodeState = metav1.NodeState_NODE_STATE_REMOVING
	next.PhysicallyDestroyed = next.PhysicallyDestroyed || force
	if !s.mayHoldReplicas(id, e) {
		next.State = metav1.StoreState_STORE_STATE_TOMBSTONE
		next.NodeState = metav1.NodeState_NODE_STATE_REMOVED
	}
	if err := s.writeStoreLocked(ctx, e, next); err != nil {
		return err
	}
	s.log.Info("store set offline", "store_id", id, "force", force, "state", s.stateName(e))
	return nil
}

func (s *Server) writeStoreLocked(ctx context.Context, e *storeEntry, next *metav1.Store) error {
	val, err := proto.Marshal(next)
	if err != nil {
		return err
	}
	ver, err := s.putCAS(ctx, storeKey(next.Id), e.ver, val)
	if err != nil {
		return err
	}
	e.meta, e.ver = next, ver
	return nil
}

// CheckStores buries Offline stores that hold no region as Tombstone. The
// leader runs it every CheckInterval and after region changes.
func (s *Server) CheckStores(ctx context.Context) error {
	defer s.lockWrite()()
	if err := s.lead(ctx); err != nil {
		return err
	}
	if err := s.checkStoresLocked(ctx); err != nil {
		return err
	}
	return s.bootstrapRegionLocked(ctx)
}

func (s *Server) checkStoresLocked(ctx context.Context) error {
	for id, e := range s.stores {
		if e.meta.GetState() != metav1.StoreState_STORE_STATE_OFFLINE || s.mayHoldReplicas(id, e) {
			continue
		}
		next := proto.Clone(e.meta).(*metav1.Store)
		next.State = metav1.StoreState_STORE_STATE_TOMBSTONE
		next.NodeState = metav1.NodeState_NODE_STATE_REMOVED
		if err := s.writeStoreLocked(ctx, e, next); err != nil {
			return err
		}
		s.log.Info("store is tombstone", "store_id", id)
	}
	return nil
}

// mayHoldReplicas reports whether store e may still hold a region replica,
// so that it must not be buried yet: PD's region view has a peer there, or
// the store, still heartbeating, listed a region in its last heartbeat.
// PD's view alone is not enough: a region born of a split is known only
// from its own leader's first heartbeat, which may come after the parent's
// peer on this store moved away; burying the store in between would drop a
// replica it still serves (seen in TestPDScaleOutRepairDrain: a store
// turned Tombstone while a split-born region still had its peer there).
// A store that stopped heartbeating (Disconnected or Down) cannot report,
// so it is judged by PD's view alone. Call with mu exclusive.
func (s *Server) mayHoldReplicas(id uint64, e *storeEntry) bool {
	if s.regions.storeRegionCount(id) > 0 {
		return true
	}
	return len(e.hosted) > 0 && s.now().Sub(e.lastHeartbeat) <= s.cfg.DisconnectAfter
}

// refuse logs a refused registration on the PD side too (the store logs it
// on its side), so both operators see which addresses collide.
func (s *Server) refuse(err *StoreConflictError) error {
	s.log.Warn(fmt.Sprintf("Store registration refused, store_id=%d", err.StoreID), "err", err)
	return err
}

// diskLowStores tracks the stores whose data directory is short of space
// (StoreStats.disk_low), for the leaders of their regions
// (RegionHeartbeatResponse.disk_low_stores). It is leader memory only: a
// store short of space heartbeats every second, so a new PD leader learns
// it within that.
type diskLowStores struct {
	mu    sync.Mutex
	since map[uint64]time.Time // store -> its last heartbeat reporting disk_low
}

func (d *diskLowStores) record(store uint64, low bool, at time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !low {
		delete(d.since, store)
		return
	}
	if d.since == nil {
		d.since = map[uint64]time.Time{}
	}
	d.since[store] = at
}

// among lists the stores of peers whose last heartbeat, no older than
// maxAge at now, reported disk_low: a store that stopped heartbeating
// receives nothing and holds no region's writes back.
func (d *diskLowStores) among(peers []*metav1.Peer, now time.Time, maxAge time.Duration) []uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []uint64
	for _, p := range peers {
		if at, ok := d.since[p.GetStoreId()]; ok && now.Sub(at) <= maxAge && !slices.Contains(out, p.GetStoreId()) {
			out = append(out, p.GetStoreId())
		}
	}
	return out
}
