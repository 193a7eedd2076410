package raftnode

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkPropose measures proposal throughput on a 3-replica shard with
// every replica in this process (so all three share the CPU), proposing
// 256-byte values through the leader from parallel goroutines. Set the
// concurrency with -cpu (goroutines = GOMAXPROCS x 16), e.g.
//
//	go test ./shared/raftnode -run '^$' -bench Propose -benchtime 10000x
func BenchmarkPropose(b *testing.B) {
	leader, propose := benchLeader(b, 3)
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if !propose(leader) {
				return
			}
		}
	})
}

// BenchmarkProposeSerial is one client proposing and waiting for each
// apply on a single-replica shard (the put-1 case of bench/bench-etcd.sh
// without gRPC): the fsync, the hand-offs between dragonboat's workers and
// the in-memory log's bookkeeping per entry. Read B/op and allocs/op, which
// the box's load does not disturb, e.g.
//
//	go test ./shared/raftnode -run '^$' -bench ProposeSerial -benchtime 3000x -benchmem
func BenchmarkProposeSerial(b *testing.B) {
	leader, propose := benchLeader(b, 1)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if !propose(leader) {
			return
		}
	}
}

// benchLeader bootstraps an n-replica shard and returns its leader and a
// function proposing one 256-byte value through it (false after it
// reported an error).
func benchLeader(b *testing.B, n int) (*member, func(*member) bool) {
	c := newCluster(b, func(cfg *Config) { cfg.RTTMillisecond = 100 })
	c.bootstrap(n)
	leaderID, _ := c.waitLeader()
	value := strings.Repeat("v", 256)
	var seq atomic.Uint64
	b.SetBytes(int64(len(value)))
	return c.members[leaderID], func(m *member) bool {
		cmd := []byte(fmt.Sprintf("k%d=%s", seq.Add(1), value))
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := m.node.Propose(ctx, testShard, cmd); err != nil {
			b.Error(err)
			return false
		}
		return true
	}
}
