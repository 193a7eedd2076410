package chainfire_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/metadata"

	"github.com/centra-cloud/centra/gen/etcdserverpb"
)

// The benchmarks run one real node (dragonboat, pebble, fsync) in process
// and call it over the harness's HTTP/2 (Connect) listener, so they measure
// the request path end to end; compare runs with benchstat:
//
//	go test ./chainfire -run '^$' -bench . -benchmem -count 5

// BenchmarkPut: parallel 256-byte puts of random keys in a 100k key space
// (etcd's benchmark shape): propose, replicate, fsync, apply, answer; over
// Connect (net/http) and over clientv3 to grpc-go (the path of etcdctl,
// clientv3, Kubernetes and etcd's benchmark). cpu-µs/op is the test
// process's CPU per put, client included.
func BenchmarkPut(b *testing.B) {
	b.Run("connect", func(b *testing.B) {
		benchPut(b, func(n *node) putFunc {
			return func(ctx context.Context, key, value []byte) error {
				_, err := n.kv.Put(ctx, connect.NewRequest(&etcdserverpb.PutRequest{Key: key, Value: value}))
				return err
			}
		})
	})
	b.Run("clientv3", func(b *testing.B) {
		benchPut(b, func(n *node) putFunc {
			cli := newClientv3(b, n)
			return func(ctx context.Context, key, value []byte) error {
				_, err := cli.Put(ctx, string(key), string(value))
				return err
			}
		})
	})
}

type putFunc func(ctx context.Context, key, value []byte) error

func benchPut(b *testing.B, client func(*node) putFunc) {
	put := client(startNode(b))
	value := make([]byte, 256)
	b.SetParallelism(16)
	b.ReportAllocs()
	b.ResetTimer()
	cpu := processCPU(b)
	defer func() { reportCPU(b, processCPU(b)-cpu) }()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			key := fmt.Appendf(nil, "%08d", rand.IntN(100000))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := put(ctx, key, value)
			cancel()
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// newClientv3 is an etcd client of n's grpc-go listener, closed with b.
func newClientv3(b *testing.B, n *node) *clientv3.Client {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{n.grpcAddr}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cli.Close() })
	return cli
}

func benchRange(b *testing.B, serializable bool) {
	n := startNode(b)
	ctx := testCtx(b, time.Minute)
	if _, err := n.kv.Put(ctx, connect.NewRequest(&etcdserverpb.PutRequest{Key: []byte("bench-key"), Value: make([]byte, 256)})); err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(16)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r, err := n.kv.Range(ctx, connect.NewRequest(&etcdserverpb.RangeRequest{Key: []byte("bench-key"), Serializable: serializable}))
			if err != nil || len(r.Msg.Kvs) != 1 {
				b.Errorf("range: %v, %v", r, err)
				return
			}
		}
	})
}

// BenchmarkRangeLinearizable: single-key reads through ReadIndex.
func BenchmarkRangeLinearizable(b *testing.B) { benchRange(b, false) }

// BenchmarkRangeSerializable: single-key reads of the local state.
func BenchmarkRangeSerializable(b *testing.B) { benchRange(b, true) }

// BenchmarkWatchFanOut: one put delivered to 100 watchers (one stream
// each); an iteration ends when every watcher received the put. connect:
// connect-go streams to net/http; clientv3: etcd's Go client to grpc-go
// (the path of etcdctl, clientv3 and Kubernetes).
func BenchmarkWatchFanOut(b *testing.B) {
	b.Run("connect", func(b *testing.B) { benchWatchFanOut(b, connectWatcher) })
	b.Run("clientv3", func(b *testing.B) { benchWatchFanOut(b, clientv3Watcher()) })
}

// fanOutWatcher opens watcher i on the prefix fan/ and returns once it is
// created; a goroutine then calls count with the number of events of each
// response until the stream ends.
type fanOutWatcher func(b *testing.B, ctx context.Context, n *node, i int, count func(int))

func connectWatcher(b *testing.B, ctx context.Context, n *node, _ int, count func(int)) {
	stream := n.watch.Watch(ctx)
	if err := stream.Send(&etcdserverpb.WatchRequest{RequestUnion: &etcdserverpb.WatchRequest_CreateRequest{CreateRequest: &etcdserverpb.WatchCreateRequest{
		Key: []byte("fan/"), RangeEnd: []byte("fan0"),
	}}}); err != nil {
		b.Fatal(err)
	}
	if r, err := stream.Receive(); err != nil || !r.Created {
		b.Fatalf("watch: %v, %v", r, err)
	}
	go func() {
		for {
			r, err := stream.Receive()
			if err != nil {
				return
			}
			count(len(r.Events))
		}
	}()
}

// clientv3Watcher watches through one etcd client (one connection); each
// watcher gets its own stream, as on the connect side, because clientv3
// shares a stream only between watches whose contexts carry the same
// metadata.
func clientv3Watcher() fanOutWatcher {
	var cli *clientv3.Client
	return func(b *testing.B, ctx context.Context, n *node, i int, count func(int)) {
		if cli == nil {
			cli = newClientv3(b, n)
		}
		wctx := metadata.AppendToOutgoingContext(ctx, "bench-watcher", strconv.Itoa(i))
		wc := cli.Watch(wctx, "fan/", clientv3.WithPrefix(), clientv3.WithCreatedNotify())
		if r := <-wc; !r.Created {
			b.Fatalf("watch: %+v, %v", r, r.Err())
		}
		go func() {
			for r := range wc {
				count(len(r.Events))
			}
		}()
	}
}

func benchWatchFanOut(b *testing.B, open fanOutWatcher) {
	const watchers = 100
	n := startNode(b)
	ctx := testCtx(b, 10*time.Minute)
	var delivered atomic.Int64
	for i := range watchers {
		open(b, ctx, n, i, func(events int) { delivered.Add(int64(events)) })
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu := processCPU(b)
	defer func() { reportCPU(b, processCPU(b)-cpu) }()
	for i := range b.N {
		if _, err := n.kv.Put(ctx, connect.NewRequest(&etcdserverpb.PutRequest{Key: fmt.Appendf(nil, "fan/%d", i), Value: []byte("v")})); err != nil {
			b.Fatal(err)
		}
		for delivered.Load() < int64(watchers*(i+1)) {
			if ctx.Err() != nil {
				b.Fatal("events not delivered to every watcher")
			}
			time.Sleep(20 * time.Microsecond)
		}
	}
}

// processCPU is the CPU time (user and system) the test process used so
// far: server and client share it, but unlike ns/op it hardly depends on
// what else runs on the box.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the CPU time used by the benchmark's iterations as
// cpu-µs/op.
func reportCPU(b *testing.B, used time.Duration) {
	b.ReportMetric(float64(used.Microseconds())/float64(b.N), "cpu-µs/op")
}
