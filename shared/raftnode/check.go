package raftnode

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	pebblev1 "github.com/cockroachdb/pebble"
	sstablev1 "github.com/cockroachdb/pebble/sstable"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
	pb "github.com/lni/dragonboat/v4/raftpb"
)

// This file holds the offline checks of a stopped node's data directory
// (`centra debug check`): they open everything read-only and report what
// is wrong instead of failing at the first problem. DESIGN.md "Offline
// checks" explains what each one proves.

// ErrInUse is returned when a directory is locked by a running process.
var ErrInUse = errors.New("raftnode: the data directory is in use by a running process")

// CheckNotRunning returns ErrInUse when a process holds the lock of the
// pebble DB in dir (pebble's LOCK file, an fcntl lock, as both pebble
// versions take it). A missing directory is not in use.
func CheckNotRunning(dir string) error {
	path := filepath.Join(dir, "LOCK")
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	l, err := vfs.Default.Lock(path)
	if err != nil {
		return fmt.Errorf("%w: %s is locked (%v)", ErrInUse, path, err)
	}
	return l.Close()
}

// SSTProblem is one table file that failed verification.
type SSTProblem struct {
	Path string
	Err  error
}

// CheckSSTables verifies the block checksums of every table file (*.sst)
// directly in dirs: the state DB's with pebble/v2's reader, those of
// dragonboat's LogDB partitions (directories named logdb-N, written by
// dragonboat's pebble) with that pebble's reader. progress is called after
// each file with the files and bytes done so far and in total. It returns
// the number of files checked and the ones that failed.
func CheckSSTables(dirs []string, progress func(files, totalFiles int, bytes, totalBytes int64)) (int, []SSTProblem, error) {
	type table struct {
		path string
		size int64
	}
	var tables []table
	var total int64
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return 0, nil, fmt.Errorf("raftnode: list the table files in %s: %w", dir, err)
		}
		for _, e := range entries {
			if e.IsDir() || !strings.HasSuffix(e.Name(), ".sst") {
				continue
			}
			info, err := e.Info()
			if err != nil {
				return 0, nil, err
			}
			tables = append(tables, table{filepath.Join(dir, e.Name()), info.Size()})
			total += info.Size()
		}
	}
	var problems []SSTProblem
	var done int64
	for i, t := range tables {
		var err error
		if strings.HasPrefix(filepath.Base(filepath.Dir(t.path)), "logdb-") {
			err = validateV1Table(t.path)
		} else {
			err = validateTable(t.path)
		}
		if err != nil {
			problems = append(problems, SSTProblem{Path: t.path, Err: err})
		}
		done += t.size
		if progress != nil {
			progress(i+1, len(tables), done, total)
		}
	}
	return len(tables), problems, nil
}

// validateTable reads every block of a pebble/v2 table and checks its
// checksum.
func validateTable(path string) error {
	f, err := vfs.Default.Open(path)
	if err != nil {
		return err
	}
	readable, err := sstable.NewSimpleReadable(f)
	if err != nil {
		f.Close()
		return err
	}
	opts := &pebble.Options{}
	opts.EnsureDefaults()
	r, err := sstable.NewReader(context.Background(), readable, opts.MakeReaderOptions())
	if err != nil {
		readable.Close()
		return err
	}
	defer r.Close()
	return r.ValidateBlockChecksums()
}

// validateV1Table is validateTable for a table of dragonboat's LogDB.
func validateV1Table(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	r, err := sstablev1.NewReader(f, sstablev1.ReaderOptions{})
	if err != nil {
		f.Close()
		return err
	}
	defer r.Close()
	return r.ValidateBlockChecksums()
}

// checkLogger is pebble's logger during a check: quiet, and Fatalf panics
// (pebble does not expect it to return); the check recovers the panic and
// reports it.
type checkLogger struct{}

func (checkLogger) Infof(string, ...any)  {}
func (checkLogger) Errorf(string, ...any) {}
func (checkLogger) Fatalf(format string, args ...any) {
	panic(fmt.Errorf("pebble: "+format, args...))
}

// recoverPanic turns a panic of pebble during a check into *err.
func recoverPanic(what string, err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("raftnode: %s: %v", what, r)
	}
}

// OpenStateDBReadOnly opens the state DB in dir read-only for a check: the
// WAL is replayed into memory, nothing is written, no background work runs.
func OpenStateDBReadOnly(dir string) (db *pebble.DB, err error) {
	defer recoverPanic("open the state DB "+dir, &err)
	if m, _ := filepath.Glob(filepath.Join(dir, "MANIFEST-*")); len(m) == 0 {
		return nil, fmt.Errorf("raftnode: %s holds no pebble DB (no MANIFEST file)", dir)
	}
	db, err = pebble.Open(dir, &pebble.Options{ReadOnly: true, DisableTableStats: true, Logger: checkLogger{}})
	if err != nil {
		return nil, fmt.Errorf("raftnode: open the state DB %s read-only: %w", dir, err)
	}
	return db, nil
}

// CheckLevels reads every key of db and checks pebble's LSM invariants (keys
// ordered within tables, levels consistent, range deletions sane); it
// returns the number of point keys read.
func CheckLevels(db *pebble.DB) (points int64, err error) {
	defer recoverPanic("check the state DB's levels", &err)
	var stats pebble.CheckLevelsStats
	err = db.CheckLevels(&stats)
	return stats.NumPoints, err
}

// ShardLog describes one replica's raft log in dragonboat's LogDB.
type ShardLog struct {
	ShardID, ReplicaID uint64
	// FirstIndex and LastIndex bound the log entries in use (LastIndex is
	// dragonboat's max index; entries above it were overwritten).
	FirstIndex, LastIndex uint64
	// SnapshotIndex is the index of the newest snapshot record (0 if none).
	SnapshotIndex uint64
	// Commit and Term come from the persisted raft state.
	Commit, Term uint64
	// Entries is the number of entries read and decoded.
	Entries int
	// Problems found in this replica's log.
	Problems []string
}

// logKey is what CheckRaftLog needs of a LogDB key (dragonboat's
// internal/logdb/key.go): a 2-byte type header, 2 zero bytes, be64 shard
// ID, be64 replica ID and, for entries and snapshots, be64 index.
type logKey struct {
	kind               byte
	shardID, replicaID uint64
	index              uint64
}

// LogDB key types (the header's first byte, repeated in its second).
const (
	logEntry     = 0x01
	logState     = 0x02
	logMaxIndex  = 0x03
	logSnapshot  = 0x05
	logBatch     = 0x07
	logKeyPrefix = 20
)

func parseLogKey(k []byte) (logKey, bool) {
	if len(k) < logKeyPrefix || k[0] != k[1] {
		return logKey{}, false
	}
	lk := logKey{kind: k[0], shardID: binary.BigEndian.Uint64(k[4:]), replicaID: binary.BigEndian.Uint64(k[12:])}
	if len(k) == logKeyPrefix+8 {
		lk.index = binary.BigEndian.Uint64(k[20:])
	}
	return lk, true
}

// CheckRaftLog opens every partition of dragonboat's LogDB under
// nodeHostDir read-only (dragonboat's default sharded-pebble LogDB; the
// layout of v4.0.0-20250723143628-076c7f6497dc), decodes every entry, the
// raft state and the snapshot records, and checks per replica that the
// entries from the snapshot up to the last index are all there, in order,
// each with its own index, and that the commit index lies within the log.
// progress is called after each partition.
func CheckRaftLog(nodeHostDir string, progress func(done, total int)) ([]*ShardLog, error) {
	dirs, err := filepath.Glob(filepath.Join(nodeHostDir, "*", "*", "logdb-*"))
	if err != nil {
		return nil, err
	}
	if len(dirs) == 0 {
		return nil, fmt.Errorf("raftnode: no dragonboat LogDB (logdb-N directories) under %s", nodeHostDir)
	}
	logs := map[[2]uint64]*ShardLog{}
	entries := map[[2]uint64][]uint64{} // indexes of the entries, in key order
	for i, dir := range dirs {
		if err := readLogPartition(dir, logs, entries); err != nil {
			return nil, err
		}
		if progress != nil {
			progress(i+1, len(dirs))
		}
	}
	out := make([]*ShardLog, 0, len(logs))
	for id, l := range logs {
		l.checkEntries(entries[id])
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].ShardID != out[j].ShardID {
			return out[i].ShardID < out[j].ShardID
		}
		return out[i].ReplicaID < out[j].ReplicaID
	})
	return out, nil
}

// readLogPartition reads one LogDB partition into logs and entries.
func readLogPartition(dir string, logs map[[2]uint64]*ShardLog, entries map[[2]uint64][]uint64) (err error) {
	defer recoverPanic("read the raft log in "+dir, &err)
	db, err := pebblev1.Open(dir, &pebblev1.Options{ReadOnly: true, Logger: checkLogger{}})
	if err != nil {
		return fmt.Errorf("raftnode: open the raft log partition %s read-only: %w", dir, err)
	}
	defer db.Close()
	it := db.NewIter(nil)
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		k, ok := parseLogKey(it.Key())
		if !ok {
			continue
		}
		id := [2]uint64{k.shardID, k.replicaID}
		l := logs[id]
		if l == nil {
			l = &ShardLog{ShardID: k.shardID, ReplicaID: k.replicaID}
			logs[id] = l
		}
		v := it.Value()
		switch k.kind {
		case logEntry:
			var e pb.Entry
			if err := e.Unmarshal(v); err != nil {
				l.Problems = append(l.Problems, fmt.Sprintf("entry %d does not decode: %v", k.index, err))
				continue
			}
			if e.Index != k.index {
				l.Problems = append(l.Problems, fmt.Sprintf("the entry stored at index %d says it is index %d", k.index, e.Index))
			}
			entries[id] = append(entries[id], k.index)
		case logBatch:
			var b pb.EntryBatch
			if err := b.Unmarshal(v); err != nil {
				l.Problems = append(l.Problems, fmt.Sprintf("entry batch %d does not decode: %v", k.index, err))
				continue
			}
			for _, e := range b.Entries {
				entries[id] = append(entries[id], e.Index)
			}
		case logState:
			var st pb.State
			if err := st.Unmarshal(v); err != nil {
				l.Problems = append(l.Problems, fmt.Sprintf("the raft state (term, vote, commit) does not decode: %v", err))
				continue
			}
			l.Commit, l.Term = st.Commit, st.Term
		case logMaxIndex:
			if len(v) != 8 {
				l.Problems = append(l.Problems, fmt.Sprintf("the max index record has %d bytes, want 8", len(v)))
				continue
			}
			l.LastIndex = binary.BigEndian.Uint64(v)
		case logSnapshot:
			var ss pb.Snapshot
			if err := ss.Unmarshal(v); err != nil {
				l.Problems = append(l.Problems, fmt.Sprintf("snapshot record %d does not decode: %v", k.index, err))
				continue
			}
			l.SnapshotIndex = max(l.SnapshotIndex, ss.Index)
		}
	}
	return it.Error()
}

// checkEntries checks that indexes (the stored entries) hold every index
// from the snapshot (or the first entry) to LastIndex, and that the commit
// index lies within the log.
func (l *ShardLog) checkEntries(indexes []uint64) {
	sort.Slice(indexes, func(i, j int) bool { return indexes[i] < indexes[j] })
	l.Entries = len(indexes)
	var used []uint64 // the entries dragonboat reads: (snapshot, last]
	for _, ix := range indexes {
		if ix > l.SnapshotIndex && ix <= l.LastIndex {
			used = append(used, ix)
		}
	}
	if l.LastIndex > l.SnapshotIndex {
		switch {
		case len(used) == 0:
			l.Problems = append(l.Problems, fmt.Sprintf("entries %d..%d are missing (the last index is %d, the snapshot is at %d)", l.SnapshotIndex+1, l.LastIndex, l.LastIndex, l.SnapshotIndex))
		case used[0] > l.SnapshotIndex+1:
			l.Problems = append(l.Problems, fmt.Sprintf("entries %d..%d are missing between the snapshot at %d and the first entry", l.SnapshotIndex+1, used[0]-1, l.SnapshotIndex))
		}
		for i := 1; i < len(used); i++ {
			if used[i] != used[i-1]+1 {
				l.Problems = append(l.Problems, fmt.Sprintf("entries %d..%d are missing", used[i-1]+1, used[i]-1))
			}
		}
		if len(used) > 0 && used[len(used)-1] != l.LastIndex {
			l.Problems = append(l.Problems, fmt.Sprintf("entries %d..%d are missing at the end of the log", used[len(used)-1]+1, l.LastIndex))
		}
	}
	l.FirstIndex = l.SnapshotIndex + 1
	if len(used) > 0 && used[0] > l.FirstIndex {
		l.FirstIndex = used[0]
	}
	if last := max(l.LastIndex, l.SnapshotIndex); l.Commit > last {
		l.Problems = append(l.Problems, fmt.Sprintf("the commit index %d is beyond the last log index %d", l.Commit, last))
	}
}
