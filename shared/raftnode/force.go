package raftnode

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/lni/dragonboat/v4"
	"github.com/lni/dragonboat/v4/statemachine"
	"github.com/lni/dragonboat/v4/tools"
)

// ForceNewCluster rewrites the membership of shard sc.ShardID to this
// replica alone, keeping the replica's state: the recovery after a quorum was
// lost for good (etcd's --force-new-cluster; the split-brain procedure of
// the troubleshooting runbook). Every other replica becomes removed for ever;
// add nodes back with new replica IDs. Committed entries this replica never
// received are lost, so run it on the replica with the highest raft index.
//
// n must be new (not started): ForceNewCluster starts it, restarts the
// replica (it must have data), exports a snapshot of its state into a
// temporary directory under the NodeHostDir, closes n, and imports the
// snapshot with the new membership (dragonboat's tools.ImportSnapshot). Start
// a new Node with the same Config afterwards as usual.
//
// The exported snapshot is taken at everything the replica applied, never
// earlier (see exportApplied): the replica restarts at the same raft index
// with the same state, and the imported membership removes every replica
// the shard had at that index, including ones added after the last
// periodic snapshot.
func (n *Node) ForceNewCluster(ctx context.Context, sc ShardConfig, create statemachine.CreateOnDiskStateMachineFunc) error {
	if _, ok := ctx.Deadline(); !ok {
		return fmt.Errorf("%w: force new cluster; use context.WithTimeout", ErrNoDeadline)
	}
	cfg := n.cfg
	if err := n.Start(); err != nil {
		return err
	}
	defer n.Close()
	sc.InitialMembers, sc.Join = nil, false
	if err := n.StartShard(sc, create); err != nil {
		return err
	}
	nh := n.NodeHost()
	if nh == nil || !nh.HasNodeInfo(sc.ShardID, sc.ReplicaID) {
		return fmt.Errorf("%w: shard %d replica %d has no data in %s to keep; --force-new-cluster needs the data of an existing member", ErrInvalidShardConfig, sc.ShardID, sc.ReplicaID, cfg.NodeHostDir)
	}
	exportDir := filepath.Join(cfg.NodeHostDir, "force-new-cluster")
	if err := os.RemoveAll(exportDir); err != nil {
		return err
	}
	if err := os.MkdirAll(exportDir, 0o700); err != nil {
		return err
	}
	defer os.RemoveAll(exportDir)
	// Wait until the replica replayed its log: a snapshot taken before it
	// knows its membership makes dragonboat panic ("empty membership").
	for !replayed(nh, sc.ShardID) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("raftnode: force new cluster: shard %d did not finish replaying its log: %w", sc.ShardID, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	index, err := n.exportApplied(ctx, sc.ShardID, exportDir)
	if err != nil {
		return err
	}
	n.shardLog(sc.ShardID).Warn("Forcing a new cluster: this replica becomes the only member", "replica_id", sc.ReplicaID, "snapshot_index", index)
	if err := n.Close(); err != nil {
		return err
	}
	src := filepath.Join(exportDir, fmt.Sprintf("snapshot-%016X", index))
	members := map[uint64]string{sc.ReplicaID: cfg.RaftAddress}
	if err := tools.ImportSnapshot(cfg.nodeHostConfig(), src, members, sc.ReplicaID); err != nil {
		return fmt.Errorf("raftnode: import the snapshot at index %d with the new membership: %w", index, err)
	}
	return nil
}

// replayed reports whether the local replica of shardID finished its
// initialisation (log replay) and knows its membership.
func replayed(nh *dragonboat.NodeHost, shardID uint64) bool {
	for _, si := range nh.GetNodeHostInfo(dragonboat.NodeHostInfoOption{SkipLogInfo: true}).ShardInfoList {
		if si.ShardID == shardID {
			return !si.Pending && len(si.Replicas) > 0
		}
	}
	return false
}

// exportApplied exports a snapshot of the local replica of shardID into dir
// at an index that covers everything the replica applied, and returns that
// index.
//
// A just-restarted replica first recovers from its latest snapshot, then
// replays its committed log entries; a snapshot request can overtake the
// replay and be taken at the older index (for an on-disk state machine
// dragonboat only records the index: the state itself is already at the
// newer one). Imported, such a snapshot would rewind raft_index and restore
// the membership as of the old snapshot (members added since would
// neither be members nor removed). So the export is repeated until its
// index reaches the local commit index (every committed entry, config
// changes included, is applied without a leader), and it must also reach
// the state DB's applied index.
func (n *Node) exportApplied(ctx context.Context, shardID uint64, dir string) (uint64, error) {
	st, err := n.localStatus(ctx, shardID)
	if err != nil {
		return 0, fmt.Errorf("raftnode: force new cluster: read the commit index of shard %d: %w", shardID, err)
	}
	nh := n.NodeHost()
	for wait := 20 * time.Millisecond; ; wait = min(2*wait, 500*time.Millisecond) {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		index, err := nh.SyncRequestSnapshot(sctx, shardID, dragonboat.SnapshotOption{Exported: true, ExportPath: dir})
		cancel()
		switch {
		case err == nil && index >= st.CommitIndex:
			if index < st.AppliedIndex {
				return 0, fmt.Errorf("%w: force new cluster: shard %d's state DB applied index %d is beyond its raft log's commit index %d: the log does not hold entries the state DB applied (a lost or older LogDB directory; run 'centra debug check --data-dir' on it), so this member cannot be recovered alone without a rewind: run --force-new-cluster on another member", ErrStateMismatch, shardID, st.AppliedIndex, st.CommitIndex)
			}
			return index, nil
		case err == nil:
			// Taken before the replay reached the commit index: discard it.
			n.shardLog(shardID).Debug("Exported snapshot is behind the commit index; retrying", "snapshot_index", index, "commit_index", st.CommitIndex)
			if err := os.RemoveAll(filepath.Join(dir, fmt.Sprintf("snapshot-%016X", index))); err != nil {
				return 0, err
			}
		case ctx.Err() != nil || !dragonboat.IsTempError(err):
			return 0, wrapDragonboatError("export snapshot for force new cluster", shardID, err)
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("raftnode: force new cluster: shard %d did not replay its log up to the commit index %d: %w", shardID, st.CommitIndex, ctx.Err())
		case <-time.After(wait):
		}
	}
}

// localStatus is Status, retried while the replica is not ready for the log
// query yet (a just-started replica drops it).
func (n *Node) localStatus(ctx context.Context, shardID uint64) (Status, error) {
	for {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := n.Status(sctx, shardID)
		cancel()
		if err == nil || ctx.Err() != nil || !errors.Is(err, dragonboat.ErrShardNotReady) {
			return st, err
		}
		select {
		case <-ctx.Done():
			return st, err
		case <-time.After(50 * time.Millisecond):
		}
	}
}
