package raftnode

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lni/dragonboat/v4/config"
	"github.com/lni/dragonboat/v4/raftio"
	pb "github.com/lni/dragonboat/v4/raftpb"
)

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
	for _, withTLS := range []bool{false, true} {
		name := "plaintext"
		if withTLS {
			name = "tls"
		}
		t.Run(name, func(t *testing.T) {
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
	conn, err := transportFactory{timeout: time.Second}.Create(senderCfg, nil, nil).GetConnection(context.Background(), peerCfg.RaftAddress)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SendMessageBatch(entryBatch([]byte("x"))); err != nil {
		t.Fatal(err)
	}
	// Three silent connections held dragonboat's accept loop for 9 s.
	eventually(t, 4*time.Second, "the good peer's batch to arrive past three silent connections", func() bool {
		e, _ := in.count()
		return e == 1
	})
	t.Logf("good peer served after %v", time.Since(start))
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
