package chainfire

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/centra-cloud/centra/chainfire/internal/mvcc"
)

// stateHash is a hash of the state at a revision with the counters it was
// taken at.
type stateHash struct {
	hash                    uint32
	rev, compacted, current int64
}

// hashKV hashes the key-value history at rev (0 = newest) on a pebble
// snapshot, so writes applied meanwhile do not change the answer.
func (f *fsm) hashKV(rev int64) (stateHash, error) {
	snap := f.db.NewSnapshot()
	defer snap.Close()
	m, err := f.st.LoadMeta(snap)
	if err != nil {
		return stateHash{}, err
	}
	switch {
	case rev <= 0:
		rev = m.Revision
	case rev > m.Revision:
		return stateHash{}, ErrFutureRev
	case rev < m.Compacted:
		return stateHash{}, ErrCompacted
	}
	h, err := f.st.HashKV(snap, rev, m.Compacted)
	return stateHash{hash: h, rev: rev, compacted: m.Compacted, current: m.Revision}, err
}

// hashAll hashes the whole replicated state (Maintenance.Hash).
func (f *fsm) hashAll() (stateHash, error) {
	snap := f.db.NewSnapshot()
	defer snap.Close()
	m, err := f.st.LoadMeta(snap)
	if err != nil {
		return stateHash{}, err
	}
	h, err := f.st.Hash(snap)
	return stateHash{hash: h, rev: m.Revision, compacted: m.Compacted, current: m.Revision}, err
}

// defragPrefixLen splits the state DB into ranges for Defragment: one per
// shard ('s' + be64 shard ID, see raftnode's keyspace), so progress can be
// reported range by range.
const defragPrefixLen = 9

// defrag is etcd's Defragment on pebble: a manual compaction of the
// member's whole state DB (every shard it holds, FlareDB regions too), which
// rewrites the tables so deleted and compacted data stops taking space.
// Reads and writes go on meanwhile. Progress is logged per shard range.
func (s *Server) defrag(ctx context.Context) error {
	db := s.cfg.DB
	ranges, err := defragRanges(db)
	if err != nil {
		return err
	}
	before := db.Metrics().DiskSpaceUsage()
	start := time.Now()
	s.log.Info("Defragmenting the state DB", "ranges", len(ranges), "db_size", before)
	for i, r := range ranges {
		if err := db.Compact(ctx, r[0], r[1], true); err != nil {
			return fmt.Errorf("chainfire: defragment range %d of %d: %w", i+1, len(ranges), err)
		}
		s.log.Info("Defragment progress", "done", i+1, "ranges", len(ranges), "elapsed", time.Since(start).Round(time.Millisecond))
	}
	after := db.Metrics().DiskSpaceUsage()
	s.log.Info("Defragmented the state DB", "db_size_before", before, "db_size_after", after, "took", time.Since(start).Round(time.Millisecond))
	// Measure the space again now, so an `alarm disarm` right after sees it.
	s.used.Store(s.spaceUsed())
	return nil
}

// defragRanges returns [start, end) ranges covering every key of db, one per
// distinct defragPrefixLen-byte prefix.
func defragRanges(db *pebble.DB) ([][2][]byte, error) {
	it, err := db.NewIter(nil)
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out [][2][]byte
	for ok := it.First(); ok; {
		k := it.Key()
		p := bytes.Clone(k[:min(len(k), defragPrefixLen)])
		end := mvcc.PrefixEnd(p)
		if end == nil { // p is all 0xff: up to the last key
			it.Last()
			out = append(out, [2][]byte{p, append(bytes.Clone(it.Key()), 0)})
			break
		}
		out = append(out, [2][]byte{p, end})
		ok = it.SeekGE(end)
	}
	return out, it.Error()
}
