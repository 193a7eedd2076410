// Package config is the typed configuration of `centra serve`: defaults,
// loading, validation and rendering.
//
// # Sources
//
// Load layers four sources, each overriding the one before:
//
//  1. Default(): a single-node dev cluster (control_plane,store) on
//     127.0.0.1:2379/2380/2381 with data in ./centra-data.
//  2. The TOML file (--config or CENTRA_CONFIG).
//  3. CENTRA_* environment variables.
//  4. The flags the user set.
//
// Every key has one flag and one environment variable derived from its
// name: network.api_addr is --network-api-addr and CENTRA_NETWORK_API_ADDR.
// Keys lists them all with their help text; the CLI generates its flags from
// it. Lists are written "a,b" and tables "k=v,k2=v2" in variables and
// flags. Unknown keys, variables and flags are errors that suggest the
// closest known key.
//
// Load accepts the runbooks' files unchanged: chainfire.toml ([node]
// [cluster] [network] [network.tls] [storage] [raft]) and flaredb.toml
// (store_id, addr, data_dir, pd_addr, log_level, [tls], [peers],
// [namespace_modes], [storage]). flaredb.toml's addr, data_dir and [tls]
// are aliases of network.api_addr, storage.data_dir and [network.tls].
// Validate checks the result; TOML renders it back (for `centra config
// check`).
//
// log_format is "text" (the runbooks' "LEVEL component: message, k=v"
// lines), "json", or empty: text when stderr is journald's stream (systemd
// sets JOURNAL_STREAM), colourised text on a terminal, JSON otherwise. Like
// every key it has a flag (--log-format) and a variable (CENTRA_LOG_FORMAT).
//
// Without node.role, a file with flaredb.toml keys makes the node a store,
// whatever else it holds ([network] raft_addr, [raft], [storage] serve a
// store too); one that also holds [cluster] could be either, and Load
// refuses it asking for [node] role. The inference is node.role's source,
// which `centra config check` prints on its first line.
//
// # [storage] keys and pebble/v2
//
// The [storage] keys keep the RocksDB names the runbooks use.
// Storage.PebbleOptions applies them to pebble/v2 as follows:
//
//   - write_buffer_size (default 64 MiB) -> Options.MemTableSize. pebble
//     starts with a small memtable and doubles it up to this size. pebble
//     requires it below 4 GiB.
//   - max_write_buffer_number (default 2) ->
//     Options.MemTableStopWritesThreshold: writes stall once the queued
//     memtables reach this many times MemTableSize, as RocksDB stalls at
//     this many memtables. pebble requires at least 2.
//   - block_cache_size (default 256 MiB) -> Options.CacheSize; pebble.Open
//     creates the cache and releases it on Close.
//   - max_open_files (default 1000) -> Options.MaxOpenFiles, a soft limit
//     that sizes the table cache (pebble keeps at least 64 tables open).
//   - bloom_filter_bits_per_key (default 10) -> a bloom.FilterPolicy with
//     that many bits per key in Options.Levels[i].FilterPolicy for every
//     level; 0 leaves pebble's default of no filters.
//   - level0_file_num_compaction_trigger (default 4) ->
//     Options.L0CompactionThreshold. RocksDB counts L0 files, which all
//     overlap, so their count is L0's read amplification; pebble measures
//     read amplification in L0 sublevels, the equivalent quantity. pebble's
//     separate L0CompactionFileThreshold (500 files) keeps its default.
//     Options.L0StopWritesThreshold is 12 (pebble's default) or 3 times the
//     trigger when that is larger, because pebble requires it to be at
//     least the trigger.
//   - max_background_compactions (default 4) ->
//     Options.CompactionConcurrencyRange returning (1, n): pebble runs one
//     compaction normally and up to n when L0 or compaction debt grows,
//     which is how RocksDB uses its background compaction slots.
//   - max_background_flushes (default 2): no equivalent. pebble flushes one
//     memtable at a time per store. The key is validated and ignored;
//     Storage.Warnings reports a non-default value so the caller can log it.
//   - use_direct_io_for_flush_and_compaction (default false): no
//     equivalent. pebble has no O_DIRECT mode. true is accepted and
//     ignored; Storage.Warnings reports it so the caller can log it.
//   - slow_compaction_ms (default 10000): no RocksDB equivalent. A state DB
//     compaction lasting at least this long is logged at WARN as
//     "Compaction is slow, duration=..." (the runbooks' line); it is passed
//     to raftnode.OpenStateDB, not to pebble.
//   - data_dir: data_dir/state is the pebble directory (StateDir) and
//     data_dir/raft is dragonboat's NodeHostDir (RaftDir).
//   - quota_backend_bytes (default 2 GiB, etcd's default; 0 disables) ->
//     chainfire.Config.QuotaBackendBytes: not a pebble option but etcd's
//     space quota over Chainfire's data (its tables plus unflushed WAL).
//     Over it the member raises the NOSPACE alarm through raft and every
//     member refuses puts, txns with a put and lease grants with etcd's
//     "etcdserver: mvcc: database space exceeded"; reads, deletes and
//     compaction work, and `etcdctl alarm disarm` clears the alarm once
//     compaction and defrag freed space.
//   - min_free_bytes (default 1 GiB; 0 disables) -> shared/diskguard: the
//     free space (statfs f_bavail, checked every second) on data_dir's
//     filesystem below which the node refuses writes that add data, so
//     that pebble and dragonboat's log never meet ENOSPC (both stop the
//     process on it). Chainfire raises this member's NOSPACE alarm (as the
//     quota does) and clears it itself once free space is back to 1.25
//     times the threshold; FlareDB region leaders refuse puts and CAS with
//     an error naming the directory and its free bytes (deletes pass),
//     and, told by PD (the store reports disk_low), when the store of any
//     replica of the region is short (flaredb/DESIGN.md).
//     1 GiB leaves room for what still gets written after the threshold:
//     the flush of both default memtables (2 x 64 MiB), compaction output,
//     raft entries in flight until the alarm commits, and received region
//     snapshots (4 at once of up to 144 MiB); TiKV reserves 5 GB for the
//     same purpose (storage.reserve-space). On small disks set it lower.
//
// # [raft] keys and dragonboat v4
//
//   - tick_interval_ms (default 100) -> NodeHostConfig.RTTMillisecond, one
//     logical tick.
//   - election_ticks (default 6) -> Config.ElectionRTT; the election
//     timeout is random in [E, 2E) ticks, 0.6-1.2 s at the defaults. Must
//     exceed 2 * heartbeat_ticks (dragonboat rejects anything else). Why 6
//     and not etcd's 10: a leader kill is followed by a new leader within
//     2 s even when the first campaign fails and a second timer must fire
//     (3E = 1.8 s); see shared/raftnode/DESIGN.md, "Election time after a
//     leader crash". Raise it where the leader's disk or CPU can stall for
//     more than half a second (each stall that long costs an election).
//   - heartbeat_ticks (default 1) -> Config.HeartbeatRTT.
//   - snapshot_entries (default 10000) -> Config.SnapshotEntries. For
//     centra's on-disk state machines this takes a cheap metadata-only
//     snapshot, calls Sync and lets dragonboat compact its log; 0 (which
//     would disable that) is rejected.
//   - compaction_overhead (default 5000) -> Config.CompactionOverhead:
//     entries kept after a log compaction so slow followers can catch up
//     without a full snapshot stream.
//   - max_in_mem_log_size (default 256 MiB) -> Config.MaxInMemLogSize; 0
//     means unbounded. Proposals get ErrSystemBusy while the in-memory log
//     is full.
//   - role (default voter) is accepted (the runbooks' configs set it) but
//     not needed: a joining node learns from the cluster whether it was
//     added as a learner (member-add --learner, etcdctl member add
//     --learner), as an etcd member does.
//
// CheckQuorum and PreVote are always on and have no key.
//
// [network] gossip_addr is validated but unused: dragonboat's gossip
// registry is unencrypted and cannot be switched off once on, so centra
// addresses replicas by raft address and keeps the port reserved.
package config
