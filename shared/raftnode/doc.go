// Package raftnode owns the one dragonboat NodeHost of a centra process and
// the pebble/v2 on-disk state machine base shared by every raft shard.
//
// A process creates one [Node] (New validates, Start does the I/O, Close
// undoes it), opens one state DB with [OpenStateDB], and starts each shard it
// hosts with [Node.StartShard], giving dragonboat a factory that builds a
// [DiskStateMachine] over the shard's [Keyspace] and the component's
// [Applier]:
//
//	node, err := raftnode.New(raftnode.Config{NodeHostDir: dir + "/raft", ...})
//	err = node.Start()
//	db, err := raftnode.OpenStateDB(dir+"/state", &pebble.Options{}, logger, 0)
//	ks := raftnode.ShardKeyspace(raftnode.MetadataShardID)
//	err = node.StartShard(raftnode.ShardConfig{ShardID: raftnode.MetadataShardID, ReplicaID: 1,
//		InitialMembers: members},
//		func(shardID, replicaID uint64) statemachine.IOnDiskStateMachine {
//			return raftnode.NewDiskStateMachine(db, ks, applier)
//		})
//	res, err := node.Propose(ctx, raftnode.MetadataShardID, cmd)
//
// FlareDB regions, which own a key range of a store-wide data keyspace
// rather than only their shard prefix, use [NewRangeStateMachine] with a
// [RangeApplier] instead: same apply path, snapshots carry the shard prefix
// plus the range.
//
// Every blocking call needs a context with a deadline. Propose, Read and the
// membership calls retry only what dragonboat guarantees was not committed
// and fail fast with [ErrNoLeader] when the shard has no leader. DESIGN.md in
// this directory explains the on-disk layout, the snapshot stream format, the
// durability argument, the retry policy and the dragonboat traps guarded here.
package raftnode
