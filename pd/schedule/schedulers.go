package schedule

import (
	"cmp"
	"fmt"
	"slices"
)

// Names of the schedulers that act. Other names in the enabled list are
// accepted and idle.
const (
	BalanceLeaderName = "balance-leader-scheduler"
	BalanceRegionName = "balance-region-scheduler"
	EvictLeaderName   = "evict-leader-scheduler"
	GrantLeaderName   = "grant-leader-scheduler"
)

// leaderBatch is how many leader transfers balance-leader plans per run
// (TiKV's batch).
const leaderBatch = 4

// scheduler plans operators on a view and submits them; it returns a
// reason when it had work it could not do.
type scheduler func(sc *schedContext, sp SchedulerSpec) string

// schedContext is what a scheduler run needs: the view, a peer ID source
// and a way to submit operators.
type schedContext struct {
	v      *view
	alloc  func() (uint64, error)
	submit func(op *Operator) error // hands op to the controller; applies its influence
}

var schedulers = map[string]scheduler{
	BalanceLeaderName: balanceLeader,
	BalanceRegionName: balanceRegion,
	EvictLeaderName:   evictLeader,
	GrantLeaderName:   grantLeader,
}

// leaderTarget says whether store s may take leaders (empty: yes).
func (v *view) leaderTarget(s *Store) string {
	switch {
	case s == nil:
		return "unknown store"
	case s.State != StateUp:
		return fmt.Sprintf("store %d is %s", s.ID, s.State)
	case s.Busy:
		return fmt.Sprintf("store %d is busy", s.ID)
	case v.evicted[s.ID]:
		return fmt.Sprintf("store %d is evicting leaders", s.ID)
	}
	return ""
}

// followerTargets are r's voters that could lead: on a leader target
// store, neither pending nor down, not the leader.
func (v *view) followerTargets(r *Region) []*Store {
	var out []*Store
	for _, p := range r.voters() {
		if p.GetId() == r.Leader.GetId() || r.IsPending(p.GetId()) || r.IsDown(p.GetId()) {
			continue
		}
		if s := v.byID[p.GetStoreId()]; v.leaderTarget(s) == "" {
			out = append(out, s)
		}
	}
	return out
}

// lowestLeaderScore returns the store with the lowest leader score.
func (v *view) lowestLeaderScore(stores []*Store) *Store {
	var best *Store
	for _, s := range stores {
		if best == nil || v.leaderScore(s) < v.leaderScore(best) {
			best = s
		}
	}
	return best
}

func transferOp(desc string, r *Region, from, to uint64, pri Priority) *Operator {
	return NewOperator(desc, fmt.Sprintf("transfer leader: store %d to %d", from, to), r, KindLeader, pri,
		TransferLeader{FromStore: from, ToStore: to})
}

// leaderDelta is what one leader weighs in the leader score's unit.
func (v *view) leaderDelta(r *Region) float64 {
	if v.cfg.LeaderSchedulePolicy == "size" {
		return r.size()
	}
	return 1
}

// balanceLeader moves leaders from the store with the highest leader score
// to followers on the store with the lowest, while that narrows the gap.
func balanceLeader(sc *schedContext, _ SchedulerSpec) string {
	for range leaderBatch {
		if !balanceOneLeader(sc) {
			break
		}
	}
	return ""
}

func balanceOneLeader(sc *schedContext) bool {
	v := sc.v
	sources := slices.Clone(v.stores)
	slices.SortStableFunc(sources, func(a, b *Store) int { return cmp.Compare(v.leaderScore(b), v.leaderScore(a)) })
	for _, src := range sources {
		if src.State != StateUp {
			continue
		}
		for _, r := range v.regions {
			if r.Leader.GetStoreId() != src.ID || !v.healthy(r) || v.ctrl.Has(r.ID()) {
				continue
			}
			to := v.lowestLeaderScore(v.followerTargets(r))
			if to == nil {
				continue
			}
			d := v.leaderDelta(r)
			srcAfter := v.leaderScore(src) - d/weight(src.LeaderWeight)
			tgtAfter := v.leaderScore(to) + d/weight(to.LeaderWeight)
			if srcAfter < tgtAfter+v.cfg.TolerantSizeRatio*d {
				break // the scores are close: no region of this source helps
			}
			if sc.submit(transferOp("balance-leader", r, src.ID, to.ID, PriorityNormal)) == nil {
				return true
			}
		}
	}
	return false
}

// regionBatch is how many moves balance-region plans per run. TiKV runs a
// scheduler again within milliseconds while it finds work; the patrol runs
// once a second, and one move a second would leave max-snapshot-count
// unreached whenever a snapshot takes less than a second (small regions):
// the limits, not the patrol's pace, must bound a rebalance.
const regionBatch = 4

// balanceRegion plans up to regionBatch moves (balanceOneRegion); it
// reports why it could not move only when it planned none.
func balanceRegion(sc *schedContext, _ SchedulerSpec) string {
	for i := range regionBatch {
		moved, why := balanceOneRegion(sc)
		if !moved {
			if i > 0 {
				return ""
			}
			return why
		}
	}
	return ""
}

// balanceOneRegion moves a peer from the store with the highest region
// score to the store with the lowest, when the move narrows the gap by
// more than the tolerance (tolerant-size-ratio region sizes; 1 when the
// ratio is 0).
func balanceOneRegion(sc *schedContext) (bool, string) {
	v := sc.v
	sources := slices.Clone(v.stores)
	slices.SortStableFunc(sources, func(a, b *Store) int { return cmp.Compare(v.regionScore(b), v.regionScore(a)) })
	tol := v.cfg.TolerantSizeRatio
	if tol == 0 {
		tol = 1
	}
	var why string
	for _, src := range sources {
		if src.State != StateUp {
			continue
		}
		// Followers first (moving them needs no leader transfer), then leaders.
		for _, leaders := range []bool{false, true} {
			for _, r := range v.regions {
				p := r.PeerOn(src.ID)
				if p == nil || (r.Leader.GetStoreId() == src.ID) != leaders || !v.healthy(r) || v.ctrl.Has(r.ID()) {
					continue
				}
				if reason := v.canSend(r.Leader.GetStoreId()); reason != "" {
					why = reason
					continue
				}
				if !v.ctrl.StoreLimitAvailable(src.ID, false, r.Size, &v.cfg) {
					why = fmt.Sprintf("store %d remove-peer store limit exhausted", src.ID)
					continue
				}
				to, reason := v.regionTarget(r, src)
				if to == nil {
					if reason != "" {
						why = reason
					}
					continue
				}
				size := r.size()
				srcAfter := (v.stats[src.ID].regionSize - size) / weight(src.RegionWeight)
				tgtAfter := (v.stats[to.ID].regionSize + size) / weight(to.RegionWeight)
				if srcAfter < tgtAfter+tol*size/weight(to.RegionWeight) {
					continue
				}
				id, err := sc.alloc()
				if err != nil {
					return false, fmt.Sprintf("allocate a peer id: %v", err)
				}
				op := NewOperator("balance-region", fmt.Sprintf("mv peer: store [%d] to [%d]", src.ID, to.ID), r, KindRegion, PriorityNormal,
					moveSteps(p, to.ID, id)...)
				if err := sc.submit(op); err != nil {
					return false, err.Error()
				}
				return true, ""
			}
		}
	}
	return false, why
}

// regionTarget is the store with the lowest region score that can take
// r's peer from src without a worse location. Without one, it says why
// the Up store with the lowest score that would have been worth it cannot.
func (v *view) regionTarget(r *Region, src *Store) (*Store, string) {
	others := v.peerStores(r, src.ID)
	srcDistinct := distinctScore(v.cfg.LocationLabels, others, src)
	var best, refused *Store
	var why string
	for _, s := range v.stores {
		if !v.isolated(s, others) || distinctScore(v.cfg.LocationLabels, others, s) < srcDistinct {
			continue
		}
		if reason := v.canReceive(s, r, 0); reason != "" {
			if s.State == StateUp && r.PeerOn(s.ID) == nil && v.regionScore(s) < v.regionScore(src) &&
				(refused == nil || v.regionScore(s) < v.regionScore(refused)) {
				refused, why = s, reason
			}
			continue
		}
		if best == nil || v.regionScore(s) < v.regionScore(best) {
			best = s
		}
	}
	if best == nil {
		return nil, why
	}
	return best, ""
}

// evictLeader moves every leader off the store, as far as the leader
// limit allows.
func evictLeader(sc *schedContext, sp SchedulerSpec) string {
	v := sc.v
	stuck := 0
	for _, r := range v.regions {
		if r.Leader.GetStoreId() != sp.StoreID || v.ctrl.Has(r.ID()) {
			continue
		}
		to := v.lowestLeaderScore(v.followerTargets(r))
		if to == nil {
			stuck++
			continue
		}
		if err := sc.submit(transferOp("evict-leader-scheduler", r, sp.StoreID, to.ID, PriorityHigh)); err != nil {
			return err.Error()
		}
	}
	if stuck > 0 {
		return fmt.Sprintf("store %d: %d regions have no healthy follower on a store that may lead", sp.StoreID, stuck)
	}
	return ""
}

// grantLeader moves every leader it can to the store.
func grantLeader(sc *schedContext, sp SchedulerSpec) string {
	v := sc.v
	s := v.byID[sp.StoreID]
	if s == nil || s.State != StateUp {
		return fmt.Sprintf("store %d cannot lead: not Up", sp.StoreID)
	}
	for _, r := range v.regions {
		if r.Leader == nil || r.Leader.GetStoreId() == sp.StoreID || v.ctrl.Has(r.ID()) {
			continue
		}
		p := r.PeerOn(sp.StoreID)
		if p == nil || !isVoter(p) || r.IsPending(p.GetId()) || r.IsDown(p.GetId()) {
			continue
		}
		if err := sc.submit(transferOp("grant-leader-scheduler", r, r.Leader.GetStoreId(), sp.StoreID, PriorityHigh)); err != nil {
			return err.Error()
		}
	}
	return ""
}
