package chainfire

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/centra-cloud/centra/shared/loop"
)

// etcd's WithRequireLeader: clientv3 sets the gRPC metadata "hasleader:
// true" (an HTTP/2 header) on requests that must fail rather than be served
// by a member without a leader. clientv3 sets it on every lease keep-alive
// stream, Kubernetes on its watches.
const (
	requireLeaderKey   = "hasleader"
	requireLeaderValue = "true"
)

func requiresLeader(h http.Header) bool {
	return h.Get(requireLeaderKey) == requireLeaderValue
}

// leaderMonitor declares the member leaderless once it has known no leader
// for a whole election timeout (a normal election finishes within one), as
// etcd's v3rpc monitor does, and cancels the require-leader streams then.
type leaderMonitor struct {
	mu   sync.Mutex
	lost chan struct{} // closed while the member is declared leaderless
}

func newLeaderMonitor() *leaderMonitor {
	return &leaderMonitor{lost: make(chan struct{})}
}

// lostCh returns a channel closed when the member is (or next gets)
// declared leaderless.
func (m *leaderMonitor) lostCh() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lost
}

// set records the monitor's verdict; it reports whether it changed.
func (m *leaderMonitor) set(lost bool) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	select {
	case <-m.lost:
		if !lost {
			m.lost = make(chan struct{})
			return true
		}
	default:
		if lost {
			close(m.lost)
			return true
		}
	}
	return false
}

// monitorLeader polls the member's view of the metadata shard's leader
// until ctx ends.
func (s *Server) monitorLeader(ctx context.Context) {
	election := s.cfg.ElectionTimeout
	var since time.Time // when the member last had a leader
	loop.Every(ctx, election/4, func(now time.Time) {
		if s.leaderKnown() {
			since = time.Time{}
			return
		}
		if since.IsZero() {
			since = now
		}
		if now.Sub(since) >= election && s.leader.set(true) {
			s.log.Warn("This member has no leader; cancelling require-leader watches and keep-alives",
				"leaderless_for", now.Sub(since).Round(time.Millisecond))
		}
	})
}

// leaderKnown reports whether the member has a leader and, if it has,
// withdraws a leaderless verdict at once: the monitor polls only every
// quarter election timeout, and a require-leader stream opened in between
// must not be cancelled by a verdict already outdated.
func (s *Server) leaderKnown() bool {
	if !s.HasLeader() {
		return false
	}
	if s.leader.set(false) {
		s.log.Info("The metadata shard has a leader again; require-leader requests are served")
	}
	return true
}

// leaderInterceptor enforces require-leader on every service: a unary call
// fails at once with ErrNoLeader when the member knows no leader, a stream
// is refused then and ends with ErrNoLeader when the monitor declares the
// member leaderless.
type leaderInterceptor struct{ s *Server }

func (i leaderInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if requiresLeader(req.Header()) && !i.s.HasLeader() {
			return nil, toConnectError(ErrNoLeader)
		}
		return next(ctx, req)
	}
}

func (i leaderInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (i leaderInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		if !requiresLeader(conn.RequestHeader()) {
			return next(ctx, conn)
		}
		if !i.s.leaderKnown() {
			return toConnectError(ErrNoLeader)
		}
		ctx, cancel := context.WithCancelCause(ctx)
		defer cancel(nil)
		lost := i.s.leader.lostCh()
		go func() {
			select {
			case <-lost:
				cancel(ErrNoLeader)
			case <-ctx.Done():
			}
		}()
		err := next(ctx, ctxConn{StreamingHandlerConn: conn, ctx: ctx})
		if errors.Is(context.Cause(ctx), ErrNoLeader) {
			return toConnectError(ErrNoLeader)
		}
		return err
	}
}

// ctxConn makes Receive return when ctx ends: a handler blocked reading the
// client's next request must notice that its stream was cancelled.
type ctxConn struct {
	connect.StreamingHandlerConn
	ctx context.Context
}

func (c ctxConn) Receive(msg any) error {
	done := make(chan error, 1)
	go func() { done <- c.StreamingHandlerConn.Receive(msg) }()
	select {
	case err := <-done:
		return err
	case <-c.ctx.Done():
		// The reader returns once the handler ends and the request body
		// is closed; the handler does not use msg after an error.
		return c.ctx.Err()
	}
}
