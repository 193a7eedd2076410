package raftnode

import (
	"bytes"
	"math"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

func TestKeyspaceLayout(t *testing.T) {
	ks := ShardKeyspace(0x0102)
	key := ks.Key([]byte("abc"))
	want := []byte{'s', 0, 0, 0, 0, 0, 0, 0x01, 0x02, 0x01, 'a', 'b', 'c'}
	if !bytes.Equal(key, want) {
		t.Fatalf("Key = %x, want %x", key, want)
	}
	if got := ks.Append([]byte("x"), []byte("abc")); !bytes.Equal(got, append([]byte("x"), want...)) {
		t.Fatalf("Append = %x", got)
	}
	if s := ks.Suffix(key); string(s) != "abc" {
		t.Fatalf("Suffix = %q", s)
	}
	if s := ks.Suffix(ks.Key(nil)); s == nil || len(s) != 0 {
		t.Fatalf("Suffix of the empty data key = %#v, want empty non-nil", s)
	}
	for _, k := range [][]byte{ks.metaKey(metaApplied), ShardKeyspace(0x0103).Key([]byte("abc")), []byte("s"), nil} {
		if ks.Contains(k) || ks.Suffix(k) != nil {
			t.Fatalf("%x reported as a data key of shard 0x0102", k)
		}
	}
	lower, upper := ks.Bounds()
	if bytes.Compare(lower, key) > 0 || bytes.Compare(key, upper) >= 0 {
		t.Fatalf("key %x outside Bounds [%x, %x)", key, lower, upper)
	}
	if meta := ks.metaKey(metaApplied); bytes.Compare(meta, lower) >= 0 {
		t.Fatalf("meta key %x inside the data bounds", meta)
	}
	// Bounds must not alias: appending to one must not change the other.
	_ = append(lower, 'z')
	if l2, _ := ks.Bounds(); !bytes.Equal(l2, lower[:len(l2)]) || len(l2) != 10 {
		t.Fatalf("Bounds changed: %x", l2)
	}
}

func TestShardBoundsCoverOnlyTheShard(t *testing.T) {
	for _, id := range []uint64{0, 1, 0xff, math.MaxUint64 - 1, math.MaxUint64} {
		ks := ShardKeyspace(id)
		lower, upper := ks.ShardBounds()
		for _, k := range [][]byte{ks.metaKey(metaApplied), ks.Key(nil), ks.Key([]byte{0xff, 0xff})} {
			if bytes.Compare(lower, k) > 0 || bytes.Compare(k, upper) >= 0 {
				t.Fatalf("shard %d: key %x outside [%x, %x)", id, k, lower, upper)
			}
		}
		if id < math.MaxUint64 {
			next := ShardKeyspace(id + 1)
			if bytes.Compare(next.metaKey(metaApplied), upper) < 0 {
				t.Fatalf("shard %d bounds include shard %d", id, id+1)
			}
		}
	}
}

func TestShardIDs(t *testing.T) {
	db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, id := range []uint64{0, 3, 7, 1 << 40} {
		ks := ShardKeyspace(id)
		for _, k := range [][]byte{ks.Key([]byte("a")), ks.Key([]byte("b")), ks.metaKey(metaApplied)} {
			if err := db.Set(k, nil, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := db.Set([]byte("d-not-a-shard"), nil, nil); err != nil {
		t.Fatal(err)
	}
	got, err := ShardIDs(db, 1)
	if err != nil {
		t.Fatal(err)
	}
	if want := []uint64{3, 7, 1 << 40}; !slices.Equal(got, want) {
		t.Fatalf("ShardIDs = %v, want %v", got, want)
	}
}
