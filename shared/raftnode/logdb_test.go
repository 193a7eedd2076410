package raftnode

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/lni/dragonboat/v4/config"
	pb "github.com/lni/dragonboat/v4/raftpb"
	"github.com/lni/dragonboat/v4/statemachine"
)

// openTestLogDB opens dragonboat's default LogDB in dir through
// logDBFactory, as NewNodeHost does.
func openTestLogDB(t *testing.T, dir string) *lazyCommitLogDB {
	t.Helper()
	nhc := config.NodeHostConfig{NodeHostDir: dir, RTTMillisecond: 100, RaftAddress: "127.0.0.1:1"}
	nhc.Expert.LogDB = config.GetTinyMemLogDBConfig()
	if err := nhc.Prepare(); err != nil {
		t.Fatal(err)
	}
	db, err := logDBFactory{}.Create(nhc, func(config.LogDBInfo) {}, []string{dir}, []string{dir})
	if err != nil {
		t.Fatal(err)
	}
	return db.(*lazyCommitLogDB)
}

func entries(term uint64, from, to uint64) []pb.Entry {
	var es []pb.Entry
	for i := from; i <= to; i++ {
		es = append(es, pb.Entry{Term: term, Index: i, Cmd: []byte("x")})
	}
	return es
}

// TestLogDBDefersCommitOnlyStates checks, on dragonboat's real LogDB, which
// states are written at once and which wait for the step worker's next
// write, and what a crash loses.
func TestLogDBDefersCommitOnlyStates(t *testing.T) {
	dir := t.TempDir()
	db := openTestLogDB(t, dir)
	save := func(worker uint64, uds ...pb.Update) {
		t.Helper()
		if err := db.SaveRaftState(uds, worker); err != nil {
			t.Fatal(err)
		}
	}
	state := func(db *lazyCommitLogDB, shard uint64) pb.State {
		t.Helper()
		rs, err := db.ReadRaftState(shard, 1, 0)
		if err != nil {
			t.Fatal(err)
		}
		return rs.State
	}
	want := func(db *lazyCommitLogDB, shard uint64, w pb.State, why string) {
		t.Helper()
		if got := state(db, shard); got != w {
			t.Fatalf("shard %d: stored state %+v, want %+v (%s)", shard, got, w, why)
		}
	}

	// Shards 1 and 17 belong to step worker 1, shard 3 to worker 2 (a
	// worker's shards share a LogDB partition: shard ID modulo 16).
	for shard, worker := range map[uint64]uint64{1: 1, 17: 1, 3: 2} {
		save(worker, pb.Update{ShardID: shard, ReplicaID: 1, State: pb.State{Term: 2, Vote: 1}, EntriesToSave: entries(2, 1, 3)})
	}
	want(db, 1, pb.State{Term: 2, Vote: 1}, "a first state is written")

	save(1, pb.Update{ShardID: 1, ReplicaID: 1, State: pb.State{Term: 2, Vote: 1, Commit: 3}})
	want(db, 1, pb.State{Term: 2, Vote: 1}, "a commit-only state waits")

	save(1, pb.Update{ShardID: 1, ReplicaID: 1, State: pb.State{Term: 3, Vote: 2, Commit: 3}})
	want(db, 1, pb.State{Term: 3, Vote: 2, Commit: 3}, "a new term and vote are written at once")

	save(1, pb.Update{ShardID: 1, ReplicaID: 1, State: pb.State{Term: 3, Vote: 2, Commit: 3}, EntriesToSave: entries(3, 4, 4)})
	save(1, pb.Update{ShardID: 1, ReplicaID: 1, State: pb.State{Term: 3, Vote: 2, Commit: 4}},
		pb.Update{ShardID: 17, ReplicaID: 1, State: pb.State{Term: 2, Vote: 1, Commit: 2}})
	save(2, pb.Update{ShardID: 3, ReplicaID: 1, State: pb.State{Term: 2, Vote: 1, Commit: 3}})
	want(db, 1, pb.State{Term: 3, Vote: 2, Commit: 3}, "deferred")
	want(db, 3, pb.State{Term: 2, Vote: 1}, "deferred")

	// Worker 1's next write carries shard 1's and 17's deferred states;
	// worker 2's stays deferred.
	save(1, pb.Update{ShardID: 17, ReplicaID: 1, EntriesToSave: entries(2, 4, 4)})
	want(db, 1, pb.State{Term: 3, Vote: 2, Commit: 4}, "flushed by the worker's next write")
	want(db, 17, pb.State{Term: 2, Vote: 1, Commit: 2}, "flushed by the worker's next write")
	want(db, 3, pb.State{Term: 2, Vote: 1}, "another worker's write does not flush it")

	// A newer state in the writing batch supersedes the deferred one.
	save(1, pb.Update{ShardID: 1, ReplicaID: 1, State: pb.State{Term: 3, Vote: 2, Commit: 5}})
	save(1, pb.Update{ShardID: 1, ReplicaID: 1, State: pb.State{Term: 3, Vote: 2, Commit: 5}, EntriesToSave: entries(3, 5, 6)})
	want(db, 1, pb.State{Term: 3, Vote: 2, Commit: 5}, "written with the entries")

	// A crash loses worker 2's deferred commit index, nothing else.
	save(1, pb.Update{ShardID: 1, ReplicaID: 1, State: pb.State{Term: 3, Vote: 2, Commit: 6}})
	if err := db.ILogDB.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTestLogDB(t, dir)
	want(db, 1, pb.State{Term: 3, Vote: 2, Commit: 5}, "the deferred commit index 6 was lost in the crash")
	want(db, 3, pb.State{Term: 2, Vote: 1}, "the deferred commit index 3 was lost in the crash")
	rs, err := db.ReadRaftState(1, 1, 0)
	if err != nil || rs.EntryCount != 6 {
		t.Fatalf("after the crash shard 1 has %d entries (%v), want all 6", rs.EntryCount, err)
	}

	// ReadRaftState raises a commit index below the snapshot's.
	rs, err = db.ReadRaftState(3, 1, 2)
	if err != nil || rs.State.Commit != 2 {
		t.Fatalf("ReadRaftState(snapshot index 2) = %+v, %v; want commit 2", rs.State, err)
	}

	// Close writes what is deferred.
	save(2, pb.Update{ShardID: 3, ReplicaID: 1, State: pb.State{Term: 2, Vote: 1}})
	save(2, pb.Update{ShardID: 3, ReplicaID: 1, State: pb.State{Term: 2, Vote: 1, Commit: 3}})
	want(db, 3, pb.State{Term: 2, Vote: 1}, "deferred")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTestLogDB(t, dir)
	defer db.Close()
	want(db, 3, pb.State{Term: 2, Vote: 1, Commit: 3}, "written by Close")
}

// crashedCluster bootstraps a 3-member shard whose members drop their
// deferred commit indexes when stopped, as a crash would, writes n keys
// k0..k<n-1>, runs before on every member once it applied them, and stops
// every member. It returns the cluster and each member's applied index.
func crashedCluster(t *testing.T, n int, before func(m *member)) (*cluster, map[uint64]uint64) {
	c := newCluster(t, func(cfg *Config) { cfg.loseDeferredCommits = true })
	c.bootstrap(3)
	leader, _ := c.waitLeader()
	for i := range n {
		c.propose(c.members[leader], fmt.Sprintf("k%d", i), "v")
	}
	applied := map[uint64]uint64{}
	for _, m := range c.members {
		c.waitRead(m, fmt.Sprintf("k%d", n-1), "v")
		if before != nil {
			before(m)
		}
		applied[m.id] = m.app.applied.Load()
	}
	for _, m := range c.members {
		m.stop(t)
	}
	return c, applied
}

// storedLogState returns what a stopped member's LogDB holds: the commit
// index (as stored, not raised) and the latest snapshot's index.
func storedLogState(t *testing.T, m *member) (commit, snapshot uint64) {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join(m.dir, "raft", "*", "*", "logdb-0"))
	if err != nil || len(dirs) != 1 {
		t.Fatalf("member %d: LogDB dir: %v, %v", m.id, dirs, err)
	}
	db := openTestLogDB(t, filepath.Dir(dirs[0]))
	defer func() {
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}()
	ss, err := db.GetSnapshot(testShard, m.id)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := db.ILogDB.ReadRaftState(testShard, m.id, ss.Index)
	if err != nil {
		t.Fatal(err)
	}
	return rs.State.Commit, ss.Index
}

// TestRestartAfterLosingDeferredCommits stops every member of a shard as
// a crash of all of them would, dropping the commit indexes their LogDBs
// deferred, and restarts them: each comes back with a stored commit index
// below its state machine's applied index and its latest snapshot's index,
// and every acknowledged write is still read back from every member.
func TestRestartAfterLosingDeferredCommits(t *testing.T) {
	const n = 20
	c, applied := crashedCluster(t, n, func(m *member) {
		if _, err := m.node.RequestSnapshot(testCtx(t, 10*time.Second), testShard); err != nil {
			t.Fatalf("snapshot on member %d: %v", m.id, err)
		}
	})
	behind := 0
	for _, m := range c.members {
		commit, snapshot := storedLogState(t, m)
		t.Logf("member %d: LogDB commit %d, snapshot %d, applied %d", m.id, commit, snapshot, applied[m.id])
		if commit < snapshot {
			behind++
		}
	}
	if behind == 0 {
		t.Fatal("no member's LogDB commit index is below its snapshot: the test did not set up what it checks")
	}
	for _, m := range c.members {
		c.open(m)
	}
	for _, m := range c.members {
		c.startShard(m, ShardConfig{ShardID: testShard, ReplicaID: m.id})
	}
	leader, _ := c.waitLeader()
	c.propose(c.members[leader], "after", "restart")
	for _, m := range c.members {
		for i := range n {
			c.waitRead(m, fmt.Sprintf("k%d", i), "v")
		}
		c.waitRead(m, "after", "restart")
		if first := m.app.firstApplied.Load(); first <= applied[m.id] {
			t.Fatalf("member %d re-applied entry %d, at or below its applied index %d", m.id, first, applied[m.id])
		}
	}
}

// TestForceNewClusterAfterLosingDeferredCommits crashes every member of a
// shard so that the survivor's stored commit index is below what its state
// DB applied, and recovers from it alone: ForceNewCluster must accept it
// (the commit index is raised to the applied index at load) and keep every
// acknowledged write.
func TestForceNewClusterAfterLosingDeferredCommits(t *testing.T) {
	const n = 20
	c, applied := crashedCluster(t, n, nil)
	// The leader's stored commit index is always behind: its last entry
	// was committed by the followers' acknowledgements, a commit-only
	// update. A follower's may not be, when the leader resent it entries
	// together with their commit index.
	var m *member
	for _, id := range slices.Sorted(maps.Keys(c.members)) {
		commit, _ := storedLogState(t, c.members[id])
		t.Logf("member %d: LogDB commit %d, applied %d", id, commit, applied[id])
		if m == nil && commit < applied[id] {
			m = c.members[id]
		}
	}
	if m == nil {
		t.Fatal("no member's LogDB commit index is below its applied index: the test did not set up what it checks")
	}
	cfg := testConfig(c.logger.With("member", m.id), m.dir, m.addr)
	node, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db, err := OpenStateDB(filepath.Join(m.dir, "state"), &pebble.Options{}, c.logger, 0)
	if err != nil {
		t.Fatal(err)
	}
	ks := ShardKeyspace(testShard)
	err = node.ForceNewCluster(testCtx(t, time.Minute), ShardConfig{ShardID: testShard, ReplicaID: m.id, StateAppliedIndex: applied[m.id]},
		func(uint64, uint64) statemachine.IOnDiskStateMachine {
			return NewDiskStateMachine(db, ks, &kvApplier{ks: ks, db: db})
		})
	if cerr := db.Close(); cerr != nil {
		t.Fatal(cerr)
	}
	if err != nil {
		t.Fatalf("ForceNewCluster on a member whose stored commit index is below its applied index: %v", err)
	}
	c.start(m, ShardConfig{ShardID: testShard, ReplicaID: m.id})
	for i := range n {
		c.waitRead(m, fmt.Sprintf("k%d", i), "v")
	}
}
