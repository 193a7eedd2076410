//go:build e2e

package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/centra-cloud/centra/e2e/framework"
)

// TestJoinOverTLS adds a node to an mTLS cluster: the join handshake on the
// new node's raft port requires a client certificate of the cluster's CA,
// the leader presents its node certificate, and the node then joins as a
// learner and is promoted once caught up.
func TestJoinOverTLS(t *testing.T) {
	c := framework.NewCluster(t, framework.WithNodes(3), framework.WithTLS())
	leader := c.Node(c.Leader(t))
	cli := func(args ...string) framework.CmdResult {
		full := append([]string{args[0], args[1]}, c.TLSFlags()...)
		return c.RunCLI(append(full, args[2:]...)...)
	}
	if r := cli("kv", "put", "--endpoint", leader.Endpoint(), "tls/before", "v"); r.Err != nil {
		t.Fatalf("put: %s", r)
	}
	n4, err := c.PrepareNode()
	if err != nil {
		t.Fatal(err)
	}
	must(t, n4.Start())
	must(t, n4.WaitLog(testCtx(t, 20*time.Second), "Waiting to be added to a cluster"))
	r := cli("cluster", "member-add", "--endpoint", leader.Endpoint(), "--node-id", fmt.Sprint(n4.ID), "--peer-url", n4.RaftAddr())
	if want := fmt.Sprintf("Node added: id=%d, peer_urls=[%q]\n", n4.ID, n4.RaftAddr()); r.Err != nil || r.Stdout != want {
		t.Fatalf("member-add over TLS: want %q, got %s", want, r)
	}
	must(t, n4.WaitReady(testCtx(t, 30*time.Second)))
	framework.Eventually(t, func() error {
		r := cli("cluster", "member-list", "--endpoint", leader.Endpoint())
		if r.Err != nil {
			return fmt.Errorf("member-list: %s", r)
		}
		if want := fmt.Sprintf("ID=%d, Name=%s, PeerURLs=[%s], IsLearner=false", n4.ID, n4.Name, n4.RaftAddr()); !strings.Contains(r.Stdout, want) {
			return fmt.Errorf("member-list has no %q:\n%s", want, r.Stdout)
		}
		return nil
	}, 30*time.Second)
	if r := cli("kv", "get", "--endpoint", n4.Endpoint(), "tls/before"); r.Err != nil || r.Stdout != "v\n" {
		t.Fatalf("get on the joined node: %s", r)
	}
	// Without a client certificate the CLI is refused by the joined node.
	r = c.RunCLI("kv", "get", "--cacert", c.CAFile(), "--endpoint", n4.Endpoint(), "tls/before")
	if r.Err == nil {
		t.Fatalf("a client without a certificate was served: %s", r)
	}
}
