package mvcc

import (
	"github.com/cockroachdb/pebble/v2"

	"github.com/centra-cloud/centra/gen/mvccpb"
)

// Index holds, for every live key, what a put needs from the key's newest
// version: its create revision, version and lease (etcd keeps the same in
// its treeIndex). With it a put writes without reading: finding the previous
// version through a pebble iterator was the largest cost of applying a put.
//
// The index belongs to the apply path: only transactions started with
// BeginApply read and update it, on the goroutine that applies raft entries,
// and Load rebuilds it (dragonboat never runs Load and Update concurrently).
// Readers never use it, so it needs no lock.
type Index struct {
	m map[string]keyMeta
	// bufs are the record buffers of the apply path's transactions, kept
	// between them (one apply goroutine, one transaction at a time).
	bufs recordBufs
}

type keyMeta struct{ create, version, lease int64 }

// LoadIndex builds the index of the keys live at rev from r.
func (s *Store) LoadIndex(r pebble.Reader, rev int64) (*Index, error) {
	idx := &Index{m: map[string]keyMeta{}}
	_, err := s.Range(r, []byte{0}, []byte{0}, rev, func(kv *mvccpb.KeyValue) bool {
		idx.m[string(kv.Key)] = keyMeta{create: kv.CreateRevision, version: kv.Version, lease: kv.Lease}
		return true
	})
	if err != nil {
		return nil, err
	}
	return idx, nil
}

// Len returns the number of live keys.
func (idx *Index) Len() int { return len(idx.m) }

// BeginApply starts a write transaction of the apply path: like Begin, but
// puts take the previous version's metadata from idx and keep idx current.
// A put then reads the previous version (its value) only when wantPrev is
// set or the put asks for it; otherwise its event has no Prev and says so
// (Event.PrevUnread).
func (s *Store) BeginApply(b *pebble.Batch, current int64, idx *Index, wantPrev bool) *Txn {
	return &Txn{s: s, b: b, rev: current + 1, idx: idx, wantPrev: wantPrev, bufs: &idx.bufs}
}
