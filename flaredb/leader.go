package flaredb

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/lni/dragonboat/v4"
	"google.golang.org/protobuf/proto"

	raftcmdv1 "github.com/centra-cloud/centra/gen/centra/flaredb/raftcmd/v1"
	metav1 "github.com/centra-cloud/centra/gen/centra/meta/v1"
	pdv1 "github.com/centra-cloud/centra/gen/centra/pd/v1"
	"github.com/centra-cloud/centra/shared/raftnode"
)

// stepTimeout bounds one run of a leader's membership work (reconcile and
// step); PD resends unfinished steps.
const stepTimeout = 30 * time.Second

// transferTimeout bounds one leader transfer attempt.
const transferTimeout = 10 * time.Second

// onConfChange runs on every replica after a ChangePeer committed; the
// leader reconciles raft membership and reports the region at once.
func (s *Store) onConfChange(id uint64) {
	if r := s.regions.get(id); r != nil {
		if _, _, self := s.isLeader(r); self {
			s.leaderWork(r, nil)
		}
	}
}

// leaderWork runs, on a goroutine and at most once at a time per region,
// the leader's membership duties: make dragonboat's membership follow the
// descriptor, then execute PD's step (nil: none). A busy region drops the
// call: PD resends steps and every heartbeat reconciles again.
func (s *Store) leaderWork(r *region, step *pdv1.RegionHeartbeatResponse) {
	if !r.working.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer r.working.Store(false)
		ctx, cancel := context.WithTimeout(s.ctx, stepTimeout)
		defer cancel()
		before := r.desc().GetRegionEpoch().GetConfVer()
		changed, err := s.reconcileMembership(ctx, r)
		if err == nil && hasStep(step) {
			err = s.executeStep(ctx, r, step)
		}
		if err != nil && s.ctx.Err() == nil {
			s.log.Warn("Region membership work failed; retrying on the next heartbeat", "region_id", r.id, "operator_id", step.GetOperatorId(), "err", err)
		}
		// PD learns the effect from a heartbeat: send one now if anything
		// changed (never otherwise: each heartbeat runs this again).
		if changed || r.desc().GetRegionEpoch().GetConfVer() != before {
			s.heartbeatSoon(r.id)
		}
	}()
}

// hasStep reports whether PD's response carries a step.
func hasStep(resp *pdv1.RegionHeartbeatResponse) bool {
	return resp.GetChangePeer() != nil || resp.GetTransferLeader() != nil || resp.GetSplitRegion() != nil
}

// executeStep runs PD's step if it was computed for the region's current
// epoch (a stale step is ignored: PD resends it or gives up). Steps are
// idempotent: one whose effect is in the descriptor already does nothing.
func (s *Store) executeStep(ctx context.Context, r *region, step *pdv1.RegionHeartbeatResponse) error {
	d := r.desc()
	if !proto.Equal(step.GetRegionEpoch(), d.GetRegionEpoch()) {
		s.log.Debug("Ignoring an operator step computed for another region epoch", "region_id", r.id,
			"step_epoch", step.GetRegionEpoch().String(), "epoch", d.GetRegionEpoch().String())
		return nil
	}
	if tl := step.GetTransferLeader(); tl != nil {
		return s.countStep("transfer_leader", s.transferLeader(ctx, r, tl.GetPeer().GetId()))
	}
	if sp := step.GetSplitRegion(); sp != nil {
		return s.countStep("split_region", s.splitForPD(ctx, r, d, sp))
	}
	cp := step.GetChangePeer()
	p := cp.GetPeer()
	cur := peerByID(d, p.GetId())
	var t raftcmdv1.ChangeType
	switch cp.GetChangeType() {
	case pdv1.ConfChangeType_CONF_CHANGE_TYPE_ADD_LEARNER_NODE:
		if cur != nil {
			return nil // done
		}
		t = raftcmdv1.ChangeType_CHANGE_TYPE_ADD_LEARNER
	case pdv1.ConfChangeType_CONF_CHANGE_TYPE_ADD_NODE_UNSPECIFIED:
		if cur != nil && isVoter(cur) {
			return nil // done
		}
		if cur == nil {
			return s.countStep("add_node", fmt.Errorf("ADD_NODE for peer %d, which is not a learner of region %d: add it as a learner first", p.GetId(), r.id))
		}
		// Promote only a learner dragonboat has as non-voting, so a voter
		// never exists in the descriptor without its raft replica.
		m, err := s.cfg.Node.Membership(ctx, r.id)
		if err != nil {
			return err
		}
		if _, ok := m.NonVotings[p.GetId()]; !ok {
			return fmt.Errorf("learner %d of region %d is not in the raft membership yet", p.GetId(), r.id)
		}
		t = raftcmdv1.ChangeType_CHANGE_TYPE_PROMOTE_LEARNER
	case pdv1.ConfChangeType_CONF_CHANGE_TYPE_REMOVE_NODE:
		if cur == nil {
			return nil // done
		}
		if cur.GetId() == r.peerID {
			// The leader never removes itself: hand leadership to another
			// voter; PD's resent step runs there.
			return s.countStep("remove_node", s.transferAway(ctx, r))
		}
		t = raftcmdv1.ChangeType_CHANGE_TYPE_REMOVE_PEER
	default:
		return fmt.Errorf("unknown change type %v from PD; upgrade this store", cp.GetChangeType())
	}
	return s.countStep(t.String(), s.proposeChangePeer(ctx, r, d, t, p))
}

func peerByID(d *metav1.Region, id uint64) *metav1.Peer {
	if i := slices.IndexFunc(d.GetPeers(), func(p *metav1.Peer) bool { return p.GetId() == id }); i >= 0 {
		return d.GetPeers()[i]
	}
	return nil
}

func (s *Store) countStep(kind string, err error) error {
	result := "ok"
	if err != nil {
		result = "error"
	}
	s.m.steps.WithLabelValues(kind, result).Inc()
	return err
}

// proposeChangePeer proposes the ChangePeer and then reconciles
// dragonboat's membership to the new descriptor.
func (s *Store) proposeChangePeer(ctx context.Context, r *region, d *metav1.Region, t raftcmdv1.ChangeType, p *metav1.Peer) error {
	if t == raftcmdv1.ChangeType_CHANGE_TYPE_ADD_LEARNER {
		// The new replica must catch up by a snapshot.
		if err := s.ensureCompacted(ctx, r); err != nil {
			return err
		}
	}
	cmd := &raftcmdv1.Command{Epoch: d.GetRegionEpoch(),
		Cmd: &raftcmdv1.Command_ChangePeer{ChangePeer: &raftcmdv1.ChangePeer{ChangeType: t, Peer: &metav1.Peer{Id: p.GetId(), StoreId: p.GetStoreId()}}}}
	if _, err := s.propose(ctx, r, cmd); err != nil {
		return fmt.Errorf("change peer %s %d on store %d: %w", t, p.GetId(), p.GetStoreId(), err)
	}
	s.log.Info("Region peers changed", "region_id", r.id, "change", t.String(), "peer_id", p.GetId(), "store_id", p.GetStoreId(),
		"conf_ver", r.desc().GetRegionEpoch().GetConfVer())
	if hook := s.testAfterChangePeer.Load(); hook != nil {
		(*hook)(ctx)
	}
	_, err := s.reconcileMembership(ctx, r)
	return err
}

// propose proposes cmd to r, stamped with the lowest version that knows
// it, and decodes a refusal into an error.
func (s *Store) propose(ctx context.Context, r *region, cmd *raftcmdv1.Command) (*raftcmdv1.Result, error) {
	cmd.Version = versionFor(cmd)
	data, err := proto.Marshal(cmd)
	if err != nil {
		return nil, err
	}
	res, err := s.cfg.Node.Propose(ctx, r.id, data)
	if err != nil {
		return nil, err
	}
	out := &raftcmdv1.Result{}
	_ = proto.Unmarshal(res.Data, out)
	if res.Value != resultOK {
		return out, fmt.Errorf("refused (code %d): %s", res.Value, out.GetMessage())
	}
	return out, nil
}

// reconcileMembership makes the shard's dragonboat membership equal to the
// descriptor's peers (leader only; each change is idempotent). changed
// reports that it issued a change.
func (s *Store) reconcileMembership(ctx context.Context, r *region) (changed bool, err error) {
	if _, _, self := s.isLeader(r); !self {
		return false, nil
	}
	d := r.desc()
	m, err := s.cfg.Node.Membership(ctx, r.id)
	if err != nil {
		return false, err
	}
	defer func() {
		if err != nil {
			err = fmt.Errorf("reconcile region %d's raft membership with its descriptor: %w", r.id, err)
		}
	}()
	for _, p := range d.GetPeers() {
		_, voter := m.Nodes[p.GetId()]
		addr, learner := m.NonVotings[p.GetId()]
		switch {
		case voter && isVoter(p), learner && !isVoter(p):
		case learner: // promoted in the descriptor
			if err := s.cfg.Node.AddReplica(ctx, r.id, p.GetId(), addr); err != nil {
				return changed, fmt.Errorf("promote peer %d: %w", p.GetId(), err)
			}
			changed = true
		case !voter && !isVoter(p): // a new learner
			if _, removed := m.Removed[p.GetId()]; removed {
				return changed, fmt.Errorf("peer %d was removed from raft; PD must remove it and add a new peer", p.GetId())
			}
			st, err := s.storeInfo(ctx, p.GetStoreId())
			if err != nil {
				return changed, err
			}
			if err := s.ensureCompacted(ctx, r); err != nil {
				return changed, err
			}
			if err := s.cfg.Node.AddNonVoting(ctx, r.id, p.GetId(), st.GetPeerAddress()); err != nil {
				return changed, fmt.Errorf("add learner %d: %w", p.GetId(), err)
			}
			changed = true
		default:
			// A voter missing from raft (or a raft voter the descriptor calls
			// a learner) cannot be repaired by adding it: a replica started
			// with the wrong role panics in dragonboat.
			return changed, fmt.Errorf("peer %d is %s in the descriptor but not in raft (voters %v, non-voting %v)",
				p.GetId(), p.GetRole(), m.Nodes, m.NonVotings)
		}
	}
	for _, members := range []map[uint64]string{m.Nodes, m.NonVotings} {
		for id := range members {
			if peerByID(d, id) == nil && id != r.peerID {
				if err := s.cfg.Node.RemoveReplica(ctx, r.id, id); err != nil {
					return changed, fmt.Errorf("remove replica %d: %w", id, err)
				}
				changed = true
			}
		}
	}
	return changed, nil
}

// pendingPeers are the descriptor's peers dragonboat does not have yet
// (leader only; PD adds those whose store does not run the region).
func (s *Store) pendingPeers(ctx context.Context, r *region) []*metav1.Peer {
	m, err := s.cfg.Node.Membership(ctx, r.id)
	if err != nil {
		return nil
	}
	var out []*metav1.Peer
	for _, p := range r.desc().GetPeers() {
		_, voter := m.Nodes[p.GetId()]
		_, learner := m.NonVotings[p.GetId()]
		if !voter && !learner {
			out = append(out, p)
		}
	}
	return out
}

// ensureCompacted makes sure this replica's raft log no longer holds entry
// 1, so that when it leads, a replica with an empty log is sent a snapshot
// of the region's range instead of a log replay (DESIGN.md), and that its state
// machine applied an entry: dragonboat skips recovering an on-disk state
// machine from a snapshot whose applied index is not above the receiver's
// (0 for a new replica), so a region born by split that never applied an
// entry would leave a joining replica without its descriptor and data.
func (s *Store) ensureCompacted(ctx context.Context, r *region) error {
	if r.compacted.Load() {
		return nil
	}
	noop := func() error {
		cmd := &raftcmdv1.Command{Epoch: r.desc().GetRegionEpoch(), Cmd: &raftcmdv1.Command_Write{Write: &raftcmdv1.Write{}}}
		if _, err := s.propose(ctx, r, cmd); err != nil {
			return fmt.Errorf("compact region %d's log: %w", r.id, err)
		}
		return nil
	}
	for {
		st, err := s.cfg.Node.Status(ctx, r.id)
		if err != nil {
			return err
		}
		if st.AppliedIndex == 0 {
			if err := noop(); err != nil {
				return err
			}
			continue
		}
		if st.FirstIndex > 1 {
			r.compacted.Store(true)
			return nil
		}
		if _, err := s.cfg.Node.CompactLog(ctx, r.id); errors.Is(err, raftnode.ErrRejected) {
			// A snapshot at this index exists (made without compacting):
			// a no-op entry moves the index on.
			if err := noop(); err != nil {
				return err
			}
		} else if err != nil && !errors.Is(err, dragonboat.ErrSystemBusy) {
			return fmt.Errorf("compact region %d's log: %w", r.id, err)
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return fmt.Errorf("compact region %d's log: %w", r.id, err)
		}
	}
}

// transferLeader hands leadership of r to its voter target.
func (s *Store) transferLeader(ctx context.Context, r *region, target uint64) error {
	p := peerByID(r.desc(), target)
	if p == nil || !isVoter(p) {
		return fmt.Errorf("leader transfer target %d is not a voter of region %d", target, r.id)
	}
	if target == r.peerID {
		return nil
	}
	// Bounded: a target that cannot take over must not hold the region's
	// membership work (PD resends the step or gives up).
	tctx, cancel := context.WithTimeout(ctx, transferTimeout)
	defer cancel()
	return s.cfg.Node.TransferLeader(tctx, r.id, target)
}

// transferAway hands leadership to another voter that raft has as a voter
// too (the first one in the descriptor).
func (s *Store) transferAway(ctx context.Context, r *region) error {
	m, err := s.cfg.Node.Membership(ctx, r.id)
	if err != nil {
		return err
	}
	for _, p := range r.desc().GetPeers() {
		if _, ok := m.Nodes[p.GetId()]; ok && p.GetId() != r.peerID && isVoter(p) {
			return s.transferLeader(ctx, r, p.GetId())
		}
	}
	return errors.New("no other voter to transfer leadership to before removing the leader")
}
