package raftnode

import (
	"fmt"
	"log/slog"

	"github.com/lni/dragonboat/v4/config"
	"github.com/prometheus/client_golang/prometheus"
)

// MetadataShardID is raft "group 0": the shard holding Chainfire's KV and
// PD's state. Shard ID 0 is legal in dragonboat; replica IDs start at 1.
const MetadataShardID uint64 = 0

// Defaults applied by New to zero Config fields.
const (
	DefaultRTTMillisecond     uint64 = 100
	DefaultElectionRTT        uint64 = 6
	DefaultHeartbeatRTT       uint64 = 1
	DefaultSnapshotEntries    uint64 = 10000
	DefaultCompactionOverhead uint64 = 5000
	DefaultMaxInMemLogSize    uint64 = 64 << 20
)

// minMaxInMemLogSize keeps MaxInMemLogSize well above dragonboat's floor and
// above any sane single proposal.
const minMaxInMemLogSize uint64 = 1 << 20

// PeerTLS names the PEM files used for mutual TLS on the raft port
// (dragonboat's MutualTLS). Certificates need IP/DNS SANs matching the raft
// addresses and both serverAuth and clientAuth key usages; any certificate
// signed by CAFile is accepted, so use a CA dedicated to the raft mesh.
type PeerTLS struct {
	CAFile   string
	CertFile string
	KeyFile  string
}

// LogDBPreset selects dragonboat's LogDB memory preset. The LogDB has 16
// pebble partitions; the worst-case memory is 16 × 4 write buffers. Switching
// presets on an existing NodeHostDir is allowed (only buffer sizes change).
type LogDBPreset int

const (
	// LogDBTiny uses 4 MiB write buffers: at most about 256 MiB of memory and
	// about 9 MiB of preallocated WAL per partition. The default.
	LogDBTiny LogDBPreset = iota
	// LogDBSmall uses 16 MiB write buffers: at most about 1 GiB of memory.
	LogDBSmall
)

// Config configures a Node. Zero numeric fields take the Default* values.
type Config struct {
	// NodeHostDir is dragonboat's data directory, <data_dir>/raft. It is
	// pinned to RaftAddress, the hostname and DeploymentID on first start.
	NodeHostDir string
	// RaftAddress is the host:port peers dial, exactly as written in
	// initial_members. It must stay stable for the life of NodeHostDir.
	RaftAddress string
	// ListenAddress is the optional bind address (e.g. 0.0.0.0:2380);
	// empty means RaftAddress.
	ListenAddress string
	// DeploymentID is the cluster id; NodeHosts with different IDs ignore
	// each other's messages. 0 means dragonboat's unmanaged default.
	DeploymentID uint64
	// RTTMillisecond is one raft tick ([raft] tick_interval_ms).
	RTTMillisecond uint64
	// ElectionRTT is the election timeout in ticks; the actual timeout is
	// randomized in [ElectionRTT, 2×ElectionRTT). Must exceed 2×HeartbeatRTT.
	ElectionRTT uint64
	// HeartbeatRTT is the heartbeat interval in ticks.
	HeartbeatRTT uint64
	// SnapshotEntries is how many applied entries trigger a (metadata-only,
	// for on-disk state machines) snapshot and raft log compaction.
	SnapshotEntries uint64
	// CompactionOverhead is how many entries are kept after a log compaction
	// for lagging followers before they need a streamed full snapshot.
	CompactionOverhead uint64
	// MaxInMemLogSize bounds unapplied in-memory raft log bytes per shard;
	// proposals beyond it fail with dragonboat's ErrSystemBusy and are
	// retried. It must exceed the largest proposal.
	MaxInMemLogSize uint64
	// LogDB selects the LogDB memory preset.
	LogDB LogDBPreset
	// TLS enables mutual TLS on the raft port; nil means plaintext.
	TLS *PeerTLS
	// Logger receives the Node's and dragonboat's logs. Required.
	Logger *slog.Logger
	// LogLevel is the level the Node logs at. dragonboat's chatty packages
	// are raised to at least WARN ("rsm", "transport") or ERROR ("raft")
	// unless LogLevel is debug or lower.
	LogLevel slog.Level
	// NetworkLogComponent is the component of the raft transport's lines
	// ("Failed to connect to peer, addr=..."); empty means
	// "chainfire_network". Shard records are "chainfire_raft" for the
	// metadata shard and "flaredb_raft" for the others.
	NetworkLogComponent string
	// Registerer, when set, receives the Node's metrics (raftnode_*). Use the
	// per-process registry, never the global one.
	Registerer prometheus.Registerer

	// cut, set by tests only, drops the raft message batches this node
	// sends to a target it returns true for, as a partition would.
	cut func(target string) bool
	// loseDeferredCommits, set by tests only, makes Close drop the commit
	// indexes the LogDB deferred (logdb.go) instead of writing them, as a
	// crash would.
	loseDeferredCommits bool
}

// withDefaults returns cfg with the zero numeric fields filled in.
func (cfg Config) withDefaults() Config {
	setDefault := func(v *uint64, d uint64) {
		if *v == 0 {
			*v = d
		}
	}
	setDefault(&cfg.RTTMillisecond, DefaultRTTMillisecond)
	setDefault(&cfg.ElectionRTT, DefaultElectionRTT)
	setDefault(&cfg.HeartbeatRTT, DefaultHeartbeatRTT)
	setDefault(&cfg.SnapshotEntries, DefaultSnapshotEntries)
	setDefault(&cfg.CompactionOverhead, DefaultCompactionOverhead)
	setDefault(&cfg.MaxInMemLogSize, DefaultMaxInMemLogSize)
	if cfg.NetworkLogComponent == "" {
		cfg.NetworkLogComponent = "chainfire_network"
	}
	return cfg
}

// validate checks a defaulted Config without touching the disk or network.
func (cfg Config) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	if cfg.Logger == nil {
		return bad("Logger is nil; pass the process *slog.Logger")
	}
	if cfg.NodeHostDir == "" {
		return bad("NodeHostDir is empty; set it to <data_dir>/raft")
	}
	if !config.IsValidAddress(cfg.RaftAddress) {
		return bad("RaftAddress %q is not host:port; use the address peers dial, e.g. 10.0.0.1:2380", cfg.RaftAddress)
	}
	if cfg.ListenAddress != "" && !config.IsValidAddress(cfg.ListenAddress) {
		return bad("ListenAddress %q is not host:port; use e.g. 0.0.0.0:2380 or leave it empty to bind RaftAddress", cfg.ListenAddress)
	}
	if cfg.ElectionRTT <= 2*cfg.HeartbeatRTT {
		return bad("ElectionRTT (%d) must be more than twice HeartbeatRTT (%d); the usual choice is ElectionRTT=6..10, HeartbeatRTT=1",
			cfg.ElectionRTT, cfg.HeartbeatRTT)
	}
	if cfg.MaxInMemLogSize < minMaxInMemLogSize {
		return bad("MaxInMemLogSize (%d) is below %d bytes; raise it above the largest proposal", cfg.MaxInMemLogSize, minMaxInMemLogSize)
	}
	if cfg.LogDB != LogDBTiny && cfg.LogDB != LogDBSmall {
		return bad("LogDB preset %d is unknown; use LogDBTiny or LogDBSmall", cfg.LogDB)
	}
	if t := cfg.TLS; t != nil && (t.CAFile == "" || t.CertFile == "" || t.KeyFile == "") {
		return bad("TLS needs CAFile, CertFile and KeyFile (got %q, %q, %q); set all three or set TLS to nil for plaintext",
			t.CAFile, t.CertFile, t.KeyFile)
	}
	return nil
}

// nodeHostConfig builds dragonboat's NodeHostConfig from a valid Config.
func (cfg Config) nodeHostConfig() config.NodeHostConfig {
	nhc := config.NodeHostConfig{
		DeploymentID:   cfg.DeploymentID,
		NodeHostDir:    cfg.NodeHostDir,
		RTTMillisecond: cfg.RTTMillisecond,
		RaftAddress:    cfg.RaftAddress,
		ListenAddress:  cfg.ListenAddress,
	}
	if cfg.TLS != nil {
		nhc.MutualTLS = true
		nhc.CAFile = cfg.TLS.CAFile
		nhc.CertFile = cfg.TLS.CertFile
		nhc.KeyFile = cfg.TLS.KeyFile
	}
	switch cfg.LogDB {
	case LogDBSmall:
		nhc.Expert.LogDB = config.GetSmallMemLogDBConfig()
	default:
		nhc.Expert.LogDB = config.GetTinyMemLogDBConfig()
	}
	return nhc
}

// ShardConfig describes one replica to start with Node.StartShard.
type ShardConfig struct {
	// ShardID is the raft group; MetadataShardID (0) is legal.
	ShardID uint64
	// ReplicaID identifies this replica in the shard; it must be >= 1 and a
	// removed ID can never be reused.
	ReplicaID uint64
	// InitialMembers maps replica ID to raft address for bootstrapping a new
	// shard and must include this replica at the Node's RaftAddress. Leave it
	// empty when joining (Join) or restarting.
	InitialMembers map[uint64]string
	// Join starts a replica that was already added to an existing shard with
	// AddReplica or AddNonVoting.
	Join bool
	// NonVoting starts the replica as a non-voting member (learner). After
	// AddReplica promotes it, the Node snapshots it in the background; until
	// that finished ("Snapshot taken after promotion to voter"), restart it
	// with NonVoting still set: dragonboat panics otherwise (see DESIGN.md).
	NonVoting bool
	// StateAppliedIndex is the applied index the state DB holds for this
	// shard (ReadAppliedIndex). When it is non-zero and NodeHostDir has no
	// raft data for the replica, StartShard refuses to bootstrap or join:
	// the raft directory was wiped or replaced and dragonboat would panic.
	StateAppliedIndex uint64
}

// replicaConfig builds dragonboat's per-replica config.
func (cfg Config) replicaConfig(sc ShardConfig) config.Config {
	return config.Config{
		ShardID:                 sc.ShardID,
		ReplicaID:               sc.ReplicaID,
		CheckQuorum:             true,
		PreVote:                 true,
		ElectionRTT:             cfg.ElectionRTT,
		HeartbeatRTT:            cfg.HeartbeatRTT,
		SnapshotEntries:         cfg.SnapshotEntries,
		CompactionOverhead:      cfg.CompactionOverhead,
		OrderedConfigChange:     true,
		MaxInMemLogSize:         cfg.MaxInMemLogSize,
		SnapshotCompressionType: config.Snappy,
		IsNonVoting:             sc.NonVoting,
	}
}

// validateShard checks sc against the node's address before dragonboat sees
// it: dragonboat panics on some invalid input instead of returning errors.
func (cfg Config) validateShard(sc ShardConfig) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: shard %d replica %d: %s", ErrInvalidShardConfig, sc.ShardID, sc.ReplicaID, fmt.Sprintf(format, args...))
	}
	if sc.ReplicaID == 0 {
		return bad("ReplicaID is 0; replica IDs start at 1 (allocate them from a counter and never reuse a removed one)")
	}
	if sc.Join && len(sc.InitialMembers) > 0 {
		return bad("Join is set together with InitialMembers; a joining replica gets its members from the shard, leave InitialMembers empty")
	}
	if sc.NonVoting && len(sc.InitialMembers) > 0 {
		return bad("NonVoting is set together with InitialMembers; initial members are voters, add a learner with AddNonVoting and start it with Join")
	}
	if len(sc.InitialMembers) == 0 {
		return nil
	}
	self, ok := sc.InitialMembers[sc.ReplicaID]
	if !ok {
		return bad("InitialMembers %v does not contain this replica; add %d: %q", sc.InitialMembers, sc.ReplicaID, cfg.RaftAddress)
	}
	if self != cfg.RaftAddress {
		return bad("InitialMembers lists this replica at %q but the node's RaftAddress is %q; they must be equal", self, cfg.RaftAddress)
	}
	seen := make(map[string]uint64, len(sc.InitialMembers))
	for id, addr := range sc.InitialMembers {
		if id == 0 {
			return bad("InitialMembers contains replica ID 0; replica IDs start at 1")
		}
		if !config.IsValidAddress(addr) {
			return bad("InitialMembers[%d] = %q is not host:port", id, addr)
		}
		if other, dup := seen[addr]; dup {
			return bad("InitialMembers gives replicas %d and %d the same address %q; every replica needs its own", min(id, other), max(id, other), addr)
		}
		seen[addr] = id
	}
	return nil
}
