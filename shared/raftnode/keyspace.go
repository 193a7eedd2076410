package raftnode

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Key layout in the shared state DB (see DESIGN.md):
//
//	's' be64(shardID) 0x00 name  -> meta, owned by DiskStateMachine
//	's' be64(shardID) 0x01 ...   -> data, owned by the shard's Applier
const (
	shardTag      byte = 's'
	metaSubspace  byte = 0x00
	dataSubspace  byte = 0x01
	shardPrefixSz      = 1 + 8
	// metaApplied names the applied-index meta key.
	metaApplied byte = 'a'
	// appliedFormatV1 is the version byte of the applied-index value:
	// 0x01 be64(index).
	appliedFormatV1 byte = 1
)

// Keyspace is one shard's key prefix in the shared state DB: every key of
// shard S starts with 's' + be64(S). The base owns the meta subspace (the
// applied index); the Applier owns the data subspace, addressed through Key,
// Append, Bounds and Suffix.
type Keyspace struct {
	shardID uint64
	prefix  [shardPrefixSz]byte
}

// ShardKeyspace returns the keyspace of shardID.
func ShardKeyspace(shardID uint64) Keyspace {
	k := Keyspace{shardID: shardID}
	k.prefix[0] = shardTag
	binary.BigEndian.PutUint64(k.prefix[1:], shardID)
	return k
}

// ShardID returns the shard the keyspace belongs to.
func (k Keyspace) ShardID() uint64 { return k.shardID }

// Key returns the data key for suffix: prefix + 0x01 + suffix, in a new
// slice.
func (k Keyspace) Key(suffix []byte) []byte {
	return k.Append(make([]byte, 0, shardPrefixSz+1+len(suffix)), suffix)
}

// Append appends the data key for suffix to dst and returns the result, for
// callers that reuse buffers.
func (k Keyspace) Append(dst, suffix []byte) []byte {
	dst = append(dst, k.prefix[:]...)
	dst = append(dst, dataSubspace)
	return append(dst, suffix...)
}

// Bounds returns the data subspace as iterator bounds: lower inclusive,
// upper exclusive.
func (k Keyspace) Bounds() (lower, upper []byte) {
	lower = append(k.prefix[:len(k.prefix):len(k.prefix)], dataSubspace)
	upper = append(k.prefix[:len(k.prefix):len(k.prefix)], dataSubspace+1)
	return lower, upper
}

// Contains reports whether key is a data key of this keyspace.
func (k Keyspace) Contains(key []byte) bool {
	return len(key) > shardPrefixSz && bytes.Equal(key[:shardPrefixSz], k.prefix[:]) && key[shardPrefixSz] == dataSubspace
}

// Suffix strips the data prefix from key, sharing key's memory. It returns
// nil when key is not a data key of this keyspace (see Contains); the
// suffix of a data key is never nil, though it may be empty.
func (k Keyspace) Suffix(key []byte) []byte {
	if !k.Contains(key) {
		return nil
	}
	return key[shardPrefixSz+1:]
}

// ShardBounds spans every key of the shard, meta included.
func (k Keyspace) ShardBounds() (lower, upper []byte) {
	lower = k.prefix[:len(k.prefix):len(k.prefix)]
	if k.shardID == ^uint64(0) {
		return lower, []byte{shardTag + 1}
	}
	next := ShardKeyspace(k.shardID + 1)
	return lower, next.prefix[:]
}

// metaKey returns the meta key called name.
func (k Keyspace) metaKey(name byte) []byte {
	return append(k.prefix[:len(k.prefix):len(k.prefix)], metaSubspace, name)
}

// encodeApplied encodes an applied index into dst[:9].
func encodeApplied(dst *[9]byte, index uint64) []byte {
	dst[0] = appliedFormatV1
	binary.BigEndian.PutUint64(dst[1:], index)
	return dst[:]
}

// ReadAppliedIndex returns the applied index persisted for ks's shard, or 0
// when the shard has no state in r. Use it to fill
// ShardConfig.StateAppliedIndex.
func ReadAppliedIndex(r pebble.Reader, ks Keyspace) (uint64, error) {
	v, closer, err := r.Get(ks.metaKey(metaApplied))
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("raftnode: read applied index of shard %d: %w", ks.shardID, err)
	}
	defer closer.Close()
	if len(v) != 9 || v[0] != appliedFormatV1 {
		return 0, fmt.Errorf("%w: shard %d applied index value %x (want version %d, 9 bytes); the state DB was written by another centra version",
			ErrUnknownFormat, ks.shardID, v, appliedFormatV1)
	}
	return binary.BigEndian.Uint64(v[1:]), nil
}

// ShardIDs lists, in order, the shards with at least one key in r (meta or
// data) whose ID is >= from: how a node finds the replicas it hosted before
// a restart. It seeks once per shard, not per key.
func ShardIDs(r pebble.Reader, from uint64) ([]uint64, error) {
	lower := ShardKeyspace(from).prefix
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lower[:], UpperBound: []byte{shardTag + 1}})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var ids []uint64
	for ok := it.First(); ok; {
		k := it.Key()
		if len(k) < shardPrefixSz {
			return nil, fmt.Errorf("raftnode: malformed shard key %q in the state DB", k)
		}
		id := binary.BigEndian.Uint64(k[1:shardPrefixSz])
		ids = append(ids, id)
		if id == ^uint64(0) {
			break
		}
		next := ShardKeyspace(id + 1).prefix
		ok = it.SeekGE(next[:])
	}
	return ids, it.Error()
}
