package chainfire_test

import (
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/centra-cloud/centra/gen/etcdserverpb"
)

func TestLeaseLifecycle(t *testing.T) {
	n := startNode(t)
	ctx := testCtx(t, 30*time.Second)
	grant := func(ttl int64) int64 {
		r, err := n.lease.LeaseGrant(ctx, connect.NewRequest(&etcdserverpb.LeaseGrantRequest{TTL: ttl}))
		if err != nil || r.Msg.ID == 0 || r.Msg.TTL != ttl {
			t.Fatalf("grant: %v %v", r, err)
		}
		return r.Msg.ID
	}
	exists := func(k string) bool {
		r, err := n.get(t, &etcdserverpb.RangeRequest{Key: []byte(k)})
		if err != nil {
			t.Fatal(err)
		}
		return len(r.Kvs) == 1
	}
	long, short := grant(60), grant(1)
	n.put(t, "long", "v", long)
	n.put(t, "short", "v", short)

	ttl, err := n.lease.LeaseTimeToLive(ctx, connect.NewRequest(&etcdserverpb.LeaseTimeToLiveRequest{ID: long, Keys: true}))
	if err != nil || ttl.Msg.GrantedTTL != 60 || ttl.Msg.TTL <= 0 || len(ttl.Msg.Keys) != 1 {
		t.Fatalf("time to live: %v %v", ttl, err)
	}
	// Keep-alives hold the long lease; the short one expires through raft
	// and takes its key with it.
	ka := n.lease.LeaseKeepAlive(ctx)
	if err := ka.Send(&etcdserverpb.LeaseKeepAliveRequest{ID: long}); err != nil {
		t.Fatal(err)
	}
	if r, err := ka.Receive(); err != nil || r.ID != long || r.TTL != 60 {
		t.Fatalf("keep-alive: %v %v", r, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for exists("short") {
		if time.Now().After(deadline) {
			t.Fatal("key of an expired lease still exists after 10s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r, err := n.lease.LeaseTimeToLive(ctx, connect.NewRequest(&etcdserverpb.LeaseTimeToLiveRequest{ID: short})); err != nil || r.Msg.TTL != -1 {
		t.Fatalf("expired lease time to live: %v %v", r, err)
	}
	if err := ka.Send(&etcdserverpb.LeaseKeepAliveRequest{ID: short}); err != nil {
		t.Fatal(err)
	}
	if r, err := ka.Receive(); err != nil || r.TTL != 0 {
		t.Fatalf("keep-alive of an expired lease: %v %v", r, err)
	}
	list, err := n.lease.LeaseLeases(ctx, connect.NewRequest(&etcdserverpb.LeaseLeasesRequest{}))
	if err != nil || len(list.Msg.Leases) != 1 || list.Msg.Leases[0].ID != long {
		t.Fatalf("leases: %v %v", list, err)
	}
	if _, err := n.lease.LeaseRevoke(ctx, connect.NewRequest(&etcdserverpb.LeaseRevokeRequest{ID: long})); err != nil {
		t.Fatal(err)
	}
	if exists("long") {
		t.Fatal("revoke kept the attached key")
	}
	_, err = n.lease.LeaseRevoke(ctx, connect.NewRequest(&etcdserverpb.LeaseRevokeRequest{ID: long}))
	if connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("second revoke: %v", err)
	}
}
