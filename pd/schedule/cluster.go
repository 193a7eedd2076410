package schedule

import (
	"context"
	"time"

	metav1 "github.com/centra-cloud/centra/gen/centra/meta/v1"
	pdv1 "github.com/centra-cloud/centra/gen/centra/pd/v1"
)

// Store state names, as TiKV PD shows them in state_name. Disconnected and
// Down are derived from the heartbeat age; the others are persisted.
const (
	StateUp           = "Up"
	StateDisconnected = "Disconnected"
	StateDown         = "Down"
	StateOffline      = "Offline"
	StateTombstone    = "Tombstone"
)

// Cluster is what checkers and schedulers see of the cluster. A patrol
// reads Stores, Regions and Config once, so an implementation may build
// them from a consistent snapshot.
type Cluster interface {
	// Stores returns every store, Tombstones included.
	Stores() []*Store
	// Regions returns every region.
	Regions() []*Region
	// Config returns the scheduling configuration in effect.
	Config() Config
	// AllocID returns a new cluster-unique ID (for new peers).
	AllocID(ctx context.Context) (uint64, error)
}

// Store is one store as scheduling sees it.
type Store struct {
	ID uint64
	// State is Up, Disconnected, Down, Offline or Tombstone.
	State  string
	Labels map[string]string
	// Capacity and Available are bytes (0: unknown).
	Capacity, Available uint64
	// SendingSnaps and ReceivingSnaps are what the store last reported.
	SendingSnaps, ReceivingSnaps uint32
	Busy                         bool
	// LeaderWeight and RegionWeight divide the store's scores (0 means 1).
	LeaderWeight, RegionWeight float64
}

// LowOnSpace says whether less than 1 - ratio of the store's capacity is
// free (low-space-ratio): such a store takes no new peer.
func (s *Store) LowOnSpace(ratio float64) bool {
	return s.Capacity > 0 && float64(s.Available) < float64(s.Capacity)*(1-ratio)
}

// Region is one region with its leader's last report.
type Region struct {
	Meta   *metav1.Region
	Leader *metav1.Peer
	// Pending are the peers that are not caught up: reported pending by
	// the leader, or not running on their store yet (Unstarted).
	Pending []*metav1.Peer
	// Unstarted are the peers whose Up store does not list the region as
	// running (a replica that skipped a split, a learner not created yet).
	Unstarted []*metav1.Peer
	Down      []*pdv1.PeerStats
	// Size is the approximate size in MiB.
	Size uint64
}

// ID returns the region ID.
func (r *Region) ID() uint64 { return r.Meta.GetId() }

// Epoch returns the region epoch (never nil).
func (r *Region) Epoch() *metav1.RegionEpoch {
	if e := r.Meta.GetRegionEpoch(); e != nil {
		return e
	}
	return &metav1.RegionEpoch{}
}

// PeerOn returns the region's peer on the store, or nil.
func (r *Region) PeerOn(store uint64) *metav1.Peer {
	for _, p := range r.Meta.GetPeers() {
		if p.GetStoreId() == store {
			return p
		}
	}
	return nil
}

// IsPending reports whether the peer is pending.
func (r *Region) IsPending(peerID uint64) bool { return hasPeer(r.Pending, peerID) }

// IsUnstarted reports whether the peer has not started on its store.
func (r *Region) IsUnstarted(peerID uint64) bool { return hasPeer(r.Unstarted, peerID) }

// IsDown reports whether the leader reports the peer down.
func (r *Region) IsDown(peerID uint64) bool {
	for _, d := range r.Down {
		if d.GetPeer().GetId() == peerID {
			return true
		}
	}
	return false
}

func hasPeer(ps []*metav1.Peer, id uint64) bool {
	for _, p := range ps {
		if p.GetId() == id {
			return true
		}
	}
	return false
}

// size is the region's size for scores: at least 1 MiB, as TiKV counts
// an empty region.
func (r *Region) size() float64 { return float64(max(r.Size, 1)) }

func isVoter(p *metav1.Peer) bool { return p.GetRole() != metav1.PeerRole_PEER_ROLE_LEARNER }

// voters returns the region's voters.
func (r *Region) voters() []*metav1.Peer {
	var out []*metav1.Peer
	for _, p := range r.Meta.GetPeers() {
		if isVoter(p) {
			out = append(out, p)
		}
	}
	return out
}

// StoreLimit is a store's operator rate, in steps per minute.
type StoreLimit struct {
	AddPeer    float64 `json:"add-peer"`
	RemovePeer float64 `json:"remove-peer"`
}

// DefaultStoreLimit is TiKV PD's default store limit (per minute).
const DefaultStoreLimit = 15

// SchedulerSpec names an enabled scheduler; StoreID is set for the
// per-store ones (evict-leader, grant-leader).
type SchedulerSpec struct {
	Name    string
	StoreID uint64
}

// Config is the scheduling configuration (PD's schedule and replication
// configs, as far as scheduling reads them).
type Config struct {
	MaxReplicas    int
	LocationLabels []string
	IsolationLevel string

	LeaderScheduleLimit  uint64
	RegionScheduleLimit  uint64
	ReplicaScheduleLimit uint64
	MaxSnapshotCount     uint64
	MaxPendingPeerCount  uint64
	// LeaderSchedulePolicy is "count" or "size".
	LeaderSchedulePolicy string
	TolerantSizeRatio    float64
	LowSpaceRatio        float64
	HaltScheduling       bool

	EnableRemoveDownReplica   bool
	EnableReplaceOfflineRepl  bool
	EnableMakeUpReplica       bool
	EnableRemoveExtraReplica  bool
	EnableLocationReplacement bool

	// StoreLimits overrides DefaultStoreLimit per store.
	StoreLimits map[uint64]StoreLimit
	// Schedulers are the enabled schedulers.
	Schedulers []SchedulerSpec
	// UnstartedPeerGrace is how long a peer may stay unstarted on its Up
	// store before the checker repairs it.
	UnstartedPeerGrace time.Duration
}

// storeLimit returns the store's limits.
func (c *Config) storeLimit(store uint64) StoreLimit {
	if l, ok := c.StoreLimits[store]; ok {
		return l
	}
	return StoreLimit{AddPeer: DefaultStoreLimit, RemovePeer: DefaultStoreLimit}
}
