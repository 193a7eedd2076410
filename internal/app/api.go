package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"github.com/centra-cloud/centra/flaredb"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/centra-cloud/centra/chainfire"
	"github.com/centra-cloud/centra/internal/grpcmux"

	"github.com/centra-cloud/centra/gen/etcdserverpb/etcdserverpbconnect"
	centratls "github.com/centra-cloud/centra/shared/tls"
)

// apiServer is the API listener: the etcd v3 services (gRPC over HTTP/2,
// through connect-go), /metrics, /health, /readyz and, with
// network.enable_pprof, /debug/pprof/. With TLS configured it
// serves TLS only (no plaintext path); without, HTTP/1.1 and h2c. gRPC
// libraries' connections go to a grpc-go server (internal/grpcmux).
type apiServer struct {
	a       *App
	srv     *http.Server
	ln      net.Listener
	handler atomic.Pointer[http.ServeMux]
	// grpc serves gRPC-library clients (see internal/grpcmux): etcd's KV
	// natively, the rest bridged to handler.
	grpc *grpc.Server
	cf   atomic.Pointer[chainfire.Server]
	// h2 serves, with TLS, the HTTP/2 connections that are not grpc-go's
	// (net/http serves HTTP/2 over TLS only on a bare *tls.Conn); h2conns
	// tracks them for stop.
	h2      *http2.Server
	h2conns sync.Map // net.Conn -> struct{}
}

// mux builds the API's routes: /metrics always; the etcd services and the
// placement driver (/pd/api/v1, PDService) on control-plane nodes;
// Prometheus's remote write/read and query API (/api/v1) on every node; /health
// and /readyz once the roles run (before that, while the node starts or
// waits to join, they answer 503 with the reason).
func (a *App) mux(r *routes) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{Registry: a.reg}))
	if a.cfg.Network.EnablePprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	if r == nil {
		starting := func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "not ready: starting, or waiting to be added to a cluster", http.StatusServiceUnavailable)
		}
		mux.HandleFunc("/health", starting)
		mux.HandleFunc("/readyz", starting)
		mux.Handle(etcdserverpbconnect.NewMaintenanceHandler(startingStatus{a: a}))
		// Every API path answers 503 (Connect: Unavailable, which clients
		// retry) rather than 404 (Unimplemented, which they do not) until
		// the roles serve.
		mux.HandleFunc("/", starting)
		return mux
	}
	if r.cf != nil {
		for path, h := range r.cf.Handlers() {
			mux.Handle(path, h)
		}
	}
	if r.pd != nil {
		mux.Handle("/pd/", r.pd.HTTPHandler())
		mux.Handle(r.pd.ConnectHandler())
	}
	if r.store != nil {
		mux.Handle(r.store.store.Handler())
		if r.pd == nil {
			// A store-only node answers clients' region lookups by asking PD.
			mux.Handle(flaredb.PDProxyHandler(r.store.pd))
		}
	}
	if r.ts != nil {
		mux.Handle("/api/v1/", r.ts.handler())
	}
	mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) { handleHealth(w, *r) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, req *http.Request) { handleReady(w, req, *r) })
	return mux
}

func newAPIServer(a *App) (*apiServer, error) {
	s := &apiServer{a: a}
	s.handler.Store(a.mux(nil))
	var tc *tls.Config
	if t := a.cfg.Network.TLS; t.Enabled() {
		var err error
		if tc, err = centratls.ServerConfig(t); err != nil {
			return nil, err
		}
	}
	s.grpc = grpc.NewServer(append(grpcTransportOptions(),
		grpc.ForceServerCodecV2(grpcmux.Codec{}),
		grpc.Creds(grpcmux.Creds()),
		grpc.UnknownServiceHandler(grpcmux.Bridge(func() http.Handler { return http.HandlerFunc(s.serveHTTP) })),
	)...)
	chainfire.RegisterGRPC(s.grpc, s.cf.Load)
	s.srv = centratls.NewServer(
		http.HandlerFunc(s.serveHTTP),
		tc, slog.NewLogLogger(a.log.With("component", "api").Handler(), slog.LevelWarn))
	if tc != nil {
		s.h2 = &http2.Server{IdleTimeout: s.srv.IdleTimeout}
		// Registers the graceful shutdown (GOAWAY) of s.h2's connections
		// with s.srv.Shutdown.
		if err := http2.ConfigureServer(s.srv, s.h2); err != nil {
			return nil, fmt.Errorf("centra: API TLS setup: %w", err)
		}
	}
	return s, nil
}

// serveHTTP serves a request with the current routes; gRPC requests for
// services or methods they do not have get gRPC's Unimplemented.
func (s *apiServer) serveHTTP(w http.ResponseWriter, r *http.Request) {
	grpcmux.ServeMux(s.handler.Load(), w, r)
}

// grpcTransportOptions are the grpc-go server's limits and HTTP/2 settings.
func grpcTransportOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(chainfire.MaxGRPCRecvBytes),
		grpc.MaxSendMsgSize(math.MaxInt32),
		grpc.MaxConcurrentStreams(math.MaxUint32),
		grpc.InitialWindowSize(grpcStreamWindow),
		grpc.InitialConnWindowSize(grpcConnWindow),
		// Long-lived workers keep their grown stacks: a fresh goroutine
		// per RPC grew its stack through the request path every time
		// (runtime.copystack was 9% of the put-100 profile).
		grpc.NumStreamWorkers(grpcStreamWorkers),
		// etcdctl pings every 2s while a stream is open.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: time.Second, PermitWithoutStream: true}),
	}
}

// grpcStreamWorkers is how many goroutines serve gRPC calls before grpc-go
// starts one per call; each keeps a stack of a few tens of KiB. With 256,
// 1000 concurrent clients spilled over onto fresh goroutines whose stacks
// grew through the request path (runtime.copystack 8-20% of the put-1000
// profile). More workers only pay off because serve turns GC stack
// shrinking off (internal/cli, stackShrinkOff): grpc-go hands a call to
// the longest-idle worker, so with shrinking on, every extra worker was one
// more stack halved between its calls (put-100's copystack rose from ~2%
// to 6-10% with 1024).
const grpcStreamWorkers = 1024

// The receive windows grpc-go's server advertises. Setting them turns off
// grpc-go's dynamic windows, whose bandwidth-delay estimator sends the
// client a PING whenever request data arrives and none is outstanding: with
// one serial client that is every request, and its acknowledgement woke the
// server's reader once more per request (etcd's benchmark, put with one
// client: 4 reads per put down to 2, and less CPU in the client that acked;
// docs/performance.md section 11). The static windows are larger than the
// dynamic ones start (64 KiB), so a request up to 1 MiB needs no window update;
// on a long fat network a single stream's upload is capped at 1 MiB per
// round trip, where the estimator could have grown it to 16 MiB.
const (
	grpcStreamWindow = 1 << 20
	grpcConnWindow   = 8 << 20
)

// serveH2 serves one TLS connection that negotiated HTTP/2 and is not
// grpc-go's.
func (s *apiServer) serveH2(c net.Conn) {
	s.h2conns.Store(c, struct{}{})
	defer s.h2conns.Delete(c)
	s.h2.ServeConn(c, &http2.ServeConnOpts{BaseConfig: s.srv, Handler: s.srv.Handler})
}

// serve switches to the full set of routes once the roles run.
func (s *apiServer) serve(r routes) {
	s.cf.Store(r.cf)
	s.handler.Store(s.a.mux(&r))
}

func (s *apiServer) start() error {
	ln, err := net.Listen("tcp", s.a.cfg.Network.APIAddr)
	if err != nil {
		return fmt.Errorf("centra: listen on [network] api_addr %s: %w (is another centra or etcd running there?)", s.a.cfg.Network.APIAddr, err)
	}
	s.ln = ln
	// With TLS the splitter does the handshake, so net/http gets finished
	// *tls.Conn (HTTP/1.1) and s.h2 the HTTP/2 connections; TLS is never
	// optional once configured.
	httpLn, grpcLn := grpcmux.Split(ln, grpcmux.Options{Log: s.a.log.With("component", "api"), TLS: s.srv.TLSConfig, ServeH2: s.serveH2})
	go func() {
		if err := s.grpc.Serve(grpcLn); err != nil && !errors.Is(err, grpc.ErrServerStopped) && !errors.Is(err, net.ErrClosed) {
			s.a.log.Error("API listener stopped (gRPC)", "err", err)
		}
	}()
	go func() {
		if err := s.srv.Serve(httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.a.log.Error("API listener stopped", "err", err)
		}
	}()
	return nil
}

func (s *apiServer) addr() string {
	if s == nil || s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// stop stops accepting, lets in-flight unary requests finish for a moment,
// then cuts long-lived streams (watches, keep-alives).
func (s *apiServer) stop() error {
	if s.ln == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	stopped := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(stopped)
	}()
	defer func() {
		select {
		case <-stopped:
		case <-ctx.Done():
			s.grpc.Stop()
		}
	}()
	// Shutdown also sends GOAWAY on s.h2's connections; they are closed
	// once idle or at the deadline.
	defer s.closeH2(ctx)
	if err := s.srv.Shutdown(ctx); err != nil {
		return s.srv.Close()
	}
	return nil
}

// closeH2 waits until ctx ends for s.h2's connections to finish, then
// closes the rest.
func (s *apiServer) closeH2(ctx context.Context) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		open := false
		s.h2conns.Range(func(any, any) bool { open = true; return false })
		if !open {
			return
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			s.h2conns.Range(func(c, _ any) bool {
				_ = c.(net.Conn).Close()
				return true
			})
			return
		}
	}
}

// handleHealth answers 200 while the metadata shard has a leader, 503
// otherwise (etcd's /health semantics).
func handleHealth(w http.ResponseWriter, r routes) {
	w.Header().Set("Content-Type", "application/json")
	if r.cf != nil && !r.cf.HasLeader() {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, `{"health":"false","reason":"no leader"}`)
		return
	}
	if r.store != nil && !r.store.registered.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, `{"health":"false","reason":"not registered with PD"}`)
		return
	}
	fmt.Fprintln(w, `{"health":"true"}`)
}

// handleReady answers 200 once this node serves linearizable reads: raft is
// up, the metadata shard has a leader and this replica caught up to the
// leader's read index.
func handleReady(w http.ResponseWriter, req *http.Request, r routes) {
	ctx, cancel := context.WithTimeout(req.Context(), 2*time.Second)
	defer cancel()
	if err := r.ready(ctx); err != nil {
		http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ok")
}
