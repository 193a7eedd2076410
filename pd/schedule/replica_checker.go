package schedule

import (
	"fmt"
	"time"

	metav1 "github.com/centra-cloud/centra/gen/centra/meta/v1"
)

// Replica checker operator descriptions (TiKV's words where TiKV has one).
const (
	descReplaceDown     = "replace-down-replica"
	descReplaceOffline  = "replace-offline-replica"
	descRemoveDown      = "remove-down-replica"
	descRemoveOffline   = "remove-offline-replica"
	descRepairUnstarted = "repair-unstarted-replica"
	descMakeUp          = "make-up-replica"
	descPromoteLearner  = "promote-learner"
	descRemoveLearner   = "remove-extra-learner"
	descRemoveExtra     = "remove-extra-replica"
	descBetterLocation  = "move-to-better-location"
)

const replicaKind = KindReplica | KindRegion

// replicaChecker repairs one region's replicas. unstartedSince says since
// when a peer has been seen unstarted.
type replicaChecker struct {
	v              *view
	alloc          func() (uint64, error)
	now            time.Time
	unstartedSince func(peerID uint64) time.Time
}

// check returns the operator that fixes r's worst problem, or nil; when r
// needs fixing but no operator can be built, the reason. With busy (a
// balance operator runs on r) only a lost replica (down, offline) is
// worth replacing that operator; the rest (a learner catching up, an
// extra voter) is the balance operator's own progress.
func (c *replicaChecker) check(r *Region, busy bool) (*Operator, string) {
	if r.Leader == nil {
		return nil, ""
	}
	cfg := &c.v.cfg
	for _, p := range r.Meta.GetPeers() {
		s := c.v.byID[p.GetStoreId()]
		switch {
		case s == nil || s.State == StateDown:
			if cfg.EnableRemoveDownReplica {
				return c.replace(r, p, descReplaceDown, descRemoveDown)
			}
		case s.State == StateOffline || s.State == StateTombstone:
			if cfg.EnableReplaceOfflineRepl {
				return c.replace(r, p, descReplaceOffline, descRemoveOffline)
			}
		}
	}
	if busy {
		return nil, "" // an unstarted peer may be the operator's learner, catching up
	}
	for _, p := range r.Unstarted {
		if since := c.unstartedSince(p.GetId()); !since.IsZero() && c.now.Sub(since) >= cfg.UnstartedPeerGrace {
			return c.repairUnstarted(r, p)
		}
	}
	peers := r.Meta.GetPeers()
	if len(peers) < cfg.MaxReplicas && cfg.EnableMakeUpReplica {
		return c.add(r)
	}
	voters := r.voters()
	for _, p := range peers {
		if isVoter(p) || r.IsPending(p.GetId()) {
			continue
		}
		if len(voters) < cfg.MaxReplicas {
			return NewOperator(descPromoteLearner, fmt.Sprintf("promote peer: store [%d]", p.GetStoreId()), r, replicaKind, PriorityHigh,
				PromoteLearner{ToStore: p.GetStoreId(), PeerID: p.GetId()}), ""
		}
		return NewOperator(descRemoveLearner, fmt.Sprintf("rm peer: store [%d]", p.GetStoreId()), r, replicaKind, PriorityHigh,
			RemovePeer{FromStore: p.GetStoreId(), PeerID: p.GetId()}), ""
	}
	if len(voters) > cfg.MaxReplicas && cfg.EnableRemoveExtraReplica {
		p := c.worstPeer(r)
		return NewOperator(descRemoveExtra, fmt.Sprintf("rm peer: store [%d]", p.GetStoreId()), r, replicaKind, PriorityHigh,
			RemovePeer{FromStore: p.GetStoreId(), PeerID: p.GetId()}), ""
	}
	if cfg.EnableLocationReplacement && len(cfg.LocationLabels) > 0 && c.v.healthy(r) {
		return c.betterLocation(r), ""
	}
	return nil, ""
}

// replace moves peer p to the best store, or, when the region has more
// voters than max-replicas already, removes it.
func (c *replicaChecker) replace(r *Region, p *metav1.Peer, desc, removeDesc string) (*Operator, string) {
	if isVoter(p) && len(r.voters()) > c.v.cfg.MaxReplicas {
		return NewOperator(removeDesc, fmt.Sprintf("rm peer: store [%d]", p.GetStoreId()), r, replicaKind, PriorityHigh,
			RemovePeer{FromStore: p.GetStoreId(), PeerID: p.GetId()}), ""
	}
	// A caught-up learner on an Up store (left by a move that was cut
	// short) takes the lost voter's place: no new snapshot, and no new
	// peer on a store that already holds one.
	for _, l := range r.Meta.GetPeers() {
		if s := c.v.byID[l.GetStoreId()]; isVoter(p) && !isVoter(l) && !r.IsPending(l.GetId()) && s != nil && s.State == StateUp {
			return NewOperator(desc, fmt.Sprintf("mv peer: store [%d] to [%d]", p.GetStoreId(), l.GetStoreId()), r, replicaKind, PriorityHigh,
				PromoteLearner{ToStore: l.GetStoreId(), PeerID: l.GetId()}, RemovePeer{FromStore: p.GetStoreId(), PeerID: p.GetId()}), ""
		}
	}
	to, why := c.v.bestTarget(r, p.GetStoreId(), false)
	if to == nil {
		return nil, fmt.Sprintf("%s of a peer on store %d: %s", desc, p.GetStoreId(), why)
	}
	id, err := c.alloc()
	if err != nil {
		return nil, fmt.Sprintf("%s: allocate a peer id: %v", desc, err)
	}
	return NewOperator(desc, fmt.Sprintf("mv peer: store [%d] to [%d]", p.GetStoreId(), to.ID), r, replicaKind, PriorityHigh,
		moveSteps(p, to.ID, id)...), ""
}

// repairUnstarted replaces a peer that never started on its Up store.
// When every other voter is healthy it removes the peer first, so the new
// one may go to the same store; otherwise it adds elsewhere first, as a
// replace does, so the region never drops below a healthy quorum.
func (c *replicaChecker) repairUnstarted(r *Region, p *metav1.Peer) (*Operator, string) {
	othersHealthy := true
	n := 0
	for _, o := range r.voters() {
		if o.GetId() == p.GetId() {
			continue
		}
		n++
		s := c.v.byID[o.GetStoreId()]
		if r.IsPending(o.GetId()) || r.IsDown(o.GetId()) || s == nil || s.State != StateUp {
			othersHealthy = false
		}
	}
	if !othersHealthy || n == 0 {
		return c.replace(r, p, descRepairUnstarted, descRepairUnstarted)
	}
	to, why := c.v.bestTarget(r, p.GetStoreId(), true)
	if to == nil {
		return nil, fmt.Sprintf("%s of a peer on store %d: %s", descRepairUnstarted, p.GetStoreId(), why)
	}
	id, err := c.alloc()
	if err != nil {
		return nil, fmt.Sprintf("%s: allocate a peer id: %v", descRepairUnstarted, err)
	}
	steps := []Step{RemovePeer{FromStore: p.GetStoreId(), PeerID: p.GetId()}, AddLearner{ToStore: to.ID, PeerID: id}}
	if isVoter(p) {
		steps = append(steps, PromoteLearner{ToStore: to.ID, PeerID: id})
	}
	return NewOperator(descRepairUnstarted, fmt.Sprintf("rebuild peer: store [%d] to [%d]", p.GetStoreId(), to.ID), r, replicaKind, PriorityHigh, steps...), ""
}

// add makes up a missing replica: a learner on the best store, promoted.
func (c *replicaChecker) add(r *Region) (*Operator, string) {
	to, why := c.v.bestTarget(r, 0, false)
	if to == nil {
		return nil, fmt.Sprintf("%s: %s", descMakeUp, why)
	}
	id, err := c.alloc()
	if err != nil {
		return nil, fmt.Sprintf("%s: allocate a peer id: %v", descMakeUp, err)
	}
	return NewOperator(descMakeUp, fmt.Sprintf("add peer: store [%d]", to.ID), r, replicaKind, PriorityHigh,
		AddLearner{ToStore: to.ID, PeerID: id}, PromoteLearner{ToStore: to.ID, PeerID: id}), ""
}

// worstPeer is the voter to remove when there are too many: on a store
// that is not Up, then down, then pending, then the lowest distinct score,
// then the highest region score; the leader last.
func (c *replicaChecker) worstPeer(r *Region) *metav1.Peer {
	var worst *metav1.Peer
	var worstRank []float64
	for _, p := range r.voters() {
		s := c.v.byID[p.GetStoreId()]
		rank := []float64{0, 0, 0, 0, 0, 0}
		if p.GetId() == r.Leader.GetId() {
			rank[0] = -1
		}
		if s == nil || s.State != StateUp {
			rank[1] = 1
		}
		if r.IsDown(p.GetId()) {
			rank[2] = 1
		}
		if r.IsPending(p.GetId()) {
			rank[3] = 1
		}
		if s != nil {
			rank[4] = -distinctScore(c.v.cfg.LocationLabels, c.v.peerStores(r, s.ID), s)
			rank[5] = c.v.regionScore(s)
		}
		if worst == nil || rankGreater(rank, worstRank) {
			worst, worstRank = p, rank
		}
	}
	return worst
}

func rankGreater(a, b []float64) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] > b[i]
		}
	}
	return false
}

// betterLocation moves the peer with the lowest distinct score to a store
// with a higher one, if there is such a store.
func (c *replicaChecker) betterLocation(r *Region) *Operator {
	labels := c.v.cfg.LocationLabels
	var worst *metav1.Peer
	worstScore := 0.0
	for _, p := range r.voters() {
		s := c.v.byID[p.GetStoreId()]
		if s == nil {
			return nil
		}
		if d := distinctScore(labels, c.v.peerStores(r, s.ID), s); worst == nil || d < worstScore {
			worst, worstScore = p, d
		}
	}
	to, _ := c.v.bestTarget(r, worst.GetStoreId(), false)
	if to == nil || distinctScore(labels, c.v.peerStores(r, worst.GetStoreId()), to) <= worstScore {
		return nil
	}
	id, err := c.alloc()
	if err != nil {
		return nil
	}
	return NewOperator(descBetterLocation, fmt.Sprintf("mv peer: store [%d] to [%d]", worst.GetStoreId(), to.ID), r, replicaKind, PriorityNormal,
		moveSteps(worst, to.ID, id)...)
}
