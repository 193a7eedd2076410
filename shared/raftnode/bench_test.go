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
	c := newCluster(b, func(cfg *Config) { cfg.RTTMillisecond = 100 })
	c.bootstrap(3)
	leaderID, _ := c.waitLeader()
	leader := c.members[leaderID]
	value := strings.Repeat("v", 256)
	var seq atomic.Uint64
	b.SetParallelism(16)
	b.SetBytes(int64(len(value)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			cmd := []byte(fmt.Sprintf("k%d=%s", seq.Add(1), value))
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := leader.node.Propose(ctx, testShard, cmd)
			cancel()
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}
