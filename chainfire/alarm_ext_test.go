package chainfire_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/centra-cloud/centra/chainfire"
	"github.com/centra-cloud/centra/gen/etcdserverpb"
	"github.com/centra-cloud/centra/shared/diskguard"
)

// TestSpaceQuota follows etcd's quota semantics with etcd's client: over
// the quota the member raises NOSPACE, puts, txns with a put and lease
// grants fail with "database space exceeded" while reads, deletes and
// compaction work; after compaction, defragment and `alarm disarm` writes
// work again.
func TestSpaceQuota(t *testing.T) {
	const quota = 1 << 20
	n := startNode(t, func(c *chainfire.Config) { c.QuotaBackendBytes = quota })
	cli := n.etcdClient(t)
	ctx := testCtx(t, 60*time.Second)
	value := strings.Repeat("x", 64<<10)
	// 200 puts write 12.5 MiB of history; the quota monitor checks the
	// size once a second, so once it has seen them every later put is
	// refused (a fast machine finishes the 200 puts before the first check).
	var err error
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; err == nil && (i < 200 || time.Now().Before(deadline)); i++ {
		v := value
		if i >= 200 {
			v = "x"
			time.Sleep(50 * time.Millisecond)
		}
		_, err = cli.Put(ctx, fmt.Sprintf("q/%03d", i%8), v)
	}
	if !errors.Is(rpctypes.Error(err), rpctypes.ErrNoSpace) {
		t.Fatalf("puts beyond a quota of %d bytes: %v, want %v", quota, err, rpctypes.ErrNoSpace)
	}
	al, err := cli.AlarmList(ctx)
	if err != nil || len(al.Alarms) != 1 || al.Alarms[0].Alarm.String() != "NOSPACE" || al.Alarms[0].MemberID != 1 {
		t.Fatalf("alarm list: %v %v, want NOSPACE of member 1", al, err)
	}
	if _, err := cli.Put(ctx, "q/small", "1"); !errors.Is(rpctypes.Error(err), rpctypes.ErrNoSpace) {
		t.Fatalf("put under NOSPACE: %v", err)
	}
	if _, err := cli.Txn(ctx).Then(clientv3.OpDelete("q/000"), clientv3.OpPut("q/small", "1")).Commit(); !errors.Is(rpctypes.Error(err), rpctypes.ErrNoSpace) {
		t.Fatalf("txn with a put under NOSPACE: %v", err)
	}
	if _, err := cli.Grant(ctx, 60); !errors.Is(rpctypes.Error(err), rpctypes.ErrNoSpace) {
		t.Fatalf("lease grant under NOSPACE: %v", err)
	}
	st, err := cli.Status(ctx, n.addr)
	if err != nil || st.DbSizeQuota != quota || len(st.Errors) != 1 || !strings.Contains(st.Errors[0], "alarm:NOSPACE") {
		t.Fatalf("status under NOSPACE: %+v %v", st, err)
	}
	g, err := cli.Get(ctx, "q/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil || g.Count != 8 {
		t.Fatalf("read under NOSPACE: %v %v", g, err)
	}
	d, err := cli.Delete(ctx, "q/", clientv3.WithPrefix())
	if err != nil || d.Deleted != 8 {
		t.Fatalf("delete under NOSPACE: %v %v", d, err)
	}
	if _, err := cli.Compact(ctx, d.Header.Revision); err != nil {
		t.Fatalf("compact under NOSPACE: %v", err)
	}
	// Physical compaction runs in the background: defragment and disarm
	// until the freed space shows and a write goes through.
	deadline = time.Now().Add(30 * time.Second)
	for {
		if _, err := cli.Defragment(ctx, n.addr); err != nil {
			t.Fatal(err)
		}
		if _, err := cli.AlarmDisarm(ctx, &clientv3.AlarmMember{}); err != nil {
			t.Fatal(err)
		}
		_, err = cli.Put(ctx, "q/after", "ok")
		if err == nil {
			break
		}
		if !errors.Is(rpctypes.Error(err), rpctypes.ErrNoSpace) || time.Now().After(deadline) {
			t.Fatalf("put after compact, defrag and disarm: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if al, err := cli.AlarmList(ctx); err != nil || len(al.Alarms) != 0 {
		t.Fatalf("alarms after disarm: %v %v", al, err)
	}
}

// TestAlarmActivateDeactivate: an alarm raised through the API is honoured
// cluster-wide (CORRUPT refuses writes) and deactivating it clears it.
func TestAlarmActivateDeactivate(t *testing.T) {
	n := startNode(t)
	cli := n.etcdClient(t)
	ctx := testCtx(t, 20*time.Second)
	alarm := func(action etcdserverpb.AlarmRequest_AlarmAction) *etcdserverpb.AlarmResponse {
		r, err := n.maint.Alarm(ctx, connect.NewRequest(&etcdserverpb.AlarmRequest{Action: action, MemberID: 7, Alarm: etcdserverpb.AlarmType_CORRUPT}))
		if err != nil {
			t.Fatal(err)
		}
		return r.Msg
	}
	if r := alarm(etcdserverpb.AlarmRequest_ACTIVATE); len(r.Alarms) != 1 || r.Alarms[0].MemberID != 7 {
		t.Fatalf("activate: %v", r)
	}
	if _, err := cli.Put(ctx, "k", "v"); !errors.Is(rpctypes.Error(err), rpctypes.ErrCorrupt) {
		t.Fatalf("put under CORRUPT: %v", err)
	}
	if r := alarm(etcdserverpb.AlarmRequest_GET); len(r.Alarms) != 1 || r.Alarms[0].Alarm != etcdserverpb.AlarmType_CORRUPT {
		t.Fatalf("get: %v", r)
	}
	if r := alarm(etcdserverpb.AlarmRequest_DEACTIVATE); len(r.Alarms) != 1 {
		t.Fatalf("deactivate: %v", r)
	}
	if r := alarm(etcdserverpb.AlarmRequest_GET); len(r.Alarms) != 0 {
		t.Fatalf("get after deactivate: %v", r)
	}
	if _, err := cli.Put(ctx, "k", "v"); err != nil {
		t.Fatalf("put after deactivate: %v", err)
	}
}

// TestDiskFreeSpaceAlarm: while the data directory's filesystem has less
// than min_free_bytes free (a real statfs of the test's directory against
// a threshold above its free space), the member raises NOSPACE and writes
// fail with etcd's "database space exceeded" while reads and deletes work;
// once space is back (threshold lowered), the member clears the alarm
// itself and writes work again.
func TestDiskFreeSpaceAlarm(t *testing.T) {
	g, err := diskguard.New(t.TempDir(), 1<<62)
	if err != nil {
		t.Fatal(err)
	}
	if !g.Low() {
		t.Fatalf("guard with a 4 EiB threshold not low (free %d)", g.Free())
	}
	n := startNode(t, func(c *chainfire.Config) { c.DiskGuard = g })
	cli := n.etcdClient(t)
	ctx := testCtx(t, 30*time.Second)
	if _, err := cli.Put(ctx, "d/1", "v"); !errors.Is(rpctypes.Error(err), rpctypes.ErrNoSpace) {
		t.Fatalf("put with the disk short of space: %v, want %v", err, rpctypes.ErrNoSpace)
	}
	if _, err := cli.Grant(ctx, 60); !errors.Is(rpctypes.Error(err), rpctypes.ErrNoSpace) {
		t.Fatalf("lease grant with the disk short of space: %v", err)
	}
	waitAlarms(ctx, t, cli, 1)
	if _, err := cli.Get(ctx, "d/", clientv3.WithPrefix()); err != nil {
		t.Fatalf("read under NOSPACE: %v", err)
	}
	if _, err := cli.Delete(ctx, "d/", clientv3.WithPrefix()); err != nil {
		t.Fatalf("delete under NOSPACE: %v", err)
	}
	if err := g.SetMinFree(1); err != nil {
		t.Fatal(err)
	}
	waitAlarms(ctx, t, cli, 0)
	if _, err := cli.Put(ctx, "d/1", "v"); err != nil {
		t.Fatalf("put once space is back: %v", err)
	}
}

// waitAlarms waits until the cluster has n alarms, each this member's
// NOSPACE.
func waitAlarms(ctx context.Context, t *testing.T, cli *clientv3.Client, n int) {
	t.Helper()
	for {
		al, err := cli.AlarmList(ctx)
		if err == nil && len(al.Alarms) == n && (n == 0 || al.Alarms[0].Alarm.String() == "NOSPACE" && al.Alarms[0].MemberID == 1) {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("alarms %v (%v), want %d NOSPACE of member 1", al, err, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
