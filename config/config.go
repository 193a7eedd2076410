package config

import (
	"fmt"
	"path/filepath"
	"strings"
)

// Role names accepted in node.role.
const (
	// RoleControlPlane hosts a replica of the metadata shard and serves
	// Chainfire and PD.
	RoleControlPlane = "control_plane"
	// RoleStore hosts FlareDB region replicas and registers with PD.
	RoleStore = "store"
)

// Raft roles accepted in raft.role.
const (
	// RaftVoter is a voting member of the metadata shard.
	RaftVoter = "voter"
	// RaftLearner is a non-voting member that replicates the log.
	RaftLearner = "learner"
)

// Namespace modes accepted as values of namespace_modes.
const (
	// NamespaceStrong gives linearizable reads and writes.
	NamespaceStrong = "strong"
	// NamespaceEventual commits writes through raft but serves reads from
	// the nearest replica, possibly stale.
	NamespaceEventual = "eventual"
)

// Config is the whole configuration of `centra serve`.
//
// One struct holds both file shapes of the runbooks: chainfire.toml
// (sections [node] [cluster] [network] [network.tls] [storage] [raft]) and
// flaredb.toml (top-level store_id, addr, data_dir, pd_addr, log_level and
// sections [tls] [peers] [namespace_modes], plus [storage]). Load fills the
// chainfire-shaped fields from the flaredb-shaped ones when only the latter
// are set, so after Load the rest of centra reads Network.APIAddr,
// Network.TLS and Storage.DataDir. The help tag of each field is the
// operator-facing documentation of its key; see Keys.
type Config struct {
	// Node identifies this process in the cluster.
	Node Node `koanf:"node"`
	// Cluster holds the metadata shard's bootstrap settings.
	Cluster Cluster `koanf:"cluster"`
	// Network holds the listen addresses and TLS of this node.
	Network Network `koanf:"network"`
	// Storage tunes the pebble store under the data directory.
	Storage Storage `koanf:"storage"`
	// Raft tunes dragonboat.
	Raft Raft `koanf:"raft"`
	// Region tunes FlareDB's region split check (store role).
	Region Region `koanf:"region"`
	// Timeseries configures the time-series database on FlareDB.
	Timeseries Timeseries `koanf:"timeseries"`
	// LogLevel is the minimum slog level: debug, info, warn or error.
	LogLevel string `koanf:"log_level" help:"Minimum log level: debug, info, warn or error."`
	// LogFormat is "text", "json" or empty (text under journald, else
	// JSON, colourised text on a terminal).
	LogFormat string `koanf:"log_format" help:"Log line format: text (LEVEL component: message, k=v) or json; empty picks text when stderr is journald (systemd), colourised text on a terminal, JSON otherwise."`

	// StoreID is flaredb.toml's store ID; 0 means "use node.id"
	// (see EffectiveStoreID).
	StoreID uint64 `koanf:"store_id" help:"FlareDB store ID of this node (flaredb.toml). Must be unique in the cluster; 0 uses node.id."`
	// Addr is flaredb.toml's API address; Load copies it to Network.APIAddr.
	Addr string `koanf:"addr" help:"API listen address HOST:PORT (flaredb.toml spelling of network.api_addr)."`
	// DataDir is flaredb.toml's data directory; Load copies it to
	// Storage.DataDir.
	DataDir string `koanf:"data_dir" help:"Data directory (flaredb.toml spelling of storage.data_dir)."`
	// PDAddr lists PD endpoints HOST:PORT. A file may give a TOML array, a
	// string, or a comma-separated string.
	PDAddr []string `koanf:"pd_addr" help:"PD endpoints HOST:PORT that a store registers with; a list or a comma-separated string. Required when node.role is store only; empty means the local PD."`
	// TLS is flaredb.toml's [tls] section; Load copies it to Network.TLS.
	TLS TLS `koanf:"tls"`
	// Peers maps store IDs to their HOST:PORT addresses (flaredb.toml).
	Peers map[string]string `koanf:"peers" help:"Known FlareDB peers, store ID = \"HOST:PORT\" (flaredb.toml); normally empty, PD fills it in."`
	// NamespaceModes maps FlareDB namespaces to strong or eventual.
	NamespaceModes map[string]string `koanf:"namespace_modes" help:"Consistency per FlareDB namespace, name = \"strong\" or \"eventual\"."`

	// sources records where each key set by Load came from.
	sources map[string]string
}

// Node identifies this process.
type Node struct {
	// ID is the operator-facing node ID, unique cluster-wide and >= 1.
	ID uint64 `koanf:"id" help:"Node ID, unique in the cluster and >= 1. Not the raft replica ID, which centra allocates."`
	// Name is a human-readable name; empty means "centra-<ID>".
	Name string `koanf:"name" help:"Human-readable node name shown by member-list; empty means centra-<node.id>."`
	// Role is "control_plane", "store" or "control_plane,store".
	Role string `koanf:"role" help:"What this node runs: control_plane (Chainfire + PD), store (FlareDB) or control_plane,store."`
}

// Cluster holds the bootstrap settings of the metadata shard.
type Cluster struct {
	// ID separates clusters; it becomes dragonboat's DeploymentID.
	ID uint64 `koanf:"id" help:"Cluster ID (>= 1); nodes of different clusters refuse to talk to each other."`
	// Bootstrap is true on the nodes that form a new cluster and false on
	// nodes that join one through member-add.
	Bootstrap bool `koanf:"bootstrap" help:"true to form a new cluster from initial_members; false to join an existing one through member-add."`
	// InitialMembers lists "ID=HOST:RAFTPORT" entries; see Members.
	InitialMembers []string `koanf:"initial_members" help:"Members of a new cluster as \"ID=HOST:RAFTPORT\" entries; must include node.id. Empty with bootstrap=true means a single-node cluster; must be empty with bootstrap=false."`
}

// Network holds addresses and TLS.
type Network struct {
	// APIAddr is the listen address of the Connect/HTTP API.
	APIAddr string `koanf:"api_addr" help:"API listen address HOST:PORT (etcd v3 API, PD, FlareDB, /metrics, /readyz)."`
	// RaftAddr is dragonboat's raft address.
	RaftAddr string `koanf:"raft_addr" help:"Raft listen address HOST:PORT for peer traffic (mTLS when TLS is on). A store-only node without one uses its API host and API port + 1."`
	// GossipAddr is reserved: dragonboat's gossip is unencrypted, so
	// centra keeps it off.
	GossipAddr string `koanf:"gossip_addr" help:"Reserved for a future encrypted node registry; accepted and validated but unused (gossip stays off)."`
	// EnablePprof mounts net/http/pprof on the API listener.
	EnablePprof bool `koanf:"enable_pprof" help:"Serve Go's profiler at /debug/pprof/ on the API listener (etcd's --enable-pprof); off by default, it exposes internals to every API client."`
	// TLS is the node's certificate for the API and raft.
	TLS TLS `koanf:"tls"`
}

// TLS names PEM files. All three files are set or none.
type TLS struct {
	// CertFile is the node certificate (PEM).
	CertFile string `koanf:"cert_file" help:"PEM certificate of this node (needs serverAuth and clientAuth usages)."`
	// KeyFile is the node's private key (PEM).
	KeyFile string `koanf:"key_file" help:"PEM private key of cert_file; keep it mode 0600."`
	// CAFile is the CA bundle that peers and clients are verified against.
	CAFile string `koanf:"ca_file" help:"PEM CA certificate that signs every node and client certificate."`
	// RequireClientCert makes the API refuse clients without a certificate
	// signed by CAFile. Raft always requires one.
	RequireClientCert bool `koanf:"require_client_cert" help:"Refuse API clients without a certificate signed by ca_file (raft always requires one)."`
}

// Enabled reports whether TLS is configured, that is whether any of the
// files is set. Validate requires all three files then.
func (t TLS) Enabled() bool {
	return t.CertFile != "" || t.KeyFile != "" || t.CAFile != ""
}

// Storage tunes pebble. The keys keep the runbooks' RocksDB names;
// doc.go and Storage.PebbleOptions describe the mapping.
type Storage struct {
	// DataDir holds raft/ (dragonboat) and state/ (pebble).
	DataDir string `koanf:"data_dir" help:"Data directory; holds raft/ (dragonboat log) and state/ (pebble)."`
	// WriteBufferSize is the memtable size in bytes.
	WriteBufferSize uint64 `koanf:"write_buffer_size" help:"Memtable size in bytes (pebble MemTableSize), 1 MiB to 4 GiB-1."`
	// MaxWriteBufferNumber is how many memtables may queue before writes
	// stop.
	MaxWriteBufferNumber int `koanf:"max_write_buffer_number" help:"Memtables that may queue before writes stall (pebble MemTableStopWritesThreshold), >= 2."`
	// BlockCacheSize is the block cache size in bytes.
	BlockCacheSize uint64 `koanf:"block_cache_size" help:"Block cache size in bytes (pebble CacheSize), >= 1 MiB."`
	// MaxOpenFiles bounds the open sstables.
	MaxOpenFiles int `koanf:"max_open_files" help:"Soft limit on open files (pebble MaxOpenFiles), >= 64."`
	// BloomFilterBitsPerKey sizes bloom filters; 0 disables them.
	BloomFilterBitsPerKey int `koanf:"bloom_filter_bits_per_key" help:"Bloom filter bits per key on every level, 0 to 64; 0 disables bloom filters."`
	// Level0FileNumCompactionTrigger starts L0 compactions.
	Level0FileNumCompactionTrigger int `koanf:"level0_file_num_compaction_trigger" help:"L0 read amplification that triggers a compaction (pebble L0CompactionThreshold), 1 to 100."`
	// MaxBackgroundCompactions bounds concurrent compactions.
	MaxBackgroundCompactions int `koanf:"max_background_compactions" help:"Maximum concurrent compactions (upper bound of pebble CompactionConcurrencyRange), 1 to 64."`
	// MaxBackgroundFlushes is accepted for compatibility; pebble flushes
	// one memtable at a time.
	MaxBackgroundFlushes int `koanf:"max_background_flushes" help:"Accepted for RocksDB compatibility, 1 to 64; pebble flushes one memtable at a time, so it has no effect."`
	// UseDirectIOForFlushAndCompaction is accepted for compatibility;
	// pebble has no O_DIRECT mode.
	UseDirectIOForFlushAndCompaction bool `koanf:"use_direct_io_for_flush_and_compaction" help:"Accepted for RocksDB compatibility; pebble has no direct I/O, so true only logs a warning."`
	// SlowCompactionMs is the compaction duration from which the state DB
	// logs "Compaction is slow, duration=...".
	SlowCompactionMs uint64 `koanf:"slow_compaction_ms" help:"Compactions of the state DB lasting at least this many milliseconds are logged at WARN as 'Compaction is slow, duration=...' (the runbooks' line), 1 to 3600000."`
	// QuotaBackendBytes is etcd's --quota-backend-bytes for Chainfire's
	// data; 0 disables the quota.
	QuotaBackendBytes uint64 `koanf:"quota_backend_bytes" help:"Space quota of Chainfire's data on this node in bytes (etcd's --quota-backend-bytes, default 2 GiB; 0 disables it). Beyond it the NOSPACE alarm is raised cluster-wide and writes fail with 'etcdserver: mvcc: database space exceeded' until space is freed (compact, defrag) and the alarm disarmed."`
	// MinFreeBytes is the free space on the data directory's filesystem
	// below which writes that add data are refused (0 disables the guard).
	MinFreeBytes uint64 `koanf:"min_free_bytes" help:"Free bytes on the data directory's filesystem below which writes that add data are refused (default 1 GiB; 0 disables): Chainfire raises the NOSPACE alarm ('etcdserver: mvcc: database space exceeded'), FlareDB refuses puts and CAS naming the directory; both resume at 1.25 times this value. Keeps pebble and the raft log from hitting ENOSPC, which stops the process."`
}

// Region tunes how a store splits the FlareDB regions it leads. The
// defaults are TiKV's: a region over 144 MiB or 1.44M keys is split into
// pieces of 96 MiB or 960k keys.
type Region struct {
	// MaxSize is the approximate size (keys + values, bytes) above which a
	// region is split.
	MaxSize uint64 `koanf:"max_size" help:"Split a region once its keys and values exceed this many bytes (TiKV region-max-size)."`
	// SplitSize is the size of the pieces a split cuts off.
	SplitSize uint64 `koanf:"split_size" help:"Size in bytes of the pieces a region split cuts off (TiKV region-split-size); at most max_size."`
	// MaxKeys is the key count above which a region is split.
	MaxKeys uint64 `koanf:"max_keys" help:"Split a region once it holds more keys than this (TiKV region-max-keys)."`
	// SplitKeys is the key count of the pieces a split cuts off.
	SplitKeys uint64 `koanf:"split_keys" help:"Keys in the pieces a region split cuts off (TiKV region-split-keys); at most max_keys."`
	// SplitCheckIntervalMs is how often a leader checks its regions.
	SplitCheckIntervalMs uint64 `koanf:"split_check_interval_ms" help:"Milliseconds between split checks of the regions this store leads, 10 to 3600000."`
	// HeartbeatIntervalMs is how often a leader reports its regions to PD.
	HeartbeatIntervalMs uint64 `koanf:"heartbeat_interval_ms" help:"Milliseconds between region heartbeats to PD (also sent at once on leader change and split), 100 to 3600000."`
	// StoreHeartbeatIntervalMs is how often a store reports itself to PD.
	StoreHeartbeatIntervalMs uint64 `koanf:"store_heartbeat_interval_ms" help:"Milliseconds between this store's heartbeats to PD (TiKV pd-store-heartbeat-tick-interval, 10 s; also sent at once when a replica first has data), 100 to 3600000. PD shows a store Disconnected after 20 s without one, so keep it well below that."`
	// PeerCheckIntervalMs is how often a store compares its replicas with
	// PD's regions (starts added or skipped replicas, destroys removed ones).
	PeerCheckIntervalMs uint64 `koanf:"peer_check_interval_ms" help:"Milliseconds between checks of this store's replicas against PD's regions (start new replicas, destroy removed ones), 100 to 3600000."`
	// MaxSnapshotSending and MaxSnapshotReceiving cap the region snapshot
	// streams a store sends and receives at once.
	MaxSnapshotSending   uint64 `koanf:"max_snapshot_sending" help:"Region snapshots this store streams to new or lagging replicas at once, 1 to 128."`
	MaxSnapshotReceiving uint64 `koanf:"max_snapshot_receiving" help:"Region snapshots this store applies at once, 1 to 128."`
}

// Raft tunes dragonboat; doc.go describes the mapping.
type Raft struct {
	// Role is how this node joins the metadata shard: voter or learner.
	Role string `koanf:"role" help:"voter or learner; informational: a joining node learns its role from the cluster (member-add --learner), as an etcd member does."`
	// TickIntervalMs is one raft tick (dragonboat RTTMillisecond).
	TickIntervalMs uint64 `koanf:"tick_interval_ms" help:"Raft tick in milliseconds (dragonboat RTTMillisecond), 1 to 10000."`
	// ElectionTicks is the election timeout in ticks.
	ElectionTicks uint64 `koanf:"election_ticks" help:"Election timeout in ticks (dragonboat ElectionRTT); must be > 2 * heartbeat_ticks."`
	// HeartbeatTicks is the heartbeat interval in ticks.
	HeartbeatTicks uint64 `koanf:"heartbeat_ticks" help:"Heartbeat interval in ticks (dragonboat HeartbeatRTT), >= 1."`
	// SnapshotEntries is how many applied entries trigger a snapshot.
	SnapshotEntries uint64 `koanf:"snapshot_entries" help:"Applied entries between snapshots that allow log compaction (dragonboat SnapshotEntries), >= 1."`
	// CompactionOverhead is how many entries survive a log compaction.
	CompactionOverhead uint64 `koanf:"compaction_overhead" help:"Log entries kept after a compaction for slow followers (dragonboat CompactionOverhead)."`
	// MaxInMemLogSize bounds the in-memory raft log in bytes; 0 = no bound.
	MaxInMemLogSize uint64 `koanf:"max_in_mem_log_size" help:"Bytes of in-memory raft log before proposals are refused (dragonboat MaxInMemLogSize); 0 means unbounded, else >= 1 MiB."`
}

// Member is one parsed cluster.initial_members entry.
type Member struct {
	// ID is the node ID.
	ID uint64
	// Addr is the raft address HOST:PORT.
	Addr string
}

// Default returns the zero-config development setup: a single node that is
// both control plane and store, bootstrapping a one-member cluster on
// loopback with data in ./centra-data.
func Default() Config {
	return Config{
		Node:    Node{ID: 1, Name: "centra-1", Role: RoleControlPlane + "," + RoleStore},
		Cluster: Cluster{ID: 1, Bootstrap: true},
		Network: Network{
			APIAddr:    "127.0.0.1:2379",
			RaftAddr:   "127.0.0.1:2380",
			GossipAddr: "127.0.0.1:2381",
		},
		Storage: Storage{
			DataDir:                        "./centra-data",
			WriteBufferSize:                64 << 20,
			MaxWriteBufferNumber:           2,
			BlockCacheSize:                 256 << 20,
			MaxOpenFiles:                   1000,
			BloomFilterBitsPerKey:          10,
			Level0FileNumCompactionTrigger: 4,
			MaxBackgroundCompactions:       4,
			MaxBackgroundFlushes:           2,
			SlowCompactionMs:               10000,
			QuotaBackendBytes:              2 << 30,
			MinFreeBytes:                   1 << 30,
		},
		Raft: Raft{
			Role:               RaftVoter,
			TickIntervalMs:     100,
			ElectionTicks:      6,
			HeartbeatTicks:     1,
			SnapshotEntries:    10000,
			CompactionOverhead: 5000,
			MaxInMemLogSize:    256 << 20,
		},
		Region: Region{
			MaxSize:                  144 << 20,
			SplitSize:                96 << 20,
			MaxKeys:                  1_440_000,
			SplitKeys:                960_000,
			SplitCheckIntervalMs:     10_000,
			HeartbeatIntervalMs:      10_000,
			StoreHeartbeatIntervalMs: 10_000,
			PeerCheckIntervalMs:      2_000,
			MaxSnapshotSending:       4,
			MaxSnapshotReceiving:     4,
		},
		Timeseries: defaultTimeseries(),
		LogLevel:   "info",
	}
}

// Roles returns the roles listed in node.role, trimmed, in order.
func (c *Config) Roles() []string {
	var roles []string
	for r := range strings.SplitSeq(c.Node.Role, ",") {
		if r = strings.TrimSpace(r); r != "" {
			roles = append(roles, r)
		}
	}
	return roles
}

// HasRole reports whether node.role lists r (RoleControlPlane or
// RoleStore).
func (c *Config) HasRole(r string) bool {
	for _, have := range c.Roles() {
		if have == r {
			return true
		}
	}
	return false
}

// EffectiveDataDir returns storage.data_dir, or the top-level data_dir of
// flaredb.toml when storage.data_dir is empty.
func (c *Config) EffectiveDataDir() string {
	if c.Storage.DataDir != "" {
		return c.Storage.DataDir
	}
	return c.DataDir
}

// StateDir is the pebble directory holding every state machine of this node.
func (c *Config) StateDir() string {
	return filepath.Join(c.EffectiveDataDir(), "state")
}

// RaftDir is dragonboat's NodeHostDir (its log DB).
func (c *Config) RaftDir() string {
	return filepath.Join(c.EffectiveDataDir(), "raft")
}

// EffectiveStoreID returns store_id, or node.id when store_id is 0.
func (c *Config) EffectiveStoreID() uint64 {
	if c.StoreID != 0 {
		return c.StoreID
	}
	return c.Node.ID
}

// Source describes where key got its value: "file PATH",
// "environment variable CENTRA_X", "flag --x", or "default".
func (c *Config) Source(key string) string {
	if s, ok := c.sources[key]; ok {
		return s
	}
	return "default"
}

// Members parses cluster.initial_members. Each entry is "ID=HOST:PORT" with
// ID >= 1; errors name the bad entry. It checks syntax only; Validate also
// checks uniqueness and that node.id is listed.
func (c *Config) Members() ([]Member, error) {
	members := make([]Member, 0, len(c.Cluster.InitialMembers))
	for i, entry := range c.Cluster.InitialMembers {
		m, err := parseMember(entry)
		if err != nil {
			return nil, c.keyError("cluster.initial_members", ErrInvalidValue,
				"entry %d %q: %v; write entries as \"ID=HOST:PORT\", e.g. \"1=10.0.0.1:2380\"", i, entry, err)
		}
		members = append(members, m)
	}
	return members, nil
}

func parseMember(entry string) (Member, error) {
	idText, addr, ok := strings.Cut(strings.TrimSpace(entry), "=")
	if !ok {
		return Member{}, fmt.Errorf("missing \"=\"")
	}
	id, err := parseID(idText)
	if err != nil {
		return Member{}, err
	}
	if err := checkHostPort(addr, true); err != nil {
		return Member{}, err
	}
	return Member{ID: id, Addr: addr}, nil
}

// BootstrapMembers returns the members a bootstrapping node starts the
// metadata shard with: the parsed initial_members, or this node alone at
// network.raft_addr when the list is empty. It returns nil when
// cluster.bootstrap is false (the node joins through member-add).
func (c *Config) BootstrapMembers() ([]Member, error) {
	if !c.Cluster.Bootstrap {
		return nil, nil
	}
	if len(c.Cluster.InitialMembers) == 0 {
		return []Member{{ID: c.Node.ID, Addr: c.Network.RaftAddr}}, nil
	}
	return c.Members()
}
