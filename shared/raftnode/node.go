package raftnode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lni/dragonboat/v4"
	"github.com/lni/dragonboat/v4/statemachine"
)

type lifecycle int

const (
	stateNew lifecycle = iota
	stateRunning
	stateClosed
)

// Node owns the process's one dragonboat NodeHost and the replicas started
// on it. Create it with New, then Start; all methods are safe for concurrent
// use.
type Node struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	// tick is one raft tick; electionTimeout is ElectionRTT ticks.
	tick            time.Duration
	electionTimeout time.Duration

	mu        sync.Mutex // guards state, leaderFns, sink
	state     lifecycle
	leaderFns []func(LeaderEvent)
	sink      *logSink
	peerNamer atomic.Pointer[PeerNamer]

	nh     atomic.Pointer[dragonboat.NodeHost] // set while running
	logdb  atomic.Pointer[lazyCommitLogDB]     // the NodeHost's LogDB
	closed atomic.Bool
	shards sync.Map // shard ID -> *shardState

	events       *eventQueue
	stopc        chan struct{} // closed when Close starts
	dispatchDone chan struct{}
	background   sync.WaitGroup // snapshotIfPromoted goroutines
	promotedFns  []func(shardID uint64)
}

// shardState is the Node's bookkeeping for one shard.
type shardState struct {
	// configSem serializes membership changes issued by this Node.
	configSem chan struct{}
	// querySem serializes raft log queries: dragonboat allows one pending
	// QueryRaftLog per shard. pendingQuery (guarded by querySem) is a query
	// whose caller gave up; the next Status waits for it instead of issuing
	// a new one that would fail with ErrSystemBusy.
	querySem     chan struct{}
	pendingQuery *dragonboat.RequestState
	// applied reports the state machine's applied index, when it can.
	applied atomic.Pointer[appliedSource]
	// learner is set while the local replica was started non-voting and
	// has not taken a snapshot since its promotion (see snapshotIfPromoted).
	learner atomic.Bool
	// hadLeader is set once the shard had a leader in this process, so the
	// no-leader event of a starting replica is not reported as a loss.
	hadLeader atomic.Bool
	// noLeader is closed while the shard has no known leader (as far as
	// leader events tell; closed until the first one) and replaced by an
	// open channel when one is elected. Requests in flight wait on it
	// instead of polling the leader.
	noLeaderMu sync.Mutex
	noLeader   chan struct{}
	// changed is closed at the next leader event (under noLeaderMu) and
	// replaced: a write in flight learns of a leader change from it.
	changed chan struct{}
}

// closedChan is a closed channel.
var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// leaderLost returns a channel that is closed once the shard has no known
// leader (already closed if it has none now).
func (st *shardState) leaderLost() <-chan struct{} {
	st.noLeaderMu.Lock()
	defer st.noLeaderMu.Unlock()
	return st.noLeader
}

// leaderChanged returns a channel that is closed at the next leader event.
func (st *shardState) leaderChanged() <-chan struct{} {
	st.noLeaderMu.Lock()
	defer st.noLeaderMu.Unlock()
	return st.changed
}

// setLeaderKnown records a leader event.
func (st *shardState) setLeaderKnown(known bool) {
	st.noLeaderMu.Lock()
	defer st.noLeaderMu.Unlock()
	close(st.changed)
	st.changed = make(chan struct{})
	closed := st.noLeader == closedChan
	switch {
	case known && closed:
		st.noLeader = make(chan struct{})
	case !known && !closed:
		close(st.noLeader)
		st.noLeader = closedChan
	}
}

type appliedSource struct{ r AppliedIndexReporter }

// AppliedIndexReporter is implemented by state machines that report their
// applied index without a Lookup; Status uses it. *DiskStateMachine
// implements it.
type AppliedIndexReporter interface {
	AppliedIndex() uint64
}

// New validates cfg (filling defaults) and returns a Node that is not yet
// started. It does no I/O; errors wrap ErrInvalidConfig and name the field
// and the fix.
func New(cfg Config) (*Node, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	tick := time.Duration(cfg.RTTMillisecond) * time.Millisecond
	return &Node{
		cfg:             cfg,
		log:             cfg.Logger.With("component", "raftnode"),
		metrics:         m,
		tick:            tick,
		electionTimeout: time.Duration(cfg.ElectionRTT) * tick,
		events:          newEventQueue(),
		stopc:           make(chan struct{}),
		dispatchDone:    make(chan struct{}),
	}, nil
}

// Start creates the NodeHost (LogDB with the configured preset, transport,
// event listeners) and routes dragonboat's logs into Config.Logger. A failed
// Start leaves the Node unstarted, so it can be retried after fixing the
// cause.
func (n *Node) Start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch n.state {
	case stateRunning:
		return errors.New("raftnode: Start called twice; a Node starts once")
	case stateClosed:
		return fmt.Errorf("%w: Start after Close; create a new Node", ErrClosed)
	}
	sink := &logSink{logger: n.cfg.Logger, level: n.cfg.LogLevel, network: n.cfg.NetworkLogComponent, peers: &n.peerNamer}
	attachDragonboatLogs(sink)
	nhc := n.cfg.nodeHostConfig()
	listener := nodeListener{n: n}
	nhc.RaftEventListener = listener
	nhc.SystemEventListener = listener
	nhc.Expert.LogDBFactory = logDBFactory{loseDeferred: n.cfg.loseDeferredCommits, created: &n.logdb}
	nhc.Expert.TransportFactory = transportFactory{timeout: time.Second + n.electionTimeout, cut: n.cfg.cut, redialled: func(target string) {
		n.metrics.redials.Inc()
		n.log.Info("Raft connection was closed by the peer (restarted or stopped); dialled it again before sending", "target", target)
	}, log: n.log, handshakeFailed: n.metrics.handshakeFails.Inc}
	nh, err := dragonboat.NewNodeHost(nhc)
	if err != nil {
		detachDragonboatLogs(sink)
		return startError(n.cfg, err)
	}
	n.sink = sink
	n.nh.Store(nh)
	n.state = stateRunning
	go n.dispatchEvents()
	n.log.Info("Raft node started", "raft_address", n.cfg.RaftAddress, "node_host_id", nh.ID())
	if 2*n.electionTimeout < reconnectBackoff {
		n.log.Warn("Election timeout is so short that a restarted replica campaigns before dragonboat's reconnect backoff lets the leader's heartbeats through (use 2 x RTTMillisecond x ElectionRTT >= 1000)",
			"election_timeout", n.electionTimeout)
	}
	return nil
}

// shardLog is the logger of one shard's records, with the runbook's
// component (chainfire_raft or flaredb_raft) and the shard ID.
func (n *Node) shardLog(shardID uint64) *slog.Logger {
	return n.cfg.Logger.With("component", shardComponent(shardID), "shard_id", shardID)
}

// reconnectBackoff is the longest backoff of dragonboat's transport circuit
// breaker: a restarted peer may hear no heartbeat for that long. Its
// campaigns then are PreVotes the others refuse (they hear the leader), so
// the cost is log noise and a replica that reports no leader, not a
// disruption; Start warns only when even the longest randomized timeout
// (2 x ElectionRTT ticks) is shorter.
const reconnectBackoff = time.Second

// nodeHostHints explains NewNodeHost failures caused by NodeHostDir being
// pinned to its identity. dragonboat's errors for these live in an internal
// package, so they are matched by message.
var nodeHostHints = []struct{ match, hint string }{
	{"not the owner of the data directory", "NodeHostDir was created with another RaftAddress; restore that address, or move the node: remove its replicas, wipe NodeHostDir and add it back under new replica IDs"},
	{"hostname changed", "NodeHostDir was created on a host with another hostname; keep the hostname stable (set it explicitly in containers)"},
	{"deployment ID changed", "NodeHostDir belongs to a cluster with another DeploymentID; point NodeHostDir at this cluster's data"},
	{"failed to lock data directory", "another process is using NodeHostDir; stop it first"},
	{"settings changed", "NodeHostDir was created with different dragonboat hard settings; run the centra version that created it"},
	{"logdb type changed", "NodeHostDir was created with another LogDB engine; run the centra version that created it"},
}

func startError(cfg Config, err error) error {
	for _, h := range nodeHostHints {
		if strings.Contains(err.Error(), h.match) {
			return fmt.Errorf("raftnode: start NodeHost in %s: %w (%s)", cfg.NodeHostDir, err, h.hint)
		}
	}
	return fmt.Errorf("raftnode: start NodeHost in %s at %s: %w", cfg.NodeHostDir, cfg.RaftAddress, err)
}

// Close stops the Node; it is idempotent and safe on a Node that never
// started. The process shutdown order is:
//
//  1. stop the RPC servers that propose or read;
//  2. optionally TransferLeader away from local leaders to shorten failover;
//  3. Close: new calls fail with ErrClosed and leader callbacks stop, then
//     NodeHost.Close stops every replica (DiskStateMachine.Close, which does
//     not close the shared DB), the transport and the LogDB; calls still in
//     flight return ErrClosed; background snapshots end; finally
//     dragonboat's logs are detached;
//  4. close the state DB from OpenStateDB, only after Close returned.
//
// Leader callbacks must not call Close.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.state != stateRunning {
		n.state = stateClosed
		n.mu.Unlock()
		return nil
	}
	n.state = stateClosed
	n.closed.Store(true)
	nh := n.nh.Swap(nil)
	sink := n.sink
	n.mu.Unlock()

	close(n.stopc)
	nh.Close()
	<-n.dispatchDone
	n.background.Wait()
	n.log.Info("Raft node stopped", "raft_address", n.cfg.RaftAddress)
	detachDragonboatLogs(sink)
	return nil
}

// NodeHost returns the underlying NodeHost for calls this package does not
// wrap, or nil when the Node is not running. Prefer the Node's methods: they
// validate input dragonboat would panic on.
func (n *Node) NodeHost() *dragonboat.NodeHost { return n.nh.Load() }

// host returns the running NodeHost.
func (n *Node) host() (*dragonboat.NodeHost, error) {
	if nh := n.nh.Load(); nh != nil {
		return nh, nil
	}
	if n.closed.Load() {
		return nil, ErrClosed
	}
	return nil, fmt.Errorf("%w: call Start first", ErrNotStarted)
}

// shard returns the bookkeeping for shardID, creating it on first use.
func (n *Node) shard(shardID uint64) *shardState {
	if v, ok := n.shards.Load(shardID); ok {
		return v.(*shardState)
	}
	v, _ := n.shards.LoadOrStore(shardID, &shardState{
		configSem: make(chan struct{}, 1),
		querySem:  make(chan struct{}, 1),
		noLeader:  closedChan,
		changed:   make(chan struct{}),
	})
	return v.(*shardState)
}

// acquire takes a one-slot semaphore or gives up when ctx ends.
func acquire(ctx context.Context, sem chan struct{}) error {
	select {
	case sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// StartShard starts (or restarts) an on-disk replica of sc.ShardID with the
// state machine built by create. It validates first, because dragonboat
// panics on some invalid input (ReplicaID 0, a wiped raft directory reused
// under the same ID), and refuses with an error naming the fix. Replicas run
// with CheckQuorum, PreVote and OrderedConfigChange on, and proposals use
// no-op sessions (no exactly-once dedup: make commands idempotent).
//
//   - bootstrap a new shard: InitialMembers with every initial replica;
//   - join an existing shard after AddReplica/AddNonVoting: Join;
//   - restart: neither (or the same InitialMembers again).
func (n *Node) StartShard(sc ShardConfig, create statemachine.CreateOnDiskStateMachineFunc) error {
	if create == nil {
		return fmt.Errorf("%w: shard %d replica %d: create is nil; pass a factory returning the state machine", ErrInvalidShardConfig, sc.ShardID, sc.ReplicaID)
	}
	if err := n.cfg.validateShard(sc); err != nil {
		return err
	}
	nh, err := n.host()
	if err != nil {
		return err
	}
	rc := n.cfg.replicaConfig(sc)
	if err := rc.Validate(); err != nil {
		return fmt.Errorf("%w: shard %d replica %d: %w", ErrInvalidShardConfig, sc.ShardID, sc.ReplicaID, err)
	}
	if nh.HasNodeInfo(sc.ShardID, sc.ReplicaID) {
		// A restart: dragonboat has the membership; passing the bootstrap
		// members again would fail validation after a join or a forced new
		// cluster (both record a join).
		sc.InitialMembers, sc.Join = nil, false
		if l := n.logdb.Load(); l != nil && sc.StateAppliedIndex > 0 {
			l.raiseCommitOnLoad(sc.ShardID, sc.ReplicaID, sc.StateAppliedIndex)
		}
	} else {
		if !sc.Join && len(sc.InitialMembers) == 0 {
			return fmt.Errorf("%w: shard %d replica %d: NodeHostDir has no raft data for this replica; pass InitialMembers to bootstrap a new shard, or set Join after adding the replica with AddReplica/AddNonVoting",
				ErrInvalidShardConfig, sc.ShardID, sc.ReplicaID)
		}
		if sc.StateAppliedIndex > 0 {
			return fmt.Errorf("%w: shard %d replica %d: the state DB has applied index %d but NodeHostDir has no raft data for this replica (wiped or replaced raft directory?); restore NodeHostDir, or remove the replica from the shard, delete its state and add it back under a new replica ID",
				ErrStateMismatch, sc.ShardID, sc.ReplicaID, sc.StateAppliedIndex)
		}
	}
	st := n.shard(sc.ShardID)
	factory := func(shardID, replicaID uint64) statemachine.IOnDiskStateMachine {
		sm := create(shardID, replicaID)
		if r, ok := sm.(AppliedIndexReporter); ok {
			st.applied.Store(&appliedSource{r: r})
		} else {
			st.applied.Store(nil)
		}
		return sm
	}
	if err := nh.StartOnDiskReplica(maps.Clone(sc.InitialMembers), sc.Join, factory, rc); err != nil {
		return shardStartError(sc, err)
	}
	st.learner.Store(sc.NonVoting)
	n.shardLog(sc.ShardID).Info("Shard started", "replica_id", sc.ReplicaID, "join", sc.Join, "non_voting", sc.NonVoting)
	return nil
}

func shardStartError(sc ShardConfig, err error) error {
	var hint string
	switch {
	case errors.Is(err, dragonboat.ErrClosed):
		return fmt.Errorf("%w: start shard %d", ErrClosed, sc.ShardID)
	case errors.Is(err, dragonboat.ErrShardAlreadyExist):
		hint = "a replica of this shard is already running on this node"
	case errors.Is(err, dragonboat.ErrInvalidShardSettings):
		hint = "InitialMembers/Join differ from what the replica was created with; on restart pass no InitialMembers (or the original ones) and Join=false"
	case errors.Is(err, dragonboat.ErrReplicaRemoved):
		hint = "this replica was removed from the shard; add the node back under a new replica ID"
	case errors.Is(err, dragonboat.ErrInvalidTarget):
		hint = "an InitialMembers address is invalid"
	}
	if hint == "" {
		return fmt.Errorf("raftnode: start shard %d replica %d: %w", sc.ShardID, sc.ReplicaID, err)
	}
	return fmt.Errorf("raftnode: start shard %d replica %d: %w (%s)", sc.ShardID, sc.ReplicaID, err, hint)
}

// snapshotIfPromoted takes a snapshot of the local replica of shardID if it
// was started non-voting and has become a voter. Until such a snapshot
// exists, restarting the replica as a voter panics in dragonboat ("is not a
// nonVoting") because its own AddNonVoting entry is still in its log. It
// runs on its own goroutine, started from the membership-change event.
func (n *Node) snapshotIfPromoted(nh *dragonboat.NodeHost, shardID uint64, st *shardState) {
	defer n.background.Done()
	promoted := false
	for _, si := range nh.GetNodeHostInfo(dragonboat.NodeHostInfoOption{SkipLogInfo: true}).ShardInfoList {
		if si.ShardID == shardID {
			// Replicas lists the voters. A learner replaying the log from
			// before its own AddNonVoting is in neither list yet.
			_, voter := si.Replicas[si.ReplicaID]
			promoted = voter && !si.IsNonVoting
		}
	}
	if !promoted {
		return
	}
	rs, err := nh.RequestSnapshot(shardID, dragonboat.DefaultSnapshotOption, 10*n.electionTimeout)
	if err != nil {
		n.shardLog(shardID).Warn("Snapshot after promotion to voter failed; restart this replica as non-voting until a snapshot succeeds",
			"err", err)
		return
	}
	select {
	case res := <-rs.ResultC():
		switch {
		case res.Completed():
			st.learner.Store(false)
			n.shardLog(shardID).Info(fmt.Sprintf("Snapshot taken after promotion to voter, index=%d", res.SnapshotIndex()))
			n.promoted(shardID)
		case res.Rejected():
			st.learner.Store(false) // a snapshot at the current index already exists
			n.promoted(shardID)
		default:
			n.shardLog(shardID).Warn("Snapshot after promotion to voter did not complete; restart this replica as non-voting until a snapshot succeeds")
		}
	case <-n.stopc:
	}
}

// RaftAddress is the raft address other nodes reach this node at.
func (n *Node) RaftAddress() string { return n.cfg.RaftAddress }
