package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/centra-cloud/centra/chainfire"
	metav1 "github.com/centra-cloud/centra/gen/centra/meta/v1"
	pdv1 "github.com/centra-cloud/centra/gen/centra/pd/v1"
	"github.com/centra-cloud/centra/pd"
	"github.com/centra-cloud/centra/shared/raftnode"
)

// pdMember is one control-plane member of pdCluster.
type pdMember struct {
	rn *raftnode.Node
	cf *chainfire.Server
	pd *pd.Server
}

// pdCluster starts n in-process control-plane members, each a Chainfire
// member on real dragonboat and pebble with a placement driver on it, so
// every raft read or write PD does costs a quorum round over loopback TCP.
// It returns once a leader is elected.
func pdCluster(tb testing.TB, n int) []*pdMember {
	tb.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	addrs := map[uint64]string{}
	for id := uint64(1); id <= uint64(n); id++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		addrs[id] = l.Addr().String()
		l.Close()
	}
	var ms []*pdMember
	for id := uint64(1); id <= uint64(n); id++ {
		dir := tb.TempDir()
		db, err := raftnode.OpenStateDB(filepath.Join(dir, "state"), &pebble.Options{}, log, 0)
		if err != nil {
			tb.Fatal(err)
		}
		rn, err := raftnode.New(raftnode.Config{
			NodeHostDir: filepath.Join(dir, "raft"), RaftAddress: addrs[id], DeploymentID: 1,
			RTTMillisecond: 10, ElectionRTT: 10, HeartbeatRTT: 1, Logger: log,
		})
		if err != nil {
			tb.Fatal(err)
		}
		cf, err := chainfire.New(chainfire.Config{
			NodeID: id, ReplicaID: id, ClusterID: 1, Name: fmt.Sprintf("pd-%d", id), PeerURLs: []string{addrs[id]},
			Raft: rn, DB: db, Logger: log, Registry: prometheus.NewRegistry(),
		})
		if err != nil {
			tb.Fatal(err)
		}
		rn.OnLeaderChange(cf.OnLeaderChange)
		if err := rn.Start(); err != nil {
			tb.Fatal(err)
		}
		if err := rn.StartShard(raftnode.ShardConfig{ShardID: raftnode.MetadataShardID, ReplicaID: id, InitialMembers: addrs}, cf.CreateStateMachine); err != nil {
			tb.Fatal(err)
		}
		cf.Start()
		s, err := pd.New(pd.Config{KV: cf, Logger: log, MaxReplicas: 1})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() {
			s.Close()
			cf.Close()
			rn.Close()
			db.Close()
		})
		ms = append(ms, &pdMember{rn: rn, cf: cf, pd: s})
	}
	pdLeader(tb, ms)
	return ms
}

// pdLeader waits until one member leads and returns it.
func pdLeader(tb testing.TB, ms []*pdMember) *pdMember {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var leader *pdMember
	if !poll(ctx, 30*time.Second, func() bool {
		for _, m := range ms {
			if m.cf.IsLeader() && m.cf.Ready(ctx) == nil {
				leader = m
				return true
			}
		}
		return false
	}) {
		tb.Fatal("no chainfire member became leader within 30 s")
	}
	return leader
}

// poll reports whether cond became true within d (and ctx), checking it
// every 10 ms: raft's local view of the leader has no change channel here.
func poll(ctx context.Context, d time.Duration, cond func() bool) bool {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
	return true
}

// realPD is the PD leader of a 3-member control plane.
func realPD(b *testing.B) *pd.Server { return pdLeader(b, pdCluster(b, 3)).pd }

// benchStore is the store the benchmarks register.
var benchStore = &metav1.Store{Id: 1, Address: "127.0.0.1:1", Version: "bench", StartTimestamp: 1700000000}

// benchRegions registers one store and n regions on it (split at
// "k%04d"), as heartbeats would.
func benchRegions(b *testing.B, s *pd.Server, n int) {
	ctx := context.Background()
	if _, err := s.PutStore(ctx, benchStore); err != nil {
		b.Fatal(err)
	}
	for i := range n {
		var start, end []byte
		if i > 0 {
			start = fmt.Appendf(nil, "k%04d", i)
		}
		if i < n-1 {
			end = fmt.Appendf(nil, "k%04d", i+1)
		}
		id := uint64(1000 + i)
		leader := &metav1.Peer{Id: id + 10000, StoreId: 1}
		r := &metav1.Region{Id: id, StartKey: start, EndKey: end, RegionEpoch: &metav1.RegionEpoch{ConfVer: 1, Version: uint64(2 + i)}, Peers: []*metav1.Peer{leader}}
		if _, err := s.RegionHeartbeat(ctx, &pdv1.RegionHeartbeatRequest{Region: r, Leader: leader, Term: 1}); err != nil {
			b.Fatal(err)
		}
	}
}

// The benchmarks measure one call each on the PD leader over a real raft
// group: a store heartbeat, a region heartbeat that changes nothing
// persisted, and a region lookup by key.
func BenchmarkStoreHeartbeat(b *testing.B) {
	s := realPD(b)
	benchRegions(b, s, 1)
	ctx := context.Background()
	stats := &pdv1.StoreStats{StoreId: 1, Capacity: 1 << 40, Available: 1 << 39, RegionIds: []uint64{1000}}
	// Stores send their metadata with every heartbeat (flaredb
	// RunHeartbeats); PD compares it with the persisted record.
	for name, meta := range map[string]*metav1.Store{"stats": nil, "metadata": benchStore} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, err := s.StoreHeartbeat(ctx, stats, meta); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkRegionHeartbeat(b *testing.B) {
	s := realPD(b)
	benchRegions(b, s, 100)
	ctx := context.Background()
	reqs := make([]*pdv1.RegionHeartbeatRequest, 100)
	for i := range reqs {
		ri, err := s.GetRegionByID(ctx, uint64(1000+i))
		if err != nil {
			b.Fatal(err)
		}
		reqs[i] = &pdv1.RegionHeartbeatRequest{Region: ri.Region, Leader: ri.Leader, Term: 1, ApproximateSize: uint64(i)}
	}
	i := 0
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.RegionHeartbeat(ctx, reqs[i%len(reqs)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkGetRegion(b *testing.B) {
	s := realPD(b)
	benchRegions(b, s, 100)
	ctx := context.Background()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := s.GetRegion(ctx, fmt.Appendf(nil, "k%04d", i%100)); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}
