//go:build e2e

package e2e

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/centra-cloud/centra/e2e/framework"
)

// TestKeepAliveOnStaleLeader: a keepalive that reaches a leader frozen
// (SIGSTOP) while the others elected a new one must not be acknowledged
// from the old leader's own lessor, which the new leader never hears of:
// the lease would then expire before the TTL promised from the keepalive's
// call (found by the fault suite, pause-leader). The resumed old leader
// first confirms its leadership (ReadIndex), fails, and forwards the
// keepalive to the new leader or refuses it; either way, if it is
// acknowledged, the key stays until the call plus the TTL.
func TestKeepAliveOnStaleLeader(t *testing.T) {
	const ttl = 6
	c := framework.NewCluster(t, framework.WithNodes(3))
	ctx := testCtx(t, 2*time.Minute)
	old := c.Leader(t)
	oc := c.Node(old).Client(t)
	g, err := oc.Grant(ctx, ttl)
	must(t, err)
	_, err = oc.Put(ctx, "stale/k", "v", clientv3.WithLease(g.ID))
	must(t, err)

	must(t, c.Node(old).Pause())
	nl := c.Leader(t)
	nc := c.Node(nl).Client(t)
	// The new leader extended the lease by its TTL when it took over; wait
	// until half of that is gone, so that a keepalive now promises more
	// than the new leader's deadline.
	framework.Eventually(t, func() error {
		r, err := nc.TimeToLive(ctx, g.ID)
		if err != nil {
			return err
		}
		if r.TTL > ttl/2 {
			return context.DeadlineExceeded
		}
		return nil
	}, 20*time.Second)

	// Many keepalives wait in the frozen leader's sockets, each on a
	// connection of its own, so that some are handled before it hears of
	// the new term.
	const n = 16
	call := time.Now()
	errs := make(chan error, n)
	for range n {
		cli := c.Node(old).Client(t)
		go func() {
			kctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			r, err := cli.KeepAliveOnce(kctx, g.ID)
			if err == nil && r.TTL <= 0 {
				err = context.Canceled
			}
			errs <- err
		}()
	}
	must(t, c.Node(old).Resume())
	acked := 0
	for range n {
		if err := <-errs; err == nil {
			acked++
		} else {
			t.Logf("keepalive through the resumed old leader not acknowledged (allowed): %v", err)
		}
	}
	if acked == 0 {
		return
	}
	promised := call.Add(ttl * time.Second)
	t.Logf("%d of %d keepalives acknowledged; the key must stay until %v from now", acked, n, time.Until(promised).Round(time.Millisecond))
	for time.Now().Before(promised.Add(-500 * time.Millisecond)) {
		r, err := nc.Get(ctx, "stale/k")
		if err == nil && len(r.Kvs) == 0 {
			t.Fatalf("lease %x expired %v before the TTL promised by an acknowledged keepalive", g.ID, time.Until(promised).Round(time.Millisecond))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
