// Package app is centra's composition root: it turns a validated
// config.Config into a running process (state DB, raft node, Chainfire, the
// API listener) and shuts it down in order.
package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/centra-cloud/centra/chainfire"
	"github.com/centra-cloud/centra/config"
	"github.com/centra-cloud/centra/internal/sdnotify"
	"github.com/centra-cloud/centra/pd"
	"github.com/centra-cloud/centra/shared/diskguard"
	"github.com/centra-cloud/centra/shared/raftnode"
	centratls "github.com/centra-cloud/centra/shared/tls"
)

// App is one running centra process.
type App struct {
	cfg config.Config
	log *slog.Logger
	reg *prometheus.Registry

	db   *pebble.DB
	disk *diskguard.Guard // free space of the data directory's filesystem
	node *raftnode.Node
	cf   *chainfire.Server
	api  *apiServer

	opts Options
	// The client side of node-to-node calls, built on first use.
	clientTLSOnce  func() (*tls.Config, error)
	httpClientOnce func() (*http.Client, error)
	pd             *pd.Server
	store          *storeAgent
	ts             *timeseries
	// failed receives an error that must stop the process (e.g. PD refused
	// this store's identity).
	failed chan error

	replicaID uint64 // this node's replica in the metadata shard
	// phase and joiningLearner describe a node that does not serve yet
	// (startingStatus).
	phase          atomic.Pointer[string]
	joiningLearner atomic.Bool
	ready          chan struct{}
	closeOnce      sync.Once
	closed         atomic.Bool
	closeErr       error
}

// Options are one-off start options that are not configuration.
type Options struct {
	// ForceNewCluster makes this node the only member of the metadata shard,
	// keeping its data: the recovery when a quorum is lost for good
	// (split-brain procedure). Other members are removed for ever.
	ForceNewCluster bool
	// Version is centra's version, reported by the Prometheus API's
	// buildinfo.
	Version string
}

// New checks cfg and prepares the process; it does no I/O.
func New(cfg config.Config, opts Options, log *slog.Logger) (*App, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &App{cfg: cfg, opts: opts, log: log, reg: prometheus.NewRegistry(), ready: make(chan struct{}), failed: make(chan error, 1)}
	a.clientTLSOnce = sync.OnceValues(a.buildClientTLS)
	a.httpClientOnce = sync.OnceValues(a.buildHTTPClient)
	return a, nil
}

// clientURL is the URL other members and clients use for this node's API.
func (a *App) clientURL(raftAdvertise string) string {
	scheme := "http"
	if a.cfg.Network.TLS.Enabled() {
		scheme = "https"
	}
	host, port, _ := net.SplitHostPort(a.cfg.Network.APIAddr)
	if host == "" || net.ParseIP(host).IsUnspecified() {
		host, _, _ = net.SplitHostPort(raftAdvertise)
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// Start brings the node up: the API listener (health and metrics only at
// first), this node's identity in the cluster (for a joining node: waiting
// for the join handshake until ctx ends), state DB, raft, the metadata shard,
// then Chainfire's services. On error everything started is closed again.
func (a *App) Start(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	c := &a.cfg
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a.api, err = newAPIServer(a)
	if err != nil {
		return err
	}
	if err := a.api.start(); err != nil {
		return err
	}
	if c.HasRole(config.RoleControlPlane) {
		if err := a.startControlPlane(ctx); err != nil {
			return err
		}
	}
	if c.HasRole(config.RoleStore) {
		if err := a.startStore(); err != nil {
			return err
		}
	}
	if err := a.startTimeseries(); err != nil {
		return err
	}
	a.api.serve(routes{cf: a.cf, pd: a.pd, store: a.store, ts: a.ts})
	if a.store != nil {
		a.runStore()
	}
	a.log.Info("Serving the API", append(a.identityAttrs(), "api_addr", a.api.addr(), "data_dir", c.EffectiveDataDir())...)
	go a.waitReady()
	return nil
}

// startControlPlane starts this node's replica of the metadata shard
// (raft, Chainfire) and the placement driver on top of it.
func (a *App) startControlPlane(ctx context.Context) (err error) {
	c := &a.cfg
	if err := a.openStateDB(); err != nil {
		return err
	}
	id, err := a.identity(ctx)
	if err != nil {
		return err
	}
	raftCfg, err := a.raftConfig(id.advertise)
	if err != nil {
		return err
	}
	clientTLS, err := a.clientTLS()
	if err != nil {
		return err
	}
	electionMs := c.Raft.TickIntervalMs * c.Raft.ElectionTicks
	cfCfg := chainfire.Config{
		NodeID:            c.Node.ID,
		ReplicaID:         id.replicaID,
		ClusterID:         c.Cluster.ID,
		Name:              c.Node.Name,
		PeerURLs:          []string{id.advertise},
		ClientURLs:        []string{a.clientURL(id.advertise)},
		DB:                a.db,
		Logger:            a.log,
		Registry:          a.reg,
		ClientTLS:         clientTLS,
		MinLeaseTTL:       int64((3*electionMs/2 + 999) / 1000),
		ElectionTimeout:   time.Duration(electionMs) * time.Millisecond,
		QuotaBackendBytes: int64(c.Storage.QuotaBackendBytes), // validated <= MaxInt64
		DataDir:           c.EffectiveDataDir(),
		DiskGuard:         a.disk,
	}
	applied, err := raftnode.ReadAppliedIndex(a.db, raftnode.ShardKeyspace(raftnode.MetadataShardID))
	if err != nil {
		return err
	}
	cfCfg.StartAppliedIndex = applied
	shard := raftnode.ShardConfig{
		ShardID: raftnode.MetadataShardID, ReplicaID: id.replicaID, NonVoting: id.learner,
		InitialMembers: id.members, Join: id.join,
		StateAppliedIndex: applied, // refuses a state DB that is ahead of a lost raft log
	}
	if a.opts.ForceNewCluster {
		if err := a.forceNewCluster(raftCfg, cfCfg, shard); err != nil {
			return err
		}
	}
	if a.node, err = raftnode.New(raftCfg); err != nil {
		return err
	}
	cfCfg.Raft = a.node
	if a.cf, err = chainfire.New(cfCfg); err != nil {
		return err
	}
	a.node.OnLeaderChange(a.cf.OnLeaderChange)
	if err := a.node.Start(); err != nil {
		return err
	}
	if err := a.node.StartShard(shard, a.cf.CreateStateMachine); err != nil {
		return err
	}
	a.cf.Start()
	if a.opts.ForceNewCluster {
		fctx, cancel := context.WithTimeout(ctx, time.Minute)
		err := a.cf.ForgetOtherMembers(fctx)
		cancel()
		if err != nil {
			return fmt.Errorf("centra: --force-new-cluster: %w", err)
		}
	}
	return a.startPD(ctx)
}

// openStateDB creates the data directories and opens the state DB that
// every state machine of the process shares (the metadata shard, region
// replicas).
func (a *App) openStateDB() (err error) {
	c := &a.cfg
	if err := checkDataDirs(c.StateDir(), c.RaftDir()); err != nil {
		return err
	}
	if err := refuseEtcdDataDir(c.EffectiveDataDir()); err != nil {
		return err
	}
	for _, dir := range []string{c.StateDir(), c.RaftDir()} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("centra: create data directory: %w (check [storage] data_dir and its permissions)", err)
		}
	}
	for _, w := range c.Storage.Warnings() {
		a.log.Warn(w)
	}
	if a.disk, err = diskguard.New(c.EffectiveDataDir(), c.Storage.MinFreeBytes); err != nil {
		return fmt.Errorf("centra: %w (check [storage] data_dir, or set [storage] min_free_bytes = 0 to disable the free-space guard)", err)
	}
	if err := a.disk.Err(); err != nil {
		a.log.Warn("Starting short of space; writes are refused until space is freed", "err", err)
	}
	a.db, err = raftnode.OpenStateDB(c.StateDir(), c.Storage.PebbleOptions(), a.log.With("component", a.component("storage")),
		time.Duration(c.Storage.SlowCompactionMs)*time.Millisecond)
	return err
}

// component is the runbooks' log component for a part of the node shared by
// its roles (storage, network): chainfire_PART on a control-plane node,
// flaredb_PART on a store-only one.
func (a *App) component(part string) string {
	if a.cfg.HasRole(config.RoleControlPlane) {
		return "chainfire_" + part
	}
	return "flaredb_" + part
}

// raftConfig is the raft node's configuration; advertise is the raft
// address other nodes reach this one at.
func (a *App) raftConfig(advertise string) (raftnode.Config, error) {
	c := &a.cfg
	listen := ""
	if advertise != c.Network.RaftAddr {
		listen = c.Network.RaftAddr
	}
	level, err := ParseLevel(c.LogLevel)
	if err != nil {
		return raftnode.Config{}, err
	}
	var peerTLS *raftnode.PeerTLS
	if t := c.Network.TLS; t.Enabled() {
		host, _, _ := net.SplitHostPort(advertise)
		if err := centratls.CheckPeerFiles(t, host); err != nil {
			return raftnode.Config{}, err
		}
		peerTLS = &raftnode.PeerTLS{CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile}
	}
	return raftnode.Config{
		NodeHostDir:         c.RaftDir(),
		RaftAddress:         advertise,
		ListenAddress:       listen,
		DeploymentID:        c.Cluster.ID,
		RTTMillisecond:      c.Raft.TickIntervalMs,
		ElectionRTT:         c.Raft.ElectionTicks,
		HeartbeatRTT:        c.Raft.HeartbeatTicks,
		SnapshotEntries:     c.Raft.SnapshotEntries,
		CompactionOverhead:  c.Raft.CompactionOverhead,
		MaxInMemLogSize:     c.Raft.MaxInMemLogSize,
		TLS:                 peerTLS,
		Logger:              a.log,
		LogLevel:            level,
		NetworkLogComponent: a.component("network"),
		Registerer:          a.reg,
	}, nil
}

// startStoreNode opens the state DB and raft node of a store-only process
// (a control-plane process shares its own with the store role). apiAddr is
// the store's advertised API address: when raft_addr binds every interface,
// other stores reach raft at that host.
func (a *App) startStoreNode(apiAddr string) (err error) {
	if a.node != nil {
		return nil
	}
	if err := a.openStateDB(); err != nil {
		return err
	}
	advertise := a.cfg.Network.RaftAddr
	if host, port, err := net.SplitHostPort(advertise); err == nil && (host == "" || net.ParseIP(host).IsUnspecified()) {
		apiHost, _, _ := net.SplitHostPort(apiAddr)
		advertise = net.JoinHostPort(apiHost, port)
	}
	raftCfg, err := a.raftConfig(advertise)
	if err != nil {
		return err
	}
	if a.node, err = raftnode.New(raftCfg); err != nil {
		return err
	}
	return a.node.Start()
}

// clientTLS is the TLS configuration this node dials other nodes with (nil
// without TLS), built once.
func (a *App) clientTLS() (*tls.Config, error) { return a.clientTLSOnce() }

func (a *App) buildClientTLS() (*tls.Config, error) {
	t := a.cfg.Network.TLS
	if !t.Enabled() {
		return nil, nil
	}
	return centratls.ClientConfig(t, "")
}

// waitReady logs "ready to serve" once the node can serve linearizable
// reads, and closes Ready().
func (a *App) waitReady() {
	r := routes{cf: a.cf, pd: a.pd, store: a.store}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := r.ready(ctx)
		cancel()
		if err == nil {
			a.log.Info("Ready to serve", a.identityAttrs()...)
			if err := sdnotify.Ready(); err != nil {
				a.log.Warn("Could not notify systemd", "err", err)
			}
			close(a.ready)
			return
		}
		if errors.Is(err, raftnode.ErrClosed) || a.closed.Load() {
			return
		}
		a.log.Debug("Not ready yet", "err", err)
		_ = sdnotify.Notify("STATUS=Not ready: " + err.Error())
		<-tick.C
	}
}

// forceNewCluster makes this member the only member of the metadata shard,
// keeping its data (see raftnode.ForceNewCluster). The state machine used
// meanwhile is a Chainfire instance of its own, with a scratch metrics
// registry; the real one starts afterwards.
func (a *App) forceNewCluster(raftCfg raftnode.Config, cfCfg chainfire.Config, shard raftnode.ShardConfig) error {
	raftCfg.Registerer = prometheus.NewRegistry()
	node, err := raftnode.New(raftCfg)
	if err != nil {
		return err
	}
	cfCfg.Raft, cfCfg.Registry = node, prometheus.NewRegistry()
	cf, err := chainfire.New(cfCfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := node.ForceNewCluster(ctx, shard, cf.CreateStateMachine); err != nil {
		return fmt.Errorf("centra: --force-new-cluster: %w", err)
	}
	a.log.Warn("Forced a new cluster: this node is now the only member; add the others back with member-add (they must start with bootstrap = false and empty data)", "node_id", a.cfg.Node.ID)
	return nil
}

// checkDataDirs refuses a raft log without its state DB: dragonboat would
// replay the log onto an empty state machine whose snapshot index it already
// recorded, and panic (dragonboat issue #410).
func checkDataDirs(stateDir, raftDir string) error {
	entries, err := os.ReadDir(raftDir)
	if err != nil || len(entries) == 0 {
		return nil // a new node
	}
	if _, err := os.Stat(stateDir); os.IsNotExist(err) {
		return fmt.Errorf("centra: %s holds a raft log but the state directory %s is missing; restore it from a backup, or wipe the whole data directory and re-add this node (member-remove, then member-add)", raftDir, stateDir)
	}
	return nil
}

// refuseEtcdDataDir refuses a data directory that holds an etcd member's
// data (member/snap/db): centra cannot read it in place.
func refuseEtcdDataDir(dir string) error {
	db := filepath.Join(dir, "member", "snap", "db")
	if _, err := os.Stat(db); err != nil {
		return nil
	}
	return fmt.Errorf("centra: %s is an etcd data directory (%s); centra does not read it in place: take `etcdctl snapshot save FILE` from the running etcd (or use %s with --skip-hash-check), then `centra snapshot restore FILE --data-dir NEW_DIR` and start centra on NEW_DIR", dir, db, db)
}

// transferLeadership moves the metadata shard's leadership to another voter
// when this node holds it. Failure only costs the cluster an election.
func (a *App) transferLeadership() {
	self := a.replicaID
	if leader, _, ok := a.node.Leader(raftnode.MetadataShardID); !ok || leader != self {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	m, err := a.node.Membership(ctx, raftnode.MetadataShardID)
	if err != nil {
		a.log.Warn("Leadership transfer skipped: cannot read the membership", "err", err)
		return
	}
	for id := range m.Nodes {
		if id == self {
			continue
		}
		if err := a.node.TransferLeader(ctx, raftnode.MetadataShardID, id); err != nil {
			a.log.Warn("Leadership transfer failed; the cluster will elect a new leader", "target_replica_id", id, "err", err)
			return
		}
		a.log.Info("Leadership transferred before shutdown", "leader_id", id)
		return
	}
}

// identityAttrs names this process in logs: its roles, the node ID of a
// control-plane node and the store ID of a store.
func (a *App) identityAttrs() []any {
	attrs := []any{"roles", a.cfg.Node.Role}
	if a.cfg.HasRole(config.RoleControlPlane) {
		attrs = append(attrs, "node_id", a.cfg.Node.ID)
	}
	if a.cfg.HasRole(config.RoleStore) {
		attrs = append(attrs, "store_id", a.cfg.EffectiveStoreID())
	}
	return attrs
}

// fail reports an error that must stop the process (see Failed).
func (a *App) fail(err error) {
	select {
	case a.failed <- err:
	default:
	}
}

// Failed delivers an error after which the process must stop.
func (a *App) Failed() <-chan error { return a.failed }

// Ready is closed once the node serves linearizable reads.
func (a *App) Ready() <-chan struct{} { return a.ready }

// APIAddr returns the bound API address.
func (a *App) APIAddr() string { return a.api.addr() }

// Close shuts the process down, in this order:
//  1. stop the API listener (no new requests; open streams are cut after a
//     grace period);
//  2. stop the time-series maintenance loop, the store agent's heartbeats
//     and the placement driver's loops;
//  3. when this node leads the metadata shard, hand leadership to another
//     voter (bounded wait), so the cluster does not sit out an election
//     timeout without a leader;
//  4. stop Chainfire's background work (lease expiry, compaction);
//  5. close the raft node (dragonboat's NodeHost: replicas stop, log flushed);
//  6. close the state DB (after raft, which may still apply entries).
//
// It is idempotent and safe after a partial Start.
func (a *App) Close() error {
	a.closeOnce.Do(func() {
		a.closed.Store(true)
		var errs []error
		if a.api != nil {
			errs = append(errs, a.api.stop())
		}
		if a.ts != nil {
			a.ts.close()
		}
		if a.store != nil && a.store.stop != nil {
			a.store.stop()
			<-a.store.done
			a.store.store.Close()
		}
		if a.pd != nil {
			errs = append(errs, a.pd.Close())
		}
		if a.node != nil && a.node.NodeHost() != nil {
			a.transferLeadership()
		}
		if a.cf != nil {
			a.cf.Close()
		}
		if a.node != nil {
			errs = append(errs, a.node.Close())
		}
		if a.db != nil {
			errs = append(errs, a.db.Close())
		}
		a.closeErr = errors.Join(errs...)
	})
	return a.closeErr
}
