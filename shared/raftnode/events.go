package raftnode

import (
	"fmt"
	"sync"

	"github.com/lni/dragonboat/v4/raftio"
)

// LeaderEvent reports a change of a local replica's view of its shard's
// leader. LeaderID 0 means the replica knows no leader.
type LeaderEvent struct {
	ShardID   uint64
	ReplicaID uint64
	LeaderID  uint64
	Term      uint64
}

// eventQueue is an unbounded FIFO between dragonboat's listener goroutine
// and the Node's dispatcher. dragonboat delivers leader events and system
// events (published synchronously by raft, transport and snapshot code) from
// one goroutine, so the listener must never block; dropping leader events is
// not acceptable either (PD reacts to them). wake is the buffered channel
// that signals the dispatcher.
type eventQueue struct {
	mu      sync.Mutex
	pending []LeaderEvent
	wake    chan struct{}
}

func newEventQueue() *eventQueue {
	return &eventQueue{wake: make(chan struct{}, 1)}
}

func (q *eventQueue) push(ev LeaderEvent) {
	q.mu.Lock()
	q.pending = append(q.pending, ev)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *eventQueue) drain() []LeaderEvent {
	q.mu.Lock()
	defer q.mu.Unlock()
	evs := q.pending
	q.pending = nil
	return evs
}

// OnLeaderChange registers fn to be called for every leader change seen by
// a local replica. Callbacks run one at a time, in event order, on a Node
// goroutine (never on raft's); a slow callback delays later callbacks but not
// raft. Register before Start to see the first election. Callbacks are not
// called once Close has started.
func (n *Node) OnLeaderChange(fn func(LeaderEvent)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.leaderFns = append(n.leaderFns, fn)
}

// dispatchEvents runs the leader callbacks until stopc closes.
func (n *Node) dispatchEvents() {
	defer close(n.dispatchDone)
	for {
		select {
		case <-n.stopc:
			return
		case <-n.events.wake:
		}
		for _, ev := range n.events.drain() {
			n.mu.Lock()
			fns := n.leaderFns
			n.mu.Unlock()
			for _, fn := range fns {
				select {
				case <-n.stopc:
					return
				default:
				}
				fn(ev)
			}
		}
	}
}

// nodeListener receives dragonboat's events. Its methods run on dragonboat's
// event goroutine and must not block.
type nodeListener struct{ n *Node }

var (
	_ raftio.IRaftEventListener   = nodeListener{}
	_ raftio.ISystemEventListener = nodeListener{}
)

// LeaderUpdated logs the change in the runbook's wording and queues it for
// the callbacks.
func (l nodeListener) LeaderUpdated(info raftio.LeaderInfo) {
	n := l.n
	st := n.shard(info.ShardID)
	st.setLeaderKnown(info.LeaderID != raftio.NoLeader)
	switch {
	case info.LeaderID == raftio.NoLeader && !st.hadLeader.Load():
		n.shardLog(info.ShardID).Info("Electing a leader", "replica_id", info.ReplicaID, "term", info.Term)
	case info.LeaderID == raftio.NoLeader:
		n.shardLog(info.ShardID).Warn("Leader lost", "replica_id", info.ReplicaID, "term", info.Term)
	default:
		st.hadLeader.Store(true)
		n.shardLog(info.ShardID).Info(fmt.Sprintf("Leader elected, term=%d", info.Term),
			"replica_id", info.ReplicaID, "leader_id", info.LeaderID)
	}
	n.metrics.leaderChanges.Inc()
	n.events.push(LeaderEvent{ShardID: info.ShardID, ReplicaID: info.ReplicaID, LeaderID: info.LeaderID, Term: info.Term})
}

// SnapshotRecovered logs a snapshot applied to the state machine (a
// streamed one, or the latest one on restart).
func (l nodeListener) SnapshotRecovered(info raftio.SnapshotInfo) {
	if info.Index == 0 {
		return // a replica starting without any snapshot
	}
	l.n.shardLog(info.ShardID).Info(fmt.Sprintf("Applied snapshot, index=%d", info.Index), "replica_id", info.ReplicaID)
}

// SnapshotReceived logs a snapshot streamed in from another replica.
func (l nodeListener) SnapshotReceived(info raftio.SnapshotInfo) {
	l.n.shardLog(info.ShardID).Info("Received snapshot", "replica_id", info.ReplicaID, "from", info.From)
}

// SendSnapshotStarted logs the start of streaming a snapshot to a replica
// whose log is behind the leader's compacted log.
func (l nodeListener) SendSnapshotStarted(info raftio.SnapshotInfo) {
	l.n.shardLog(info.ShardID).Info("Sending snapshot to replica", "replica_id", info.ReplicaID)
}

// SendSnapshotAborted logs a snapshot stream that failed; raft retries it.
func (l nodeListener) SendSnapshotAborted(info raftio.SnapshotInfo) {
	l.n.shardLog(info.ShardID).Warn("Sending snapshot to replica failed, raft will retry", "replica_id", info.ReplicaID)
}

// MembershipChanged logs an applied membership change and, for a replica
// started non-voting, checks (off this goroutine) whether it was promoted.
func (l nodeListener) MembershipChanged(info raftio.NodeInfo) {
	n := l.n
	n.shardLog(info.ShardID).Info("Membership changed", "replica_id", info.ReplicaID)
	v, ok := n.shards.Load(info.ShardID)
	if !ok || !v.(*shardState).learner.Load() {
		return
	}
	if nh := n.nh.Load(); nh != nil {
		n.background.Add(1)
		go n.snapshotIfPromoted(nh, info.ShardID, v.(*shardState))
	}
}

// NodeUnloaded logs a replica that stopped, e.g. after being removed.
func (l nodeListener) NodeUnloaded(info raftio.NodeInfo) {
	l.n.shardLog(info.ShardID).Info("Replica unloaded", "replica_id", info.ReplicaID)
}

// NodeHostShuttingDown implements raftio.ISystemEventListener; Close logs.
func (nodeListener) NodeHostShuttingDown() {}

// NodeDeleted implements raftio.ISystemEventListener.
func (nodeListener) NodeDeleted(raftio.NodeInfo) {}

// NodeReady implements raftio.ISystemEventListener.
func (nodeListener) NodeReady(raftio.NodeInfo) {}

// ConnectionEstablished implements raftio.ISystemEventListener.
func (nodeListener) ConnectionEstablished(raftio.ConnectionInfo) {}

// ConnectionFailed implements raftio.ISystemEventListener; dragonboat's
// transport already logs failed dials.
func (nodeListener) ConnectionFailed(raftio.ConnectionInfo) {}

// SendSnapshotCompleted implements raftio.ISystemEventListener.
func (nodeListener) SendSnapshotCompleted(raftio.SnapshotInfo) {}

// SnapshotCreated implements raftio.ISystemEventListener.
func (nodeListener) SnapshotCreated(raftio.SnapshotInfo) {}

// SnapshotCompacted implements raftio.ISystemEventListener.
func (nodeListener) SnapshotCompacted(raftio.SnapshotInfo) {}

// LogCompacted implements raftio.ISystemEventListener.
func (nodeListener) LogCompacted(raftio.EntryInfo) {}

// LogDBCompacted implements raftio.ISystemEventListener.
func (nodeListener) LogDBCompacted(raftio.EntryInfo) {}
