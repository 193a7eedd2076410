// Package chainfire is centra's etcd-compatible replicated key-value store.
//
// It is the state machine of the metadata shard (dragonboat shard 0, see
// shared/raftnode) plus the etcd v3 gRPC services on top of it (KV, Watch,
// Lease, Maintenance, Cluster), served through
// connect-go so go.etcd.io/etcd/client/v3 and etcdctl work unchanged.
//
// Writes (Put, DeleteRange, Txn, Compact, LeaseGrant/Revoke, lease expiry,
// member attributes) are raft commands (gen/centra/chainfire/raftcmd/v1);
// reads are linearizable (ReadIndex) unless the request is serializable.
// Watches and leases follow etcd's semantics; see DESIGN.md for the storage
// layout, the apply contract and why things are the way they are.
package chainfire
