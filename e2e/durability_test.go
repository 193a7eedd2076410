//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/centra-cloud/centra/e2e/framework"
)

// TestLeaderPauseResume freezes the leader (SIGSTOP): the others elect a
// new leader and take writes; once resumed, the old leader must not serve a
// stale linearizable read, and catches up.
func TestLeaderPauseResume(t *testing.T) {
	c := framework.NewCluster(t, framework.WithNodes(3))
	ctx := testCtx(t, 2*time.Minute)
	old := c.Leader(t)
	oc := c.Node(old).Client(t)
	if _, err := oc.Put(ctx, "pause/k", "before"); err != nil {
		t.Fatal(err)
	}

	// If the test stops early, the cleanup's Stop resumes the node first.
	must(t, c.Node(old).Pause())
	nl := c.Leader(t)
	t.Logf("leader %s paused; %s took over", c.Node(old), c.Node(nl))
	nc := c.Node(nl).Client(t)
	put, err := nc.Put(ctx, "pause/k", "during")
	if err != nil {
		t.Fatalf("put while the old leader is paused: %v", err)
	}

	must(t, c.Node(old).Resume())
	// The first linearizable read on the old leader may fail while it
	// learns the new term, but must never return the old value.
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	resp, err := oc.Get(rctx, "pause/k")
	cancel()
	if err == nil && (len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "during") {
		t.Fatalf("stale linearizable read on the resumed old leader: %v, want \"during\" (revision %d)", resp.Kvs, put.Header.Revision)
	}
	framework.Eventually(t, func() error {
		resp, err := oc.Get(ctx, "pause/k")
		if err != nil {
			return err
		}
		if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "during" {
			return fmt.Errorf("resumed %s reads %v", c.Node(old), resp.Kvs)
		}
		return nil
	}, 20*time.Second)
	if _, err := c.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestFullClusterRestart restarts every node on its data directory, first
// after a clean SIGTERM, then after SIGKILL during writes: acknowledged
// writes and the revision counter survive both.
func TestFullClusterRestart(t *testing.T) {
	c := framework.NewCluster(t, framework.WithNodes(3))
	ctx := testCtx(t, 3*time.Minute)

	restartAll := func(t *testing.T) {
		t.Helper()
		rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		must(t, c.RestartAll(rctx))
	}
	// checkAfter verifies acked on every node and that a new write gets a
	// revision above lastRev.
	checkAfter := func(t *testing.T, prefix string, acked map[string]string, lastRev int64) {
		t.Helper()
		for _, n := range c.Nodes() {
			if err := checkAcked(ctx, n.Client(t), prefix, acked); err != nil {
				t.Fatalf("after the restart, %s: %v", n, err)
			}
		}
		put, err := c.Node(0).Client(t).Put(ctx, prefix+"after", "x")
		if err != nil {
			t.Fatalf("put after the restart: %v", err)
		}
		if put.Header.Revision <= lastRev {
			t.Fatalf("put after the restart got revision %d, not above %d from before", put.Header.Revision, lastRev)
		}
	}

	t.Run("SIGTERM", func(t *testing.T) {
		cli := c.Client(t)
		acked := map[string]string{}
		var lastRev int64
		for i := range 100 {
			key, val := fmt.Sprintf("term/%03d", i), fmt.Sprint("v", i)
			resp, err := cli.Put(ctx, key, val)
			if err != nil {
				t.Fatal(err)
			}
			acked[key], lastRev = val, resp.Header.Revision
		}
		for _, n := range c.Nodes() {
			must(t, n.Stop())
		}
		restartAll(t)
		checkAfter(t, "term/", acked, lastRev)
	})

	t.Run("SIGKILL during writes", func(t *testing.T) {
		cli, err := c.NewClient(c.Endpoints()...)
		if err != nil {
			t.Fatal(err)
		}
		defer cli.Close()
		log := newAckLog()
		stop := writers(ctx, cli, "kill9/", 3, log)
		defer stop()
		framework.Eventually(t, func() error {
			if n := log.count(); n < 200 {
				return fmt.Errorf("%d writes acknowledged, want 200 before the kill", n)
			}
			return nil
		}, 30*time.Second)
		for _, n := range c.Nodes() {
			must(t, n.Kill())
		}
		stop()
		acked, revs, failed := log.snapshot()
		var lastRev int64
		for _, r := range revs {
			lastRev = max(lastRev, r)
		}
		t.Logf("%d writes acknowledged before all nodes were killed, %d failed", len(acked), failed)
		restartAll(t)
		checkAfter(t, "kill9/", acked, lastRev)
	})
}

// TestLeaseKeepAliveAcrossLeaderKill keeps a lease alive with clientv3's
// KeepAlive while the leader is killed: the lease and its key must outlive
// several TTLs.
func TestLeaseKeepAliveAcrossLeaderKill(t *testing.T) {
	c := framework.NewCluster(t, framework.WithNodes(3))
	ctx := testCtx(t, 2*time.Minute)
	cli := c.Client(t)
	const ttl = 3
	grant, err := cli.Grant(ctx, ttl)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "ka/k", "v", clientv3.WithLease(grant.ID)); err != nil {
		t.Fatal(err)
	}
	kctx, kcancel := context.WithCancel(ctx)
	defer kcancel()
	ch, err := cli.KeepAlive(kctx, grant.ID)
	if err != nil {
		t.Fatal(err)
	}
	renewed := make(chan time.Time, 1000)
	go func() {
		for range ch {
			renewed <- time.Now()
		}
		close(renewed)
	}()

	old := c.Leader(t)
	must(t, c.Node(old).Kill())
	killedAt := time.Now()
	nl := c.Leader(t)
	reader := c.Node(nl).Client(t)
	// Watch the key for three TTLs after the kill; it must stay, and the
	// lease must be renewed after the failover.
	var lastRenew time.Time
	framework.Eventually(t, func() error {
		for drained := false; !drained; {
			select {
			case at, ok := <-renewed:
				if !ok {
					t.Fatalf("keep-alive channel closed %v after the leader kill: the lease was lost", time.Since(killedAt).Round(time.Millisecond))
				}
				lastRenew = at
			default:
				drained = true
			}
		}
		resp, err := reader.Get(ctx, "ka/k")
		if err == nil && len(resp.Kvs) == 0 {
			t.Fatalf("key of a kept-alive lease vanished %v after the leader kill", time.Since(killedAt).Round(time.Millisecond))
		}
		if elapsed := time.Since(killedAt); elapsed < 3*ttl*time.Second {
			return fmt.Errorf("observed the key for %v of %ds", elapsed.Round(time.Millisecond), 3*ttl)
		}
		if !lastRenew.After(killedAt) {
			return fmt.Errorf("no keep-alive answered since the leader kill")
		}
		return err
	}, 3*ttl*time.Second+20*time.Second)
	ttlResp, err := reader.TimeToLive(ctx, grant.ID)
	if err != nil || ttlResp.TTL <= 0 {
		t.Fatalf("time to live of the kept-alive lease after failover: %+v, %v", ttlResp, err)
	}
}
