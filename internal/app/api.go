package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"github.com/centra-cloud/centra/flaredb"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	centratls "github.com/centra-cloud/centra/shared/tls"
)

// apiServer is the API listener: the etcd v3 services (gRPC over HTTP/2,
// through connect-go), /metrics, /health and /readyz. With TLS configured it
// serves TLS only (no plaintext path); without, HTTP/1.1 and h2c.
type apiServer struct {
	a       *App
	srv     *http.Server
	ln      net.Listener
	handler atomic.Pointer[http.ServeMux]
}

// mux builds the API's routes: /metrics always; the etcd services and the
// placement driver (/pd/api/v1, PDService) on control-plane nodes;
// Prometheus's remote write/read and query API (/api/v1) on every node; /health
// and /readyz once the roles run (before that, while the node starts or
// waits to join, they answer 503 with the reason).
func (a *App) mux(r *routes) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{Registry: a.reg}))
	if r == nil {
		starting := func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "not ready: starting, or waiting to be added to a cluster", http.StatusServiceUnavailable)
		}
		mux.HandleFunc("/health", starting)
		mux.HandleFunc("/readyz", starting)
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
	s.srv = centratls.NewServer(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.handler.Load().ServeHTTP(w, r) }),
		tc, slog.NewLogLogger(a.log.With("component", "api").Handler(), slog.LevelWarn))
	return s, nil
}

// serve switches to the full set of routes once the roles run.
func (s *apiServer) serve(r routes) { s.handler.Store(s.a.mux(&r)) }

func (s *apiServer) start() error {
	ln, err := net.Listen("tcp", s.a.cfg.Network.APIAddr)
	if err != nil {
		return fmt.Errorf("centra: listen on [network] api_addr %s: %w (is another centra or etcd running there?)", s.a.cfg.Network.APIAddr, err)
	}
	ln = centratls.Listener(s.srv, ln)
	s.ln = ln
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
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
	if err := s.srv.Shutdown(ctx); err != nil {
		return s.srv.Close()
	}
	return nil
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
