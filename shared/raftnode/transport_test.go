package raftnode

import (
	"context"
	"net"
	"path/filepath"
	"sync/atomic"
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
	for _, withTLS := range []bool{false, true} {
		name := "plaintext"
		if withTLS {
			name = "tls"
		}
		t.Run(name, func(t *testing.T) {
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
	}

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
