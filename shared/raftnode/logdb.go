package raftnode

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	_ "unsafe" // go:linkname

	"github.com/lni/dragonboat/v4/config"
	"github.com/lni/dragonboat/v4/raftio"
	pb "github.com/lni/dragonboat/v4/raftpb"
)

// The LogDB is dragonboat's default one (sharded pebble v1, its format and
// directory unchanged) behind a wrapper that does not fsync a raft update
// whose only news is a higher commit index.
//
// dragonboat writes and fsyncs every update that changes a replica's hard
// state (term, vote, commit). On a cluster of more than one node the commit
// index of an entry advances in an update of its own, after the entry was
// saved: on the leader when the acknowledgements arrive, on a follower when
// the leader's next message carries the new commit index. So every write
// costs each member two fsyncs, one of them for a number raft does not need
// to be durable: the commit index is volatile state in the raft paper, and a
// restarted member learns it again from the leader (a new leader commits an
// entry of its term, and every entry before it with it). etcd syncs its WAL
// only when entries, the term or the vote change (raft.MustSync) and writes
// the commit index unsynced; measured with strace on a 3-node cluster and
// one serial client, etcd's members fdatasync 1.09 times per put and
// centra's did 2.0 times before this wrapper.
//
// SaveRaftState therefore keeps a batch in memory when every update in it
// carries nothing but a state whose term and vote equal the last state seen
// for that replica, and writes it with the step worker's next batch that
// does need a sync (or at Close). What may be lost in a crash is a commit
// index, never an entry, a term or a vote:
//
//   - a restarted replica then starts from a lower commit index. Its state
//     machine (on disk, synced in its own DB) may be ahead of that index;
//     dragonboat skips entries at or below the state machine's index
//     (onDiskInitIndex), which is how it already copes with FastApply
//     applying committed entries while their commit index is being saved;
//   - the commit index may fall below the index of a snapshot taken before
//     the crash, and dragonboat refuses a commit below the snapshot when it
//     loads the state. A snapshot only holds applied, so committed, entries:
//     ReadRaftState raises the commit index to the snapshot's.
//
// Deferred states are kept per step worker (SaveRaftState's second argument)
// and flushed only by that worker: dragonboat gives every shard one step
// worker, so a deferred state is never written after, and over, a newer
// state of its shard written by another goroutine. The step workers take
// the read lock; the rare calls from other goroutines (RemoveNodeData,
// ImportSnapshot, Close, and the commit floors of StartShard and
// ReadRaftState) take the write lock.

// newDefaultLogDB is dragonboat's default LogDB constructor
// (logdb.DefaultFactory.Create), reached by go:linkname because the factory
// lives in an internal package. A dragonboat upgrade that renames it fails
// the link.
//
//go:linkname newDefaultLogDB github.com/lni/dragonboat/v4/internal/logdb.NewDefaultLogDB
func newDefaultLogDB(config.NodeHostConfig, config.LogDBCallback, []string, []string) (raftio.ILogDB, error)

// logDBFactory is set as NodeHostConfig.Expert.LogDBFactory.
type logDBFactory struct {
	loseDeferred bool // Config.loseDeferredCommits (tests)
	// created receives the LogDB, for StartShard's commit floors.
	created *atomic.Pointer[lazyCommitLogDB]
}

// Name implements config.LogDBFactory. It is the default factory's name:
// dragonboat records it in NodeHostDir and refuses to open a directory
// written under another, and the data written is the default LogDB's.
func (logDBFactory) Name() string { return "sharded-pebble" }

// Create implements config.LogDBFactory.
func (f logDBFactory) Create(nhc config.NodeHostConfig, cb config.LogDBCallback, dirs, walDirs []string) (raftio.ILogDB, error) {
	db, err := newDefaultLogDB(nhc, cb, dirs, walDirs)
	if err != nil {
		return nil, err
	}
	// dragonboat runs this check only when the LogDB is its own type.
	if c, ok := db.(interface{ SelfCheckFailed() (bool, error) }); ok {
		failed, err := c.SelfCheckFailed()
		if err == nil && failed {
			err = errors.New("the LogDB holds raft logs in a format this dragonboat version no longer reads (dragonboat v3.0 breaking change)")
		}
		if err != nil {
			return nil, errors.Join(err, db.Close())
		}
	}
	workers := nhc.Expert.Engine.ExecShards
	if workers == 0 {
		workers = config.GetDefaultEngineConfig().ExecShards
	}
	l := newLazyCommitLogDB(db, workers)
	l.loseDeferred = f.loseDeferred
	if f.created != nil {
		f.created.Store(l)
	}
	return l, nil
}

// replicaKey names one replica's records in the LogDB.
type replicaKey struct{ shard, replica uint64 }

// stepWorkerStates is what one step worker's replicas have saved: the term
// and vote of the last state given to the LogDB (written or deferred), and
// the deferred states.
type stepWorkerStates struct {
	termVote map[replicaKey][2]uint64
	deferred map[replicaKey]pb.State
	// batch is reused to pass a batch with the deferred states appended.
	batch []pb.Update
}

// lazyCommitLogDB is the wrapper described at the top of this file.
type lazyCommitLogDB struct {
	raftio.ILogDB
	// mu is held for reading by SaveRaftState (each step worker touches
	// only its own workers entry) and for writing by everything else
	// that touches workers.
	mu      sync.RWMutex
	workers []stepWorkerStates // index: step worker ID - 1
	// floors are the commit indexes ReadRaftState raises a replica's
	// stored one to (raiseCommitOnLoad), guarded by mu (write lock).
	floors map[replicaKey]uint64
	// loseDeferred makes Close drop the deferred states (tests).
	loseDeferred bool
}

func newLazyCommitLogDB(db raftio.ILogDB, workers uint64) *lazyCommitLogDB {
	l := &lazyCommitLogDB{ILogDB: db, workers: make([]stepWorkerStates, workers), floors: map[replicaKey]uint64{}}
	for i := range l.workers {
		l.workers[i] = stepWorkerStates{termVote: map[replicaKey][2]uint64{}, deferred: map[replicaKey]pb.State{}}
	}
	return l
}

// commitOnly reports whether ud adds nothing to the LogDB but a state that
// differs from the last one seen for its replica in the commit index alone.
func (w *stepWorkerStates) commitOnly(ud *pb.Update) bool {
	if len(ud.EntriesToSave) > 0 || !pb.IsEmptySnapshot(ud.Snapshot) {
		return false
	}
	if pb.IsEmptyState(ud.State) {
		return true
	}
	tv, ok := w.termVote[replicaKey{ud.ShardID, ud.ReplicaID}]
	return ok && tv == [2]uint64{ud.State.Term, ud.State.Vote}
}

// SaveRaftState implements raftio.ILogDB; worker is the calling step
// worker's ID (1-based).
func (l *lazyCommitLogDB) SaveRaftState(updates []pb.Update, worker uint64) error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if worker == 0 || worker > uint64(len(l.workers)) {
		return l.ILogDB.SaveRaftState(updates, worker)
	}
	w := &l.workers[worker-1]
	deferAll := true
	for i := range updates {
		if !w.commitOnly(&updates[i]) {
			deferAll = false
			break
		}
	}
	if deferAll {
		for i := range updates {
			if ud := &updates[i]; !pb.IsEmptyState(ud.State) {
				w.deferred[replicaKey{ud.ShardID, ud.ReplicaID}] = ud.State
			}
		}
		return nil
	}
	batch := updates
	if len(w.deferred) > 0 {
		for i := range updates {
			if ud := &updates[i]; !pb.IsEmptyState(ud.State) {
				delete(w.deferred, replicaKey{ud.ShardID, ud.ReplicaID}) // superseded
			}
		}
		batch = w.withDeferred(updates)
	}
	err := l.ILogDB.SaveRaftState(batch, worker)
	clear(w.batch) // keep no entries alive
	w.batch = w.batch[:0]
	if err != nil {
		return err
	}
	clear(w.deferred)
	for i := range updates {
		if ud := &updates[i]; !pb.IsEmptyState(ud.State) {
			w.termVote[replicaKey{ud.ShardID, ud.ReplicaID}] = [2]uint64{ud.State.Term, ud.State.Vote}
		}
	}
	return nil
}

// withDeferred returns updates followed by one state-only update per
// deferred state, in w.batch; updates itself is left as dragonboat passed
// it.
func (w *stepWorkerStates) withDeferred(updates []pb.Update) []pb.Update {
	if len(w.deferred) == 0 {
		return updates
	}
	w.batch = append(w.batch[:0], updates...)
	for k, st := range w.deferred {
		w.batch = append(w.batch, pb.Update{ShardID: k.shard, ReplicaID: k.replica, State: st})
	}
	return w.batch
}

// raiseCommitOnLoad makes the next ReadRaftState of the replica report a
// commit index of at least applied, the index its state machine's DB holds
// (ShardConfig.StateAppliedIndex): only committed entries are applied, so
// a stored commit index below it was deferred and lost in a crash. Without
// it the replica would restart below its own state, and --force-new-cluster
// would refuse the member (force.go).
func (l *lazyCommitLogDB) raiseCommitOnLoad(shardID, replicaID, applied uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.floors[replicaKey{shardID, replicaID}] = applied
}

// ReadRaftState implements raftio.ILogDB. A stored commit index below the
// replica's latest snapshot (snapshotIndex) or below its floor
// (raiseCommitOnLoad) was deferred and lost in a crash: it is raised to the
// higher of the two, but never beyond the last entry in the log.
func (l *lazyCommitLogDB) ReadRaftState(shardID, replicaID, snapshotIndex uint64) (raftio.RaftState, error) {
	rs, err := l.ILogDB.ReadRaftState(shardID, replicaID, snapshotIndex)
	if err != nil || pb.IsEmptyState(rs.State) {
		return rs, err
	}
	l.mu.Lock()
	floor := l.floors[replicaKey{shardID, replicaID}]
	delete(l.floors, replicaKey{shardID, replicaID})
	l.mu.Unlock()
	last := snapshotIndex
	if rs.EntryCount > 0 {
		last = max(last, rs.FirstIndex+rs.EntryCount-1)
	}
	if c := max(snapshotIndex, min(floor, last)); rs.State.Commit < c {
		rs.State.Commit = c
	}
	return rs, nil
}

// forget drops what is kept for a replica whose records are being removed
// or replaced.
func (l *lazyCommitLogDB) forget(k replicaKey) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.floors, k)
	for i := range l.workers {
		delete(l.workers[i].termVote, k)
		delete(l.workers[i].deferred, k)
	}
}

// RemoveNodeData implements raftio.ILogDB.
func (l *lazyCommitLogDB) RemoveNodeData(shardID, replicaID uint64) error {
	l.forget(replicaKey{shardID, replicaID})
	return l.ILogDB.RemoveNodeData(shardID, replicaID)
}

// ImportSnapshot implements raftio.ILogDB.
func (l *lazyCommitLogDB) ImportSnapshot(ss pb.Snapshot, replicaID uint64) error {
	l.forget(replicaKey{ss.ShardID, replicaID})
	return l.ILogDB.ImportSnapshot(ss, replicaID)
}

// Close implements raftio.ILogDB: it writes the deferred states, so a clean
// restart resumes at the commit index the replicas had reached. dragonboat
// closes the LogDB after its step workers stopped.
func (l *lazyCommitLogDB) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	for i := range l.workers {
		w := &l.workers[i]
		if len(w.deferred) == 0 || l.loseDeferred {
			continue
		}
		if err := l.ILogDB.SaveRaftState(w.withDeferred(nil), uint64(i+1)); err != nil {
			errs = append(errs, fmt.Errorf("write the commit indexes of step worker %d: %w", i+1, err))
		}
		clear(w.deferred)
	}
	return errors.Join(append(errs, l.ILogDB.Close())...)
}
