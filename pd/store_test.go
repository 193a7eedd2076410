package pd

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "github.com/centra-cloud/centra/gen/centra/meta/v1"
)

func stateOf(t *testing.T, n *testNode, id uint64) string {
	t.Helper()
	info, err := n.s.GetStore(ctxT(t), id)
	if err != nil {
		t.Fatal(err)
	}
	return info.StateName
}

func TestStoreStatesFollowHeartbeats(t *testing.T) {
	n := newLeader(t)
	n.register(t, 1, 2, 3)
	if got := stateOf(t, n, 1); got != StateUp {
		t.Fatalf("state after registration = %s, want Up", got)
	}
	n.clock.Advance(20 * time.Second)
	if got := stateOf(t, n, 1); got != StateUp {
		t.Fatalf("state after exactly 20s = %s, want Up", got)
	}
	n.clock.Advance(time.Second)
	if got := stateOf(t, n, 1); got != StateDisconnected {
		t.Fatalf("state after 21s = %s, want Disconnected", got)
	}
	// Lower max-store-down-time through the HTTP API.
	h := n.s.HTTPHandler()
	if code, body := do(t, h, "POST", "/pd/api/v1/config/schedule", `{"max-store-down-time":"1m"}`); code != 200 || body != "\"The config is updated.\"\n" {
		t.Fatalf("POST config = %d %s", code, body)
	}
	n.clock.Advance(40 * time.Second) // 61 s since the last heartbeat
	if got := stateOf(t, n, 1); got != StateDown {
		t.Fatalf("state after 61s with max-store-down-time 1m = %s, want Down", got)
	}
	if _, err := n.s.StoreHeartbeat(ctxT(t), stats(1), nil); err != nil {
		t.Fatal(err)
	}
	if got := stateOf(t, n, 1); got != StateUp {
		t.Fatalf("state after a new heartbeat = %s, want Up", got)
	}
	if got := stateOf(t, n, 2); got != StateDown {
		t.Fatalf("store 2 = %s, want Down", got)
	}
}

func TestHeartbeatOfUnknownStoreIsRefused(t *testing.T) {
	n := newLeader(t)
	_, err := n.s.StoreHeartbeat(ctxT(t), stats(9), nil)
	if !errors.Is(err, ErrStoreNotFound) {
		t.Fatalf("err = %v, want ErrStoreNotFound", err)
	}
}

func TestDuplicateStoreIDIsRefusedNamingBothAddresses(t *testing.T) {
	n := newLeader(t)
	if _, err := n.s.PutStore(ctxT(t), storeMeta(4, "10.0.0.4:2379")); err != nil {
		t.Fatal(err)
	}
	_, err := n.s.PutStore(ctxT(t), storeMeta(4, "10.0.0.9:2379"))
	if !errors.Is(err, ErrStoreConflict) {
		t.Fatalf("err = %v, want ErrStoreConflict", err)
	}
	want := "store_id 4 is already registered by 10.0.0.4:2379; this store is 10.0.0.9:2379: give it a new store_id and wipe its data dir"
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %q, want it to contain %q", err, want)
	}
	// The same heartbeat path refuses it too.
	if _, err := n.s.StoreHeartbeat(ctxT(t), stats(4), storeMeta(4, "10.0.0.9:2379")); !errors.Is(err, ErrStoreConflict) {
		t.Fatalf("heartbeat err = %v, want ErrStoreConflict", err)
	}
	// The runbook's fix: a new store_id from the same machine works.
	if _, err := n.s.PutStore(ctxT(t), storeMeta(5, "10.0.0.9:2379")); err != nil {
		t.Fatalf("new id: %v", err)
	}
	// A restart of the original keeps its id.
	if _, err := n.s.PutStore(ctxT(t), storeMeta(4, "10.0.0.4:2379")); err != nil {
		t.Fatalf("restart: %v", err)
	}
	// Another id at a live store's address is refused, naming both.
	_, err = n.s.PutStore(ctxT(t), storeMeta(6, "10.0.0.4:2379"))
	if !errors.Is(err, ErrStoreConflict) || !strings.Contains(err.Error(), "store_id 4") || !strings.Contains(err.Error(), "store_id 6") {
		t.Fatalf("err = %v, want a conflict naming store_id 4 and 6", err)
	}
}

func TestPutStoreWritesOnlyOnChange(t *testing.T) {
	n := newLeader(t)
	n.register(t, 1)
	before, _ := n.kv.Get(ctxT(t), storeKey(1))
	for range 3 {
		n.clock.Advance(10 * time.Second)
		n.register(t, 1)
	}
	after, _ := n.kv.Get(ctxT(t), storeKey(1))
	if before.Version != after.Version {
		t.Fatalf("store key rewritten by unchanged heartbeats: version %d -> %d", before.Version, after.Version)
	}
	m := storeMeta(1, addrOf(1))
	m.Version = "v2"
	if _, err := n.s.PutStore(ctxT(t), m); err != nil {
		t.Fatal(err)
	}
	after, _ = n.kv.Get(ctxT(t), storeKey(1))
	if after.Version != before.Version+1 {
		t.Fatalf("changed metadata not persisted: version %d -> %d", before.Version, after.Version)
	}
}

func TestDeleteStore(t *testing.T) {
	n := newLeader(t)
	n.register(t, 1, 2, 3)
	h := n.s.HTTPHandler()

	code, body := do(t, h, "DELETE", "/pd/api/v1/store/1", "")
	if code != http.StatusBadRequest || !strings.Contains(body, "max-replicas 3") {
		t.Fatalf("DELETE with 3 stores = %d %s, want 400 naming max-replicas", code, body)
	}
	if code, _ := do(t, h, "DELETE", "/pd/api/v1/store/77", ""); code != http.StatusNotFound {
		t.Fatalf("DELETE unknown = %d, want 404", code)
	}

	// Store 1 holds a region: forced removal leaves it Offline.
	if _, err := n.s.RegionHeartbeat(ctxT(t), heartbeat(region(10, "", "", 1, 1, 1, 2, 3), 1)); err != nil {
		t.Fatal(err)
	}
	code, body = do(t, h, "DELETE", "/pd/api/v1/store/1?force", "")
	if code != 200 || body != "\"The store is set as Offline.\"\n" {
		t.Fatalf("forced DELETE = %d %s", code, body)
	}
	if got := stateOf(t, n, 1); got != StateOffline {
		t.Fatalf("state = %s, want Offline", got)
	}
	// Repeating is a no-op.
	if code, _ := do(t, h, "DELETE", "/pd/api/v1/store/1", ""); code != 200 {
		t.Fatalf("repeated DELETE = %d, want 200", code)
	}
	// The peer moves away (conf change) and the store reports no region:
	// it is buried.
	if _, err := n.s.RegionHeartbeat(ctxT(t), heartbeat(region(10, "", "", 2, 1, 2, 3), 1)); err != nil {
		t.Fatal(err)
	}
	n.reportEmpty(t, 1)
	if got := stateOf(t, n, 1); got != StateTombstone {
		t.Fatalf("state after its last peer left = %s, want Tombstone", got)
	}
	if code, _ := do(t, h, "DELETE", "/pd/api/v1/store/1", ""); code != http.StatusGone {
		t.Fatalf("DELETE tombstone = %d, want 410", code)
	}
	// A tombstone cannot come back.
	if _, err := n.s.PutStore(ctxT(t), storeMeta(1, addrOf(1))); !errors.Is(err, ErrStoreTombstone) {
		t.Fatalf("re-register tombstone: %v", err)
	}
	// Hidden from the default list, shown with ?state=2.
	_, body = do(t, h, "GET", "/pd/api/v1/stores", "")
	if !strings.Contains(body, `"count": 2`) || strings.Contains(body, "Tombstone") {
		t.Fatalf("default list shows the tombstone:\n%s", body)
	}
	_, body = do(t, h, "GET", "/pd/api/v1/stores?state=2", "")
	if !strings.Contains(body, `"count": 1`) || !strings.Contains(body, `"state_name": "Tombstone"`) {
		t.Fatalf("?state=2:\n%s", body)
	}
	if code, _ := do(t, h, "GET", "/pd/api/v1/stores?state=9", ""); code != http.StatusInternalServerError {
		t.Fatalf("?state=9 = %d, want 500 as PD", code)
	}
}

func TestDeleteStoreWithoutRegionsIsTombstoneAtOnce(t *testing.T) {
	n := newLeader(t)
	n.register(t, 1, 2, 3, 4)
	n.reportEmpty(t, 4)
	if err := n.s.DeleteStore(ctxT(t), 4, false); err != nil {
		t.Fatal(err)
	}
	if got := stateOf(t, n, 4); got != StateTombstone {
		t.Fatalf("state = %s, want Tombstone", got)
	}
	info, _ := n.s.GetStore(ctxT(t), 4)
	if info.Store.GetNodeState() != metav1.NodeState_NODE_STATE_REMOVED {
		t.Fatalf("node_state = %v, want Removed", info.Store.GetNodeState())
	}
}

func TestNewLeaderGivesStoresGrace(t *testing.T) {
	mem := newMemKV()
	clock := newFakeClock()
	a := newTestNode(t, mem.view(true), clock)
	a.register(t, 1)
	clock.Advance(time.Hour)
	if got := stateOf(t, a, 1); got != StateDown {
		t.Fatalf("old leader: %s, want Down", got)
	}
	a.kv.setLeader(false)
	b := newTestNode(t, mem.view(true), clock)
	if got := stateOf(t, b, 1); got != StateUp {
		t.Fatalf("new leader: %s, want Up (grace)", got)
	}
	if _, err := a.s.GetStore(ctxT(t), 1); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("old leader: err = %v, want ErrNotLeader", err)
	}
}

// TestReloadBySameLeaderKeepsStoreClocks: a leader whose cache was
// invalidated (a lost compare-and-swap) reloads it without giving Down
// stores a fresh grace period, which would make them scheduling targets
// again; A -> B -> A still does (TestNewLeaderGivesStoresGrace).
func TestReloadBySameLeaderKeepsStoreClocks(t *testing.T) {
	n := newLeader(t)
	n.register(t, 1, 2)
	n.clock.Advance(time.Hour)
	if _, err := n.s.StoreHeartbeat(ctxT(t), stats(2), nil); err != nil {
		t.Fatal(err)
	}
	unlock := n.s.lockWrite()
	n.s.invalidate()
	unlock()
	if got := stateOf(t, n, 1); got != StateDown {
		t.Fatalf("store 1 after the same leader reloaded: %s, want still Down", got)
	}
	if got := stateOf(t, n, 2); got != StateUp {
		t.Fatalf("store 2 after the same leader reloaded: %s, want Up", got)
	}
}

// TestDiskLowStoresReachLeaders: a store heartbeat with disk_low puts the
// store into the disk_low_stores of every region heartbeat response of a
// region with a peer there (and no other), until a heartbeat without it,
// or until the store has been silent for DisconnectAfter.
func TestDiskLowStoresReachLeaders(t *testing.T) {
	n := newLeader(t)
	n.register(t, 1, 2, 3, 4)
	ctx := ctxT(t)
	low := func(r *metav1.Region) []uint64 {
		t.Helper()
		resp, err := n.s.RegionHeartbeat(ctx, heartbeat(r, 1))
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetDiskLowStores()
	}
	onFull, elsewhere := region(10, "", "m", 1, 1, 1, 2, 3), region(11, "m", "", 1, 1, 1, 2, 4)
	if got := low(onFull); len(got) != 0 {
		t.Fatalf("no store short of disk: disk_low_stores %v", got)
	}
	st := stats(3)
	st.DiskLow = true
	if _, err := n.s.StoreHeartbeat(ctx, st, nil); err != nil {
		t.Fatal(err)
	}
	if got := low(onFull); !slices.Equal(got, []uint64{3}) {
		t.Fatalf("store 3 short of disk: disk_low_stores of a region with a peer there = %v, want [3]", got)
	}
	if got := low(elsewhere); len(got) != 0 {
		t.Fatalf("store 3 short of disk: disk_low_stores of a region without a peer there = %v, want none", got)
	}
	n.clock.Advance(21 * time.Second)
	if got := low(onFull); len(got) != 0 {
		t.Fatalf("store 3 silent for 21 s: disk_low_stores %v, want none", got)
	}
	if _, err := n.s.StoreHeartbeat(ctx, st, nil); err != nil {
		t.Fatal(err)
	}
	if got := low(onFull); !slices.Equal(got, []uint64{3}) {
		t.Fatalf("store 3 short of disk again: disk_low_stores %v, want [3]", got)
	}
	if _, err := n.s.StoreHeartbeat(ctx, stats(3), nil); err != nil {
		t.Fatal(err)
	}
	if got := low(onFull); len(got) != 0 {
		t.Fatalf("store 3 has room again: disk_low_stores %v, want none", got)
	}
}
