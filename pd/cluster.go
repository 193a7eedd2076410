package pd

import (
	"context"
	"strconv"
	"time"

	"github.com/centra-cloud/centra/pd/schedule"
)

// DefaultPatrolInterval is how often the leader runs the replica checker
// and the schedulers.
const DefaultPatrolInterval = time.Second

// DefaultUnstartedPeerGrace is how long a peer may stay unstarted on its
// Up store (its store does not list the region) before the checker
// rebuilds it: several store heartbeats, so a split still being applied is
// never mistaken for a replica that skipped it.
const DefaultUnstartedPeerGrace = time.Minute

// unlimited is the remove-peer rate of a store that is not Up: removing a
// peer from a dead or draining store costs that store nothing (TiKV lifts
// the limit of an Offline store too).
const unlimited = 1e9

// snapshot is a copy of the leader's view for one patrol: schedule.Cluster
// without the server's lock.
type snapshot struct {
	s       *Server
	stores  []*schedule.Store
	regions []*schedule.Region
	cfg     schedule.Config
}

var _ schedule.Cluster = (*snapshot)(nil)

func (c *snapshot) Stores() []*schedule.Store   { return c.stores }
func (c *snapshot) Regions() []*schedule.Region { return c.regions }
func (c *snapshot) Config() schedule.Config     { return c.cfg }

func (c *snapshot) AllocID(ctx context.Context) (uint64, error) { return c.s.AllocID(ctx, 1) }

// snapshot copies what scheduling reads. It fails when this node does not
// lead.
func (s *Server) snapshot(ctx context.Context) (*snapshot, error) {
	unlock, err := s.view(ctx, false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	c := &snapshot{s: s, cfg: s.schedConfigLocked()}
	for _, e := range s.stores {
		c.stores = append(c.stores, s.schedStore(e))
	}
	for _, e := range s.regions.sorted {
		c.regions = append(c.regions, s.schedRegion(e))
	}
	return c, nil
}

// schedStore is the store as scheduling sees it. Call with mu.
func (s *Server) schedStore(e *storeEntry) *schedule.Store {
	st := &schedule.Store{ID: e.meta.GetId(), State: s.stateName(e), Labels: map[string]string{}}
	for _, l := range e.meta.GetLabels() {
		st.Labels[l.GetKey()] = l.GetValue()
	}
	w := s.weightOf(st.ID)
	st.LeaderWeight, st.RegionWeight = w.Leader, w.Region
	if x := e.stats; x != nil {
		st.Capacity, st.Available = x.GetCapacity(), x.GetAvailable()
		st.SendingSnaps, st.ReceivingSnaps, st.Busy = x.GetSendingSnapCount(), x.GetReceivingSnapCount(), x.GetIsBusy()
	}
	return st
}

// schedConfigLocked converts the schedule and replication configs and the
// scheduler list. Call with mu.
func (s *Server) schedConfigLocked() schedule.Config {
	sc, rc := s.schedule, s.replication
	cfg := schedule.Config{
		MaxReplicas: int(rc.MaxReplicas), LocationLabels: rc.LocationLabels, IsolationLevel: rc.IsolationLevel,
		LeaderScheduleLimit: sc.LeaderScheduleLimit, RegionScheduleLimit: sc.RegionScheduleLimit, ReplicaScheduleLimit: sc.ReplicaScheduleLimit,
		MaxSnapshotCount: sc.MaxSnapshotCount, MaxPendingPeerCount: sc.MaxPendingPeerCount,
		LeaderSchedulePolicy: sc.LeaderSchedulePolicy, TolerantSizeRatio: sc.TolerantSizeRatio, LowSpaceRatio: sc.LowSpaceRatio,
		HaltScheduling:          sc.HaltScheduling,
		EnableRemoveDownReplica: sc.EnableRemoveDownReplica, EnableReplaceOfflineRepl: sc.EnableReplaceOfflineRepl,
		EnableMakeUpReplica: sc.EnableMakeUpReplica, EnableRemoveExtraReplica: sc.EnableRemoveExtraReplica,
		EnableLocationReplacement: sc.EnableLocationReplacement,
		StoreLimits:               map[uint64]schedule.StoreLimit{},
		UnstartedPeerGrace:        s.cfg.UnstartedPeerGrace,
	}
	for id, e := range s.stores {
		l := s.storeLimitLocked(id)
		if e.meta.GetState() != 0 || s.stateName(e) == StateDown {
			l.RemovePeer = unlimited
		}
		cfg.StoreLimits[id] = l
	}
	for _, e := range s.schedulers {
		cfg.Schedulers = append(cfg.Schedulers, schedule.SchedulerSpec{Name: e.Name, StoreID: e.StoreID})
	}
	return cfg
}

// storeLimitLocked is the store's limit: the store-limit config entry, or
// the default. Call with mu.
func (s *Server) storeLimitLocked(id uint64) schedule.StoreLimit {
	if l, ok := s.schedule.StoreLimit[strconv.FormatUint(id, 10)]; ok {
		return schedule.StoreLimit(l)
	}
	return schedule.StoreLimit{AddPeer: schedule.DefaultStoreLimit, RemovePeer: schedule.DefaultStoreLimit}
}

// patrol runs one scheduling round if this node leads.
func (s *Server) patrol(ctx context.Context) {
	if !s.cfg.KV.IsLeader() {
		return
	}
	snap, err := s.snapshot(ctx)
	if err != nil {
		if !isNotLeader(err) {
			s.log.Warn("scheduling patrol skipped", "err", err)
		}
		return
	}
	s.co.Patrol(ctx, snap)
}
