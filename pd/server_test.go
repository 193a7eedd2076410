package pd

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	metav1 "github.com/centra-cloud/centra/gen/centra/meta/v1"
)

func TestLifecycle(t *testing.T) {
	n := newLeader(t)
	if err := n.s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := n.s.Start(context.Background()); err == nil {
		t.Fatal("second Start succeeded")
	}
	if err := n.s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.s.Close(); err != nil {
		t.Fatal(err)
	}
	// Close without Start.
	m := newLeader(t)
	if err := m.s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestNewValidatesConfig(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("New without KV succeeded")
	}
	reg := prometheus.NewRegistry()
	kv := newMemKV().view(true)
	if _, err := New(Config{KV: kv, Registry: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{KV: kv, Registry: reg}); err == nil {
		t.Fatal("registering metrics twice succeeded")
	}
}

func TestCheckStoresBuriesEmptyOfflineStores(t *testing.T) {
	n := newLeader(t)
	n.register(t, 1, 2, 3, 4)
	ctx := ctxT(t)
	if _, err := n.s.RegionHeartbeat(ctx, heartbeat(region(10, "", "", 1, 1, 1, 2, 4), 1)); err != nil {
		t.Fatal(err)
	}
	if err := n.s.DeleteStore(ctx, 4, false); err != nil {
		t.Fatal(err)
	}
	if got := stateOf(t, n, 4); got != StateOffline {
		t.Fatalf("state = %s, want Offline", got)
	}
	if err := n.s.CheckStores(ctx); err != nil {
		t.Fatal(err)
	}
	if got := stateOf(t, n, 4); got != StateOffline {
		t.Fatalf("state with a region = %s, want Offline", got)
	}
	// The region is split away from store 4 by a newer region covering it,
	// but store 4's last heartbeat still lists regions (a split-born region
	// PD has not heard of yet would look the same): not buried.
	if _, err := n.s.RegionHeartbeat(ctx, heartbeat(region(11, "", "", 1, 2, 1, 2, 3), 1)); err != nil {
		t.Fatal(err)
	}
	if got := stateOf(t, n, 4); got != StateOffline {
		t.Fatalf("state while the store lists a region = %s, want Offline", got)
	}
	// Its next heartbeat lists none: buried.
	n.reportEmpty(t, 4)
	if got := stateOf(t, n, 4); got != StateTombstone {
		t.Fatalf("state = %s, want Tombstone", got)
	}
}

// TestCheckStoresBuriesSilentOfflineStore: a store that stopped
// heartbeating cannot report its replicas; once PD's view has none there
// and the store is Disconnected, its stale list no longer holds it.
func TestCheckStoresBuriesSilentOfflineStore(t *testing.T) {
	n := newLeader(t)
	n.register(t, 1, 2, 3, 4)
	ctx := ctxT(t)
	if err := n.s.DeleteStore(ctx, 4, false); err != nil {
		t.Fatal(err)
	}
	if err := n.s.CheckStores(ctx); err != nil {
		t.Fatal(err)
	}
	if got := stateOf(t, n, 4); got != StateOffline {
		t.Fatalf("state while the store lists regions = %s, want Offline", got)
	}
	n.clock.Advance(DefaultDisconnectAfter + time.Second)
	for _, id := range []uint64{1, 2, 3} {
		if _, err := n.s.StoreHeartbeat(ctx, stats(id), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.s.CheckStores(ctx); err != nil {
		t.Fatal(err)
	}
	if got := stateOf(t, n, 4); got != StateTombstone {
		t.Fatalf("state of a silent store with no region in PD's view = %s, want Tombstone", got)
	}
}

// TestNoRaftReadPerCall: once the leader loaded its cache in its raft term,
// heartbeats that change nothing persisted and lookups read nothing from
// the system keyspace; a follower refuses them; leading again in a later
// term reloads (DESIGN.md "Leadership and staleness").
func TestNoRaftReadPerCall(t *testing.T) {
	n := newLeader(t)
	ctx := ctxT(t)
	n.register(t, 1, 2, 3)
	r := region(10, "", "", 1, 1, 1, 2, 3)
	if _, err := n.s.RegionHeartbeat(ctx, heartbeat(r, 1)); err != nil {
		t.Fatal(err)
	}
	reads := n.kv.reads.Load()
	for i := range 10 {
		n.register(t, 1, 2, 3)
		hb := heartbeat(r, 1)
		hb.ApproximateSize = uint64(i)
		if _, err := n.s.RegionHeartbeat(ctx, hb); err != nil {
			t.Fatal(err)
		}
		if info, err := n.s.GetRegion(ctx, []byte("k")); err != nil || info.ApproximateSize != uint64(i) {
			t.Fatalf("GetRegion after heartbeat %d: size %d, %v", i, info.ApproximateSize, err)
		}
	}
	if got := n.kv.reads.Load() - reads; got != 0 {
		t.Fatalf("heartbeats and lookups did %d system-keyspace reads, want 0", got)
	}
	n.kv.setLeader(false)
	if _, err := n.s.StoreHeartbeat(ctx, stats(1), storeMeta(1, addrOf(1))); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("store heartbeat on a follower: %v, want ErrNotLeader", err)
	}
	if _, err := n.s.GetRegion(ctx, []byte("k")); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("lookup on a follower: %v, want ErrNotLeader", err)
	}
	n.kv.setLeader(true)
	if _, err := n.s.GetRegion(ctx, []byte("k")); err != nil {
		t.Fatal(err)
	}
	if n.kv.reads.Load() == reads {
		t.Fatal("leading in a new term did not reload the cache")
	}
}

// TestReadsDoNotWaitForRegionWrite: while a region change waits for its
// raft write, lookups and heartbeats of other regions that change nothing
// are served; the changing region's own heartbeats wait for it, so they
// are checked against the new record.
func TestReadsDoNotWaitForRegionWrite(t *testing.T) {
	n := newLeader(t)
	ctx := ctxT(t)
	n.register(t, 1, 2, 3)
	for _, r := range []*metav1.Region{region(10, "", "m", 1, 2, 1, 2, 3), region(20, "m", "", 1, 2, 1, 2, 3)} {
		if _, err := n.s.RegionHeartbeat(ctx, heartbeat(r, 1)); err != nil {
			t.Fatal(err)
		}
	}
	entered, release := make(chan struct{}), make(chan struct{})
	hook := func() {
		close(entered)
		<-release
	}
	n.kv.txnHook.Store(&hook)
	moved := heartbeat(region(10, "", "m", 1, 2, 1, 2, 3), 2) // the leader moves: persisted, a raft write
	moved.Leader = moved.Region.Peers[1]
	done := make(chan error, 1)
	go func() {
		_, err := n.s.RegionHeartbeat(ctx, moved)
		done <- err
	}()
	<-entered
	if info, err := n.s.GetRegion(ctx, []byte("a")); err != nil || info.Region.GetId() != 10 {
		t.Fatalf("lookup during the write: %v, %v", info.Region, err)
	}
	n.register(t, 1)
	if _, err := n.s.RegionHeartbeat(ctx, heartbeat(region(20, "m", "", 1, 2, 1, 2, 3), 1)); err != nil {
		t.Fatalf("unchanged heartbeat of another region during the write: %v", err)
	}
	old := make(chan error, 1)
	go func() { // the old leader's last heartbeat, sent before it stepped down
		_, err := n.s.RegionHeartbeat(ctx, heartbeat(region(10, "", "m", 1, 2, 1, 2, 3), 1))
		old <- err
	}()
	n.kv.txnHook.Store(nil)
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := <-old; !errors.Is(err, ErrStaleRegion) {
		t.Fatalf("the old leader's heartbeat after the new term was written: %v, want ErrStaleRegion", err)
	}
	if info, err := n.s.GetRegionByID(ctx, 10); err != nil || info.Leader.GetStoreId() != 2 {
		t.Fatalf("after the write: leader %v, %v; want the peer on store 2", info.Leader, err)
	}
}
