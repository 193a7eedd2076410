//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/centra-cloud/centra/e2e/framework"
)

// TestThreeNodeKV checks the etcd v3 API of a three-node cluster formed
// from initial_members, talking to individual members with clientv3.
// The subtests share the cluster and run in order (compaction last).
func TestThreeNodeKV(t *testing.T) {
	c := framework.NewCluster(t, framework.WithNodes(3))
	ctx := testCtx(t, 3*time.Minute)
	a, b, cc := c.Node(0).Client(t), c.Node(1).Client(t), c.Node(2).Client(t)

	t.Run("put on A, linearizable get on C", func(t *testing.T) {
		put, err := a.Put(ctx, "lin/k", "v1")
		if err != nil {
			t.Fatalf("put on node 1: %v", err)
		}
		resp, err := cc.Get(ctx, "lin/k")
		if err != nil {
			t.Fatalf("get on node 3: %v", err)
		}
		if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v1" {
			t.Fatalf("get on node 3 right after the put on node 1: got %v, want v1", resp.Kvs)
		}
		if kv := resp.Kvs[0]; kv.ModRevision != put.Header.Revision || kv.CreateRevision != put.Header.Revision || kv.Version != 1 {
			t.Errorf("lin/k: mod %d create %d version %d, want mod = create = %d (the put's revision) and version 1",
				kv.ModRevision, kv.CreateRevision, kv.Version, put.Header.Revision)
		}
		if resp.Header.Revision < put.Header.Revision {
			t.Errorf("get header revision %d < put revision %d", resp.Header.Revision, put.Header.Revision)
		}
	})

	t.Run("watch on A sees puts via B in order", func(t *testing.T) {
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		wch := a.Watch(wctx, "w/", clientv3.WithPrefix(), clientv3.WithCreatedNotify())
		select {
		case wr := <-wch:
			if !wr.Created || wr.Err() != nil {
				t.Fatalf("first watch response: want created, got %+v (err %v)", wr, wr.Err())
			}
		case <-time.After(10 * time.Second):
			t.Fatal("watch not created within 10s")
		}
		const n = 20
		var revs []int64
		for i := range n {
			resp, err := b.Put(ctx, fmt.Sprintf("w/%02d", i), fmt.Sprintf("v%d", i))
			if err != nil {
				t.Fatalf("put %d via node 2: %v", i, err)
			}
			revs = append(revs, resp.Header.Revision)
		}
		for i := 1; i < n; i++ {
			if revs[i] <= revs[i-1] {
				t.Fatalf("put revisions not increasing: %v", revs)
			}
		}
		got := 0
		timeout := time.After(10 * time.Second)
		for got < n {
			select {
			case wr, ok := <-wch:
				if !ok || wr.Err() != nil {
					t.Fatalf("watch ended after %d events: %v", got, wr.Err())
				}
				for _, ev := range wr.Events {
					if got >= n {
						t.Fatalf("unexpected extra event %s %q", ev.Type, ev.Kv.Key)
					}
					wantKey, wantVal := fmt.Sprintf("w/%02d", got), fmt.Sprintf("v%d", got)
					if ev.Type != mvccpb.PUT || string(ev.Kv.Key) != wantKey || string(ev.Kv.Value) != wantVal || ev.Kv.ModRevision != revs[got] {
						t.Fatalf("event %d: got %s %q=%q at revision %d, want PUT %q=%q at revision %d",
							got, ev.Type, ev.Kv.Key, ev.Kv.Value, ev.Kv.ModRevision, wantKey, wantVal, revs[got])
					}
					got++
				}
			case <-timeout:
				t.Fatalf("watch delivered %d of %d events within 10s", got, n)
			}
		}
	})

	t.Run("serializable get on a follower", func(t *testing.T) {
		leader := c.Leader(t)
		lc := c.Node(leader).Client(t)
		f := c.Node(c.Followers(leader)[0])
		fc := f.Client(t)
		if _, err := lc.Put(ctx, "ser/k", "sv"); err != nil {
			t.Fatalf("put on the leader: %v", err)
		}
		framework.Eventually(t, func() error {
			resp, err := fc.Get(ctx, "ser/k", clientv3.WithSerializable())
			if err != nil {
				return err
			}
			if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "sv" {
				return fmt.Errorf("serializable get on %s: %v", f, resp.Kvs)
			}
			return nil
		}, 5*time.Second)
	})

	t.Run("txn compare success failure", func(t *testing.T) {
		put, err := a.Put(ctx, "txn/k", "1")
		if err != nil {
			t.Fatal(err)
		}
		txn := func() *clientv3.TxnResponse {
			t.Helper()
			resp, err := b.Txn(ctx).
				If(clientv3.Compare(clientv3.Value("txn/k"), "=", "1"),
					clientv3.Compare(clientv3.ModRevision("txn/k"), "=", put.Header.Revision)).
				Then(clientv3.OpPut("txn/k", "2"), clientv3.OpGet("txn/k")).
				Else(clientv3.OpPut("txn/else", "ran"), clientv3.OpGet("txn/k")).
				Commit()
			if err != nil {
				t.Fatalf("txn: %v", err)
			}
			return resp
		}
		first := txn()
		if !first.Succeeded || len(first.Responses) != 2 {
			t.Fatalf("first txn: want success with 2 responses, got succeeded=%v %v", first.Succeeded, first.Responses)
		}
		if kvs := first.Responses[1].GetResponseRange().Kvs; len(kvs) != 1 || string(kvs[0].Value) != "2" {
			t.Errorf("get inside the successful txn: want 2, got %v", kvs)
		}
		second := txn()
		if second.Succeeded {
			t.Fatal("second txn: compare on value 1 succeeded although the value is 2")
		}
		if kvs := second.Responses[1].GetResponseRange().Kvs; len(kvs) != 1 || string(kvs[0].Value) != "2" {
			t.Errorf("get inside the failed txn: want 2, got %v", kvs)
		}
		resp, err := cc.Get(ctx, "txn/else")
		if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "ran" {
			t.Errorf("failure branch's put: got %v, %v", resp, err)
		}
		// Version compare and a txn with no compares.
		resp2, err := cc.Txn(ctx).If(clientv3.Compare(clientv3.Version("txn/k"), "=", 2)).Then(clientv3.OpDelete("txn/k")).Commit()
		if err != nil || !resp2.Succeeded || resp2.Responses[0].GetResponseDeleteRange().Deleted != 1 {
			t.Errorf("txn with version compare and delete: %v, %v", resp2, err)
		}
	})

	t.Run("lease revoke deletes attached key", func(t *testing.T) {
		grant, err := a.Grant(ctx, 30)
		if err != nil {
			t.Fatalf("grant: %v", err)
		}
		if _, err := b.Put(ctx, "lease/k", "lv", clientv3.WithLease(grant.ID)); err != nil {
			t.Fatalf("put with lease: %v", err)
		}
		resp, err := cc.Get(ctx, "lease/k")
		if err != nil || len(resp.Kvs) != 1 || resp.Kvs[0].Lease != int64(grant.ID) {
			t.Fatalf("key with lease: got %v, %v; want it attached to lease %x", resp, err, grant.ID)
		}
		ttl, err := cc.TimeToLive(ctx, grant.ID, clientv3.WithAttachedKeys())
		if err != nil || ttl.TTL <= 0 || len(ttl.Keys) != 1 || string(ttl.Keys[0]) != "lease/k" {
			t.Errorf("time to live: got %+v, %v; want a positive TTL and key lease/k", ttl, err)
		}
		if _, err := b.Revoke(ctx, grant.ID); err != nil {
			t.Fatalf("revoke: %v", err)
		}
		resp, err = cc.Get(ctx, "lease/k")
		if err != nil || len(resp.Kvs) != 0 {
			t.Fatalf("get after revoke (linearizable, node 3): got %v, %v; want no key", resp, err)
		}
		if _, err := a.KeepAliveOnce(ctx, grant.ID); !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			t.Errorf("keep-alive of a revoked lease: got %v, want %v", err, rpctypes.ErrLeaseNotFound)
		}
	})

	t.Run("lease expiry deletes attached key", func(t *testing.T) {
		grant, err := a.Grant(ctx, 2)
		if err != nil {
			t.Fatalf("grant: %v", err)
		}
		if grant.TTL != 2 {
			t.Errorf("granted TTL %d, want 2", grant.TTL)
		}
		granted := time.Now()
		if _, err := a.Put(ctx, "expire/k", "ev", clientv3.WithLease(grant.ID)); err != nil {
			t.Fatalf("put with lease: %v", err)
		}
		framework.Eventually(t, func() error {
			resp, err := cc.Get(ctx, "expire/k")
			if err != nil {
				return err
			}
			if len(resp.Kvs) != 0 {
				return fmt.Errorf("expire/k still exists %v after its 2s lease was granted", time.Since(granted).Round(time.Millisecond))
			}
			return nil
		}, 12*time.Second)
		if took := time.Since(granted); took < 1500*time.Millisecond {
			t.Errorf("key of a 2s lease gone after only %v", took)
		} else {
			t.Logf("key of a 2s lease deleted %v after the grant", took.Round(time.Millisecond))
		}
	})

	t.Run("member list", func(t *testing.T) {
		resp, err := b.MemberList(ctx)
		if err != nil {
			t.Fatalf("member list: %v", err)
		}
		if len(resp.Members) != 3 {
			t.Fatalf("member list: %d members, want 3: %v", len(resp.Members), resp.Members)
		}
		for _, n := range c.Nodes() {
			i := slices.IndexFunc(resp.Members, func(m *etcdserverpb.Member) bool { return m.ID == n.ID })
			if i < 0 {
				t.Errorf("member %d missing from %v", n.ID, resp.Members)
				continue
			}
			m := resp.Members[i]
			if m.Name != n.Name || !slices.Contains(m.ClientURLs, n.URL()) || !slices.Contains(m.PeerURLs, n.RaftAddr()) && !slices.Contains(m.PeerURLs, "http://"+n.RaftAddr()) {
				t.Errorf("member %d: name %q client URLs %v peer URLs %v; want %q, %s, %s", n.ID, m.Name, m.ClientURLs, m.PeerURLs, n.Name, n.URL(), n.RaftAddr())
			}
		}
	})

	t.Run("health readyz metrics", func(t *testing.T) {
		for _, n := range c.Nodes() {
			for _, path := range []string{"/health", "/readyz"} {
				code, body, err := n.Get(ctx, path)
				if err != nil || code != http.StatusOK {
					t.Errorf("%s GET %s: %d %q %v", n, path, code, body, err)
				}
			}
			code, body, err := n.Get(ctx, "/metrics")
			if err != nil || code != http.StatusOK {
				t.Fatalf("%s GET /metrics: %d %v", n, code, err)
			}
			for _, name := range []string{"chainfire_write_duration_seconds", "chainfire_raft_index{", "chainfire_raft_term", "chainfire_has_leader 1", "chainfire_applied_index"} {
				if !strings.Contains(body, name) {
					t.Errorf("%s /metrics lacks %s", n, name)
				}
			}
		}
	})

	t.Run("JSON logs", func(t *testing.T) { checkLogs(t, c) })

	t.Run("compact then old revision is compacted", func(t *testing.T) {
		var revs []int64
		for i := range 3 {
			resp, err := a.Put(ctx, "compact/k", fmt.Sprint("v", i))
			if err != nil {
				t.Fatal(err)
			}
			revs = append(revs, resp.Header.Revision)
		}
		if _, err := b.Get(ctx, "compact/k", clientv3.WithRev(revs[0])); err != nil {
			t.Fatalf("get at revision %d before compaction: %v", revs[0], err)
		}
		if _, err := b.Compact(ctx, revs[2], clientv3.WithCompactPhysical()); err != nil {
			t.Fatalf("compact at %d: %v", revs[2], err)
		}
		for _, cl := range []*clientv3.Client{a, b, cc} {
			_, err := cl.Get(ctx, "compact/k", clientv3.WithRev(revs[0]))
			if !errors.Is(err, rpctypes.ErrCompacted) {
				t.Errorf("get at compacted revision %d via %v: got %v, want %v", revs[0], cl.Endpoints(), err, rpctypes.ErrCompacted)
			}
		}
		resp, err := cc.Get(ctx, "compact/k", clientv3.WithRev(revs[2]))
		if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v2" {
			t.Errorf("get at the compaction revision %d: %v, %v; want v2", revs[2], resp, err)
		}
		if _, err := a.Compact(ctx, revs[1]); !errors.Is(err, rpctypes.ErrCompacted) {
			t.Errorf("compact below the compacted revision: got %v, want %v", err, rpctypes.ErrCompacted)
		}
		// A watch from a compacted revision is canceled with the compact
		// revision, as in etcd.
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		select {
		case wr := <-a.Watch(wctx, "compact/k", clientv3.WithRev(revs[0])):
			if wr.CompactRevision != revs[2] || !errors.Is(wr.Err(), rpctypes.ErrCompacted) {
				t.Errorf("watch from compacted revision %d: compact revision %d, err %v; want %d, %v", revs[0], wr.CompactRevision, wr.Err(), revs[2], rpctypes.ErrCompacted)
			}
		case <-time.After(10 * time.Second):
			t.Error("watch from a compacted revision: no response within 10s")
		}
	})
}
