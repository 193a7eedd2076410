//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/centra-cloud/centra/e2e/framework"
	flaredb "github.com/centra-cloud/centra/flaredb/client"
)

// runbookNodeConfig is Step 1 of the Chainfire scale-out runbook
// (runbooks/scale-out.md) verbatim, comments included, with this test's
// ports and directory; the listen addresses keep the runbook's 0.0.0.0.
// The last %s is the runbook's optional [network.tls] section
// (runbookTLSSection) or nothing.
const runbookNodeConfig = `[node]
id = %d # NEW NODE ID (must be unique)
name = "%s"
role = "control_plane"
[cluster]
id = 1
bootstrap = false # IMPORTANT: Do not bootstrap
initial_members = [] # Leave empty for join flow
[network]
api_addr = "0.0.0.0:%s"
raft_addr = "0.0.0.0:%s"
gossip_addr = "0.0.0.0:%s"
%s[storage]
data_dir = "%s"
[raft]
role = "voter" # or "learner" for non-voting replica
`

// runbookTLSSection is Step 1's [network.tls] section for node name of a
// TLS cluster (its certificate beside the CA's), or "" without TLS.
func runbookTLSSection(c *framework.Cluster, name string) string {
	if c.CAFile() == "" {
		return ""
	}
	dir := filepath.Dir(c.CAFile())
	return fmt.Sprintf("[network.tls] # Optional, if TLS enabled\ncert_file = %q\nkey_file = %q\nca_file = %q\nrequire_client_cert = true\n",
		filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key"), c.CAFile())
}

func port(t *testing.T, addr string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRunbookScaleOut replays the Chainfire part of runbooks/scale-out.md
// on a plain cluster (TestRunbookReplayTLS does it with TLS).
func TestRunbookScaleOut(t *testing.T) {
	c := framework.NewCluster(t, framework.WithNodes(3))
	client := framework.MultiCallBin(t, "chainfire-client")
	cf := func(args ...string) framework.CmdResult { return framework.RunBin(client, args...) }
	etcdctl := func(args ...string) framework.CmdResult { return framework.RunEtcdctl(t, args...) }
	replayScaleOut(t, c, cf, framework.RunCLI, etcdctl)
}

// replayScaleOut replays the Chainfire part of runbooks/scale-out.md on
// c's three control-plane nodes (3 -> 4 nodes, learner first, then
// promoted) and its rollback, with the runbook's program names:
// chainfire-server and chainfire-client links to the centra binary. cf
// runs chainfire-client, centra the centra CLI and etcdctl etcd's
// etcdctl, each with c's TLS material.
func replayScaleOut(t *testing.T, c *framework.Cluster, cf, centra, etcdctl cliRun) {
	server := framework.MultiCallBin(t, "chainfire-server")
	leader := c.Node(c.Leader(t))
	leaderEP := httpEndpoint(leader)
	const keys = 20
	for i := range keys {
		if r := cf("--endpoint", leaderEP, "put", fmt.Sprintf("scale/%02d", i), fmt.Sprintf("v%d", i)); r.Err != nil || r.Stdout != "OK\n" {
			t.Fatalf("chainfire-client put: %s", r)
		}
	}
	// More history, so that the new node starts over 100 entries behind
	// and logs its own catch-up.
	kv := leader.Client(t)
	for i := range 120 {
		if _, err := kv.Put(testCtx(t, 10*time.Second), fmt.Sprintf("bulk/%03d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}

	// Step 1 and 2: the new node's chainfire.toml, started as
	// chainfire-server --config FILE.
	n4, err := c.PrepareNode(framework.WithNodeID(4), framework.WithNodeName("chainfire-node-4"), framework.WithServerBin(server))
	if err != nil {
		t.Fatal(err)
	}
	gossip, err := framework.UnusedAddr()
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(runbookNodeConfig, 4, "chainfire-node-4", port(t, n4.Endpoint()), port(t, n4.RaftAddr()), port(t, gossip), runbookTLSSection(c, "chainfire-node-4"), n4.DataDir())
	if err := os.WriteFile(n4.ConfigPath(), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	must(t, n4.Start())
	must(t, n4.WaitLog(testCtx(t, 20*time.Second), "Waiting to be added to a cluster"))
	if log := n4.CurrentLog(); !strings.Contains(log, "member-add --node-id 4 --peer-url") {
		t.Errorf("the waiting node's log should print the member-add command to run; it logged:\n%s", log)
	}
	if _, err := framework.PortsFree(n4.RaftAddr()); err == nil {
		t.Errorf("a waiting node should listen on its raft address %s (join handshake)", n4.RaftAddr())
	}
	for _, path := range []string{"/health", "/readyz"} {
		if code, body, err := n4.Get(t.Context(), path); err != nil || code != 503 {
			t.Errorf("%s of a node that is not a member yet: want 503, got %d %q (%v)", path, code, body, err)
		}
	}

	// status answers at once with what the node knows, not HTTP 503.
	if r := cf("--endpoint", httpEndpoint(n4), "status"); r.Err != nil || statusLines(r.Stdout)["leader"] != "none" || !strings.Contains(r.Stdout, "error: waiting to be added to a cluster") {
		t.Errorf("status of the waiting node: want leader none and what it waits for, got %s", r)
	}

	// Step 3: member-add as a learner through the leader.
	r := cf("--endpoint", leaderEP, "member-add", "--node-id", "4", "--peer-url", n4.RaftAddr(), "--learner")
	if want := fmt.Sprintf("Node added: id=4, peer_urls=[%q]\n", n4.RaftAddr()); r.Err != nil || r.Stdout != want {
		t.Fatalf("member-add --learner: want %q, got %s", want, r)
	}
	// Right after member-add (the runbook's next step): an answer, whatever
	// the node is doing (catching up, or already serving).
	if r := cf("--endpoint", httpEndpoint(n4), "status"); r.Err != nil || statusLines(r.Stdout)["member_id"] != "4" {
		t.Errorf("status of the new node right after member-add: %s", r)
	} else {
		t.Logf("status right after member-add:\n%s", r.Stdout)
	}
	must(t, n4.WaitLog(testCtx(t, 20*time.Second), "Ready to serve"))
	// "Find replication lag" on the new node: its own catch-up.
	must(t, n4.WaitLog(testCtx(t, 30*time.Second), "This member caught up with the leader"))
	wantPipe(t, n4.String(), n4.CurrentLog(), `grep -i 'lag\|behind\|catch.*up'`,
		"This member started behind the leader and is catching up, applied=0,",
		"This member caught up with the leader, lag=")
	rec, err := n4.MemberRecord()
	if err != nil {
		t.Fatalf("member.json after the join: %v", err)
	}
	if rec.NodeID != 4 || rec.ClusterID != 1 || rec.ReplicaID == 0 || rec.RaftAddress != n4.RaftAddr() {
		t.Errorf("member.json: %+v; want node 4 of cluster 1 at %s", rec, n4.RaftAddr())
	}

	// Troubleshooting "New node stuck as learner": compare raft_index of
	// the leader and of the new node until it caught up.
	framework.Eventually(t, func() error {
		ls := cf("--endpoint", leaderEP, "status")
		ns := cf("--endpoint", httpEndpoint(n4), "status")
		if ls.Err != nil || ns.Err != nil {
			return fmt.Errorf("status: leader %s; node 4 %s", ls, ns)
		}
		lst, nst := statusLines(ls.Stdout), statusLines(ns.Stdout)
		li, err := statusUint(lst, "raft_index")
		if err != nil {
			return err
		}
		ni, err := statusUint(nst, "raft_applied_index")
		if err != nil {
			return err
		}
		if nst["is_learner"] != "true" {
			return fmt.Errorf("node 4 status before promotion: is_learner %q, want true", nst["is_learner"])
		}
		if ni < li {
			return fmt.Errorf("node 4 applied %d, leader's raft_index %d", ni, li)
		}
		return nil
	}, 30*time.Second)
	waitMembersWith(t, centra, leaderEP, append(bootMembers(c, 3), memberLine(4, "chainfire-node-4", n4.RaftAddr(), true)), 10*time.Second)

	// Step 5: promote, then IsLearner=false.
	if r := cf("--endpoint", leaderEP, "member-promote", "--node-id", "4"); r.Err != nil {
		t.Fatalf("member-promote of a caught-up learner: %s", r)
	}
	want4 := memberLine(4, "chainfire-node-4", n4.RaftAddr(), false)
	r = cf("--endpoint", leaderEP, "member-list")
	if r.Err != nil || !strings.Contains(r.Stdout, want4+"\n") {
		t.Errorf("member-list after member-promote: want the line %q, got %s", want4, r)
	}
	waitMembersWith(t, centra, leaderEP, append(bootMembers(c, 3), want4), 10*time.Second)

	// Step 4: the new node's status shows the leader and the same term.
	must(t, n4.WaitReady(testCtx(t, 20*time.Second)))
	lidx := c.Leader(t)
	framework.Eventually(t, func() error {
		ls := cf("--endpoint", httpEndpoint(c.Node(lidx)), "status")
		ns := cf("--endpoint", httpEndpoint(n4), "status")
		if ls.Err != nil || ns.Err != nil {
			return fmt.Errorf("status: leader %s; node 4 %s", ls, ns)
		}
		lst, nst := statusLines(ls.Stdout), statusLines(ns.Stdout)
		switch {
		case nst["member_id"] != "4":
			return fmt.Errorf("node 4 status member_id %q, want 4", nst["member_id"])
		case nst["leader"] != fmt.Sprint(c.Node(lidx).ID):
			return fmt.Errorf("node 4 status leader %q, want %d", nst["leader"], c.Node(lidx).ID)
		case nst["raft_term"] == "" || nst["raft_term"] != lst["raft_term"]:
			return fmt.Errorf("node 4 raft_term %q, leader's %q", nst["raft_term"], lst["raft_term"])
		case nst["is_learner"] != "false":
			return fmt.Errorf("node 4 is_learner %q after promotion", nst["is_learner"])
		}
		return nil
	}, 10*time.Second)

	// The new voter serves linearizable reads of the data written before
	// it existed, through the runbook's client and through clientv3.
	if r := cf("--endpoint", httpEndpoint(n4), "get", "scale/07"); r.Err != nil || r.Stdout != "v7\n" {
		t.Errorf("chainfire-client get on node 4: want v7, got %s", r)
	}
	if resp, err := n4.Client(t).Get(testCtx(t, 10*time.Second), "scale/", clientv3.WithPrefix()); err != nil || len(resp.Kvs) != keys {
		t.Errorf("linearizable range on node 4: %v, err %v; want %d keys", resp, err, keys)
	}
	if r := cf("--endpoint", httpEndpoint(n4), "put", "scale/from-4", "x"); r.Err != nil || r.Stdout != "OK\n" {
		t.Errorf("put through node 4: %s", r)
	}

	// etcd compatibility: etcdctl sees the fourth member.
	if r := etcdctl("--endpoints", n4.Endpoint(), "member", "list"); r.Err != nil || strings.Count(r.Stdout, "\n") != 4 || !strings.Contains(r.Stdout, "chainfire-node-4") {
		t.Errorf("etcdctl member list: want 4 members including chainfire-node-4, got %s", r)
	}
	if r := etcdctl("--endpoints", n4.Endpoint(), "endpoint", "status"); r.Err != nil || !strings.Contains(r.Stdout, n4.Endpoint()) {
		t.Errorf("etcdctl endpoint status on node 4: %s", r)
	}

	// Rollback: member-remove through the leader, stop, wipe.
	lidx = c.Leader(t)
	if c.Node(lidx) == n4 {
		// The runbook sends member-remove to the leader, which refuses to
		// remove itself: hand leadership back first.
		if r := cf("--endpoint", httpEndpoint(n4), "leader-transfer", "--node-id", "1"); r.Err != nil {
			t.Fatalf("leader-transfer away from node 4: %s", r)
		}
		lidx = c.Leader(t)
	}
	leaderEP = httpEndpoint(c.Node(lidx))
	if r := cf("--endpoint", leaderEP, "member-remove", "--node-id", "4"); r.Err != nil || r.Stdout != "Node removed: id=4\n" {
		t.Fatalf("member-remove --node-id 4: %s", r)
	}
	must(t, n4.Stop())
	must(t, n4.WipeData())
	if _, err := os.Stat(n4.DataDir()); !os.IsNotExist(err) {
		t.Errorf("data dir of node 4 after the wipe: %v", err)
	}
	waitMembersWith(t, centra, leaderEP, bootMembers(c, 3), 10*time.Second)
	if r := cf("--endpoint", leaderEP, "get", "scale/from-4"); r.Err != nil || r.Stdout != "x\n" {
		t.Errorf("after the rollback: %s", r)
	}
}

// replaySplitBrain replays the "split-brain" resolution of
// runbooks/troubleshooting.md on c's three control-plane nodes: stop all
// nodes, wipe two of them, restart the survivor alone (member-add then
// fails and names the way out), restart it as a new one-member cluster
// keeping its data (--force-new-cluster), member-add the other two and
// start them as joining nodes. cf runs chainfire-client, centra the centra
// CLI (both with c's TLS material).
func replaySplitBrain(t *testing.T, c *framework.Cluster, cf, centra cliRun) {
	cli := c.Client(t)
	const keys = 30
	want := wantKeys("sb/%02d", keys)
	for k, v := range want {
		if _, err := cli.Put(testCtx(t, 10*time.Second), k, v); err != nil {
			t.Fatal(err)
		}
	}

	// "Keep only the node with highest raft_index".
	var survivor *framework.Node
	var best uint64
	for _, n := range c.Nodes() {
		r := cf("--endpoint", httpEndpoint(n), "status")
		if r.Err != nil {
			t.Fatalf("chainfire-client status: %s", r)
		}
		idx, err := statusUint(statusLines(r.Stdout), "raft_index")
		if err != nil {
			t.Fatal(err)
		}
		if survivor == nil || idx > best {
			survivor, best = n, idx
		}
	}
	var others []*framework.Node
	for _, n := range c.Nodes() {
		if n != survivor {
			others = append(others, n)
		}
	}
	t.Logf("survivor: %s (raft_index %d)", survivor, best)

	// Stop all nodes (systemctl stop: SIGTERM) and wipe the others.
	for _, n := range c.Nodes() {
		must(t, n.Stop())
	}
	for _, n := range others {
		must(t, n.WipeData())
	}

	// The runbook's "Restart leader" alone, then "Re-add followers via
	// member-add": without a quorum there is no leader, and the error
	// names the way out.
	must(t, survivor.Start())
	must(t, survivor.WaitLog(testCtx(t, 20*time.Second), "Serving the API")) // the runbook's "sleep 10"
	r := cf("--endpoint", httpEndpoint(survivor), "member-add", "--node-id", fmt.Sprint(others[0].ID), "--peer-url", others[0].RaftAddr())
	wantError(t, "member-add on the survivor restarted alone", r, "etcdserver: no leader")
	t.Logf("member-add without a leader: %s", strings.TrimSpace(r.Stderr))
	for _, s := range []string{"--force-new-cluster", "highest raft_index"} {
		if !strings.Contains(r.Stderr, s) {
			t.Errorf("member-add without a leader should name %q: %s", s, r)
		}
	}
	must(t, survivor.WaitLog(testCtx(t, 10*time.Second), "Membership change failed: no leader; member-add needs a leader"))
	must(t, survivor.Stop())

	// Restart the survivor as a new one-member cluster keeping its data.
	must(t, survivor.StartWithArgs("--force-new-cluster"))
	must(t, survivor.WaitReady(testCtx(t, 30*time.Second)))
	ep := httpEndpoint(survivor)
	waitMembersWith(t, centra, ep, []string{memberLine(survivor.ID, survivor.Name, survivor.RaftAddr(), false)}, 10*time.Second)
	if err := checkAcked(testCtx(t, 10*time.Second), survivor.Client(t), "sb/", want); err != nil {
		t.Fatalf("the survivor should keep its data after --force-new-cluster: %v", err)
	}

	// Re-add followers via member-add, then start them (bootstrap =
	// false, initial_members = []).
	for _, n := range others {
		r := cf("--endpoint", ep, "member-add", "--node-id", fmt.Sprint(n.ID), "--peer-url", n.RaftAddr())
		if want := fmt.Sprintf("Node added: id=%d, peer_urls=[%q]\n", n.ID, n.RaftAddr()); r.Err != nil || r.Stdout != want {
			t.Fatalf("member-add --node-id %d: want %q, got %s", n.ID, want, r)
		}
	}
	for _, n := range others {
		must(t, n.SetJoining())
		must(t, n.Start())
	}
	for _, n := range others {
		must(t, n.WaitReady(testCtx(t, 30*time.Second)))
	}
	c.Leader(t)
	waitMembersWith(t, centra, ep, bootMembers(c, 3), 20*time.Second)
	for _, n := range others {
		// Replicas 1-3 are gone for good: the re-added nodes get new ones.
		if rec, err := n.MemberRecord(); err != nil || rec.NodeID != n.ID || rec.ReplicaID <= 3 {
			t.Errorf("%s member.json: %+v, %v; want node %d with a new replica ID (> 3)", n, rec, err, n.ID)
		}
		if err := checkAcked(testCtx(t, 10*time.Second), n.Client(t), "sb/", want); err != nil {
			t.Errorf("linearizable read on %s after the recovery: %v", n, err)
		}
	}
	if _, err := cli.Put(testCtx(t, 10*time.Second), "sb/after", "ok"); err != nil {
		t.Errorf("write after the recovery: %v", err)
	}
	want["sb/after"] = "ok"

	// --force-new-cluster is a one-off: a plain restart of the survivor
	// rejoins the three-member cluster.
	must(t, survivor.Restart())
	must(t, survivor.WaitReady(testCtx(t, 30*time.Second)))
	c.Leader(t)
	waitMembersWith(t, centra, ep, bootMembers(c, 3), 10*time.Second)
	for _, n := range c.Nodes() {
		if err := checkAcked(testCtx(t, 10*time.Second), n.Client(t), "sb/", want); err != nil {
			t.Errorf("after restarting the survivor: %v", err)
		}
	}
}

// wantKeys returns {fmt.Sprintf(format, i): fmt.Sprint(i)} for i < n.
func wantKeys(format string, n int) map[string]string {
	m := map[string]string{}
	for i := range n {
		m[fmt.Sprintf(format, i)] = fmt.Sprint(i)
	}
	return m
}

// runbookPipe runs one of the runbooks' journalctl pipelines with log in
// place of journalctl's output: `sh -c PIPELINE` reading log on stdin. It
// returns the pipeline's output (grep finding nothing is an empty answer,
// not an error).
func runbookPipe(t *testing.T, log, pipeline string) string {
	t.Helper()
	cmd := exec.Command("sh", "-c", pipeline)
	cmd.Stdin = strings.NewReader(log)
	out, err := cmd.Output()
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 1) {
		t.Fatalf("sh -c %q: %v", pipeline, err)
	}
	return string(out)
}

// wantPipe checks that a runbook pipeline finds every line of want in log
// (each as a substring of some output line).
func wantPipe(t *testing.T, who, log, pipeline string, want ...string) {
	t.Helper()
	out := runbookPipe(t, log, pipeline)
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("%s | %s: want a line with %q, got:\n%s", who, pipeline, w, lastN(out, 20))
		}
	}
}

// lastN returns the last n lines of s.
func lastN(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestRunbookLogLines provokes the log lines the troubleshooting runbook
// quotes ("Log Analysis", and the lines its diagnosis steps grep for) on a
// real cluster started the way systemd does (JOURNAL_STREAM set, so the
// default log format is the runbook's text form), and finds each with the
// runbook's own grep/awk pipelines run on the node's output.
func TestRunbookLogLines(t *testing.T) {
	c := framework.NewCluster(t, framework.WithNodes(3), framework.WithStores(1), framework.WithJournald())
	client := framework.MultiCallBin(t, "chainfire-client")
	cf := func(args ...string) framework.CmdResult { return framework.RunBin(client, args...) }
	lidx := c.Leader(t)
	leader := c.Node(lidx)
	var followers []*framework.Node
	for i := range 3 {
		if i != lidx {
			followers = append(followers, c.Node(i))
		}
	}
	f1, f2 := followers[0], followers[1]

	// Healthy operation: leader elected, entries committed, the store
	// registered with PD (and PD's "store_id=N" line, scale-out Step 3).
	for i := range 10 {
		if r := cf("--endpoint", httpEndpoint(leader), "put", fmt.Sprintf("log/%02d", i), "v"); r.Err != nil {
			t.Fatalf("chainfire-client put: %s", r)
		}
	}
	for _, n := range c.Nodes() {
		wantPipe(t, n.String(), n.CurrentLog(), `grep "Leader elected" | tail -20`, "INFO chainfire_raft: Leader elected, term=")
	}
	wantPipe(t, leader.String(), leader.CurrentLog(), `grep -i 'raft\|leader\|election'`, "chainfire_raft: Leader elected")
	must(t, leader.WaitLog(testCtx(t, 20*time.Second), "INFO chainfire_storage: Committed entry, index="))
	store := c.Store(0)
	storeID := fmt.Sprint(store.StoreID())
	wantPipe(t, store.String(), store.CurrentLog(), `grep -i 'pd\|register'`, "INFO flaredb_pd_client: Registered with PD, store_id="+storeID)
	var pdLogs strings.Builder
	for _, n := range c.Nodes() {
		pdLogs.WriteString(n.CurrentLog())
	}
	wantPipe(t, "the control plane", pdLogs.String(), `grep "store_id=`+storeID+`"`, "Store registered, store_id="+storeID)

	// The leader measures every follower's lag (chainfire_raft_follower_lag).
	lagOf := func(n *framework.Node) (float64, error) {
		_, body, err := leader.Get(t.Context(), "/metrics")
		if err != nil {
			return 0, err
		}
		m := regexp.MustCompile(`(?m)^chainfire_raft_follower_lag\{member="` + fmt.Sprint(n.ID) + `"\} (\S+)$`).FindStringSubmatch(body)
		if m == nil {
			return 0, fmt.Errorf("the leader exports no chainfire_raft_follower_lag for member %d", n.ID)
		}
		return strconv.ParseFloat(m[1], 64)
	}
	framework.Eventually(t, func() error {
		for _, f := range followers {
			if _, err := lagOf(f); err != nil {
				return err
			}
		}
		return nil
	}, 20*time.Second)

	// A slow write: both followers frozen for 250 ms (half the election
	// timeout), so the put waits for a quorum; "Find slow operations"
	// finds it. The client is connected beforehand so the put reaches the
	// leader while they are frozen.
	cli := leader.Client(t)
	if _, err := cli.Get(testCtx(t, 10*time.Second), "log/00"); err != nil {
		t.Fatal(err)
	}
	must(t, f1.Pause())
	must(t, f2.Pause())
	time.AfterFunc(250*time.Millisecond, func() {
		_ = f1.Resume()
		_ = f2.Resume()
	})
	if _, err := cli.Put(testCtx(t, 10*time.Second), "log/slow", "v"); err != nil {
		t.Fatalf("put while the followers are frozen: %v", err)
	}
	wantPipe(t, leader.String(), leader.CurrentLog(), `grep -E 'latency=[0-9]{3,}ms'`, "INFO chainfire_api: Handled put request, latency=")

	// A follower down: the leader cannot connect to it and, while writes
	// go on, sees it fall behind; restarted, it catches up.
	must(t, f2.Stop())
	for i := range 150 {
		if _, err := cli.Put(testCtx(t, 10*time.Second), fmt.Sprintf("log/lag/%03d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	peerLine := "ERROR chainfire_network: Failed to connect to peer, addr=" + f2.RaftAddr()
	must(t, leader.WaitLog(testCtx(t, 20*time.Second), peerLine))
	must(t, leader.WaitLog(testCtx(t, 20*time.Second), fmt.Sprintf("Follower is behind the leader, member=%d", f2.ID)))
	log := leader.CurrentLog()
	wantPipe(t, leader.String(), log, `grep ERROR`, peerLine)
	wantPipe(t, leader.String(), log, `grep -i 'connection refused\|timeout\|unreachable'`, peerLine)
	if out := runbookPipe(t, log, `grep ERROR | awk '{print $NF}' | sort | uniq -c | sort -rn`); !regexp.MustCompile(`(?m)^\s+\d+ \S+`).MatchString(out) {
		t.Errorf("Count error types: want counted fields, got:\n%s", out)
	}
	if lag, err := lagOf(f2); err != nil || lag < 100 {
		t.Errorf("chainfire_raft_follower_lag of the stopped member %d: %v (%v), want >= 100", f2.ID, lag, err)
	}
	must(t, f2.Start())
	must(t, leader.WaitLog(testCtx(t, 30*time.Second), fmt.Sprintf("Follower caught up with the leader, member=%d", f2.ID)))
	wantPipe(t, leader.String(), leader.CurrentLog(), `grep -i 'lag\|behind\|catch.*up'`,
		fmt.Sprintf("WARN chainfire_raft: Follower is behind the leader, member=%d, lag=", f2.ID),
		fmt.Sprintf("INFO chainfire_raft: Follower caught up with the leader, member=%d, lag=", f2.ID))
	// The same grep on the restarted node itself finds its own progress.
	must(t, f2.WaitLog(testCtx(t, 30*time.Second), "This member caught up with the leader"))
	wantPipe(t, f2.String(), f2.CurrentLog(), `grep -i 'lag\|behind\|catch.*up'`,
		"WARN chainfire_raft: This member started behind the leader and is catching up, applied=",
		"INFO chainfire_raft: This member caught up with the leader, lag=")
	framework.Eventually(t, func() error {
		if lag, err := lagOf(f2); err != nil || lag >= 10 {
			return fmt.Errorf("chainfire_raft_follower_lag of member %d after it caught up: %v (%v)", f2.ID, lag, err)
		}
		return nil
	}, 20*time.Second)

	// The leader dies (kill -9: a clean stop hands leadership over
	// first): a follower's election timer fires (the first one to fire
	// starts the election that the other one then joins).
	before := map[*framework.Node]int{f1: len(f1.CurrentLog()), f2: len(f2.CurrentLog())}
	must(t, leader.Kill())
	framework.Eventually(t, func() error {
		var raftLines string
		for _, f := range followers {
			out := runbookPipe(t, f.CurrentLog()[before[f]:], `grep -i 'raft\|leader\|election'`)
			if strings.Contains(out, "WARN chainfire_raft: Election timeout, no heartbeat from leader") {
				return nil
			}
			raftLines += lastN(out, 5) + "\n"
		}
		return fmt.Errorf("no follower has logged the election timeout yet; their raft lines:\n%s", raftLines)
	}, 20*time.Second)
}

// TestRunbookFlareDBLogLines provokes the FlareDB lines of the
// troubleshooting runbook's "Log Analysis" on one control-plane node and
// three stores started as under journald: a 1000-row query, a store that
// cannot be replicated to, and stores that cannot reach PD.
func TestRunbookFlareDBLogLines(t *testing.T) {
	c := framework.NewCluster(t, framework.WithNodes(1), framework.WithStores(3), framework.WithJournald())
	ctx := testCtx(t, 3*time.Minute)
	cli, err := flaredb.New(c.Node(0).URL())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	storeLogs := func() string {
		var b strings.Builder
		for _, s := range c.Stores() {
			b.WriteString(s.CurrentLog())
		}
		return b.String()
	}

	// 1000 rows written, then scanned in one query.
	const rows = 1000
	fdbFill(t, ctx, cli, "runbook", rows, fdbValue)
	got, err := cli.Scan(ctx, "runbook", nil, nil, flaredb.ScanOptions{})
	if err != nil || len(got) != rows {
		t.Fatalf("scan: %d rows, %v; want %d", len(got), err, rows)
	}
	wantPipe(t, "the stores", storeLogs(), `grep "Handled query"`, fmt.Sprintf("INFO flaredb_service: Handled query, rows=%d, latency=", rows))

	// The runbook's curl | jq lines against PD, as typed.
	pd := "http://" + c.Node(0).Endpoint()
	jq := func(path, filter string) string {
		t.Helper()
		out, err := exec.Command("bash", "-o", "pipefail", "-c", fmt.Sprintf("curl -sf %s%s | jq -c '%s'", pd, path, filter)).CombinedOutput()
		if err != nil {
			t.Errorf("curl %s | jq '%s': %v\n%s", path, filter, err, out)
		}
		return string(out)
	}
	for _, filter := range []string{".stores[] | {id, state, capacity}", ".stores[] | {id, state, available, capacity}"} {
		if out := jq("/pd/api/v1/stores", filter); strings.Count(out, "\n") != 3 || strings.Contains(out, "null") || !strings.Contains(out, `"state":"Up"`) {
			t.Errorf("curl /pd/api/v1/stores | jq '%s': want 3 stores, Up, no nulls; got:\n%s", filter, out)
		}
	}
	if out := jq("/pd/api/v1/stores", ".stores[] | .id"); len(strings.Fields(out)) != 3 {
		t.Errorf("jq '.stores[] | .id': want 3 IDs, got %q", out)
	}
	if out := jq("/pd/api/v1/stores", `.stores[] | select(.state!="Up")`); out != "" {
		t.Errorf("select(.state!=\"Up\") with every store up: want nothing, got %q", out)
	}
	jq("/pd/api/v1/stores", ".stores[] | select((.available / .capacity) < 0.1)") // must not fail on types
	for _, f := range []struct{ path, filter, want string }{
		{"/pd/api/v1/stats/region", ".", "pending_peers"},
		{"/pd/api/v1/operators", ".", ""},
		{"/pd/api/v1/config/schedule", ".", "max-snapshot-count"},
		{"/pd/api/v1/config/schedule", ".schedulers", ""},
	} {
		if out := jq(f.path, f.filter); strings.TrimSpace(out) == "" || strings.TrimSpace(out) == "null" || !strings.Contains(out, f.want) {
			t.Errorf("curl %s | jq '%s': want a value (with %q), got %q", f.path, f.filter, f.want, out)
		}
	}

	// A store that holds a replica dies: the region's leader cannot send
	// it the log.
	leader, victim := leaderAndOtherStore(t, ctx, c)
	must(t, victim.Kill())
	if err := cli.Put(ctx, "runbook", []byte("after-kill"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	must(t, leader.WaitLog(ctx, fmt.Sprintf("ERROR flaredb_raft: Failed to replicate log, peer=store%d", victim.StoreID())))
	wantPipe(t, leader.String(), leader.CurrentLog(), `grep ERROR | awk '{print $NF}' | sort | uniq -c | sort -rn`, "addr="+victim.RaftAddr())

	// PD goes away: the stores' heartbeats fail and are retried.
	must(t, c.Node(0).Kill())
	framework.Eventually(t, func() error {
		if !strings.Contains(runbookPipe(t, storeLogs(), `grep -i 'pd\|register'`), "WARN flaredb_pd_client: Heartbeat to PD failed, retrying...") {
			return errors.New("no store has logged a failed PD heartbeat yet")
		}
		return nil
	}, 40*time.Second)
}

// leaderAndOtherStore returns the store leading the first region (as PD
// knows it) and another store; with three stores and max-replicas 3 that
// one holds a replica of the region too.
func leaderAndOtherStore(t *testing.T, ctx context.Context, c *framework.Cluster) (leader, other *framework.Node) {
	t.Helper()
	leader = leaderStore(t, ctx, c)
	for _, s := range c.Stores() {
		if s != leader {
			return leader, s
		}
	}
	t.Fatalf("no store besides the leader %s", leader)
	return nil, nil
}

// fdbFill writes rows keys fdbKey(0..rows-1) with value(i) into namespace
// ns in batches of 250, retrying (from the start) until the store serves
// writes.
func fdbFill(t *testing.T, ctx context.Context, cli *flaredb.Client, ns string, rows int, value func(int) []byte) {
	t.Helper()
	framework.Eventually(t, func() error {
		for first := 0; first < rows; first += 250 {
			pairs := make([]flaredb.KvPair, 0, 250)
			for i := first; i < min(first+250, rows); i++ {
				pairs = append(pairs, flaredb.KvPair{Key: fdbKey(i), Value: value(i)})
			}
			if err := cli.BatchPut(ctx, ns, pairs); err != nil {
				return err
			}
		}
		return nil
	}, time.Minute)
}
