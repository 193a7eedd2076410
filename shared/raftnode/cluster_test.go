package raftnode

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lni/dragonboat/v4"
	"github.com/lni/dragonboat/v4/statemachine"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// followerOf returns a running member that is not leader.
func (c *cluster) followerOf(leader uint64) *member {
	for id, m := range c.members {
		if id != leader && m.node != nil {
			return m
		}
	}
	c.t.Fatal("no running follower")
	return nil
}

func TestClusterProposeReadRestart(t *testing.T) {
	c := newCluster(t, nil)
	c.bootstrap(3)
	leader, term := c.waitLeader()

	t.Run("leader event and log", func(t *testing.T) {
		for _, m := range c.members {
			eventually(t, 5*time.Second, fmt.Sprintf("leader event on member %d", m.id), func() bool {
				for {
					select {
					case ev := <-m.events:
						if ev.ShardID == testShard && ev.ReplicaID == m.id && ev.LeaderID == leader && ev.Term == term {
							return true
						}
					default:
						return false
					}
				}
			})
		}
		if want := fmt.Sprintf("Leader elected, term=%d", term); !c.logged(want) {
			t.Fatalf("logs lack %q", want)
		}
	})

	// One proposal through every member: followers forward to the leader.
	var last uint64
	for id, m := range c.members {
		idx := c.propose(m, fmt.Sprintf("k%d", id), fmt.Sprintf("v%d", id))
		if idx == 0 {
			t.Fatalf("proposal via %d returned index 0", id)
		}
		last = max(last, idx)
	}

	t.Run("linearizable and stale reads", func(t *testing.T) {
		for _, m := range c.members {
			for id := range c.members {
				v, err := m.node.Read(testCtx(t, 5*time.Second), testShard, fmt.Sprintf("k%d", id))
				if err != nil || v != fmt.Sprintf("v%d", id) {
					t.Fatalf("Read k%d via %d = %v, %v", id, m.id, v, err)
				}
			}
			eventually(t, 5*time.Second, "stale read", func() bool {
				v, err := m.node.StaleRead(testShard, countQuery{})
				return err == nil && v == int64(len(c.members))
			})
		}
	})

	t.Run("status", func(t *testing.T) {
		for _, m := range c.members {
			st, err := m.node.Status(testCtx(t, 5*time.Second), testShard)
			if err != nil {
				t.Fatal(err)
			}
			if st.ReplicaID != m.id || st.LeaderID != leader || st.Term != term {
				t.Fatalf("member %d status %+v, want replica %d leader %d term %d", m.id, st, m.id, leader, term)
			}
			if st.AppliedIndex < last || st.CommitIndex < st.AppliedIndex || st.LastIndex < st.CommitIndex || st.FirstIndex == 0 {
				t.Fatalf("member %d status %+v: want applied >= %d, commit >= applied, last >= commit", m.id, st, last)
			}
		}
	})

	t.Run("deadline required", func(t *testing.T) {
		m := c.members[leader]
		if _, err := m.node.Propose(context.Background(), testShard, []byte("a=b")); !errors.Is(err, ErrNoDeadline) {
			t.Fatalf("Propose without deadline: %v", err)
		}
		if _, err := m.node.Read(context.Background(), testShard, "a"); !errors.Is(err, ErrNoDeadline) {
			t.Fatalf("Read without deadline: %v", err)
		}
		if _, err := m.node.Status(context.Background(), testShard); !errors.Is(err, ErrNoDeadline) {
			t.Fatalf("Status without deadline: %v", err)
		}
		if err := m.node.AddReplica(context.Background(), testShard, 9, "127.0.0.1:9"); !errors.Is(err, ErrNoDeadline) {
			t.Fatalf("AddReplica without deadline: %v", err)
		}
	})

	t.Run("unknown shard", func(t *testing.T) {
		_, err := c.members[leader].node.Propose(testCtx(t, time.Second), 42, []byte("a=b"))
		if !errors.Is(err, ErrShardNotFound) {
			t.Fatalf("Propose on shard 42: %v", err)
		}
	})

	t.Run("restart keeps applied index and data", func(t *testing.T) {
		m := c.followerOf(leader)
		eventually(t, 5*time.Second, "follower applied", func() bool { return m.app.applied.Load() >= last })
		applied := m.app.applied.Load()
		m.stop(t)

		// The persisted index and data, read straight from the state DB.
		db, err := OpenStateDB(m.dir+"/state", nil, c.logger, 0)
		if err != nil {
			t.Fatal(err)
		}
		ks := ShardKeyspace(testShard)
		app := &kvApplier{ks: ks, db: db}
		sm := NewDiskStateMachine(db, ks, app)
		idx, err := sm.Open(make(chan struct{}))
		if err != nil || idx != applied {
			t.Fatalf("Open = %d, %v; want the persisted applied index %d", idx, err, applied)
		}
		if got := app.keys.Load(); got != int64(len(c.members)) {
			t.Fatalf("Load found %d keys, want %d", got, len(c.members))
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}

		c.start(m, ShardConfig{ShardID: testShard, ReplicaID: m.id})
		c.propose(c.members[leader], "after", "restart")
		c.waitRead(m, "after", "restart")
		// Entries up to the persisted index are never applied again.
		if first := m.app.firstApplied.Load(); first <= applied {
			t.Fatalf("restarted replica re-applied entry %d, at or below its persisted index %d", first, applied)
		}
	})

	t.Run("learner catches up from the log, is promoted and restarted", func(t *testing.T) {
		m4 := c.add(4)
		c.open(m4)
		if err := c.members[leader].node.AddNonVoting(testCtx(t, 10*time.Second), testShard, 4, m4.addr); err != nil {
			t.Fatal(err)
		}
		c.startShard(m4, ShardConfig{ShardID: testShard, ReplicaID: 4, Join: true, NonVoting: true})
		c.waitRead(m4, "after", "restart")
		if loads := m4.app.loads.Load(); loads != 1 {
			t.Fatalf("learner Load ran %d times; it should catch up from the log, not a snapshot", loads)
		}
		c.promoteAndRestart(t, c.members[leader], m4)
	})
}

// promoteAndRestart promotes non-voting m to voter, waits for the snapshot
// that makes restarting it as a voter safe, restarts it and checks it serves
// reads.
func (c *cluster) promoteAndRestart(t *testing.T, proposer, m *member) {
	ctx := testCtx(t, 10*time.Second)
	if err := proposer.node.AddReplica(ctx, testShard, m.id, m.addr); err != nil {
		t.Fatal(err)
	}
	ms, err := proposer.node.Membership(ctx, testShard)
	if err != nil {
		t.Fatal(err)
	}
	if ms.Nodes[m.id] != m.addr {
		t.Fatalf("membership after promotion: %+v", ms)
	}
	eventually(t, 5*time.Second, fmt.Sprintf("replica %d sees its promotion", m.id), func() bool {
		st, err := m.node.Status(testCtx(t, time.Second), testShard)
		return err == nil && !st.IsNonVoting
	})
	// Restarting a just-promoted replica as a voter panics while its
	// AddNonVoting entry is in its log; the Node snapshots it on promotion.
	eventually(t, 5*time.Second, fmt.Sprintf("the post-promotion snapshot on replica %d", m.id), func() bool {
		return !m.node.shard(testShard).learner.Load()
	})
	m.stop(t)
	c.start(m, ShardConfig{ShardID: testShard, ReplicaID: m.id})
	key := fmt.Sprintf("promoted%d", m.id)
	c.propose(proposer, key, "yes")
	c.waitRead(m, key, "yes")
}

func TestSnapshotStreamedToNewReplica(t *testing.T) {
	c := newCluster(t, func(cfg *Config) {
		cfg.SnapshotEntries = 10
		cfg.CompactionOverhead = 2
	})
	c.bootstrap(3)
	leaderID, _ := c.waitLeader()
	leader := c.members[leaderID]
	const keys = 60
	for i := range keys {
		c.propose(leader, fmt.Sprintf("key%02d", i), fmt.Sprintf("val%02d", i))
	}
	eventually(t, 10*time.Second, "log compaction on the leader", func() bool {
		st, err := leader.node.Status(testCtx(t, time.Second), testShard)
		return err == nil && st.SnapshotIndex > 0 && st.FirstIndex > 10
	})

	// Replica 4 joins as a learner; the log it needs is gone, so the leader
	// must stream a full snapshot.
	m4 := c.add(4)
	ctx := testCtx(t, 10*time.Second)
	if err := leader.node.AddNonVoting(ctx, testShard, 4, m4.addr); err != nil {
		t.Fatal(err)
	}
	if err := leader.node.AddNonVoting(ctx, testShard, 4, m4.addr); err != nil {
		t.Fatalf("repeated AddNonVoting should be a no-op: %v", err)
	}
	c.start(m4, ShardConfig{ShardID: testShard, ReplicaID: 4, Join: true, NonVoting: true})
	eventually(t, 10*time.Second, "replica 4 catching up", func() bool {
		v, err := m4.node.StaleRead(testShard, countQuery{})
		return err == nil && v == int64(keys)
	})
	if m4.app.loads.Load() < 2 {
		t.Fatalf("replica 4 Load ran %d times; want Open plus RecoverFromSnapshot", m4.app.loads.Load())
	}
	eventually(t, 5*time.Second, "an 'Applied snapshot' log line", func() bool { return c.logged("Applied snapshot, index=") })
	for i := range keys {
		v, err := m4.node.Read(ctx, testShard, fmt.Sprintf("key%02d", i))
		if err != nil || v != fmt.Sprintf("val%02d", i) {
			t.Fatalf("replica 4 key%02d = %v, %v", i, v, err)
		}
	}

	t.Run("promote, snapshot, restart as voter", func(t *testing.T) {
		c.promoteAndRestart(t, leader, m4)
	})

	t.Run("transfer leader", func(t *testing.T) {
		ctx := testCtx(t, 10*time.Second)
		if err := leader.node.TransferLeader(ctx, testShard, 4); err != nil {
			t.Fatal(err)
		}
		if id, _, ok := leader.node.Leader(testShard); !ok || id != 4 {
			t.Fatalf("leader after transfer = %d (%v), want 4", id, ok)
		}
	})

	t.Run("remove replica and refuse its ID", func(t *testing.T) {
		ctx := testCtx(t, 10*time.Second)
		node := m4.node // replica 4 leads now
		victim := c.members[3]
		if victim.id == leaderID {
			victim = c.members[2]
		}
		if err := node.RemoveReplica(ctx, testShard, victim.id); err != nil {
			t.Fatal(err)
		}
		if err := node.RemoveReplica(ctx, testShard, victim.id); err != nil {
			t.Fatalf("repeated RemoveReplica should be a no-op: %v", err)
		}
		err := node.AddReplica(ctx, testShard, victim.id, victim.addr)
		if !errors.Is(err, ErrInvalidMember) {
			t.Fatalf("re-adding removed replica %d: %v, want ErrInvalidMember", victim.id, err)
		}
		err = node.AddReplica(ctx, testShard, 9, c.members[1].addr)
		if !errors.Is(err, ErrInvalidMember) {
			t.Fatalf("adding a second replica at member 1's address: %v, want ErrInvalidMember", err)
		}
	})
}

func TestNoQuorumFailsFast(t *testing.T) {
	for _, survivor := range []string{"leader", "follower"} {
		t.Run(survivor+" survives", func(t *testing.T) {
			c := newCluster(t, nil)
			c.bootstrap(3)
			leaderID, _ := c.waitLeader()
			keep := c.members[leaderID]
			if survivor == "follower" {
				keep = c.followerOf(leaderID)
			}
			c.propose(keep, "before", "outage")
			for _, m := range c.members {
				if m != keep {
					m.stop(t)
				}
			}

			began := time.Now()
			_, err := keep.node.Propose(testCtx(t, 10*time.Second), testShard, []byte("during=outage"))
			if !errors.Is(err, ErrNoLeader) && !errors.Is(err, ErrTimeout) {
				t.Fatalf("Propose without quorum: %v, want ErrNoLeader or ErrTimeout", err)
			}
			if d := time.Since(began); d > 5*time.Second {
				t.Fatalf("Propose without quorum took %v; want a fast failure well before the 10 s deadline", d)
			}
			t.Logf("propose failed after %v: %v", time.Since(began).Round(time.Millisecond), err)

			began = time.Now()
			if _, err := keep.node.Read(testCtx(t, 10*time.Second), testShard, "before"); !errors.Is(err, ErrNoLeader) {
				t.Fatalf("Read without quorum: %v, want ErrNoLeader", err)
			}
			if _, err := keep.node.Membership(testCtx(t, 10*time.Second), testShard); !errors.Is(err, ErrNoLeader) {
				t.Fatalf("Membership without quorum: %v, want ErrNoLeader", err)
			}
			if d := time.Since(began); d > 5*time.Second {
				t.Fatalf("Read and Membership without quorum took %v", d)
			}
			// The local replica still serves stale reads.
			if v, err := keep.node.StaleRead(testShard, "before"); err != nil || v != "outage" {
				t.Fatalf("StaleRead = %v, %v", v, err)
			}
		})
	}
}

func TestStartShardValidation(t *testing.T) {
	logger, _ := testLogger(t)
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := testConfig(logger, dir, addr)
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	node, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db, err := OpenStateDB(dir+"/state", nil, logger, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ks := ShardKeyspace(5)
	create := func(shardID, replicaID uint64) statemachine.IOnDiskStateMachine {
		return NewDiskStateMachine(db, ks, &kvApplier{ks: ks, db: db})
	}
	self := map[uint64]string{1: addr}

	if err := node.StartShard(ShardConfig{ShardID: 5, ReplicaID: 1, InitialMembers: self}, create); !errors.Is(err, ErrNotStarted) {
		t.Fatalf("StartShard before Start: %v", err)
	}
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	defer node.Close()

	cases := []struct {
		name string
		sc   ShardConfig
		want error
	}{
		{"replica ID 0", ShardConfig{ShardID: 5, InitialMembers: map[uint64]string{0: addr}}, ErrInvalidShardConfig},
		{"join with members", ShardConfig{ShardID: 5, ReplicaID: 1, Join: true, InitialMembers: self}, ErrInvalidShardConfig},
		{"non-voting with members", ShardConfig{ShardID: 5, ReplicaID: 1, NonVoting: true, InitialMembers: self}, ErrInvalidShardConfig},
		{"self missing", ShardConfig{ShardID: 5, ReplicaID: 2, InitialMembers: self}, ErrInvalidShardConfig},
		{"self at other address", ShardConfig{ShardID: 5, ReplicaID: 1, InitialMembers: map[uint64]string{1: "127.0.0.1:1"}}, ErrInvalidShardConfig},
		{"duplicate address", ShardConfig{ShardID: 5, ReplicaID: 1, InitialMembers: map[uint64]string{1: addr, 2: addr}}, ErrInvalidShardConfig},
		{"member ID 0", ShardConfig{ShardID: 5, ReplicaID: 1, InitialMembers: map[uint64]string{1: addr, 0: "127.0.0.1:1"}}, ErrInvalidShardConfig},
		{"restart without raft data", ShardConfig{ShardID: 5, ReplicaID: 1}, ErrInvalidShardConfig},
		{"fresh raft over existing state", ShardConfig{ShardID: 5, ReplicaID: 1, InitialMembers: self, StateAppliedIndex: 12}, ErrStateMismatch},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := node.StartShard(tc.sc, create)
			if !errors.Is(err, tc.want) {
				t.Fatalf("StartShard(%+v) = %v, want %v", tc.sc, err, tc.want)
			}
			t.Log(err)
		})
	}
	if err := node.StartShard(ShardConfig{ShardID: 5, ReplicaID: 1, InitialMembers: self}, nil); !errors.Is(err, ErrInvalidShardConfig) {
		t.Fatalf("nil factory: %v", err)
	}

	// A valid single-replica shard works, and starting it twice is refused.
	if err := node.StartShard(ShardConfig{ShardID: 5, ReplicaID: 1, InitialMembers: self}, create); err != nil {
		t.Fatal(err)
	}
	err = node.StartShard(ShardConfig{ShardID: 5, ReplicaID: 1, InitialMembers: self}, create)
	if !errors.Is(err, dragonboat.ErrShardAlreadyExist) {
		t.Fatalf("second StartShard: %v", err)
	}
	res, err := node.Propose(testCtx(t, 5*time.Second), 5, []byte("solo=ok"))
	if err != nil || res.Value == 0 {
		t.Fatalf("Propose on single-replica shard = %+v, %v", res, err)
	}
	if got := histogramCount(t, reg, "raftnode_request_duration_seconds", opPropose); got != 1 {
		t.Fatalf("propose duration histogram counted %d proposals, want 1", got)
	}
	if idx, err := node.RequestSnapshot(testCtx(t, 5*time.Second), 5); err != nil || idx < res.Value {
		t.Fatalf("RequestSnapshot = %d, %v; want an index >= %d", idx, err, res.Value)
	}
	if _, err := node.RequestSnapshot(testCtx(t, 5*time.Second), 5); !errors.Is(err, ErrRejected) {
		t.Fatalf("second RequestSnapshot at the same index: %v, want ErrRejected", err)
	}
	if idx, err := ReadAppliedIndex(db, ks); err != nil || idx < res.Value {
		t.Fatalf("ReadAppliedIndex = %d, %v; want >= %d", idx, err, res.Value)
	}
	if err := node.Close(); err != nil {
		t.Fatal(err)
	}
	if err := node.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := node.Propose(testCtx(t, time.Second), 5, []byte("a=b")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Propose after Close: %v", err)
	}
	if err := node.Start(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start after Close: %v", err)
	}
}

// histogramCount returns the sample count of histogram name{op=op} in reg.
func histogramCount(t *testing.T, reg *prometheus.Registry, name, op string) uint64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "op" && l.GetValue() == op {
					return m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	return 0
}

// TestDeposedLeaderWriteAnswersAfterHeal is the regression test for a
// write held by a leader that was cut off and deposed: the new leader
// never had the entry, dragonboat never reports it dropped, and the write
// used to wait for its deadline once the old leader heard the new one
// before its no-leader limit (a 5 s stall in the fault suite's
// isolate-leader). It must now fail with ErrTimeout (outcome unknown) soon
// after a leader is known again. Here the partition heals as soon as the
// majority elected.
func TestDeposedLeaderWriteAnswersAfterHeal(t *testing.T) {
	o := deposedLeaderWrite(t, nil, func(*member) {})
	if o.sinceCut > 10*time.Second {
		t.Fatalf("write at the deposed leader answered %v after the cut; want about two election timeouts after the heal, far before its 30 s deadline", o.sinceCut)
	}
}

// TestDeposedLeaderWriteAnswersAfterLateHeal heals the partition late: the
// old leader stepped down and then had no leader for three quarters of its
// no-leader limit (2E). The write must answer within graceAfterLeader (E/2)
// or so of the heal; counting the whole 2E from the regained leader stalled
// it for the hold plus 2E (seed 1000 of the fault suite: 3.42 s).
func TestDeposedLeaderWriteAnswersAfterLateHeal(t *testing.T) {
	const rtt = 50 * time.Millisecond // E = 10 ticks = 500 ms, limit 1 s
	limit := 2 * 10 * rtt
	o := deposedLeaderWrite(t, func(cfg *Config) { cfg.RTTMillisecond = uint64(rtt / time.Millisecond) },
		func(old *member) {
			eventually(t, 10*time.Second, "the cut-off leader to step down", func() bool {
				_, _, ok := old.node.Leader(testShard)
				return !ok
			})
			// The fault's schedule, not a wait for a condition: the
			// partition lasts this long after the step-down.
			time.Sleep(limit * 3 / 4)
		})
	// The old code answered a full limit after the old leader heard the
	// new one; the bound answers graceAfterLeader (limit/4) after that,
	// plus the time to hear the new leader once healed (a heartbeat).
	if o.sinceHeal >= limit*3/4 {
		t.Fatalf("write at the deposed leader answered %v after a late heal; want about %v (graceAfterLeader)", o.sinceHeal, graceAfterLeader(limit))
	}
}

// deposedOutcome is how a write at a cut-off leader ended.
type deposedOutcome struct {
	err                 error
	sinceCut, sinceHeal time.Duration
}

// deposedLeaderWrite cuts a 3-replica shard's leader off from its peers,
// proposes a write through it, waits for the majority to elect, calls hold
// with the cut-off leader, heals, and checks that the
// write failed with ErrTimeout (outcome unknown, a leader known) and was
// not applied by the majority.
func deposedLeaderWrite(t *testing.T, tune func(*Config), hold func(old *member)) deposedOutcome {
	t.Helper()
	var isolated atomic.Value // raft address of the node cut off, or ""
	isolated.Store("")
	c := newCluster(t, func(cfg *Config) {
		if tune != nil {
			tune(cfg)
		}
		self := cfg.RaftAddress
		cfg.cut = func(target string) bool {
			iso := isolated.Load().(string)
			return iso != "" && (self == iso || target == iso)
		}
	})
	c.bootstrap(3)
	leaderID, term := c.waitLeader()
	old := c.members[leaderID]
	c.propose(old, "before", "cut")

	isolated.Store(old.addr)
	cut := time.Now()
	type answer struct {
		err error
		at  time.Time
	}
	done := make(chan answer, 1)
	go func() {
		_, err := old.node.Propose(testCtx(t, 30*time.Second), testShard, []byte("during=cut"))
		done <- answer{err, time.Now()}
	}()
	eventually(t, 10*time.Second, "a new leader among the majority", func() bool {
		for _, m := range c.members {
			if m == old {
				continue
			}
			if id, tm, ok := m.node.Leader(testShard); ok && id != leaderID && tm > term {
				return true
			}
		}
		return false
	})
	hold(old)
	isolated.Store("")
	healed := time.Now()
	var o deposedOutcome
	select {
	case a := <-done:
		o = deposedOutcome{err: a.err, sinceCut: a.at.Sub(cut), sinceHeal: a.at.Sub(healed)}
		if !errors.Is(o.err, ErrTimeout) || errors.Is(o.err, ErrNoLeader) {
			t.Fatalf("write at the deposed leader: %v, want ErrTimeout (outcome unknown) with a leader known", o.err)
		}
		t.Logf("write at the deposed leader answered %v after the cut, %v after the heal: %v",
			o.sinceCut.Round(time.Millisecond), o.sinceHeal.Round(time.Millisecond), o.err)
	case <-time.After(20 * time.Second):
		t.Fatal("write at the deposed leader not answered 20 s after the heal (its deadline is 30 s)")
	}
	// The entry was never replicated: the new leader's log wins.
	if v, err := c.members[c.followerOf(leaderID).id].node.StaleRead(testShard, "during"); err == nil && v == "cut" {
		t.Fatal("the cut-off leader's write was applied by the majority")
	}
	return o
}
