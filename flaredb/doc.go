// Package flaredb is centra's region-sharded store. This part is the store
// agent: a process with the store role registers with the placement driver
// (PD) under its store_id, keeps that identity in its data directory, and
// heartbeats its capacity and load so PD can track its state (Up,
// Disconnected, Down, Offline, Tombstone). Regions and their KV API build on
// it.
package flaredb
