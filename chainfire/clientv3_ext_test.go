package chainfire_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	// etcd's Go client registers the same protobuf names as gen/.
	_ "github.com/centra-cloud/centra/internal/etcdcompat"
)

// etcdClient returns etcd's own Go client connected to n's grpc-go server,
// so tests assert what etcd's users see.
func (n *node) etcdClient(t *testing.T) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{n.grpcAddr}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// TestTxnSubResponseHeaders checks the revisions in the headers of a txn's
// responses are etcd's: a put carries the revision it created, a range the
// revision it read at (the txn's once it changed something), a delete the
// txn's revision once anything changed. Kubernetes takes a created object's
// resourceVersion from Responses[0].GetResponsePut().Header.Revision.
func TestTxnSubResponseHeaders(t *testing.T) {
	n := startNode(t)
	cli := n.etcdClient(t)
	ctx := testCtx(t, 20*time.Second)
	put, err := cli.Put(ctx, "a", "1")
	if err != nil {
		t.Fatal(err)
	}
	before := put.Header.Revision
	// Kubernetes' create: put if the key does not exist.
	r, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision("obj"), "=", 0)).
		Then(clientv3.OpGet("a"), clientv3.OpPut("obj", "v"), clientv3.OpGet("obj"), clientv3.OpDelete("a"), clientv3.OpDelete("missing")).
		Else(clientv3.OpGet("obj")).Commit()
	if err != nil {
		t.Fatal(err)
	}
	rev := r.Header.Revision
	if !r.Succeeded || rev != before+1 {
		t.Fatalf("txn: succeeded %v revision %d, want true and %d", r.Succeeded, rev, before+1)
	}
	want := []int64{before, rev, rev, rev, rev}
	for i, op := range r.Responses {
		var got int64
		switch {
		case op.GetResponseRange() != nil:
			got = op.GetResponseRange().Header.Revision
		case op.GetResponsePut() != nil:
			got = op.GetResponsePut().Header.Revision
		case op.GetResponseDeleteRange() != nil:
			got = op.GetResponseDeleteRange().Header.Revision
		}
		if got != want[i] {
			t.Errorf("response %d (%v): header revision %d, want %d", i, op, got, want[i])
		}
	}
	// Kubernetes' update: compare the mod revision, put.
	r, err = cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision("obj"), "=", rev)).
		Then(clientv3.OpPut("obj", "v2")).Else(clientv3.OpGet("obj")).Commit()
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Responses[0].GetResponsePut().Header.Revision; !r.Succeeded || got != rev+1 || r.Header.Revision != rev+1 {
		t.Fatalf("update txn: succeeded %v, put header revision %d, txn revision %d, want %d", r.Succeeded, got, r.Header.Revision, rev+1)
	}
	// A txn that changes nothing: every header carries the current revision.
	r, err = cli.Txn(ctx).Then(clientv3.OpDelete("missing"), clientv3.OpGet("obj")).Commit()
	if err != nil {
		t.Fatal(err)
	}
	if d, g := r.Responses[0].GetResponseDeleteRange().Header.Revision, r.Responses[1].GetResponseRange().Header.Revision; d != rev+1 || g != rev+1 || r.Header.Revision != rev+1 {
		t.Fatalf("no-op txn: delete header %d, range header %d, txn %d, want %d", d, g, r.Header.Revision, rev+1)
	}
}

// TestSortWithoutOrder: a sort target other than the key without an order
// sorts ascending, as etcd does (etcdctl get --sort-by=VALUE).
func TestSortWithoutOrder(t *testing.T) {
	n := startNode(t)
	cli := n.etcdClient(t)
	ctx := testCtx(t, 20*time.Second)
	for k, v := range map[string]string{"s/1": "c", "s/2": "a", "s/3": "b"} {
		if _, err := cli.Put(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		target clientv3.SortTarget
		order  clientv3.SortOrder
		want   string
	}{
		{clientv3.SortByValue, clientv3.SortNone, "abc"},
		{clientv3.SortByValue, clientv3.SortDescend, "cba"},
		{clientv3.SortByKey, clientv3.SortNone, "cab"},
		{clientv3.SortByKey, clientv3.SortDescend, "bac"},
	} {
		r, err := cli.Get(ctx, "s/", clientv3.WithPrefix(), clientv3.WithSort(tc.target, tc.order))
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		for _, kv := range r.Kvs {
			got += string(kv.Value)
		}
		if got != tc.want {
			t.Errorf("sort by %v order %v: values %q, want %q", tc.target, tc.order, got, tc.want)
		}
	}
}

// TestMemberURLsAndUpdate: etcd's API shows peer URLs with their scheme and
// accepts them with or without one; MemberUpdate accepts the member's own
// URL and refuses (clearly) a move, which dragonboat cannot do in place.
func TestMemberURLsAndUpdate(t *testing.T) {
	n := startNode(t)
	cli := n.etcdClient(t)
	ctx := testCtx(t, 20*time.Second)
	ml, err := cli.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	self := ml.Members[0]
	if len(ml.Members) != 1 || len(self.PeerURLs) != 1 || !strings.HasPrefix(self.PeerURLs[0], "http://127.0.0.1:") {
		t.Fatalf("member list: %v, want one member with an http:// peer URL", ml.Members)
	}
	learner := freeAddr(t)
	// clientv3 sends URLs with a scheme; centra's CLI sends HOST:PORT
	// (covered by the e2e membership tests).
	add, err := cli.MemberAddAsLearner(ctx, []string{"http://" + learner})
	if err != nil {
		t.Fatal(err)
	}
	if got := add.Member.PeerURLs; len(got) != 1 || got[0] != "http://"+learner || !add.Member.IsLearner {
		t.Fatalf("member add: %v, want peer URL http://%s as a learner", add.Member, learner)
	}
	other := freeAddr(t)
	if _, err := cli.MemberAdd(ctx, []string{"http://" + learner}); err == nil || !strings.Contains(err.Error(), "Peer URLs already exists") {
		t.Fatalf("member add of a used peer URL: %v", err)
	}

	up, err := cli.MemberUpdate(ctx, self.ID, self.PeerURLs)
	if err != nil || len(up.Members) != 2 {
		t.Fatalf("member update to the same URL: %v %v", up, err)
	}
	_, err = cli.MemberUpdate(ctx, self.ID, []string{"http://" + other})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "member-remove") {
		t.Fatalf("member update to a new address: %v, want FailedPrecondition naming member-remove", err)
	}
	_, err = cli.MemberUpdate(ctx, self.ID, []string{"https://" + learner})
	if !errors.Is(rpctypes.Error(err), rpctypes.ErrPeerURLExist) {
		t.Fatalf("member update to another member's URL: %v", err)
	}
	_, err = cli.MemberUpdate(ctx, 99, []string{"http://" + other})
	if !errors.Is(rpctypes.Error(err), rpctypes.ErrMemberNotFound) {
		t.Fatalf("member update of an unknown member: %v", err)
	}
}

// TestNestedTxnComparesBeforeTxn: the comparisons of a nested txn see the
// state before the whole txn, not the writes of the operations before it,
// as etcd evaluates every comparison of a txn up front (compareToPath).
// etcd answers: the outer put of k, then the nested txn's Then branch (k
// was still "v0"), so r = "then".
func TestNestedTxnComparesBeforeTxn(t *testing.T) {
	n := startNode(t)
	cli := n.etcdClient(t)
	ctx := testCtx(t, 20*time.Second)
	if _, err := cli.Put(ctx, "k", "v0"); err != nil {
		t.Fatal(err)
	}
	nested := clientv3.OpTxn(
		[]clientv3.Cmp{clientv3.Compare(clientv3.Value("k"), "=", "v0")},
		[]clientv3.Op{clientv3.OpPut("r", "then"), clientv3.OpGet("k")},
		[]clientv3.Op{clientv3.OpPut("r", "else")})
	resp, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.Value("k"), "=", "v0")).
		Then(clientv3.OpPut("k", "v1"), nested).Commit()
	if err != nil {
		t.Fatal(err)
	}
	inner := resp.Responses[1].GetResponseTxn()
	if !resp.Succeeded || inner == nil || !inner.Succeeded {
		t.Fatalf("nested txn: outer succeeded %v, inner %v; want both true (etcd compares against the state before the txn)", resp.Succeeded, inner)
	}
	// Reads inside the txn still see its earlier writes, as in etcd.
	if kvs := inner.Responses[1].GetResponseRange().Kvs; len(kvs) != 1 || string(kvs[0].Value) != "v1" {
		t.Fatalf("get k inside the nested txn: %v, want v1", kvs)
	}
	g, err := cli.Get(ctx, "r")
	if err != nil || len(g.Kvs) != 1 || string(g.Kvs[0].Value) != "then" {
		t.Fatalf("r after the txn: %v %v, want then", g, err)
	}
}
