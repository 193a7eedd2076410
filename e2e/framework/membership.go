//go:build e2e

package framework

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// NodeOption configures a node created by Cluster.PrepareNode.
type NodeOption func(*Node)

// WithNodeID sets node.id (default: one more than the highest ID of the
// cluster's nodes).
func WithNodeID(id uint64) NodeOption { return func(n *Node) { n.ID = id } }

// WithNodeName sets node.name (default "node<ID>").
func WithNodeName(name string) NodeOption { return func(n *Node) { n.Name = name } }

// WithRaftRole sets raft.role ("voter" or "learner").
func WithRaftRole(role string) NodeOption { return func(n *Node) { n.raftRole = role } }

// WithServerBin runs the node as `BIN --config FILE` instead of
// `centra serve --config FILE`; BIN is a multi-call link such as
// MultiCallBin(t, "chainfire-server").
func WithServerBin(bin string) NodeOption { return func(n *Node) { n.serverBin = bin } }

// PrepareNode creates a node that joins the cluster through member-add: on
// fresh ports and in its own directory, with a config that says
// bootstrap = false and initial_members = []. It does not start the node
// (Node.Start does), so a test may first replace the file at
// Node.ConfigPath. The node is stopped when the test ends like the others.
// In a TLS cluster the node gets a certificate from the cluster's CA
// (`centra certs init` reuses the CA in the certificate directory).
func (c *Cluster) PrepareNode(opts ...NodeOption) (*Node, error) {
	if c.opts.dev {
		return nil, errors.New("PrepareNode: not in dev mode (fixed ports)")
	}
	var maxID uint64
	for _, m := range c.nodes {
		maxID = max(maxID, m.ID)
	}
	n := &Node{c: c, Index: len(c.nodes), ID: maxID + 1, joining: true}
	for _, o := range opts {
		o(n)
	}
	if n.Name == "" {
		n.Name = fmt.Sprintf("node%d", n.ID)
	}
	for _, m := range c.nodes {
		if m.ID == n.ID {
			return nil, fmt.Errorf("PrepareNode: node ID %d is taken by %s", n.ID, m)
		}
	}
	if err := c.prepareDir(n, "centra.toml"); err != nil {
		return nil, fmt.Errorf("PrepareNode: %w", err)
	}
	var err error
	if n.raftAddr, err = allocAddr(); err != nil {
		return nil, err
	}
	if err := c.writeConfig(n); err != nil {
		return nil, err
	}
	c.nodes = append(c.nodes, n)
	return n, nil
}

// prepareDir gives a node added after boot its own directory, log file,
// data directory, config path (named configName), API port and, in a TLS
// cluster, a certificate of the cluster's CA (`centra certs init` reuses
// the CA in the certificate directory).
func (c *Cluster) prepareDir(n *Node, configName string) error {
	dir, err := os.MkdirTemp(c.base, n.Name+"-")
	if err != nil {
		return err
	}
	n.dir = dir
	n.logPath = filepath.Join(dir, n.Name+".log")
	n.dataDir = filepath.Join(dir, "data")
	n.configPath = filepath.Join(dir, configName)
	if n.apiAddr, err = allocAddr(); err != nil {
		return err
	}
	if c.tls != nil {
		addrs := "127.0.0.1"
		if n.store {
			addrs = c.certAddrs(len(c.nodes) + n.Index)
		}
		if r := RunCLI("certs", "init", "--dir", c.tls.dir, "--node", n.Name+"="+addrs); r.Err != nil {
			return fmt.Errorf("certificate for %s: %s", n.Name, r)
		}
	}
	return nil
}

// ConfigPath returns the node's config file ("" in dev mode).
func (n *Node) ConfigPath() string { return n.configPath }

// Start launches a stopped node with its current config and data and waits
// until its API port is open (a joining node answers /readyz with 503
// until it is added). Call WaitReady to wait until it serves reads.
func (n *Node) Start() error { return n.StartWithArgs() }

// StartWithArgs is Start with extra command-line arguments for this start
// only (e.g. --force-new-cluster).
func (n *Node) StartWithArgs(args ...string) error {
	if n.Running() {
		return fmt.Errorf("start: %s is already running", n)
	}
	n.mu.Lock()
	n.extraArgs = args
	n.mu.Unlock()
	err := n.start()
	n.mu.Lock()
	n.extraArgs = nil
	n.mu.Unlock()
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	if len(args) > 0 {
		n.c.t.Logf("%s started with %s", n, strings.Join(args, " "))
	} else {
		n.c.t.Logf("%s started", n)
	}
	return nil
}

// SetJoining rewrites the node's config so that its next start joins a
// cluster through member-add: bootstrap = false, initial_members = [].
func (n *Node) SetJoining() error {
	if n.configPath == "" {
		return fmt.Errorf("%s runs without a config file", n)
	}
	n.joining = true
	return n.c.writeConfig(n)
}

// WipeData removes the node's data directory (rm -rf data_dir) while the
// node is stopped.
func (n *Node) WipeData() error {
	if n.Running() {
		return fmt.Errorf("wipe: %s is running; stop it first", n)
	}
	if err := os.RemoveAll(n.dataDir); err != nil {
		return fmt.Errorf("wipe %s: %w", n, err)
	}
	n.c.t.Logf("%s: data directory %s wiped", n, n.dataDir)
	return nil
}

// MemberRecord is <data_dir>/member.json, the identity a node received in
// the join handshake.
type MemberRecord struct {
	ClusterID   uint64 `json:"cluster_id"`
	NodeID      uint64 `json:"node_id"`
	ReplicaID   uint64 `json:"replica_id"`
	RaftAddress string `json:"raft_address"`
	Learner     bool   `json:"learner"`
}

// MemberRecord reads the node's member.json.
func (n *Node) MemberRecord() (MemberRecord, error) {
	var r MemberRecord
	b, err := os.ReadFile(filepath.Join(n.dataDir, "member.json"))
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("%s member.json: %w", n, err)
	}
	return r, nil
}

// WaitLog waits until the current process of the node has logged a line
// containing substr, or ctx ends, or the process exits.
func (n *Node) WaitLog(ctx context.Context, substr string) error {
	for {
		if strings.Contains(n.currentLog(), substr) {
			return nil
		}
		if err, ok := n.exited(); ok {
			return fmt.Errorf("waiting for %q in the log: %w", substr, n.exitReason(err))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not log %q: %w; its log ends:\n%s", n, substr, ctx.Err(), lastLines(n.currentLog(), 10))
		case <-time.After(pollTick):
		}
	}
}

// MultiCallBin returns a symlink named name (e.g. "chainfire-client",
// "chainfire-server") to the centra binary, in a directory removed when the
// test ends: centra picks its command from the program name.
func MultiCallBin(t testing.TB, name string) string {
	t.Helper()
	link := filepath.Join(t.TempDir(), name)
	if err := os.Symlink(centraBin, link); err != nil {
		t.Fatalf("multi-call link %s: %v", name, err)
	}
	return link
}

// RunBin runs bin (e.g. a MultiCallBin link) with args, like RunCLI.
func RunBin(bin string, args ...string) CmdResult {
	return run("", "", bin, args...)
}

// RunBinEnv is RunBin with extra environment variables ("NAME=VALUE"), e.g.
// Cluster.TLSEnv.
func RunBinEnv(bin string, env []string, args ...string) CmdResult {
	return runEnv("", "", env, bin, args...)
}
