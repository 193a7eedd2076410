package mvcc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// Tags of the record families inside the shard's data subspace. See DESIGN.md
// in the chainfire package for the full layout; changing a tag or an encoding
// needs a migration.
const (
	tagMeta   = 'M' // 'M' + name: store metadata (current and compacted revision)
	tagKey    = 'k' // 'k' + esc(key) + be64(^main) + be64(^sub): one version of a key
	tagRev    = 'r' // 'r' + be64(main) + be64(sub): the key changed at that revision
	tagLease  = 'l' // 'l' + be64(id): a lease and its TTL
	tagAttach = 'a' // 'a' + be64(id) + key: key is attached to lease id
	tagMember = 'n' // 'n' + be64(node id): published member attributes
	tagSystem = 'y' // 'y' + key: a system key (placement driver state): be64(version) + value
	tagAlarm  = 'x' // 'x' + be64(member id) + be32(alarm type): an active alarm, empty value
	tagAuth   = 'A' // 'A' + kind + name: a user ('u') or role ('r'), etcd's authpb record
)

// Meta record names (after tagMeta).
var (
	metaRevision  = []byte("rev")
	metaCompacted = []byte("compact")
	metaPhysical  = []byte("physical")
	metaAuth      = []byte("auth")
)

// versionSuffixLen is the length of be64(^main) + be64(^sub).
const versionSuffixLen = 16

var errBadKey = errors.New("mvcc: malformed storage key")

// escape appends an order-preserving, prefix-free encoding of key to dst:
// 0x00 becomes 0x00 0xFF and the key ends with 0x00 0x01. Comparing two
// encodings bytewise orders them as the raw keys, and no encoding is a prefix
// of another, so the fixed-length version suffix can follow it.
func escape(dst, key []byte) []byte {
	for _, c := range key {
		if c == 0 {
			dst = append(dst, 0, 0xff)
			continue
		}
		dst = append(dst, c)
	}
	return append(dst, 0, 1)
}

// unescape reverses escape; enc must include the terminator.
func unescape(enc []byte) ([]byte, error) {
	out := make([]byte, 0, len(enc))
	for i := 0; i < len(enc); i++ {
		c := enc[i]
		if c != 0 {
			out = append(out, c)
			continue
		}
		if i+1 >= len(enc) {
			return nil, errBadKey
		}
		switch enc[i+1] {
		case 0xff:
			out = append(out, 0)
			i++
		case 1:
			if i+2 != len(enc) {
				return nil, errBadKey
			}
			return out, nil
		default:
			return nil, errBadKey
		}
	}
	return nil, errBadKey
}

func putBE64(dst []byte, v uint64) []byte {
	return binary.BigEndian.AppendUint64(dst, v)
}

func uint64FromBE(b []byte) uint64 { return binary.BigEndian.Uint64(b) }

// keyPrefix is tagKey + esc(key): every version of key starts with it.
func keyPrefix(key []byte) []byte {
	return escape([]byte{tagKey}, key)
}

// versionKey is the storage suffix of key's version at rev.
func versionKey(key []byte, rev Revision) []byte {
	return appendVersionKey(make([]byte, 0, 1+len(key)+2+versionSuffixLen), key, rev)
}

// appendVersionKey appends versionKey(key, rev) to dst.
func appendVersionKey(dst, key []byte, rev Revision) []byte {
	dst = escape(append(dst, tagKey), key)
	dst = putBE64(dst, ^uint64(rev.Main))
	return putBE64(dst, ^uint64(rev.Sub))
}

// seekVersion returns the position of the newest version of the key whose
// escaped prefix is p with a main revision <= main.
func seekVersion(p []byte, main int64) []byte {
	b := append(bytes.Clone(p), make([]byte, 0, versionSuffixLen)...)
	b = putBE64(b, ^uint64(main))
	return putBE64(b, 0)
}

// afterVersions returns a key that sorts after every version of the key with
// escaped prefix p and before any other key.
func afterVersions(p []byte) []byte {
	b := bytes.Clone(p)
	return append(b, bytes.Repeat([]byte{0xff}, versionSuffixLen+1)...)
}

// splitVersionKey splits a tagKey storage suffix into the escaped prefix
// (tag included), the raw key and the revision.
func splitVersionKey(k []byte) (prefix, key []byte, rev Revision, err error) {
	if len(k) < 1+2+versionSuffixLen || k[0] != tagKey {
		return nil, nil, Revision{}, fmt.Errorf("%w: %q", errBadKey, k)
	}
	n := len(k) - versionSuffixLen
	prefix = k[:n]
	key, err = unescape(k[1:n])
	if err != nil {
		return nil, nil, Revision{}, err
	}
	rev.Main = int64(^binary.BigEndian.Uint64(k[n:]))
	rev.Sub = int64(^binary.BigEndian.Uint64(k[n+8:]))
	return prefix, key, rev, nil
}

// revKey is the storage suffix of the revision index entry for rev.
func revKey(rev Revision) []byte { return appendRevKey(make([]byte, 0, 17), rev) }

// appendRevKey appends revKey(rev) to dst.
func appendRevKey(dst []byte, rev Revision) []byte {
	return putBE64(putBE64(append(dst, tagRev), uint64(rev.Main)), uint64(rev.Sub))
}

func parseRevKey(k []byte) (Revision, error) {
	if len(k) != 17 || k[0] != tagRev {
		return Revision{}, fmt.Errorf("%w: %q", errBadKey, k)
	}
	return Revision{Main: int64(binary.BigEndian.Uint64(k[1:])), Sub: int64(binary.BigEndian.Uint64(k[9:]))}, nil
}

func leaseKey(id int64) []byte {
	return putBE64([]byte{tagLease}, uint64(id))
}

func attachPrefix(id int64) []byte {
	return putBE64([]byte{tagAttach}, uint64(id))
}

func attachKey(id int64, key []byte) []byte {
	return append(attachPrefix(id), key...)
}

func memberKey(nodeID uint64) []byte {
	return putBE64([]byte{tagMember}, nodeID)
}

func metaKey(name []byte) []byte {
	return append([]byte{tagMeta}, name...)
}

// PrefixEnd returns the smallest key greater than every key with prefix p,
// or nil when there is none (p is all 0xff).
func PrefixEnd(p []byte) []byte { return prefixEnd(p) }

func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// InRange reports whether key is in the range [start, end) with etcd's
// conventions: an empty end means the single key start, end "\x00" means
// every key >= start.
func InRange(key, start, end []byte) bool {
	switch {
	case len(end) == 0:
		return bytes.Equal(key, start)
	case len(end) == 1 && end[0] == 0:
		return bytes.Compare(key, start) >= 0
	}
	return bytes.Compare(key, start) >= 0 && bytes.Compare(key, end) < 0
}
