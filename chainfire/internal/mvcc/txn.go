package mvcc

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/centra-cloud/centra/gen/mvccpb"
)

// Txn is one write transaction: every change it makes gets main revision
// Rev and an increasing sub revision. It writes into an indexed pebble batch,
// so reads through Reader() see its own earlier writes.
type Txn struct {
	s      *Store
	b      *pebble.Batch
	rev    int64
	sub    int64
	events []Event
	// idx, when set (BeginApply), gives puts the previous version's
	// metadata; wantPrev makes every put read the previous version anyway.
	idx      *Index
	wantPrev bool
	bufs     *recordBufs
}

// recordBufs are reused to build the records of each change (the batch
// copies them).
type recordBufs struct{ key, value []byte }

// Begin starts a write transaction on b at revision current+1.
func (s *Store) Begin(b *pebble.Batch, current int64) *Txn {
	return &Txn{s: s, b: b, rev: current + 1, bufs: &recordBufs{}}
}

// Reader returns the view of the store including this transaction's writes.
func (t *Txn) Reader() pebble.Reader { return t.b }

// Changed reports whether the transaction wrote anything, i.e. whether it
// consumed its revision.
func (t *Txn) Changed() bool { return t.sub > 0 }

// Revision is the store revision after the transaction: Rev when it changed
// something, Rev-1 otherwise.
func (t *Txn) Revision() int64 {
	if t.Changed() {
		return t.rev
	}
	return t.rev - 1
}

// Events returns the changes made so far, in order.
func (t *Txn) Events() []Event { return t.events }

func (t *Txn) record(key []byte, value []byte) error {
	rev := Revision{Main: t.rev, Sub: t.sub}
	t.sub++
	return t.s.writeVersion(t.b, &t.bufs.key, key, rev, value)
}

// Put writes a new version of key and returns it and the version it replaced
// (nil when the key did not exist). With an index (BeginApply) the replaced
// version is read only when wantPrev (or the transaction's wantPrev) is set:
// otherwise prev is nil and the event's PrevUnread tells whether there was
// one.
func (t *Txn) Put(key, value []byte, lease int64, wantPrev bool) (kv, prev *mvccpb.KeyValue, err error) {
	var meta keyMeta
	existed, unread := false, false
	if t.idx != nil && !wantPrev && !t.wantPrev {
		meta, existed = t.idx.m[string(key)]
		unread = existed
	} else {
		if prev, err = t.s.Get(t.b, key, t.rev); err != nil {
			return nil, nil, err
		}
		if prev != nil {
			existed = true
			meta = keyMeta{create: prev.CreateRevision, version: prev.Version, lease: prev.Lease}
		}
	}
	kv = &mvccpb.KeyValue{Key: bytes.Clone(key), Value: bytes.Clone(value), Lease: lease, ModRevision: t.rev, CreateRevision: t.rev, Version: 1}
	if existed {
		kv.CreateRevision = meta.create
		kv.Version = meta.version + 1
		if meta.lease != 0 && meta.lease != lease {
			if err := t.b.Delete(t.s.full(attachKey(meta.lease, key)), nil); err != nil {
				return nil, nil, err
			}
		}
	}
	if lease != 0 {
		if err := t.b.Set(t.s.full(attachKey(lease, key)), nil, nil); err != nil {
			return nil, nil, err
		}
	}
	v, err := encodeValue(t.bufs.value[:0], kv)
	if err != nil {
		return nil, nil, err
	}
	t.bufs.value = v
	if err := t.record(key, v); err != nil {
		return nil, nil, err
	}
	if t.idx != nil {
		t.idx.m[string(key)] = keyMeta{create: kv.CreateRevision, version: kv.Version, lease: lease}
	}
	t.events = append(t.events, Event{Type: mvccpb.Event_PUT, KV: kv, Prev: prev, PrevUnread: unread})
	return kv, prev, nil
}

// DeleteRange deletes every key in [key, end) (etcd conventions) and returns
// the deleted versions.
func (t *Txn) DeleteRange(key, end []byte) ([]*mvccpb.KeyValue, error) {
	var live []*mvccpb.KeyValue
	if _, err := t.s.Range(t.b, key, end, t.rev, func(kv *mvccpb.KeyValue) bool {
		live = append(live, kv)
		return true
	}); err != nil {
		return nil, err
	}
	for _, kv := range live {
		if err := t.delete(kv); err != nil {
			return nil, err
		}
	}
	return live, nil
}

func (t *Txn) delete(prev *mvccpb.KeyValue) error {
	rev := Revision{Main: t.rev, Sub: t.sub}
	if err := t.record(prev.Key, []byte{valueTombstone}); err != nil {
		return err
	}
	if t.idx != nil {
		delete(t.idx.m, string(prev.Key))
	}
	if prev.Lease != 0 {
		if err := t.b.Delete(t.s.full(attachKey(prev.Lease, prev.Key)), nil); err != nil {
			return err
		}
	}
	t.events = append(t.events, Event{
		Type: mvccpb.Event_DELETE,
		KV:   &mvccpb.KeyValue{Key: prev.Key, ModRevision: rev.Main},
		Prev: prev,
	})
	return nil
}

// ErrLeaseExists: a lease with the requested ID already exists.
var ErrLeaseExists = errors.New("mvcc: lease already exists")

// ErrLeaseNotFound: no lease with the requested ID exists.
var ErrLeaseNotFound = errors.New("mvcc: lease not found")

// GrantLease persists lease id with ttl seconds.
func (t *Txn) GrantLease(id, ttl int64) error {
	if _, err := t.s.LeaseTTL(t.b, id); err == nil {
		return ErrLeaseExists
	} else if !errors.Is(err, ErrLeaseNotFound) {
		return err
	}
	return t.b.Set(t.s.full(leaseKey(id)), putBE64(nil, uint64(ttl)), nil)
}

// RevokeLease deletes every key attached to lease id, then the lease.
func (t *Txn) RevokeLease(id int64) error {
	if _, err := t.s.LeaseTTL(t.b, id); err != nil {
		return err
	}
	keys, err := t.s.LeaseKeys(t.b, id)
	if err != nil {
		return err
	}
	for _, k := range keys {
		kv, err := t.s.Get(t.b, k, t.rev)
		if err != nil {
			return err
		}
		if kv == nil || kv.Lease != id {
			return fmt.Errorf("mvcc: lease %x lists key %q that is not attached to it", id, k)
		}
		if err := t.delete(kv); err != nil {
			return err
		}
	}
	return t.b.Delete(t.s.full(leaseKey(id)), nil)
}

// LeaseTTL returns the granted TTL of lease id, or ErrLeaseNotFound.
func (s *Store) LeaseTTL(r pebble.Reader, id int64) (int64, error) {
	v, closer, err := r.Get(s.full(leaseKey(id)))
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, ErrLeaseNotFound
	}
	if err != nil {
		return 0, err
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, fmt.Errorf("mvcc: lease %x record has %d bytes, want 8", id, len(v))
	}
	return int64(uint64FromBE(v)), nil
}

// LeaseKeys returns the keys attached to lease id, in key order.
func (s *Store) LeaseKeys(r pebble.Reader, id int64) ([][]byte, error) {
	p := s.full(attachPrefix(id))
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var keys [][]byte
	for ok := it.First(); ok; ok = it.Next() {
		keys = append(keys, bytes.Clone(it.Key()[len(p):]))
	}
	return keys, it.Error()
}

// Leases calls fn for every lease with its TTL, in ID order.
func (s *Store) Leases(r pebble.Reader, fn func(id, ttl int64)) error {
	p := s.full([]byte{tagLease})
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		k, v := it.Key()[len(p):], it.Value()
		if len(k) != 8 || len(v) != 8 {
			return fmt.Errorf("mvcc: malformed lease record %x", it.Key())
		}
		fn(int64(uint64FromBE(k)), int64(uint64FromBE(v)))
	}
	return it.Error()
}
