package raftnode

import (
	"context"
	"errors"
	"fmt"

	"github.com/lni/dragonboat/v4"
)

// CompactLog makes the local replica of shardID take a snapshot now and
// compacts its raft log up to it (compaction overhead 0), so a replica that
// needs earlier entries, such as a new one with an empty log, is sent a
// snapshot instead of the log. It returns the snapshot index; ErrRejected
// means a snapshot at the current index exists already (propose an entry
// and retry to compact anyway).
func (n *Node) CompactLog(ctx context.Context, shardID uint64) (uint64, error) {
	return n.requestSnapshot(ctx, shardID, dragonboat.SnapshotOption{OverrideCompactionOverhead: true, CompactionOverhead: 0})
}

// DestroyReplica stops the local replica of shardID (if it runs) and
// removes its raft data (log and snapshot records) from the NodeHost, so
// it can never start again. Call it only for a replica that was removed
// from its shard, or will be: dragonboat's raft data of a member must never
// be deleted while other members count on it. The state machine's data is
// the caller's to delete. ctx must have a deadline.
func (n *Node) DestroyReplica(ctx context.Context, shardID, replicaID uint64) error {
	if _, ok := ctx.Deadline(); !ok {
		return fmt.Errorf("%w: destroy replica %d of shard %d; use context.WithTimeout", ErrNoDeadline, replicaID, shardID)
	}
	nh, err := n.host()
	if err != nil {
		return err
	}
	if err := nh.StopReplica(shardID, replicaID); err != nil && !errors.Is(err, dragonboat.ErrShardNotFound) {
		return wrapDragonboatError("stop replica", shardID, err)
	}
	if err := nh.SyncRemoveData(ctx, shardID, replicaID); err != nil {
		return wrapDragonboatError("remove replica data", shardID, err)
	}
	n.shardLog(shardID).Info("Replica destroyed", "replica_id", replicaID)
	return nil
}

// OnPromoted registers fn to be called after a replica started NonVoting
// was promoted and has taken the snapshot that makes restarting it as a
// voter safe (StartShard's NonVoting). fn runs on a Node goroutine.
func (n *Node) OnPromoted(fn func(shardID uint64)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.promotedFns = append(n.promotedFns, fn)
}

func (n *Node) promoted(shardID uint64) {
	n.mu.Lock()
	fns := n.promotedFns
	n.mu.Unlock()
	for _, fn := range fns {
		fn(shardID)
	}
}
