package etcdcompat_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	etcdmvccpb "go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/centra-cloud/centra/gen/etcdserverpb"
	"github.com/centra-cloud/centra/gen/etcdserverpb/etcdserverpbconnect"
	"github.com/centra-cloud/centra/gen/mvccpb"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeKV answers Range with canned data and records the request.
type fakeKV struct {
	etcdserverpbconnect.UnimplementedKVHandler
	resp *etcdserverpb.RangeResponse

	mu  sync.Mutex
	got *etcdserverpb.RangeRequest
}

func (f *fakeKV) Range(_ context.Context, req *connect.Request[etcdserverpb.RangeRequest]) (*connect.Response[etcdserverpb.RangeResponse], error) {
	f.mu.Lock()
	f.got = req.Msg
	f.mu.Unlock()
	return connect.NewResponse(f.resp), nil
}

// fakeWatch answers the first create request with a created response and
// one batch of events, then waits for the client to go away.
type fakeWatch struct {
	etcdserverpbconnect.UnimplementedWatchHandler
	events *etcdserverpb.WatchResponse

	created chan *etcdserverpb.WatchCreateRequest
}

func (f *fakeWatch) Watch(_ context.Context, stream *connect.BidiStream[etcdserverpb.WatchRequest, etcdserverpb.WatchResponse]) error {
	req, err := stream.Receive()
	if err != nil {
		return err
	}
	create := req.GetCreateRequest()
	if create == nil {
		return connect.NewError(connect.CodeInvalidArgument, errors.New("want a create request first"))
	}
	f.created <- create
	if err := stream.Send(&etcdserverpb.WatchResponse{
		Header:  &etcdserverpb.ResponseHeader{Revision: f.events.GetHeader().GetRevision()},
		WatchId: f.events.GetWatchId(),
		Created: true,
	}); err != nil {
		return err
	}
	if err := stream.Send(f.events); err != nil {
		return err
	}
	for {
		// Cancel requests, then the end of the stream.
		if _, err := stream.Receive(); err != nil {
			return nil
		}
	}
}

// startServer serves handlers the way centra does: Connect handlers on a
// plain http.Server speaking HTTP/1.1 and cleartext HTTP/2 (h2c), which
// gRPC clients use without TLS.
func startServer(t *testing.T, kv etcdserverpbconnect.KVHandler, watch etcdserverpbconnect.WatchHandler) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(etcdserverpbconnect.NewKVHandler(kv))
	mux.Handle(etcdserverpbconnect.NewWatchHandler(watch))
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

func newClient(t *testing.T, addr string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{addr},
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cli.Close(); err != nil {
			t.Error(err)
		}
	})
	return cli
}

// TestClientV3Get calls a Connect KV handler with etcd's Go client.
func TestClientV3Get(t *testing.T) {
	kv := &fakeKV{resp: &etcdserverpb.RangeResponse{
		Header: &etcdserverpb.ResponseHeader{ClusterId: 1, MemberId: 2, Revision: 42, RaftTerm: 3},
		Kvs: []*mvccpb.KeyValue{
			{Key: []byte("foo/a"), Value: []byte("1"), CreateRevision: 5, ModRevision: 6, Version: 2, Lease: 7},
		},
		More:  true,
		Count: 3,
	}}
	cli := newClient(t, startServer(t, kv, &fakeWatch{}))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()

	resp, err := cli.Get(ctx, "foo/", clientv3.WithPrefix(), clientv3.WithLimit(1), clientv3.WithSerializable(),
		clientv3.WithSort(clientv3.SortByModRevision, clientv3.SortDescend))
	if err != nil {
		t.Fatal(err)
	}

	kv.mu.Lock()
	got := kv.got
	kv.mu.Unlock()
	want := &etcdserverpb.RangeRequest{
		Key: []byte("foo/"), RangeEnd: []byte("foo0"), Limit: 1, Serializable: true,
		SortOrder: etcdserverpb.RangeRequest_DESCEND, SortTarget: etcdserverpb.RangeRequest_MOD,
	}
	if !proto.Equal(got, want) {
		t.Errorf("server got %v, want %v", got, want)
	}
	if h := resp.Header; h.ClusterId != 1 || h.MemberId != 2 || h.Revision != 42 || h.RaftTerm != 3 {
		t.Errorf("header = %v", h)
	}
	if !resp.More || resp.Count != 3 || len(resp.Kvs) != 1 {
		t.Fatalf("more=%v count=%d kvs=%v", resp.More, resp.Count, resp.Kvs)
	}
	if k := resp.Kvs[0]; string(k.Key) != "foo/a" || string(k.Value) != "1" ||
		k.CreateRevision != 5 || k.ModRevision != 6 || k.Version != 2 || k.Lease != 7 {
		t.Errorf("kv = %v", k)
	}

	// An RPC the handler does not implement reaches the client as gRPC's
	// Unimplemented.
	if _, err := cli.Put(ctx, "k", "v"); status.Code(err) != codes.Unimplemented {
		t.Errorf("Put error = %v, want code Unimplemented", err)
	}
}

// TestClientV3Watch runs a bidirectional Watch stream between etcd's Go
// client and a Connect handler.
func TestClientV3Watch(t *testing.T) {
	watch := &fakeWatch{
		created: make(chan *etcdserverpb.WatchCreateRequest, 1),
		events: &etcdserverpb.WatchResponse{
			Header:  &etcdserverpb.ResponseHeader{Revision: 11},
			WatchId: 3,
			Events: []*mvccpb.Event{
				{Type: mvccpb.Event_PUT, Kv: &mvccpb.KeyValue{Key: []byte("foo"), Value: []byte("bar"), ModRevision: 11}},
				{Type: mvccpb.Event_DELETE, Kv: &mvccpb.KeyValue{Key: []byte("foo"), ModRevision: 12},
					PrevKv: &mvccpb.KeyValue{Key: []byte("foo"), Value: []byte("bar")}},
			},
		},
	}
	cli := newClient(t, startServer(t, &fakeKV{}, watch))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()

	wch := cli.Watch(ctx, "foo", clientv3.WithRev(5), clientv3.WithPrevKV())
	var resp clientv3.WatchResponse
	select {
	case resp = <-wch:
	case <-ctx.Done():
		t.Fatal("no watch response")
	}
	if err := resp.Err(); err != nil {
		t.Fatal(err)
	}

	create := <-watch.created
	wantCreate := &etcdserverpb.WatchCreateRequest{Key: []byte("foo"), StartRevision: 5, PrevKv: true}
	if !proto.Equal(create, wantCreate) {
		t.Errorf("server got %v, want %v", create, wantCreate)
	}
	if resp.Header.Revision != 11 || len(resp.Events) != 2 {
		t.Fatalf("revision=%d events=%v", resp.Header.Revision, resp.Events)
	}
	if e := resp.Events[0]; e.Type != etcdmvccpb.PUT || string(e.Kv.Key) != "foo" || string(e.Kv.Value) != "bar" || e.Kv.ModRevision != 11 {
		t.Errorf("event 0 = %v", e)
	}
	if e := resp.Events[1]; e.Type != etcdmvccpb.DELETE || e.Kv.ModRevision != 12 || e.PrevKv == nil || string(e.PrevKv.Value) != "bar" {
		t.Errorf("event 1 = %v", e)
	}

	cancel()
	for range wch { // closed once the client has torn the watcher down
	}
}
