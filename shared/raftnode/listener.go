package raftnode

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"reflect"
	"sync"
	"time"
	_ "unsafe" // go:linkname
)

// The receive side of the raft transport: the listener and the accept loop
// are ours, each accepted connection is served by dragonboat's own
// (*TCP).serveConn (its wire format and message handlers, reached by
// go:linkname). dragonboat's listener (lni/goutils' StoppableListener)
// has three problems this replaces:
//
//   - serveConn reads each message batch with three unbuffered reads
//     (magic number, header, payload), each after a SetReadDeadline; they
//     were 9-10% of a member's CPU on serial writes
//     (docs/performance.md). Here the connection is buffered: one batch
//     is usually one read system call, and a read deadline is set only
//     when a read has to wait on the socket.
//   - The TLS handshake runs inside the accept loop, with a 3 s deadline:
//     one peer (or port scanner) that connects and says nothing holds up
//     every other connection for that long, and a failed handshake is
//     dropped without a word. Here it runs on the connection's own
//     goroutine, and a failure is logged (rate-limited) and counted in
//     raftnode_transport_handshake_failures_total, naming the CA file.
//   - An Accept error other than the listener's close (EMFILE when the
//     process is out of file descriptors, ECONNABORTED) panics the
//     process. Here it is logged and retried with a backoff, as net/http
//     does.
//
// The address is bound as dragonboat binds it: an IP (v4 or v6) or an
// empty host as given; a hostname on each IPv4 address it resolves to
// (on its IPv6 ones if it has none).

// dragonboat's internal/transport.TCP, used only through the linked
// function below.
type tcpTransport struct{}

//go:linkname tcpServeConn github.com/lni/dragonboat/v4/internal/transport.(*TCP).serveConn
func tcpServeConn(t *tcpTransport, conn net.Conn)

const (
	// transportReadBuffer holds a typical message batch; serveConn reads
	// bigger payloads (snapshot chunks) straight into its own buffer.
	transportReadBuffer = 64 << 10
	// acceptBackoffMax caps the wait between Accept retries.
	acceptBackoffMax = time.Second
	// handshakeWarnEvery limits the handshake-failure warnings a peer
	// with a wrong certificate, redialling all the time, causes.
	handshakeWarnEvery = 10 * time.Second
)

// receiver is the transport's listener state.
type receiver struct {
	tcp *tcpTransport
	tls *tls.Config

	mu        sync.Mutex
	done      chan struct{} // closed by Close
	listeners []net.Listener
	conns     map[net.Conn]struct{}
	wg        sync.WaitGroup

	warnMu     sync.Mutex
	lastWarn   time.Time
	suppressed int
}

// Start implements raftio.ITransport: it binds the listen address and
// serves connections until Close.
func (t *transport) Start() error {
	v := reflect.ValueOf(t.ITransport)
	if v.Kind() != reflect.Pointer || v.Type().String() != "*transport.TCP" {
		return fmt.Errorf("raftnode: transport: dragonboat's TCP transport is a %s, not *transport.TCP; this centra build does not match its dragonboat version", v.Type())
	}
	tlsConfig, err := t.nhc.GetServerTLSConfig()
	if err != nil {
		return fmt.Errorf("raft TLS server config (ca %s, cert %s, key %s): %w", t.nhc.CAFile, t.nhc.CertFile, t.nhc.KeyFile, err)
	}
	addr := t.nhc.GetListenAddress()
	lns, err := listenRaft(addr)
	if err != nil {
		return err
	}
	t.recv = &receiver{tcp: (*tcpTransport)(v.UnsafePointer()), tls: tlsConfig, listeners: lns, conns: map[net.Conn]struct{}{}, done: make(chan struct{})}
	for _, ln := range lns {
		t.recv.wg.Add(1)
		go t.accept(ln)
	}
	return nil
}

// Close implements raftio.ITransport: it closes the listeners and every
// accepted connection and waits for their goroutines. Only the first call
// does anything.
func (t *transport) Close() error {
	r := t.recv
	if r == nil {
		return t.ITransport.Close()
	}
	r.mu.Lock()
	if r.stopping() {
		r.mu.Unlock()
		return nil
	}
	close(r.done)
	for _, ln := range r.listeners {
		ln.Close()
	}
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
	return t.ITransport.Close()
}

// stopping reports whether Close has begun.
func (r *receiver) stopping() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// listenRaft binds addr as described above.
func listenRaft(addr string) ([]net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("raft listen address %q: %w", addr, err)
	}
	hosts := []string{host}
	if host != "" && net.ParseIP(host) == nil {
		ips, err := net.LookupIP(host)
		if err != nil {
			return nil, fmt.Errorf("raft listen address %q: resolve %s: %w", addr, host, err)
		}
		var v4, v6 []string
		for _, ip := range ips {
			if ip.To4() != nil {
				v4 = append(v4, ip.String())
			} else {
				v6 = append(v6, ip.String())
			}
		}
		hosts = v4
		if len(hosts) == 0 {
			hosts = v6
		}
	}
	var lns []net.Listener
	for _, h := range hosts {
		ln, err := net.Listen("tcp", net.JoinHostPort(h, port))
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return nil, fmt.Errorf("raft listen address %q: %w (is another centra, or an old process of this one, still bound to it?)", addr, err)
		}
		lns = append(lns, ln)
	}
	return lns, nil
}

// accept serves ln's connections until Close.
func (t *transport) accept(ln net.Listener) {
	r := t.recv
	defer r.wg.Done()
	var backoff time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if r.stopping() {
				return
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), acceptBackoffMax)
			t.f.log.Warn("Raft listener cannot accept a connection; retrying (out of file descriptors? raise LimitNOFILE)", "address", ln.Addr().String(), "retry_in", backoff, "error", err)
			select {
			case <-r.done:
				return
			case <-time.After(backoff):
			}
			continue
		}
		backoff = 0
		r.mu.Lock()
		if r.stopping() {
			r.mu.Unlock()
			conn.Close()
			return
		}
		r.conns[conn] = struct{}{}
		r.wg.Add(1)
		r.mu.Unlock()
		go t.serve(conn)
	}
}

// serve runs the TLS handshake, if any, and dragonboat's serveConn on conn.
func (t *transport) serve(conn net.Conn) {
	r := t.recv
	defer func() {
		conn.Close()
		r.mu.Lock()
		delete(r.conns, conn)
		r.mu.Unlock()
		r.wg.Done()
	}()
	if tc, ok := conn.(*net.TCPConn); ok {
		// dragonboat's options: keepalive, and linger 0 so that a close
		// resets the connection.
		if err := errors.Join(tc.SetLinger(0), tc.SetKeepAlive(true), tc.SetKeepAlivePeriod(transportKeepAlive)); err != nil {
			return
		}
	}
	c := conn
	if r.tls != nil {
		tc := tls.Server(conn, r.tls)
		ctx, cancel := context.WithTimeout(context.Background(), transportHandshakeTimeout)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			t.handshakeFailed(conn.RemoteAddr(), err)
			return
		}
		c = tc
	}
	tcpServeConn(r.tcp, &bufferedConn{Conn: c, r: bufio.NewReaderSize(c, transportReadBuffer)})
}

// handshakeFailed counts a failed TLS handshake and logs it, at most once
// per handshakeWarnEvery.
func (t *transport) handshakeFailed(remote net.Addr, err error) {
	t.f.handshakeFailed()
	r := t.recv
	r.warnMu.Lock()
	now := time.Now()
	if now.Sub(r.lastWarn) < handshakeWarnEvery {
		r.suppressed++
		r.warnMu.Unlock()
		return
	}
	suppressed := r.suppressed
	r.lastWarn, r.suppressed = now, 0
	r.warnMu.Unlock()
	t.f.log.Warn("Raft TLS handshake from a peer failed; its certificate must be signed by this node's CA and it must trust this node's certificate",
		"remote", remote.String(), "ca_file", t.nhc.CAFile, "cert_file", t.nhc.CertFile, "error", err, "failures_not_logged", suppressed)
}

// bufferedConn is an accepted connection as serveConn reads it: reads come
// from a buffer, and the read deadlines serveConn sets before each read are
// applied to the socket only when a read has to wait on it (a deadline is
// a timer update in the runtime; the buffered reads need none).
type bufferedConn struct {
	net.Conn
	r        *bufio.Reader
	deadline time.Time // the last read deadline asked for
	applied  time.Time // the read deadline set on Conn
}

func (c *bufferedConn) Read(b []byte) (int, error) {
	if c.r.Buffered() == 0 && !c.deadline.Equal(c.applied) {
		if err := c.Conn.SetReadDeadline(c.deadline); err != nil {
			return 0, err
		}
		c.applied = c.deadline
	}
	return c.r.Read(b)
}

func (c *bufferedConn) SetReadDeadline(t time.Time) error {
	c.deadline = t
	return nil
}

func (c *bufferedConn) SetDeadline(t time.Time) error {
	c.deadline = t
	return c.Conn.SetWriteDeadline(t)
}
