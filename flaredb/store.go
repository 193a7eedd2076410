package flaredb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"

	metav1 "github.com/centra-cloud/centra/gen/centra/meta/v1"
	pdv1 "github.com/centra-cloud/centra/gen/centra/pd/v1"
	"github.com/centra-cloud/centra/shared/diskguard"
	"github.com/centra-cloud/centra/shared/raftnode"
)

// PD is what a store needs from the placement driver; pd/client implements
// it.
type PD interface {
	PutStore(ctx context.Context, store *metav1.Store) (*metav1.Store, error)
	StoreHeartbeat(ctx context.Context, stats *pdv1.StoreStats, store *metav1.Store) (*pdv1.StoreHeartbeatResponse, error)
	GetStore(ctx context.Context, id uint64) (*pdv1.GetStoreResponse, error)
	ScanRegions(ctx context.Context, start, end []byte, limit int32) ([]*pdv1.RegionWithLeader, error)
	AskSplit(ctx context.Context, r *metav1.Region) (uint64, []uint64, error)
	// HeartbeatRegion reports a region its leader leads; the answer may
	// carry an operator step (DESIGN.md "Membership changes").
	HeartbeatRegion(ctx context.Context, req *pdv1.RegionHeartbeatRequest) (*pdv1.RegionHeartbeatResponse, error)
}

// StoreConfig configures the store.
type StoreConfig struct {
	ID          uint64 // store_id
	Address     string // addr: the store's API address, its identity in PD
	PeerAddress string // raft address
	DataDir     string
	// DiskGuard watches the free space of DataDir's filesystem
	// (storage.min_free_bytes): while it is low, region leaders refuse
	// writes that add data. nil: no guard.
	DiskGuard *diskguard.Guard
	PD        PD
	Logger    *slog.Logger
	// HeartbeatInterval is how often the store reports (TiKV: 10s).
	HeartbeatInterval time.Duration

	// Node hosts the region shards and DB holds their state (shared with
	// the metadata shard when the process is also a control-plane node).
	Node *raftnode.Node
	DB   *pebble.DB
	// NamespaceModes maps namespaces to "strong" or "eventual"; the
	// "default" entry covers unlisted namespaces (strong if absent).
	NamespaceModes map[string]string
	// Split configures the split check.
	Split SplitConfig
	// RegionHeartbeatInterval is how often region leaders report to PD.
	RegionHeartbeatInterval time.Duration
	// Registry receives the store's metrics.
	Registry prometheus.Registerer
	// PeerCheckInterval is how often the store compares its replicas with
	// PD's regions (starts new and skipped replicas, destroys removed ones).
	PeerCheckInterval time.Duration
	// MaxSnapshotSending and MaxSnapshotReceiving cap the region snapshot
	// streams in flight (0: 4 each; negative: unlimited).
	MaxSnapshotSending, MaxSnapshotReceiving int
}

// Store is a FlareDB store: registration and heartbeats with PD, the
// region replicas it hosts, and their KV service.
type Store struct {
	cfg     StoreConfig
	log     *slog.Logger
	started time.Time
	m       *metrics

	ctx        context.Context // ends on Close
	cancel     context.CancelFunc
	regions    regionSet
	hbNow      chan uint64
	storeHbNow chan struct{} // asks for a store heartbeat now
	snaps      *raftnode.SnapshotLimits
	used       usedSize // the data directory's size, for heartbeats

	// lifecycle serializes joining and destroying replicas.
	lifecycle sync.Mutex

	storesMu  sync.Mutex
	stores    map[uint64]*metav1.Store // store metadata cache (addresses)
	destroyed map[[2]uint64]bool       // {region, peer} destroyed by this process

	// testAfterChangePeer, set by tests only, runs between a ChangePeer's
	// commit and the raft membership change (a crash window).
	testAfterChangePeer atomic.Pointer[func(ctx context.Context)]
}

// identityFile keeps the store's identity in its data directory: a data
// directory belongs to one store_id for good.
const identityFile = "store.json"

type storeIdentity struct {
	StoreID uint64 `json:"store_id"`
	Address string `json:"address"`
}

// NewStore checks cfg; it does no I/O.
func NewStore(cfg StoreConfig) (*Store, error) {
	switch {
	case cfg.ID == 0:
		return nil, errors.New("flaredb: store_id must be >= 1 (set store_id in flaredb.toml)")
	case cfg.Address == "" || cfg.DataDir == "" || cfg.PD == nil || cfg.Logger == nil:
		return nil, errors.New("flaredb: store needs an address, a data directory, a PD client and a logger")
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = 10 * time.Second
	}
	if cfg.RegionHeartbeatInterval <= 0 {
		cfg.RegionHeartbeatInterval = 10 * time.Second
	}
	if cfg.Split.CheckInterval <= 0 {
		cfg.Split.CheckInterval = 10 * time.Second
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.PeerCheckInterval <= 0 {
		cfg.PeerCheckInterval = 2 * time.Second
	}
	snapLimit := func(n int) int {
		if n == 0 {
			return 4
		}
		return max(n, 0)
	}
	s := &Store{
		cfg: cfg, log: cfg.Logger.With("component", "flaredb_pd_client", "store_id", cfg.ID),
		hbNow: make(chan uint64, 64), storeHbNow: make(chan struct{}, 1),
		stores: map[uint64]*metav1.Store{}, destroyed: map[[2]uint64]bool{},
		regions: regionSet{byID: map[uint64]*region{}, sizes: map[uint64]regionSize{}},
		snaps:   raftnode.NewSnapshotLimits(snapLimit(cfg.MaxSnapshotSending), snapLimit(cfg.MaxSnapshotReceiving)),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.m = newMetrics(cfg.Registry, func() float64 { return float64(len(s.regions.all())) }, s.snaps)
	if cfg.Node != nil {
		cfg.Node.OnPromoted(s.onPromoted)
		cfg.Node.OnLeaderChange(func(ev raftnode.LeaderEvent) {
			if r := s.regions.get(ev.ShardID); r != nil && ev.LeaderID == ev.ReplicaID {
				s.heartbeatSoon(ev.ShardID)
			}
		})
	}
	return s, nil
}

// Close stops work started on behalf of the store outside Run (replica
// starts after splits). Stop Run by ending its context.
func (s *Store) Close() { s.cancel() }

// Run registers the store with PD (see Register), restarts the region
// replicas it hosted and runs heartbeats, region reconciliation and split
// checks until ctx ends. registered is called once PD accepted the store.
func (s *Store) Run(ctx context.Context, registered func()) error {
	if s.cfg.Node == nil || s.cfg.DB == nil {
		return errors.New("flaredb: a store needs a raft node and a state DB to host regions")
	}
	if err := s.Register(ctx); err != nil {
		return err
	}
	if err := s.loadRegions(ctx); err != nil {
		return err
	}
	registered()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.runRegionLoops(ctx) }()
	wg.Add(1)
	go func() { defer wg.Done(); s.watchDisk(ctx) }()
	s.RunHeartbeats(ctx)
	wg.Wait()
	return nil
}

// watchDisk keeps DiskGuard current and logs when writes start and stop
// being refused for low disk space.
func (s *Store) watchDisk(ctx context.Context) {
	g := s.cfg.DiskGuard
	refusing := false
	g.Run(ctx, func(err error) {
		switch {
		case err != nil:
			s.log.Warn("Cannot measure the free space of the data directory", "data_dir", g.Dir(), "err", err)
		case g.Low() && !refusing:
			s.log.Warn("Free space of the data directory below storage.min_free_bytes: writes are refused",
				"data_dir", g.Dir(), "free_bytes", g.Free(), "min_free_bytes", g.MinFree())
		case !g.Low() && refusing:
			s.log.Info("Free space of the data directory is back: writes are accepted", "data_dir", g.Dir(), "free_bytes", g.Free())
		}
		if g.Low() != refusing {
			s.storeHeartbeatSoon() // PD tells the leaders of its regions
		}
		refusing = g.Low()
	})
}

// checkIdentity refuses a data directory that belongs to another store_id
// (the runbook's duplicate-store_id fix: new store_id, wipe, restart) and
// records the identity of a new one.
func (s *Store) checkIdentity() error {
	path := filepath.Join(s.cfg.DataDir, identityFile)
	data, err := os.ReadFile(path)
	if err == nil {
		var id storeIdentity
		if err := json.Unmarshal(data, &id); err != nil {
			return fmt.Errorf("flaredb: %s is corrupt (%v); wipe the data directory to start this store afresh", path, err)
		}
		if id.StoreID != s.cfg.ID {
			return fmt.Errorf("flaredb: data directory %s belongs to store_id %d but the config says %d; restore store_id = %d, or wipe the directory to start as a new store", s.cfg.DataDir, id.StoreID, s.cfg.ID, id.StoreID)
		}
		return nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("flaredb: read %s: %w", path, err)
	}
	if err := os.MkdirAll(s.cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("flaredb: create data directory: %w", err)
	}
	data, _ = json.Marshal(storeIdentity{StoreID: s.cfg.ID, Address: s.cfg.Address})
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("flaredb: write %s: %w", tmp, err)
	}
	return os.Rename(tmp, path)
}

// Register checks the data directory's identity and registers the store
// with PD, retrying unreachable PDs until ctx ends. A refusal (store_id
// taken by another address) is returned at once.
func (s *Store) Register(ctx context.Context) error {
	if err := s.checkIdentity(); err != nil {
		return err
	}
	s.started = time.Now()
	meta := s.meta()
	backoff := 200 * time.Millisecond
	for {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := s.cfg.PD.PutStore(rctx, meta)
		cancel()
		if err == nil {
			s.log.Info(fmt.Sprintf("Registered with PD, store_id=%d", s.cfg.ID), "address", s.cfg.Address)
			return nil
		}
		if refused(err) {
			return fmt.Errorf("flaredb: PD refused to register store_id %d at %s: %w", s.cfg.ID, s.cfg.Address, err)
		}
		s.log.Warn("Failed to register with PD, retrying...", "err", err)
		if err := sleep(ctx, backoff); err != nil {
			return err
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// meta is the store's metadata as registered with PD.
func (s *Store) meta() *metav1.Store {
	return &metav1.Store{Id: s.cfg.ID, Address: s.cfg.Address, PeerAddress: s.cfg.PeerAddress, StartTimestamp: s.started.Unix()}
}

// refused reports a PD answer that retrying cannot change.
func refused(err error) bool {
	switch connect.CodeOf(err) {
	case connect.CodeAlreadyExists, connect.CodeFailedPrecondition, connect.CodeInvalidArgument, connect.CodePermissionDenied:
		return true
	}
	return false
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// RunHeartbeats reports the store's statistics every HeartbeatInterval until
// ctx ends; failures are logged and retried with backoff.
func (s *Store) RunHeartbeats(ctx context.Context) {
	wait := s.cfg.HeartbeatInterval
	for {
		hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		// The metadata rides along, so a PD that lost track of the store
		// (e.g. a new leader before the state was replicated) re-learns it.
		_, err := s.cfg.PD.StoreHeartbeat(hctx, s.stats(), s.meta())
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			s.log.Warn("Heartbeat to PD failed, retrying...", "err", err)
			wait = min(max(time.Second, wait/2), s.cfg.HeartbeatInterval)
		case s.cfg.DiskGuard.Low():
			// Every second while short of space, so that a new PD leader
			// soon knows (its view of disk_low is memory only).
			wait = min(diskguard.Interval, s.cfg.HeartbeatInterval)
		default:
			wait = s.cfg.HeartbeatInterval
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-s.storeHbNow:
			t.Stop()
		case <-t.C:
		}
	}
}

// stats measures the store: the file system of the data directory gives
// capacity and available space.
func (s *Store) stats() *pdv1.StoreStats {
	st := &pdv1.StoreStats{StoreId: s.cfg.ID, StartTime: uint32(s.started.Unix()), DiskLow: s.cfg.DiskGuard.Low()}
	if capacity, available, err := diskguard.Usage(s.cfg.DataDir); err == nil {
		st.Capacity, st.Available = capacity, available
	}
	st.UsedSize = s.used.size(s.cfg.DataDir, time.Now())
	// Only initialized replicas count: PD treats a peer whose store does
	// not list its region as pending (a joined replica awaiting its
	// snapshot).
	for _, r := range s.regions.all() {
		if r.desc() != nil {
			st.RegionIds = append(st.RegionIds, r.id)
		}
	}
	st.RegionCount = uint32(len(st.RegionIds))
	s.storeStatsSnapshots(st)
	return st
}

// usedSizeRefresh is how long a measured used size is reported before the
// data directory is walked again. Heartbeats come every
// HeartbeatInterval and at once whenever a replica first has data (a
// split under load: several a second), and the walk stats every file; PD
// reads capacity and available space (a statfs on every heartbeat) for
// its decisions, while used_size is informational.
const usedSizeRefresh = time.Minute

// usedSize caches dirSize of the data directory for usedSizeRefresh.
type usedSize struct {
	mu    sync.Mutex
	at    time.Time
	bytes uint64
}

// size returns the data directory's size as measured at most
// usedSizeRefresh before now.
func (u *usedSize) size(dir string, now time.Time) uint64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.at.IsZero() || now.Sub(u.at) >= usedSizeRefresh {
		u.bytes, u.at = dirSize(dir), now
	}
	return u.bytes
}

// dirSize sums the sizes of the files under dir.
func dirSize(dir string) uint64 {
	var n uint64
	_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				n += uint64(info.Size())
			}
		}
		return nil
	})
	return n
}
