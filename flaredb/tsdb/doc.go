// Package tsdb stores Prometheus time series on FlareDB regions and serves
// them the way Prometheus does: the remote-write receiver (1.0 and 2.0),
// remote read, and the HTTP query API with Prometheus's own PromQL engine
// over a storage.Queryable backed by FlareDB.
//
// The TSDB is a client of FlareDB (flaredb/client): series catalogue,
// inverted label index, raw samples and XOR-compressed chunks are keys of
// one namespace. DESIGN.md fixes the key layout, the durability rule (a
// write is acknowledged only after every sample committed through raft),
// compaction of raw samples into chunks, and retention.
package tsdb
