package tsdb

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/centra-cloud/centra/flaredb/tsdb/tsdbtest"
)

func newTestDB(t *testing.T, now *time.Time) (*DB, *tsdbtest.MemKV) {
	t.Helper()
	kv := tsdbtest.NewMemKV()
	db, err := New(Config{KV: kv, Namespace: "ts", Retention: 15 * 24 * time.Hour, OutOfOrderWindow: 10 * time.Minute, WriteTimeout: 30 * time.Second, Now: func() time.Time { return *now }})
	if err != nil {
		t.Fatal(err)
	}
	return db, kv
}

func selectAll(t *testing.T, db *DB, mint, maxt int64, ms ...*labels.Matcher) map[string][]sample {
	t.Helper()
	q, _ := db.Queryable(0).Querier(mint, maxt)
	set := q.Select(context.Background(), true, nil, ms...)
	out := map[string][]sample{}
	for set.Next() {
		s := set.At()
		it := s.Iterator(nil)
		for it.Next() == chunkenc.ValFloat {
			ts, v := it.At()
			out[s.Labels().String()] = append(out[s.Labels().String()], sample{ts, v})
		}
	}
	if err := set.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestWriteCompactQuery writes samples out of order and twice, in open and
// closed windows, compacts, and reads back the same samples bit for bit.
func TestWriteCompactQuery(t *testing.T) {
	now := time.UnixMilli(10 * windowMs).Add(5 * time.Minute)
	db, kv := newTestDB(t, &now)
	ctx := context.Background()
	a := labels.FromStrings("__name__", "up", "job", "a")
	b := labels.FromStrings("__name__", "up", "job", "b")
	base := now.UnixMilli() - 3*windowMs // two closed windows and the open one
	var want []sample
	var in []Sample
	for i := range 3 * 240 {
		ts := base + int64(i)*15000
		v := float64(i)
		if i == 100 {
			v = math.Float64frombits(value.StaleNaN)
		}
		want = append(want, sample{ts, v})
		in = append(in, Sample{ts, v})
	}
	// Reverse order, then everything again: idempotent.
	rev := make([]Sample, len(in))
	for i := range in {
		rev[i] = in[len(in)-1-i]
	}
	for _, batch := range [][]Sample{rev, in} {
		if err := db.Write(ctx, []Series{{Labels: a, Samples: batch}, {Labels: b, Samples: batch[:10]}}); err != nil {
			t.Fatal(err)
		}
	}
	check := func(stage string) {
		got := selectAll(t, db, base, base+10*windowMs, labels.MustNewMatcher(labels.MatchEqual, "job", "a"))
		if len(got) != 1 || len(got[a.String()]) != len(want) {
			t.Fatalf("%s: got %d series, %d samples; want 1, %d", stage, len(got), len(got[a.String()]), len(want))
		}
		for i, s := range got[a.String()] {
			if s.t != want[i].t || math.Float64bits(s.v) != math.Float64bits(want[i].v) {
				t.Fatalf("%s: sample %d = %v, want %v", stage, i, s, want[i])
			}
		}
	}
	check("before compaction")
	now = now.Add(2 * time.Duration(windowMs) * time.Millisecond)
	if err := db.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if left := kv.Sorted(prefix(kindRaw, 0), prefixEnd(prefix(kindRaw, 0))); len(left) != 0 {
		t.Fatalf("%d raw keys left after compaction", len(left))
	}
	check("after compaction")
	got := selectAll(t, db, base, base+10*windowMs, labels.MustNewMatcher(labels.MatchRegexp, "__name__", "u.*"), labels.MustNewMatcher(labels.MatchNotEqual, "job", "a"))
	if len(got) != 1 || len(got[b.String()]) != 20 { // the first and the last 10
		t.Fatalf("regexp select: %v", got)
	}
	q, _ := db.Queryable(0).Querier(base, base+windowMs)
	if vs, _, err := q.LabelValues(ctx, "job", nil); err != nil || len(vs) != 2 {
		t.Fatalf("label values = %v, %v", vs, err)
	}
	if set := q.Select(ctx, true, &storage.SelectHints{Start: base, End: base, Func: "series"}, labels.MustNewMatcher(labels.MatchEqual, "__name__", "up")); !set.Next() {
		t.Fatal("series-only select found nothing")
	}
	if err := db.Retain(ctx, windowOf(now.UnixMilli())+windowMs); err != nil {
		t.Fatal(err)
	}
	if got := selectAll(t, db, base, base+10*windowMs, labels.MustNewMatcher(labels.MatchEqual, "job", "a")); len(got) != 0 {
		t.Fatalf("after retention: %d series", len(got))
	}
}
