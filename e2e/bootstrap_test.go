//go:build e2e

package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/centra-cloud/centra/e2e/framework"
)

// TestBootstrapStaggeredStart is the first start of a three-node cluster
// whose nodes come up one after the other, each with bootstrap = true and
// the same initial_members: node 1 finds no cluster and bootstraps alone;
// node 2 finds node 1 running raft (no quorum, no leader) and bootstraps
// because node 1 says it is an initial member that never started; node 3
// gets the same answer from the two-node cluster. With and without TLS
// (the probe of a running member then ends in dragonboat's TLS listener).
func TestBootstrapStaggeredStart(t *testing.T) {
	t.Run("plain", func(t *testing.T) { staggeredStart(t) })
	t.Run("tls", func(t *testing.T) { staggeredStart(t, framework.WithTLS()) })
}

func staggeredStart(t *testing.T, opts ...framework.Option) {
	c := framework.NewCluster(t, append(opts, framework.WithNodes(3), framework.WithLateStart(2))...)
	n1, n2, n3 := c.Node(0), c.Node(1), c.Node(2)
	must(t, n1.WaitLog(testCtx(t, 20*time.Second), "No cluster runs at the other initial members"))
	must(t, n1.WaitLog(testCtx(t, 20*time.Second), "Shard started"))
	for _, n := range []*framework.Node{n2, n3} {
		must(t, n.Start())
		must(t, n.WaitLog(testCtx(t, 20*time.Second), "A cluster already runs at"))
		must(t, n.WaitLog(testCtx(t, 20*time.Second), "initial member that never started; bootstrapping"))
		must(t, n.WaitLog(testCtx(t, 20*time.Second), "Shard started"))
	}
	for _, n := range c.Nodes() {
		must(t, n.WaitReady(testCtx(t, 30*time.Second)))
	}
	c.Leader(t)
	cli := n3.Client(t)
	framework.Eventually(t, func() error {
		resp, err := cli.MemberList(testCtx(t, 5*time.Second))
		if err != nil {
			return err
		}
		voters := 0
		for _, m := range resp.Members {
			if !m.IsLearner && len(m.ClientURLs) > 0 {
				voters++
			}
		}
		if voters != 3 {
			return fmt.Errorf("member list: %v; want 3 published voters", resp.Members)
		}
		return nil
	}, 20*time.Second)
	want := wantKeys("stagger/%02d", 5)
	for k, v := range want {
		if _, err := cli.Put(testCtx(t, 10*time.Second), k, v); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range c.Nodes() {
		if err := checkAcked(testCtx(t, 10*time.Second), n.Client(t), "stagger/", want); err != nil {
			t.Error(err)
		}
	}
}

// replayWipeRejoin replays the crash-recovery section of
// runbooks/troubleshooting.md ("If cannot restore": member-remove, wipe,
// start, member-add --learner, member-promote) on c's three control-plane
// nodes with the node's original config file (bootstrap = true,
// initial_members listing the live peers): the wiped node must not
// bootstrap under its old replica ID but wait and join once added. Then the
// same without the member-remove (the operator forgot it): the node is told
// it lost its data, logs the commands to run, and joins after them. cf runs
// chainfire-client, centra the centra CLI (both with c's TLS material).
func replayWipeRejoin(t *testing.T, c *framework.Cluster, cf, centra cliRun) {
	n1, n2, n3 := c.Node(0), c.Node(1), c.Node(2)
	if c.Node(c.Leader(t)) != n1 {
		transferLeaderWith(t, c, centra, 1)
	}
	leaderEP := httpEndpoint(n1)
	want := wantKeys("wipe/%02d", 20)
	cli := n1.Client(t)
	for k, v := range want {
		if _, err := cli.Put(testCtx(t, 10*time.Second), k, v); err != nil {
			t.Fatal(err)
		}
	}

	// "Remove node from cluster and re-add fresh".
	if r := cf("--endpoint", leaderEP, "member-remove", "--node-id", "3"); r.Err != nil {
		t.Fatalf("member-remove --node-id 3: %s", r)
	}
	// "On failed node, wipe and rejoin": stop, rm -rf, start (same config).
	must(t, n3.Stop())
	must(t, n3.WipeData())
	must(t, n3.Start())
	must(t, n3.WaitLog(testCtx(t, 20*time.Second), "A cluster already runs at"))
	notReady(t, n3)
	if log := n3.CurrentLog(); strings.Contains(log, "Shard started") {
		t.Fatalf("the wiped node bootstrapped under its old replica ID:\n%s", log)
	}
	// "Re-add from leader", "Promote after catchup".
	r := cf("--endpoint", leaderEP, "member-add", "--node-id", "3", "--peer-url", n3.RaftAddr(), "--learner")
	if r.Err != nil {
		t.Fatalf("member-add --node-id 3 --learner: %s", r)
	}
	must(t, n3.WaitReady(testCtx(t, 30*time.Second)))
	if r := cf("--endpoint", leaderEP, "member-promote", "--node-id", "3", "--wait"); r.Err != nil {
		t.Fatalf("member-promote --node-id 3: %s", r)
	}
	waitMembersWith(t, centra, leaderEP, bootMembers(c, 3), 20*time.Second)
	if rec, err := n3.MemberRecord(); err != nil || rec.ReplicaID <= 3 {
		t.Errorf("member.json of the rejoined node 3: %+v, %v; want a new replica ID (> 3)", rec, err)
	}
	if err := checkAcked(testCtx(t, 10*time.Second), n3.Client(t), "wipe/", want); err != nil {
		t.Errorf("the rejoined node 3: %v", err)
	}

	// The same without member-remove: node 2 is still a voter when it
	// comes back empty with bootstrap = true.
	must(t, n2.Stop())
	must(t, n2.WipeData())
	must(t, n2.Start())
	must(t, n2.WaitLog(testCtx(t, 20*time.Second), "lost its data; it cannot bootstrap again. On a member run: centra cluster member-remove --node-id 2, then centra cluster member-add --node-id 2 --peer-url "+n2.RaftAddr()))
	must(t, n1.WaitLog(testCtx(t, 20*time.Second), "Member lost its data and restarted with bootstrap = true"))
	notReady(t, n2)
	if r := cf("--endpoint", leaderEP, "member-remove", "--node-id", "2"); r.Err != nil {
		t.Fatalf("member-remove --node-id 2: %s", r)
	}
	if r := cf("--endpoint", leaderEP, "member-add", "--node-id", "2", "--peer-url", n2.RaftAddr()); r.Err != nil {
		t.Fatalf("member-add --node-id 2: %s", r)
	}
	must(t, n2.WaitReady(testCtx(t, 30*time.Second)))
	waitMembersWith(t, centra, leaderEP, bootMembers(c, 3), 30*time.Second)
	if _, err := cli.Put(testCtx(t, 10*time.Second), "wipe/after", "x"); err != nil {
		t.Fatal(err)
	}
	want["wipe/after"] = "x"
	for _, n := range c.Nodes() {
		if err := checkAcked(testCtx(t, 10*time.Second), n.Client(t), "wipe/", want); err != nil {
			t.Errorf("after both rejoins: %v", err)
		}
	}
	// A plain restart keeps the identity from member.json.
	must(t, n2.Restart())
	must(t, n2.WaitReady(testCtx(t, 30*time.Second)))
	if crashes := n2.Crashes(); len(crashes) > 0 {
		t.Errorf("node 2 crashed: %v", crashes)
	}
}

// notReady checks that n's /readyz does not answer 200.
func notReady(t *testing.T, n *framework.Node) {
	t.Helper()
	code, body, err := n.Get(testCtx(t, 5*time.Second), "/readyz")
	if err == nil && code == http.StatusOK {
		t.Fatalf("%s is ready (%s) but should wait to be added", n, fmt.Sprint(code, " ", strings.TrimSpace(body)))
	}
}
