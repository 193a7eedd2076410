package raftnode

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"

	"github.com/lni/dragonboat/v4"
)

// Status is one local replica's view of its shard.
type Status struct {
	ShardID   uint64
	ReplicaID uint64
	// LeaderID is 0 when no leader is known; Term is the replica's term.
	LeaderID uint64
	Term     uint64
	// CommitIndex is the local commit index.
	CommitIndex uint64
	// AppliedIndex is the last index applied by the state machine; it lags
	// CommitIndex by entries that never reach the state machine (membership
	// changes, leader no-ops). 0 if the state machine does not implement
	// AppliedIndexReporter.
	AppliedIndex uint64
	// FirstIndex and LastIndex bound the raft log kept locally.
	FirstIndex uint64
	LastIndex  uint64
	// SnapshotIndex is the index of the latest local snapshot.
	SnapshotIndex uint64
	IsNonVoting   bool
}

// Leader returns the local replica's knowledge of shardID's leader. ok is
// false when no leader is known, the shard is not running here, or the Node
// is not running.
func (n *Node) Leader(shardID uint64) (leaderID, term uint64, ok bool) {
	nh := n.nh.Load()
	if nh == nil {
		return 0, 0, false
	}
	leaderID, term, valid, err := nh.GetLeaderID(shardID)
	if err != nil || !valid {
		return 0, term, false
	}
	return leaderID, term, true
}

// LocalVoters returns the voting replicas of shardID (replica ID -> raft
// address) as the local replica knows them: no quorum needed, possibly
// stale. nil when the shard is not running here.
func (n *Node) LocalVoters(shardID uint64) map[uint64]string {
	nh := n.nh.Load()
	if nh == nil {
		return nil
	}
	for _, si := range nh.GetNodeHostInfo(dragonboat.NodeHostInfoOption{SkipLogInfo: true}).ShardInfoList {
		if si.ShardID == shardID {
			return maps.Clone(si.Replicas)
		}
	}
	return nil
}

// Status reports the local replica of shardID. It needs no quorum; ctx (with
// a deadline) bounds the wait for the local raft log query that yields the
// commit index.
func (n *Node) Status(ctx context.Context, shardID uint64) (Status, error) {
	if _, ok := ctx.Deadline(); !ok {
		return Status{}, fmt.Errorf("%w: status of shard %d; use context.WithTimeout", ErrNoDeadline, shardID)
	}
	nh, err := n.host()
	if err != nil {
		return Status{}, err
	}
	st := Status{ShardID: shardID}
	found := false
	for _, si := range nh.GetNodeHostInfo(dragonboat.NodeHostInfoOption{SkipLogInfo: true}).ShardInfoList {
		if si.ShardID == shardID {
			st.ReplicaID, st.IsNonVoting, found = si.ReplicaID, si.IsNonVoting, true
			break
		}
	}
	if !found {
		return Status{}, fmt.Errorf("%w: shard %d (status); start it with StartShard first", ErrShardNotFound, shardID)
	}
	st.LeaderID, st.Term, _ = n.Leader(shardID)
	lr, err := n.queryLogRange(ctx, nh, shardID)
	if err != nil {
		return Status{}, err
	}
	st.CommitIndex, st.FirstIndex = lr.LastIndex-1, lr.FirstIndex
	reader, err := nh.GetLogReader(shardID)
	if err != nil {
		return Status{}, wrapDragonboatError("status", shardID, err)
	}
	_, st.LastIndex = reader.GetRange()
	st.SnapshotIndex = reader.Snapshot().Index
	if src := n.shard(shardID).applied.Load(); src != nil {
		st.AppliedIndex = src.r.AppliedIndex()
	}
	return st, nil
}

// queryLogRange asks raft for its log range with a deliberately
// out-of-range query: the answer's LastIndex is commit+1 and FirstIndex the
// first retained index. dragonboat allows one pending query per shard, so
// queries are serialized, and one abandoned by an expired context is awaited
// by the next caller instead of being reissued.
func (n *Node) queryLogRange(ctx context.Context, nh *dragonboat.NodeHost, shardID uint64) (dragonboat.LogRange, error) {
	st := n.shard(shardID)
	r := request{what: "raft log query", shardID: shardID}
	if err := acquire(ctx, st.querySem); err != nil {
		return dragonboat.LogRange{}, notSubmittedCtxError(ctx, r)
	}
	defer func() { <-st.querySem }()
	if st.pendingQuery == nil {
		rs, err := nh.QueryRaftLog(shardID, math.MaxUint64-1, math.MaxUint64, 0)
		if err != nil {
			return dragonboat.LogRange{}, wrapDragonboatError(r.what, shardID, err)
		}
		st.pendingQuery = rs
	}
	select {
	case res := <-st.pendingQuery.ResultC():
		st.pendingQuery = nil
		if !res.RequestOutOfRange() && !res.Completed() {
			return dragonboat.LogRange{}, fmt.Errorf("raftnode: raft log query on shard %d ended without a result (replica stopping?): %w", shardID, dragonboat.ErrShardClosed)
		}
		_, lr := res.RaftLogs()
		return lr, nil
	case <-ctx.Done():
		return dragonboat.LogRange{}, inFlightCtxError(ctx, r)
	}
}

// RequestSnapshot makes the local replica of shardID take a snapshot now and
// returns its index. For on-disk state machines this is cheap (metadata plus
// Sync) and compacts the raft log. The Node already snapshots a replica it
// started non-voting once it sees its promotion; this forces one. A snapshot
// at the current index that already exists gives ErrRejected, which callers
// may treat as success.
func (n *Node) RequestSnapshot(ctx context.Context, shardID uint64) (uint64, error) {
	return n.requestSnapshot(ctx, shardID, dragonboat.DefaultSnapshotOption)
}

func (n *Node) requestSnapshot(ctx context.Context, shardID uint64, opt dragonboat.SnapshotOption) (uint64, error) {
	if _, ok := ctx.Deadline(); !ok {
		return 0, fmt.Errorf("%w: snapshot of shard %d; use context.WithTimeout", ErrNoDeadline, shardID)
	}
	nh, err := n.host()
	if err != nil {
		return 0, err
	}
	idx, err := nh.SyncRequestSnapshot(ctx, shardID, opt)
	switch {
	case err == nil:
		return idx, nil
	case errors.Is(err, dragonboat.ErrRejected):
		return 0, fmt.Errorf("%w: snapshot of shard %d: one already exists at the current index", ErrRejected, shardID)
	case errors.Is(err, dragonboat.ErrTimeout) && ctx.Err() != nil:
		return 0, inFlightCtxError(ctx, request{what: "snapshot", shardID: shardID})
	default:
		return 0, wrapDragonboatError("snapshot", shardID, err)
	}
}
