package raftnode

import "errors"

// Sentinel errors. Returned errors wrap them with the shard, the operation
// and a hint on how to fix the cause; test them with errors.Is. Errors that
// come from dragonboat are wrapped too, so errors.Is(err, dragonboat.ErrX)
// keeps working.
var (
	// ErrInvalidConfig reports a Config field that cannot work; the message
	// names the field and the fix.
	ErrInvalidConfig = errors.New("raftnode: invalid config")
	// ErrInvalidShardConfig reports a ShardConfig that dragonboat would
	// reject or panic on; the message names the field and the fix.
	ErrInvalidShardConfig = errors.New("raftnode: invalid shard config")
	// ErrNotStarted is returned by calls made before Node.Start succeeded.
	ErrNotStarted = errors.New("raftnode: node not started")
	// ErrClosed is returned by calls made on, or interrupted by, a closed Node.
	ErrClosed = errors.New("raftnode: node closed")
	// ErrNoDeadline is returned when a blocking call gets a context without a
	// deadline; use context.WithTimeout.
	ErrNoDeadline = errors.New("raftnode: context has no deadline")
	// ErrNoLeader is returned when a shard has had no known leader for about
	// two election timeouts, usually because no quorum of replicas is up.
	ErrNoLeader = errors.New("raftnode: no leader")
	// ErrTimeout is returned when the context expired. For proposals and
	// membership changes that were already submitted the outcome is unknown:
	// the entry may still commit.
	ErrTimeout = errors.New("raftnode: timeout")
	// ErrShardNotFound is returned for a shard that is not started on this
	// Node.
	ErrShardNotFound = errors.New("raftnode: shard not started on this node")
	// ErrInvalidMember is returned for a membership change that can never
	// succeed (replica ID 0, a removed replica ID, a duplicate address, a
	// voter turned non-voting); the message names the fix.
	ErrInvalidMember = errors.New("raftnode: invalid membership change")
	// ErrRejected is returned when raft rejected a membership change (stale
	// config change ID, a removed replica ID, or a duplicate address).
	ErrRejected = errors.New("raftnode: request rejected")
	// ErrStateMismatch is returned when the raft data (NodeHostDir) and the
	// state machine data (state DB) of a replica do not belong together, a
	// case dragonboat would panic on.
	ErrStateMismatch = errors.New("raftnode: raft data and state machine data do not match")
	// ErrCorruptSnapshot is returned when a snapshot stream fails its
	// checksum or framing checks; the local state is left untouched.
	ErrCorruptSnapshot = errors.New("raftnode: corrupt snapshot stream")
	// ErrUnknownFormat is returned when on-disk metadata or a snapshot stream
	// has a version this binary cannot read.
	ErrUnknownFormat = errors.New("raftnode: unknown data format version")
)
