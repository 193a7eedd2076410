package mvcc

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/centra-cloud/centra/gen/mvccpb"
)

// Events returns the changes with main revision in [from, to], in revision
// order, reading the revision index. It stops after the revision at which
// at least max events were collected (a revision is never split) and returns
// the last revision it covered completely. When withPrev is set, every event
// carries the version it replaced.
func (s *Store) Events(r pebble.Reader, from, to int64, max int, withPrev bool) ([]Event, int64, error) {
	if from > to {
		return nil, to, nil
	}
	lower := s.full(revKey(Revision{Main: from}))
	upper := s.full(revKey(Revision{Main: to + 1}))
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, 0, err
	}
	defer it.Close()
	var events []Event
	for ok := it.First(); ok; ok = it.Next() {
		rev, err := parseRevKey(s.strip(it.Key()))
		if err != nil {
			return nil, 0, err
		}
		if len(events) >= max && rev.Sub == 0 {
			return events, rev.Main - 1, nil
		}
		key := bytes.Clone(it.Value())
		ev, err := s.eventAt(r, key, rev, withPrev)
		if err != nil {
			return nil, 0, err
		}
		events = append(events, ev)
	}
	return events, to, it.Error()
}

func (s *Store) eventAt(r pebble.Reader, key []byte, rev Revision, withPrev bool) (Event, error) {
	v, closer, err := r.Get(s.full(versionKey(key, rev)))
	if err != nil {
		return Event{}, fmt.Errorf("mvcc: version of %q at %d/%d indexed but missing: %w", key, rev.Main, rev.Sub, err)
	}
	kv, err := decodeValue(key, rev, v)
	closer.Close()
	if err != nil {
		return Event{}, err
	}
	ev := Event{Type: mvccpb.Event_PUT, KV: kv}
	if kv == nil {
		ev = Event{Type: mvccpb.Event_DELETE, KV: &mvccpb.KeyValue{Key: key, ModRevision: rev.Main}}
	}
	if withPrev {
		if ev.Prev, err = s.Get(r, key, rev.Main-1); err != nil {
			return Event{}, err
		}
	}
	return ev, nil
}

// CompactChunk physically removes history older than rev, a bounded piece at
// a time. For each key from start on it keeps every version above rev and the
// newest version at or below rev (reads at rev need it), unless that one is a
// tombstone below rev, and deletes the older ones. It writes at most about
// maxDeletes deletions into w and returns where to continue (nil when the key
// space is done). The revision index below rev is dropped with one range
// deletion when start is nil.
//
// Compaction only removes versions no read can ask for any more (reads and
// watches below the compacted revision are refused), so it runs outside the
// raft apply path, on each replica at its own pace.
func (s *Store) CompactChunk(r pebble.Reader, w pebble.Writer, rev int64, start []byte, maxDeletes int) ([]byte, error) {
	if start == nil {
		if err := w.DeleteRange(s.full(revKey(Revision{})), s.full(revKey(Revision{Main: rev})), nil); err != nil {
			return nil, err
		}
		start = []byte{tagKey}
	}
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: s.full(start), UpperBound: s.full([]byte{tagKey + 1})})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	deletes := 0
	var cur []byte     // escaped prefix of the key being scanned
	seenAtRev := false // whether cur's newest version at or below rev was seen
	for ok := it.First(); ok; ok = it.Next() {
		p, _, vrev, err := splitVersionKey(s.strip(it.Key()))
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(p, cur) {
			if deletes >= maxDeletes {
				return bytes.Clone(p), nil
			}
			cur, seenAtRev = bytes.Clone(p), false
		}
		if vrev.Main > rev {
			continue
		}
		if !seenAtRev {
			seenAtRev = true
			v, err := it.ValueAndErr()
			if err != nil {
				return nil, err
			}
			if vrev.Main == rev || (len(v) > 0 && v[0] == valueLive) {
				continue
			}
		}
		if err := w.Delete(it.Key(), nil); err != nil {
			return nil, err
		}
		deletes++
	}
	return nil, it.Error()
}

// SetPhysical records that history below rev was physically removed.
func (s *Store) SetPhysical(w pebble.Writer, rev int64) error {
	return s.setMeta(w, metaPhysical, rev)
}

// PutMember stores the encoded attributes of a member.
func (s *Store) PutMember(w pebble.Writer, nodeID uint64, attrs []byte) error {
	return w.Set(s.full(memberKey(nodeID)), attrs, nil)
}

// Members calls fn with the encoded attributes of every member, in node ID
// order.
func (s *Store) Members(r pebble.Reader, fn func(nodeID uint64, attrs []byte) error) error {
	p := s.full([]byte{tagMember})
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()[len(p):]
		if len(k) != 8 {
			return errors.New("mvcc: malformed member record")
		}
		if err := fn(uint64FromBE(k), bytes.Clone(it.Value())); err != nil {
			return err
		}
	}
	return it.Error()
}
