package chainfire_test

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/centra-cloud/centra/chainfire"
	"github.com/centra-cloud/centra/internal/grpcmux"
)

// TestWatchClientv3 drives the Watch served natively by grpc-go with etcd's
// Go client: prev_kv and filters, a progress request, a large response with
// fragment asked for, and a watch from a compacted revision.
func TestWatchClientv3(t *testing.T) {
	n := startNode(t)
	cli := n.etcdClient(t)
	ctx := testCtx(t, 30*time.Second)
	mustPut := func(k, v string) {
		t.Helper()
		if _, err := cli.Put(ctx, k, v); err != nil {
			t.Fatalf("put %s: %v", k, err)
		}
	}
	mustPut("w/a", "1") // rev 2
	wc := cli.Watch(ctx, "w/", clientv3.WithPrefix(), clientv3.WithPrevKV(), clientv3.WithFilterDelete(), clientv3.WithCreatedNotify())
	if r := <-wc; !r.Created || r.Err() != nil {
		t.Fatalf("watch not created: %+v, %v", r, r.Err())
	}
	mustPut("w/a", "2") // 3
	if _, err := cli.Delete(ctx, "w/a"); err != nil {
		t.Fatal(err) // 4, filtered out
	}
	mustPut("w/b", "3") // 5
	var got []string
	for len(got) < 2 {
		r := <-wc
		if r.Err() != nil || r.Canceled {
			t.Fatalf("watch ended: %v", r.Err())
		}
		for _, ev := range r.Events {
			prev := ""
			if ev.PrevKv != nil {
				prev = string(ev.PrevKv.Value)
			}
			got = append(got, fmt.Sprintf("%s %s=%s@%d prev=%s", ev.Type, ev.Kv.Key, ev.Kv.Value, ev.Kv.ModRevision, prev))
		}
	}
	if want := "[PUT w/a=2@3 prev=1 PUT w/b=3@5 prev=]"; fmt.Sprint(got) != want {
		t.Fatalf("events %q, want %s", got, want)
	}

	// A progress request is answered on the stream with the revision every
	// watcher reached.
	if err := cli.RequestProgress(ctx); err != nil {
		t.Fatal(err)
	}
	if r := <-wc; !r.IsProgressNotify() || r.Header.Revision != 5 {
		t.Fatalf("progress: %+v (progress notify %v), want an empty response at revision 5", r, r.IsProgressNotify())
	}

	// One revision of four 300 KiB values arrives whole with fragment on.
	big := cli.Watch(ctx, "big/", clientv3.WithPrefix(), clientv3.WithFragment(), clientv3.WithCreatedNotify())
	if r := <-big; !r.Created {
		t.Fatalf("big watch not created: %v", r.Err())
	}
	value := strings.Repeat("x", 300<<10)
	var ops []clientv3.Op
	for i := range 4 {
		ops = append(ops, clientv3.OpPut(fmt.Sprintf("big/%d", i), value))
	}
	if _, err := cli.Txn(ctx).Then(ops...).Commit(); err != nil {
		t.Fatal(err) // 6
	}
	var events int
	for events < 4 {
		r := <-big
		if r.Err() != nil || r.Canceled {
			t.Fatalf("big watch ended after %d events: %v", events, r.Err())
		}
		for _, ev := range r.Events {
			if ev.Kv.ModRevision != 6 || len(ev.Kv.Value) != len(value) || string(ev.Kv.Key) != fmt.Sprintf("big/%d", events) {
				t.Fatalf("big event %d: %s@%d with %d bytes", events, ev.Kv.Key, ev.Kv.ModRevision, len(ev.Kv.Value))
			}
			events++
		}
	}

	// Watching from before a compaction fails with the compact revision
	// and etcd's error, and the channel closes.
	if _, err := cli.Compact(ctx, 4); err != nil {
		t.Fatal(err)
	}
	old := cli.Watch(ctx, "w/a", clientv3.WithRev(2))
	r, ok := <-old
	if !ok || !r.Canceled || r.CompactRevision != 4 || !errors.Is(r.Err(), rpctypes.ErrCompacted) {
		t.Fatalf("watch from a compacted revision: %+v, %v; want cancelled with compact revision 4 and %v", r, r.Err(), rpctypes.ErrCompacted)
	}
	if _, ok := <-old; ok {
		t.Fatal("the compacted watch's channel stayed open")
	}
}

// TestWatchIDsAndCancelOverGRPC checks etcd's wire answers on a raw Watch
// stream to grpc-go: chosen watch IDs, a duplicate ID refused, a cancel
// answered and honoured, the stream-wide progress response (watch ID -1).
func TestWatchIDsAndCancelOverGRPC(t *testing.T) {
	n := startNode(t)
	cli := n.etcdClient(t)
	ctx := testCtx(t, 30*time.Second)
	stream, err := pb.NewWatchClient(cli.ActiveConnection()).Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	create := func(id int64) *pb.WatchResponse {
		t.Helper()
		if err := stream.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{Key: []byte("k"), WatchId: id}}}); err != nil {
			t.Fatal(err)
		}
		return recvWatch(t, stream)
	}
	if r := create(7); !r.Created || r.Canceled || r.WatchId != 7 {
		t.Fatalf("create 7: %+v", r)
	}
	if r := create(7); !r.Canceled || r.WatchId != 7 || r.CancelReason != "watch ID already in use" {
		t.Fatalf("duplicate 7: %+v", r)
	}
	if err := stream.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CancelRequest{CancelRequest: &pb.WatchCancelRequest{WatchId: 7}}}); err != nil {
		t.Fatal(err)
	}
	if r := recvWatch(t, stream); !r.Canceled || r.WatchId != 7 {
		t.Fatalf("cancel 7: %+v", r)
	}
	if r := create(8); !r.Created || r.WatchId != 8 {
		t.Fatalf("create 8: %+v", r)
	}
	if _, err := cli.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	// The cancelled watcher 7 sends nothing: the next response is 8's event.
	if r := recvWatch(t, stream); r.WatchId != 8 || len(r.Events) != 1 || string(r.Events[0].Kv.Value) != "v" {
		t.Fatalf("event: %+v, want watch 8's put", r)
	}
	if err := stream.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_ProgressRequest{ProgressRequest: &pb.WatchProgressRequest{}}}); err != nil {
		t.Fatal(err)
	}
	if r := recvWatch(t, stream); r.WatchId != clientv3.InvalidWatchID || r.Header.Revision != 2 || len(r.Events) != 0 {
		t.Fatalf("progress: %+v, want watch ID -1 at revision 2", r)
	}
}

func recvWatch(t *testing.T, stream pb.Watch_WatchClient) *pb.WatchResponse {
	t.Helper()
	r, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestLeaseKeepAliveClientv3 renews through the LeaseKeepAlive stream
// served natively by grpc-go: a granted lease gets its TTL back, a missing
// one etcd's "lease not found".
func TestLeaseKeepAliveClientv3(t *testing.T) {
	n := startNode(t)
	cli := n.etcdClient(t)
	ctx := testCtx(t, 30*time.Second)
	g, err := cli.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	ka, err := cli.KeepAliveOnce(ctx, g.ID)
	if err != nil || ka.ID != g.ID || ka.TTL != 60 {
		t.Fatalf("keep-alive: %+v, %v; want TTL 60", ka, err)
	}
	ch, err := cli.KeepAlive(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r := <-ch; r == nil || r.ID != g.ID || r.TTL != 60 {
		t.Fatalf("keep-alive stream: %+v", r)
	}
	if _, err := cli.KeepAliveOnce(ctx, g.ID+1); !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		t.Fatalf("keep-alive of a missing lease: %v, want %v", err, rpctypes.ErrLeaseNotFound)
	}
}

// TestGRPCStreamsBeforeStart: while the node starts (no Server yet) the
// native Watch and LeaseKeepAlive answer Unavailable, which clients retry,
// as the Connect routes answer 503.
func TestGRPCStreamsBeforeStart(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(grpc.ForceServerCodecV2(grpcmux.Codec{}))
	chainfire.RegisterGRPC(gs, func() *chainfire.Server { return nil })
	go func() { _ = gs.Serve(l) }() // returns when gs stops
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx := testCtx(t, 10*time.Second)
	w, err := pb.NewWatchClient(conn).Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Recv(); status.Code(err) != codes.Unavailable {
		t.Fatalf("watch before start: %v, want Unavailable", err)
	}
	ka, err := pb.NewLeaseClient(conn).LeaseKeepAlive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ka.Recv(); status.Code(err) != codes.Unavailable {
		t.Fatalf("keep-alive before start: %v, want Unavailable", err)
	}
}

// TestWatchFragmentOverGRPC: history of 1.8 MiB in one batch goes to a
// watcher created with fragment in parts below the request limit (1.5 MiB),
// all but the last marked Fragment, as etcd sends them; etcd's client joins
// them into one response.
func TestWatchFragmentOverGRPC(t *testing.T) {
	n := startNode(t)
	cli := n.etcdClient(t)
	ctx := testCtx(t, 30*time.Second)
	value := strings.Repeat("x", 300<<10)
	for i := range 6 {
		if _, err := cli.Put(ctx, fmt.Sprintf("big/%d", i), value); err != nil {
			t.Fatal(err) // revisions 2-7
		}
	}
	stream, err := pb.NewWatchClient(cli.ActiveConnection()).Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{
		Key: []byte("big/"), RangeEnd: []byte("big0"), StartRevision: 2, Fragment: true,
	}}}); err != nil {
		t.Fatal(err)
	}
	if r := recvWatch(t, stream); !r.Created {
		t.Fatalf("not created: %+v", r)
	}
	var parts []string
	for events := 0; events < 6; {
		r := recvWatch(t, stream)
		if r.Size() >= 1536<<10 {
			t.Fatalf("part of %d bytes, want below the 1.5 MiB request limit", r.Size())
		}
		for _, ev := range r.Events {
			if string(ev.Kv.Key) != fmt.Sprintf("big/%d", events) {
				t.Fatalf("event %d is %s", events, ev.Kv.Key)
			}
			events++
		}
		parts = append(parts, fmt.Sprintf("%d/%v", len(r.Events), r.Fragment))
	}
	if want := "[5/true 1/false]"; fmt.Sprint(parts) != want {
		t.Fatalf("parts (events/fragment) %v, want %s", parts, want)
	}
	// clientv3 joins the parts.
	wr := <-cli.Watch(ctx, "big/", clientv3.WithPrefix(), clientv3.WithRev(2), clientv3.WithFragment())
	if wr.Err() != nil || len(wr.Events) != 6 {
		t.Fatalf("clientv3 with fragment: %d events, %v; want all 6 in one response", len(wr.Events), wr.Err())
	}
}
