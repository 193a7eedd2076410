package pd

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
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
	// The region is split away from store 4 by a newer region covering it.
	if _, err := n.s.RegionHeartbeat(ctx, heartbeat(region(11, "", "", 1, 2, 1, 2, 3), 1)); err != nil {
		t.Fatal(err)
	}
	if got := stateOf(t, n, 4); got != StateTombstone {
		t.Fatalf("state = %s, want Tombstone", got)
	}
}
