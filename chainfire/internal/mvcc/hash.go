package mvcc

import (
	"bytes"
	"hash"
	"hash/crc32"

	"github.com/cockroachdb/pebble/v2"
)

// castagnoli is the CRC-32 table etcd's hashes use.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// HashKV returns a CRC-32 (Castagnoli) of the key-value history visible at
// rev after compaction at compacted: every version with a main revision in
// (compacted, rev] plus, per key, the version a read at compacted sees (the
// ones compaction keeps). Physical compaction runs at each replica's own
// pace, so the versions it may still hold below that are left out: replicas
// that applied the same log hash equal (etcd's HashKV contract). rev must be
// >= compacted; r should be a snapshot for a consistent answer.
func (s *Store) HashKV(r pebble.Reader, rev, compacted int64) (uint32, error) {
	h := crc32.New(castagnoli)
	h.Write([]byte{tagKey})
	err := s.hashVersions(r, h, rev, compacted)
	return h.Sum32(), err
}

// Hash returns a CRC-32 (Castagnoli) of the replicated state at the
// revision recorded in r: the key-value history as HashKV sees it and every
// other record except those that depend on the replica's own progress (the
// revision index, which compaction trims, and the physical compaction
// mark). Replicas that applied the same log hash equal.
func (s *Store) Hash(r pebble.Reader) (uint32, error) {
	m, err := s.LoadMeta(r)
	if err != nil {
		return 0, err
	}
	h := crc32.New(castagnoli)
	if err := s.hashVersions(r, h, m.Revision, m.Compacted); err != nil {
		return 0, err
	}
	lower, upper := s.full(nil), prefixEnd(s.prefix)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	physical := s.full(metaKey(metaPhysical))
	ok := it.First()
	for ok {
		k := s.strip(it.Key())
		if len(k) > 0 && (k[0] == tagKey || k[0] == tagRev) {
			// Hashed above (versions) or progress-dependent (the index).
			ok = it.SeekGE(s.full([]byte{k[0] + 1}))
			continue
		}
		if !bytes.Equal(it.Key(), physical) {
			v, err := it.ValueAndErr()
			if err != nil {
				return 0, err
			}
			h.Write(k)
			h.Write(v)
		}
		ok = it.Next()
	}
	return h.Sum32(), it.Error()
}

// hashVersions feeds the key versions HashKV covers into h: storage key
// (escaped key and revision) and stored value of each, in storage order.
func (s *Store) hashVersions(r pebble.Reader, h hash.Hash32, rev, compacted int64) error {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: s.full([]byte{tagKey}), UpperBound: s.full([]byte{tagKey + 1})})
	if err != nil {
		return err
	}
	defer it.Close()
	var cur []byte // escaped prefix of the key being scanned
	done := false  // cur's version visible at compacted was handled
	for ok := it.First(); ok; ok = it.Next() {
		k := s.strip(it.Key())
		p, _, vrev, err := splitVersionKey(k)
		if err != nil {
			return err
		}
		if !bytes.Equal(p, cur) {
			cur, done = bytes.Clone(p), false
		}
		if done || vrev.Main > rev {
			continue
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		if vrev.Main <= compacted {
			// The newest version at or below the compaction: kept by
			// compaction unless it is a tombstone below it.
			done = true
			if vrev.Main != compacted && (len(v) == 0 || v[0] != valueLive) {
				continue
			}
		}
		h.Write(k)
		h.Write(v)
	}
	return it.Error()
}
