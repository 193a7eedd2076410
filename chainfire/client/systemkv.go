// Package client holds what other centra components may use of Chainfire.
//
// SystemKV is the metadata shard's system keyspace: the placement driver
// stores its state (stores, regions, ID allocator, schedule config) there,
// through raft, invisible to etcd clients. pd depends on this interface only
// (ARCHITECTURE.md's dependency rules); *chainfire.Server implements it.
package client

import (
	"context"
	"errors"
)

// ErrNotLeader is returned by leader-only calls on a follower; LeaderURL
// says where to go instead.
var ErrNotLeader = errors.New("chainfire: not the leader of the metadata shard")

// SysKV is one system key with its value and version (1 after the first
// write, +1 on every write; 0 means the key does not exist).
type SysKV struct {
	Key     []byte
	Value   []byte
	Version uint64
}

// SysCompare requires Key to be at Version (0: must not exist) for a Txn to
// apply.
type SysCompare struct {
	Key     []byte
	Version uint64
}

// SystemKV is a small linearizable key-value store with per-key versions and
// compare-and-swap transactions, replicated by the metadata shard.
type SystemKV interface {
	// Get returns the key's value and version (version 0 when absent).
	Get(ctx context.Context, key []byte) (SysKV, error)
	// List returns every key with the prefix, in key order.
	List(ctx context.Context, prefix []byte) ([]SysKV, error)
	// Txn applies puts and deletes atomically if every compare holds and
	// reports whether it applied.
	Txn(ctx context.Context, cmps []SysCompare, puts []SysKV, deletes [][]byte) (bool, error)
	// IsLeader reports whether this process leads the metadata shard (and so
	// runs the placement driver's decisions).
	IsLeader() bool
	// LeaderTerm returns the raft term in which this process leads the
	// metadata shard, and false when it does not lead. It reads the local
	// replica's view (no quorum round): within one term there is only one
	// leader, so a caller that loaded state through the shard in term T and
	// still sees T knows nobody else wrote as leader since (see
	// pd/DESIGN.md "Leadership and staleness" for what bounds a deposed
	// leader's view).
	LeaderTerm() (term uint64, leading bool)
	// LeaderURL returns the API URL of the metadata shard's leader.
	LeaderURL(ctx context.Context) (string, error)
}
