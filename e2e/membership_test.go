//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/centra-cloud/centra/e2e/framework"
)

// transferLeader makes node id the leader through `centra cluster
// leader-transfer` and waits until every running node agrees.
func transferLeader(t *testing.T, c *framework.Cluster, id uint64) {
	t.Helper()
	transferLeaderWith(t, c, c.RunCLI, id)
}

// transferLeaderWith is transferLeader through run.
func transferLeaderWith(t *testing.T, c *framework.Cluster, run cliRun, id uint64) {
	t.Helper()
	r := run("cluster", "leader-transfer", "--endpoint", strings.Join(c.Endpoints(), ","), "--node-id", fmt.Sprint(id))
	if want := fmt.Sprintf("Leader transferred: leader=%d\n", id); r.Err != nil || r.Stdout != want {
		t.Fatalf("leader-transfer --node-id %d: want %q, got %s", id, want, r)
	}
	framework.Eventually(t, func() error {
		for _, n := range c.Running() {
			st, err := cliStatusWith(run, n.Endpoint())
			if err != nil {
				return err
			}
			if st["leader"] != fmt.Sprint(id) {
				return fmt.Errorf("%s status: leader %s, want %d", n, st["leader"], id)
			}
		}
		return nil
	}, 10*time.Second)
}

// TestMemberRemoveWipeReAdd removes a member, wipes it and adds the same
// node ID back: it must join under a new replica ID (dragonboat never
// takes a removed one back), catch up and survive a kill -9.
func TestMemberRemoveWipeReAdd(t *testing.T) {
	c := framework.NewCluster(t, framework.WithNodes(3))
	n1, n2, n3 := c.Node(0), c.Node(1), c.Node(2)
	// Deterministic roles: node 1 leads, node 2 is asked to remove node 3.
	if c.Node(c.Leader(t)) != n1 {
		transferLeader(t, c, 1)
	}
	const keys = 50
	want := wantKeys("readd/%02d", keys)
	cli := n1.Client(t)
	for k, v := range want {
		if _, err := cli.Put(testCtx(t, 10*time.Second), k, v); err != nil {
			t.Fatal(err)
		}
	}

	r := c.RunCLI("cluster", "member-remove", "--endpoint", n2.Endpoint(), "--node-id", "3")
	if r.Err != nil || r.Stdout != "Node removed: id=3\n" {
		t.Fatalf("member-remove --node-id 3 through node 2: %s", r)
	}
	waitMembers(t, n1.Endpoint(), bootMembers(c, 2), 10*time.Second)
	must(t, n3.Stop())
	must(t, n3.WipeData())
	must(t, n3.SetJoining())
	must(t, n3.Start())
	must(t, n3.WaitLog(testCtx(t, 20*time.Second), "Waiting to be added to a cluster"))

	r = c.RunCLI("cluster", "member-add", "--endpoint", n1.Endpoint(), "--node-id", "3", "--peer-url", n3.RaftAddr())
	if want := fmt.Sprintf("Node added: id=3, peer_urls=[%q]\n", n3.RaftAddr()); r.Err != nil || r.Stdout != want {
		t.Fatalf("member-add of the wiped node 3: want %q, got %s", want, r)
	}
	must(t, n3.WaitReady(testCtx(t, 30*time.Second)))
	rec, err := n3.MemberRecord()
	if err != nil {
		t.Fatal(err)
	}
	if rec.NodeID != 3 || rec.ReplicaID <= 3 || rec.RaftAddress != n3.RaftAddr() {
		t.Errorf("member.json of the re-added node: %+v; want node 3, a new replica ID (> 3), at %s", rec, n3.RaftAddr())
	}
	waitMembers(t, n1.Endpoint(), bootMembers(c, 3), 10*time.Second)
	if err := checkAcked(testCtx(t, 10*time.Second), n3.Client(t), "readd/", want); err != nil {
		t.Errorf("linearizable read on the re-added node: %v", err)
	}
	if st, err := cliStatus(n3.Endpoint()); err != nil || st["member_id"] != "3" || st["leader"] != "1" {
		t.Errorf("status of the re-added node: %v, %v; want member_id 3 (the node ID), leader 1", st, err)
	}

	// kill -9 and restart: it comes back from member.json.
	must(t, n3.Kill())
	must(t, n3.Restart())
	must(t, n3.WaitReady(testCtx(t, 30*time.Second)))
	c.Leader(t)
	if again, err := n3.MemberRecord(); err != nil || again != rec {
		t.Errorf("member.json after the restart: %+v, %v; want %+v", again, err, rec)
	}
	// Still a voter after the restart.
	waitMembers(t, n1.Endpoint(), bootMembers(c, 3), 10*time.Second)
	if st, err := cliStatus(n3.Endpoint()); err != nil || st["is_learner"] != "false" {
		t.Errorf("status of node 3 after the restart: %v, %v; want is_learner false", st, err)
	}
	cli3 := n3.Client(t)
	if _, err := cli3.Put(testCtx(t, 10*time.Second), "readd/after", "x"); err != nil {
		t.Fatalf("put through the restarted node 3: %v", err)
	}
	want["readd/after"] = "x"
	for _, n := range c.Nodes() {
		if err := checkAcked(testCtx(t, 10*time.Second), n.Client(t), "readd/", want); err != nil {
			t.Errorf("after the restart: %v", err)
		}
	}
	if r := framework.RunEtcdctl(t, "--endpoints", n3.Endpoint(), "member", "list"); r.Err != nil || strings.Count(r.Stdout, "\n") != 3 {
		t.Errorf("etcdctl member list: want 3 members, got %s", r)
	}
}

// TestMembershipErrors checks the refusals of member-add, member-remove and
// member-promote: each a one-line error, nothing changed.
func TestMembershipErrors(t *testing.T) {
	c := framework.NewCluster(t, framework.WithNodes(3))
	n1, n2, n3 := c.Node(0), c.Node(1), c.Node(2)
	eps := strings.Join(c.Endpoints(), ",")
	unused, err := framework.UnusedAddr()
	if err != nil {
		t.Fatal(err)
	}

	wantError(t, "member-add of an existing node id",
		c.RunCLI("cluster", "member-add", "--endpoint", eps, "--node-id", "2", "--peer-url", unused),
		"already a member", "already exist")
	wantError(t, "member-add of a peer URL in use",
		c.RunCLI("cluster", "member-add", "--endpoint", eps, "--node-id", "9", "--peer-url", n2.RaftAddr()),
		"Peer URLs already exists")
	wantError(t, "member-remove of the member serving the request",
		c.RunCLI("cluster", "member-remove", "--endpoint", n2.Endpoint(), "--node-id", "2"),
		"another member")
	wantError(t, "member-promote of a voter",
		c.RunCLI("cluster", "member-promote", "--endpoint", eps, "--node-id", "1"),
		"can only promote a learner")
	wantError(t, "member-remove of an unknown node",
		c.RunCLI("cluster", "member-remove", "--endpoint", eps, "--node-id", "42"),
		"member not found")
	waitMembers(t, n1.Endpoint(), bootMembers(c, 3), 10*time.Second)

	// member-add of a node that is not listening: added, and the CLI and
	// the member serving it say that the node has not connected and why.
	leader := c.Node(c.Leader(t))
	r := c.RunCLI("cluster", "member-add", "--endpoint", leader.Endpoint(), "--node-id", "9", "--peer-url", unused)
	if r.Err != nil || !strings.HasPrefix(r.Stdout, "Node added: id=9") ||
		!strings.Contains(r.Stderr, "Warning: added; node 9 has not connected yet: ") || !strings.Contains(r.Stderr, "connection refused") {
		t.Errorf("member-add of an unreachable node: want it added with a warning naming the handshake error, got %s", r)
	}
	warn := "Added node 9, but it has not answered the join handshake at " + unused
	must(t, leader.WaitLog(testCtx(t, 10*time.Second), warn))
	for _, line := range strings.Split(leader.CurrentLog(), "\n") {
		if strings.Contains(line, warn) && !strings.Contains(line, "WARN") {
			t.Errorf("the leader should log the unreachable new node at warn: %s", line)
		}
	}
	if r := c.RunCLI("cluster", "member-remove", "--endpoint", leader.Endpoint(), "--node-id", "9"); r.Err != nil {
		t.Errorf("member-remove of the unreachable node: %s", r)
	}
	waitMembers(t, n1.Endpoint(), bootMembers(c, 3), 10*time.Second)

	// With node 3 down, removing node 2 would leave one healthy voter of
	// two: refused.
	must(t, n3.Stop())
	wantError(t, "member-remove leaving fewer healthy voters than a quorum",
		c.RunCLI("cluster", "member-remove", "--endpoint", n1.Endpoint(), "--node-id", "2"),
		"unhealthy cluster")
	waitMembers(t, n1.Endpoint(), bootMembers(c, 3), 10*time.Second)
	if r := c.RunCLI("kv", "put", "--endpoint", n1.Endpoint(), "errors/still-writable", "yes"); r.Err != nil {
		t.Errorf("put after the refused changes: %s", r)
	}
}

// TestNoQuorum kills two of three voters: the survivor fails writes fast
// with "no leader" and reports `leader: none`; once a majority is back,
// writes succeed and no acknowledged write is lost.
func TestNoQuorum(t *testing.T) {
	c := framework.NewCluster(t, framework.WithNodes(3))
	survivor, n2, n3 := c.Node(0), c.Node(1), c.Node(2)

	log := newAckLog()
	stop := writers(t.Context(), c.Client(t), "nq/", 2, log)
	framework.Eventually(t, func() error {
		if n := log.count(); n < 30 {
			return fmt.Errorf("%d writes acknowledged", n)
		}
		return nil
	}, 20*time.Second)
	must(t, n2.Kill())
	must(t, n3.Kill())
	stop()

	framework.Eventually(t, func() error {
		st, err := cliStatus(survivor.Endpoint())
		if err != nil {
			return err
		}
		if st["leader"] != "none" {
			return fmt.Errorf("survivor's status: leader %q, want none", st["leader"])
		}
		return nil
	}, 10*time.Second)
	for i := range 3 {
		begin := time.Now()
		r := c.RunCLI("kv", "put", "--endpoint", survivor.Endpoint(), fmt.Sprintf("nq/refused/%d", i), "x")
		took := time.Since(begin)
		oneLineError(t, "put without a quorum", r)
		if !strings.Contains(r.Stderr, "no leader") {
			t.Errorf("put without a quorum: the error should say \"no leader\": %s", r)
		}
		if took > 5*time.Second {
			t.Errorf("put without a quorum took %v; want a fast failure (< 5 s)", took.Round(time.Millisecond))
		}
	}

	// A majority is back: writes succeed.
	must(t, n2.Restart())
	must(t, n2.WaitReady(testCtx(t, 30*time.Second)))
	c.Leader(t)
	if r := c.RunCLI("kv", "put", "--endpoint", survivor.Endpoint(), "nq/after", "ok"); r.Err != nil || r.Stdout != "OK\n" {
		t.Fatalf("put with a majority back: %s", r)
	}
	must(t, n3.Restart())
	must(t, n3.WaitReady(testCtx(t, 30*time.Second)))
	c.Leader(t)

	acked, _, failed := log.snapshot()
	acked["nq/after"] = "ok"
	t.Logf("%d writes acknowledged, %d failed", len(acked), failed)
	for _, n := range c.Nodes() {
		if err := checkAcked(testCtx(t, 10*time.Second), n.Client(t), "nq/", acked); err != nil {
			t.Errorf("%s: %v", n, err)
		}
		if resp, err := n.Client(t).Get(testCtx(t, 10*time.Second), "nq/refused/0"); err != nil || len(resp.Kvs) != 0 {
			t.Errorf("%s: a refused put must not appear: %v, %v", n, resp, err)
		}
	}
}

// TestLeaderHandoff checks that SIGTERM on the leader hands leadership to
// another voter before the process exits, and that leader-transfer moves
// it on request.
func TestLeaderHandoff(t *testing.T) {
	c := framework.NewCluster(t, framework.WithNodes(3))
	old := c.Node(c.Leader(t))
	must(t, old.Stop())
	if !strings.Contains(old.CurrentLog(), "Leadership transferred before shutdown") {
		t.Errorf("the stopped leader did not log \"Leadership transferred before shutdown\"; its log ends:\n%s", lastLinesOf(old.CurrentLog(), 15))
	}
	ctx := testCtx(t, 5*time.Second)
	li, err := c.WaitLeader(ctx)
	if err != nil {
		t.Fatalf("after the leader's graceful shutdown: %v", err)
	}
	if c.Node(li) == old {
		t.Fatalf("the stopped node is still the leader")
	}
	if r := c.RunCLI("kv", "put", "--endpoint", strings.Join(c.Endpoints(), ","), "handoff/k", "v"); r.Err != nil {
		t.Errorf("put after the handoff: %s", r)
	}
	must(t, old.Restart())
	must(t, old.WaitReady(testCtx(t, 30*time.Second)))

	// leader-transfer to each follower in turn.
	li = c.Leader(t)
	for _, fi := range c.Followers(li) {
		target := c.Node(fi)
		transferLeader(t, c, target.ID)
		r := c.RunCLI("cluster", "status", "--endpoint", old.Endpoint(), "-o", "json")
		var st struct {
			Leader json.Number `json:"leader"`
		}
		if r.Err != nil || json.Unmarshal([]byte(r.Stdout), &st) != nil || st.Leader.String() != fmt.Sprint(target.ID) {
			t.Errorf("status -o json on %s: want leader %d, got %s", old, target.ID, r)
		}
	}
	wantError(t, "leader-transfer to a node that is not a member",
		c.RunCLI("cluster", "leader-transfer", "--endpoint", c.Node(0).Endpoint(), "--node-id", "42"),
		"member not found")
}

// lastLinesOf returns the last n lines of text.
func lastLinesOf(text string, n int) string {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// TestLearnerPromotion covers learners: a learner cannot lead nor be the
// only voter left, a learner that is far behind (here: not even started)
// is not promoted unless `member-promote --wait` waits for it, and a
// caught-up learner is promoted at once.
func TestLearnerPromotion(t *testing.T) {
	c := framework.NewCluster(t)
	n1 := c.Node(0)
	want := wantKeys("learn/%03d", 100)
	cli := n1.Client(t)
	for k, v := range want {
		if _, err := cli.Put(testCtx(t, 10*time.Second), k, v); err != nil {
			t.Fatal(err)
		}
	}
	addLearner := func(n *framework.Node) {
		t.Helper()
		r := c.RunCLI("cluster", "member-add", "--endpoint", n1.Endpoint(), "--node-id", fmt.Sprint(n.ID), "--peer-url", n.RaftAddr(), "--learner")
		if r.Err != nil {
			t.Fatalf("member-add --learner: %s", r)
		}
	}

	n2, err := c.PrepareNode()
	if err != nil {
		t.Fatal(err)
	}
	must(t, n2.Start())
	addLearner(n2)
	framework.Eventually(t, func() error {
		st, err := cliStatus(n2.Endpoint())
		if err != nil {
			return err
		}
		if st["is_learner"] != "true" || st["leader"] != "1" {
			return fmt.Errorf("learner's status: is_learner %q leader %q", st["is_learner"], st["leader"])
		}
		return nil
	}, 20*time.Second)
	waitMembers(t, n1.Endpoint(), []string{memberLine(1, n1.Name, n1.RaftAddr(), false), memberLine(2, n2.Name, n2.RaftAddr(), true)}, 10*time.Second)
	wantError(t, "member-remove of the last voter (asked of the learner)",
		c.RunCLI("cluster", "member-remove", "--endpoint", n2.Endpoint(), "--node-id", "1"),
		"unhealthy cluster")
	wantError(t, "leader-transfer to a learner",
		c.RunCLI("cluster", "leader-transfer", "--endpoint", n1.Endpoint(), "--node-id", "2"),
		"learner")

	// A learner that has applied nothing yet.
	n3, err := c.PrepareNode()
	if err != nil {
		t.Fatal(err)
	}
	addLearner(n3)
	wantError(t, "member-promote of a learner far behind",
		c.RunCLI("cluster", "member-promote", "--endpoint", n1.Endpoint(), "--node-id", "3"),
		"in sync with leader")
	done := make(chan framework.CmdResult, 1)
	go func() {
		done <- c.RunCLI("cluster", "member-promote", "--wait", "--endpoint", n1.Endpoint(), "--node-id", "3")
	}()
	must(t, n3.Start())
	r := <-done
	if r.Err != nil || r.Stdout != "Node promoted: id=3, IsLearner=false\n" {
		t.Fatalf("member-promote --wait: %s", r)
	}
	t.Logf("member-promote --wait: %d retries", strings.Count(r.Stderr, "waiting:"))
	must(t, n3.WaitReady(testCtx(t, 20*time.Second)))
	if err := checkAcked(testCtx(t, 10*time.Second), n3.Client(t), "learn/", want); err != nil {
		t.Errorf("promoted node 3: %v", err)
	}

	// The caught-up learner 2 is promoted without waiting.
	if r := c.RunCLI("cluster", "member-promote", "--endpoint", n1.Endpoint(), "--node-id", "2"); r.Err != nil || r.Stdout != "Node promoted: id=2, IsLearner=false\n" {
		t.Fatalf("member-promote of a caught-up learner: %s", r)
	}
	waitMembers(t, n1.Endpoint(), bootMembers(c, 3), 10*time.Second)
	c.Leader(t)
}
