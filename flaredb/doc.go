// Package flaredb is centra's region-sharded store (TiKV's design on
// dragonboat and pebble): a process with the store role registers with the
// placement driver (PD) under its store_id, hosts replicas of the regions
// PD and splits assign it (each region its own raft shard over a key range
// of the store's pebble DB), serves the KV API (centra.flaredb.v1) with
// strong or eventual namespaces, splits the regions it leads as they grow,
// and reports stores and regions to PD. DESIGN.md has the layout and the
// raft log format; flaredb/client is the Go client.
package flaredb
