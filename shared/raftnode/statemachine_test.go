package raftnode

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/lni/dragonboat/v4/statemachine"
)

// openTestDB opens a state DB in a fresh temp dir, closed at test end.
func openTestDB(t *testing.T) *pebble.DB {
	t.Helper()
	logger, _ := testLogger(t)
	db, err := OpenStateDB(filepath.Join(t.TempDir(), "state"), nil, logger, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// dumpDB returns every key and value of r.
func dumpDB(t testing.TB, r pebble.Reader) map[string]string {
	t.Helper()
	it, err := r.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	out := map[string]string{}
	for valid := it.First(); valid; valid = it.Next() {
		out[string(it.Key())] = string(it.Value())
	}
	return out
}

// newTestSM opens a DiskStateMachine for shardID on db.
func newTestSM(t *testing.T, db *pebble.DB, shardID uint64) (*DiskStateMachine, *kvApplier) {
	t.Helper()
	ks := ShardKeyspace(shardID)
	app := &kvApplier{ks: ks, db: db}
	sm := NewDiskStateMachine(db, ks, app)
	if _, err := sm.Open(make(chan struct{})); err != nil {
		t.Fatal(err)
	}
	return sm, app
}

// entriesOf makes raft entries first, first+1, ... of the commands.
func entriesOf(first uint64, cmds ...string) []statemachine.Entry {
	entries := make([]statemachine.Entry, len(cmds))
	for i, c := range cmds {
		entries[i] = statemachine.Entry{Index: first + uint64(i), Cmd: []byte(c)}
	}
	return entries
}

// update applies "key=value" commands as entries first, first+1, ...
func update(t *testing.T, sm *DiskStateMachine, first uint64, cmds ...string) {
	t.Helper()
	out, err := sm.Update(entriesOf(first, cmds...))
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range out {
		if e.Result.Value != e.Index {
			t.Fatalf("entry %d result %d, want its index", i, e.Result.Value)
		}
	}
}

func TestDiskStateMachineUpdatePersistsAppliedIndex(t *testing.T) {
	db := openTestDB(t)
	sm, app := newTestSM(t, db, 3)
	update(t, sm, 1, "a=1", "b=2", "a=3") // the third sees the first in the indexed batch
	if sm.AppliedIndex() != 3 || app.applied.Load() != 3 || app.keys.Load() != 2 {
		t.Fatalf("applied %d/%d keys %d, want 3/3 and 2", sm.AppliedIndex(), app.applied.Load(), app.keys.Load())
	}
	if err := sm.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := sm.Close(); err != nil {
		t.Fatal(err)
	}
	// A new instance (a restart) opens at the persisted index with the data.
	sm2, app2 := newTestSM(t, db, 3)
	if sm2.AppliedIndex() != 3 || app2.keys.Load() != 2 {
		t.Fatalf("reopened at %d with %d keys, want 3 and 2", sm2.AppliedIndex(), app2.keys.Load())
	}
	if v, err := sm2.Lookup("a"); err != nil || v != "3" {
		t.Fatalf("Lookup a = %v, %v", v, err)
	}
	// Another shard in the same DB starts empty.
	if sm3, _ := newTestSM(t, db, 4); sm3.AppliedIndex() != 0 {
		t.Fatalf("shard 4 opened at %d, want 0", sm3.AppliedIndex())
	}
	// A failing Apply commits nothing, not even the applied index.
	if _, err := sm2.Update([]statemachine.Entry{{Index: 4, Cmd: []byte("c=4")}, {Index: 5, Cmd: []byte("broken")}}); err == nil {
		t.Fatal("Update with a malformed command succeeded")
	}
	if idx, err := ReadAppliedIndex(db, ShardKeyspace(3)); err != nil || idx != 3 {
		t.Fatalf("applied index after failed Update = %d, %v; want 3", idx, err)
	}
}

func TestAppliedIndexUnknownVersion(t *testing.T) {
	db := openTestDB(t)
	ks := ShardKeyspace(1)
	if err := db.Set(ks.metaKey(metaApplied), []byte{9, 0, 0, 0, 0, 0, 0, 0, 1}, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadAppliedIndex(db, ks); !errors.Is(err, ErrUnknownFormat) {
		t.Fatalf("ReadAppliedIndex with version 9: %v", err)
	}
}

// snapshotOf streams shardID's state out of sm.
func snapshotOf(t *testing.T, sm *DiskStateMachine) []byte {
	t.Helper()
	ctx, err := sm.PrepareSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := sm.SaveSnapshot(ctx, &buf, make(chan struct{})); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestSnapshotRoundTrip(t *testing.T) {
	src := openTestDB(t)
	srcSM, _ := newTestSM(t, src, 7)
	var cmds []string
	for i := range 600 { // more than snapshotDoneCheck pairs
		cmds = append(cmds, fmt.Sprintf("k%03d=v%d", i, i))
	}
	update(t, srcSM, 1, cmds...)
	neighbour, _ := newTestSM(t, src, 8)
	update(t, neighbour, 1, "n=1")
	ctx, err := srcSM.PrepareSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	update(t, srcSM, 601, "late=1") // after the snapshot point: not in it
	var stream bytes.Buffer
	if err := srcSM.SaveSnapshot(ctx, &stream, make(chan struct{})); err != nil {
		t.Fatal(err)
	}

	dst := openTestDB(t)
	dstSM, dstApp := newTestSM(t, dst, 7)
	update(t, dstSM, 1, "stale=1", "k000=old")
	other, _ := newTestSM(t, dst, 6)
	update(t, other, 1, "keep=1")
	otherBefore := dumpDB(t, dst)
	if err := dstSM.RecoverFromSnapshot(bytes.NewReader(stream.Bytes()), make(chan struct{})); err != nil {
		t.Fatal(err)
	}
	if dstSM.AppliedIndex() != 600 || dstApp.keys.Load() != 600 || dstApp.loads.Load() != 2 {
		t.Fatalf("after recover: applied %d keys %d loads %d, want 600, 600, 2", dstSM.AppliedIndex(), dstApp.keys.Load(), dstApp.loads.Load())
	}
	for _, q := range []struct{ key, want string }{{"k000", "v0"}, {"k599", "v599"}, {"stale", ""}, {"late", ""}} {
		if v, err := dstSM.Lookup(q.key); err != nil || v != q.want {
			t.Fatalf("Lookup %s = %q, %v; want %q", q.key, v, err, q.want)
		}
	}
	after := dumpDB(t, dst)
	ks6, ks8 := ShardKeyspace(6), ShardKeyspace(8)
	for k, v := range otherBefore {
		if bytes.HasPrefix([]byte(k), ks6.prefix[:]) && after[k] != v {
			t.Fatalf("shard 6 key %q changed by shard 7's snapshot", k)
		}
	}
	for k := range after {
		if bytes.HasPrefix([]byte(k), ks8.prefix[:]) {
			t.Fatalf("shard 8 key %q leaked into shard 7's snapshot", k)
		}
	}
	// Saving again from the same state gives the same bytes.
	again := snapshotOf(t, dstSM)
	want := snapshotOf(t, srcSM)
	if bytes.Equal(again, want) {
		t.Fatal("snapshots of different states are equal")
	}
	dst2 := openTestDB(t)
	dst2SM, _ := newTestSM(t, dst2, 7)
	if err := dst2SM.RecoverFromSnapshot(bytes.NewReader(again), make(chan struct{})); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(snapshotOf(t, dst2SM), again) {
		t.Fatal("snapshot of a recovered state differs from its source")
	}
}

func TestRecoverRejectsBadStreamWithoutTouchingData(t *testing.T) {
	src := openTestDB(t)
	srcSM, _ := newTestSM(t, src, 7)
	update(t, srcSM, 1, "a=1", "b=2", "c=3")
	good := snapshotOf(t, srcSM)

	mutate := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	cases := []struct {
		name   string
		stream []byte
		want   error
	}{
		{"flipped value byte", mutate(func(b []byte) []byte { b[len(b)/2] ^= 0x40; return b }), ErrCorruptSnapshot},
		{"flipped checksum", mutate(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), ErrCorruptSnapshot},
		{"truncated", good[:len(good)-7], ErrCorruptSnapshot},
		{"empty", nil, ErrCorruptSnapshot},
		{"bad magic", mutate(func(b []byte) []byte { b[0] = 'X'; return b }), ErrCorruptSnapshot},
		{"other shard", mutate(func(b []byte) []byte { b[len(snapshotMagic)+8] = 9; return b }), ErrCorruptSnapshot},
		{"future version", mutate(func(b []byte) []byte { b[len(snapshotMagic)] = 2; return b }), ErrUnknownFormat},
		{"huge length", mutate(func(b []byte) []byte { copy(b[len(snapshotMagic)+1+8+1:], []byte{0xff, 0xff, 0xff, 0xff}); return b }), ErrCorruptSnapshot},
	}
	dst := openTestDB(t)
	dstSM, dstApp := newTestSM(t, dst, 7)
	update(t, dstSM, 1, "mine=1")
	before := dumpDB(t, dst)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := dstSM.RecoverFromSnapshot(bytes.NewReader(tc.stream), make(chan struct{}))
			if !errors.Is(err, tc.want) {
				t.Fatalf("RecoverFromSnapshot = %v, want %v", err, tc.want)
			}
			if got := dumpDB(t, dst); len(got) != len(before) || got[string(ShardKeyspace(7).Key([]byte("mine")))] != "1" {
				t.Fatalf("state changed by a rejected snapshot: %v", got)
			}
			if dstSM.AppliedIndex() != 1 || dstApp.loads.Load() != 1 {
				t.Fatalf("applied %d loads %d after a rejected snapshot, want 1 and 1", dstSM.AppliedIndex(), dstApp.loads.Load())
			}
		})
	}
}

func TestSnapshotHonoursDone(t *testing.T) {
	db := openTestDB(t)
	sm, _ := newTestSM(t, db, 7)
	update(t, sm, 1, "a=1")
	stream := snapshotOf(t, sm)
	done := make(chan struct{})
	close(done)
	ctx, err := sm.PrepareSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	if err := sm.SaveSnapshot(ctx, &bytes.Buffer{}, done); !errors.Is(err, statemachine.ErrSnapshotStopped) {
		t.Fatalf("SaveSnapshot with done closed: %v", err)
	}
	if err := sm.RecoverFromSnapshot(bytes.NewReader(stream), done); !errors.Is(err, statemachine.ErrSnapshotStopped) {
		t.Fatalf("RecoverFromSnapshot with done closed: %v", err)
	}
	if err := sm.SaveSnapshot("not a snapshot", &bytes.Buffer{}, make(chan struct{})); err == nil {
		t.Fatal("SaveSnapshot accepted a foreign context")
	}
}
