package mvcc

import (
	"bytes"
	"hash"
	"hash/crc32"

	"github.com/cockroachdb/pebble/v2"

	"github.com/centra-cloud/centra/gen/mvccpb"
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
	return s.Visible(r, rev, compacted, func(k, _ []byte, _ Revision, v []byte) error {
		h.Write(k)
		h.Write(v)
		return nil
	})
}

// Visible calls fn, in storage order (by key, newest version first), for
// every key version a read can still see at rev after compaction at
// compacted: the versions in (compacted, rev] and, per key, the one a read
// at compacted sees (what physical compaction keeps; a deletion below
// compacted is not). fn gets the storage key (without the store prefix),
// the raw key, the revision and the stored value (DecodeVersion reads it);
// the slices are valid during the call only.
func (s *Store) Visible(r pebble.Reader, rev, compacted int64, fn func(k, key []byte, vrev Revision, v []byte) error) error {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: s.full([]byte{tagKey}), UpperBound: s.full([]byte{tagKey + 1})})
	if err != nil {
		return err
	}
	defer it.Close()
	var cur []byte // escaped prefix of the key being scanned
	done := false  // cur's version visible at compacted was handled
	for ok := it.First(); ok; ok = it.Next() {
		k := s.strip(it.Key())
		p, key, vrev, err := splitVersionKey(k)
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
		if err := fn(k, key, vrev, v); err != nil {
			return err
		}
	}
	return it.Error()
}

// DecodeVersion decodes a stored version: the KeyValue, or nil for a
// deletion.
func DecodeVersion(key []byte, rev Revision, v []byte) (*mvccpb.KeyValue, error) {
	return decodeValue(key, rev, v)
}

// RestoreVersion writes one version of key (kv nil: a deletion) and its
// revision index entry, for loading a snapshot into an empty store.
func (s *Store) RestoreVersion(w pebble.Writer, key []byte, rev Revision, kv *mvccpb.KeyValue) error {
	v := []byte{valueTombstone}
	if kv != nil {
		var err error
		if v, err = encodeValue(nil, kv); err != nil {
			return err
		}
	}
	var buf []byte
	return s.writeVersion(w, &buf, key, rev, v)
}

// RestoreLease writes a lease and the keys attached to it, for loading a
// snapshot into an empty store.
func (s *Store) RestoreLease(w pebble.Writer, id, ttl int64, keys [][]byte) error {
	if err := w.Set(s.full(leaseKey(id)), putBE64(nil, uint64(ttl)), nil); err != nil {
		return err
	}
	for _, k := range keys {
		if err := w.Set(s.full(attachKey(id, k)), nil, nil); err != nil {
			return err
		}
	}
	return nil
}
