package flaredb

import (
	"bytes"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/lni/dragonboat/v4/statemachine"
	"google.golang.org/protobuf/proto"

	"github.com/centra-cloud/centra/flaredb/internal/keys"
	raftcmdv1 "github.com/centra-cloud/centra/gen/centra/flaredb/raftcmd/v1"
	metav1 "github.com/centra-cloud/centra/gen/centra/meta/v1"
	"github.com/centra-cloud/centra/shared/raftnode"
)

// newTestRegion opens an in-memory DB holding region 10 over [start, end)
// with peers on stores 1..3 at epoch 1/1.
func newTestRegion(t *testing.T, start, end string) (*region, *pebble.DB) {
	t.Helper()
	db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	d := &metav1.Region{Id: 10, StartKey: []byte(start), EndKey: []byte(end), RegionEpoch: &metav1.RegionEpoch{ConfVer: 1, Version: 1},
		Peers: []*metav1.Peer{{Id: 11, StoreId: 1}, {Id: 12, StoreId: 2}, {Id: 13, StoreId: 3}}}
	b := db.NewBatch()
	if err := writeDescriptor(b, d); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	// No onSplit: the test reads r.splits (Applied is not called).
	r := &region{id: 10, db: db, ks: raftnode.ShardKeyspace(10)}
	if err := r.Load(db); err != nil {
		t.Fatal(err)
	}
	return r, db
}

// apply applies cmds as one batch and returns the results.
func apply(t *testing.T, r *region, db *pebble.DB, cmds ...*raftcmdv1.Command) []statemachine.Result {
	t.Helper()
	entries := make([]statemachine.Entry, len(cmds))
	for i, c := range cmds {
		if c.Version == 0 {
			c.Version = commandVersion
		}
		data, err := proto.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		entries[i] = statemachine.Entry{Index: uint64(i + 1), Cmd: data}
	}
	b := db.NewIndexedBatch()
	if err := r.Apply(b, entries); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	out := make([]statemachine.Result, len(entries))
	for i := range entries {
		out[i] = entries[i].Result
	}
	return out
}

func epoch(v uint64) *metav1.RegionEpoch { return &metav1.RegionEpoch{ConfVer: 1, Version: v} }

func put(k, v string, ver uint64) *raftcmdv1.Command {
	return &raftcmdv1.Command{Epoch: epoch(ver), Cmd: &raftcmdv1.Command_Write{Write: &raftcmdv1.Write{
		Mutations: []*raftcmdv1.Mutation{{Key: keys.Encode("ns", []byte(k)), Value: []byte(v)}}}}}
}

func read(t *testing.T, db *pebble.DB, k string) (string, bool) {
	t.Helper()
	v, found, err := get(db, keys.Encode("ns", []byte(k)))
	if err != nil {
		t.Fatal(err)
	}
	return string(v), found
}

func TestRegionApplyChecksEpochAndRange(t *testing.T) {
	lo, hi := keys.Range("ns", []byte("b"), []byte("m"))
	r, db := newTestRegion(t, string(lo), string(hi))
	res := apply(t, r, db, put("c", "1", 1), put("c", "stale", 2), put("z", "out", 1))
	if res[0].Value != resultOK || res[1].Value != resultEpochNotMatch || res[2].Value != resultKeyNotInRegion {
		t.Fatalf("results = %v, want ok, epoch-not-match, key-not-in-region", res)
	}
	if v, _ := read(t, db, "c"); v != "1" {
		t.Fatalf("c = %q, want 1 (the refused write must not apply)", v)
	}
	if _, found := read(t, db, "z"); found {
		t.Fatal("a key outside the region was written")
	}
	// A batch is all or nothing: one key outside refuses every mutation.
	both := &raftcmdv1.Command{Epoch: epoch(1), Cmd: &raftcmdv1.Command_Write{Write: &raftcmdv1.Write{Mutations: []*raftcmdv1.Mutation{
		{Key: keys.Encode("ns", []byte("d")), Value: []byte("in")}, {Key: keys.Encode("ns", []byte("y")), Value: []byte("out")}}}}}
	if res := apply(t, r, db, both); res[0].Value != resultKeyNotInRegion {
		t.Fatalf("mixed batch = %v, want key-not-in-region", res[0])
	}
	if _, found := read(t, db, "d"); found {
		t.Fatal("half of a refused batch was applied")
	}
	// An unknown command version is refused, not applied.
	future := put("e", "x", 1)
	future.Version = commandVersion + 1
	if res := apply(t, r, db, future); res[0].Value != resultInvalid {
		t.Fatalf("future version = %v, want invalid", res[0])
	}
}

func TestRegionCompareAndSwap(t *testing.T) {
	r, db := newTestRegion(t, "", "")
	k := keys.Encode("ns", []byte("k"))
	cas := func(prev string, notExist bool, v string) *raftcmdv1.Command {
		return &raftcmdv1.Command{Epoch: epoch(1), Cmd: &raftcmdv1.Command_CompareAndSwap{CompareAndSwap: &raftcmdv1.CompareAndSwap{
			Mutation: &raftcmdv1.Mutation{Key: k, Value: []byte(v)}, PreviousValue: []byte(prev), PreviousNotExist: notExist}}}
	}
	res := apply(t, r, db, cas("", true, "a"), cas("", true, "b"), cas("x", false, "c"), cas("a", false, "d"))
	want := []uint64{resultOK, resultCASFailed, resultCASFailed, resultOK}
	for i := range want {
		if res[i].Value != want[i] {
			t.Fatalf("CAS %d = %d, want %d", i, res[i].Value, want[i])
		}
	}
	out := &raftcmdv1.Result{}
	if err := proto.Unmarshal(res[2].Data, out); err != nil || string(out.GetPreviousValue()) != "a" {
		t.Fatalf("failed CAS reports previous %q (%v), want a", out.GetPreviousValue(), err)
	}
	if v, _ := read(t, db, "k"); v != "d" {
		t.Fatalf("k = %q, want d", v)
	}
}

func TestRegionSplit(t *testing.T) {
	r, db := newTestRegion(t, "", "")
	splitKey := keys.Encode("ns", []byte("m"))
	split := &raftcmdv1.Command{Epoch: epoch(1), Cmd: &raftcmdv1.Command_Split{Split: &raftcmdv1.Split{
		SplitKey: splitKey, NewRegionId: 20, NewPeerIds: []uint64{21, 22, 23}}}}
	// The same batch: a write before the split, the split, then a write to
	// the moved half with the old epoch (refused) and one to the kept half
	// with the new epoch (applied).
	res := apply(t, r, db, put("x", "before", 1), split, put("y", "after", 1), put("a", "new-epoch", 2))
	if res[0].Value != resultOK || res[1].Value != resultOK || res[2].Value != resultEpochNotMatch || res[3].Value != resultOK {
		t.Fatalf("results = %v", res)
	}
	parent := r.desc()
	if !bytes.Equal(parent.GetEndKey(), splitKey) || parent.GetRegionEpoch().GetVersion() != 2 {
		t.Fatalf("parent after split = %v", parent)
	}
	if len(r.splits) != 1 {
		t.Fatalf("splits handed to the store = %v, want the new region", r.splits)
	}
	child, err := readDescriptor(db, raftnode.ShardKeyspace(20))
	if err != nil || child == nil {
		t.Fatalf("child descriptor = %v, %v", child, err)
	}
	if !bytes.Equal(child.GetStartKey(), splitKey) || len(child.GetEndKey()) != 0 || child.GetRegionEpoch().GetVersion() != 2 {
		t.Fatalf("child = %v, want [split, +inf) at version 2", child)
	}
	for i, p := range child.GetPeers() {
		if p.GetId() != uint64(21+i) || p.GetStoreId() != uint64(1+i) {
			t.Fatalf("child peer %d = %v, want id %d on store %d", i, p, 21+i, 1+i)
		}
	}
	// The data stayed in place: the child sees the write made before.
	if v, _ := read(t, db, "x"); v != "before" {
		t.Fatalf("x = %q after the split", v)
	}
	// Splitting outside the range, or at the start, is refused.
	again := &raftcmdv1.Command{Epoch: epoch(2), Cmd: &raftcmdv1.Command_Split{Split: &raftcmdv1.Split{
		SplitKey: keys.Encode("ns", []byte("z")), NewRegionId: 30, NewPeerIds: []uint64{31, 32, 33}}}}
	if res := apply(t, r, db, again); res[0].Value != resultInvalid {
		t.Fatalf("split outside the range = %v, want invalid", res[0])
	}
}
