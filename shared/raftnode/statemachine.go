package raftnode

import (
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/lni/dragonboat/v4/statemachine"
)

// Applier is the application logic of one shard, driven by
// DiskStateMachine. It owns the data subspace of its Keyspace.
type Applier interface {
	// Load rebuilds in-memory state from persisted data. It is called by
	// Open and after RecoverFromSnapshot replaced the shard's data; Lookup
	// may run concurrently with it.
	Load(r pebble.Reader) error
	// Apply applies committed entries, in order, into b: an indexed batch,
	// so later entries see earlier writes through b.Get and b.NewIter. It
	// must set every entries[i].Result and be deterministic: same entries,
	// same state and results on every replica (no clocks, no randomness).
	// Report a bad command in its Result; return an error only for failures
	// that must stop the process (I/O errors): dragonboat panics on it.
	Apply(b *pebble.Batch, entries []statemachine.Entry) error
	// Applied is called after the batch holding entries up to index was
	// committed to pebble. It runs on the apply path: it must not block for
	// long (e.g. notify watchers through a buffered channel).
	Applied(index uint64)
	// Lookup serves reads; it runs concurrently with Apply and Load.
	Lookup(query any) (any, error)
}

// DiskStateMachine implements dragonboat's IOnDiskStateMachine over the
// shared pebble/v2 state DB for one shard:
//
//   - Open returns the persisted applied index (and calls Load);
//   - Update applies all entries plus the applied index in one indexed
//     batch committed with pebble.NoSync (prefix durability: a lost entry
//     implies every later one is lost too), then calls Applied;
//   - Sync makes everything durable with one synced WAL write;
//   - PrepareSnapshot takes a pebble snapshot; SaveSnapshot streams every key
//     of the shard (format in DESIGN.md) and honours done;
//   - RecoverFromSnapshot verifies the stream's checksum before it touches
//     data, then replaces the shard's keys atomically in one synced batch
//     and calls Load.
//
// Errors returned by Update, SaveSnapshot and RecoverFromSnapshot make
// dragonboat panic the process (the replica cannot continue consistently);
// the state is left as it was before the failing call. Close does not close
// the shared DB.
type DiskStateMachine struct {
	smCore
}

// smCore is the part of the on-disk state machine shared by
// DiskStateMachine and RangeStateMachine: Open, Update, Lookup, Sync,
// PrepareSnapshot, Close and the applied index, kept under ks's meta
// subspace. Only the snapshot stream differs between the two.
type smCore struct {
	db         *pebble.DB
	ks         Keyspace
	app        Applier
	appliedKey []byte
	appliedBuf [9]byte // value buffer, used by Update only
	applied    atomic.Uint64
}

var (
	_ statemachine.IOnDiskStateMachine = (*DiskStateMachine)(nil)
	_ AppliedIndexReporter             = (*DiskStateMachine)(nil)
)

// syncMarker is the WAL record Sync writes; syncing it syncs every earlier
// record.
var syncMarker = []byte("raftnode-sync")

// NewDiskStateMachine returns the state machine of ks's shard over db, the
// DB from OpenStateDB shared by every shard of the node. Return it from the
// factory given to Node.StartShard.
func NewDiskStateMachine(db *pebble.DB, ks Keyspace, app Applier) *DiskStateMachine {
	s := &DiskStateMachine{}
	s.init(db, ks, app)
	return s
}

func (s *smCore) init(db *pebble.DB, ks Keyspace, app Applier) {
	s.db, s.ks, s.app, s.appliedKey = db, ks, app, ks.metaKey(metaApplied)
}

// AppliedIndex returns the last applied index; safe for concurrent use.
func (s *smCore) AppliedIndex() uint64 { return s.applied.Load() }

// Open implements IOnDiskStateMachine: it loads the Applier and returns the
// persisted applied index (0 for a new shard).
func (s *smCore) Open(stopc <-chan struct{}) (uint64, error) {
	idx, err := ReadAppliedIndex(s.db, s.ks)
	if err != nil {
		return 0, err
	}
	select {
	case <-stopc:
		return 0, statemachine.ErrOpenStopped
	default:
	}
	if err := s.app.Load(s.db); err != nil {
		return 0, fmt.Errorf("raftnode: shard %d: load state: %w", s.ks.shardID, err)
	}
	s.applied.Store(idx)
	return idx, nil
}

// Update implements IOnDiskStateMachine.
func (s *smCore) Update(entries []statemachine.Entry) ([]statemachine.Entry, error) {
	if len(entries) == 0 {
		return entries, nil
	}
	first, last := entries[0].Index, entries[len(entries)-1].Index
	b := s.db.NewIndexedBatch()
	defer b.Close()
	if err := s.app.Apply(b, entries); err != nil {
		return nil, fmt.Errorf("raftnode: shard %d: apply entries %d..%d: %w", s.ks.shardID, first, last, err)
	}
	if err := b.Set(s.appliedKey, encodeApplied(&s.appliedBuf, last), nil); err != nil {
		return nil, fmt.Errorf("raftnode: shard %d: stage applied index %d: %w", s.ks.shardID, last, err)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return nil, fmt.Errorf("raftnode: shard %d: commit entries %d..%d: %w", s.ks.shardID, first, last, err)
	}
	s.applied.Store(last)
	s.app.Applied(last)
	return entries, nil
}

// Lookup implements IOnDiskStateMachine by calling the Applier.
func (s *smCore) Lookup(query any) (any, error) { return s.app.Lookup(query) }

// Sync implements IOnDiskStateMachine: one synced WAL write makes every
// earlier NoSync commit durable.
func (s *smCore) Sync() error {
	if err := s.db.LogData(syncMarker, pebble.Sync); err != nil {
		return fmt.Errorf("raftnode: shard %d: sync state DB: %w", s.ks.shardID, err)
	}
	return nil
}

// PrepareSnapshot implements IOnDiskStateMachine: it returns a pebble
// snapshot, the point-in-time view SaveSnapshot streams.
func (s *smCore) PrepareSnapshot() (any, error) { return s.db.NewSnapshot(), nil }

// reload re-reads the applied index and calls Load after a snapshot replaced
// the shard's state.
func (s *smCore) reload() error {
	idx, err := ReadAppliedIndex(s.db, s.ks)
	if err != nil {
		return err
	}
	if err := s.app.Load(s.db); err != nil {
		return fmt.Errorf("raftnode: shard %d: load state after snapshot: %w", s.ks.shardID, err)
	}
	s.applied.Store(idx)
	return nil
}

// Close implements IOnDiskStateMachine. It does not close the shared DB:
// close it after Node.Close.
func (s *smCore) Close() error { return nil }

// SaveSnapshot implements IOnDiskStateMachine: it streams every key of the
// shard from the snapshot returned by PrepareSnapshot and releases it.
func (s *DiskStateMachine) SaveSnapshot(ctx any, w io.Writer, done <-chan struct{}) error {
	snap, ok := ctx.(*pebble.Snapshot)
	if !ok {
		return fmt.Errorf("raftnode: shard %d: SaveSnapshot got %T, want the *pebble.Snapshot from PrepareSnapshot", s.ks.shardID, ctx)
	}
	defer snap.Close()
	return writeSnapshot(w, snap, s.ks, done)
}

// RecoverFromSnapshot implements IOnDiskStateMachine. The whole stream is
// staged in a batch whose first operation deletes the shard's keys; the
// batch is committed (synced) only after the checksum matched, so a corrupt
// stream leaves the state untouched.
func (s *DiskStateMachine) RecoverFromSnapshot(r io.Reader, done <-chan struct{}) error {
	b := s.db.NewBatch()
	defer b.Close()
	lower, upper := s.ks.ShardBounds()
	if err := b.DeleteRange(lower, upper, nil); err != nil {
		return fmt.Errorf("raftnode: shard %d: stage snapshot: %w", s.ks.shardID, err)
	}
	if err := readSnapshot(r, s.ks, b, done); err != nil {
		if errors.Is(err, statemachine.ErrSnapshotStopped) {
			return err
		}
		return fmt.Errorf("raftnode: shard %d: recover from snapshot (state left unchanged): %w", s.ks.shardID, err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("raftnode: shard %d: commit snapshot: %w", s.ks.shardID, err)
	}
	return s.reload()
}
