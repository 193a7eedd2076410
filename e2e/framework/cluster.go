//go:build e2e

package framework

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/centra-cloud/centra/config"
)

// startTimeout bounds NewCluster's wait for every node to be ready.
const startTimeout = 60 * time.Second

// startAttempts is how many times NewCluster tries fresh ports when a node
// fails to bind one.
const startAttempts = 3

// DevAPIAddr and DevRaftAddr are the addresses of `centra serve` without
// any configuration.
const (
	DevAPIAddr  = "127.0.0.1:2379"
	DevRaftAddr = "127.0.0.1:2380"
)

// Option configures NewCluster.
type Option func(*options)

type options struct {
	nodes          int
	tls            bool
	tickMs         uint64
	electionTicks  uint64
	heartbeatTicks uint64
	logLevel       string
	dev            bool
	snapEntries    uint64
	snapOverhead   uint64
	stores         int
	late           int
	storeArgs      []string
	namespaceModes map[string]string
	quota          uint64
	minFree        *uint64
	journald       bool
	netns          func(i int) (netns, host string)
	dataDir        func(i int) (string, error)
	ownPgrp        bool
}

// WithProcessGroups starts every process in a process group of its own.
// The kernel sends SIGHUP to the stopped members of a process group that
// becomes orphaned (a suite run as a background job whose shell exits):
// a node paused with SIGSTOP would die of it. The price: a Ctrl-C on the
// terminal reaches only the test process, which stops the nodes in its
// cleanup (a killed test process leaves them running).
func WithProcessGroups() Option { return func(o *options) { o.ownPgrp = true } }

// WithDataDirs sets node i's storage.data_dir to the directory f returns
// (called at every start attempt; it must return a fresh empty directory),
// e.g. on a small filesystem of the caller's that fills up. Stores follow
// the nodes, as with WithNetns: store j's is f(nodes+j), at PrepareStore.
func WithDataDirs(f func(i int) (string, error)) Option {
	return func(o *options) { o.dataDir = f }
}

// WithJournald starts every node as systemd does under journald: the
// JOURNAL_STREAM variable names the node's log file, so centra writes the
// text lines journald would store ("LEVEL component: message, k=v") and the
// runbooks' journalctl pipelines can be replayed on the file.
func WithJournald() Option { return func(o *options) { o.journald = true } }

// WithQuotaBackendBytes sets storage.quota_backend_bytes on every node.
func WithQuotaBackendBytes(n uint64) Option { return func(o *options) { o.quota = n } }

// WithMinFreeBytes sets storage.min_free_bytes on every node (0 disables
// the free-space guard).
func WithMinFreeBytes(n uint64) Option { return func(o *options) { o.minFree = &n } }

// WithNetns runs node i (from 0) inside the network namespace netns, set
// up by the caller, listening on host (an address of that namespace) on
// the fixed ports NetnsAPIPort and NetnsRaftPort: every namespace has its
// own ports. The test process must reach host from its own namespace (a
// bridge); e2e/faults uses it to partition real processes. Stores
// (WithStores, PrepareStore) run in the namespaces after the nodes': store
// i (from 0) in f(nodes+i).
func WithNetns(f func(i int) (netns, host string)) Option {
	return func(o *options) { o.netns = f }
}

// The ports of a node in its own network namespace (WithNetns).
const (
	NetnsAPIPort  = "2379"
	NetnsRaftPort = "2380"
)

// WithNodes sets the number of nodes, all bootstrapping from
// [cluster] initial_members (default 1).
func WithNodes(n int) Option { return func(o *options) { o.nodes = n } }

// WithLateStart configures the last k of the WithNodes nodes (in every
// node's initial_members) but does not start them: a test starts them with
// Node.Start, as an operator whose nodes come up at different times. When
// the others are fewer than a quorum, NewCluster waits only for their API
// ports (no leader yet).
func WithLateStart(k int) Option { return func(o *options) { o.late = k } }

// WithTLS generates certificates with `centra certs init` and configures
// [network.tls] on every node with require_client_cert = true. Clients of
// the framework then present the generated client certificate.
func WithTLS() Option { return func(o *options) { o.tls = true } }

// WithTickMs sets raft.tick_interval_ms (default 50, for fast elections;
// the election timeout is 10 ticks unless WithElectionTicks says otherwise).
func WithTickMs(ms uint64) Option { return func(o *options) { o.tickMs = ms } }

// WithElectionTicks sets raft.election_ticks (default 10).
func WithElectionTicks(n uint64) Option { return func(o *options) { o.electionTicks = n } }

// WithSnapshotEntries sets raft.snapshot_entries and
// raft.compaction_overhead, so that a short test can make the log compact
// and a lagging node catch up from a snapshot.
func WithSnapshotEntries(entries, overhead uint64) Option {
	return func(o *options) { o.snapEntries, o.snapOverhead = entries, overhead }
}

// WithLogLevel sets log_level (default info).
func WithLogLevel(level string) Option { return func(o *options) { o.logLevel = level } }

// WithDevMode runs one node as `centra serve` with no configuration at all:
// its working directory is a temporary directory (data in ./centra-data)
// and it listens on DevAPIAddr and DevRaftAddr, which must be free.
func WithDevMode() Option { return func(o *options) { o.dev = true } }

// Cluster is a set of centra processes started by NewCluster.
type Cluster struct {
	t     testing.TB
	opts  options
	nodes []*Node
	// stores are the store-role processes (PrepareStore, WithStores).
	stores []*Node
	tls    *tlsFiles
	base   string // holds every file of the cluster
	// connect is ConnectClient's, built on first use.
	connectOnce sync.Once
	connect     *http.Client
	// bootMembers is initial_members of the bootstrapping nodes.
	bootMembers []string
}

// NewCluster starts a cluster and waits until every node is ready and all
// agree on a leader. Everything is stopped when the test ends; if it
// failed, the tail of each node's log is logged.
func NewCluster(t testing.TB, opts ...Option) *Cluster {
	t.Helper()
	o := options{nodes: 1, tickMs: 50, electionTicks: 10, heartbeatTicks: 1, logLevel: "info"}
	for _, opt := range opts {
		opt(&o)
	}
	if o.dev {
		o.nodes = 1
	}
	if o.nodes < 1 {
		t.Fatalf("WithNodes(%d): need at least one node", o.nodes)
	}
	if o.late < 0 || o.late >= o.nodes {
		t.Fatalf("WithLateStart(%d): start at least one of the %d nodes with the cluster", o.late, o.nodes)
	}
	if o.stores > 0 && o.dev {
		t.Fatalf("WithStores(%d): not with WithDevMode", o.stores)
	}
	// The base directory is created before the cleanup is registered, so
	// that it is removed only after every process has stopped (cleanups
	// run last-in first-out).
	c := &Cluster{t: t, opts: o, base: t.TempDir()}
	if *keepFlag {
		base, err := os.MkdirTemp("", "centra-e2e-")
		if err != nil {
			t.Fatalf("-keep: %v", err)
		}
		c.base = base
		t.Logf("-keep: the cluster's directory (data and node logs) stays in %s", base)
	}
	t.Cleanup(c.cleanup)
	if o.tls {
		if err := c.makeCerts(); err != nil {
			t.Fatalf("certificates: %v", err)
		}
	}
	begin := time.Now()
	var err error
	for attempt := 1; attempt <= startAttempts; attempt++ {
		if err = c.boot(); err == nil || !errors.Is(err, errAddrInUse) || o.dev {
			break
		}
		t.Logf("start attempt %d: %v; retrying on fresh ports", attempt, err)
		c.stopAll()
	}
	if err != nil {
		t.Fatalf("start cluster: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	early := c.nodes[:len(c.nodes)-o.late]
	if len(early) <= len(c.nodes)/2 {
		t.Logf("%d of %d node(s) started, fewer than a quorum", len(early), len(c.nodes))
		return c
	}
	for _, n := range early {
		if err := n.WaitReady(ctx); err != nil {
			t.Fatalf("start cluster: %v", err)
		}
	}
	leader, err := c.WaitLeader(ctx)
	if err != nil {
		t.Fatalf("start cluster: %v", err)
	}
	t.Logf("cluster of %d node(s) ready in %v, leader %s", len(early), time.Since(begin).Round(time.Millisecond), c.nodes[leader])
	if !o.dev {
		if err := c.nodes[leader].relaxSpaceRatios(ctx); err != nil {
			t.Fatalf("start cluster: %v", err)
		}
	}
	if o.stores > 0 {
		begin := time.Now()
		if err := c.startStores(); err != nil {
			t.Fatalf("start stores: %v", err)
		}
		t.Logf("%d store(s) registered in %v", o.stores, time.Since(begin).Round(time.Millisecond))
	}
	return c
}

// boot creates the nodes on fresh ports and directories, launches every
// process and waits until each has opened its API port.
func (c *Cluster) boot() error {
	c.nodes = nil
	for i := range c.opts.nodes {
		n := &Node{c: c, Index: i, ID: uint64(i + 1), Name: fmt.Sprintf("node%d", i+1)}
		dir, err := os.MkdirTemp(c.base, n.Name+"-")
		if err != nil {
			return err
		}
		n.dir = dir
		n.logPath = filepath.Join(dir, n.Name+".log")
		switch {
		case c.opts.dev:
			n.apiAddr, n.raftAddr = DevAPIAddr, DevRaftAddr
			n.dataDir = filepath.Join(n.dir, "centra-data")
			n.Name = "centra-1"
			c.nodes = append(c.nodes, n)
			continue
		case c.opts.netns != nil:
			var host string
			n.netns, host = c.opts.netns(i)
			n.apiAddr, n.raftAddr = net.JoinHostPort(host, NetnsAPIPort), net.JoinHostPort(host, NetnsRaftPort)
		default:
			if n.apiAddr, err = allocAddr(); err != nil {
				return err
			}
			if n.raftAddr, err = allocAddr(); err != nil {
				return err
			}
		}
		n.dataDir = filepath.Join(n.dir, "data")
		if c.opts.dataDir != nil {
			if n.dataDir, err = c.opts.dataDir(i); err != nil {
				return err
			}
		}
		n.configPath = filepath.Join(n.dir, "centra.toml")
		c.nodes = append(c.nodes, n)
	}
	c.bootMembers = nil
	for _, m := range c.nodes {
		c.bootMembers = append(c.bootMembers, fmt.Sprintf("%d=%s", m.ID, m.raftAddr))
	}
	if !c.opts.dev {
		for _, n := range c.nodes {
			if err := c.writeConfig(n); err != nil {
				return err
			}
		}
	}
	// Launch everything before waiting: a bootstrapping node may need its
	// peers before it opens the API.
	early := c.nodes[:len(c.nodes)-c.opts.late]
	for _, n := range early {
		if err := n.launch(); err != nil {
			return err
		}
	}
	var errs []error
	for _, n := range early {
		errs = append(errs, n.waitListening(context.Background()))
	}
	return errors.Join(errs...)
}

// writeConfig renders n's config.Config as TOML with config.Config.TOML, so
// the node parses it with the real loader.
func (c *Cluster) writeConfig(n *Node) error {
	cfg := config.Default()
	cfg.Node = config.Node{ID: n.ID, Name: n.Name, Role: config.RoleControlPlane}
	cfg.Cluster = config.Cluster{ID: 1, Bootstrap: true, InitialMembers: c.bootMembers}
	if n.joining {
		cfg.Cluster = config.Cluster{ID: 1, Bootstrap: false, InitialMembers: []string{}}
	}
	cfg.Network.APIAddr = n.apiAddr
	cfg.Network.RaftAddr = n.raftAddr
	cfg.Network.GossipAddr = "127.0.0.1:0" // reserved and unused by centra
	if c.tls != nil {
		cfg.Network.TLS = config.TLS{
			CertFile:          filepath.Join(c.tls.dir, n.Name+".crt"),
			KeyFile:           filepath.Join(c.tls.dir, n.Name+".key"),
			CAFile:            c.tls.caFile,
			RequireClientCert: true,
		}
	}
	cfg.Storage.DataDir = n.dataDir
	// Small caches: several nodes share a small test machine.
	cfg.Storage.WriteBufferSize = 4 << 20
	cfg.Storage.BlockCacheSize = 8 << 20
	cfg.Raft.TickIntervalMs = c.opts.tickMs
	cfg.Raft.ElectionTicks = c.opts.electionTicks
	cfg.Raft.HeartbeatTicks = c.opts.heartbeatTicks
	if n.raftRole != "" {
		cfg.Raft.Role = n.raftRole
	}
	if c.opts.snapEntries != 0 {
		cfg.Raft.SnapshotEntries = c.opts.snapEntries
		cfg.Raft.CompactionOverhead = c.opts.snapOverhead
	}
	if c.opts.quota != 0 {
		cfg.Storage.QuotaBackendBytes = c.opts.quota
	}
	if c.opts.minFree != nil {
		cfg.Storage.MinFreeBytes = *c.opts.minFree
	}
	cfg.LogLevel = c.opts.logLevel
	b, err := cfg.TOML()
	if err != nil {
		return fmt.Errorf("render config of %s: %w", n, err)
	}
	return os.WriteFile(n.configPath, b, 0o600)
}

// Node returns node i (from 0).
func (c *Cluster) Node(i int) *Node { return c.nodes[i] }

// Nodes returns every node.
func (c *Cluster) Nodes() []*Node { return c.nodes }

// Endpoints returns the API address of every node, running or not.
func (c *Cluster) Endpoints() []string {
	eps := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		eps[i] = n.apiAddr
	}
	return eps
}

// Client returns a clientv3 client over all endpoints, closed when the test
// ends.
func (c *Cluster) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	cli, err := c.NewClient(c.Endpoints()...)
	if err != nil {
		t.Fatalf("cluster client: %v", err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

// RunCLI runs the centra binary as a client; see the package-level RunCLI.
func (c *Cluster) RunCLI(args ...string) CmdResult { return RunCLI(args...) }

// RestartAll restarts every control-plane node on its data and waits until
// each serves reads and they agree on a leader.
func (c *Cluster) RestartAll(ctx context.Context) error {
	for _, n := range c.Nodes() {
		if err := n.Restart(); err != nil {
			return err
		}
	}
	for _, n := range c.Nodes() {
		if err := n.WaitReady(ctx); err != nil {
			return err
		}
	}
	_, err := c.WaitLeader(ctx)
	return err
}

// WaitLeader waits until every running node that is not paused reports the
// same non-zero leader through Maintenance.Status and the leader is one of
// them (etcd's WaitMembersForLeader). It returns the leader's index.
func (c *Cluster) WaitLeader(ctx context.Context) (int, error) {
	var last error
	for {
		idx, err := c.leaderOnce(ctx)
		if err == nil {
			return idx, nil
		}
		last = err
		select {
		case <-ctx.Done():
			return -1, fmt.Errorf("no agreed leader: %w (last: %v)", ctx.Err(), last)
		case <-time.After(pollTick):
		}
	}
}

func (c *Cluster) leaderOnce(ctx context.Context) (int, error) {
	type answer struct {
		leader uint64
		err    error
	}
	var running []*Node
	for _, n := range c.nodes {
		if n.Running() && !n.Paused() {
			running = append(running, n)
		}
	}
	if len(running) == 0 {
		return -1, errors.New("no node is running (and not paused)")
	}
	answers := make([]answer, len(running))
	var wg sync.WaitGroup
	for i, n := range running {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := n.Status(ctx)
			if err != nil {
				answers[i] = answer{err: fmt.Errorf("%s: %w", n, err)}
				return
			}
			answers[i] = answer{leader: st.Leader}
		}()
	}
	wg.Wait()
	var leader uint64
	for i, a := range answers {
		switch {
		case a.err != nil:
			return -1, a.err
		case a.leader == 0:
			return -1, fmt.Errorf("%s has no leader", running[i])
		case leader != 0 && a.leader != leader:
			return -1, fmt.Errorf("nodes disagree on the leader (%d vs %d)", leader, a.leader)
		}
		leader = a.leader
	}
	for _, n := range running {
		if n.ID == leader {
			return n.Index, nil
		}
	}
	return -1, fmt.Errorf("leader %d is not a running node", leader)
}

// Leader waits (up to 20 s) for an agreed leader and returns its index;
// it fails t if there is none. Pass the running (sub)test's t.
func (c *Cluster) Leader(t testing.TB) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	i, err := c.WaitLeader(ctx)
	if err != nil {
		t.Fatalf("leader: %v", err)
	}
	return i
}

// Followers returns the indexes of the running, unpaused nodes other than
// leader.
func (c *Cluster) Followers(leader int) []int {
	var out []int
	for _, n := range c.nodes {
		if n.Index != leader && n.Running() && !n.Paused() {
			out = append(out, n.Index)
		}
	}
	return out
}

// Running returns the nodes whose process runs.
func (c *Cluster) Running() []*Node {
	var out []*Node
	for _, n := range c.nodes {
		if n.Running() {
			out = append(out, n)
		}
	}
	return out
}

// stopAll stops every store, then every node, concurrently, returning
// their stop errors.
func (c *Cluster) stopAll() []error {
	return append(stopNodes(c.stores), stopNodes(c.nodes)...)
}

func stopNodes(nodes []*Node) []error {
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = n.stop()
		}()
	}
	wg.Wait()
	return errs
}

func (c *Cluster) cleanup() {
	if c.connect != nil {
		c.connect.CloseIdleConnections()
	}
	all := append(append([]*Node(nil), c.nodes...), c.stores...)
	for _, n := range all {
		for _, crash := range n.Crashes() {
			c.t.Errorf("unexpected exit: %s", crash)
		}
	}
	for _, err := range c.stopAll() {
		if err != nil {
			// A node that does not shut down cleanly on SIGTERM is a bug.
			c.t.Errorf("cleanup: %v", err)
		}
	}
	if !c.t.Failed() {
		return
	}
	for _, n := range all {
		c.t.Logf("---- last lines of %s log (%s) ----\n%s", n, n.logPath, n.tail(60))
	}
}
