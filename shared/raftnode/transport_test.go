package raftnode

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lni/dragonboat/v4/config"
	"github.com/lni/dragonboat/v4/raftio"
	pb "github.com/lni/dragonboat/v4/raftpb"

	ctls "github.com/centra-cloud/centra/shared/tls"
)

// peer is one incarnation of a raft peer's transport: dragonboat's TCP
// listener, counting the batches it receives.
type peer struct {
	tr       raftio.ITransport
	received atomic.Int64
}

func startPeer(t *testing.T, nhc config.NodeHostConfig) *peer {
	t.Helper()
	p := &peer{}
	p.tr = newTCPTransport(nhc, func(b pb.MessageBatch) { p.received.Add(int64(len(b.Requests))) }, func(pb.Chunk) bool { return true })
	if err := p.tr.Start(); err != nil {
		t.Fatalf("start peer transport at %s: %v", nhc.RaftAddress, err)
	}
	return p
}

func batch() pb.MessageBatch {
	return pb.MessageBatch{BinVer: raftio.TransportBinVersion, Requests: []pb.Message{{Type: pb.RequestPreVote, ShardID: 1, From: 1, To: 2}}}
}

// restartPeer stops p and starts a new incarnation at the same address,
// after conn has seen the close (a real restart takes far longer than the
// close takes to arrive).
func restartPeer(t *testing.T, p *peer, nhc config.NodeHostConfig, closed func() bool) *peer {
	t.Helper()
	if err := p.tr.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the sender to see the peer's close", closed)
	return startPeer(t, nhc)
}

// TestTransportRedialsAfterPeerRestart is the regression test for the lost
// PreVote: a batch sent on a connection whose peer restarted since the last
// send reaches the new incarnation. The "dragonboat" case shows the
// upstream behaviour this works around; if it starts failing, dragonboat
// fixed it and transport.go can go.
func TestTransportRedialsAfterPeerRestart(t *testing.T) {
	plaintextAndTLS(t, func(t *testing.T, withTLS bool) {
		peerCfg, senderCfg := transportConfigs(t, withTLS)
		var redials atomic.Int64
		sender := transportFactory{timeout: time.Second, redialled: func(string) { redials.Add(1) }}.Create(senderCfg, nil, nil)
		p := startPeer(t, peerCfg)
		conn, err := sender.GetConnection(context.Background(), peerCfg.RaftAddress)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if err := conn.SendMessageBatch(batch()); err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, "the first batch to arrive", func() bool { return p.received.Load() == 1 })

		p = restartPeer(t, p, peerCfg, conn.(*messageConn).w.closedByPeer)
		defer p.tr.Close()
		if err := conn.SendMessageBatch(batch()); err != nil {
			t.Fatalf("send after the peer restarted: %v", err)
		}
		eventually(t, 5*time.Second, "the batch sent after the restart to reach the new incarnation", func() bool { return p.received.Load() == 1 })
		if got := redials.Load(); got != 1 {
			t.Fatalf("redialled %d times, want 1", got)
		}
	})

	t.Run("dragonboat", func(t *testing.T) {
		peerCfg, senderCfg := transportConfigs(t, false)
		p := startPeer(t, peerCfg)
		conn, err := newTCPTransport(senderCfg, nil, nil).GetConnection(context.Background(), peerCfg.RaftAddress)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if err := conn.SendMessageBatch(batch()); err != nil {
			t.Fatal(err)
		}
		// dragonboat's connection has no reader; the peer's close is seen
		// by a probe connection of our own instead, once it is served.
		probe, err := net.Dial("tcp", peerCfg.RaftAddress)
		if err != nil {
			t.Fatal(err)
		}
		defer probe.Close()
		w := watch(probe)
		if err := tcpSendMessageBatch(newTCPConnection(w, false), batch()); err != nil || w.flush() != nil {
			t.Fatalf("probe send: %v", err)
		}
		eventually(t, 5*time.Second, "both batches to arrive", func() bool { return p.received.Load() == 2 })
		p = restartPeer(t, p, peerCfg, w.closedByPeer)
		defer p.tr.Close()
		// The first send after the restart fails (on loopback the peer's
		// reset arrives between dragonboat's three writes of one batch) or
		// is accepted into the dead connection (over a longer round trip);
		// either way the batch is lost, and no batch sent on the old
		// connection can reach the new incarnation.
		sent := 0
		for ; sent < 100 && conn.SendMessageBatch(batch()) == nil; sent++ {
		}
		if sent == 100 {
			t.Fatal("100 sends on the old connection succeeded after the peer restarted")
		}
		if got := p.received.Load(); got != 0 {
			t.Fatalf("the new incarnation received %d batches over the old connection", got)
		}
	})
}

// plaintextAndTLS runs test as two subtests, without and with mutual TLS.
func plaintextAndTLS(t *testing.T, test func(t *testing.T, withTLS bool)) {
	for _, withTLS := range []bool{false, true} {
		name := "plaintext"
		if withTLS {
			name = "tls"
		}
		t.Run(name, func(t *testing.T) { test(t, withTLS) })
	}
}

// transportConfigs returns the NodeHostConfigs of a peer on a free port
// and of a sender, with mutual TLS from a fresh CA if withTLS.
func transportConfigs(t *testing.T, withTLS bool) (peerCfg, senderCfg config.NodeHostConfig) {
	peerCfg = config.NodeHostConfig{RaftAddress: freeAddr(t)}
	senderCfg = config.NodeHostConfig{RaftAddress: freeAddr(t)}
	if withTLS {
		dir := t.TempDir()
		if _, err := ctls.Generate(dir, []ctls.NodeSpec{{Name: "n1", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}}, time.Hour); err != nil {
			t.Fatal(err)
		}
		for _, c := range []*config.NodeHostConfig{&peerCfg, &senderCfg} {
			c.MutualTLS = true
			c.CAFile = filepath.Join(dir, ctls.CACertFile)
			c.CertFile = filepath.Join(dir, "n1.crt")
			c.KeyFile = filepath.Join(dir, "n1.key")
		}
	}
	return peerCfg, senderCfg
}

// The listener (listener.go).

// inbox is what a receiving transport was handed.
type inbox struct {
	mu      sync.Mutex
	entries [][]byte
	chunks  [][]byte
}

func (b *inbox) onBatch(batch pb.MessageBatch) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range batch.Requests {
		for _, e := range m.Entries {
			b.entries = append(b.entries, e.Cmd)
		}
	}
}

func (b *inbox) onChunk(c pb.Chunk) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.chunks = append(b.chunks, c.Data)
	return true
}

func (b *inbox) count() (entries, chunks int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.entries), len(b.chunks)
}

// waitEntries waits until n entries arrived.
func (b *inbox) waitEntries(t *testing.T, timeout time.Duration, n int, what string) {
	t.Helper()
	eventually(t, timeout, what, func() bool {
		e, _ := b.count()
		return e == n
	})
}

// sendEntry sends one batch holding cmd from sender to addr, on a new
// connection that stays open until the test ends (a close resets it).
func sendEntry(t *testing.T, sender raftio.ITransport, addr string, cmd []byte) {
	t.Helper()
	conn, err := sender.GetConnection(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	if err := conn.SendMessageBatch(entryBatch(cmd)); err != nil {
		t.Fatal(err)
	}
}

// startReceiver starts our transport (listener.go) at cfg's address.
func startReceiver(t *testing.T, cfg config.NodeHostConfig, f transportFactory) (raftio.ITransport, *inbox) {
	t.Helper()
	in := &inbox{}
	tr := f.Create(cfg, in.onBatch, in.onChunk)
	if err := tr.Start(); err != nil {
		t.Fatalf("start transport at %s: %v", cfg.RaftAddress, err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr, in
}

func entryBatch(cmd []byte) pb.MessageBatch {
	return pb.MessageBatch{BinVer: raftio.TransportBinVersion, Requests: []pb.Message{{
		Type: pb.Replicate, ShardID: 1, From: 1, To: 2, Entries: []pb.Entry{{Index: 1, Term: 1, Cmd: cmd}},
	}}}
}

// TestListenerDeliversBatchesAndChunks sends message batches of many sizes
// (from a few bytes to several read buffers) and a snapshot chunk, from
// dragonboat's own sender and from ours, to our listener, and checks that
// every byte arrives in order.
func TestListenerDeliversBatchesAndChunks(t *testing.T) {
	plaintextAndTLS(t, func(t *testing.T, withTLS bool) {
		peerCfg, senderCfg := transportConfigs(t, withTLS)
		tr, in := startReceiver(t, peerCfg, transportFactory{timeout: time.Second})
		senders := map[string]raftio.ITransport{
			"dragonboat": newTCPTransport(senderCfg, nil, nil),
			"centra":     transportFactory{timeout: time.Second}.Create(senderCfg, nil, nil),
		}
		// Each sender's batches arrive in order on its connection;
		// the first byte of each entry says which sender sent it.
		want := map[byte][][]byte{}
		for tag, name := range []string{"dragonboat", "centra"} {
			conn, err := senders[name].GetConnection(context.Background(), peerCfg.RaftAddress)
			if err != nil {
				t.Fatalf("%s sender: %v", name, err)
			}
			for i, size := range []int{1, 100, 4 << 10, transportReadBuffer - 30, transportReadBuffer, 3*transportReadBuffer + 7, 10} {
				cmd := append([]byte{byte(tag)}, bytes.Repeat([]byte{byte(i + 1)}, size)...)
				want[byte(tag)] = append(want[byte(tag)], cmd)
				if err := conn.SendMessageBatch(entryBatch(cmd)); err != nil {
					t.Fatalf("%s sender, batch of %d bytes: %v", name, size, err)
				}
			}
			// Closed at the end: a close resets the connection
			// (linger 0), which drops what the receiver has not read.
			defer conn.Close()
		}
		snap, err := senders["dragonboat"].GetSnapshotConnection(context.Background(), peerCfg.RaftAddress)
		if err != nil {
			t.Fatal(err)
		}
		chunk := bytes.Repeat([]byte("snapshot"), 40<<10)
		if err := snap.SendChunk(pb.Chunk{ShardID: 1, ReplicaID: 2, From: 1, Data: chunk, ChunkCount: 1, FileChunkCount: 1}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "every batch and the chunk to arrive", func() bool {
			e, c := in.count()
			return e == len(want[0])+len(want[1]) && c == 1
		})
		snap.Close()
		in.mu.Lock()
		got := map[byte][][]byte{}
		for _, e := range in.entries {
			got[e[0]] = append(got[e[0]], e)
		}
		for tag, w := range want {
			for i := range w {
				if i >= len(got[tag]) || !bytes.Equal(got[tag][i], w[i]) {
					t.Errorf("sender %d, batch %d (%d bytes): not received in order intact", tag, i, len(w[i]))
				}
			}
		}
		if !bytes.Equal(in.chunks[0], chunk) {
			t.Errorf("chunk: got %d bytes, want %d", len(in.chunks[0]), len(chunk))
		}
		in.mu.Unlock()
		if err := tr.Close(); err != nil {
			t.Fatal(err)
		}
		// Closed means the port is free again.
		ln, err := net.Listen("tcp", peerCfg.RaftAddress)
		if err != nil {
			t.Fatalf("after Close the raft address is still bound: %v", err)
		}
		ln.Close()
	})
}

// TestListenerHandshakesOffTheAcceptLoop: connections that never start a
// TLS handshake, and one whose certificate is signed by another CA, do not
// hold up a good peer (dragonboat's listener handshakes inside its accept
// loop, 3 s per silent connection), and the failed handshake is reported.
func TestListenerHandshakesOffTheAcceptLoop(t *testing.T) {
	peerCfg, senderCfg := transportConfigs(t, true)
	var failed atomic.Int64
	_, in := startReceiver(t, peerCfg, transportFactory{timeout: time.Second, handshakeFailed: func() { failed.Add(1) }})

	for range 3 {
		silent, err := net.Dial("tcp", peerCfg.RaftAddress)
		if err != nil {
			t.Fatal(err)
		}
		defer silent.Close()
	}
	_, strangerCfg := transportConfigs(t, true)
	stranger := transportFactory{timeout: time.Second}.Create(strangerCfg, nil, nil)
	if _, err := stranger.GetConnection(context.Background(), peerCfg.RaftAddress); err == nil {
		t.Fatal("a peer with a certificate from another CA connected")
	}
	eventually(t, 5*time.Second, "the stranger's handshake failure to be counted", func() bool { return failed.Load() == 1 })

	start := time.Now()
	sendEntry(t, transportFactory{timeout: time.Second}.Create(senderCfg, nil, nil), peerCfg.RaftAddress, []byte("x"))
	// Three silent connections held dragonboat's accept loop for 9 s.
	in.waitEntries(t, 4*time.Second, 1, "the good peer's batch to arrive past three silent connections")
	t.Logf("good peer served after %v", time.Since(start))
}

// flakyListener fails its first n Accepts with EMFILE, as a process out of
// file descriptors does.
type flakyListener struct {
	net.Listener
	n atomic.Int64
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if l.n.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// TestListenerRetriesAcceptErrors: an Accept error (EMFILE) is logged and
// retried, where dragonboat's accept loop panics the process, and the
// connection accepted after it is served.
func TestListenerRetriesAcceptErrors(t *testing.T) {
	peerCfg, senderCfg := transportConfigs(t, false)
	logger, logs := testLogger(t)
	tr, in := startReceiver(t, peerCfg, transportFactory{timeout: time.Second, log: logger})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	flaky := &flakyListener{Listener: ln}
	flaky.n.Store(3)
	r := tr.(*transport).recv
	r.mu.Lock()
	r.listeners = append(r.listeners, flaky)
	r.wg.Add(1)
	r.mu.Unlock()
	go tr.(*transport).accept(flaky)

	sendEntry(t, newTCPTransport(senderCfg, nil, nil), ln.Addr().String(), []byte("after EMFILE"))
	in.waitEntries(t, 10*time.Second, 1, "the batch sent after three failed accepts to arrive")
	if got := strings.Count(logs.String(), "Raft listener cannot accept a connection"); got != 3 {
		t.Fatalf("%d accept warnings logged, want 3:\n%s", got, logs)
	}
	if !strings.Contains(logs.String(), "too many open files") {
		t.Fatalf("the warning does not name the error:\n%s", logs)
	}
}

// TestListenerCloseEndsConnections: Close ends every accepted connection,
// including one in the middle of its TLS handshake, and returns only once
// their goroutines are done.
func TestListenerCloseEndsConnections(t *testing.T) {
	peerCfg, _ := transportConfigs(t, true)
	tr, _ := startReceiver(t, peerCfg, transportFactory{timeout: time.Second})
	raw, err := net.Dial("tcp", peerCfg.RaftAddress)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	r := tr.(*transport).recv
	eventually(t, 5*time.Second, "the connection to be accepted", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.conns) == 1
	})
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(r.conns); n != 0 {
		t.Fatalf("%d connections left after Close", n)
	}
	raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	// EOF or a reset (linger 0), not the deadline.
	if _, err := io.ReadAll(raw); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("the client's connection was not closed by Close")
	}
}

// TestListenRaftBindsHostnames: a hostname binds each address it resolves
// to, as dragonboat's listener does; an IPv6 literal binds too (dragonboat's
// bound nothing).
func TestListenRaftBindsHostnames(t *testing.T) {
	port := func(addr string) string { _, p, _ := net.SplitHostPort(addr); return p }
	for _, addr := range []string{"localhost:" + port(freeAddr(t)), "[::1]:0", "127.0.0.1:0"} {
		lns, err := listenRaft(addr)
		if err != nil {
			if addr == "[::1]:0" {
				t.Logf("%s: %v (no IPv6 loopback here)", addr, err)
				continue
			}
			t.Fatalf("%s: %v", addr, err)
		}
		if len(lns) == 0 {
			t.Fatalf("%s: no listener", addr)
		}
		for _, ln := range lns {
			ln.Close()
		}
	}
	if _, err := listenRaft("no-such-host.invalid:2380"); err == nil {
		t.Fatal("an unresolvable hostname was bound")
	}
}
