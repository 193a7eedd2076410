package mvcc

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	"github.com/centra-cloud/centra/gen/mvccpb"
)

// Errors returned by reads and writes. Messages match etcd's where etcd has
// the same condition, so etcd clients recognise them.
var (
	// ErrCompacted: the requested revision was compacted away.
	ErrCompacted = errors.New("mvcc: required revision has been compacted")
	// ErrFutureRev: the requested revision is newer than the store.
	ErrFutureRev = errors.New("mvcc: required revision is a future revision")
)

// Revision identifies one change: Main is the store revision (one per write
// transaction), Sub orders the changes inside it.
type Revision struct{ Main, Sub int64 }

// Event is one change of a key: a put (KV is the new version) or a delete
// (KV holds only Key and ModRevision). Prev is the version it replaced, when
// the producer knows it.
type Event struct {
	Type mvccpb.Event_EventType
	KV   *mvccpb.KeyValue
	Prev *mvccpb.KeyValue
	// PrevUnread: the key had a previous version but Prev was not read
	// (see BeginApply); whoever needs it reads the event from storage.
	PrevUnread bool
}

// Store reads and writes the MVCC records of one shard. It holds no state of
// its own: every method takes the pebble reader or batch to use, so reads run
// on the DB (or a snapshot) and writes go into the raft apply batch.
type Store struct {
	prefix []byte
}

// New returns a Store whose records live under prefix.
func New(prefix []byte) *Store {
	return &Store{prefix: bytes.Clone(prefix)}
}

// full returns the storage key for suffix.
func (s *Store) full(suffix []byte) []byte {
	k := make([]byte, 0, len(s.prefix)+len(suffix))
	return append(append(k, s.prefix...), suffix...)
}

func (s *Store) strip(k []byte) []byte { return k[len(s.prefix):] }

// writeVersion writes the version record v of key at rev and its revision
// index entry. Both keys are built in *buf, which is kept for reuse: w
// copies keys and values.
func (s *Store) writeVersion(w pebble.Writer, buf *[]byte, key []byte, rev Revision, v []byte) error {
	k := appendVersionKey(append((*buf)[:0], s.prefix...), key, rev)
	if err := w.Set(k, v, nil); err != nil {
		return err
	}
	k = appendRevKey(append(k[:0], s.prefix...), rev)
	*buf = k
	return w.Set(k, key, nil)
}

const (
	valueLive      = 1
	valueTombstone = 2
)

// encodeValue appends the version record of kv (all but its key) to dst.
func encodeValue(dst []byte, kv *mvccpb.KeyValue) ([]byte, error) {
	stored := &mvccpb.KeyValue{
		CreateRevision: kv.CreateRevision,
		ModRevision:    kv.ModRevision,
		Version:        kv.Version,
		Value:          kv.Value,
		Lease:          kv.Lease,
	}
	b, err := proto.MarshalOptions{Deterministic: true}.MarshalAppend(append(dst, valueLive), stored)
	if err != nil {
		return nil, fmt.Errorf("mvcc: encode value: %w", err)
	}
	return b, nil
}

// decodeValue decodes a version record; it returns nil for a tombstone.
func decodeValue(key []byte, rev Revision, v []byte) (*mvccpb.KeyValue, error) {
	if len(v) == 0 {
		return nil, fmt.Errorf("mvcc: empty version record for %q", key)
	}
	switch v[0] {
	case valueTombstone:
		return nil, nil
	case valueLive:
		kv := &mvccpb.KeyValue{}
		if err := proto.Unmarshal(v[1:], kv); err != nil {
			return nil, fmt.Errorf("mvcc: decode version of %q at %d: %w", key, rev.Main, err)
		}
		kv.Key = bytes.Clone(key)
		return kv, nil
	default:
		return nil, fmt.Errorf("mvcc: unknown version record type %d for %q", v[0], key)
	}
}

// Get returns the version of key visible at rev, or nil when the key does not
// exist there.
func (s *Store) Get(r pebble.Reader, key []byte, rev int64) (*mvccpb.KeyValue, error) {
	p := keyPrefix(key)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: s.full(p), UpperBound: s.full(afterVersions(p))})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	if !it.SeekGE(s.full(seekVersion(p, rev))) {
		return nil, it.Error()
	}
	_, k, vrev, err := splitVersionKey(s.strip(it.Key()))
	if err != nil {
		return nil, err
	}
	v, err := it.ValueAndErr()
	if err != nil {
		return nil, err
	}
	return decodeValue(k, vrev, v)
}

// rangeBounds returns the storage bounds of the keys in [key, end) with
// etcd's conventions: an empty end means the single key, end "\x00" means
// every key >= key.
func (s *Store) rangeBounds(key, end []byte) (lower, upper []byte) {
	lower = s.full(keyPrefix(key))
	switch {
	case len(end) == 0:
		upper = s.full(afterVersions(keyPrefix(key)))
	case len(end) == 1 && end[0] == 0:
		upper = s.full([]byte{tagKey + 1})
	default:
		upper = s.full(keyPrefix(end))
	}
	return lower, upper
}

// Range calls fn, in key order, for every key in [key, end) that exists at
// rev, until fn returns false. It returns the number of keys visited.
func (s *Store) Range(r pebble.Reader, key, end []byte, rev int64, fn func(kv *mvccpb.KeyValue) bool) (int64, error) {
	lower, upper := s.rangeBounds(key, end)
	if len(end) > 0 && !(len(end) == 1 && end[0] == 0) && bytes.Compare(key, end) >= 0 {
		return 0, nil
	}
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	var n int64
	valid := it.First()
	for valid {
		p, k, vrev, err := splitVersionKey(s.strip(it.Key()))
		if err != nil {
			return n, err
		}
		p = bytes.Clone(p) // the iterator reuses its key buffer
		if vrev.Main > rev {
			valid = it.SeekGE(s.full(seekVersion(p, rev)))
			if !valid {
				break
			}
			if !bytes.HasPrefix(s.strip(it.Key()), p) {
				continue // no version of k at or before rev
			}
			if _, k, vrev, err = splitVersionKey(s.strip(it.Key())); err != nil {
				return n, err
			}
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return n, err
		}
		kv, err := decodeValue(k, vrev, v)
		if err != nil {
			return n, err
		}
		if kv != nil {
			n++
			if !fn(kv) {
				return n, nil
			}
		}
		// Step to the next key: usually the next entry, else seek past the
		// remaining versions of this one.
		valid = it.Next()
		if valid && bytes.HasPrefix(s.strip(it.Key()), p) {
			valid = it.SeekGE(s.full(afterVersions(p)))
		}
	}
	return n, it.Error()
}

// Meta holds the store's revision counters.
type Meta struct {
	Revision  int64 // the newest revision
	Compacted int64 // the revision compacted at (0 = never)
	Physical  int64 // the revision physically compacted at (local progress)
}

// InitialRevision is the revision of a store that was never written, etcd's:
// the first write gets revision 2.
const InitialRevision = 1

// LoadMeta reads the revision counters. A store without a revision record
// (never written) is at InitialRevision.
func (s *Store) LoadMeta(r pebble.Reader) (Meta, error) {
	m := Meta{Revision: InitialRevision}
	for _, f := range []struct {
		name []byte
		dst  *int64
	}{{metaRevision, &m.Revision}, {metaCompacted, &m.Compacted}, {metaPhysical, &m.Physical}} {
		v, closer, err := r.Get(s.full(metaKey(f.name)))
		if errors.Is(err, pebble.ErrNotFound) {
			continue
		}
		if err != nil {
			return m, err
		}
		if len(v) != 8 {
			closer.Close()
			return m, fmt.Errorf("mvcc: meta %s has %d bytes, want 8", f.name, len(v))
		}
		*f.dst = int64(uint64FromBE(v))
		closer.Close()
	}
	return m, nil
}

func (s *Store) setMeta(w pebble.Writer, name []byte, v int64) error {
	return w.Set(s.full(metaKey(name)), putBE64(nil, uint64(v)), nil)
}

// SetRevision persists the current revision into w.
func (s *Store) SetRevision(w pebble.Writer, rev int64) error {
	return s.setMeta(w, metaRevision, rev)
}

// SetCompacted persists the compaction revision into w.
func (s *Store) SetCompacted(w pebble.Writer, rev int64) error {
	return s.setMeta(w, metaCompacted, rev)
}

// Counter reads a named counter of the store's metadata (0 when unset).
func (s *Store) Counter(r pebble.Reader, name string) (int64, error) {
	v, closer, err := r.Get(s.full(metaKey([]byte("counter/" + name))))
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, fmt.Errorf("mvcc: counter %s has %d bytes, want 8", name, len(v))
	}
	return int64(uint64FromBE(v)), nil
}

// SetCounter writes a named counter into w.
func (s *Store) SetCounter(w pebble.Writer, name string, v int64) error {
	return s.setMeta(w, []byte("counter/"+name), v)
}

// DeleteMember removes a member record.
func (s *Store) DeleteMember(w pebble.Writer, nodeID uint64) error {
	return w.Delete(s.full(memberKey(nodeID)), nil)
}
