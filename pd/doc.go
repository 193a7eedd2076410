// Package pd is centra's placement driver: the control plane of FlareDB.
//
// It keeps the cluster's store and region metadata, registers stores and
// tracks their heartbeats and states (Up, Disconnected, Down, Offline,
// Tombstone, as TiKV PD does), records regions from their leaders'
// heartbeats, allocates cluster-unique IDs, and serves TiKV PD's HTTP API
// under /pd/api/v1 as well as the Connect service centra.pd.v1.PDService.
//
// All durable state lives in the metadata shard's system keyspace, reached
// through chainfire/client.SystemKV and written with compare-and-swap; the
// layout is described in DESIGN.md. Decisions are made by the node that
// leads the metadata shard: followers forward HTTP requests to the leader
// and refuse Connect calls with Unavailable naming the leader, which
// pd/client follows. The leader loads that state once per raft term and
// serves heartbeats and lookups from memory, with no raft read per call
// (DESIGN.md, "Leadership and staleness").
//
// The leader also schedules: its patrol loop runs the replica checker and
// the enabled schedulers of package schedule over a snapshot of the
// cluster, and each region heartbeat's response carries the current step
// of the region's operator (DESIGN.md, "Scheduling").
//
// Lifecycle: New validates the configuration and does no I/O; Start begins
// the background store checks and the scheduling patrol; Close stops them.
package pd
