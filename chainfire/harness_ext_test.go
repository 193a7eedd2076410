package chainfire_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/centra-cloud/centra/chainfire"
	"github.com/centra-cloud/centra/gen/centra/chainfire/v1/chainfirev1connect"
	"github.com/centra-cloud/centra/gen/etcdserverpb/etcdserverpbconnect"
	"github.com/centra-cloud/centra/internal/grpcmux"
	"github.com/centra-cloud/centra/shared/raftnode"
)

// node is a single-member Chainfire served over a real HTTP/2 listener,
// on real dragonboat and pebble.
type node struct {
	kv    etcdserverpbconnect.KVClient
	watch etcdserverpbconnect.WatchClient
	lease etcdserverpbconnect.LeaseClient
	maint etcdserverpbconnect.MaintenanceClient
	admin chainfirev1connect.ClusterServiceClient // centra's own (`centra cluster`)
	srv   *chainfire.Server
	addr  string // host:port of the API listener (net/http: Connect)
	// grpcAddr is host:port of a grpc-go server set up as centra serve
	// sets up the one behind its listener: etcd's KV, Watch and
	// LeaseKeepAlive native, every other method bridged to the Connect
	// handlers. etcdClient connects there, as etcd's clients do in
	// production.
	grpcAddr string
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startNode starts a single-member Chainfire; opts adjust its config.
func startNode(t testing.TB, opts ...func(*chainfire.Config)) *node {
	t.Helper()
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	db, err := raftnode.OpenStateDB(filepath.Join(dir, "state"), &pebble.Options{}, log, 0)
	if err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	rn, err := raftnode.New(raftnode.Config{
		NodeHostDir: filepath.Join(dir, "raft"), RaftAddress: addr, DeploymentID: 1,
		RTTMillisecond: 10, ElectionRTT: 10, HeartbeatRTT: 1, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := chainfire.Config{
		NodeID: 1, ReplicaID: 1, ClusterID: 1, Name: "test-1", PeerURLs: []string{addr},
		Raft: rn, DB: db, Logger: log, Registry: prometheus.NewRegistry(),
	}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := chainfire.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rn.OnLeaderChange(srv.OnLeaderChange)
	if err := rn.Start(); err != nil {
		t.Fatal(err)
	}
	if err := rn.StartShard(raftnode.ShardConfig{ShardID: raftnode.MetadataShardID, ReplicaID: 1, InitialMembers: map[uint64]string{1: addr}}, srv.CreateStateMachine); err != nil {
		t.Fatal(err)
	}
	srv.Start()
	mux := http.NewServeMux()
	for path, h := range srv.Handlers() {
		mux.Handle(path, h)
	}
	hs := httptest.NewUnstartedServer(mux)
	hs.Config.Protocols = new(http.Protocols)
	hs.Config.Protocols.SetHTTP1(true)
	hs.Config.Protocols.SetUnencryptedHTTP2(true)
	hs.Start()
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(
		grpc.ForceServerCodecV2(grpcmux.Codec{}),
		grpc.UnknownServiceHandler(grpcmux.Bridge(func() http.Handler { return mux })),
		grpc.MaxRecvMsgSize(chainfire.MaxGRPCRecvBytes),
	)
	chainfire.RegisterGRPC(gs, func() *chainfire.Server { return srv })
	go func() { _ = gs.Serve(gl) }() // returns when gs stops
	t.Cleanup(func() {
		gs.Stop()
		hs.CloseClientConnections()
		hs.Close()
		srv.Close()
		rn.Close()
		db.Close()
	})
	tr := &http.Transport{}
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetUnencryptedHTTP2(true)
	hc := &http.Client{Transport: tr}
	t.Cleanup(hc.CloseIdleConnections)
	n := &node{
		kv:    etcdserverpbconnect.NewKVClient(hc, hs.URL, connect.WithGRPC()),
		watch: etcdserverpbconnect.NewWatchClient(hc, hs.URL, connect.WithGRPC()),
		lease: etcdserverpbconnect.NewLeaseClient(hc, hs.URL, connect.WithGRPC()),
		maint: etcdserverpbconnect.NewMaintenanceClient(hc, hs.URL, connect.WithGRPC()),
		admin: chainfirev1connect.NewClusterServiceClient(hc, hs.URL, connect.WithGRPC()),
		srv:   srv,
		addr:  hs.Listener.Addr().String(),

		grpcAddr: gl.Addr().String(),
	}
	ctx := testCtx(t, 10*time.Second)
	for srv.Ready(ctx) != nil {
		if ctx.Err() != nil {
			t.Fatal("node never became ready")
		}
	}
	return n
}

func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
