package mvcc

import (
	"bytes"
	"fmt"
	"sort"
	"testing"
	"testing/quick"

	"github.com/cockroachdb/pebble/v2"

	"github.com/centra-cloud/centra/gen/mvccpb"
)

func openDB(t *testing.T) *pebble.DB {
	t.Helper()
	db, err := pebble.Open(t.TempDir(), &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// apply runs fn as one write transaction at the next revision and commits.
func apply(t *testing.T, db *pebble.DB, s *Store, rev *int64, fn func(*Txn)) []Event {
	t.Helper()
	b := db.NewIndexedBatch()
	tx := s.Begin(b, *rev)
	fn(tx)
	*rev = tx.Revision()
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	return tx.Events()
}

func keysAt(t *testing.T, db *pebble.DB, s *Store, key, end string, rev int64) []string {
	t.Helper()
	var out []string
	_, err := s.Range(db, []byte(key), []byte(end), rev, func(kv *mvccpb.KeyValue) bool {
		out = append(out, fmt.Sprintf("%s=%s@%d/v%d", kv.Key, kv.Value, kv.ModRevision, kv.Version))
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestEscapeOrderAndRoundTrip(t *testing.T) {
	f := func(a, b []byte) bool {
		ea, eb := escape(nil, a), escape(nil, b)
		ra, err := unescape(ea)
		if err != nil || !bytes.Equal(ra, a) {
			return false
		}
		if bytes.HasPrefix(ea, eb) && !bytes.Equal(a, b) {
			return false
		}
		return sign(bytes.Compare(ea, eb)) == sign(bytes.Compare(a, b))
	}
	if err := quick.Check(f, &quick.Config{MaxCount: 5000}); err != nil {
		t.Fatal(err)
	}
	for _, pair := range [][2]string{{"a", "a\x00"}, {"a\x00", "a\x00\x00"}, {"", "\x00"}, {"a\xff", "b"}} {
		if bytes.Compare(escape(nil, []byte(pair[0])), escape(nil, []byte(pair[1]))) >= 0 {
			t.Errorf("escape(%q) !< escape(%q)", pair[0], pair[1])
		}
	}
}

func sign(x int) int {
	switch {
	case x < 0:
		return -1
	case x > 0:
		return 1
	}
	return 0
}

func TestMVCCHistoryRangeAndEvents(t *testing.T) {
	db := openDB(t)
	s := New([]byte("s\x00\x00\x00\x00\x00\x00\x00\x00\x01"))
	var rev int64
	apply(t, db, s, &rev, func(tx *Txn) { mustPut(t, tx, "a", "1") })                           // 1
	apply(t, db, s, &rev, func(tx *Txn) { mustPut(t, tx, "a\x00", "z") })                       // 2
	apply(t, db, s, &rev, func(tx *Txn) { mustPut(t, tx, "b", "2"); mustPut(t, tx, "c", "3") }) // 3
	apply(t, db, s, &rev, func(tx *Txn) { mustPut(t, tx, "a", "4") })                           // 4
	evs := apply(t, db, s, &rev, func(tx *Txn) {                                                // 5
		if _, err := tx.DeleteRange([]byte("b"), []byte("d")); err != nil {
			t.Fatal(err)
		}
	})
	if rev != 5 || len(evs) != 2 || evs[0].Type != mvccpb.Event_DELETE || string(evs[1].Prev.Value) != "3" {
		t.Fatalf("rev %d events %v", rev, evs)
	}
	// A txn that changes nothing does not consume a revision.
	apply(t, db, s, &rev, func(tx *Txn) {
		if d, _ := tx.DeleteRange([]byte("zz"), nil); len(d) != 0 {
			t.Fatal("deleted a missing key")
		}
	})
	if rev != 5 {
		t.Fatalf("empty txn bumped revision to %d", rev)
	}
	all := "\x00"
	for _, tc := range []struct {
		rev  int64
		want []string
	}{
		{1, []string{"a=1@1/v1"}},
		{3, []string{"a=1@1/v1", "a\x00=z@2/v1", "b=2@3/v1", "c=3@3/v1"}},
		{4, []string{"a=4@4/v2", "a\x00=z@2/v1", "b=2@3/v1", "c=3@3/v1"}},
		{5, []string{"a=4@4/v2", "a\x00=z@2/v1"}},
	} {
		if got := keysAt(t, db, s, "", all, tc.rev); fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("range at %d = %q, want %q", tc.rev, got, tc.want)
		}
	}
	if got := keysAt(t, db, s, "a", "", 5); len(got) != 1 || got[0] != "a=4@4/v2" {
		t.Errorf("single key a = %q", got)
	}
	if got := keysAt(t, db, s, "a\x00", "c", 3); fmt.Sprint(got) != fmt.Sprint([]string{"a\x00=z@2/v1", "b=2@3/v1"}) {
		t.Errorf("range [a\\0, c) = %q", got)
	}
	// Events read back from the revision index, in order, with prev.
	evs, last, err := s.Events(db, 2, 5, 100, true)
	if err != nil || last != 5 || len(evs) != 6 {
		t.Fatalf("events: %v last %d err %v", evs, last, err)
	}
	if evs[4].Type != mvccpb.Event_DELETE || string(evs[4].KV.Key) != "b" || string(evs[4].Prev.Value) != "2" {
		t.Errorf("event 4 = %+v", evs[4])
	}
	// max splits only between revisions.
	if evs, last, _ = s.Events(db, 3, 5, 1, false); last != 3 || len(evs) != 2 {
		t.Errorf("bounded events: %d events up to %d", len(evs), last)
	}

	// Compact at 4: reads at >= 4 unchanged, older versions gone.
	b := db.NewBatch()
	var next []byte
	for first := true; first || next != nil; first = false {
		if next, err = s.CompactChunk(db, b, 4, next, 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if got := keysAt(t, db, s, "", all, 4); fmt.Sprint(got) != fmt.Sprint([]string{"a=4@4/v2", "a\x00=z@2/v1", "b=2@3/v1", "c=3@3/v1"}) {
		t.Errorf("after compaction range at 4 = %q", got)
	}
	if got := keysAt(t, db, s, "", all, 1); len(got) != 0 {
		t.Errorf("compacted version still visible: %q", got)
	}
	if evs, _, _ := s.Events(db, 1, 3, 100, false); len(evs) != 0 {
		t.Errorf("revision index below compaction kept %d events", len(evs))
	}
}

func mustPut(t *testing.T, tx *Txn, k, v string) {
	t.Helper()
	if _, _, err := tx.Put([]byte(k), []byte(v), 0, false); err != nil {
		t.Fatal(err)
	}
}

func TestLeaseAttachAndRevoke(t *testing.T) {
	db := openDB(t)
	s := New([]byte("p"))
	var rev int64
	apply(t, db, s, &rev, func(tx *Txn) {
		if err := tx.GrantLease(7, 10); err != nil {
			t.Fatal(err)
		}
		if err := tx.GrantLease(7, 10); err != ErrLeaseExists {
			t.Fatalf("duplicate grant: %v", err)
		}
	})
	apply(t, db, s, &rev, func(tx *Txn) {
		for _, k := range []string{"x", "y"} {
			if _, _, err := tx.Put([]byte(k), []byte("v"), 7, false); err != nil {
				t.Fatal(err)
			}
		}
		if _, _, err := tx.Put([]byte("z"), []byte("v"), 0, false); err != nil {
			t.Fatal(err)
		}
	})
	apply(t, db, s, &rev, func(tx *Txn) { mustPut(t, tx, "y", "detached") }) // put without lease detaches
	keys, err := s.LeaseKeys(db, 7)
	if err != nil || len(keys) != 1 || string(keys[0]) != "x" {
		t.Fatalf("lease keys %q %v", keys, err)
	}
	apply(t, db, s, &rev, func(tx *Txn) {
		if err := tx.RevokeLease(7); err != nil {
			t.Fatal(err)
		}
	})
	got := keysAt(t, db, s, "", "\x00", rev)
	sort.Strings(got)
	if fmt.Sprint(got) != fmt.Sprint([]string{"y=detached@2/v2", "z=v@1/v1"}) {
		t.Errorf("after revoke: %q", got)
	}
	if _, err := s.LeaseTTL(db, 7); err != ErrLeaseNotFound {
		t.Errorf("revoked lease still there: %v", err)
	}
}

// TestInitialRevision: a never-written store is at etcd's revision 1, and a
// store that has a revision record (written by any version) keeps it.
func TestInitialRevision(t *testing.T) {
	db := openDB(t)
	s := New([]byte("p/"))
	m, err := s.LoadMeta(db)
	if err != nil || m.Revision != 1 || m.Compacted != 0 {
		t.Fatalf("fresh store: %+v %v, want revision 1", m, err)
	}
	rev := m.Revision
	apply(t, db, s, &rev, func(tx *Txn) {
		if _, _, err := tx.Put([]byte("k"), []byte("v"), 0, false); err != nil {
			t.Fatal(err)
		}
	})
	if rev != 2 {
		t.Fatalf("first write at revision %d, want 2", rev)
	}
	// A store written before stores started at 1: its record is kept.
	if err := s.SetRevision(db, 7); err != nil {
		t.Fatal(err)
	}
	if m, err := s.LoadMeta(db); err != nil || m.Revision != 7 {
		t.Fatalf("existing store: %+v %v, want revision 7", m, err)
	}
}
