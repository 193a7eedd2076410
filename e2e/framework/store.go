//go:build e2e

package framework

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Stores: processes with the store role (FlareDB), run as
// `centra serve --role=store --config flaredb.toml` with the scale-out
// runbook's flaredb.toml. A store is a *Node (Kill, Stop, Restart,
// WaitReady, WaitLog, CurrentLog work the same) whose ID is its store_id and
// whose endpoint is its addr; it is not one of Cluster.Nodes (no raft
// member), so WaitLeader, Endpoints and Running ignore it.

// storeReadyTimeout bounds the wait for a store's /readyz (registered with
// PD).
const storeReadyTimeout = 60 * time.Second

// WithStores starts n stores (store_id 1..n) once the control plane is
// ready, each pointing pd_addr at every control-plane node, and waits until
// each answers /readyz with 200 (it registered with PD). With WithTLS each
// store gets a certificate of the cluster's CA and the runbook's [tls]
// section. Not with WithDevMode.
func WithStores(n int) Option { return func(o *options) { o.stores = n } }

// WithStoreArgs adds command-line arguments to every start of every store
// (e.g. "--region-max-keys", "2000" for tiny split thresholds).
func WithStoreArgs(args ...string) Option {
	return func(o *options) { o.storeArgs = append(o.storeArgs, args...) }
}

// WithNamespaceModes adds entries to the [namespace_modes] section of every
// store's flaredb.toml, after the runbook's default = "eventual".
func WithNamespaceModes(modes map[string]string) Option {
	return func(o *options) { o.namespaceModes = modes }
}

// WithStoreID sets a store's store_id (PrepareStore; default one more than
// the highest store_id of the cluster's stores). Unlike node IDs, store_ids
// may repeat: a test of the duplicate-store_id refusal needs it.
func WithStoreID(id uint64) NodeOption { return func(n *Node) { n.ID = id } }

// StoreConfig is what the framework writes into a store's flaredb.toml.
type StoreConfig struct {
	StoreID  uint64
	Addr     string   // the store's API address, its identity in PD
	DataDir  string   // data_dir
	PDAddr   []string // pd_addr, written as one comma-separated string
	LogLevel string
	// CertFile, KeyFile and CAFile fill the runbook's optional [tls]
	// section (with require_client_cert = true) when set.
	CertFile, KeyFile, CAFile string
	// NamespaceModes are extra [namespace_modes] entries.
	NamespaceModes map[string]string
}

// TOML renders c in the shape of the scale-out runbook's flaredb.toml
// (Step 1), with the [tls] section when the cluster uses TLS.
func (c StoreConfig) TOML() string {
	level := c.LogLevel
	if level == "" {
		level = "info"
	}
	tlsSection := ""
	if c.CertFile != "" {
		tlsSection = fmt.Sprintf("[tls] # Optional, if TLS enabled\ncert_file = %q\nkey_file = %q\nca_file = %q\nrequire_client_cert = true\n", c.CertFile, c.KeyFile, c.CAFile)
	}
	return fmt.Sprintf(`store_id = %d # NEW STORE ID (must be unique)
addr = %q
data_dir = %q
pd_addr = %q # Placement Driver address
log_level = %q
`+tlsSection+`[peers]
# Empty for new node - will be populated by PD
[namespace_modes]
default = "eventual" # or "strong"
`, c.StoreID, c.Addr, c.DataDir, strings.Join(c.PDAddr, ","), level) + c.extraModes()
}

func (c StoreConfig) extraModes() string {
	var b strings.Builder
	for _, ns := range slices.Sorted(maps.Keys(c.NamespaceModes)) {
		fmt.Fprintf(&b, "%q = %q\n", ns, c.NamespaceModes[ns])
	}
	return b.String()
}

// IsStore reports whether n is a store (PrepareStore, WithStores) rather
// than a control-plane node.
func (n *Node) IsStore() bool { return n.store }

// StoreID returns a store's store_id (its ID).
func (n *Node) StoreID() uint64 { return n.ID }

// StoreConfig returns the settings the framework renders into the store's
// flaredb.toml.
func (n *Node) StoreConfig() StoreConfig {
	sc := StoreConfig{StoreID: n.ID, Addr: n.apiAddr, DataDir: n.dataDir, PDAddr: n.c.Endpoints(), LogLevel: n.c.opts.logLevel, NamespaceModes: n.c.opts.namespaceModes}
	if t := n.c.tls; t != nil {
		sc.CertFile, sc.KeyFile, sc.CAFile = filepath.Join(t.dir, n.Name+".crt"), filepath.Join(t.dir, n.Name+".key"), t.caFile
	}
	return sc
}

// PrepareStore creates a store on a fresh API port, in its own directory,
// with flaredb.toml (ConfigPath) rendered from StoreConfig. It does not
// start it (Start does), so a test may first replace the config file. The
// store is stopped when the test ends.
func (c *Cluster) PrepareStore(opts ...NodeOption) (*Node, error) {
	if c.opts.dev {
		return nil, errors.New("PrepareStore: not in dev mode")
	}
	var maxID uint64
	for _, s := range c.stores {
		maxID = max(maxID, s.ID)
	}
	n := &Node{c: c, Index: len(c.stores), ID: maxID + 1, store: true}
	for _, o := range opts {
		o(n)
	}
	if n.Name == "" {
		n.Name = fmt.Sprintf("store%d", n.ID)
	}
	if err := c.prepareDir(n, "flaredb.toml"); err != nil {
		return nil, fmt.Errorf("PrepareStore: %w", err)
	}
	// The runbook's flaredb.toml names only addr; the raft port (by default
	// the API port + 1, which another test process may hold) is given on
	// the command line.
	var err error
	if c.opts.netns != nil {
		// WithNetns: the stores' namespaces follow the nodes'.
		var host string
		n.netns, host = c.opts.netns(len(c.nodes) + n.Index)
		n.apiAddr, n.raftAddr = net.JoinHostPort(host, NetnsAPIPort), net.JoinHostPort(host, NetnsRaftPort)
	} else if n.raftAddr, err = allocAddr(); err != nil {
		return nil, fmt.Errorf("PrepareStore: %w", err)
	}
	if c.opts.dataDir != nil {
		if n.dataDir, err = c.opts.dataDir(len(c.nodes) + n.Index); err != nil {
			return nil, fmt.Errorf("PrepareStore: %w", err)
		}
	}
	if err := n.writeStoreConfig(); err != nil {
		return nil, err
	}
	c.stores = append(c.stores, n)
	return n, nil
}

func (n *Node) writeStoreConfig() error {
	return os.WriteFile(n.configPath, []byte(n.StoreConfig().TOML()), 0o600)
}

// storeIDLine is the store_id line of a flaredb.toml.
var storeIDLine = regexp.MustCompile(`(?m)^store_id[ \t]*=[ \t]*[0-9]+`)

// SetStoreID changes a stopped store's store_id: it edits the store_id
// line of its flaredb.toml in place, whoever wrote the file (the
// troubleshooting runbook's "Change: store_id = <NEW_UNIQUE_ID>"). The
// data directory is left alone (WipeData).
func (n *Node) SetStoreID(id uint64) error {
	if !n.store {
		return fmt.Errorf("SetStoreID: %s is not a store", n)
	}
	if n.Running() {
		return fmt.Errorf("SetStoreID: %s is running; stop it first", n)
	}
	b, err := os.ReadFile(n.configPath)
	if err != nil {
		return err
	}
	if !storeIDLine.Match(b) {
		return fmt.Errorf("SetStoreID: %s has no store_id line", n.configPath)
	}
	b = storeIDLine.ReplaceAll(b, []byte(fmt.Sprintf("store_id = %d", id)))
	if err := os.WriteFile(n.configPath, b, 0o600); err != nil {
		return err
	}
	n.c.t.Logf("%s: store_id set to %d in %s", n, id, n.configPath)
	n.ID = id
	return nil
}

// Store returns store i (from 0, in the order of creation).
func (c *Cluster) Store(i int) *Node { return c.stores[i] }

// Stores returns every store, running or not.
func (c *Cluster) Stores() []*Node { return c.stores }

// startStores starts the WithStores stores and waits until each is ready.
func (c *Cluster) startStores() error {
	var stores []*Node
	for range c.opts.stores {
		s, err := c.PrepareStore()
		if err != nil {
			return err
		}
		stores = append(stores, s)
	}
	for _, s := range stores {
		if err := s.start(); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeReadyTimeout)
	defer cancel()
	for _, s := range stores {
		if err := s.WaitReady(ctx); err != nil {
			return err
		}
	}
	return nil
}

// StartExpectingExit launches the node and waits up to timeout for its
// process to exit on its own, as a store refused by PD must; that exit is
// not a crash. It returns the exit status and what this run logged. If the
// process is still running at the timeout it is stopped and an error is
// returned.
func (n *Node) StartExpectingExit(timeout time.Duration) (int, string, error) {
	if n.Running() {
		return -1, "", fmt.Errorf("%s is already running", n)
	}
	n.mu.Lock()
	n.expectExit = true
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		n.expectExit = false
		n.mu.Unlock()
	}()
	if err := n.launch(); err != nil {
		return -1, "", err
	}
	if err := n.wait(timeout); err != nil {
		_ = n.stop()
		return -1, n.currentLog(), fmt.Errorf("%s was expected to exit: %w", n, err)
	}
	n.mu.Lock()
	code := n.cmd.ProcessState.ExitCode()
	n.mu.Unlock()
	return code, n.currentLog(), nil
}
