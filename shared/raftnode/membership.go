package raftnode

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lni/dragonboat/v4"
	"github.com/lni/dragonboat/v4/config"
)

// Membership returns shardID's membership through a linearizable read:
// voters (Nodes), NonVotings, Witnesses, Removed IDs and ConfigChangeID, the
// index of the last membership change. ctx must have a deadline; a shard
// without a known leader fails fast with ErrNoLeader.
func (n *Node) Membership(ctx context.Context, shardID uint64) (m *dragonboat.Membership, err error) {
	began := time.Now()
	defer func() { n.observe(opMembership, began, err) }()
	return n.membership(ctx, shardID)
}

func (n *Node) membership(ctx context.Context, shardID uint64) (*dragonboat.Membership, error) {
	r := request{op: opMembership, what: "membership read", shardID: shardID}
	if _, ok := ctx.Deadline(); !ok {
		return nil, fmt.Errorf("%w: %s on shard %d; use context.WithTimeout", ErrNoDeadline, r.what, shardID)
	}
	nh, err := n.host()
	if err != nil {
		return nil, err
	}
	w := &leaderWatch{nh: nh, shardID: shardID, limit: 2 * n.electionTimeout}
	pause := max(n.tick/4, time.Millisecond)
	for {
		if err := n.waitLeader(ctx, w, r); err != nil {
			return nil, err
		}
		// dragonboat only offers a blocking call here; bounding each attempt
		// by the no-leader limit keeps the fast failure of Read.
		actx, cancel := context.WithTimeout(ctx, w.limit)
		m, err := nh.SyncGetShardMembership(actx, shardID)
		cancel()
		switch {
		case err == nil:
			return m, nil
		case ctx.Err() != nil:
			return nil, inFlightCtxError(ctx, r)
		case errors.Is(err, dragonboat.ErrTimeout):
			// the attempt's own deadline: a read, so retry
		case !notSubmitted(err):
			return nil, wrapDragonboatError(r.what, shardID, err)
		}
		n.metrics.retries.WithLabelValues(r.op).Inc()
		if err := n.backoff(ctx, r, &pause); err != nil {
			return nil, err
		}
	}
}

// membershipChange is one ordered config change.
type membershipChange struct {
	what       string
	rejectHint string
	// check inspects the current membership: done when the change is
	// already in effect, an error when it can never succeed.
	check func(m *dragonboat.Membership) (done bool, err error)
	start func(nh *dragonboat.NodeHost, ccid uint64, timeout time.Duration) (*dragonboat.RequestState, error)
}

// changeMembership applies c once: changes issued by this Node are
// serialized per shard, each uses the ConfigChangeID just read
// (OrderedConfigChange), and a change already in effect succeeds without a
// new entry, so retrying after an ambiguous timeout is safe.
func (n *Node) changeMembership(ctx context.Context, shardID uint64, c membershipChange) (err error) {
	began := time.Now()
	defer func() { n.observe(opMembership, began, err) }()
	var ccid uint64
	r := request{
		op: opMembership, what: c.what, shardID: shardID, write: true, rejectHint: c.rejectHint,
		start: func(nh *dragonboat.NodeHost, timeout time.Duration) (*dragonboat.RequestState, error) {
			return c.start(nh, ccid, timeout)
		},
	}
	if _, ok := ctx.Deadline(); !ok {
		return fmt.Errorf("%w: %s on shard %d; use context.WithTimeout", ErrNoDeadline, c.what, shardID)
	}
	st := n.shard(shardID)
	if err := acquire(ctx, st.configSem); err != nil {
		return notSubmittedCtxError(ctx, r)
	}
	defer func() { <-st.configSem }()
	m, err := n.membership(ctx, shardID)
	if err != nil {
		return err
	}
	if done, err := c.check(m); done || err != nil {
		return err
	}
	ccid = m.ConfigChangeID
	rs, _, err := n.do(ctx, r)
	if err == nil {
		rs.Release()
		n.shardLog(shardID).Info("Membership change applied", "change", c.what)
		return nil
	}
	if errors.Is(err, ErrRejected) {
		// Rejected for a stale ConfigChangeID: maybe an earlier, ambiguous
		// attempt already made the change.
		if m, merr := n.membership(ctx, shardID); merr == nil {
			if done, _ := c.check(m); done {
				return nil
			}
		}
	}
	return err
}

// checkNewMember refuses IDs and addresses dragonboat would reject or
// panic on.
func checkNewMember(m *dragonboat.Membership, shardID, replicaID uint64, addr string) error {
	if replicaID == 0 {
		return fmt.Errorf("%w: shard %d: replica ID 0; replica IDs start at 1", ErrInvalidMember, shardID)
	}
	if !config.IsValidAddress(addr) {
		return fmt.Errorf("%w: shard %d replica %d: address %q is not host:port", ErrInvalidMember, shardID, replicaID, addr)
	}
	if m == nil {
		return nil
	}
	if _, removed := m.Removed[replicaID]; removed {
		return fmt.Errorf("%w: shard %d: replica %d was removed and removed IDs can never come back; allocate a new replica ID", ErrInvalidMember, shardID, replicaID)
	}
	for _, members := range []map[uint64]string{m.Nodes, m.NonVotings, m.Witnesses} {
		for id, a := range members {
			if a == addr && id != replicaID {
				return fmt.Errorf("%w: shard %d: address %q already belongs to replica %d; every replica needs its own address (remove %d first)", ErrInvalidMember, shardID, addr, id, id)
			}
		}
	}
	return nil
}

// AddReplica adds replicaID at addr as a voter of shardID, or promotes the
// non-voting replica replicaID (addr must then be its current address). Then
// start it on its node with StartShard{Join: true} (a promoted replica keeps
// running). ctx must have a deadline. Adding a replica that is already a
// voter at addr succeeds without a change.
func (n *Node) AddReplica(ctx context.Context, shardID, replicaID uint64, addr string) error {
	if err := checkNewMember(nil, shardID, replicaID, addr); err != nil {
		return err
	}
	return n.changeMembership(ctx, shardID, membershipChange{
		what:       fmt.Sprintf("add replica %d at %s", replicaID, addr),
		rejectHint: "the membership changed concurrently, the ID was removed, or the address is in use; re-read Membership",
		check: func(m *dragonboat.Membership) (bool, error) {
			if err := checkNewMember(m, shardID, replicaID, addr); err != nil {
				return false, err
			}
			if a, ok := m.NonVotings[replicaID]; ok && a != addr {
				return false, fmt.Errorf("%w: shard %d: non-voting replica %d is at %q; promote it with that address", ErrInvalidMember, shardID, replicaID, a)
			}
			if a, ok := m.Nodes[replicaID]; ok {
				if a != addr {
					return false, fmt.Errorf("%w: shard %d: replica %d is already a voter at %q", ErrInvalidMember, shardID, replicaID, a)
				}
				return true, nil
			}
			return false, nil
		},
		start: func(nh *dragonboat.NodeHost, ccid uint64, timeout time.Duration) (*dragonboat.RequestState, error) {
			return nh.RequestAddReplica(shardID, replicaID, addr, ccid, timeout)
		},
	})
}

// AddNonVoting adds replicaID at addr as a non-voting replica (learner) of
// shardID; then start it on its node with StartShard{Join: true, NonVoting:
// true}. ctx must have a deadline. A voter cannot be demoted.
func (n *Node) AddNonVoting(ctx context.Context, shardID, replicaID uint64, addr string) error {
	if err := checkNewMember(nil, shardID, replicaID, addr); err != nil {
		return err
	}
	return n.changeMembership(ctx, shardID, membershipChange{
		what:       fmt.Sprintf("add non-voting replica %d at %s", replicaID, addr),
		rejectHint: "the membership changed concurrently, the ID was removed, or the address is in use; re-read Membership",
		check: func(m *dragonboat.Membership) (bool, error) {
			if err := checkNewMember(m, shardID, replicaID, addr); err != nil {
				return false, err
			}
			if _, ok := m.Nodes[replicaID]; ok {
				return false, fmt.Errorf("%w: shard %d: replica %d is a voter and cannot become non-voting; remove it and add a new replica ID", ErrInvalidMember, shardID, replicaID)
			}
			if a, ok := m.NonVotings[replicaID]; ok {
				if a != addr {
					return false, fmt.Errorf("%w: shard %d: replica %d is already non-voting at %q", ErrInvalidMember, shardID, replicaID, a)
				}
				return true, nil
			}
			return false, nil
		},
		start: func(nh *dragonboat.NodeHost, ccid uint64, timeout time.Duration) (*dragonboat.RequestState, error) {
			return nh.RequestAddNonVoting(shardID, replicaID, addr, ccid, timeout)
		},
	})
}

// RemoveReplica removes replicaID (voter, non-voting or witness) from
// shardID. The removed replica unloads itself; its ID can never be reused.
// ctx must have a deadline. Removing an already removed replica succeeds.
func (n *Node) RemoveReplica(ctx context.Context, shardID, replicaID uint64) error {
	return n.changeMembership(ctx, shardID, membershipChange{
		what:       fmt.Sprintf("remove replica %d", replicaID),
		rejectHint: "the membership changed concurrently; re-read Membership",
		check: func(m *dragonboat.Membership) (bool, error) {
			if _, ok := m.Removed[replicaID]; ok {
				return true, nil
			}
			_, voter := m.Nodes[replicaID]
			_, learner := m.NonVotings[replicaID]
			_, witness := m.Witnesses[replicaID]
			if !voter && !learner && !witness {
				return false, fmt.Errorf("%w: shard %d: replica %d is not a member", ErrInvalidMember, shardID, replicaID)
			}
			return false, nil
		},
		start: func(nh *dragonboat.NodeHost, ccid uint64, timeout time.Duration) (*dragonboat.RequestState, error) {
			return nh.RequestDeleteReplica(shardID, replicaID, ccid, timeout)
		},
	})
}

// TransferLeader asks shardID's leader to hand leadership to the voter
// targetReplicaID and waits until this replica sees it lead. dragonboat may
// drop the request silently, so it is repeated every election timeout until
// ctx (with a deadline) ends.
func (n *Node) TransferLeader(ctx context.Context, shardID, targetReplicaID uint64) (err error) {
	began := time.Now()
	defer func() { n.observe(opMembership, began, err) }()
	m, err := n.membership(ctx, shardID)
	if err != nil {
		return err
	}
	if _, ok := m.Nodes[targetReplicaID]; !ok {
		return fmt.Errorf("%w: shard %d: leader transfer target %d is not a voter (voters %v)", ErrInvalidMember, shardID, targetReplicaID, m.Nodes)
	}
	nh, err := n.host()
	if err != nil {
		return err
	}
	t := time.NewTicker(n.tick)
	defer t.Stop()
	var requested time.Time
	for {
		leader, _, valid, err := nh.GetLeaderID(shardID)
		if err != nil {
			return wrapDragonboatError("leader transfer", shardID, err)
		}
		if valid && leader == targetReplicaID {
			n.shardLog(shardID).Info("Leader transferred", "leader_id", leader)
			return nil
		}
		if time.Since(requested) >= n.electionTimeout {
			if err := nh.RequestLeaderTransfer(shardID, targetReplicaID); err != nil && !notSubmitted(err) {
				return wrapDragonboatError("leader transfer", shardID, err)
			}
			requested = time.Now()
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return fmt.Errorf("%w: leader transfer of shard %d to replica %d not observed (leader %d): %w", ErrTimeout, shardID, targetReplicaID, leader, ctx.Err())
		case <-n.stopc:
			return fmt.Errorf("%w: leader transfer of shard %d", ErrClosed, shardID)
		}
	}
}
