//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/centra-cloud/centra/e2e/framework"
)

// ackLog records the writes that the cluster acknowledged.
type ackLog struct {
	mu     sync.Mutex
	values map[string]string // key -> value of every acknowledged put
	revs   []int64           // revisions of the acknowledged puts
	failed int               // puts that returned an error
}

func newAckLog() *ackLog { return &ackLog{values: map[string]string{}} }

func (l *ackLog) ack(key, val string, rev int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.values[key] = val
	l.revs = append(l.revs, rev)
}

func (l *ackLog) fail() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failed++
}

func (l *ackLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.values)
}

func (l *ackLog) snapshot() (map[string]string, []int64, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	values := make(map[string]string, len(l.values))
	for k, v := range l.values {
		values[k] = v
	}
	return values, slices.Clone(l.revs), l.failed
}

// writers runs n goroutines putting distinct keys prefix/W/I through cli
// until stop is called; stop waits for them.
func writers(ctx context.Context, cli *clientv3.Client, prefix string, n int, log *ackLog) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for w := range n {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				key, val := fmt.Sprintf("%s%d/%06d", prefix, w, i), fmt.Sprintf("v%d.%d", w, i)
				pctx, pcancel := context.WithTimeout(ctx, 3*time.Second)
				resp, err := cli.Put(pctx, key, val)
				pcancel()
				if err != nil {
					log.fail()
					continue
				}
				log.ack(key, val, resp.Header.Revision)
			}
		})
	}
	return func() {
		cancel()
		wg.Wait()
	}
}

// checkAcked reads prefix with one range get on cli and reports every
// acknowledged key that is missing or has another value.
func checkAcked(ctx context.Context, cli *clientv3.Client, prefix string, acked map[string]string, opts ...clientv3.OpOption) error {
	resp, err := cli.Get(ctx, prefix, append([]clientv3.OpOption{clientv3.WithPrefix()}, opts...)...)
	if err != nil {
		return err
	}
	have := make(map[string]string, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		have[string(kv.Key)] = string(kv.Value)
	}
	var missing []string
	for k, v := range acked {
		if got, ok := have[k]; !ok || got != v {
			missing = append(missing, fmt.Sprintf("%s=%q (have %q)", k, v, got))
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		if len(missing) > 10 {
			missing = append(missing[:10], "...")
		}
		return fmt.Errorf("%d of %d acknowledged writes missing or wrong at %v: %v", len(missing), len(acked), cli.Endpoints(), missing)
	}
	return nil
}

// waitApplied waits until node n's raft applied index reaches target.
func waitApplied(t *testing.T, n *framework.Node, target uint64, timeout time.Duration) {
	t.Helper()
	framework.Eventually(t, func() error {
		st, err := n.Status(t.Context())
		if err != nil {
			return err
		}
		if st.RaftAppliedIndex < target {
			return fmt.Errorf("%s applied index %d < %d", n, st.RaftAppliedIndex, target)
		}
		return nil
	}, timeout)
}

// TestLeaderKillDuringWrites kills the leader with SIGKILL while several
// clients write: a new leader must take over, every acknowledged write must
// survive, and the killed node must catch up after a restart.
func TestLeaderKillDuringWrites(t *testing.T) {
	c := framework.NewCluster(t, framework.WithNodes(3))
	ctx := testCtx(t, 3*time.Minute)
	cli := c.Client(t)
	old := c.Leader(t)

	log := newAckLog()
	stop := writers(ctx, cli, "kill/", 4, log)
	defer stop()
	framework.Eventually(t, func() error {
		if n := log.count(); n < 200 {
			return fmt.Errorf("%d writes acknowledged before the kill, want 200", n)
		}
		return nil
	}, 30*time.Second)
	must(t, c.Node(old).Kill())
	before := log.count()
	killedAt := time.Now()
	nl := c.Leader(t)
	t.Logf("new leader %s elected %v after the kill", c.Node(nl), time.Since(killedAt).Round(time.Millisecond))
	framework.Eventually(t, func() error {
		if n := log.count() - before; n < 200 {
			return fmt.Errorf("%d writes acknowledged after the kill, want 200", n)
		}
		return nil
	}, 30*time.Second)
	stop()
	acked, _, failed := log.snapshot()
	t.Logf("%d writes acknowledged (%d after the kill), %d failed, writes ran %v after the kill",
		len(acked), len(acked)-before, failed, time.Since(killedAt).Round(time.Millisecond))

	for _, n := range c.Running() {
		if err := checkAcked(ctx, n.Client(t), "kill/", acked); err != nil {
			t.Fatalf("linearizable read on survivor %s: %v", n, err)
		}
	}

	killed := c.Node(old)
	must(t, killed.Restart())
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := killed.WaitReady(rctx); err != nil {
		t.Fatal(err)
	}
	st, err := c.Node(nl).Status(ctx)
	if err != nil {
		t.Fatalf("leader status: %v", err)
	}
	waitApplied(t, killed, st.RaftAppliedIndex, 30*time.Second)
	kc := killed.Client(t)
	framework.Eventually(t, func() error {
		return checkAcked(ctx, kc, "kill/", acked, clientv3.WithSerializable())
	}, 30*time.Second)
}

// TestFollowerRestartCatchesUp stops a follower with SIGTERM, writes while
// it is down, restarts it and waits until it serves every write locally:
// once from the raft log, once from a snapshot because the leader
// compacted its log meanwhile.
func TestFollowerRestartCatchesUp(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []framework.Option
		// logLine is what the restarted node logs on this path.
		logLine string
	}{
		{"log", nil, ""},
		{"snapshot", []framework.Option{framework.WithSnapshotEntries(50, 10)}, "Received snapshot"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := framework.NewCluster(t, append([]framework.Option{framework.WithNodes(3)}, tc.opts...)...)
			ctx := testCtx(t, 2*time.Minute)
			leader := c.Leader(t)
			f := c.Node(c.Followers(leader)[0])
			must(t, f.Stop())

			var eps []string
			for _, n := range c.Nodes() {
				if n != f {
					eps = append(eps, n.Endpoint())
				}
			}
			cli, err := c.NewClient(eps...)
			if err != nil {
				t.Fatal(err)
			}
			defer cli.Close()
			acked := map[string]string{}
			for i := range 300 {
				key, val := fmt.Sprintf("restart/%04d", i), fmt.Sprint("v", i)
				if _, err := cli.Put(ctx, key, val); err != nil {
					t.Fatalf("put %s with %s down: %v", key, f, err)
				}
				acked[key] = val
			}
			st, err := c.Node(leader).Status(ctx)
			if err != nil {
				t.Fatal(err)
			}

			must(t, f.Restart())
			rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			if err := f.WaitReady(rctx); err != nil {
				t.Fatal(err)
			}
			waitApplied(t, f, st.RaftAppliedIndex, 30*time.Second)
			fc := f.Client(t)
			framework.Eventually(t, func() error {
				return checkAcked(ctx, fc, "restart/", acked, clientv3.WithSerializable())
			}, 30*time.Second)
			if tc.logLine != "" && !strings.Contains(f.CurrentLog(), tc.logLine) {
				t.Errorf("%s caught up, but its log lacks %q: the test did not exercise the %s path", f, tc.logLine, tc.name)
			}
			// And it keeps up with new writes.
			put, err := cli.Put(ctx, "restart/after", "x")
			if err != nil {
				t.Fatal(err)
			}
			framework.Eventually(t, func() error {
				resp, err := fc.Get(ctx, "restart/after", clientv3.WithSerializable())
				if err != nil {
					return err
				}
				if len(resp.Kvs) != 1 || resp.Kvs[0].ModRevision != put.Header.Revision {
					return fmt.Errorf("restart/after on %s: %v, want revision %d", f, resp.Kvs, put.Header.Revision)
				}
				return nil
			}, 10*time.Second)
		})
	}
}

// TestWatchAcrossLeaderKill keeps a watch open on a follower while the
// leader is killed: the watch must go on delivering events with strictly
// increasing revisions and without losing an acknowledged put.
func TestWatchAcrossLeaderKill(t *testing.T) {
	c := framework.NewCluster(t, framework.WithNodes(3))
	ctx := testCtx(t, 3*time.Minute)
	old := c.Leader(t)
	watcher := c.Node(c.Followers(old)[0])
	wc := watcher.Client(t)

	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	wch := wc.Watch(wctx, "wc/", clientv3.WithPrefix(), clientv3.WithCreatedNotify())
	select {
	case wr := <-wch:
		if !wr.Created {
			t.Fatalf("first watch response: want created, got %+v (err %v)", wr, wr.Err())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch not created within 10s")
	}
	var (
		mu       sync.Mutex
		events   []*clientv3.Event
		watchErr error
		closed   bool
	)
	go func() {
		for wr := range wch {
			mu.Lock()
			if err := wr.Err(); err != nil && watchErr == nil {
				watchErr = fmt.Errorf("watch response error: %w (canceled=%v, compact revision %d)", err, wr.Canceled, wr.CompactRevision)
			}
			events = append(events, wr.Events...)
			mu.Unlock()
		}
		mu.Lock()
		closed = true
		mu.Unlock()
	}()

	log := newAckLog()
	// One writer through every endpoint, so that put order is revision
	// order on the acknowledged side too.
	stop := writers(ctx, c.Client(t), "wc/", 1, log)
	defer stop()
	framework.Eventually(t, func() error {
		if n := log.count(); n < 100 {
			return fmt.Errorf("%d puts acknowledged before the kill, want 100", n)
		}
		return nil
	}, 30*time.Second)
	must(t, c.Node(old).Kill())
	before := log.count()
	c.Leader(t)
	framework.Eventually(t, func() error {
		if n := log.count() - before; n < 100 {
			return fmt.Errorf("%d puts acknowledged after the kill, want 100", n)
		}
		return nil
	}, 30*time.Second)
	stop()
	acked, revs, failed := log.snapshot()
	maxRev := slices.Max(revs)

	framework.Eventually(t, func() error {
		mu.Lock()
		defer mu.Unlock()
		if watchErr != nil || closed {
			return nil // reported below
		}
		if len(events) == 0 || events[len(events)-1].Kv.ModRevision < maxRev {
			return fmt.Errorf("watch on %s delivered %d events, not yet revision %d", watcher, len(events), maxRev)
		}
		return nil
	}, 20*time.Second)

	mu.Lock()
	defer mu.Unlock()
	if watchErr != nil {
		t.Fatalf("watch on %s across the leader kill: %v", watcher, watchErr)
	}
	if closed {
		t.Fatalf("watch on %s closed across the leader kill", watcher)
	}
	got := map[int64]bool{}
	gaps := 0
	for i, ev := range events {
		if i > 0 && ev.Kv.ModRevision > events[i-1].Kv.ModRevision+1 {
			gaps++ // a revision of a write outside wc/, or lost
		}
		if i > 0 && ev.Kv.ModRevision <= events[i-1].Kv.ModRevision {
			t.Fatalf("event %d: revision %d after %d: not strictly increasing", i, ev.Kv.ModRevision, events[i-1].Kv.ModRevision)
		}
		if ev.Type != mvccpb.PUT {
			t.Errorf("event %d: unexpected %s %q", i, ev.Type, ev.Kv.Key)
		}
		if v, ok := acked[string(ev.Kv.Key)]; ok && v != string(ev.Kv.Value) {
			t.Errorf("event %d: %q=%q, acknowledged value %q", i, ev.Kv.Key, ev.Kv.Value, v)
		}
		got[ev.Kv.ModRevision] = true
	}
	var lost []int64
	for _, r := range revs {
		if !got[r] {
			lost = append(lost, r)
		}
	}
	if len(lost) > 0 {
		t.Fatalf("watch missed %d of %d acknowledged revisions: %v", len(lost), len(revs), lost)
	}
	t.Logf("watch on %s delivered %d events (%d puts acknowledged, %d failed, %d revision gaps) across the kill of %s",
		watcher, len(events), len(acked), failed, gaps, c.Node(old))
}
