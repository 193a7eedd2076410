// Package grpcmux serves native gRPC clients with grpc-go and everything
// else with net/http on one plaintext listener, the way etcd multiplexes
// gRPC and HTTP on its client port.
//
// Why: net/http's HTTP/2 server writes and flushes every frame of every
// response on its own (one write syscall per HEADERS, DATA and trailer
// frame) and connect-go adds its own envelope handling on top; under etcd's
// benchmark that was about 45% of the leader's CPU. grpc-go's transport
// coalesces the frames of all streams of a connection into one write.
//
// How a connection is classified: HTTP/1.x goes to net/http at once. An
// HTTP/2 connection (the cleartext preface) gets an empty SETTINGS frame
// from the sniffer, because gRPC clients wait for the server's SETTINGS
// before they send a request, and the sniffer then reads up to the first
// request's HEADERS. A request with a gRPC content type from a gRPC library
// (user-agent "grpc-...": grpc-go, grpc-java, grpc-c; not connect-go's
// "grpc-go-connect/...") moves the connection to
// grpc-go; everything else (connect-go clients, curl, browsers) stays on
// net/http, because connect-go's HTTP client may send non-gRPC requests on
// the same connection later, which grpc-go would refuse. A gRPC library only
// ever sends gRPC on its channel. The bytes read while sniffing are replayed
// to the chosen server, minus the client's acknowledgement of the sniffer's
// SETTINGS (the chosen server did not send that frame and would treat the
// ack as a protocol error).
//
// grpc-go serves the services registered on it natively; Bridge hands every
// other method to the net/http handler, so all services stay reachable
// whichever server a connection landed on.
//
// With TLS the splitter does the handshake itself: connections that did not
// negotiate HTTP/2 go to net/http as the *tls.Conn (net/http sees a finished
// handshake), HTTP/2 ones are sniffed as above; those that stay on net/http
// are served by Options.ServeH2, because net/http only serves HTTP/2 over
// TLS on a bare *tls.Conn.
package grpcmux

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// sniffTimeout bounds how long a new HTTP/2 connection may stay silent
// before its first request (net/http's own idle timeout is 5 minutes).
const sniffTimeout = 5 * time.Minute

// maxSniffBytes bounds what a client may send before its first HEADERS.
const maxSniffBytes = 1 << 20

// Options configure Split.
type Options struct {
	Log *slog.Logger
	// TLS, when set, is the server's TLS configuration (its NextProtos must
	// offer h2); ServeH2 must then be set too.
	TLS *tls.Config
	// ServeH2 serves a TLS connection that negotiated HTTP/2 but does not
	// belong to grpc-go (e.g. with golang.org/x/net/http2's ServeConn); it
	// runs on the connection's own goroutine and returns when it is done.
	ServeH2 func(net.Conn)
}

// handshakeTimeout bounds a TLS handshake.
const handshakeTimeout = 10 * time.Second

// Split accepts from ln and returns two listeners: one for net/http and one
// for grpc-go. Closing either closes ln.
func Split(ln net.Listener, opts Options) (httpLn, grpcLn net.Listener) {
	s := &splitter{
		ln:    ln,
		opts:  opts,
		log:   opts.Log,
		httpc: make(chan net.Conn),
		grpcc: make(chan net.Conn),
		done:  make(chan struct{}),
	}
	go s.acceptLoop()
	return &subListener{s: s, c: s.httpc}, &subListener{s: s, c: s.grpcc}
}

type splitter struct {
	ln           net.Listener
	opts         Options
	log          *slog.Logger
	httpc, grpcc chan net.Conn
	done         chan struct{}
	closeOnce    sync.Once
	mu           sync.Mutex
	err          error // Accept's terminal error
}

func (s *splitter) close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.done)
		err = s.ln.Close()
	})
	return err
}

func (s *splitter) acceptLoop() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			s.mu.Lock()
			s.err = err
			s.mu.Unlock()
			_ = s.close()
			return
		}
		go s.route(c)
	}
}

// route classifies c and hands it to one of the listeners.
func (s *splitter) route(c net.Conn) {
	tlsH2 := false
	if s.opts.TLS != nil {
		tc := tls.Server(c, s.opts.TLS)
		ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			s.log.Debug("TLS handshake failed", "remote", c.RemoteAddr().String(), "err", err)
			_ = c.Close()
			return
		}
		if tc.ConnectionState().NegotiatedProtocol != "h2" {
			s.deliver(s.httpc, tc)
			return
		}
		c, tlsH2 = tc, true
	}
	rc, grpc, err := classify(c)
	if err != nil {
		s.log.Debug("Dropped a connection before its first request", "remote", c.RemoteAddr().String(), "err", err)
		_ = c.Close()
		return
	}
	var conn net.Conn = rc
	if tlsH2 {
		conn = tlsReplayConn{replayConn: rc, tc: c.(*tls.Conn)}
	}
	switch {
	case grpc:
		s.deliver(s.grpcc, conn)
	case tlsH2:
		s.opts.ServeH2(conn)
	default:
		s.deliver(s.httpc, conn)
	}
}

// deliver hands conn to a listener's Accept.
func (s *splitter) deliver(dst chan net.Conn, conn net.Conn) {
	select {
	case dst <- conn:
	case <-s.done:
		_ = conn.Close()
	}
}

// clientPreface is what every HTTP/2 client sends first.
var clientPreface = []byte(http2.ClientPreface)

// classify reads the start of c and returns c with those bytes replayed,
// and whether it belongs to grpc-go.
func classify(c net.Conn) (*replayConn, bool, error) {
	if err := c.SetReadDeadline(time.Now().Add(sniffTimeout)); err != nil {
		return nil, false, err
	}
	defer func() { _ = c.SetReadDeadline(time.Time{}) }()
	// The preface check reads only what has arrived, so a short HTTP/1
	// request is recognised without waiting for more bytes.
	buf := make([]byte, 0, len(clientPreface))
	for len(buf) < len(clientPreface) {
		n, err := c.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if !bytes.HasPrefix(clientPreface, buf) {
			return &replayConn{Conn: c, replay: buf, ackDropped: true}, false, nil
		}
		if err != nil {
			return nil, false, err
		}
	}
	// An empty SETTINGS frame: gRPC clients wait for the server's.
	if _, err := c.Write([]byte{0, 0, 0, byte(http2.FrameSettings), 0, 0, 0, 0, 0}); err != nil {
		return nil, false, err
	}
	rec := &recorder{r: c}
	fr := http2.NewFramer(io.Discard, rec)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	fr.MaxHeaderListSize = 1 << 20
	replay := append([]byte(nil), buf...)
	ackDropped := false
	for {
		rec.buf = rec.buf[:0]
		f, err := fr.ReadFrame()
		if err != nil {
			return nil, false, err
		}
		if sf, ok := f.(*http2.SettingsFrame); ok && sf.IsAck() && !ackDropped {
			ackDropped = true
			continue
		}
		replay = append(replay, rec.buf...)
		if len(replay) > maxSniffBytes {
			return nil, false, errors.New("more than 1 MiB before the first request")
		}
		if mh, ok := f.(*http2.MetaHeadersFrame); ok {
			rc := &replayConn{Conn: c, replay: replay, ackDropped: ackDropped}
			return rc, isGRPCLibrary(mh), nil
		}
	}
}

// isGRPCLibrary reports whether the request comes from a gRPC library: a
// gRPC content type and a "grpc-" user agent.
func isGRPCLibrary(mh *http2.MetaHeadersFrame) bool {
	return strings.HasPrefix(mh.PseudoValue("method"), "POST") &&
		strings.HasPrefix(headerValue(mh, "content-type"), "application/grpc") &&
		isGRPCUserAgent(headerValue(mh, "user-agent"))
}

// isGRPCUserAgent: gRPC libraries say "grpc-go/1.59.0", "grpc-java-netty/..."
// and so on; connect-go's gRPC protocol says "grpc-go-connect/..." but its
// HTTP client may later send non-gRPC requests on the connection.
func isGRPCUserAgent(ua string) bool {
	return strings.HasPrefix(ua, "grpc-") && !strings.HasPrefix(ua, "grpc-go-connect/")
}

func headerValue(mh *http2.MetaHeadersFrame, name string) string {
	for _, f := range mh.RegularFields() {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}

// recorder keeps what the framer read for one frame.
type recorder struct {
	r   io.Reader
	buf []byte
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.buf = append(r.buf, p[:n]...)
	return n, err
}

// replayConn replays the sniffed bytes, then reads from the connection,
// dropping the client's first SETTINGS acknowledgement if the sniffer has
// not seen it yet (it acknowledges the sniffer's SETTINGS frame, which the
// server behind does not know about).
type replayConn struct {
	net.Conn
	replay     []byte
	ackDropped bool
	frameLeft  int // payload bytes of the current frame still to pass
	hdr        [9]byte
}

// tlsReplayConn is a replayConn over TLS. Only it has ConnectionState:
// HTTP servers take a connection with that method for a TLS one (and fill
// in Request.TLS from it), so a plaintext one must not have it.
type tlsReplayConn struct {
	*replayConn
	tc *tls.Conn
}

// ConnectionState returns the TLS state of the connection.
func (c tlsReplayConn) ConnectionState() tls.ConnectionState { return c.tc.ConnectionState() }

func (c *replayConn) Read(p []byte) (int, error) {
	for {
		if len(c.replay) > 0 {
			n := copy(p, c.replay)
			c.replay = c.replay[n:]
			return n, nil
		}
		if c.ackDropped {
			return c.Conn.Read(p)
		}
		if c.frameLeft > 0 {
			if len(p) > c.frameLeft {
				p = p[:c.frameLeft]
			}
			n, err := c.Conn.Read(p)
			c.frameLeft -= n
			return n, err
		}
		// At a frame boundary: look at the next frame header.
		if _, err := io.ReadFull(c.Conn, c.hdr[:]); err != nil {
			return 0, err
		}
		length := int(c.hdr[0])<<16 | int(c.hdr[1])<<8 | int(c.hdr[2])
		if http2.FrameType(c.hdr[3]) == http2.FrameSettings && http2.Flags(c.hdr[4]).Has(http2.FlagSettingsAck) && length == 0 {
			c.ackDropped = true
			continue
		}
		c.replay = c.hdr[:]
		c.frameLeft = length
	}
}

// subListener is one side of a split listener.
type subListener struct {
	s *splitter
	c chan net.Conn
}

func (l *subListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.c:
		return c, nil
	case <-l.s.done:
		l.s.mu.Lock()
		err := l.s.err
		l.s.mu.Unlock()
		if err == nil {
			err = net.ErrClosed
		}
		return nil, err
	}
}

func (l *subListener) Close() error   { return l.s.close() }
func (l *subListener) Addr() net.Addr { return l.s.ln.Addr() }
