package raftnode

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/lni/dragonboat/v4/statemachine"
)

// rangeApplier is the test RangeApplier: a region over the store-wide data
// keyspace 'd' + key. "key=value" sets data key 'd'+key when it is inside
// the bounds (Result.Value = index) and is rejected otherwise (Result.Value
// = 0); "split=key" shrinks the upper bound to 'd'+key and records the
// bounds in the shard-prefixed meta key "bounds", which Load reads back.
type rangeApplier struct {
	ks Keyspace
	db *pebble.DB

	mu           sync.Mutex
	lower, upper []byte
	initLo       []byte
	initUp       []byte
	keys         atomic.Int64 // data keys inside the bounds, set by Load
	loads        atomic.Int64
}

func newRangeApplier(db *pebble.DB, ks Keyspace, lower, upper string) *rangeApplier {
	return &rangeApplier{ks: ks, db: db, initLo: []byte(lower), initUp: []byte(upper)}
}

func (a *rangeApplier) Bounds() (lower, upper []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lower, a.upper
}

func (a *rangeApplier) Load(r pebble.Reader) error {
	lower, upper := a.initLo, a.initUp
	v, closer, err := r.Get(a.ks.Key([]byte("bounds")))
	switch {
	case errors.Is(err, pebble.ErrNotFound):
	case err != nil:
		return err
	default:
		lo, up, _ := bytes.Cut(v, []byte("|"))
		lower, upper = bytes.Clone(lo), bytes.Clone(up)
		closer.Close()
	}
	n, err := countKeys(r, lower, upper)
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.lower, a.upper = lower, upper
	a.mu.Unlock()
	a.keys.Store(n)
	a.loads.Add(1)
	return nil
}

func (a *rangeApplier) Apply(b *pebble.Batch, entries []statemachine.Entry) error {
	for i := range entries {
		e := &entries[i]
		k, v, ok := bytes.Cut(e.Cmd, []byte("="))
		if !ok {
			return fmt.Errorf("malformed command %q", e.Cmd)
		}
		a.mu.Lock()
		lower, upper := a.lower, a.upper
		a.mu.Unlock()
		if string(k) == "split" {
			upper = append([]byte{'d'}, v...)
			if err := b.Set(a.ks.Key([]byte("bounds")), append(append(bytes.Clone(lower), '|'), upper...), nil); err != nil {
				return err
			}
			a.mu.Lock()
			a.upper = upper
			a.mu.Unlock()
			e.Result = statemachine.Result{Value: e.Index}
			continue
		}
		key := append([]byte{'d'}, k...)
		if bytes.Compare(key, lower) < 0 || bytes.Compare(key, upper) >= 0 {
			e.Result = statemachine.Result{} // KeyNotInRegion
			continue
		}
		if err := b.Set(key, v, nil); err != nil {
			return err
		}
		e.Result = statemachine.Result{Value: e.Index}
	}
	return nil
}

func (a *rangeApplier) Applied(uint64) {}

func (a *rangeApplier) Lookup(query any) (any, error) {
	switch q := query.(type) {
	case countQuery:
		return a.keys.Load(), nil
	case string:
		v, closer, err := a.db.Get(append([]byte{'d'}, q...))
		if errors.Is(err, pebble.ErrNotFound) {
			return "", nil
		}
		if err != nil {
			return nil, err
		}
		defer closer.Close()
		return string(v), nil
	default:
		return nil, fmt.Errorf("unknown query %T", query)
	}
}

// newRangeSM opens a RangeStateMachine for shardID on db owning [da, dn)
// until a split shrinks it.
func newRangeSM(t *testing.T, db *pebble.DB, shardID uint64) (*RangeStateMachine, *rangeApplier) {
	t.Helper()
	ks := ShardKeyspace(shardID)
	app := newRangeApplier(db, ks, "da", "dn")
	sm := NewRangeStateMachine(db, ks, app)
	sm.IngestDir = t.TempDir()
	if _, err := sm.Open(make(chan struct{})); err != nil {
		t.Fatal(err)
	}
	return sm, app
}

// rangeUpdate applies commands as entries first, first+1, ...
func rangeUpdate(t *testing.T, sm *RangeStateMachine, first uint64, cmds ...string) {
	t.Helper()
	if _, err := sm.Update(entriesOf(first, cmds...)); err != nil {
		t.Fatal(err)
	}
}

func rangeSnapshotOf(t *testing.T, sm *RangeStateMachine) []byte {
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

// span returns the keys of m in [lower, upper).
func span(m map[string]string, lower, upper string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if k >= lower && k < upper {
			out[k] = v
		}
	}
	return out
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestRangeSnapshotRoundTrip(t *testing.T) {
	src := openTestDB(t)
	srcSM, _ := newRangeSM(t, src, 7)
	var cmds []string
	for i := range 600 { // more than snapshotDoneCheck pairs
		cmds = append(cmds, fmt.Sprintf("k%03d=v%d", i, i))
	}
	cmds = append(cmds, "split=k300", "z=outside") // now owns [da, dk300); z is rejected
	rangeUpdate(t, srcSM, 1, cmds...)
	if err := src.Set([]byte("dzz"), []byte("other region"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	ctx, err := srcSM.PrepareSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	rangeUpdate(t, srcSM, 603, "k001=late") // after the snapshot point
	var stream bytes.Buffer
	if err := srcSM.SaveSnapshot(ctx, &stream, make(chan struct{})); err != nil {
		t.Fatal(err)
	}

	dst := openTestDB(t)
	dstSM, dstApp := newRangeSM(t, dst, 7)
	rangeUpdate(t, dstSM, 1, "k000=old", "k299z=stale", "k500=child")
	other, _ := newRangeSM(t, dst, 6)
	rangeUpdate(t, other, 1, "b=shard6")
	for _, k := range []string{"d0", "dzz", "e"} { // other regions' data
		if err := dst.Set([]byte(k), []byte("other"), pebble.Sync); err != nil {
			t.Fatal(err)
		}
	}
	before := dumpDB(t, dst)
	start := time.Now()
	if err := dstSM.RecoverFromSnapshot(bytes.NewReader(stream.Bytes()), make(chan struct{})); err != nil {
		t.Fatal(err)
	}
	t.Logf("recovered %d bytes in %v", stream.Len(), time.Since(start))
	if dstSM.AppliedIndex() != 602 || dstApp.keys.Load() != 300 || dstApp.loads.Load() != 2 {
		t.Fatalf("after recover: applied %d keys %d loads %d, want 602, 300, 2", dstSM.AppliedIndex(), dstApp.keys.Load(), dstApp.loads.Load())
	}
	if lo, up := dstApp.Bounds(); string(lo) != "da" || string(up) != "dk300" {
		t.Fatalf("bounds after recover [%q, %q), want [da, dk300)", lo, up)
	}
	after := dumpDB(t, dst)
	srcAll := dumpDB(t, src)
	// The data range of the snapshot matches the source at snapshot time.
	want := span(srcAll, "da", "dk300")
	want["dk001"] = "v1" // the late write is not in the snapshot
	if got := span(after, "da", "dk300"); !equalMaps(got, want) {
		t.Fatalf("data range after recover has %d keys, want %d", len(got), len(want))
	}
	// Outside the range and the shard prefix nothing changed: the child's
	// key, other regions' keys, shard 6.
	ks7 := ShardKeyspace(7)
	for k, v := range before {
		inRange := k >= "da" && k < "dk300"
		if !inRange && !bytes.HasPrefix([]byte(k), ks7.prefix[:]) && after[k] != v {
			t.Fatalf("key %q outside the snapshot's spans changed: %q -> %q", k, v, after[k])
		}
	}
	if after["dk500"] != "child" || after["dzz"] != "other" {
		t.Fatalf("keys outside the range: dk500=%q dzz=%q", after["dk500"], after["dzz"])
	}
	if ents, _ := os.ReadDir(dstSM.IngestDir); len(ents) != 0 {
		t.Fatalf("ingest dir not cleaned up: %v", ents)
	}
	// A recovered state streams the same bytes as its source did.
	if again := rangeSnapshotOf(t, dstSM); !bytes.Equal(again, stream.Bytes()) {
		t.Fatal("snapshot of the recovered state differs from the stream it came from")
	}
	// Restart keeps the applied index and the bounds.
	re, reApp := newRangeSM(t, dst, 7)
	if re.AppliedIndex() != 602 || reApp.keys.Load() != 300 {
		t.Fatalf("reopened at %d with %d keys, want 602 and 300", re.AppliedIndex(), reApp.keys.Load())
	}
}

func TestRangeRecoverRejectsBadStreamWithoutTouchingData(t *testing.T) {
	src := openTestDB(t)
	srcSM, _ := newRangeSM(t, src, 7)
	rangeUpdate(t, srcSM, 1, "a=1", "b=2", "c=3")
	good := rangeSnapshotOf(t, srcSM)
	diskSM, _ := newTestSM(t, openTestDB(t), 7)
	update(t, diskSM, 1, "a=1")
	v1 := snapshotOf(t, diskSM)

	mutate := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	hdr := len(snapshotMagic) + 1 + 8
	cases := []struct {
		name   string
		stream []byte
		want   error
	}{
		{"flipped value byte", mutate(func(b []byte) []byte { b[len(b)/2] ^= 0x40; return b }), ErrCorruptSnapshot},
		{"flipped checksum", mutate(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), ErrCorruptSnapshot},
		{"flipped range", mutate(func(b []byte) []byte { b[hdr+4+1] = 'z'; return b }), ErrCorruptSnapshot},
		{"truncated", good[:len(good)-7], ErrCorruptSnapshot},
		{"empty", nil, ErrCorruptSnapshot},
		{"other shard", mutate(func(b []byte) []byte { b[hdr-1] = 9; return b }), ErrCorruptSnapshot},
		{"future version", mutate(func(b []byte) []byte { b[len(snapshotMagic)] = 3; return b }), ErrUnknownFormat},
		{"version 1 stream", v1, ErrUnknownFormat},
		{"huge length", mutate(func(b []byte) []byte { copy(b[hdr:], []byte{0xff, 0xff, 0xff, 0xff}); return b }), ErrCorruptSnapshot},
	}
	dst := openTestDB(t)
	dstSM, dstApp := newRangeSM(t, dst, 7)
	rangeUpdate(t, dstSM, 1, "mine=1")
	if err := dst.Set([]byte("dzz"), []byte("other"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	before := dumpDB(t, dst)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := dstSM.RecoverFromSnapshot(bytes.NewReader(tc.stream), make(chan struct{}))
			if !errors.Is(err, tc.want) {
				t.Fatalf("RecoverFromSnapshot = %v, want %v", err, tc.want)
			}
			if got := dumpDB(t, dst); !equalMaps(got, before) {
				t.Fatalf("state changed by a rejected snapshot: %v", got)
			}
			if dstSM.AppliedIndex() != 1 || dstApp.loads.Load() != 1 {
				t.Fatalf("applied %d loads %d after a rejected snapshot, want 1 and 1", dstSM.AppliedIndex(), dstApp.loads.Load())
			}
			if ents, _ := os.ReadDir(dstSM.IngestDir); len(ents) != 0 {
				t.Fatalf("ingest dir not cleaned up: %v", ents)
			}
		})
	}
	done := make(chan struct{})
	close(done)
	if err := dstSM.RecoverFromSnapshot(bytes.NewReader(good), done); !errors.Is(err, statemachine.ErrSnapshotStopped) {
		t.Fatalf("RecoverFromSnapshot with done closed: %v", err)
	}
	ctx, err := srcSM.PrepareSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	if err := srcSM.SaveSnapshot(ctx, &bytes.Buffer{}, done); !errors.Is(err, statemachine.ErrSnapshotStopped) {
		t.Fatalf("SaveSnapshot with done closed: %v", err)
	}
	if err := srcSM.SaveSnapshot("not a snapshot", &bytes.Buffer{}, make(chan struct{})); err == nil {
		t.Fatal("SaveSnapshot accepted a foreign context")
	}
}

func TestRangeBoundsMustAvoidShardKeyspace(t *testing.T) {
	db := openTestDB(t)
	ks := ShardKeyspace(7)
	for _, b := range [][2]string{{"d", "t"}, {"r", "s\x00"}, {"s", "sz"}, {"da", "da"}, {"da", ""}} {
		app := newRangeApplier(db, ks, b[0], b[1])
		sm := NewRangeStateMachine(db, ks, app)
		if _, err := sm.Open(make(chan struct{})); err != nil {
			t.Fatal(err)
		}
		if _, err := sm.PrepareSnapshot(); err == nil {
			t.Fatalf("PrepareSnapshot accepted bounds [%q, %q)", b[0], b[1])
		}
	}
	for _, b := range [][2]string{{"d", "s"}, {"t", "u"}} {
		if err := checkDataRange(ks, []byte(b[0]), []byte(b[1])); err != nil {
			t.Fatalf("bounds [%q, %q) rejected: %v", b[0], b[1], err)
		}
	}
}

// TestRangeSnapshotStreamedToNewReplica: a 3-replica region writes data
// keys 'd'+key in [da, dn), splits to [da, dk30), and compacts its log; a
// 4th replica whose DB already holds other regions' keys receives the
// streamed snapshot: its data range then matches the leader's, and keys
// outside the range are untouched. A restart keeps the applied index.
func TestRangeSnapshotStreamedToNewReplica(t *testing.T) {
	var mu sync.Mutex
	sms := map[uint64]*RangeStateMachine{}
	c := newCluster(t, func(cfg *Config) {
		cfg.SnapshotEntries = 10
		cfg.CompactionOverhead = 2
	})
	c.newSM = func(m *member, db *pebble.DB, ks Keyspace) statemachine.IOnDiskStateMachine {
		sm := NewRangeStateMachine(db, ks, newRangeApplier(db, ks, "da", "dn"))
		sm.IngestDir = m.dir
		mu.Lock()
		sms[m.id] = sm
		mu.Unlock()
		return sm
	}
	smOf := func(id uint64) *RangeStateMachine {
		mu.Lock()
		defer mu.Unlock()
		return sms[id]
	}
	c.bootstrap(3)
	leaderID, _ := c.waitLeader()
	leader := c.members[leaderID]
	const keys = 60
	for i := range keys {
		if c.propose(leader, fmt.Sprintf("k%02d", i), fmt.Sprintf("v%02d", i)) == 0 {
			t.Fatalf("k%02d rejected", i)
		}
	}
	c.propose(leader, "split", "k30")
	if c.propose(leader, "k45", "late") != 0 {
		t.Fatal("a key outside the split range was accepted")
	}
	eventually(t, 10*time.Second, "log compaction on the leader", func() bool {
		st, err := leader.node.Status(testCtx(t, time.Second), testShard)
		return err == nil && st.SnapshotIndex > 0 && st.FirstIndex > 10
	})

	m4 := c.add(4)
	c.open(m4)
	outside := map[string]string{"d0": "other", "dk45": "child region", "dz": "other", "e": "other"}
	for k, v := range outside {
		if err := m4.db.Set([]byte(k), []byte(v), pebble.Sync); err != nil {
			t.Fatal(err)
		}
	}
	if err := m4.db.Set([]byte("dk05"), []byte("stale"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := m4.db.Set([]byte("dk29z"), []byte("stale"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t, 10*time.Second)
	if err := leader.node.AddNonVoting(ctx, testShard, 4, m4.addr); err != nil {
		t.Fatal(err)
	}
	c.startShard(m4, ShardConfig{ShardID: testShard, ReplicaID: 4, Join: true, NonVoting: true})
	eventually(t, 10*time.Second, "replica 4 recovering the snapshot", func() bool {
		v, err := m4.node.StaleRead(testShard, countQuery{})
		return err == nil && v == int64(keys/2)
	})
	eventually(t, 5*time.Second, "an 'Applied snapshot' log line", func() bool { return c.logged("Applied snapshot, index=") })
	if lo, up := smOf(4).rapp.Bounds(); string(lo) != "da" || string(up) != "dk30" {
		t.Fatalf("replica 4 bounds [%q, %q), want [da, dk30)", lo, up)
	}
	got, want := span(dumpDB(t, m4.db), "da", "dk30"), span(dumpDB(t, leader.db), "da", "dk30")
	if len(want) != keys/2 || !equalMaps(got, want) {
		t.Fatalf("replica 4 data range: %d keys, leader %d; equal %v", len(got), len(want), equalMaps(got, want))
	}
	for k, v := range outside {
		if got, _ := dumpDB(t, m4.db)[k]; got != v {
			t.Fatalf("key %q outside the range = %q, want %q", k, got, v)
		}
	}
	ks := ShardKeyspace(testShard)
	lshard := span(dumpDB(t, leader.db), string(ks.prefix[:]), "t")
	mshard := span(dumpDB(t, m4.db), string(ks.prefix[:]), "t")
	if mshard[string(ks.Key([]byte("bounds")))] != "da|dk30" || len(mshard) != len(lshard) {
		t.Fatalf("replica 4 shard prefix %v, leader %v", mshard, lshard)
	}

	// New writes keep flowing to replica 4 from the log.
	c.propose(leader, "k10", "new")
	c.waitRead(m4, "k10", "new")

	// Restart keeps the applied index.
	applied := smOf(4).AppliedIndex()
	m4.stop(t)
	c.open(m4)
	if got, err := ReadAppliedIndex(m4.db, ks); err != nil || got != applied {
		t.Fatalf("persisted applied index after stop = %d, %v; want %d", got, err, applied)
	}
	c.startShard(m4, ShardConfig{ShardID: testShard, ReplicaID: 4, NonVoting: true})
	eventually(t, 5*time.Second, "replica 4 reopened", func() bool { return smOf(4).AppliedIndex() >= applied })
	if loads := smOf(4).rapp.(*rangeApplier).loads.Load(); loads != 1 {
		t.Fatalf("replica 4 Load ran %d times after the restart; want 1 (Open only, no new snapshot)", loads)
	}
	c.propose(leader, "k11", "after restart")
	c.waitRead(m4, "k11", "after restart")
	if v, _ := m4.node.StaleRead(testShard, "k45"); v != "child region" {
		t.Fatalf("k45 on replica 4 after restart = %v", v)
	}
}

// TestRangeAboveShardKeyspace: a data range sorting after the shard
// keyspace is streamed after the shard prefix (pairs stay in key order, as
// the SST writer requires).
func TestRangeAboveShardKeyspace(t *testing.T) {
	src := openTestDB(t)
	ks := ShardKeyspace(7)
	srcSM := NewRangeStateMachine(src, ks, newRangeApplier(src, ks, "u", "v"))
	if _, err := srcSM.Open(make(chan struct{})); err != nil {
		t.Fatal(err)
	}
	rangeUpdate(t, srcSM, 1, "x=rejected") // only advances the applied index
	for _, k := range []string{"ua", "ub", "w"} {
		if err := src.Set([]byte(k), []byte(k), pebble.NoSync); err != nil {
			t.Fatal(err)
		}
	}
	stream := rangeSnapshotOf(t, srcSM)
	dst := openTestDB(t)
	if err := dst.Set([]byte("uc"), []byte("stale"), pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	dstSM := NewRangeStateMachine(dst, ks, newRangeApplier(dst, ks, "u", "v"))
	dstSM.IngestDir = t.TempDir()
	if _, err := dstSM.Open(make(chan struct{})); err != nil {
		t.Fatal(err)
	}
	if err := dstSM.RecoverFromSnapshot(bytes.NewReader(stream), make(chan struct{})); err != nil {
		t.Fatal(err)
	}
	got := dumpDB(t, dst)
	if dstSM.AppliedIndex() != 1 || got["ua"] != "ua" || got["ub"] != "ub" || len(span(got, "u", "v")) != 2 || got["w"] != "" {
		t.Fatalf("after recover: applied %d, db %v", dstSM.AppliedIndex(), got)
	}
}
