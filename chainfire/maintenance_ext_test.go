package chainfire_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/centra-cloud/centra/gen/etcdserverpb"
)

// TestHashKVDefragMoveLeader drives the maintenance RPCs with etcd's client:
// HashKV is stable at a revision while writes go on, reports the compact
// revision and refuses compacted and future revisions; Defragment keeps the
// data; MoveLeader refuses unknown members.
func TestHashKVDefragMoveLeader(t *testing.T) {
	n := startNode(t)
	cli := n.etcdClient(t)
	ctx := testCtx(t, 30*time.Second)
	var revs []int64
	for i := range 20 {
		r, err := cli.Put(ctx, fmt.Sprintf("h/%02d", i%5), fmt.Sprint(i))
		if err != nil {
			t.Fatal(err)
		}
		revs = append(revs, r.Header.Revision)
	}
	at := revs[9]
	h1, err := cli.HashKV(ctx, n.addr, at)
	if err != nil {
		t.Fatal(err)
	}
	if h1.HashRevision != at || h1.Header.Revision != revs[19] || h1.CompactRevision != 0 {
		t.Fatalf("hashkv at %d: %+v", at, h1)
	}
	if _, err := cli.Put(ctx, "h/00", "later"); err != nil {
		t.Fatal(err)
	}
	h2, err := cli.HashKV(ctx, n.addr, at)
	if err != nil || h2.Hash != h1.Hash {
		t.Fatalf("hashkv at %d changed after a later write: %x -> %+v %v", at, h1.Hash, h2, err)
	}
	cur, err := cli.HashKV(ctx, n.addr, 0)
	if err != nil || cur.Hash == h1.Hash || cur.HashRevision != revs[19]+1 {
		t.Fatalf("hashkv now: %+v %v (at %d: %x)", cur, err, at, h1.Hash)
	}
	if _, err := cli.HashKV(ctx, n.addr, revs[19]+100); !errors.Is(rpctypes.Error(err), rpctypes.ErrFutureRev) {
		t.Fatalf("hashkv of a future revision: %v", err)
	}
	if _, err := cli.Compact(ctx, revs[5], clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.HashKV(ctx, n.addr, revs[4]); !errors.Is(rpctypes.Error(err), rpctypes.ErrCompacted) {
		t.Fatalf("hashkv of a compacted revision: %v", err)
	}
	h3, err := cli.HashKV(ctx, n.addr, at)
	if err != nil || h3.CompactRevision != revs[5] {
		t.Fatalf("hashkv after compaction: %+v %v", h3, err)
	}
	hash1, err := cli.HashKV(ctx, n.addr, 0)
	if err != nil {
		t.Fatal(err)
	}
	whole1, err := n.maint.Hash(ctx, connect.NewRequest(&etcdserverpb.HashRequest{}))
	if err != nil {
		t.Fatal(err)
	}

	if _, err := cli.Defragment(ctx, n.addr); err != nil {
		t.Fatalf("defragment: %v", err)
	}
	if hash2, err := cli.HashKV(ctx, n.addr, 0); err != nil || hash2.Hash != hash1.Hash {
		t.Fatalf("defragment changed the data: %x -> %+v %v", hash1.Hash, hash2, err)
	}
	if whole2, err := n.maint.Hash(ctx, connect.NewRequest(&etcdserverpb.HashRequest{})); err != nil || whole2.Msg.Hash != whole1.Msg.Hash || whole2.Msg.Header.Revision != hash1.Header.Revision {
		t.Fatalf("defragment changed the whole-state hash: %v -> %v %v", whole1.Msg, whole2, err)
	}
	if r, err := cli.Get(ctx, "h/", clientv3.WithPrefix()); err != nil || r.Count != 5 {
		t.Fatalf("after defragment: %v %v", r, err)
	}
	st, err := cli.Status(ctx, n.addr)
	if err != nil || st.DbSize <= 0 || st.DbSizeInUse <= 0 || st.DbSizeInUse > st.DbSize {
		t.Fatalf("status sizes: %+v %v", st, err)
	}

	if _, err := cli.MoveLeader(ctx, 99); !errors.Is(rpctypes.Error(err), rpctypes.ErrBadLeaderTransferee) {
		t.Fatalf("move-leader to an unknown member: %v", err)
	}
	if _, err := cli.MoveLeader(ctx, st.Header.MemberId); err != nil {
		t.Fatalf("move-leader to itself: %v", err)
	}
}

// TestDowngradeRefused: Downgrade answers with etcd's errors and codes for a
// cluster that cannot go lower (clientv3 recognises them), and says why.
func TestDowngradeRefused(t *testing.T) {
	n := startNode(t)
	cli := n.etcdClient(t)
	ctx := testCtx(t, 30*time.Second)
	for _, action := range []clientv3.DowngradeAction{clientv3.DowngradeValidate, clientv3.DowngradeEnable} {
		_, err := cli.Downgrade(ctx, action, "3.5.0")
		if status.Code(err) != codes.InvalidArgument || !strings.HasPrefix(rpctypes.ErrorDesc(err), rpctypes.ErrorDesc(rpctypes.ErrGRPCInvalidDowngradeTargetVersion)) ||
			!strings.Contains(err.Error(), "downgrade is not supported by centra") {
			t.Fatalf("downgrade %v 3.5.0: %v", action, err)
		}
	}
	if _, err := cli.Downgrade(ctx, clientv3.DowngradeValidate, "not-semver"); !errors.Is(rpctypes.Error(err), rpctypes.ErrWrongDowngradeVersionFormat) {
		t.Fatalf("downgrade validate not-semver: %v", err)
	}
	if _, err := cli.Downgrade(ctx, clientv3.DowngradeCancel, ""); status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "etcdserver: no inflight downgrade job") {
		t.Fatalf("downgrade cancel: %v", err)
	}
}
