package chainfire_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/centra-cloud/centra/chainfire"
	"github.com/centra-cloud/centra/gen/etcdserverpb"
	"github.com/centra-cloud/centra/gen/mvccpb"
)

func (n *node) put(t *testing.T, k, v string, lease int64) *etcdserverpb.PutResponse {
	t.Helper()
	r, err := n.kv.Put(testCtx(t, 5*time.Second), connect.NewRequest(&etcdserverpb.PutRequest{Key: []byte(k), Value: []byte(v), Lease: lease, PrevKv: true}))
	if err != nil {
		t.Fatalf("put %s: %v", k, err)
	}
	return r.Msg
}

func (n *node) get(t *testing.T, req *etcdserverpb.RangeRequest) (*etcdserverpb.RangeResponse, error) {
	t.Helper()
	r, err := n.kv.Range(testCtx(t, 5*time.Second), connect.NewRequest(req))
	if err != nil {
		return nil, err
	}
	return r.Msg, nil
}

func kvString(kvs []*mvccpb.KeyValue) string {
	s := ""
	for _, kv := range kvs {
		s += fmt.Sprintf("%s=%s@%d/%d/v%d ", kv.Key, kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version)
	}
	return s
}

func wantCode(t *testing.T, err error, code connect.Code, sentinel error) {
	t.Helper()
	if connect.CodeOf(err) != code {
		t.Fatalf("error %v: code %v, want %v", err, connect.CodeOf(err), code)
	}
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Message() != sentinel.Error() {
		t.Fatalf("error %v: want message %q (etcd's)", err, sentinel)
	}
}

func TestKVRevisionsAndRanges(t *testing.T) {
	n := startNode(t)
	// As etcd: a new store is at revision 1 and the first write gets 2.
	if r, err := n.get(t, &etcdserverpb.RangeRequest{Key: []byte("a")}); err != nil || r.Header.Revision != 1 {
		t.Fatalf("empty store: %v %v, want revision 1", r, err)
	}
	if r := n.put(t, "a", "1", 0); r.Header.Revision != 2 || r.PrevKv != nil {
		t.Fatalf("first put: %v", r)
	}
	n.put(t, "b", "2", 0)
	n.put(t, "c", "3", 0)
	if r := n.put(t, "a", "4", 0); r.Header.Revision != 5 || string(r.PrevKv.Value) != "1" {
		t.Fatalf("overwrite: %v", r)
	}
	all := &etcdserverpb.RangeRequest{Key: []byte("a"), RangeEnd: []byte{0}}
	r, err := n.get(t, all)
	if err != nil {
		t.Fatal(err)
	}
	if got := kvString(r.Kvs); got != "a=4@2/5/v2 b=2@3/3/v1 c=3@4/4/v1 " || r.Count != 3 || r.Header.Revision != 5 {
		t.Fatalf("range all: %s count %d rev %d", got, r.Count, r.Header.Revision)
	}
	for _, tc := range []struct {
		name string
		req  *etcdserverpb.RangeRequest
		want string
		more bool
	}{
		{"at revision 2", &etcdserverpb.RangeRequest{Key: []byte("a"), RangeEnd: []byte{0}, Revision: 3}, "a=1@2/2/v1 b=2@3/3/v1 ", false},
		{"limit", &etcdserverpb.RangeRequest{Key: []byte("a"), RangeEnd: []byte{0}, Limit: 2}, "a=4@2/5/v2 b=2@3/3/v1 ", true},
		{"sort by mod desc", &etcdserverpb.RangeRequest{Key: []byte("a"), RangeEnd: []byte{0}, SortOrder: etcdserverpb.RangeRequest_DESCEND, SortTarget: etcdserverpb.RangeRequest_MOD, Limit: 2}, "a=4@2/5/v2 c=3@4/4/v1 ", true},
		{"key desc", &etcdserverpb.RangeRequest{Key: []byte("a"), RangeEnd: []byte{0}, SortOrder: etcdserverpb.RangeRequest_DESCEND}, "c=3@4/4/v1 b=2@3/3/v1 a=4@2/5/v2 ", false},
		{"min mod", &etcdserverpb.RangeRequest{Key: []byte("a"), RangeEnd: []byte{0}, MinModRevision: 4}, "a=4@2/5/v2 c=3@4/4/v1 ", false},
		{"half open", &etcdserverpb.RangeRequest{Key: []byte("b"), RangeEnd: []byte("c")}, "b=2@3/3/v1 ", false},
		{"serializable", &etcdserverpb.RangeRequest{Key: []byte("c"), Serializable: true}, "c=3@4/4/v1 ", false},
	} {
		r, err := n.get(t, tc.req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := kvString(r.Kvs); got != tc.want || r.More != tc.more {
			t.Errorf("%s: got %q more=%v, want %q more=%v", tc.name, got, r.More, tc.want, tc.more)
		}
	}
	r, _ = n.get(t, &etcdserverpb.RangeRequest{Key: []byte("a"), RangeEnd: []byte{0}, CountOnly: true})
	if r.Count != 3 || len(r.Kvs) != 0 {
		t.Errorf("count only: %v", r)
	}
	r, _ = n.get(t, &etcdserverpb.RangeRequest{Key: []byte("a"), KeysOnly: true})
	if len(r.Kvs) != 1 || r.Kvs[0].Value != nil {
		t.Errorf("keys only: %v", r)
	}
	_, err = n.get(t, &etcdserverpb.RangeRequest{Key: []byte("a"), Revision: 99})
	wantCode(t, err, connect.CodeOutOfRange, chainfire.ErrFutureRev)
	_, err = n.kv.Put(testCtx(t, time.Second), connect.NewRequest(&etcdserverpb.PutRequest{}))
	wantCode(t, err, connect.CodeInvalidArgument, chainfire.ErrEmptyKey)
	_, err = n.kv.Put(testCtx(t, time.Second), connect.NewRequest(&etcdserverpb.PutRequest{Key: []byte("nope"), IgnoreValue: true}))
	wantCode(t, err, connect.CodeInvalidArgument, chainfire.ErrKeyNotFound)

	// Delete a prefix with prev_kv, then compact and read below it.
	d, err := n.kv.DeleteRange(testCtx(t, 5*time.Second), connect.NewRequest(&etcdserverpb.DeleteRangeRequest{Key: []byte("b"), RangeEnd: []byte("d"), PrevKv: true}))
	if err != nil || d.Msg.Deleted != 2 || len(d.Msg.PrevKvs) != 2 || d.Msg.Header.Revision != 6 {
		t.Fatalf("delete range: %v %v", d, err)
	}
	if _, err := n.kv.Compact(testCtx(t, 5*time.Second), connect.NewRequest(&etcdserverpb.CompactionRequest{Revision: 5})); err != nil {
		t.Fatal(err)
	}
	_, err = n.get(t, &etcdserverpb.RangeRequest{Key: []byte("a"), Revision: 4})
	wantCode(t, err, connect.CodeOutOfRange, chainfire.ErrCompacted)
	if r, err := n.get(t, &etcdserverpb.RangeRequest{Key: []byte("a"), RangeEnd: []byte{0}, Revision: 5}); err != nil || kvString(r.Kvs) != "a=4@2/5/v2 b=2@3/3/v1 c=3@4/4/v1 " {
		t.Fatalf("read at the compaction revision: %v %v", r, err)
	}
}

func op(req any) *etcdserverpb.RequestOp {
	switch r := req.(type) {
	case *etcdserverpb.PutRequest:
		return &etcdserverpb.RequestOp{Request: &etcdserverpb.RequestOp_RequestPut{RequestPut: r}}
	case *etcdserverpb.RangeRequest:
		return &etcdserverpb.RequestOp{Request: &etcdserverpb.RequestOp_RequestRange{RequestRange: r}}
	case *etcdserverpb.DeleteRangeRequest:
		return &etcdserverpb.RequestOp{Request: &etcdserverpb.RequestOp_RequestDeleteRange{RequestDeleteRange: r}}
	case *etcdserverpb.TxnRequest:
		return &etcdserverpb.RequestOp{Request: &etcdserverpb.RequestOp_RequestTxn{RequestTxn: r}}
	}
	panic("unknown op")
}

func TestTxn(t *testing.T) {
	n := startNode(t)
	n.put(t, "k", "v1", 0) // rev 2 (a new store is at revision 1, as etcd)
	txn := func(req *etcdserverpb.TxnRequest) (*etcdserverpb.TxnResponse, error) {
		r, err := n.kv.Txn(testCtx(t, 5*time.Second), connect.NewRequest(req))
		if err != nil {
			return nil, err
		}
		return r.Msg, nil
	}
	// Success branch: the range sees the txn's own put; one revision for all.
	r, err := txn(&etcdserverpb.TxnRequest{
		Compare: []*etcdserverpb.Compare{{Key: []byte("k"), Target: etcdserverpb.Compare_VALUE, Result: etcdserverpb.Compare_EQUAL, TargetUnion: &etcdserverpb.Compare_Value{Value: []byte("v1")}}},
		Success: []*etcdserverpb.RequestOp{
			op(&etcdserverpb.PutRequest{Key: []byte("k"), Value: []byte("v2")}),
			op(&etcdserverpb.PutRequest{Key: []byte("j"), Value: []byte("x")}),
			op(&etcdserverpb.RangeRequest{Key: []byte("j"), RangeEnd: []byte("l")}),
		},
	})
	if err != nil || !r.Succeeded || r.Header.Revision != 3 {
		t.Fatalf("txn: %v %v", r, err)
	}
	if got := kvString(r.Responses[2].GetResponseRange().Kvs); got != "j=x@3/3/v1 k=v2@2/3/v2 " {
		t.Fatalf("range inside txn: %s", got)
	}
	// Failure branch with a nested txn; version compare on a missing key is 0.
	r, err = txn(&etcdserverpb.TxnRequest{
		Compare: []*etcdserverpb.Compare{{Key: []byte("k"), Target: etcdserverpb.Compare_MOD, Result: etcdserverpb.Compare_LESS, TargetUnion: &etcdserverpb.Compare_ModRevision{ModRevision: 3}}},
		Failure: []*etcdserverpb.RequestOp{op(&etcdserverpb.TxnRequest{
			Compare: []*etcdserverpb.Compare{{Key: []byte("missing"), Target: etcdserverpb.Compare_VERSION, Result: etcdserverpb.Compare_EQUAL, TargetUnion: &etcdserverpb.Compare_Version{Version: 0}}},
			Success: []*etcdserverpb.RequestOp{op(&etcdserverpb.DeleteRangeRequest{Key: []byte("j")})},
		})},
	})
	if err != nil || r.Succeeded || !r.Responses[0].GetResponseTxn().Succeeded || r.Responses[0].GetResponseTxn().Responses[0].GetResponseDeleteRange().Deleted != 1 {
		t.Fatalf("nested txn: %v %v", r, err)
	}
	// A missing lease in the chosen branch fails the whole txn: nothing applied.
	_, err = txn(&etcdserverpb.TxnRequest{Success: []*etcdserverpb.RequestOp{
		op(&etcdserverpb.PutRequest{Key: []byte("z"), Value: []byte("1")}),
		op(&etcdserverpb.PutRequest{Key: []byte("y"), Value: []byte("1"), Lease: 12345}),
	}})
	wantCode(t, err, connect.CodeNotFound, chainfire.ErrLeaseNotFound)
	if g, _ := n.get(t, &etcdserverpb.RangeRequest{Key: []byte("z")}); len(g.Kvs) != 0 || g.Header.Revision != 4 {
		t.Fatalf("failed txn left a write: %v", g)
	}
	_, err = txn(&etcdserverpb.TxnRequest{Success: []*etcdserverpb.RequestOp{
		op(&etcdserverpb.PutRequest{Key: []byte("d"), Value: []byte("1")}),
		op(&etcdserverpb.DeleteRangeRequest{Key: []byte("a"), RangeEnd: []byte("e")}),
	}})
	wantCode(t, err, connect.CodeInvalidArgument, chainfire.ErrDuplicateKey)

	// A read-only txn is served as a read: correct answer, no new revision.
	r, err = txn(&etcdserverpb.TxnRequest{
		Compare: []*etcdserverpb.Compare{{Key: []byte("k"), Target: etcdserverpb.Compare_VALUE, Result: etcdserverpb.Compare_EQUAL, TargetUnion: &etcdserverpb.Compare_Value{Value: []byte("v2")}}},
		Success: []*etcdserverpb.RequestOp{op(&etcdserverpb.RangeRequest{Key: []byte("k")})},
	})
	if err != nil || !r.Succeeded || string(r.Responses[0].GetResponseRange().Kvs[0].Value) != "v2" || r.Header.Revision != 4 {
		t.Fatalf("read-only txn: %v %v", r, err)
	}
	if g, _ := n.get(t, &etcdserverpb.RangeRequest{Key: []byte("k")}); g.Header.Revision != 4 {
		t.Fatalf("read-only txn consumed a revision: %d", g.Header.Revision)
	}
}
