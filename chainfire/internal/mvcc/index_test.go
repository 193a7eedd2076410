package mvcc

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/centra-cloud/centra/gen/mvccpb"
)

// TestIndexedPutsMatchReadPuts applies the same random puts, deletes and
// lease changes through BeginApply (metadata from the index, no reads) and
// through Begin (previous version read from pebble), several per batch, and
// checks that both stores hold the same versions, that the index matches
// one rebuilt from disk, and that events say when Prev was not read.
func TestIndexedPutsMatchReadPuts(t *testing.T) {
	db := openDB(t)
	read, indexed := New([]byte("r")), New([]byte("i"))
	idx, err := indexed.LoadIndex(db, 0)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var rev int64
	for batch := 0; batch < 200; batch++ {
		b := db.NewIndexedBatch()
		start := rev
		ops := 1 + rng.IntN(4)
		type op struct {
			key   string
			del   bool
			lease int64
		}
		var plan []op
		for range ops {
			plan = append(plan, op{key: fmt.Sprintf("k%d", rng.IntN(8)), del: rng.IntN(4) == 0, lease: int64(rng.IntN(3))})
		}
		for i, tx := range []*Txn{read.Begin(b, start), indexed.BeginApply(b, start, idx, false)} {
			for _, o := range plan {
				if o.del {
					if _, err := tx.DeleteRange([]byte(o.key), nil); err != nil {
						t.Fatal(err)
					}
					continue
				}
				if _, _, err := tx.Put([]byte(o.key), []byte(fmt.Sprint(batch)), o.lease, false); err != nil {
					t.Fatal(err)
				}
			}
			for _, ev := range tx.Events() {
				if i == 1 && ev.Prev != nil && ev.Type == mvccpb.Event_PUT {
					t.Fatalf("indexed put read its previous version: %v", ev)
				}
				if i == 0 && ev.PrevUnread {
					t.Fatalf("read put marked PrevUnread: %v", ev)
				}
			}
			rev = tx.Revision()
		}
		if err := b.Commit(pebble.NoSync); err != nil {
			t.Fatal(err)
		}
		if a, b := dump(t, db, read, rev), dump(t, db, indexed, rev); a != b {
			t.Fatalf("batch %d: read puts give %s, indexed puts %s", batch, a, b)
		}
		for _, lease := range []int64{1, 2} {
			a, _ := read.LeaseKeys(db, lease)
			b, _ := indexed.LeaseKeys(db, lease)
			if fmt.Sprintf("%q", a) != fmt.Sprintf("%q", b) {
				t.Fatalf("batch %d: lease %d keys %q vs %q", batch, lease, a, b)
			}
		}
		fresh, err := indexed.LoadIndex(db, rev)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(fresh.m) != fmt.Sprint(idx.m) {
			t.Fatalf("batch %d: index %v, rebuilt from disk %v", batch, idx.m, fresh.m)
		}
	}
}

// dump lists every live key with all its metadata.
func dump(t *testing.T, db *pebble.DB, s *Store, rev int64) string {
	t.Helper()
	out := ""
	if _, err := s.Range(db, []byte{0}, []byte{0}, rev, func(kv *mvccpb.KeyValue) bool {
		out += fmt.Sprintf("%s=%s c%d m%d v%d l%d ", kv.Key, kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// BenchmarkApplyPut: the apply cost of a put (encode, write into an indexed
// batch, commit without sync) over 100k existing keys, with the previous
// version's metadata from the index (as the apply path does) and read from
// pebble (as a prev_kv put does).
func BenchmarkApplyPut(b *testing.B) {
	for _, indexed := range []bool{true, false} {
		b.Run(fmt.Sprintf("indexed=%v", indexed), func(b *testing.B) {
			db, err := pebble.Open(b.TempDir(), &pebble.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			s := New([]byte("p"))
			idx, _ := s.LoadIndex(db, 0)
			value := make([]byte, 256)
			var rev int64
			put := func(n int, key func(int) []byte) {
				batch := db.NewIndexedBatch()
				tx := s.BeginApply(batch, rev, idx, !indexed)
				for i := range n {
					if _, _, err := tx.Put(key(i), value, 0, false); err != nil {
						b.Fatal(err)
					}
				}
				rev = tx.Revision()
				if err := batch.Commit(pebble.NoSync); err != nil {
					b.Fatal(err)
				}
				batch.Close()
			}
			for i := 0; i < 100000; i += 1000 {
				put(1000, func(j int) []byte { return fmt.Appendf(nil, "%08d", i+j) })
			}
			rng := rand.New(rand.NewPCG(1, 2))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				put(1, func(int) []byte { return fmt.Appendf(nil, "%08d", rng.IntN(100000)) })
			}
		})
	}
}
