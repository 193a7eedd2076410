package raftnode

import (
	"context"
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
	var index uint64
	for {
		// The replica may still be replaying its log; retry until the
		// snapshot is taken or ctx ends.
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		var err error
		index, err = nh.SyncRequestSnapshot(sctx, sc.ShardID, dragonboat.SnapshotOption{Exported: true, ExportPath: exportDir})
		cancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil || !dragonboat.IsTempError(err) {
			return wrapDragonboatError("export snapshot for force new cluster", sc.ShardID, err)
		}
	}
	n.log.Warn("Forcing a new cluster: this replica becomes the only member", "shard_id", sc.ShardID, "replica_id", sc.ReplicaID, "snapshot_index", index)
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
