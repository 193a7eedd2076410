//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/centra-cloud/centra/e2e/framework"
)

// TestRequireLeaderWatchCancelledOnQuorumLoss pauses two of three members
// and checks what etcd does on the third (the leader, which must notice it
// lost its quorum): a watch opened with clientv3.WithRequireLeader ends with
// "etcdserver: no leader" within 5 s, a plain watch stays open, and a
// require-leader request fails fast. After the resume both work again.
func TestRequireLeaderWatchCancelledOnQuorumLoss(t *testing.T) {
	c := framework.NewCluster(t, framework.WithNodes(3))
	ctx := testCtx(t, 2*time.Minute)
	li := c.Leader(t)
	cli := c.Node(li).Client(t)

	rl := clientv3.WithRequireLeader(ctx)
	reqW := cli.Watch(rl, "rl/", clientv3.WithPrefix(), clientv3.WithCreatedNotify())
	plainW := cli.Watch(ctx, "rl/", clientv3.WithPrefix(), clientv3.WithCreatedNotify())
	for _, ch := range []clientv3.WatchChan{reqW, plainW} {
		if r := <-ch; !r.Created || r.Err() != nil {
			t.Fatalf("watch not created: %+v %v", r, r.Err())
		}
	}
	if _, err := cli.Put(rl, "rl/k", "v"); err != nil {
		t.Fatalf("require-leader put with a leader: %v", err)
	}
	for _, ch := range []clientv3.WatchChan{reqW, plainW} {
		if r := <-ch; len(r.Events) != 1 {
			t.Fatalf("watch event: %+v %v", r, r.Err())
		}
	}

	paused := c.Followers(li)
	for _, i := range paused {
		must(t, c.Node(i).Pause())
	}
	start := time.Now()
	select {
	case r, ok := <-reqW:
		if !ok || !r.Canceled || !errors.Is(r.Err(), rpctypes.ErrNoLeader) {
			t.Fatalf("require-leader watch ended with %+v (open %v), err %v; want canceled with %v", r, ok, r.Err(), rpctypes.ErrNoLeader)
		}
		t.Logf("require-leader watch cancelled %v after the quorum was lost", time.Since(start).Round(time.Millisecond))
	case <-time.After(5 * time.Second):
		t.Fatal("require-leader watch still open 5 s after two of three members were paused")
	}
	select {
	case r := <-plainW:
		t.Fatalf("plain watch answered while the member has no leader: %+v %v", r, r.Err())
	default:
	}
	// A put, because clientv3 retries reads on Unavailable until the
	// deadline (against etcd as well).
	rctx, cancel := context.WithTimeout(rl, 2*time.Second)
	_, err := cli.Put(rctx, "rl/k", "lost")
	cancel()
	if !errors.Is(err, rpctypes.ErrNoLeader) {
		t.Fatalf("require-leader put without a leader: %v, want %v", err, rpctypes.ErrNoLeader)
	}
	if _, err := cli.Get(ctx, "rl/k", clientv3.WithSerializable()); err != nil {
		t.Fatalf("serializable get without require-leader: %v", err)
	}

	for _, i := range paused {
		must(t, c.Node(i).Resume())
	}
	c.Leader(t)
	framework.Eventually(t, func() error {
		wctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), 5*time.Second)
		defer cancel()
		w := cli.Watch(wctx, "rl/", clientv3.WithPrefix(), clientv3.WithCreatedNotify())
		r := <-w
		if r.Err() != nil {
			return r.Err()
		}
		return nil
	}, 20*time.Second)
	if _, err := cli.Put(rl, "rl/k", "after"); err != nil {
		t.Fatalf("require-leader put after the resume: %v", err)
	}
	if r := <-plainW; len(r.Events) != 1 || string(r.Events[0].Kv.Value) != "after" {
		t.Fatalf("plain watch after the resume: %+v %v", r, r.Err())
	}
}

// TestEtcdctlMemberAddLearner adds a member with `etcdctl member add
// --learner`: the output carries peer URLs with their scheme, and the new
// node, whose config says nothing about its role, learns from the cluster
// that it is a learner (as an etcd member does) and replicates as one.
func TestEtcdctlMemberAddLearner(t *testing.T) {
	c := framework.NewCluster(t)
	ctx := testCtx(t, 2*time.Minute)
	n1 := c.Node(0)
	cli := n1.Client(t)
	if _, err := cli.Put(ctx, "learner/k", "v"); err != nil {
		t.Fatal(err)
	}
	n2, err := c.PrepareNode()
	if err != nil {
		t.Fatal(err)
	}
	must(t, n2.Start())
	peer := "http://" + n2.RaftAddr()
	r := framework.RunEtcdctl(t, "--endpoints", n1.Endpoint(), "member", "add", n2.Name, "--learner", "--peer-urls", peer)
	if r.Err != nil || !strings.Contains(r.Stdout, "added as learner") || !strings.Contains(r.Stdout, "ETCD_INITIAL_ADVERTISE_PEER_URLS=\""+peer+"\"") {
		t.Fatalf("etcdctl member add --learner: %s", r)
	}
	framework.Eventually(t, func() error {
		ml, err := cli.MemberList(ctx)
		if err != nil {
			return err
		}
		for _, m := range ml.Members {
			if m.ID != n2.ID {
				continue
			}
			if !m.IsLearner || m.Name != n2.Name || len(m.PeerURLs) != 1 || m.PeerURLs[0] != peer || len(m.ClientURLs) == 0 {
				return fmt.Errorf("new member %+v: want learner %s at %s with client URLs", m, n2.Name, peer)
			}
			return nil
		}
		return fmt.Errorf("node %d not in the member list %v", n2.ID, ml.Members)
	}, 30*time.Second)
	framework.Eventually(t, func() error {
		st, err := n2.Status(ctx)
		if err != nil {
			return err
		}
		if !st.IsLearner {
			return fmt.Errorf("node %d reports is_learner false", n2.ID)
		}
		resp, err := n2.Client(t).Get(ctx, "learner/k", clientv3.WithSerializable())
		if err != nil {
			return err
		}
		if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
			return fmt.Errorf("learner has %v", resp.Kvs)
		}
		return nil
	}, 30*time.Second)
}
