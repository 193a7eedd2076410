package schedule

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"

	metav1 "github.com/centra-cloud/centra/gen/centra/meta/v1"
)

// storeStats are what scores read of a store: counts and sizes from the
// regions, plus the influence of the live operators' remaining steps.
type storeStats struct {
	regionCount, regionSize float64
	leaderCount, leaderSize float64
	pending                 int
	sending, receiving      int // snapshots PD has in flight for the store
}

// view is one patrol's snapshot of the cluster.
type view struct {
	cfg     Config
	stores  []*Store // by ID
	byID    map[uint64]*Store
	regions []*Region
	stats   map[uint64]*storeStats
	ctrl    *Controller
	// evicted are the stores evict-leader-scheduler drains: no leader goes
	// there.
	evicted map[uint64]bool
}

func newView(cl Cluster, ctrl *Controller) *view {
	v := &view{cfg: cl.Config(), stores: slices.Clone(cl.Stores()), byID: map[uint64]*Store{}, regions: cl.Regions(),
		stats: map[uint64]*storeStats{}, ctrl: ctrl, evicted: map[uint64]bool{}}
	slices.SortFunc(v.stores, func(a, b *Store) int { return cmp.Compare(a.ID, b.ID) })
	for _, s := range v.stores {
		v.byID[s.ID] = s
		v.stats[s.ID] = &storeStats{}
	}
	for _, sp := range v.cfg.Schedulers {
		if sp.Name == EvictLeaderName {
			v.evicted[sp.StoreID] = true
		}
	}
	for _, r := range v.regions {
		size := r.size()
		for _, p := range r.Meta.GetPeers() {
			if st := v.stats[p.GetStoreId()]; st != nil {
				st.regionCount++
				st.regionSize += size
			}
		}
		for _, p := range r.Pending {
			if st := v.stats[p.GetStoreId()]; st != nil {
				st.pending++
			}
		}
		if st := v.stats[r.Leader.GetStoreId()]; st != nil {
			st.leaderCount++
			st.leaderSize += size
		}
	}
	v.addInfluence(ctrl.influences())
	return v
}

// addInfluence adds operators' influence to the store stats.
func (v *view) addInfluence(ins map[uint64]*influence) {
	for id, in := range ins {
		st := v.stats[id]
		if st == nil {
			continue
		}
		st.regionCount += in.regionCount
		st.regionSize += in.regionSize
		st.leaderCount += in.leaderCount
		st.leaderSize += in.leaderSize
		st.sending += in.sending
		st.receiving += in.receiving
	}
}

// apply adds a newly accepted operator's influence, so the rest of the
// patrol scores with it.
func (v *view) apply(op *Operator) {
	ins := map[uint64]*influence{}
	op.addInfluence(ins)
	v.addInfluence(ins)
}

func weight(w float64) float64 {
	if w <= 0 {
		return 1
	}
	return w
}

// regionScore is the store's region size over its region weight (TiKV's
// v1 region score).
func (v *view) regionScore(s *Store) float64 {
	return v.stats[s.ID].regionSize / weight(s.RegionWeight)
}

// leaderScore is the store's leader count (policy "count") or leader size
// (policy "size") over its leader weight.
func (v *view) leaderScore(s *Store) float64 {
	st := v.stats[s.ID]
	n := st.leaderCount
	if v.cfg.LeaderSchedulePolicy == "size" {
		n = st.leaderSize
	}
	return n / weight(s.LeaderWeight)
}

// canReceive says why store s cannot take a new peer of r (empty: it
// can). A peer of r on store free (the one being replaced) does not count.
func (v *view) canReceive(s *Store, r *Region, free uint64) string {
	st := v.stats[s.ID]
	switch {
	case s.State != StateUp:
		return fmt.Sprintf("store %d is %s", s.ID, s.State)
	case s.Busy:
		return fmt.Sprintf("store %d is busy", s.ID)
	case s.ID != free && r.PeerOn(s.ID) != nil:
		return fmt.Sprintf("store %d already holds a peer", s.ID)
	case s.LowOnSpace(v.cfg.LowSpaceRatio):
		return fmt.Sprintf("store %d is low on space", s.ID)
	case uint64(max(int(s.ReceivingSnaps), st.receiving)) >= v.cfg.MaxSnapshotCount:
		return fmt.Sprintf("store %d receives %d snapshots (max-snapshot-count %d)", s.ID, max(int(s.ReceivingSnaps), st.receiving), v.cfg.MaxSnapshotCount)
	case uint64(st.pending) >= v.cfg.MaxPendingPeerCount:
		return fmt.Sprintf("store %d has %d pending peers (max-pending-peer-count %d)", s.ID, st.pending, v.cfg.MaxPendingPeerCount)
	case !v.ctrl.StoreLimitAvailable(s.ID, true, r.Size, &v.cfg):
		return fmt.Sprintf("store %d add-peer store limit exhausted", s.ID)
	}
	return ""
}

// canSend says why the store cannot send one more snapshot (empty: it can).
func (v *view) canSend(id uint64) string {
	s := v.byID[id]
	if s == nil {
		return fmt.Sprintf("store %d is unknown", id)
	}
	if n := max(int(s.SendingSnaps), v.stats[id].sending); uint64(n) >= v.cfg.MaxSnapshotCount {
		return fmt.Sprintf("store %d sends %d snapshots (max-snapshot-count %d)", id, n, v.cfg.MaxSnapshotCount)
	}
	return ""
}

// peerStores returns the stores of r's peers except the one on store skip.
func (v *view) peerStores(r *Region, skip uint64) []*Store {
	var out []*Store
	for _, p := range r.Meta.GetPeers() {
		if s := v.byID[p.GetStoreId()]; s != nil && s.ID != skip {
			out = append(out, s)
		}
	}
	return out
}

// distinctScore is TiKV's: how far s is, over location-labels, from the
// other stores: each other store adds 100^(levels-i-1) for the first level
// i at which they differ, nothing if they share every level.
func distinctScore(labels []string, others []*Store, s *Store) float64 {
	score := 0.0
	for _, o := range others {
		if o.ID == s.ID {
			continue
		}
		for i, l := range labels {
			if s.Labels[l] != o.Labels[l] {
				score += math.Pow(100, float64(len(labels)-i-1))
				break
			}
		}
	}
	return score
}

// isolated reports whether s shares no failure domain of isolation-level
// with any of others (true when no isolation level is set).
func (v *view) isolated(s *Store, others []*Store) bool {
	lvl := slices.Index(v.cfg.LocationLabels, v.cfg.IsolationLevel)
	if v.cfg.IsolationLevel == "" || lvl < 0 {
		return true
	}
	for _, o := range others {
		if o.ID == s.ID {
			continue
		}
		same := true
		for _, l := range v.cfg.LocationLabels[:lvl+1] {
			if s.Labels[l] != o.Labels[l] {
				same = false
				break
			}
		}
		if same {
			return false
		}
	}
	return true
}

// bestTarget picks the store for a new peer of r replacing its peer on
// store old (0: none): it can receive, keeps isolation-level, has the
// highest distinct score and then the lowest region score. sameStoreOK
// allows old's own store (a repair that removes first). Without a
// candidate it returns why.
func (v *view) bestTarget(r *Region, old uint64, sameStoreOK bool) (*Store, string) {
	// The new peer catches up by a snapshot from the leader's store.
	if l := r.Leader.GetStoreId(); l != 0 {
		if reason := v.canSend(l); reason != "" {
			return nil, reason
		}
	}
	others := v.peerStores(r, old)
	var best *Store
	var bestDistinct, bestScore float64
	var why []string
	for _, s := range v.stores {
		if s.ID == old && !sameStoreOK {
			continue
		}
		free := uint64(0)
		if sameStoreOK {
			free = old
		}
		if reason := v.canReceive(s, r, free); reason != "" {
			if s.State == StateUp && r.PeerOn(s.ID) == nil {
				why = append(why, reason)
			}
			continue
		}
		if !v.isolated(s, others) {
			why = append(why, fmt.Sprintf("store %d shares %s with a peer (isolation-level)", s.ID, v.cfg.IsolationLevel))
			continue
		}
		d, sc := distinctScore(v.cfg.LocationLabels, others, s), v.regionScore(s)
		if best == nil || d > bestDistinct || (d == bestDistinct && sc < bestScore) {
			best, bestDistinct, bestScore = s, d, sc
		}
	}
	if best == nil {
		if len(why) == 0 {
			return nil, "no Up store without a peer of the region"
		}
		return nil, "no store can take a peer: " + strings.Join(why, "; ")
	}
	return best, ""
}

// healthy reports whether a region is fit to be balanced: a leader, no
// pending or down peer, every peer a voter, max-replicas of them.
func (v *view) healthy(r *Region) bool {
	if r.Leader == nil || len(r.Pending) > 0 || len(r.Down) > 0 {
		return false
	}
	peers := r.Meta.GetPeers()
	if len(peers) != v.cfg.MaxReplicas {
		return false
	}
	for _, p := range peers {
		s := v.byID[p.GetStoreId()]
		if !isVoter(p) || s == nil || s.State != StateUp {
			return false
		}
	}
	return true
}

// moveSteps are the steps moving r's peer from store from to store to.
func moveSteps(from *metav1.Peer, to, newID uint64) []Step {
	steps := []Step{AddLearner{ToStore: to, PeerID: newID}}
	if isVoter(from) {
		steps = append(steps, PromoteLearner{ToStore: to, PeerID: newID})
	}
	return append(steps, RemovePeer{FromStore: from.GetStoreId(), PeerID: from.GetId()})
}
