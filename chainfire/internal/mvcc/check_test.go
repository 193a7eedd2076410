package mvcc

import (
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// TestCheck: a store written through Txn, with a lease and a compaction,
// passes Check; a revision index entry removed, a version removed and a
// lease removed under an attached key are each reported.
func TestCheck(t *testing.T) {
	db := openDB(t)
	s := New([]byte("p"))
	var rev int64
	apply(t, db, s, &rev, func(tx *Txn) {
		if err := tx.GrantLease(7, 10); err != nil {
			t.Fatal(err)
		}
	})
	for _, v := range []string{"1", "2", "3"} {
		apply(t, db, s, &rev, func(tx *Txn) { mustPut(t, tx, "a", v); mustPut(t, tx, "b"+v, v) })
	}
	apply(t, db, s, &rev, func(tx *Txn) {
		if _, _, err := tx.Put([]byte("leased"), []byte("v"), 7, false); err != nil {
			t.Fatal(err)
		}
	})
	compactAt := rev - 1
	b := db.NewBatch()
	if err := s.SetRevision(b, rev); err != nil {
		t.Fatal(err)
	}
	if err := s.SetCompacted(b, compactAt); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CompactChunk(db, b, compactAt, nil, 1000); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPhysical(b, compactAt); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	st, problems, err := s.Check(db, nil)
	if err != nil || len(problems) > 0 || st.Versions == 0 || st.Meta.Revision != rev || st.Meta.Compacted != compactAt {
		t.Fatalf("clean store: %+v %q %v", st, problems, err)
	}

	damage := func(what string, key []byte, want string) {
		t.Helper()
		if err := db.Delete(key, pebble.Sync); err != nil {
			t.Fatal(err)
		}
		_, problems, err := s.Check(db, nil)
		if err != nil || len(problems) == 0 || !strings.Contains(strings.Join(problems, "\n"), want) {
			t.Fatalf("%s: problems %q (%v), want one with %q", what, problems, err, want)
		}
	}
	latest := Revision{Main: rev}
	damage("revision index entry removed", s.full(revKey(latest)), "has no revision index entry")
	damage("version removed", s.full(versionKey([]byte("b3"), Revision{Main: rev - 1, Sub: 1})), "which has no version at that revision")
	damage("lease removed", s.full(leaseKey(7)), "which does not exist")
}
