package raftnode

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"
	_ "unsafe" // go:linkname

	"github.com/lni/dragonboat/v4/config"
	"github.com/lni/dragonboat/v4/raftio"
	pb "github.com/lni/dragonboat/v4/raftpb"
)

// The raft transport is dragonboat's own TCP transport (wire format,
// snapshot streaming, message handling) with the dial of message
// connections and the listener (listener.go) replaced.
// dragonboat keeps one long-lived, one-way connection per peer address and
// never reads from it, so it learns that the peer closed the connection
// (crashed, restarted) only when a write fails, and the first write after
// the close does not fail: the kernel accepts it, the peer answers with a
// reset, and the batch is gone. Followers only talk to each other in an
// election, so the batch lost was the PreVote to a restarted node, and the
// election waited for another timeout (DESIGN.md, "Election time after a
// leader crash"). Here every message connection has a reader that notices
// the close as it happens, and a send on a closed connection dials again
// first. The same wrapper turns the three writes dragonboat makes per batch
// (magic number, header, payload) into one, one packet instead of three.
//
// The wire format is unchanged (the encoding is dragonboat's, reached by
// go:linkname), so nodes with and without this transport talk to each
// other during a rolling upgrade. A dragonboat upgrade that renames the
// linked symbols fails the link; TestTransportRedialsAfterPeerRestart fails
// if the behaviour changes.

// dragonboat's internal/transport.TCPConnection, used only through the
// linked functions below.
type tcpConnection struct{}

//go:linkname newTCPTransport github.com/lni/dragonboat/v4/internal/transport.NewTCPTransport
func newTCPTransport(config.NodeHostConfig, raftio.MessageHandler, raftio.ChunkHandler) raftio.ITransport

//go:linkname newTCPConnection github.com/lni/dragonboat/v4/internal/transport.NewTCPConnection
func newTCPConnection(conn net.Conn, encrypted bool) *tcpConnection

//go:linkname tcpSendMessageBatch github.com/lni/dragonboat/v4/internal/transport.(*TCPConnection).SendMessageBatch
func tcpSendMessageBatch(c *tcpConnection, batch pb.MessageBatch) error

const (
	// Same values as dragonboat's TCP transport.
	transportHandshakeTimeout = 10 * time.Second
	transportKeepAlive        = 10 * time.Second
	// transportWriteBuffer holds one typical message batch; bigger ones
	// are written in more than one call.
	transportWriteBuffer = 64 << 10
)

// transportFactory is set as NodeHostConfig.Expert.TransportFactory.
type transportFactory struct {
	// timeout bounds a dial and how long sent data may go unacknowledged
	// before the connection is dropped (TCP_USER_TIMEOUT). etcd's peer
	// dial timeout is 1 s plus the election timeout; dragonboat's is
	// 15 s, and its connections wait out TCP's retransmission backoff:
	// after a partition of a few seconds heals, the next retransmission
	// can be seconds away, and the healed node hears nothing until then.
	timeout time.Duration
	// redialled is called after a message connection to target was
	// dialled again because the peer had closed the old one.
	redialled func(target string)
	// cut is Config.cut (tests).
	cut func(target string) bool
	// log receives the listener's warnings (listener.go); nil discards
	// them.
	log *slog.Logger
	// handshakeFailed, if set, is called for every inbound connection
	// whose TLS handshake failed.
	handshakeFailed func()
}

// Create implements config.TransportFactory.
func (f transportFactory) Create(nhc config.NodeHostConfig, h raftio.MessageHandler, ch raftio.ChunkHandler) raftio.ITransport {
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	if f.handshakeFailed == nil {
		f.handshakeFailed = func() {}
	}
	return &transport{ITransport: newTCPTransport(nhc, h, ch), nhc: nhc, f: f}
}

// Validate implements config.TransportFactory: addresses are host:port, as
// with dragonboat's default transport.
func (transportFactory) Validate(addr string) bool { return config.IsValidAddress(addr) }

// transport is dragonboat's TCP transport except for GetConnection and
// the listener (Start, Close: listener.go).
type transport struct {
	raftio.ITransport
	nhc  config.NodeHostConfig
	f    transportFactory
	recv *receiver
}

// GetConnection dials target for raft messages.
func (t *transport) GetConnection(ctx context.Context, target string) (raftio.IConnection, error) {
	c := &messageConn{ctx: ctx, target: target, t: t}
	if err := c.dial(); err != nil {
		return nil, err
	}
	return c, nil
}

// dial opens a TCP (or TLS) connection to target with dragonboat's socket
// options (keepalive, and linger 0 so that a close resets the connection)
// and the user timeout.
func (t *transport) dial(ctx context.Context, target string) (net.Conn, error) {
	d := net.Dialer{Timeout: t.f.timeout, KeepAlive: transportKeepAlive}
	conn, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		return nil, err
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		if err := errors.Join(tc.SetLinger(0), setUserTimeout(tc, t.f.timeout)); err != nil {
			conn.Close()
			return nil, fmt.Errorf("raft connection to %s: socket options: %w", target, err)
		}
	}
	tlsConfig, err := t.nhc.GetClientTLSConfig(target)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("raft TLS client config for %s (ca %s, cert %s): %w", target, t.nhc.CAFile, t.nhc.CertFile, err)
	}
	if tlsConfig == nil {
		return conn, nil
	}
	tconn := tls.Client(conn, tlsConfig)
	hctx, cancel := context.WithTimeout(ctx, transportHandshakeTimeout)
	defer cancel()
	if err := tconn.HandshakeContext(hctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("raft TLS handshake with %s (is its certificate signed by %s?): %w", target, t.nhc.CAFile, err)
	}
	return tconn, nil
}

// messageConn is one peer's message connection (raftio.IConnection). Only
// dragonboat's sending goroutine for target calls its methods.
type messageConn struct {
	ctx    context.Context
	target string
	t      *transport
	w      *watchedConn
	tc     *tcpConnection
}

func (c *messageConn) dial() error {
	conn, err := c.t.dial(c.ctx, c.target)
	if err != nil {
		return err
	}
	c.w = watch(conn)
	c.tc = newTCPConnection(c.w, c.t.nhc.MutualTLS)
	return nil
}

// SendMessageBatch writes batch in one call, on a new connection if the
// peer has closed the current one.
func (c *messageConn) SendMessageBatch(batch pb.MessageBatch) error {
	if c.t.f.cut != nil && c.t.f.cut(c.target) {
		return nil
	}
	if c.w.closedByPeer() {
		c.w.Close()
		if err := c.dial(); err != nil {
			return err
		}
		c.t.f.redialled(c.target)
	}
	if err := tcpSendMessageBatch(c.tc, batch); err != nil {
		return err
	}
	return c.w.flush()
}

// Close implements raftio.IConnection.
func (c *messageConn) Close() { c.w.Close() }

// watchedConn buffers writes until flush and reads (and drops) whatever the
// peer sends, to learn at once when the peer closes the connection. The
// peer never sends data on a message connection; TLS may send session
// tickets, which the read consumes.
type watchedConn struct {
	net.Conn
	buf    *bufio.Writer
	closed atomic.Bool
}

func watch(conn net.Conn) *watchedConn {
	w := &watchedConn{Conn: conn}
	w.buf = bufio.NewWriterSize(conn, transportWriteBuffer)
	go func() {
		var b [512]byte
		for {
			if _, err := conn.Read(b[:]); err != nil {
				w.closed.Store(true)
				return
			}
		}
	}()
	return w
}

func (w *watchedConn) closedByPeer() bool          { return w.closed.Load() }
func (w *watchedConn) Write(b []byte) (int, error) { return w.buf.Write(b) }
func (w *watchedConn) flush() error                { return w.buf.Flush() }
