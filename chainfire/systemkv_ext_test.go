package chainfire_test

import (
	"testing"
	"time"

	"github.com/centra-cloud/centra/chainfire/client"
	"github.com/centra-cloud/centra/gen/etcdserverpb"
)

func TestSystemKeyspace(t *testing.T) {
	n := startNode(t)
	ctx := testCtx(t, 10*time.Second)
	var kv client.SystemKV = n.srv
	if !kv.IsLeader() {
		t.Fatal("single node is not the leader")
	}
	if term, leading := kv.LeaderTerm(); !leading || term == 0 {
		t.Fatalf("LeaderTerm = %d, %v; want the single node leading in a term >= 1", term, leading)
	}
	// Create only if absent; a second create fails the compare.
	ok, err := kv.Txn(ctx, []client.SysCompare{{Key: []byte("pd/a"), Version: 0}}, []client.SysKV{{Key: []byte("pd/a"), Value: []byte("1")}}, nil)
	if err != nil || !ok {
		t.Fatalf("create: %v %v", ok, err)
	}
	if ok, err = kv.Txn(ctx, []client.SysCompare{{Key: []byte("pd/a"), Version: 0}}, []client.SysKV{{Key: []byte("pd/a"), Value: []byte("x")}}, nil); err != nil || ok {
		t.Fatalf("second create applied: %v %v", ok, err)
	}
	if ok, err = kv.Txn(ctx, []client.SysCompare{{Key: []byte("pd/a"), Version: 1}}, []client.SysKV{{Key: []byte("pd/a"), Value: []byte("2")}, {Key: []byte("pd/b"), Value: []byte("b")}}, [][]byte{[]byte("pd/none")}); err != nil || !ok {
		t.Fatalf("cas: %v %v", ok, err)
	}
	got, err := kv.Get(ctx, []byte("pd/a"))
	if err != nil || string(got.Value) != "2" || got.Version != 2 {
		t.Fatalf("get: %+v %v", got, err)
	}
	list, err := kv.List(ctx, []byte("pd/"))
	if err != nil || len(list) != 2 || string(list[1].Key) != "pd/b" || list[1].Version != 1 {
		t.Fatalf("list: %+v %v", list, err)
	}
	if ok, err = kv.Txn(ctx, nil, nil, [][]byte{[]byte("pd/b")}); err != nil || !ok {
		t.Fatal(err)
	}
	if got, _ := kv.Get(ctx, []byte("pd/b")); got.Version != 0 {
		t.Fatalf("deleted key: %+v", got)
	}
	// Invisible to etcd clients, and no KV revision consumed.
	r, err := n.get(t, &etcdserverpb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}})
	if err != nil || r.Count != 0 || r.Header.Revision != 1 {
		t.Fatalf("KV range sees system keys: %v %v", r, err)
	}
}
