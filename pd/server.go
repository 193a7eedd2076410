package pd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/centra-cloud/centra/chainfire/client"
	metav1 "github.com/centra-cloud/centra/gen/centra/meta/v1"
	"github.com/centra-cloud/centra/pd/schedule"
)

// Server is the placement driver of one control-plane node. Every node runs
// one; only the metadata shard's leader acts, the others forward.
//
// The leader keeps a cache of the persisted state (stores, regions,
// configs) plus memory-only facts (heartbeat times, statistics). The cache
// is (re)loaded from the system keyspace whenever this node starts leading
// in a new raft term and after a lost compare-and-swap, so a leader change
// never acts on a previous term's view; within the term it is served
// without a raft read (DESIGN.md "Leadership and staleness").
//
// Locking: mutations and loads hold wmu, which serializes them and keeps
// the compare-and-swap logic simple. Most hold mu exclusively across their
// system-keyspace transaction too (they are rare: registrations, store
// states, config); a region change, the frequent write (splits, conf and
// leader changes), holds mu only to check and to install, not across its
// raft write. Reads hold mu shared and hbMu shared. Heartbeats that change nothing
// persisted hold mu shared and hbMu exclusively while they record their
// memory-only facts (heartbeat time, statistics, region term), so they run
// beside reads and never wait for a raft round of another heartbeat.
type Server struct {
	cfg Config
	log *slog.Logger
	m   *metrics

	// wmu serializes mutations and loads (taken before mu; lockWrite), so
	// a mutation may drop mu during its raft write (a region change does)
	// while nothing else changes the persisted part of the cache.
	wmu sync.Mutex
	mu  sync.RWMutex
	// writing are the regions whose change is being written without mu
	// (recordRegionHeartbeat); their heartbeats wait for it.
	writing []uint64
	// hbMu guards the memory-only heartbeat facts (storeEntry.stats,
	// .hosted, .lastHeartbeat; regionEntry.stats, .rec) against each other
	// under a shared mu; holders of mu exclusively need not take it.
	hbMu        sync.RWMutex
	loaded      bool   // the cache reflects the system keyspace for this leadership
	term        uint64 // the raft term in which this node loaded the cache
	stores      map[uint64]*storeEntry
	regions     *regionIndex
	schedule    ScheduleConfig
	scheduleVer uint64
	replication ReplicationConfig
	// bootstrapped: the first region exists (see bootstrapRegionLocked).
	bootstrapped bool
	replVer      uint64
	schedulers   []schedulerEntry
	schedVer     uint64
	idNext       uint64 // next ID to hand out from the reserved batch
	idEnd        uint64 // end (exclusive) of the reserved batch
	weights      map[uint64]StoreWeight
	weightsVer   uint64
	epochVer     uint64 // version of keyLeaderEpoch written by this leadership

	// diskLow holds, per store whose last heartbeat reported disk_low, the
	// time of that heartbeat (its own lock: read on every region
	// heartbeat).
	diskLow diskLowStores

	// co decides and tracks operators; it has its own lock and keeps
	// leader memory only (reset on every load).
	co *schedule.Coordinator

	startOnce sync.Once
	closeOnce sync.Once
	stop      chan struct{}
	done      chan struct{}
}

// New checks cfg and returns a Server. It does no I/O.
func New(cfg Config) (*Server, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "pd"),
		regions: newRegionIndex(),
		stores:  map[uint64]*storeEntry{},
		weights: map[uint64]StoreWeight{},
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	m, err := newMetrics(cfg.Registry, s)
	if err != nil {
		return nil, fmt.Errorf("pd: register metrics: %w", err)
	}
	s.m = m
	if s.co, err = schedule.New(schedule.Options{Logger: s.log, Now: cfg.Now, Registry: cfg.Registry}); err != nil {
		return nil, fmt.Errorf("pd: register scheduling metrics: %w", err)
	}
	return s, nil
}

// Start begins the background loops that, on the leader, bury Offline
// stores without regions as Tombstone every CheckInterval and run the
// scheduling patrol every PatrolInterval. ctx covers the start only: the
// loops run until Close.
func (s *Server) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	started := false
	s.startOnce.Do(func() {
		started = true
		go s.loop()
	})
	if !started {
		return errors.New("pd: server already started or closed")
	}
	return nil
}

// Close stops the background loop and waits for it. It is idempotent and
// safe without Start. The HTTP and Connect handlers belong to the caller's
// listener: stop that first, then Close.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		started := true
		s.startOnce.Do(func() { started = false })
		if started {
			<-s.done
		}
	})
	return nil
}

func (s *Server) loop() {
	defer close(s.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-s.stop
		cancel()
	}()
	t := time.NewTicker(s.cfg.CheckInterval)
	defer t.Stop()
	p := time.NewTicker(s.cfg.PatrolInterval)
	defer p.Stop()
	leading := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			cctx, ccancel := context.WithTimeout(ctx, s.cfg.CheckInterval)
			if err := s.CheckStores(cctx); err != nil && !isNotLeader(err) {
				s.log.Warn("store check failed", "err", err)
			}
			ccancel()
		case <-p.C:
			now := s.cfg.KV.IsLeader()
			if leading && !now {
				s.co.Reset("this node stopped leading pd")
			}
			leading = now
			pctx, pcancel := context.WithTimeout(ctx, max(s.cfg.PatrolInterval, 5*time.Second))
			s.patrol(pctx)
			pcancel()
		}
	}
}

// lead makes sure this node leads and its cache is loaded in the current
// raft term. Call with mu held exclusively.
func (s *Server) lead(ctx context.Context) error {
	term, leading := s.cfg.KV.LeaderTerm()
	if !leading {
		s.loaded = false
		return ErrNotLeader
	}
	if s.current(term) {
		return nil
	}
	if s.loaded {
		// A new term: another node may have led in between (A -> B -> A).
		s.log.Info("pd leader's raft term changed; reloading state", "loaded_term", s.term, "term", term)
	}
	// The term is read before the load: if leadership moves during the
	// load and comes back, the next call sees a newer term and reloads.
	if err := s.load(ctx); err != nil {
		return fmt.Errorf("pd: load state: %w", err)
	}
	s.loaded, s.term = true, term
	return nil
}

// current reports whether the cache was loaded by this node in term, the
// term it leads in now. Call with mu.
func (s *Server) current(term uint64) bool { return s.loaded && term == s.term }

// view locks the cache for a call served from memory: mu shared, hbMu
// shared (or exclusive with heartbeat, for a heartbeat recording its
// statistics). It loads the cache first when this node leads in a term it
// has not loaded in, and fails with ErrNotLeader on a follower. No raft
// read happens when the cache is current (DESIGN.md "Leadership and
// staleness"). Call unlock when done.
func (s *Server) view(ctx context.Context, heartbeat bool) (unlock func(), err error) {
	for {
		s.mu.RLock()
		if term, leading := s.cfg.KV.LeaderTerm(); leading && s.current(term) {
			if heartbeat {
				s.hbMu.Lock()
				return func() { s.hbMu.Unlock(); s.mu.RUnlock() }, nil
			}
			s.hbMu.RLock()
			return func() { s.hbMu.RUnlock(); s.mu.RUnlock() }, nil
		}
		s.mu.RUnlock()
		if err := s.leading(ctx); err != nil {
			return nil, err
		}
		if err := ctx.Err(); err != nil { // the term moved on again meanwhile
			return nil, err
		}
	}
}

// readCache locks the cache for reading without checking leadership (the
// metrics collector, which shows nothing unless loaded).
func (s *Server) readCache() (unlock func()) {
	s.mu.RLock()
	s.hbMu.RLock()
	return func() { s.hbMu.RUnlock(); s.mu.RUnlock() }
}

// leading makes sure this node leads with its cache loaded.
func (s *Server) leading(ctx context.Context) error {
	defer s.lockWrite()()
	return s.lead(ctx)
}

// lockWrite locks for a mutation or a load: wmu, then mu exclusively.
// Call the result to unlock.
func (s *Server) lockWrite() (unlock func()) {
	s.wmu.Lock()
	s.mu.Lock()
	return func() {
		s.mu.Unlock()
		s.wmu.Unlock()
	}
}

// invalidate drops the cache after a lost compare-and-swap; the next call
// reloads it. Call with mu.
func (s *Server) invalidate() { s.loaded = false }

// load reads the persisted state. Every store counts as just seen: heartbeat
// times are leader memory, so a new leader gives each store a full grace
// period before calling it Disconnected. A reload by the same leader (its
// cache was invalidated by a lost compare-and-swap or a failed read, and
// no other node claimed the epoch since) keeps the heartbeat times and the
// live operators: resetting them would make a Down store Up again, and a
// scheduling target, for max-store-down-time.
func (s *Server) load(ctx context.Context) error {
	now := s.cfg.Now()
	// Claim the epoch first: a previous leader's writes fail from now on.
	got, err := s.cfg.KV.Get(ctx, []byte(keyLeaderEpoch))
	if err != nil {
		return err
	}
	sameLeader := s.epochVer != 0 && got.Version == s.epochVer
	var epoch uint64
	if got.Version > 0 {
		if epoch, err = decodeUint64(got.Value); err != nil {
			return err
		}
	}
	// Operators are leader memory: they survive a reload only when no other
	// node claimed the epoch since this node's claim (a reload after a lost
	// compare-and-swap), not a leadership that went elsewhere and back.
	if !sameLeader {
		s.co.Reset("pd leadership changed; operators are leader memory")
	}
	epochKey := []byte(keyLeaderEpoch)
	ok, err := s.cfg.KV.Txn(ctx, []client.SysCompare{{Key: epochKey, Version: got.Version}},
		[]client.SysKV{{Key: epochKey, Value: encodeUint64(epoch + 1)}}, nil)
	if err != nil {
		return err
	}
	if !ok {
		return ErrConcurrentUpdate
	}
	s.epochVer = got.Version + 1
	kvs, err := s.cfg.KV.List(ctx, []byte(keyStorePrefix))
	if err != nil {
		return err
	}
	stores := make(map[uint64]*storeEntry, len(kvs))
	for _, kv := range kvs {
		st := &metav1.Store{}
		if err := proto.Unmarshal(kv.Value, st); err != nil {
			return fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		e := &storeEntry{meta: st, ver: kv.Version, lastHeartbeat: now}
		if old := s.stores[st.Id]; old != nil {
			e.stats, e.hosted = old.stats, old.hosted // statistics survive a reload on the same node
			if sameLeader {
				e.lastHeartbeat = old.lastHeartbeat
			}
		}
		stores[st.Id] = e
	}
	kvs, err = s.cfg.KV.List(ctx, []byte(keyRegionPrefix))
	if err != nil {
		return err
	}
	regions := newRegionIndex()
	for _, kv := range kvs {
		rec := &metav1.RegionRecord{}
		if err := proto.Unmarshal(kv.Value, rec); err != nil {
			return fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		e := &regionEntry{rec: rec, ver: kv.Version}
		if old := s.regions.byID[rec.GetRegion().GetId()]; old != nil {
			e.stats = old.stats
		}
		regions.put(e)
	}
	sc, scVer, err := loadJSON(ctx, s.cfg.KV, keyScheduleConfig, DefaultScheduleConfig())
	if err != nil {
		return err
	}
	defRC := DefaultReplicationConfig()
	if s.cfg.MaxReplicas > 0 {
		defRC.MaxReplicas = s.cfg.MaxReplicas
	}
	rc, rcVer, err := loadJSON(ctx, s.cfg.KV, keyReplicaConfig, defRC)
	if err != nil {
		return err
	}
	sched, schedVer, err := loadJSON(ctx, s.cfg.KV, keySchedulers, defaultSchedulers())
	if err != nil {
		return err
	}
	weights, weightsVer, err := loadJSON(ctx, s.cfg.KV, keyStoreWeights, map[uint64]StoreWeight{})
	if err != nil {
		return err
	}
	s.stores, s.regions = stores, regions
	s.schedule, s.scheduleVer = sc, scVer
	s.replication, s.replVer = rc, rcVer
	s.schedulers, s.schedVer = sched, schedVer
	s.idNext, s.idEnd = 0, 0
	s.bootstrapped = false
	s.weights, s.weightsVer = weights, weightsVer
	s.log.Info("loaded pd state", "stores", len(stores), "regions", len(regions.byID), "same_leader", sameLeader)
	return nil
}

// loadJSON reads a JSON value, or def when the key is absent. Keys absent
// from the stored JSON keep def's values, so new config keys get defaults.
func loadJSON[T any](ctx context.Context, kv client.SystemKV, key string, def T) (T, uint64, error) {
	got, err := kv.Get(ctx, []byte(key))
	if err != nil {
		return def, 0, err
	}
	if got.Version == 0 {
		return def, 0, nil
	}
	v := def
	if err := json.Unmarshal(got.Value, &v); err != nil {
		return def, 0, fmt.Errorf("decode %s: %w", key, err)
	}
	return v, got.Version, nil
}

// putCAS writes key=value if key is still at ver and returns the new
// version. Call with mu; a lost race invalidates the cache.
func (s *Server) putCAS(ctx context.Context, key []byte, ver uint64, value []byte) (uint64, error) {
	return s.txn(ctx, []client.SysCompare{{Key: key, Version: ver}}, []client.SysKV{{Key: key, Value: value}}, nil, ver+1)
}

func (s *Server) txn(ctx context.Context, cmps []client.SysCompare, puts []client.SysKV, dels [][]byte, newVer uint64) (uint64, error) {
	ver, err := s.commit(ctx, cmps, puts, dels, newVer)
	s.dropOnFailedWrite(err)
	return ver, err
}

// commit applies a transaction conditional on the PD epoch too and
// returns newVer. It reads only epochVer, which loads change under wmu:
// call with wmu (mu is not needed).
func (s *Server) commit(ctx context.Context, cmps []client.SysCompare, puts []client.SysKV, dels [][]byte, newVer uint64) (uint64, error) {
	cmps = append(cmps, s.epochCmp())
	ok, err := s.cfg.KV.Txn(ctx, cmps, puts, dels)
	if err != nil {
		if errors.Is(err, client.ErrNotLeader) {
			return 0, fmt.Errorf("%w: %w", ErrNotLeader, err)
		}
		return 0, err
	}
	if !ok {
		s.log.Warn("pd write lost a compare-and-swap; reloading state", "key", string(cmps[0].Key))
		return 0, ErrConcurrentUpdate
	}
	return newVer, nil
}

// dropOnFailedWrite drops the cache after a write that lost leadership or
// a compare-and-swap; the next call reloads it. Call with mu exclusively.
func (s *Server) dropOnFailedWrite(err error) {
	if errors.Is(err, ErrNotLeader) || errors.Is(err, ErrConcurrentUpdate) {
		s.invalidate()
	}
}

// now returns the injected clock's time.
func (s *Server) now() time.Time { return s.cfg.Now() }

// epochCmp makes a write conditional on this node still holding the PD
// epoch it claimed when it loaded its cache.
func (s *Server) epochCmp() client.SysCompare {
	return client.SysCompare{Key: []byte(keyLeaderEpoch), Version: s.epochVer}
}
