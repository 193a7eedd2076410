package mvcc

import (
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// TestHashIgnoresPhysicalCompaction: two replicas with the same history hash
// equal whether or not one of them removed compacted versions already, and
// a different value changes the hash.
func TestHashIgnoresPhysicalCompaction(t *testing.T) {
	s := New([]byte("p/"))
	build := func(last string) (*pebble.DB, int64) {
		db := openDB(t)
		rev := int64(InitialRevision)
		for i, v := range []string{"1", "2", "3"} {
			apply(t, db, s, &rev, func(tx *Txn) {
				if _, _, err := tx.Put([]byte("k"), []byte(v), 0, false); err != nil {
					t.Fatal(err)
				}
				if i == 1 {
					if _, _, err := tx.Put([]byte("gone"), []byte("x"), 0, false); err != nil {
						t.Fatal(err)
					}
				}
			})
		}
		apply(t, db, s, &rev, func(tx *Txn) {
			if _, err := tx.DeleteRange([]byte("gone"), nil); err != nil {
				t.Fatal(err)
			}
		})
		apply(t, db, s, &rev, func(tx *Txn) {
			if _, _, err := tx.Put([]byte("k"), []byte(last), 0, false); err != nil {
				t.Fatal(err)
			}
		})
		if err := s.SetRevision(db, rev); err != nil {
			t.Fatal(err)
		}
		return db, rev
	}
	a, rev := build("4")
	b, _ := build("4")
	c, _ := build("other")
	const compacted = 5 // after the delete of "gone"
	if err := s.SetCompacted(a, compacted); err != nil {
		t.Fatal(err)
	}
	if err := s.SetCompacted(b, compacted); err != nil {
		t.Fatal(err)
	}
	if err := s.SetCompacted(c, compacted); err != nil {
		t.Fatal(err)
	}
	bt := b.NewBatch()
	if next, err := s.CompactChunk(b, bt, compacted, nil, 1000); err != nil || next != nil {
		t.Fatal(next, err)
	}
	if err := s.SetPhysical(bt, compacted); err != nil {
		t.Fatal(err)
	}
	if err := bt.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	hashes := func(db *pebble.DB) (kv, kvAtCompaction, all uint32) {
		var err error
		if kv, err = s.HashKV(db, rev, compacted); err != nil {
			t.Fatal(err)
		}
		if kvAtCompaction, err = s.HashKV(db, compacted, compacted); err != nil {
			t.Fatal(err)
		}
		if all, err = s.Hash(db); err != nil {
			t.Fatal(err)
		}
		return kv, kvAtCompaction, all
	}
	ak, ac, ah := hashes(a)
	bk, bc, bh := hashes(b)
	ck, cc, ch := hashes(c)
	if ak != bk || ac != bc || ah != bh {
		t.Fatalf("physical compaction changed the hashes: %x %x %x vs %x %x %x", ak, ac, ah, bk, bc, bh)
	}
	if ck == ak || ch == ah {
		t.Fatalf("a different value hashes equal: %x %x", ck, ch)
	}
	if cc != ac {
		t.Fatalf("hash at the compaction revision depends on a later write: %x vs %x", cc, ac)
	}
}
